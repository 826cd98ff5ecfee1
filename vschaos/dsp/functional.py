"""Pure, TorchScript-safe signal functions for the Gaussian-window STFT ("DGT").

Conventions used across the package (the streaming code relies on them):

* ``n_fft`` is both the window length ``L`` and the FFT size ``M``; ``hop`` is ``a``;
  ``n_fft`` must be a multiple of ``hop``. Bins: ``n_fft // 2 + 1``.
* Frame ``t`` covers input samples ``[t * hop - (n_fft - hop), t * hop + hop)``: it ends where
  the ``t``-th hop of input ends, so a stream can emit frame ``t`` as soon as it has received
  ``(t + 1) * hop`` samples. Its centre is at sample ``t * hop + hop - n_fft / 2``.
* Phases are referenced to the frame centre (the windowed frame is rotated by ``n_fft / 2``
  before the FFT), which is the convention PGHI's phase-gradient formulas use.
* The Gaussian window is ``g[n] = exp(-pi * (n - L/2)^2 / lambda)`` with ``lambda = tfr * L^2``
  (in samples^2). ``lambda`` is the time-frequency spread constant PGHI needs.
* Analysis with ``window`` followed by synthesis with ``dual_window(window, hop)`` is the
  identity on every sample of the signal (the offline transform pads so that every sample is
  covered by all ``n_fft / hop`` frames that overlap it).
"""
from typing import Tuple

import math

import torch
from torch import Tensor

DEFAULT_TFR: float = 0.25


def gaussian_lambda(n_fft: int, tfr: float = DEFAULT_TFR) -> float:
    """Time-frequency spread ``lambda`` (samples^2) of the Gaussian window of length ``n_fft``."""
    return tfr * float(n_fft) * float(n_fft)


def gaussian_window(n_fft: int, tfr: float = DEFAULT_TFR, dtype: torch.dtype = torch.float32) -> Tensor:
    """Gaussian window ``(n_fft,)`` centred on sample ``n_fft // 2``, peak 1."""
    lam = gaussian_lambda(n_fft, tfr)
    n = torch.arange(n_fft, dtype=torch.float64) - n_fft // 2
    return torch.exp(-math.pi * n * n / lam).to(dtype)


def dual_window(window: Tensor, hop: int) -> Tensor:
    """Canonical dual synthesis window ``(n_fft,)`` for ``window`` at hop ``hop``.

    ``g_d[n] = g[n] / sum_k g[n + k hop]^2`` (sum over the shifts that stay inside the window),
    which makes overlap-add of ``irfft(rfft(frame * g)) * g_d`` the identity.
    """
    n_fft = window.shape[0]
    if n_fft % hop != 0:
        raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop ({hop})")
    w64 = window.to(torch.float64)
    energy = (w64 * w64).reshape(n_fft // hop, hop).sum(0)  # periodic with period hop
    return (w64 / energy.repeat(n_fft // hop)).to(window.dtype)


def num_frames(length: int, n_fft: int, hop: int) -> int:
    """Number of frames the offline DGT gives for ``length`` samples."""
    return (length + hop - 1) // hop + n_fft // hop - 1


def frame_centres(n_frames: int, n_fft: int, hop: int) -> Tensor:
    """Centre of each frame in samples of the original signal ``(n_frames,)`` (float64)."""
    return torch.arange(n_frames, dtype=torch.float64) * hop + hop - n_fft / 2


def centre_phase_sign(n_fft: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(-1)^m`` per bin: moves the phase reference from frame start to frame centre."""
    m = torch.arange(n_fft // 2 + 1)
    return (1 - 2 * (m % 2)).to(dtype)


def dgt_frames(frames: Tensor, window: Tensor) -> Tensor:
    """Complex spectra ``(..., frames, bins)`` of already-cut frames ``(..., frames, n_fft)``."""
    n_fft = window.shape[0]
    spec = torch.fft.rfft(frames * window, n=n_fft, dim=-1)
    return spec * centre_phase_sign(n_fft, window.dtype).to(window.device)


def idgt_frames(spec: Tensor, dual: Tensor) -> Tensor:
    """Windowed time frames ``(..., frames, n_fft)`` from spectra ``(..., frames, bins)``,
    ready for overlap-add."""
    n_fft = dual.shape[0]
    spec = spec * centre_phase_sign(n_fft, dual.dtype).to(dual.device)
    return torch.fft.irfft(spec, n=n_fft, dim=-1) * dual


def pad_for_dgt(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """Zero-pad ``(..., time)`` so that the frames of :func:`num_frames` cover every sample."""
    length = x.shape[-1]
    n_hops = (length + hop - 1) // hop
    right = n_hops * hop - length + n_fft - hop
    return torch.nn.functional.pad(x, (n_fft - hop, right))


def dgt(x: Tensor, window: Tensor, hop: int) -> Tensor:
    """Gaussian-window STFT of ``x`` ``(..., time)`` -> complex ``(..., frames, bins)``."""
    n_fft = window.shape[0]
    padded = pad_for_dgt(x, n_fft, hop)
    frames = padded.unfold(-1, n_fft, hop)
    return dgt_frames(frames, window)


def overlap_add(frames: Tensor, hop: int) -> Tensor:
    """Overlap-add ``(..., n_frames, n_fft)`` at ``hop`` -> ``(..., (n_frames - 1) * hop + n_fft)``."""
    n_frames = frames.shape[-2]
    n_fft = frames.shape[-1]
    lead = frames.shape[:-2]
    flat = frames.reshape(-1, n_frames, n_fft).transpose(1, 2)  # (B, n_fft, frames)
    out_len = (n_frames - 1) * hop + n_fft
    out = torch.nn.functional.fold(
        flat, output_size=(1, out_len), kernel_size=(1, n_fft), stride=(1, hop)
    )
    return out.reshape(lead + (out_len,))


def idgt(spec: Tensor, dual: Tensor, hop: int, length: int) -> Tensor:
    """Inverse of :func:`dgt`: complex ``(..., frames, bins)`` -> ``(..., length)``."""
    n_fft = dual.shape[0]
    frames = idgt_frames(spec, dual)
    out = overlap_add(frames, hop)
    return out[..., n_fft - hop : n_fft - hop + length]


def contrast(magnitude: Tensor) -> Tensor:
    """Log-compression used as the model's input representation: ``log1p(|X|)``."""
    return torch.log1p(magnitude)


def inverse_contrast(features: Tensor) -> Tensor:
    """Inverse of :func:`contrast`, clamped at zero: ``expm1(max(c, 0))``."""
    return torch.expm1(torch.clamp(features, min=0.0))


def polar(magnitude: Tensor, phase: Tensor) -> Tensor:
    """Complex spectrum from magnitude and phase (same shapes)."""
    return torch.polar(magnitude, phase)
