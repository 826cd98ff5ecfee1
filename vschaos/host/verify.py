"""Verify that an nn~ model will work in nn~ / nn.ar, before anyone opens a patcher.

Checks, per method: the contract (params, labels, attribute types, get/set round trips, host
rejection of wrong counts/types), output shape and dtype for every batch size and every buffer
size, NaN/Inf, determinism, streaming == offline, and declared delay == measured delay.

Definitions:
- **Streaming equals offline**: the same deterministic signal (audio-rate inlets: a chirp plus
  noise; control-rate inlets: slow sines, decimated by the last sample of each ratio block as nn~
  does) processed in one call and in consecutive calls of B samples after a state reset must
  agree within ``tolerance * max(1, peak |offline output|)``.
- **Delay** (``<method>_delay``, samples): how far the method's output lags its input in
  offline/streaming processing, excluding host buffering (B - V or 2B - V). It is measured only
  for audio -> audio methods (both ratios 1), as the lag of the peak of the cross-correlation
  between a white-noise input and the output (lags 0 .. N/2). If that peak's normalised
  correlation is below 0.3 the output waveform does not resemble the input and the envelope
  fallback below decides (or reports "not measurable": a warning, not a failure). Methods with a control-rate side (encode, decode)
  are not measured alone: their outputs are not comparable to their inputs sample by sample.
- **Round-trip delay** (check ``delay encode+decode``): when the model has ``encode`` (audio in,
  ``in_ratio`` 1) and ``decode`` (audio out, ``out_ratio`` 1) with ``encode`` out_ratio ==
  ``decode`` in_ratio, ``encode`` out_channels <= ``decode`` in_channels, and both declare
  ``<method>_delay``, a broadband test signal (white-noise bursts plus a chirp; see
  :func:`pair_test_signal`) goes through ``encode`` then ``decode`` offline, one call each on fresh
  copies, and the lag of ``decode(encode(x))`` behind ``x`` (measured as above, on inlet/outlet 0)
  must equal ``encode_delay + decode_delay``. The latent is passed as the tensor ``encode``
  returned, which is exactly what two chained nn~ objects exchange: the first sample-and-holds its
  control-rate outlets into audio (``repeat_interleave(ratio)``) and the second decimates its inlets
  by the last sample of every ratio block, which gives back the same frames. (In a patch the host
  latency L of the first object comes on top, as ``floor(L / ratio) * ratio`` samples, because the
  decimation reads the held frames on a ratio grid; host buffering is excluded here as for every
  delay.) Decode inlets beyond the encoder's outlets (label inlets) get zeros, as nn~ gives to
  unconnected inlets. Encoder inlets beyond the first get zeros too.
- **Envelope fallback** (both delay checks): a model that regenerates its phase (RTPGHI, random
  phase, RAVE-like decoders) reproduces the magnitude spectrogram but not the waveform, so the
  waveform correlation stays far below 0.3 whatever its delay. Then the delay is measured on
  amplitude envelopes instead: :data:`ENVELOPE_SEEDS` burst signals (see
  :func:`envelope_test_signal`: noise and harmonic-tone bursts of non-periodic lengths separated by
  silence) go through the method (or the round trip); the log band energies of input and output
  (:func:`envelope_features`: 32 log-spaced bands, 256-sample Hann window, hop 16) are
  cross-correlated, summed over bands, and the peak is refined by a parabola (sub-hop). The estimate
  is the median over the signals; its resolution is ``max(32, max |lag_i - median|)`` samples: 32 =
  two envelope hops, the bias the method itself shows on a model with the input's phase (within 10
  samples); the spread covers where a phase reconstruction puts energy inside its synthesis frame
  (tens of samples for RTPGHI). The check PASSes iff ``|median - declared| <= resolution`` and says
  "measured by envelope, resolution ±N samples". It is "not measurable" (a warning) if any signal's
  envelope correlation is below 0.3 or the resolution exceeds :data:`ENVELOPE_MAX_RESOLUTION` (128
  samples: beyond that a wrong delay of one typical hop (256) could pass). Exact waveform
  measurement stays first: when the waveform correlation is >= 0.3 the lag must match exactly.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .model import (AttributeValueError, HostError, LoadedModel, MethodInfo, ModelCallError, ModelSource,
                    convert_attribute_values, is_power_of_two, load_model)

MAX_DEFAULT_BUFFER = 8192
MIN_CORRELATION_FOR_DELAY = 0.3
# Envelope fallback (see the module docstring): analysis of the log band energies.
ENVELOPE_WINDOW = 256
ENVELOPE_HOP = 16
ENVELOPE_BANDS = 32
ENVELOPE_FLOOR = 1e-5  # relative to the loudest band frame: -50 dB, below which silence is all alike
ENVELOPE_SEEDS = (11, 12, 13, 14)
ENVELOPE_MIN_LENGTH = 16384  # several bursts and gaps, so the envelope correlation has one peak
ENVELOPE_MIN_RESOLUTION = 2 * ENVELOPE_HOP
ENVELOPE_MAX_RESOLUTION = 128
PAIR_ENCODER = "encode"
PAIR_DECODER = "decode"
PAIR_CHECK = f"delay {PAIR_ENCODER}+{PAIR_DECODER}"


@dataclass
class Check:
    """One verification item; ``problems`` lists each failing case (method, buffer, batch, ...)."""

    name: str
    method: Optional[str]
    passed: bool
    summary: str
    problems: List[str] = field(default_factory=list)
    warning: bool = False


@dataclass
class VerifyReport:
    """Structured result of :func:`verify_model`; ``ok`` is True only if every check passed."""

    path: Optional[str]
    buffers: List[int]
    batch_sizes: List[int]
    tolerance: float
    signal_length: int
    checks: List[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> List[Check]:
        return [check for check in self.checks if not check.passed]

    def add(self, name: str, method: Optional[str], problems: List[str], summary: str, warning: bool = False) -> None:
        self.checks.append(Check(name, method, not problems, summary, problems, warning))

    def to_dict(self) -> Dict[str, object]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def format(self, max_problems: int = 8) -> str:
        lines = [f"verify {self.path or '<in-memory module>'}",
                 f"  buffers {self.buffers}, batch sizes {self.batch_sizes}, test signal {self.signal_length} "
                 f"samples, tolerance {self.tolerance:g} x max(1, peak)"]
        for check in self.checks:
            status = "PASS" if check.passed else "FAIL"
            if check.passed and check.warning:
                status = "WARN"
            where = f"[{check.method}] " if check.method else ""
            lines.append(f"{status} {where}{check.name}: {check.summary}")
            for problem in check.problems[:max_problems]:
                lines.append(f"     - {problem}")
            if len(check.problems) > max_problems:
                lines.append(f"     - ... and {len(check.problems) - max_problems} more")
        failed = len(self.failures)
        lines.append("RESULT: OK" if self.ok else f"RESULT: FAILED ({failed} of {len(self.checks)} checks)")
        return "\n".join(lines)


# ---- test signals -------------------------------------------------------------------------
def test_signal(batch: int, channels: int, length: int, control_rate: bool, seed: int = 0) -> np.ndarray:
    """Deterministic ``(batch, channels, length)`` float32 signal at audio rate.

    Audio inlets: an exponential chirp (20 Hz -> 20 kHz at 44.1 kHz) at 0.5 plus white noise at 0.1,
    each row/channel with its own noise and start phase. Control inlets: sums of slow sines
    (periods of 0.2 - 2 s), smooth so that decimation does not alias.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 44100.0
    out = np.empty((batch, channels, length), dtype=np.float32)
    for b in range(batch):
        for c in range(channels):
            phase = rng.uniform(0, 2 * math.pi)
            if control_rate:
                freqs = rng.uniform(0.5, 5.0, size=3)
                out[b, c] = sum(0.3 * np.sin(2 * math.pi * f * t + phase * (k + 1)) for k, f in enumerate(freqs))
            else:
                duration = max(t[-1], 1e-3)
                k = math.log(20000 / 20) / duration
                chirp = 0.5 * np.sin(2 * math.pi * 20 * (np.exp(k * t) - 1) / k + phase)
                out[b, c] = chirp + 0.1 * rng.standard_normal(length)
    return out


