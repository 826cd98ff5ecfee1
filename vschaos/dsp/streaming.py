"""Streaming (buffer-by-buffer) DGT analysis, overlap-add synthesis and real-time phase.

Every module here holds its state in registered buffers with one row per batch element, carries
it between calls, re-initialises it when the batch size changes, and has ``reset()``. All of them
are TorchScript-safe; they are scripted inside the nn~ export (``vschaos.export``).

Frame convention (``vschaos.dsp.functional``): frame ``t`` covers samples
``[t * hop - (n_fft - hop), t * hop + hop)``. A stream therefore emits frame ``t`` as soon as the
``t``-th hop of input has arrived, with no look-ahead: :class:`StreamingAnalysis` returns, for
``k`` hops of input, exactly the ``k`` frames the offline :func:`functional.dgt` gives for those
positions. :class:`StreamingSynthesis` overlap-adds frames with the dual window and outputs a
sample once every frame that overlaps it has arrived, i.e. with a delay of ``n_fft - hop``
samples with respect to offline :func:`functional.idgt`.

Real-time phase: :class:`RTPGHI` implements real-time phase-gradient heap integration with zero
look-ahead (Prusa & Holighaus, "Phase vocoder done right", EUSIPCO 2017), in a heap-free form
that is vectorised over bins (see the class docstring).
"""
from typing import List, Optional

import math

import torch
from torch import Tensor, nn

from vschaos.dsp import functional as dsp
from vschaos.dsp.phase import bin_phase_advance, phase_frequency_derivative_factor, phase_time_derivative


