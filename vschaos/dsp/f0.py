"""Frame-wise fundamental frequency from a Gaussian-window DGT magnitude: scriptable, no learned weights.

Two stages, both on one magnitude frame ``(batch, bins)``:

1. **Subharmonic summation** (Hermes 1988) over the frame's spectral peaks: each candidate f0 on a grid
   (1/4 semitone, or half a bin where that is finer, from 30 Hz to 2 kHz) scores ``sum_k decay^(k-1) * read_k``.
   ``read_k`` is the height of a peak (a local maximum of the log-compressed magnitude, relative to the
   frame's own maximum so the level does not matter, above a floor) near ``k f0``: in one of its two bins,
   times ``1 - d`` for ``d`` how far the bin lies from ``k f0`` beyond the distance by which the grid and a
   partial's own wobble may miss it (in full within that), or, for the upper harmonics that the grid
   may miss by more than a bin, anywhere within that reach (``subharmonic_taps``). Reading peaks, not the
   spectrum, keeps the flanks of one partial from feeding every harmonic of a deep subharmonic; weighting
   by the distance makes the candidate nearest the partials win over its neighbours, even for a sinusoid.
   Each candidate reads its own fixed taps (gathers and a sum per frame, not a matrix product: BLAS
   sums in an order that depends on the batch size, and a near-tie between two candidates would then
   pick another f0 offline than when streaming one frame at a time).
   Decaying weights make the true f0 outscore its sub-octave (which collects the same even harmonics
   with smaller weights) and its octave (which misses the odd ones).
2. **Refinement**: near each of the first harmonics of the winner (within about half a bin of the partials),
   the largest bin and its two neighbours give the peak's position by parabolic interpolation of the log magnitude, which is exact
   for a stationary sinusoid under a Gaussian window (its spectrum is a Gaussian, a parabola in log).
   The f0 is the least-squares fit of those positions to ``k * f0``, weighted by the peaks' amplitudes.

A frame without a pitch (silence, noise) still gets an f0 (the best candidate); a model reading it
learns what the rest of the spectrum says about it.
"""
import json
import math
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from vschaos.dsp.functional import chunked_frames, num_frames

#: bump when the f0 read from a frame changes: spectral caches that store f0s (``data/cache.py``) rebuild
TRACKER_VERSION: int = 1
#: compressed magnitudes are ``log1p(|X| / (RELATIVE_FLOOR * frame peak))``: ~-60 dB under the peak counts
RELATIVE_FLOOR: float = 1.0e-3
#: peaks less than this far above the floor (compressed units; a full-scale partial is ~7) do not count
PEAK_MIN_HEIGHT: float = 1.0e-3
#: bins by which a harmonic may miss a partial and still read it in full (:func:`subharmonic_taps`)
READ_TOLERANCE: float = 0.15
#: half-widths in bins to which peaks are widened for harmonics that the candidate grid may miss by more
PEAK_WIDTHS: Tuple[int, ...] = (0, 1, 2, 4, 8)


def f0_candidates(fmin: float, fmax: float, steps_per_semitone: int, max_step_hz: float = math.inf) -> Tensor:
    """Candidate frequencies in Hz from ``fmin`` up to the first one at or above ``fmax``: ``(candidates,)``.
    Consecutive candidates are ``1 / steps_per_semitone`` semitone apart, or ``max_step_hz`` where that is
    closer (high up, at fine frequency resolution)."""
    if not 0 < fmin < fmax:
        raise ValueError(f"f0 range must satisfy 0 < fmin < fmax, got fmin={fmin}, fmax={fmax}")
    if steps_per_semitone < 1:
        raise ValueError(f"steps_per_semitone must be >= 1, got {steps_per_semitone}")
    if not max_step_hz > 0:
        raise ValueError(f"max_step_hz must be > 0, got {max_step_hz}")
    ratio = 2.0 ** (1.0 / (12.0 * steps_per_semitone))
    values = [float(fmin)]
    while values[-1] < fmax:
        values.append(min(values[-1] * ratio, values[-1] + max_step_hz))
    return torch.tensor(values, dtype=torch.float64).float()


