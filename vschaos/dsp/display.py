"""How a magnitude spectrogram is shown, the same in every figure (trajectory PNGs, TensorBoard images):
dB over an 80 dB range, time in seconds, frequency in Hz. Matplotlib axes are passed in; nothing is drawn
globally."""
from typing import Optional

import torch
from torch import Tensor


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