def decimate(signal: np.ndarray, ratio: int) -> np.ndarray:
    """nn~'s decimation: the last sample of every ``ratio`` block."""
    return signal[..., ratio - 1::ratio] if ratio > 1 else signal


def pair_test_signal(length: int, seed: int = 3) -> np.ndarray:
    """Deterministic float64 ``(length,)`` signal for the encode -> decode round trip.

    White-noise bursts (0.3 rms, 64 - 1024 samples on, 64 - 1024 off) plus an exponential chirp
    (20 Hz -> 20 kHz at 44.1 kHz, amplitude 0.2). Why this rather than plain noise: the noise gives a
    sharp, unique correlation peak; the bursts add an envelope that a spectral model keeps even
    where it smears fine time detail within a frame, and the chirp gives every frequency band
    energy, so a model that only handles part of the spectrum still correlates.
    """
    rng = np.random.default_rng(seed)
    gate = np.zeros(length)
    position, on = 0, True
    while position < length:
        span = int(rng.integers(64, 1025))
        if on:
            gate[position:position + span] = 1.0
        position, on = position + span, not on
    t = np.arange(length) / 44100.0
    duration = max(float(t[-1]), 1e-3)
    k = math.log(20000 / 20) / duration
    chirp = 0.2 * np.sin(2 * math.pi * 20 * (np.exp(k * t) - 1) / k)
    return 0.3 * rng.standard_normal(length) * gate + chirp


