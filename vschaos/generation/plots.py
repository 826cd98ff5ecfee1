"""Figures of generated sounds: latent curves over time above the log-magnitude spectrogram.

Uses matplotlib's object API with the Agg canvas (no pyplot state, no display needed).
"""
from pathlib import Path
from typing import Optional, Union

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from vschaos.dsp.display import draw_spectrogram
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

    image = draw_spectrogram(bottom, magnitude, sample_rate, hop)
    figure.colorbar(image, ax=[top, bottom], label="dB", fraction=0.03, pad=0.01)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
