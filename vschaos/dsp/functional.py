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
from typing import Optional, Tuple

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
    if n_fft % hop != 0:
        flat = frames.reshape(-1, n_frames, n_fft).transpose(1, 2)  # (B, n_fft, frames)
        out_len = (n_frames - 1) * hop + n_fft
        out = torch.nn.functional.fold(
            flat, output_size=(1, out_len), kernel_size=(1, n_fft), stride=(1, hop)
        )
        return out.reshape(lead + (out_len,))
    # n_fft = r * hop: add r shifted block sequences (~20x faster than fold on CPU).
    r = n_fft // hop
    blocks = frames.reshape(lead + (n_frames, r, hop))
    out = torch.zeros(lead + (n_frames + r - 1, hop), dtype=frames.dtype, device=frames.device)
    for k in range(r):
        out[..., k : k + n_frames, :] += blocks[..., k, :]
    return out.reshape(lead + ((n_frames + r - 1) * hop,))


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


# --------------------------------------------------------------------------------------------
# Phase reconstruction from magnitude
# --------------------------------------------------------------------------------------------
#
# For the Gaussian window g(t) = exp(-pi t^2 / lambda) and phases referenced to the frame centre,
# V(x, w) = exp(-pi lambda w^2) F(x - i lambda w) with F analytic, so log|V| and arg V obey
# Cauchy-Riemann-like relations (Prusa, Balazs, Sondergaard, IEEE/ACM TASLP 2017, eq. 18-19;
# Portnoff 1979):
#     d(phase)/dx = 2 pi w + (1 / lambda) d(log|V|)/dw        (x in samples, w in cycles/sample)
#     d(phase)/dw = -lambda d(log|V|)/dx
# Discretised at x = t * hop and w = m / n_fft, per frame step and per bin step:
#     dphi_time[t, m] = hop * 2 pi m / n_fft + (hop * n_fft / lambda) * ds/dm
#     dphi_freq[t, m] = -(lambda / (n_fft * hop)) * ds/dt
# with s = log|V|. The streaming RTPGHI uses the same two functions (with a causal ds/dt).

def log_magnitude(magnitude: Tensor, floor: float = 1e-10) -> Tensor:
    """Natural log of the magnitude, floored at ``floor * max`` of each spectrogram (max over the
    last two axes) so that exact zeros do not give ``-inf`` slopes. ``(..., frames, bins)`` ->
    same shape. Streamed single frames ``(batch, bins)`` should not use this (the max would mix
    batch rows): use ``torch.log(mag.clamp_min(eps))`` there."""
    peak = magnitude.amax(dim=(-2, -1), keepdim=True) if magnitude.dim() >= 2 else magnitude.amax()
    return torch.log(torch.maximum(magnitude, peak * floor + 1e-30))


def phase_time_derivative(log_mag: Tensor, lam: float, hop: int, n_fft: int) -> Tensor:
    """Phase advance per frame (radians) from the log-magnitude of each frame.

    ``log_mag`` ``(..., bins)`` (any leading axes, e.g. ``(batch, frames, bins)`` or one
    streamed frame ``(batch, bins)``) -> same shape. Uses the centred difference of ``log_mag``
    along bins; at DC and Nyquist the spectrum of a real signal is symmetric, so the slope is 0.
    """
    n_bins = log_mag.shape[-1]
    padded = torch.cat([log_mag[..., 1:2], log_mag, log_mag[..., n_bins - 2 : n_bins - 1]], dim=-1)
    ds_dm = 0.5 * (padded[..., 2:] - padded[..., :-2])
    m = torch.arange(n_bins, dtype=log_mag.dtype, device=log_mag.device)
    return (2.0 * math.pi * hop / n_fft) * m + (hop * n_fft / lam) * ds_dm


def phase_frequency_derivative(log_mag_time_slope: Tensor, lam: float, hop: int, n_fft: int) -> Tensor:
    """Phase advance per bin (radians) from ``d log|V| / dt`` per frame ``(..., bins)``.

    The caller chooses the time difference: centred offline (:func:`phase_derivatives`),
    backward in a zero-look-ahead stream (RTPGHI).
    """
    return (-lam / (n_fft * hop)) * log_mag_time_slope


def log_magnitude_time_slope(log_mag: Tensor) -> Tensor:
    """Centred difference of ``log_mag`` ``(..., frames, bins)`` along frames (one-sided at the
    ends), in log units per frame. Same shape."""
    n_frames = log_mag.shape[-2]
    if n_frames < 2:
        return torch.zeros_like(log_mag)
    first = log_mag[..., 1:2, :] - log_mag[..., 0:1, :]
    last = log_mag[..., n_frames - 1 : n_frames, :] - log_mag[..., n_frames - 2 : n_frames - 1, :]
    inner = 0.5 * (log_mag[..., 2:, :] - log_mag[..., :-2, :])
    return torch.cat([first, inner, last], dim=-2)