def envelope_test_signal(length: int, seed: int) -> np.ndarray:
    """Deterministic float64 ``(length,)`` signal for the envelope delay fallback.

    Bursts with sharp on/off edges (512 - 2560 samples on, 384 - 2048 silent, the first after 256 -
    1024 samples of silence), alternately white noise (0.3 rms) and a harmonic tone (fundamental 0.004
    - 0.02 cycles/sample, 1/h harmonics below 0.45, random phases, 0.3 rms). Why: the random,
    non-periodic lengths give the envelope correlation a single sharp peak; silence between bursts
    makes every edge a large envelope step; tones and noise give different bands different envelopes,
    so a model that keeps only part of the spectrum still correlates.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros(length)
    position, tone = int(rng.integers(256, 1025)), False
    while position < length:
        on, off = int(rng.integers(512, 2561)), int(rng.integers(384, 2049))
        span = min(on, length - position)
        if tone:
            f0 = rng.uniform(0.004, 0.02)
            t = np.arange(span)
            burst = sum(np.sin(2 * math.pi * f0 * h * t + rng.uniform(0, 2 * math.pi)) / h
                        for h in range(1, int(0.45 / f0) + 1))
        else:
            burst = rng.standard_normal(span)
        out[position:position + span] = 0.3 * burst / max(float(np.sqrt(np.mean(burst ** 2))), 1e-12)
        position, tone = position + on + off, not tone
    return out


def envelope_features(x: np.ndarray) -> np.ndarray:
    """``(frames, bands)`` log band energies of ``x`` (frame i centred at ``i * ENVELOPE_HOP + window/2``), mean-removed per band."""
    if len(x) < ENVELOPE_WINDOW:
        return np.zeros((0, ENVELOPE_BANDS))
    frames = (len(x) - ENVELOPE_WINDOW) // ENVELOPE_HOP + 1
    index = np.arange(ENVELOPE_WINDOW)[None] + ENVELOPE_HOP * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(x[index] * np.hanning(ENVELOPE_WINDOW), axis=1)) ** 2
    # Log-spaced bands from bin 2 up: each band's envelope weighs the same whatever its bandwidth.
    edges = np.unique(np.geomspace(2, power.shape[1], ENVELOPE_BANDS + 1).astype(int))
    bands = np.stack([power[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    # The floor is relative (gain-independent) with an absolute minimum so that silence stays finite.
    bands = np.log(bands + max(ENVELOPE_FLOOR * float(bands.max()), 1e-20))
    return bands - bands.mean(axis=0)


def measure_envelope_delay(x: np.ndarray, y: np.ndarray, max_lag: int) -> Tuple[float, float]:
    """Lag (samples, sub-hop) of ``y``'s band envelopes behind ``x``'s in 0..max_lag, and the normalised correlation there.

    Phase-insensitive: only the log band energies are compared, summed over bands, then the peak is
    refined by a parabola through its two neighbours.
    """
    a, b = envelope_features(x), envelope_features(np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0))
    norm = float(np.sqrt((a ** 2).sum() * (b ** 2).sum()))
    if not len(a) or norm == 0.0:
        return 0.0, 0.0  # a constant (e.g. silent) output has no envelope to align
    size = 1 << (len(a) + len(b)).bit_length()
    max_frames = min(max_lag // ENVELOPE_HOP, len(b) - 1)
    correlation = np.fft.irfft(np.fft.rfft(b, size, axis=0) * np.conj(np.fft.rfft(a, size, axis=0)), size,
                               axis=0).sum(axis=1)[:max_frames + 1]
    peak = int(np.argmax(correlation))
    offset = 0.0
    if 0 < peak < max_frames:
        before, at, after = correlation[peak - 1], correlation[peak], correlation[peak + 1]
        curvature = before - 2 * at + after
        offset = 0.5 * (before - after) / curvature if curvature < 0 else 0.0
    return (peak + offset) * ENVELOPE_HOP, float(correlation[peak]) / norm


@dataclass
class EnvelopeDelay:
    """Result of the envelope fallback: ``lag`` (median, samples), ``resolution`` (± samples), per-signal lags."""

    lag: float
    resolution: int
    lags: List[float]
    correlation: float  # the lowest envelope correlation over the test signals

    @property
    def measurable(self) -> bool:
        return self.correlation >= MIN_CORRELATION_FOR_DELAY and self.resolution <= ENVELOPE_MAX_RESOLUTION

    def describe(self) -> str:
        return f"measured by envelope {self.lag:.0f} samples, resolution ±{self.resolution} samples"

    def why_not(self) -> str:
        if self.correlation < MIN_CORRELATION_FOR_DELAY:
            return f"envelope correlation {self.correlation:.2f} < {MIN_CORRELATION_FOR_DELAY}"
        return (f"envelope lags {[round(v) for v in self.lags]} spread ±{self.resolution} > "
                f"{ENVELOPE_MAX_RESOLUTION} samples")


def envelope_delay(process: Callable[[np.ndarray], np.ndarray], length: int) -> EnvelopeDelay:
    """Run ``process`` (float64 ``(length,)`` in, out) on each envelope test signal and combine the lags."""
    lags, correlations = [], []
    for seed in ENVELOPE_SEEDS:
        x = envelope_test_signal(length, seed)
        lag, correlation = measure_envelope_delay(x, process(x), length // 2)
        lags.append(lag)
        correlations.append(correlation)
    median = float(np.median(lags))
    spread = max(abs(lag - median) for lag in lags)
    return EnvelopeDelay(median, max(ENVELOPE_MIN_RESOLUTION, int(math.ceil(spread))), lags, min(correlations))


def default_buffers(min_buffer: int) -> List[int]:
    """Powers of two from the model's minimum buffer size to 8192."""
    sizes, size = [], min_buffer
    while size <= MAX_DEFAULT_BUFFER:
        sizes.append(size)
        size *= 2
    return sizes or [min_buffer]


