"""Pure, TorchScript-safe signal functions for the Gaussian-window STFT ("DGT"): windows, analysis,
synthesis, contrast and the spectral distances. Phase reconstruction is in :mod:`vschaos.dsp.phase`.

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
    if n_fft % 2 != 0:
        # odd n_fft: (-1)^m is not a whole-sample rotation, multiply the bins
        spec = torch.fft.rfft(frames * window, n=n_fft, dim=-1)
        return spec * centre_phase_sign(n_fft, window.dtype).to(window.device)
    # Centre phase reference = the windowed frame rotated by n_fft/2 before the FFT (the shift
    # theorem: the same as multiplying bin m by (-1)^m; tests/test_dsp.py compares the two).
    # Writing the two windowed halves swapped costs nothing extra, where the sign is one more
    # operation on every spectrum.
    half = n_fft // 2
    if frames.requires_grad or window.requires_grad:  # out= does not support autograd
        return torch.fft.rfft(torch.roll(frames * window, half, -1), n=n_fft, dim=-1)
    rotated = torch.empty(frames.shape, dtype=torch.promote_types(frames.dtype, window.dtype),
                          device=frames.device)
    torch.mul(frames[..., half:], window[half:], out=rotated[..., :half])
    torch.mul(frames[..., :half], window[:half], out=rotated[..., half:])
    return torch.fft.rfft(rotated, n=n_fft, dim=-1)


def idgt_frames(spec: Tensor, dual: Tensor) -> Tensor:
    """Windowed time frames ``(..., frames, n_fft)`` from spectra ``(..., frames, bins)``,
    ready for overlap-add."""
    n_fft = dual.shape[0]
    if n_fft % 2 != 0:
        spec = spec * centre_phase_sign(n_fft, dual.dtype).to(dual.device)
        return torch.fft.irfft(spec, n=n_fft, dim=-1) * dual
    # (-1)^m on the bins = rotating the inverse FFT's frame by n_fft/2 (see dgt_frames)
    half = n_fft // 2
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1)
    if frames.requires_grad or dual.requires_grad:
        return torch.roll(frames, half, -1) * dual
    out = torch.empty(frames.shape, dtype=torch.promote_types(frames.dtype, dual.dtype), device=frames.device)
    torch.mul(frames[..., half:], dual[:half], out=out[..., :half])
    torch.mul(frames[..., :half], dual[half:], out=out[..., half:])
    return out


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


def chunked_frames(audio: Tensor, n_fft: int, hop: int, total: int, analyse, chunk_frames: int = 128,
                   batch_chunks: int = 2) -> Tensor:
    """The first ``total`` frames ``analyse`` gives for ``audio`` ``(time,)`` (frame ``t`` covering the
    DGT-padded ``padded[t*hop : t*hop+n_fft]``), computed on batches of overlapping chunks.

    Chunk ``c`` is the slice of the DGT-padded signal that holds frames ``c*m .. c*m+m-1``
    completely (``m = chunk_frames``); run through ``analyse`` (which pads it again), those
    frames are its rows ``R-1 .. R-1+m-1`` with ``R = n_fft // hop``. Memory stays bounded whatever the
    length, and a frame-wise ``analyse`` gives the whole file's values.
    """
    ratio = n_fft // hop
    padded = pad_for_dgt(audio.reshape(1, -1), n_fft, hop)[0]  # frame t = padded[t*hop : t*hop+n_fft]
    n_chunks = (total + chunk_frames - 1) // chunk_frames
    chunk_len = (chunk_frames + ratio - 1) * hop
    needed = (n_chunks * chunk_frames + ratio - 1) * hop
    padded = torch.nn.functional.pad(padded, (0, needed - padded.shape[0]))
    chunks = padded.unfold(0, chunk_len, chunk_frames * hop)  # (n_chunks, chunk_len), a view
    out = []
    with torch.no_grad():
        for start in range(0, n_chunks, batch_chunks):
            frames = analyse(chunks[start:start + batch_chunks])
            out.append(frames[:, ratio - 1:ratio - 1 + chunk_frames].reshape(-1, frames.shape[-1]))
    return torch.cat(out)[:total]


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
    # n_fft = r * hop: add r shifted block sequences (contiguous additions, cheaper than fold's
    # per-element indexing on many frames; python -m bench.dsp_speed times the inverse DGT).
    r = n_fft // hop
    blocks = frames.reshape(lead + (n_frames, r, hop))
    out = torch.zeros(lead + (n_frames + r - 1, hop), dtype=frames.dtype, device=frames.device)
    for k in range(r):
        out[..., k : k + n_frames, :] += blocks[..., k, :]
    return out.reshape(lead + ((n_frames + r - 1) * hop,))


def overlap_add_dual_fused(n_fft: int, hop: int) -> bool:
    """Whether :func:`overlap_add_dual` applies: the ``n_fft / 2`` rotation (centre phase) is a
    whole number of ``hop``-sized blocks (``n_fft`` even and ``hop`` dividing ``n_fft / 2``)."""
    return n_fft % 2 == 0 and (n_fft // 2) % hop == 0


def overlap_add_dual(spec: Tensor, dual: Tensor, hop: int, out: Tensor) -> Tensor:
    """Synthesis frames of ``spec`` overlap-added into ``out`` in place; returns ``out``.

    ``spec`` complex ``(..., n_frames, bins)``; ``out`` real ``(..., n_frames + r - 1, hop)`` with
    ``r = n_fft // hop``, block ``j`` holding samples ``[j * hop, (j + 1) * hop)`` of the
    overlap-add (frame ``t`` starts at block ``t``); what it already holds (zeros, or a stream's
    pending tail) is added to. Same sum as ``overlap_add(idgt_frames(spec, dual), hop)``, without
    the intermediate frames: the inverse FFT's blocks are picked in rotated order while
    overlap-adding, with the dual window fused in (one ``addcmul`` per block: no windowed frames
    written and read back). Requires :func:`overlap_add_dual_fused` ``(n_fft, hop)``; no autograd
    through ``out``.
    """
    n_fft = dual.shape[0]
    r = n_fft // hop
    n_frames = spec.shape[-2]
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1)
    blocks = frames.reshape(list(frames.shape[:-2]) + [n_frames, r, hop])
    dual_blocks = dual.reshape(r, hop)
    shift = (n_fft // 2) // hop
    for k in range(r):
        out[..., k : k + n_frames, :].addcmul_(blocks[..., (k + shift) % r, :], dual_blocks[k])
    return out


def idgt(spec: Tensor, dual: Tensor, hop: int, length: int) -> Tensor:
    """Inverse of :func:`dgt`: complex ``(..., frames, bins)`` -> ``(..., length)``."""
    n_fft = dual.shape[0]
    if overlap_add_dual_fused(n_fft, hop) and not (spec.requires_grad or dual.requires_grad):
        r = n_fft // hop
        n_frames = spec.shape[-2]
        lead = list(spec.shape[:-2])
        out = torch.zeros(lead + [n_frames + r - 1, hop], dtype=torch.promote_types(spec.real.dtype, dual.dtype),
                          device=spec.device)
        flat = overlap_add_dual(spec, dual, hop, out).reshape(lead + [(n_frames + r - 1) * hop])
        return flat[..., n_fft - hop : n_fft - hop + length]
    frames = idgt_frames(spec, dual)
    out = overlap_add(frames, hop)
    return out[..., n_fft - hop : n_fft - hop + length]


def contrast(magnitude: Tensor, scale: float = 1.0) -> Tensor:
    """Log-compression used as the model's input representation: ``log1p(|X| / scale)``.

    ``scale`` is the magnitude below which the curve turns linear: with the default 1.0 (the original
    ``log1p(|X|)``) that is about -53 dB below a full-scale sine's peak bin, so quiet partials sit in
    the linear part; a smaller scale (``SpectralTransform(log_floor_db=...)``) gives a true log range
    down to it."""
    if scale == 1.0:
        return torch.log1p(magnitude)
    return torch.log1p(magnitude / scale)


def inverse_contrast(features: Tensor, scale: float = 1.0) -> Tensor:
    """Inverse of :func:`contrast`, clamped at zero: ``scale * expm1(max(c, 0))``."""
    if scale == 1.0:
        return torch.expm1(torch.clamp(features, min=0.0))
    return torch.expm1(torch.clamp(features, min=0.0)) * scale


def spectral_convergence(reference_mag: Tensor, estimate_mag: Tensor, eps: float = 1e-12) -> Tensor:
    """``||S - S^||_F / ||S||_F`` over the last two axes ``(..., frames, bins)`` -> ``(...)``.

    Normalised by the reference, never the estimate (as a loss, the estimate would let a model shrink
    it by growing its output); ``eps`` bounds the denominator. The one definition used by the
    training loss, the validation metric (through :func:`spectral_convergence_energies`) and the
    reconstruction metrics.
    """
    num = torch.linalg.vector_norm(reference_mag - estimate_mag, dim=(-2, -1))
    den = torch.linalg.vector_norm(reference_mag, dim=(-2, -1))
    return num / den.clamp_min(eps)


def spectral_convergence_energies(reference_mag: Tensor, estimate_mag: Tensor) -> Tuple[Tensor, Tensor]:
    """``(||S - S^||_F^2, ||S||_F^2)`` over the last two axes: the parts a running total over many
    batches adds up, so that :func:`spectral_convergence` of the whole set is ``sqrt(sum error / sum reference)``."""
    error = (reference_mag - estimate_mag) ** 2
    return error.sum(dim=(-2, -1)), (reference_mag ** 2).sum(dim=(-2, -1))


def log_spectral_distance(reference_mag: Tensor, estimate_mag: Tensor, eps: float = 1e-7) -> Tensor:
    """Log-spectral distance in dB: per frame the RMS over bins of
    ``20 log10((|S| + eps) / (|S^| + eps))``, averaged over frames. ``(..., frames, bins)`` -> ``(...)``."""
    diff = 20.0 * (torch.log10(reference_mag + eps) - torch.log10(estimate_mag + eps))
    return torch.sqrt((diff * diff).mean(dim=-1)).mean(dim=-1)


# follow_level's largest gain (40 dB): a frame the decoder left that far below its reference is raised no further
FOLLOW_MAX_GAIN: float = 100.0


def follow_level(magnitude: Tensor, reference: Tensor, max_gain: float = FOLLOW_MAX_GAIN, eps: float = 1e-12
                 ) -> Tensor:
    """``magnitude`` ``(..., bins)`` with each frame scaled to the energy of the same frame of ``reference``
    (same shape; real magnitudes or the complex spectrum): ``magnitude * ||reference|| / ||magnitude||`` over the
    bins, the gain at most ``max_gain`` (a frame the decoder left near silent is not raised from its noise floor by
    more) and 0 where ``reference`` is silent. The spectral shape stays the decoder's; the level is the input's,
    frame by frame, so a model cannot come out quieter or louder than what is played into it."""
    gain = torch.linalg.vector_norm(reference, dim=-1, keepdim=True) \
        / torch.linalg.vector_norm(magnitude, dim=-1, keepdim=True).clamp_min(eps)
    return magnitude * gain.clamp_max(max_gain)


def follow_floor(reference: Tensor, max_gain: float = FOLLOW_MAX_GAIN) -> Tensor:
    """The least energy ``(..., 1)`` a frame needs for :func:`follow_level` to bring it to the energy of the same
    frame of ``reference`` ``(..., bins)`` (real magnitudes): that energy over ``max_gain`` squared."""
    return (reference * reference).sum(dim=-1, keepdim=True) / (max_gain * max_gain)