def phase_derivatives(log_mag: Tensor, lam: float, hop: int, n_fft: int) -> Tuple[Tensor, Tensor]:
    """Offline phase gradient of a whole spectrogram.

    ``log_mag`` ``(..., frames, bins)`` -> ``(dphi_time, dphi_freq)``, each ``(..., frames, bins)``:
    phase advance per frame and per bin in radians (centred differences).
    """
    dphi_time = phase_time_derivative(log_mag, lam, hop, n_fft)
    dphi_freq = phase_frequency_derivative(log_magnitude_time_slope(log_mag), lam, hop, n_fft)
    return dphi_time, dphi_freq


def pghi(magnitude: Tensor, lam: float, hop: int, n_fft: int, tol: float = 1e-5,
         generator: Optional[torch.Generator] = None) -> Tensor:
    """Phase-gradient heap integration (offline; not TorchScript: runs a numba kernel).

    Prusa, Balazs, Sondergaard, "A noniterative method for reconstruction of phase from STFT
    magnitude", IEEE/ACM TASLP 2017.

    Args:
        magnitude: ``(..., frames, bins)`` DGT magnitude (Gaussian window, phase at frame centre).
        lam: window spread ``gaussian_lambda(n_fft, tfr)`` in samples^2.
        hop, n_fft: the DGT's hop and FFT size.
        tol: coefficients below ``tol * max`` (per spectrogram) are not integrated and get a
            uniformly random phase (they carry no reliable gradient).
        generator: optional torch generator for those random phases (reproducibility).
    Returns:
        phase ``(..., frames, bins)`` in ``[-pi, pi)``, same dtype and device as ``magnitude``.
    """
    from vschaos.dsp._pghi_kernel import heap_integrate_batch

    if magnitude.dim() < 2:
        raise ValueError(f"pghi expects (..., frames, bins), got shape {tuple(magnitude.shape)}")
    n_bins = n_fft // 2 + 1
    if magnitude.shape[-1] != n_bins:
        raise ValueError(f"pghi: last axis has {magnitude.shape[-1]} bins, n_fft={n_fft} gives {n_bins}")
    shape = magnitude.shape
    mag64 = magnitude.detach().to(device="cpu", dtype=torch.float64).reshape(-1, shape[-2], shape[-1])
    log_mag = log_magnitude(mag64, floor=min(tol, 1e-10))
    dphi_time, dphi_freq = phase_derivatives(log_mag, lam, hop, n_fft)
    threshold = torch.log(mag64.amax(dim=(-2, -1)).clamp_min(1e-30) * tol)
    phase = (torch.rand(mag64.shape, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * math.pi
    phase_np = phase.numpy()
    heap_integrate_batch(log_mag.numpy(), dphi_time.numpy(), dphi_freq.numpy(), threshold.numpy(), phase_np)
    wrapped = torch.remainder(torch.from_numpy(phase_np) + math.pi, 2.0 * math.pi) - math.pi
    return wrapped.reshape(shape).to(device=magnitude.device, dtype=magnitude.dtype)


def griffin_lim(magnitude: Tensor, phase_init: Tensor, window: Tensor, dual: Tensor, hop: int,
                length: int, n_iter: int = 32, momentum: float = 0.99) -> Tensor:
    """Fast Griffin-Lim phase refinement (Perraudin, Balazs, Sondergaard, "A fast Griffin-Lim
    algorithm", WASPAA 2013); ``momentum=0`` is plain Griffin-Lim (Griffin & Lim 1984).

    Args:
        magnitude: target ``(..., frames, bins)``; ``phase_init`` same shape (e.g. from PGHI).
        window, dual: ``(n_fft,)`` analysis window and its dual (projection onto consistent
            spectrograms is ``dgt(idgt(.))``).
        length: signal length in samples (``num_frames(length, n_fft, hop) == frames``).
    Returns:
        phase ``(..., frames, bins)``: the phase of the last consistent estimate.
    """
    spec = torch.polar(magnitude, phase_init)
    previous = spec
    for _ in range(n_iter):
        projected = dgt(idgt(spec, dual, hop, length), window, hop)
        current = magnitude * torch.sgn(projected)
        spec = current + momentum * (current - previous)
        previous = current
    return torch.angle(dgt(idgt(spec, dual, hop, length), window, hop))


def spectral_convergence(reference_mag: Tensor, estimate_mag: Tensor) -> Tensor:
    """``||S - S^||_F / ||S||_F`` over the last two axes ``(..., frames, bins)`` -> ``(...)``."""
    num = torch.linalg.vector_norm(reference_mag - estimate_mag, dim=(-2, -1))
    den = torch.linalg.vector_norm(reference_mag, dim=(-2, -1))
    return num / den.clamp_min(1e-12)


def log_spectral_distance(reference_mag: Tensor, estimate_mag: Tensor, eps: float = 1e-7) -> Tensor:
    """Log-spectral distance in dB: per frame the RMS over bins of
    ``20 log10((|S| + eps) / (|S^| + eps))``, averaged over frames. ``(..., frames, bins)`` -> ``(...)``."""
    diff = 20.0 * (torch.log10(reference_mag + eps) - torch.log10(estimate_mag + eps))
    return torch.sqrt((diff * diff).mean(dim=-1)).mean(dim=-1)