def subharmonic_taps(candidates: Tensor, n_bins: int, bin_hz: float, n_harmonics: int = 12, decay: float = 0.84,
                     widths: Sequence[int] = PEAK_WIDTHS,
                     tolerance: float = READ_TOLERANCE) -> Tuple[Tensor, Tensor]:
    """Where and how much each candidate reads: ``(index, weight)``, each ``(2, candidates, n_harmonics)``;
    ``index`` addresses the peaks widened to each of ``widths`` (half-widths in bins, the first 0), laid end
    to end: ``width_level * n_bins + bin``.

    Harmonic ``k`` of candidate ``c`` lies at fractional bin ``p = k c / bin_hz``, up to ``reach = k`` times half
    the grid step from a partial that the grid's nearest candidate stands for. Where that is under a bin, it
    reads its lower bin ``floor(p)`` with weight ``decay^(k-1) * min(1, 1 + t - frac(p))`` and its upper bin
    with ``decay^(k-1) * min(1, frac(p) + t)`` (the salience takes the larger: a candidate whose harmonics lie
    nearer the partials wins), for ``t = max(reach, tolerance)``: a partial within that distance of where
    the candidate expects it reads in full. Without ``t`` the true f0's upper harmonics, read from between
    two grid points, lose up to half their weight while the octave above may fall on the grid, and a bright
    sawtooth read an octave high; ``tolerance`` covers partials a little off ``k f0`` (a glide or vibrato
    within the window, a voice's jitter). It fades in from 2 to 4 bins between harmonics (under 2, two
    harmonics would read one partial). Where ``reach`` is a bin or more, harmonic ``k`` reads bin ``round(p)`` of the
    peaks widened to the largest width within reach, with weight ``decay^(k-1)``, but never wider than a
    quarter of the harmonics' spacing (so that no two harmonics read the same partial). Harmonics beyond
    the last bin read nothing."""
    if n_harmonics < 1 or not 0 < decay <= 1:
        raise ValueError(f"need n_harmonics >= 1 and 0 < decay <= 1, got {n_harmonics}, {decay}")
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must lie in [0, 1) bins, got {tolerance}")
    if len(widths) == 0 or widths[0] != 0 or any(b <= a for a, b in zip(widths, widths[1:])):
        raise ValueError(f"widths must start at 0 and increase, got {list(widths)}")
    c = candidates.double()
    steps = torch.diff(c, append=2 * c[-1:] - c[-2:-1] if len(c) > 1 else c[-1:])  # the last repeats its step
    k = torch.arange(1, n_harmonics + 1, dtype=torch.float64)
    position = c.unsqueeze(-1) * k / bin_hz  # (candidates, K)
    reach = (k * 0.5 * steps.unsqueeze(-1) / bin_hz).minimum((c / bin_hz / 4).unsqueeze(-1))
    level = torch.zeros_like(position, dtype=torch.long)
    for i, width in enumerate(widths[1:], start=1):
        level = torch.where(reach >= width, torch.full_like(level, i), level)
    lower = position.floor()
    frac = position - lower
    weight = decay ** (k - 1) * (lower + 1 < n_bins).double()
    exact = level == 0
    nearest = position.round().clamp(0, n_bins - 1)
    lower_index = torch.where(exact, lower.clamp(0, n_bins - 1), nearest) + level * n_bins
    upper_index = torch.where(exact, (lower + 1).clamp(0, n_bins - 1), nearest) + level * n_bins
    spacing = c.unsqueeze(-1) / bin_hz  # bins between harmonics
    t = torch.maximum(reach, tolerance * ((spacing - 2) / 2).clamp(0, 1))
    lower_weight = torch.where(exact, weight * (1 + t - frac).clamp(max=1), weight)
    upper_weight = torch.where(exact, weight * (frac + t).clamp(max=1), torch.zeros_like(weight))
    return torch.stack([lower_index, upper_index]).long(), torch.stack([lower_weight, upper_weight]).float()


