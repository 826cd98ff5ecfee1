"""Phase reconstruction from a DGT magnitude (offline): phase-gradient heap integration (PGHI) and
fast Griffin-Lim, plus the phase-gradient formulas the streaming RTPGHI shares.

Same conventions as :mod:`vschaos.dsp.functional` (Gaussian window, phases referenced to the frame
centre). The phase derivatives are TorchScript-safe; :func:`pghi`, :func:`griffin_lim` and
:func:`with_magnitude` run offline (numba kernels in :mod:`vschaos.dsp._pghi_kernel` when installed).
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from vschaos.dsp.functional import dgt, idgt, overlap_add_dual, overlap_add_dual_fused

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


def bin_phase_advance(n_fft: int, hop: int) -> Tensor:
    """Phase advance per frame of each bin's own frequency, ``2 pi hop m / n_fft``, wrapped into ``[-pi, pi)``:
    ``(n_fft // 2 + 1,)`` float64, exact (the wrap is done in whole turns, ``hop * m mod n_fft``). The term
    :func:`phase_time_derivative` adds its slope to: wrapped, the sum stays small, so a float32 stream keeps
    its precision at high bins (unwrapped it reaches ``pi * hop``, e.g. 1600 rad at dgt_mid)."""
    m = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    turns = torch.remainder(m * hop, n_fft) / n_fft
    turns = torch.where(turns >= 0.5, turns - 1.0, turns)
    return (2.0 * math.pi) * turns


def phase_time_derivative(log_mag: Tensor, lam: float, hop: int, n_fft: int,
                          bin_advance: Optional[Tensor] = None) -> Tensor:
    """Phase advance per frame (radians) from the log-magnitude of each frame.

    ``log_mag`` ``(..., bins)`` (any leading axes, e.g. ``(batch, frames, bins)`` or one
    streamed frame ``(batch, bins)``) -> same shape. Uses the centred difference of ``log_mag``
    along bins; at DC and Nyquist the spectrum of a real signal is symmetric, so the slope is 0.
    ``bin_advance``: the bins' own advance ``(bins,)``; ``None`` computes it unwrapped, a stream passes
    :func:`bin_phase_advance` (equal modulo ``2 pi``, built once).
    """
    n_bins = log_mag.shape[-1]
    twice_slope = torch.nn.functional.pad(log_mag[..., 2:] - log_mag[..., : n_bins - 2], [1, 1])
    if bin_advance is None:
        bin_advance = (2.0 * math.pi * hop / n_fft) * torch.arange(n_bins, dtype=log_mag.dtype, device=log_mag.device)
    return torch.add(bin_advance, twice_slope, alpha=0.5 * hop * n_fft / lam)


def phase_frequency_derivative_factor(lam: float, hop: int, n_fft: int) -> float:
    """``dphi_freq = factor * d log|V| / dt`` (radians per bin, ``dt`` in frames): ``-lambda / (n_fft * hop)``."""
    return -lam / (n_fft * hop)


def phase_frequency_derivative(log_mag_time_slope: Tensor, lam: float, hop: int, n_fft: int) -> Tensor:
    """Phase advance per bin (radians) from ``d log|V| / dt`` per frame ``(..., bins)``.

    The caller chooses the time difference: centred offline (:func:`phase_derivatives`),
    backward in a zero-look-ahead stream (RTPGHI, which folds :func:`phase_frequency_derivative_factor`
    into its integral).
    """
    return phase_frequency_derivative_factor(lam, hop, n_fft) * log_mag_time_slope


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
    from vschaos.dsp._pghi_kernel import heap_integrate, phase_gradient, wrap_phase_inplace

    if magnitude.dim() < 2:
        raise ValueError(f"pghi expects (..., frames, bins), got shape {tuple(magnitude.shape)}")
    n_bins = n_fft // 2 + 1
    if magnitude.shape[-1] != n_bins:
        raise ValueError(f"pghi: last axis has {magnitude.shape[-1]} bins, n_fft={n_fft} gives {n_bins}")
    shape = magnitude.shape
    mag64 = magnitude.detach().to(device="cpu", dtype=torch.float64).reshape(-1, shape[-2], shape[-1])
    log_mag = log_magnitude(mag64, floor=min(tol, 1e-10))
    threshold = torch.log(mag64.amax(dim=(-2, -1)).clamp_min(1e-30) * tol)
    phase = (torch.rand(mag64.shape, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * math.pi
    # Same values as phase_derivatives(log_mag, ...) (the streaming RTPGHI's torch version),
    # computed in one numba pass per spectrogram instead of ~10 torch passes.
    dphi_time = torch.empty_like(log_mag)
    dphi_freq = torch.empty_like(log_mag)
    log_np, time_np, freq_np, phase_np = log_mag.numpy(), dphi_time.numpy(), dphi_freq.numpy(), phase.numpy()
    threshold_np = threshold.numpy()
    for b in range(log_np.shape[0]):
        phase_gradient(log_np[b], hop * n_fft / lam, -lam / (n_fft * hop), 2.0 * math.pi * hop / n_fft,
                       time_np[b], freq_np[b])
        heap_integrate(log_np[b], time_np[b], freq_np[b], float(threshold_np[b]), phase_np[b])
    wrap_phase_inplace(phase_np)
    return phase.reshape(shape).to(device=magnitude.device, dtype=magnitude.dtype)


#: Fast Griffin-Lim momentum (Perraudin et al. 2013 recommend 0.99).
GLA_MOMENTUM: float = 0.99


class _ConsistencyProjection:
    """``dgt(idgt(spec))`` for a fixed shape, with everything that does not change between
    Griffin-Lim iterations computed once (offline only; not TorchScript).

    Same result as ``dgt(idgt(spec, dual, hop, length), window, hop)`` up to float rounding, in
    fewer full-array passes:

    * The centre-phase sign ``(-1)^m`` is a rotation of each time frame by ``n_fft / 2``. When
      ``hop`` divides ``n_fft / 2`` that rotation is a permutation of the frame's ``hop``-sized
      blocks, so synthesis applies it for free by picking which block of the inverse FFT goes
      where in the overlap-add (fused with the dual-window multiply: one ``addcmul`` per block),
      and analysis applies it by writing the two windowed halves of each frame swapped.
    * ``idgt`` crops to ``length`` and ``dgt`` pads again: equivalent to zeroing the overlap-add
      outside the signal in place, so the padded signal buffer is reused as is.
    * The signal and frame buffers are allocated once. The FFTs allocate their own outputs:
      ``out=`` saves nothing there (torch computes into its own buffer and copies the result).
    """

    def __init__(self, batch: int, n_frames: int, window: Tensor, dual: Tensor, hop: int, length: int,
                 dtype: torch.dtype) -> None:
        n_fft = window.shape[0]
        self.n_fft, self.hop, self.length, self.n_frames = n_fft, hop, length, n_frames
        self.half = n_fft // 2
        self.blocks = n_fft // hop
        # the block trick needs the half-frame rotation to be a whole number of blocks
        self.fast = overlap_add_dual_fused(n_fft, hop)
        device = window.device
        self.window = window.to(device=device, dtype=dtype)
        self.dual = dual.to(device=device, dtype=dtype)
        self.signal = torch.empty(batch, n_frames + self.blocks - 1, hop, dtype=dtype, device=device)
        self.frames = torch.empty(batch, n_frames, n_fft, dtype=dtype, device=device)

    def __call__(self, spec: Tensor) -> Tensor:
        if not self.fast:
            return dgt(idgt(spec, self.dual, self.hop, self.length), self.window, self.hop)
        n_fft, hop, half = self.n_fft, self.hop, self.half
        batch = spec.shape[0]
        # synthesis: rotated inverse FFT blocks, dual-windowed, overlap-added in place
        signal = self.signal
        signal.zero_()
        overlap_add_dual(spec, self.dual, hop, signal)
        flat = signal.view(batch, -1)
        left = n_fft - hop  # pad_for_dgt's left padding: the signal starts there
        flat[:, :left].zero_()
        flat[:, left + self.length :].zero_()
        # analysis: frames of the padded signal, windowed, halves swapped (= rotated by n_fft/2)
        cut = flat.unfold(-1, n_fft, hop)
        torch.mul(cut[..., half:], self.window[half:], out=self.frames[..., :half])
        torch.mul(cut[..., :half], self.window[:half], out=self.frames[..., half:])
        return torch.fft.rfft(self.frames, dim=-1)


def _interleaved(x: Tensor):
    """Flat numpy view of a contiguous CPU complex tensor as (re, im, re, im, ...)."""
    return torch.view_as_real(x).reshape(-1).numpy()


def griffin_lim_consistent(magnitude: Tensor, phase_init: Tensor, window: Tensor, dual: Tensor, hop: int,
                            length: int, n_iter: int, momentum: float) -> Tensor:
    """Fast Griffin-Lim; returns the last consistent estimate ``dgt(idgt(spec))`` (complex,
    ``(..., frames, bins)``), whose angle is :func:`griffin_lim`'s result.

    Per iteration: one consistency projection (two FFTs, see :class:`_ConsistencyProjection`)
    and one fused numba pass for the magnitude projection and the momentum step (CPU; the same
    steps in torch ops elsewhere, or without numba).
    """
    shape = magnitude.shape
    n_frames, n_bins = shape[-2], shape[-1]
    dtype = torch.promote_types(torch.promote_types(magnitude.dtype, window.dtype), dual.dtype)
    mag = magnitude.detach().reshape(-1, n_frames, n_bins).to(dtype).contiguous()
    spec = torch.polar(mag, phase_init.detach().reshape(mag.shape).to(dtype)).contiguous()
    project = _ConsistencyProjection(mag.shape[0], n_frames, window, dual, hop, length, dtype)
    kernel = None
    if mag.device.type == "cpu":
        try:
            from vschaos.dsp._pghi_kernel import gla_project_momentum as kernel
        except ImportError:  # numba missing: the torch path below gives the same result
            kernel = None
    weight = 1.0 + momentum  # spec = current + m (current - previous) = lerp(previous, current, 1 + m)
    np_mag = mag.reshape(-1).numpy() if kernel is not None else None
    previous = spec
    for _ in range(n_iter):
        current = project(spec).contiguous()
        if kernel is not None:
            # current <- mag * sgn(current); previous <- next estimate (previous is free again:
            # the iteration just synthesised from spec, which is the buffer previous held)
            kernel(_interleaved(current), np_mag, _interleaved(previous), np_mag.dtype.type(weight))
        else:
            current = mag * torch.sgn(current)
            previous = torch.lerp(previous, current, weight)
        spec, previous = previous, current
    return project(spec).reshape(shape)


def with_magnitude(spec: Tensor, magnitude: Tensor) -> Tensor:
    """``polar(magnitude, angle(spec))`` (phase 0 where ``spec == 0``) in one pass on CPU
    (numba), instead of an ``atan2`` and a ``sincos`` per coefficient. Shapes ``(..., frames,
    bins)``; returns a new complex tensor of ``spec``'s dtype (offline; not TorchScript)."""
    if spec.device.type == "cpu":
        try:
            from vschaos.dsp._pghi_kernel import project_magnitude
        except ImportError:
            project_magnitude = None
        if project_magnitude is not None:
            real_dtype = spec.real.dtype
            out = spec.detach().clone(memory_format=torch.contiguous_format)
            mag = magnitude.detach().to(real_dtype).expand(spec.shape).contiguous()
            project_magnitude(_interleaved(out), mag.reshape(-1).numpy())
            return out
    return torch.polar(magnitude.to(spec.real.dtype), torch.angle(spec))


def griffin_lim(magnitude: Tensor, phase_init: Tensor, window: Tensor, dual: Tensor, hop: int,
                length: int, n_iter: int = 32, momentum: float = GLA_MOMENTUM) -> Tensor:
    """Fast Griffin-Lim phase refinement (Perraudin, Balazs, Sondergaard, "A fast Griffin-Lim
    algorithm", WASPAA 2013); ``momentum=0`` is plain Griffin-Lim (Griffin & Lim 1984).

    Each iteration: ``X = dgt(idgt(spec))``, ``current = magnitude * X / |X|``,
    ``spec = current + momentum * (current - previous)`` (offline; not TorchScript).

    Args:
        magnitude: target ``(..., frames, bins)``; ``phase_init`` same shape (e.g. from PGHI).
        window, dual: ``(n_fft,)`` analysis window and its dual (projection onto consistent
            spectrograms is ``dgt(idgt(.))``).
        length: signal length in samples (``num_frames(length, n_fft, hop) == frames``).
    Returns:
        phase ``(..., frames, bins)``: the phase of the last consistent estimate.
    """
    return torch.angle(griffin_lim_consistent(magnitude, phase_init, window, dual, hop, length, n_iter, momentum))