def _locate(error: np.ndarray) -> Tuple[int, int, int]:
    index = np.unravel_index(int(np.argmax(error)), error.shape)
    return int(index[0]), int(index[1]), int(index[2])


def _nonfinite_problem(y: np.ndarray, context: str) -> Optional[str]:
    bad = ~np.isfinite(y)
    if not bad.any():
        return None
    b, c, s = _locate(bad.astype(np.float32))
    return f"{context}: {int(bad.sum())} NaN/Inf values (first at batch {b}, channel {c}, frame {s})"


# ---- the checks ---------------------------------------------------------------------------
def _check_contract(model: LoadedModel, report: VerifyReport) -> None:
    for info in model.description.methods:
        problems = []
        for side, labels, channels in (("input", info.input_labels, info.in_channels),
                                       ("output", info.output_labels, info.out_channels)):
            if labels and len(labels) != channels:
                problems.append(f"{len(labels)} {side} labels for {channels} {side} channels")
        report.add("contract", info.name, problems,
                   f"params [{info.in_channels}, {info.in_ratio}, {info.out_channels}, {info.out_ratio}]"
                   + (", labels ok" if info.input_labels or info.output_labels else ", no labels"))


def _changed_value(kind: str, value: object) -> Optional[object]:
    if kind == "bool":
        return not bool(value)
    if kind == "int":
        return int(value) + 1
    if kind == "float":
        return float(value) + 0.5
    return None  # str: valid values are model-specific