def widened_peaks(peaks: Tensor, widths: List[int]) -> Tensor:
    """``peaks (batch, bins)``, none below zero (:func:`harmonic_peaks`), max-pooled over ``+-width`` bins for each
    of ``widths`` (0 = as is, the first), laid end to end: ``(batch, len(widths) * bins)``."""
    if len(widths) == 1:
        return peaks
    widest = widths[-1]
    # one strided view of every bin's neighbourhood at the widest width, each width the maximum over its middle:
    # a few operations per streamed frame, not a max-pool per width. Padding with zeros reads like max-pooling's
    # padding, as no peak lies below zero.
    windows = torch.nn.functional.pad(peaks, (widest, widest)).unfold(-1, 2 * widest + 1, 1)
    levels = [peaks]
    for width in widths[1:]:
        around = windows if width == widest else windows.narrow(-1, widest - width, 2 * width + 1)
        levels.append(around.amax(dim=-1))
    return torch.cat(levels, dim=-1)


def compressed_magnitude(magnitude: Tensor, relative_floor: float = RELATIVE_FLOOR) -> Tensor:
    """``log1p(|X| / (relative_floor * peak))`` per frame, ``(batch, bins)``: level-independent, ~0 in silence."""
    peak = magnitude.amax(dim=-1, keepdim=True)
    return torch.log1p(magnitude / (relative_floor * peak + 1e-12))


def harmonic_peaks(compressed: Tensor, min_height: float = PEAK_MIN_HEIGHT) -> Tensor:
    """The peaks of compressed magnitude frames ``(batch, bins)``: at each local maximum, how far it rises
    above the frame's mean plus one standard deviation (a floor that most noise peaks stay under); zero
    elsewhere. Reading peaks, not the spectrum, keeps the flanks of one partial (a Gaussian window's peak
    spans ~5 bins above -60 dB, and leakage spreads further) from feeding every harmonic of a deep
    subharmonic: reading them, even a pure sine could come out octaves low."""
    floor = compressed.mean(dim=-1, keepdim=True) + compressed.std(dim=-1, keepdim=True)
    # the floor's last bits depend on the batch size (reduction order): on a flat frame (a click) every bin
    # sits on it, and rounding would make "peaks" that differ between a streamed call and an offline one.
    # threshold: the level where above min_height, else 0 (one operation)
    level = torch.nn.functional.threshold(compressed - floor, min_height, 0.0)
    inner = level.narrow(-1, 1, level.shape[-1] - 2)
    is_peak = (inner >= level.narrow(-1, 0, inner.shape[-1])) & (inner > level.narrow(-1, 2, inner.shape[-1]))
    return torch.nn.functional.pad(inner * is_peak, (1, 1))


def refine_f0(magnitude: Tensor, coarse_hz: Tensor, bin_hz: float, n_harmonics: int = 8) -> Tensor:
    """Refined f0 ``(batch,)`` in Hz from ``coarse_hz`` ``(batch,)`` (its first harmonic within about half a bin
    of the partial): the amplitude-weighted least-squares fit of ``k * f0`` to the parabolically interpolated
    peaks of harmonics ``1..n_harmonics`` (those below the last bin but one). Falls back to ``coarse_hz`` when
    no harmonic peak is found or the fit moves by more than a semitone or 0.75 bin, whichever is more."""
    harmonics = torch.arange(1, n_harmonics + 1, dtype=magnitude.dtype, device=magnitude.device)
    return _refine(magnitude, coarse_hz, bin_hz, harmonics, torch.arange(-1, 2, device=magnitude.device))