def in_dtype(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` in ``dtype``, converted only where it is another: a streamed call pays a dispatch for every
    tensor operation, a conversion to the same dtype included."""
    return x if x.dtype == dtype else x.to(dtype)


def wrap_phase(phase: Tensor) -> Tensor:
    """Wrap radians into ``[-pi, pi)`` (any shape)."""
    return torch.remainder(phase + math.pi, 2.0 * math.pi) - math.pi


def _init_hop_stream(module: nn.Module, window_name: str, window: Tensor, state_name: str, hop: int) -> None:
    """Setup shared by the streaming analysis and synthesis (Python only, runs in ``__init__``):
    checks the sizes, sets ``hop``/``n_fft``, stores ``window`` and an empty ``(0, n_fft - hop)``
    state buffer (sized on the first call, when the batch size is known)."""
    n_fft = int(window.shape[0])
    if hop <= 0 or n_fft % hop != 0:
        raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop ({hop})")
    module.hop = int(hop)
    module.n_fft = n_fft
    module.register_buffer(window_name, window.detach().clone())
    module.register_buffer(state_name, torch.zeros(0, n_fft - int(hop), dtype=window.dtype))
    # (-1)^m per bin: the frame-centre phase reference in one multiplication of the spectrum (see forward)
    module.register_buffer("centre_sign", dsp.centre_phase_sign(n_fft, window.dtype))


def _check_hop_multiple(length: int, hop: int, what: str) -> None:
    if length % hop != 0:
        raise ValueError(f"{what}: {length} samples is not a multiple of the hop size {hop}")


class StreamingAnalysis(nn.Module):
    """Causal DGT analysis of a stream: each call takes ``k * hop`` new samples per batch row and
    returns the ``k`` complex frames that end inside them.

    Args:
        window: analysis window ``(n_fft,)`` (the transform's Gaussian window; copied to a buffer).
        hop: hop size in samples; ``n_fft`` must be a multiple of it.

    State: buffer ``history`` ``(batch, n_fft - hop)``, the last input samples (zeros at start,
    which is the offline transform's left padding). Input ``(batch, time)`` with ``time`` a
    multiple of ``hop`` -> complex ``(batch, time // hop, bins)``, equal frame for frame to
    ``functional.dgt`` of the concatenated stream.
    """

    hop: int
    n_fft: int

    def __init__(self, window: Tensor, hop: int) -> None:
        super().__init__()
        _init_hop_stream(self, "window", window, "history", hop)

    @torch.jit.export
    def reset(self) -> None:
        """Forget the stream (next call starts from silence)."""
        self.history = torch.zeros(0, self.n_fft - self.hop, dtype=self.window.dtype,
                                   device=self.window.device)

    def forward(self, audio: Tensor) -> Tensor:
        """``(batch, time)`` -> complex ``(batch, time // hop, n_fft // 2 + 1)``."""
        # dsp.dgt_frames rotates each windowed frame by n_fft / 2 instead, which is cheaper for the many frames
        # of an offline call; a stream's few frames pay per operation, and this is 3 of them instead of 9.
        return self.start_referenced(audio) * self.centre_sign

    @torch.jit.export
    def start_referenced(self, audio: Tensor) -> Tensor:
        """:meth:`forward` (and its state update) without its last step, the move of the phase reference from
        each frame's start to its centre (a sign per bin): the same magnitudes, for a caller that reads no
        phase (one operation less per call). ``forward``'s result is this times ``centre_sign``."""
        _check_hop_multiple(audio.shape[-1], self.hop, "StreamingAnalysis")
        batch = audio.shape[0]
        if self.history.shape[0] != batch:
            self.history = torch.zeros(batch, self.n_fft - self.hop, dtype=audio.dtype, device=audio.device)
        stream = torch.cat([self.history, audio], dim=-1)
        keep = self.n_fft - self.hop
        # a view, not a copy: every call's stream is a new tensor that nothing writes into (narrow: one
        # operation, where [:, a:] dispatches two)
        self.history = stream.narrow(1, stream.shape[-1] - keep, keep)
        frames = stream.unfold(-1, self.n_fft, self.hop)  # (batch, time // hop, n_fft)
        return torch.fft.rfft(frames * self.window, dim=-1)


#: StreamingSynthesis overlap-adds up to this many frames with one ``fold`` (more: block additions)
FOLD_MAX_FRAMES: int = 8


class StreamingSynthesis(nn.Module):
    """Overlap-add synthesis of a stream of complex frames with the dual window.

    Args:
        dual: synthesis window ``(n_fft,)`` (``functional.dual_window`` of the analysis window).
        hop: hop size in samples.

    State: buffer ``tail`` ``(batch, n_fft - hop)``, the part of the overlap-add not complete yet.
    Each call takes ``k`` frames and returns ``k * hop`` samples. Output sample ``n`` of the
    stream equals sample ``n - delay`` of offline ``functional.idgt`` of all frames, with
    ``delay = n_fft - hop`` (attribute ``delay``): a sample is emitted once all ``n_fft / hop``
    frames that overlap it have arrived, so the result is exact, not truncated.

    With ``frame_order=True`` every output sample is summed frame after frame, starting from the kept tail,
    so the same frames give the same bits however they are split into calls (a stream with no input, such as
    the prior's ``generate``, promises that); by default a call's frames are summed first (fewer operations),
    which agrees to float rounding.
    """

    hop: int
    n_fft: int
    delay: int
    fold_max_frames: int
    frame_order: bool

    def __init__(self, dual: Tensor, hop: int, frame_order: bool = False) -> None:
        super().__init__()
        _init_hop_stream(self, "dual", dual, "tail", hop)
        self.delay = self.n_fft - self.hop
        self.fold_max_frames = FOLD_MAX_FRAMES  # an attribute: scripted code cannot read module globals
        self.frame_order = bool(frame_order)

    @torch.jit.export
    def reset(self) -> None:
        """Forget the stream (drops the pending overlap-add tail)."""
        self.tail = torch.zeros(0, self.n_fft - self.hop, dtype=self.dual.dtype, device=self.dual.device)

    def forward(self, spec: Tensor) -> Tensor:
        """Complex ``(batch, frames, bins)`` -> ``(batch, frames * hop)``."""
        # (-1)^m on the bins moves the phase reference back from the frame centre to its start
        frames = torch.fft.irfft(spec * self.centre_sign, n=self.n_fft, dim=-1) * self.dual
        return self.overlap_add_frames(frames)

    def overlap_add_frames(self, frames: Tensor) -> Tensor:
        """Dual-windowed time frames ``(batch, frames, n_fft)`` -> ``(batch, frames * hop)``."""
        batch = frames.shape[0]
        n_frames = frames.shape[1]
        keep = self.n_fft - self.hop
        if self.tail.shape[0] != batch:
            self.tail = torch.zeros(batch, keep, dtype=frames.dtype, device=frames.device)
        length = (n_frames - 1) * self.hop + self.n_fft
        if self.frame_order:
            summed = torch.cat([self.tail.to(frames.dtype), frames.new_zeros(batch, length - keep)], dim=1)
            for i in range(n_frames):  # tail + frame 0 + frame 1 ...: the order of the whole stream
                start = i * self.hop
                summed[:, start:start + self.n_fft].add_(frames[:, i])
            emitted = n_frames * self.hop
            self.tail = summed[:, emitted:].clone()
            return summed[:, :emitted]
        if n_frames <= self.fold_max_frames:
            # a buffer's few frames pay per operation: one fold costs less than n_fft / hop block additions, and
            # sums in the same order; many frames favour the additions (python -m bench.export_speed times calls)
            summed = torch.nn.functional.fold(frames.transpose(1, 2), output_size=(1, length),
                                              kernel_size=(1, self.n_fft), stride=(1, self.hop)).reshape(batch, length)
        else:
            summed = dsp.overlap_add(frames, self.hop)  # (batch, (frames - 1) * hop + n_fft)
        summed.narrow(1, 0, keep).add_(in_dtype(self.tail, summed.dtype))
        emitted = n_frames * self.hop
        # two views of this call's new sum that never overlap: the tail is kept without a copy
        self.tail = summed.narrow(1, emitted, keep)
        return summed.narrow(1, 0, emitted)


#: two log-magnitudes closer than this (nepers, ~0.001 dB) count as equal when finding peaks
PEAK_TIE_NEPERS: float = 1.0e-4


def peak_anchors(log_mag: Tensor, tie: float = PEAK_TIE_NEPERS, index: Optional[Tensor] = None) -> Tensor:
    """Index of the spectral peak each bin is integrated from, ``(..., bins)`` -> int64 same shape.

    A bin is a peak when neither neighbour exceeds it by more than ``tie`` nepers (outside the
    spectrum counts as ``-inf``). The tolerance makes a flat stretch (a decoder output at one of its
    bounds) all peaks whatever the float rounding: with an exact comparison, rounding differences of
    1e-7 between a streamed and an offline call made some of its bins walk to a neighbour instead,
    and the output differ between buffer sizes. Every other bin walks uphill to its larger neighbour, then on in that direction,
    until it reaches a peak: between two peaks the spectrum is valley-shaped, so the walk is
    monotone and ends at the next peak to the right or the previous one to the left. This is the
    order in which a max-heap reaches the bins of a frame from its peaks (PGHI's heap pops the
    larger neighbour first), computed with cumulative max/min instead of a heap.

    Anchors are always valid indices in ``[0, bins - 1]``, even for non-finite input (a NaN row
    has no peak at all), so that ``gather`` on them cannot fail in a host's audio thread.

    ``index``: ``torch.arange(bins)`` (int64) when the caller keeps one, else made here.
    """
    n_bins = log_mag.shape[-1]
    padded = torch.nn.functional.pad(log_mag, [1, 1], value=-math.inf)  # each bin's neighbours, -inf outside
    left = padded.narrow(-1, 0, n_bins)
    right = padded.narrow(-1, 2, n_bins)
    raised = log_mag + tie
    is_peak = (raised >= left) & (raised >= right)
    if index is None:
        index = torch.arange(n_bins, device=log_mag.device)
    # at a peak both walks end on the bin itself, so one choice between them gives every anchor
    previous_peak = torch.cummax(torch.where(is_peak, index, -1), dim=-1).values
    next_peak = torch.flip(torch.cummin(torch.flip(torch.where(is_peak, index, n_bins), [-1]), dim=-1).values, [-1])
    anchors = torch.where(right > left, next_peak, previous_peak)
    # NaN compares False everywhere, leaving the -1 / n_bins "no peak" sentinels: clamp them.
    return anchors.clamp(0, n_bins - 1)


def frequency_integral(dphi_freq: Tensor, scale: float = 1.0) -> Tensor:
    """Trapezoidal running integral of the per-bin phase advance ``scale * dphi_freq`` ``(..., bins)`` -> same
    shape, zero at bin 0: ``C[m] = scale * sum_{k < m} (d[k] + d[k + 1]) / 2``. ``C[m] - C[a]`` is the phase
    change from bin ``a`` to bin ``m`` along frequency (either direction). ``scale`` lets a caller fold its
    own constant factor into the one multiplication here."""
    steps = (dphi_freq[..., 1:] + dphi_freq[..., :-1]) * (0.5 * scale)
    return torch.nn.functional.pad(torch.cumsum(steps, dim=-1), [1, 0])


def stream_log_magnitude(magnitude: Tensor, floor_db: float = -120.0) -> Tensor:
    """Natural log of a streamed magnitude ``(..., bins)``, floored ``floor_db`` below each
    frame's peak (and at 1e-12 absolute) so that zeros give finite slopes."""
    peak = magnitude.amax(dim=-1, keepdim=True)
    floor = peak * (10.0 ** (floor_db / 20.0)) + 1e-12
    return torch.log(torch.maximum(magnitude, floor))


class RTPGHI(nn.Module):
    """Real-time phase-gradient heap integration, zero look-ahead, vectorised over bins.

    Prusa & Holighaus, "Phase vocoder done right", EUSIPCO 2017 (RTPGHI); phase gradient of the
    Gaussian window from Prusa, Balazs & Sondergaard, IEEE/ACM TASLP 2017 (PGHI), computed with
    ``phase.phase_time_derivative`` / ``phase.phase_frequency_derivative``.

    For each new frame ``n`` (magnitude only, nothing from the future):

    * phase advance per frame ``dt_n`` from the frequency slope of ``log|S_n|``; phase advance
      per bin ``df_n`` from the time slope of ``log|S|`` at frame ``n`` estimated from frames
      ``n, n-1, n-2`` (second-order backward difference: no look-ahead; on glides it is much
      closer to the centred difference of offline PGHI than the first-order one);
    * peaks of ``|S_n|`` (bins not smaller than their neighbours) integrate in time from the
      previous frame with the trapezoidal rule, ``phi_n = phi_{n-1} + (dt_{n-1} + dt_n) / 2``;
    * every other bin integrates in frequency (trapezoidal cumulative sum of ``df_n``) from the
      peak that its uphill walk reaches (:func:`peak_anchors`).

    This is the order in which RTPGHI's heap visits a frame when its peaks are reached from the
    previous frame (stationary and slowly varying partials, the harmonic case), without a heap:
    anchors and integrals are computed for all frames of a call at once, and the loop over
    frames is three vector operations per frame (gather, add, wrap).

    Cost: the exports call this on every buffer, where each tensor operation has a fixed cost that outweighs
    its arithmetic on a buffer's few frames, so the code counts operations: constants fold into one
    multiplication, the phase is carried as ``phase + pi`` (one ``remainder`` wraps it), and the steps into
    it are wrapped only there.

    Args:
        n_fft, hop: the DGT's sizes; lam: the Gaussian window's ``lambda`` in samples^2
            (``functional.gaussian_lambda``).
    State (buffers, one row per batch element): ``prev_log_mags`` ``(batch, 2, bins)`` (the two previous
    frames' log-magnitudes, oldest first), ``prev_dphi_time`` ``(batch, 1, bins)``, ``prev_shifted_phase``
    ``(batch, 1, bins)`` (the previous frame's phase plus pi, in ``[0, 2 pi)``). The first frame after a reset
    starts from phase 0 at its peaks. ``forward``: magnitude ``(batch, frames, bins)`` -> phase, same shape.
    Non-finite magnitudes count as 0 and the state stays finite: the phase is carried for ever, so one
    NaN in it would otherwise silence the stream until a reset.
    """

    n_fft: int
    hop: int
    n_bins: int
    lam: float

    def __init__(self, n_fft: int, hop: int, lam: float) -> None:
        super().__init__()
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        self.n_bins = self.n_fft // 2 + 1
        self.lam = float(lam)
        self.register_buffer("bin_advance", bin_phase_advance(self.n_fft, self.hop).float())
        self.register_buffer("bin_index", torch.arange(self.n_bins), persistent=False)  # peak_anchors' index
        self.register_buffer("prev_log_mags", torch.zeros(0, 2, self.n_bins))
        self.register_buffer("prev_dphi_time", torch.zeros(0, 1, self.n_bins))
        self.register_buffer("prev_shifted_phase", torch.zeros(0, 1, self.n_bins))

    @torch.jit.export
    def reset(self) -> None:
        """Forget the previous frames."""
        dtype, device = self.prev_shifted_phase.dtype, self.prev_shifted_phase.device
        self.prev_log_mags = torch.zeros(0, 2, self.n_bins, dtype=dtype, device=device)
        self.prev_dphi_time = torch.zeros(0, 1, self.n_bins, dtype=dtype, device=device)
        self.prev_shifted_phase = torch.zeros(0, 1, self.n_bins, dtype=dtype, device=device)

    def forward(self, magnitude: Tensor) -> Tensor:
        """Magnitude ``(batch, frames, bins)`` -> phase ``(batch, frames, bins)`` in ``[-pi, pi)``."""
        batch = magnitude.shape[0]
        n_frames = magnitude.shape[1]
        magnitude = torch.nan_to_num(magnitude, nan=0.0, posinf=0.0, neginf=0.0)
        log_mag = stream_log_magnitude(magnitude)
        # Not wrapped: only its differences and the final remainder need the wrap (bin_advance keeps it small).
        if log_mag.dtype == torch.float64:  # the buffer is float32 (a stream's dtype): exact for a float64 one
            advance = bin_phase_advance(self.n_fft, self.hop).to(log_mag.device)
        else:
            advance = in_dtype(self.bin_advance, log_mag.dtype)
        dphi_time = phase_time_derivative(log_mag, self.lam, self.hop, self.n_fft, advance)
        if self.prev_shifted_phase.shape[0] != batch:
            # Fresh stream: no slope into the first frame; the first frame's time step (its own dphi_time)
            # then lands its peaks on phase 0.
            self.prev_log_mags = log_mag.narrow(1, 0, 1).repeat(1, 2, 1)
            self.prev_dphi_time = dphi_time.narrow(1, 0, 1).clone()
            self.prev_shifted_phase = torch.nan_to_num(torch.remainder(math.pi - dphi_time.narrow(1, 0, 1),
                                                                       2.0 * math.pi),
                                                       nan=0.0, posinf=0.0, neginf=0.0)
        # narrow, not [:, a:b]: one operation instead of two; the state kept at the end is views of this call's
        # new tensors, which nothing writes into, not copies
        history = torch.cat([self.prev_log_mags, log_mag], dim=1)  # (batch, frames + 2, bins)
        if n_frames == 1:
            previous_dphi_time = self.prev_dphi_time
        else:
            previous_dphi_time = torch.cat([self.prev_dphi_time, dphi_time.narrow(1, 0, n_frames - 1)], dim=1)
        # d log|S| / dt at frame n without look-ahead: second-order backward difference (BDF2),
        # exact for log-quadratic (Gaussian) envelopes, e.g. a partial gliding through a bin. Here twice it,
        # 3 s_n - 4 s_(n-1) + s_(n-2); the 1/2 goes into the integral's scale with dphi_freq's factor.
        twice_time_slope = torch.add(torch.add(history.narrow(1, 0, n_frames), history.narrow(1, 1, n_frames),
                                               alpha=-4.0), log_mag, alpha=3.0)
        along_freq = frequency_integral(twice_time_slope, 0.5 * phase_frequency_derivative_factor(
            self.lam, self.hop, self.n_fft))

        anchors = peak_anchors(log_mag, index=self.bin_index)
        # Trapezoid of the two frames' phase advances, through their wrapped difference: a plain mean of
        # two values on either side of a multiple of 2 pi is off by pi.
        time_step = torch.add(previous_dphi_time, wrap_phase(dphi_time - previous_dphi_time), alpha=0.5)
        # Phase of bin m in frame n = phase of its anchor peak a in frame n-1, advanced in time,
        # then integrated along frequency from a to m (C[m] - C[a]).
        # Non-finite steps become 0 once here, instead of a check per frame in the loop: with them
        # finite (and the carried phase finite), every phase the loop computes and carries is finite.
        step_from_previous = torch.nan_to_num(torch.gather(time_step - along_freq, -1, anchors) + along_freq,
                                              nan=0.0, posinf=0.0, neginf=0.0)
        phase = self.prev_shifted_phase  # (batch, 1, bins)
        if n_frames == 1:  # a small buffer's call: no split into frames and no join
            phase = torch.remainder(torch.gather(phase, -1, anchors) + step_from_previous, 2.0 * math.pi)
            shifted = phase
        else:
            frame_anchors = anchors.split(1, dim=1)
            frame_steps = step_from_previous.split(1, dim=1)
            frames: List[Tensor] = []
            for n in range(n_frames):
                phase = torch.remainder(torch.gather(phase, -1, frame_anchors[n]) + frame_steps[n], 2.0 * math.pi)
                frames.append(phase)
            shifted = torch.cat(frames, dim=1)
        self.prev_shifted_phase = phase
        self.prev_log_mags = history.narrow(1, n_frames, 2)
        self.prev_dphi_time = dphi_time.narrow(1, n_frames - 1, 1)
        return shifted - math.pi