def _check_attributes(model: LoadedModel, report: VerifyReport) -> None:
    for attribute in model.description.attributes:
        problems: List[str] = []
        name = attribute.name
        if attribute.error:
            report.add("attribute", None, [f"'{name}': {attribute.error}"], f"'{name}'")
            continue
        value = attribute.value or []
        unknown = [t for t in attribute.types if t not in ("bool", "int", "float", "str", "tensor", "buffer")]
        if unknown:
            problems.append(f"'{name}': unknown type codes {unknown}")
        if len(value) != len(attribute.types):
            problems.append(f"'{name}': get_{name}() returned {len(value)} values, '{name}_params' declares "
                            f"{len(attribute.types)}")
        python_types = {"bool": (bool,), "int": (int,), "float": (float, int), "str": (str,)}
        for position, (kind, item) in enumerate(zip(attribute.types, value)):
            allowed = python_types.get(kind)
            if allowed and (not isinstance(item, allowed) or (kind != "bool" and isinstance(item, bool))):
                problems.append(f"'{name}' value {position + 1}: declared {kind}, get returned {item!r}")
        settable = not problems and all(t in python_types for t in attribute.types)
        if settable:
            try:
                model.set_attribute(name, value)
                if model.get_attribute(name) != value:
                    problems.append(f"'{name}': set to its own value {value} then get returned "
                                    f"{model.get_attribute(name)}")
                changed = [_changed_value(t, v) for t, v in zip(attribute.types, value)]
                if all(c is not None for c in changed):
                    try:
                        model.set_attribute(name, changed)
                    except AttributeValueError:
                        pass  # a model may refuse values out of its range: not an error
                    else:
                        got = model.get_attribute(name)
                        if not all(_same(a, b) for a, b in zip(got, changed)):
                            problems.append(f"'{name}': set {changed} accepted (0) but get returned {got}")
                    model.set_attribute(name, value)
            except HostError as error:
                problems.append(f"'{name}': {error}")
            # The host must reject what nn~ would reject, before calling the model.
            for bad, why in ((list(value) + [value[0] if value else 0], "one value too many"),
                             (["not-a-number"] * len(value), "text for numbers")):
                if why == "text for numbers" and all(t == "str" for t in attribute.types):
                    continue
                try:
                    convert_attribute_values(attribute, bad)
                    problems.append(f"'{name}': {why} {bad} was not rejected")
                except AttributeValueError:
                    pass
        report.add("attribute", None, problems,
                   f"'{name}' ({', '.join(attribute.types)}) = {value}" + (", get/set round trip ok" if settable else ""))


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)
    return a == b


def _call(model: LoadedModel, method: str, x: np.ndarray) -> np.ndarray:
    return model.call(method, torch.from_numpy(np.ascontiguousarray(x))).numpy().copy()


def _method_buffers(info: MethodInfo, buffers: Sequence[int]) -> List[int]:
    return [b for b in buffers if b % info.max_ratio == 0]


def _check_shapes(model: LoadedModel, info: MethodInfo, buffers: List[int], batch_sizes: Sequence[int],
                  report: VerifyReport) -> None:
    problems, nonfinite = [], []
    fresh = model.fresh()
    cases = 0
    for batch in batch_sizes:
        for buffer in buffers:
            x = decimate(test_signal(batch, info.in_channels, buffer, info.in_ratio > 1, seed=buffer), info.in_ratio)
            cases += 1
            try:
                y = _call(fresh, info.name, x)
            except ModelCallError as error:
                problems.append(str(error))
                continue
            problem = _nonfinite_problem(y, f"buffer {buffer}, batch {batch}")
            if problem:
                nonfinite.append(problem)
    report.add("shape", info.name, problems,
               f"{cases} calls (batch {list(batch_sizes)} x buffers {buffers[0]}..{buffers[-1]}): "
               f"(batch, {info.out_channels}, B // {info.out_ratio}) float32"
               if not problems else f"{len(problems)} of {cases} calls returned the wrong output")
    report.add("finite", info.name, nonfinite, "no NaN/Inf" if not nonfinite else "NaN/Inf in outputs")


def _offline(model: LoadedModel, method: str, x: np.ndarray) -> np.ndarray:
    torch.manual_seed(0)  # models that sample noise are compared under the same seed
    return _call(model, method, x)