def _refine(magnitude: Tensor, coarse_hz: Tensor, bin_hz: float, harmonics: Tensor, offsets: Tensor) -> Tensor:
    """:func:`refine_f0` with its constants given (:class:`HarmonicF0` keeps them as buffers, so that a streamed
    frame builds none): ``harmonics`` ``1..n_harmonics`` (float; any float dtype reads the same, as every
    operation on it also reads a tensor in ``magnitude``'s dtype), ``offsets`` ``[-1, 0, 1]`` (int64). Written for
    few operations per call, each giving the very bits of the plain formulas (comments)."""
    n_bins = magnitude.shape[-1]
    expected = coarse_hz.unsqueeze(-1) * harmonics / bin_hz  # (batch, K) fractional bins
    rounded = expected.round().long()
    centre = rounded.clamp(2, n_bins - 3)
    valid = centre == rounded  # 2 <= rounded <= n_bins - 3
    # the largest of the three bins around the expected position, then a parabola through it and its neighbours;
    # both read from one broadcast view of the frames (batch, K, bins)
    frames = magnitude.unsqueeze(1).expand(-1, centre.shape[1], -1)
    window = frames.gather(2, centre.unsqueeze(-1) + offsets)
    peak = centre + window.argmax(dim=-1) - 1
    triple = frames.gather(2, peak.unsqueeze(-1) + offsets)
    left, middle, right = torch.log(triple + 1e-12).unbind(-1)
    curvature = left - 2 * middle + right
    is_peak = (middle >= torch.maximum(left, right)) & (curvature < 0)  # middle >= left and middle >= right
    # the vertex; where there is no peak it is only kept finite: its weight is 0 there, so its product (a +0,
    # since positions are positive) sums as a zeroed delta's would
    delta = (0.5 * (left - right) / torch.where(is_peak, curvature, -1.0)).clamp(-0.5, 0.5)
    position = peak + delta  # the int64 peak promoted to delta's dtype: peak.to(dtype) + delta
    weight = triple.select(-1, 1) * (valid & is_peak)  # the bool promoted: 1.0 or +0.0
    # least squares of position_k = k * f0 / bin_hz, each harmonic weighted by its amplitude
    weighted_k = weight * harmonics
    numerator = (weighted_k * position).sum(-1)
    denominator = (weighted_k * harmonics).sum(-1)
    fitted = numerator / denominator.clamp_min(1e-30) * bin_hz
    ratio = fitted / coarse_hz
    # the coarse f0 may sit up to half a bin from the partials (a lone sine's peak is read from its bin):
    # at low f0 that is more than a semitone
    tolerance = torch.clamp(0.75 * bin_hz / coarse_hz, min=2 ** (1 / 12) - 1)
    ok = (denominator > 0) & ((ratio - 1).abs() < tolerance)
    return torch.where(ok, fitted, coarse_hz)


