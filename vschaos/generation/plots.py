"""Figures of generated sounds: latent curves over time above the log-magnitude spectrogram.

Uses matplotlib's object API with the Agg canvas (no pyplot state, no display needed).
"""
from pathlib import Path
from typing import Optional, Union

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from vschaos.io import atomic_write


def plot_latents_and_spectrogram(path: Union[str, Path], latents: Tensor, magnitude: Tensor,
                                 sample_rate: int, hop: int, title: Optional[str] = None,
                                 dpi: int = 100) -> Path:
    """Write a PNG: latent curves ``(steps, latent_dim)`` over time above the spectrogram
    ``(frames, bins)`` (linear magnitude, shown in dB) of the decoded audio.

    Both panels share the time axis in seconds (frame ``t`` at ``t * hop / sample_rate``).
    """
    latents = latents.detach().cpu().float()
    magnitude = magnitude.detach().cpu().float()
    if latents.dim() != 2 or magnitude.dim() != 2:
        raise ValueError(f"expected latents (steps, latent_dim) and magnitude (frames, bins), "
                         f"got {tuple(latents.shape)} and {tuple(magnitude.shape)}")
    figure = Figure(figsize=(10, 6), dpi=dpi)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2]})

    seconds_per_frame = hop / float(sample_rate)
    times = torch.arange(latents.shape[0]) * seconds_per_frame
    for dim in range(latents.shape[1]):
        top.plot(times.numpy(), latents[:, dim].numpy(), linewidth=0.8)
    top.set_ylabel("latent")
    top.grid(alpha=0.3)
    if title:
        top.set_title(title)

    decibels = 20.0 * torch.log10(magnitude.clamp_min(1e-12))
    floor = float(decibels.max()) - 80.0  # 80 dB of dynamic range is enough to see the structure
    decibels = decibels.clamp_min(floor)
    duration = magnitude.shape[0] * seconds_per_frame
    image = bottom.imshow(decibels.transpose(0, 1).numpy(), origin="lower", aspect="auto",
                          extent=(0.0, duration, 0.0, sample_rate / 2.0), cmap="magma")
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("frequency (Hz)")
    figure.colorbar(image, ax=[top, bottom], label="dB", fraction=0.03, pad=0.01)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