def _check_streaming(model: LoadedModel, info: MethodInfo, buffers: List[int], batch_sizes: Sequence[int],
                     length: int, tolerance: float, report: VerifyReport) -> None:
    problems: List[str] = []
    determinism: List[str] = []
    worst = 0.0
    for batch in batch_sizes:
        signal = decimate(test_signal(batch, info.in_channels, length, info.in_ratio > 1, seed=7), info.in_ratio)
        first = model.fresh()
        try:
            offline = _offline(first, info.name, signal)
            again = _offline(model.fresh(), info.name, signal)
        except ModelCallError as error:
            problems.append(f"offline call of {length} samples, batch {batch}: {error}")
            continue
        if not np.array_equal(offline, again, equal_nan=True):
            difference = np.nan_to_num(np.abs(offline - again), nan=np.inf)
            b, c, s = _locate(difference)
            determinism.append(f"batch {batch}: two fresh runs differ by {float(difference.max()):.3g} "
                               f"(batch {b}, channel {c}, frame {s})")
        for buffer in buffers:
            # Bound the work for small buffers: at most 64 calls or 4096 samples, whichever is longer.
            span = min(length, max(64 * buffer, 4096))
            in_span = span // info.in_ratio
            out_span = span // info.out_ratio
            reference = offline[..., :out_span]
            if span < length:
                try:
                    reference = _offline(model.fresh(), info.name, signal[..., :in_span])
                except ModelCallError as error:
                    problems.append(f"offline call of {span} samples, batch {batch}: {error}")
                    continue
            first.reset_state()
            step = buffer // info.in_ratio
            try:
                torch.manual_seed(0)
                pieces = [_call(first, info.name, signal[..., start:start + step]) for start in range(0, in_span, step)]
            except ModelCallError as error:
                problems.append(f"streaming: {error}")
                continue
            streamed = np.concatenate(pieces, axis=-1)
            scale = max(1.0, float(np.nanmax(np.abs(reference))) if reference.size else 1.0)
            difference = np.nan_to_num(np.abs(streamed - reference), nan=np.inf)
            error_max = float(difference.max()) if difference.size else 0.0
            worst = max(worst, error_max / scale)
            if error_max > tolerance * scale:
                b, c, s = _locate(difference)
                problems.append(f"buffer {buffer}, batch {batch}: streaming differs from offline: max error "
                                f"{error_max:.3g} at batch {b}, channel {c}, frame {s} (call {s // (buffer // info.out_ratio)}"
                                f", tolerance {tolerance * scale:.3g})")
    report.add("determinism", info.name, determinism, "two fresh runs identical" if not determinism
               else "two fresh runs differ")
    report.add("streaming", info.name, problems,
               f"streaming == offline for buffers {buffers[0]}..{buffers[-1]}, max relative error {worst:.2g}"
               if not problems else "streaming output differs from offline output")


def measure_delay(x: np.ndarray, y: np.ndarray, max_lag: int) -> Tuple[int, float]:
    """Lag (samples, 0..max_lag) at which ``y`` best matches ``x`` delayed, and the normalised correlation there."""
    n = len(x) + len(y)
    size = 1 << (n - 1).bit_length()
    correlation = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)[:max_lag + 1]
    lag = int(np.argmax(correlation))
    overlap_x = x[:len(x) - lag] if lag else x
    overlap_y = y[lag:]
    norm = float(np.linalg.norm(overlap_x) * np.linalg.norm(overlap_y)) or 1.0
    return lag, float(correlation[lag]) / norm