class HarmonicF0(nn.Module):
    """f0 of each DGT magnitude frame (see the module docstring): ``(batch, bins)`` -> ``(batch,)`` Hz.

    Args: ``n_fft``, ``sample_rate`` of the transform; ``fmin``/``fmax`` [30, 2000] Hz;
    ``steps_per_semitone`` of the candidate grid [4] (never coarser than half a bin); ``n_harmonics`` summed [12]
    with weights
    ``decay^(k-1)`` [0.84]; ``refine_harmonics`` fitted [8]. The result lies within ``[fmin, fmax]``. The taps are
    rebuilt from these (non-persistent buffers: checkpoints do not carry them)."""

    bin_hz: float
    widths: List[int]
    refine_harmonics: int
    fmin: float
    fmax: float
    settings: str

    def __init__(self, n_fft: int, sample_rate: int, fmin: float = 30.0, fmax: float = 2000.0,
                 steps_per_semitone: int = 4, n_harmonics: int = 12, decay: float = 0.84, refine_harmonics: int = 8):
        super().__init__()
        if fmax >= sample_rate / 2:
            raise ValueError(f"fmax ({fmax} Hz) must lie below the Nyquist frequency ({sample_rate / 2} Hz)")
        if refine_harmonics < 1:
            raise ValueError(f"refine_harmonics must be >= 1, got {refine_harmonics}")
        self.bin_hz = float(sample_rate) / float(n_fft)
        self.refine_harmonics = int(refine_harmonics)
        # everything the f0 of a frame depends on, as JSON text (a TorchScript-friendly attribute): cache_key
        self.settings = json.dumps({"tracker": "HarmonicF0", "version": TRACKER_VERSION, "n_fft": int(n_fft),
                                    "sample_rate": int(sample_rate), "fmin": float(fmin), "fmax": float(fmax),
                                    "steps_per_semitone": int(steps_per_semitone), "n_harmonics": int(n_harmonics),
                                    "decay": float(decay), "refine_harmonics": int(refine_harmonics)},
                                   sort_keys=True)
        self.fmin, self.fmax = float(fmin), float(fmax)
        # a candidate's first harmonic may lie up to a quarter bin from a partial: the grid is never coarser
        # than half a bin (at 8192 points, a quarter semitone spans several bins above ~400 Hz)
        candidates = f0_candidates(fmin, fmax, steps_per_semitone, max_step_hz=0.5 * self.bin_hz)
        self.register_buffer("candidates", candidates, persistent=False)
        index, weight = subharmonic_taps(candidates, n_fft // 2 + 1, self.bin_hz, n_harmonics, decay, PEAK_WIDTHS)
        # widen the peaks only as far as some tap reads (the half-bin grid keeps 12 harmonics within 3 bins):
        # each width is a max-pool over every frame, streamed calls included
        self.widths = list(PEAK_WIDTHS[:int(index.max()) // (n_fft // 2 + 1) + 1])
        self.register_buffer("tap_index", index.flatten(), persistent=False)
        self.register_buffer("tap_weight", weight, persistent=False)
        # refine_f0's constants, built once rather than on every frame
        self.register_buffer("refine_numbers", torch.arange(1, self.refine_harmonics + 1, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("refine_offsets", torch.arange(-1, 2), persistent=False)

    @torch.jit.unused
    def cache_key(self) -> Dict[str, object]:
        """Plain values that define the f0 this tracker reads from a frame (for caches of f0s)."""
        return json.loads(self.settings)

    def salience(self, magnitude: Tensor) -> Tensor:
        """Subharmonic sums ``(batch, candidates)`` of magnitude frames ``(batch, bins)``; each frame's sums are
        the same whatever the batch (see the module docstring)."""
        peaks = widened_peaks(harmonic_peaks(compressed_magnitude(magnitude)), self.widths)
        # the float32 weights promoted to the peaks' dtype (exact), as converting them first would;
        # amax over the lower and upper reads: their maximum
        reads = peaks.index_select(1, self.tap_index).view(
            [magnitude.shape[0]] + list(self.tap_weight.shape)) * self.tap_weight
        return reads.amax(dim=1).sum(dim=-1)

    def forward(self, magnitude: Tensor) -> Tensor:
        coarse = self.candidates.index_select(0, self.salience(magnitude).argmax(dim=-1))
        if coarse.dtype != magnitude.dtype:  # a conversion to the same dtype would still be an operation
            coarse = coarse.to(magnitude.dtype)
        return _refine(magnitude, coarse, self.bin_hz, self.refine_numbers, self.refine_offsets).clamp(
            self.fmin, self.fmax)


def window_f0(transform, tracker: nn.Module, audio: Tensor, chunk_frames: int = 128, batch_chunks: int = 2) -> Tensor:
    """The f0 in Hz ``(frames,)`` of each frame of ``transform`` (a :class:`~vschaos.dsp.transforms.SpectralTransform`)
    for a whole sound ``(time,)``: ``tracker`` reading ``transform.pitch_magnitude``, computed ``chunk_frames`` frames
    at a time (:func:`~vschaos.dsp.functional.chunked_frames`: bounded memory, the whole sound's values)."""
    window, hop = int(transform.pitch_window or transform.n_fft), int(transform.hop)
    total = num_frames(audio.shape[-1], int(transform.n_fft), hop)

    def f0_of(chunks: Tensor) -> Tensor:  # (chunks, time) -> (chunks, frames, 1)
        magnitude = transform.pitch_magnitude(chunks)
        return tracker(magnitude.reshape(-1, magnitude.shape[-1])).reshape(magnitude.shape[:-1] + (1,))
    return chunked_frames(audio, window, hop, total, f0_of, chunk_frames, batch_chunks).reshape(-1)
