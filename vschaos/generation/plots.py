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

    image = draw_spectrogram(bottom, magnitude, sample_rate, hop)
    figure.colorbar(image, ax=[top, bottom], label="dB", fraction=0.03, pad=0.01)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))


DYNAMIC_RANGE_DB = 80.0  # enough to see the structure; quieter bins are drawn at the floor


def magnitude_db(magnitude: Tensor) -> Tensor:
    """``20 log10 |X|`` (linear magnitude in, dB out), the values the spectrogram panels show."""
    return 20.0 * torch.log10(magnitude.detach().cpu().float().clamp_min(1e-12))


def draw_spectrogram(axis, magnitude: Tensor, sample_rate: int, hop: int, vmax_db: Optional[float] = None):
    """Draw ``(frames, bins)`` linear magnitude on ``axis`` in dB: time in seconds (frame ``t`` at
    ``t * hop / sample_rate``), frequency in Hz up to Nyquist, colours from ``vmax_db`` (default: this
    magnitude's peak) down :data:`DYNAMIC_RANGE_DB`. Returns the image, for a shared colour bar."""
    decibels = magnitude_db(magnitude)
    top_db = float(decibels.max()) if vmax_db is None else float(vmax_db)
    decibels = decibels.clamp(min=top_db - DYNAMIC_RANGE_DB)
    duration = magnitude.shape[0] * hop / float(sample_rate)
    image = axis.imshow(decibels.transpose(0, 1).numpy(), origin="lower", aspect="auto",
                        extent=(0.0, duration, 0.0, sample_rate / 2.0), cmap="magma",
                        vmin=top_db - DYNAMIC_RANGE_DB, vmax=top_db)
    axis.set_xlabel("time (s)")
    axis.set_ylabel("frequency (Hz)")
    return image