def _check_delay(model: LoadedModel, info: MethodInfo, length: int, report: VerifyReport,
                 pair_note: str = "", min_buffer: int = 1) -> None:
    """Declared vs measured delay of one method (audio -> audio only); ``pair_note``: see :func:`delay_pair`.

    Every signal length is a multiple of ``min_buffer``: nn~ never calls a model with less, and
    models may rely on it (e.g. whole STFT hops even for a ratio-1 method)."""
    if info.delay is None:
        return
    if info.in_ratio != 1 or info.out_ratio != 1:
        # Only encode/decode have a partner whose round trip can be measured: say where (or why not).
        note = f"; {pair_note}" if pair_note and info.name in (PAIR_ENCODER, PAIR_DECODER) else ""
        report.add("delay", info.name, [], f"declared {info.delay} samples; not measured alone (control-rate "
                   f"{'input' if info.in_ratio != 1 else 'output'}: not comparable sample by sample){note}",
                   warning=True)
        return
    rng = np.random.default_rng(3)
    x = (0.3 * rng.standard_normal((1, info.in_channels, length))).astype(np.float32)
    try:
        y = _offline(model.fresh(), info.name, x)
    except ModelCallError as error:
        report.add("delay", info.name, [str(error)], "could not run")
        return
    lag, correlation = measure_delay(x[0, 0].astype(np.float64), np.nan_to_num(y[0, 0]).astype(np.float64), length // 2)
    if correlation < MIN_CORRELATION_FOR_DELAY:
        # The waveform does not match (regenerated phase?): fall back to the amplitude envelopes.
        env_length = max(length, ENVELOPE_MIN_LENGTH, 4 * (info.delay + 1))
        env_length = -(-env_length // min_buffer) * min_buffer

        def process(signal: np.ndarray) -> np.ndarray:
            inlets = np.zeros((1, info.in_channels, len(signal)), dtype=np.float32)
            inlets[0, 0] = signal  # further inlets get zeros, as unconnected nn~ inlets
            return _offline(model.fresh(), info.name, inlets)[0, 0].astype(np.float64)

        try:
            envelope = envelope_delay(process, env_length)
        except ModelCallError as error:
            report.add("delay", info.name, [str(error)], "could not run the envelope measurement")
            return
        _add_envelope_verdict(report, "delay", info.name, f"declared {info.delay} samples", info.delay, envelope,
                              f"output waveform does not resemble the input: peak normalised correlation "
                              f"{correlation:.2f}")
        return
    problems = [] if lag == info.delay else [f"declared {info.delay} samples, measured {lag} samples "
                                             f"(cross-correlation peak {correlation:.2f})"]
    report.add("delay", info.name, problems, f"declared {info.delay} samples, measured {lag} samples")


def _add_envelope_verdict(report: VerifyReport, name: str, method: Optional[str], stated: str, declared: int,
                          envelope: EnvelopeDelay, waveform_note: str) -> None:
    """PASS/FAIL/WARN of a delay check decided by the envelope fallback (tolerance = its resolution)."""
    if not envelope.measurable:
        report.add(name, method, [], f"{stated}; not measurable ({waveform_note}; {envelope.why_not()})",
                   warning=True)
        return
    summary = f"{stated}, {envelope.describe()} ({waveform_note})"
    error = abs(envelope.lag - declared)
    problems = [] if error <= envelope.resolution else [
        f"{stated}, {envelope.describe()}: off by {error:.0f} > {envelope.resolution} samples (envelope lags per "
        f"test signal {[round(v) for v in envelope.lags]}, lowest envelope correlation {envelope.correlation:.2f})"]
    report.add(name, method, problems, summary)


def delay_pair(methods: Sequence[MethodInfo]) -> Tuple[Optional[Tuple[MethodInfo, MethodInfo]], str]:
    """The ``(encode, decode)`` pair whose round-trip delay can be measured, or ``None`` and the reason."""
    found = {info.name: info for info in methods}
    encoder, decoder = found.get(PAIR_ENCODER), found.get(PAIR_DECODER)
    if encoder is None or decoder is None:
        missing = PAIR_ENCODER if encoder is None else PAIR_DECODER
        return None, f"no round-trip check: no '{missing}' among the checked methods"
    reasons: List[str] = []
    if encoder.in_ratio != 1:
        reasons.append(f"{PAIR_ENCODER} input is not audio rate (ratio {encoder.in_ratio})")
    if decoder.out_ratio != 1:
        reasons.append(f"{PAIR_DECODER} output is not audio rate (ratio {decoder.out_ratio})")
    if encoder.out_ratio != decoder.in_ratio:
        reasons.append(f"{PAIR_ENCODER} out_ratio {encoder.out_ratio} != {PAIR_DECODER} in_ratio {decoder.in_ratio}")
    if encoder.out_channels > decoder.in_channels:
        reasons.append(f"{PAIR_ENCODER} has {encoder.out_channels} outlets, {PAIR_DECODER} only "
                       f"{decoder.in_channels} inlets")
    undeclared = [info.name for info in (encoder, decoder) if info.delay is None]
    if undeclared:
        reasons.append(f"no declared delay for {' and '.join(undeclared)}")
    if reasons:
        return None, "no round-trip check: " + "; ".join(reasons)
    return (encoder, decoder), f"round trip measured in '{PAIR_CHECK}'"


def _lcm(*values: int) -> int:
    result = 1
    for value in values:
        result = result * value // math.gcd(result, value)
    return result


def _round_trip(model: LoadedModel, encoder: MethodInfo, decoder: MethodInfo, x: np.ndarray) -> np.ndarray:
    """``decode(encode(x))`` offline on fresh copies, float64 ``(len(x),)`` from outlet 0."""
    inlets = np.zeros((1, encoder.in_channels, len(x)), dtype=np.float32)
    inlets[0, 0] = x  # further encoder inlets (labels) unconnected: zeros, as in nn~
    latent = _offline(model.fresh(), encoder.name, inlets)
    # The latent frames go straight in: nn~'s sample-and-hold then last-sample decimation between
    # two objects returns them unchanged. Decode inlets beyond encode's outlets stay zero.
    frames = np.zeros((1, decoder.in_channels, latent.shape[-1]), dtype=np.float32)
    frames[:, :encoder.out_channels] = latent
    return _offline(model.fresh(), decoder.name, frames)[0, 0].astype(np.float64)


def _check_pair_delay(model: LoadedModel, encoder: MethodInfo, decoder: MethodInfo, length: int,
                      report: VerifyReport, min_buffer: int = 1) -> None:
    """Round trip ``decode(encode(x))``: measured lag must equal ``encode_delay + decode_delay``."""
    assert encoder.delay is not None and decoder.delay is not None  # guaranteed by delay_pair
    declared = encoder.delay + decoder.delay
    stated = (f"declared {PAIR_ENCODER}_delay {encoder.delay} + {PAIR_DECODER}_delay {decoder.delay} = "
              f"{declared} samples")
    # The lag search covers 0 .. length/2: make room for the declared total, and keep whole frames.
    step = _lcm(encoder.in_ratio, encoder.out_ratio, decoder.in_ratio, decoder.out_ratio, min_buffer)
    length = max(length, 4 * (max(declared, 0) + 1))
    length = -(-length // step) * step
    x = pair_test_signal(length)
    try:
        y = _round_trip(model, encoder, decoder, x)[None, None]
    except ModelCallError as error:
        report.add(PAIR_CHECK, None, [str(error)], f"{stated}; could not run the round trip")
        return
    lag, correlation = measure_delay(x, np.nan_to_num(y[0, 0]).astype(np.float64), length // 2)
    if correlation < MIN_CORRELATION_FOR_DELAY:
        # The waveform does not match (regenerated phase?): fall back to the amplitude envelopes.
        env_length = max(length, ENVELOPE_MIN_LENGTH)
        env_length = -(-env_length // step) * step
        try:
            envelope = envelope_delay(lambda signal: _round_trip(model, encoder, decoder, signal), env_length)
        except ModelCallError as error:
            report.add(PAIR_CHECK, None, [str(error)], f"{stated}; could not run the envelope measurement")
            return
        _add_envelope_verdict(report, PAIR_CHECK, None, stated, declared, envelope,
                              f"{PAIR_DECODER}({PAIR_ENCODER}(x)) waveform does not resemble x: peak normalised "
                              f"correlation {correlation:.2f}")
        return
    summary = f"{stated}, measured {lag} samples"
    problems = [] if lag == declared else [f"{summary} (cross-correlation peak {correlation:.2f})"]
    report.add(PAIR_CHECK, None, problems, summary)


def verify_model(source: "ModelSource | LoadedModel", buffers: Optional[List[int]] = None,
                 batch_sizes: Sequence[int] = (1, 4), tolerance: float = 1e-4,
                 methods: Optional[Sequence[str]] = None,
                 attributes: Optional[Dict[str, Sequence[object]]] = None) -> VerifyReport:
    """Run every check on a model given as a path, a ScriptModule or a :class:`LoadedModel`.

    The caller's module is not modified: checks run on fresh copies.

    Args:
        buffers: buffer sizes B to test; default: powers of two from the minimum buffer to 8192.
        batch_sizes: batch sizes for shape and streaming checks.
        tolerance: streaming vs offline, absolute, scaled by ``max(1, peak |output|)``.
        methods: restrict to these methods (default all).
        attributes: ``{name: values}`` set before the checks (e.g. a temperature of 0).
    Raises :class:`HostError` for a model that cannot be loaded or an invalid argument.
    """
    loaded = source if isinstance(source, LoadedModel) else load_model(source)
    model = loaded.fresh()
    for name, values in (attributes or {}).items():
        model.set_attribute(name, list(values))
    model = LoadedModel(model.module, loaded.path)  # re-serialise with the attributes applied
    description = model.description
    min_buffer = description.min_buffer_size
    if buffers is None:
        buffers = default_buffers(min_buffer)
    buffers = sorted(set(int(b) for b in buffers))
    for buffer in buffers:
        if not is_power_of_two(buffer):
            raise HostError(f"buffer size {buffer} is not a power of two")
        if buffer < min_buffer:
            raise HostError(f"buffer size {buffer} is below the model's minimum {min_buffer} (largest ratio)")
    selected = [description.method(name) for name in methods] if methods else description.methods
    length = max(2 * buffers[-1], 4096)
    report = VerifyReport(loaded.path, buffers, list(batch_sizes), tolerance, length)
    _check_contract(model, report)
    _check_attributes(model.fresh(), report)
    pair, pair_note = delay_pair(selected)
    for info in selected:
        method_buffers = _method_buffers(info, buffers)
        _check_shapes(model, info, method_buffers, batch_sizes, report)
        _check_streaming(model, info, method_buffers, batch_sizes, length, tolerance, report)
        _check_delay(model, info, length, report, pair_note, min_buffer)
    if pair is not None:
        _check_pair_delay(model, pair[0], pair[1], length, report, min_buffer)
    return report
