"""Declared delay == measured delay, per method and for the encode -> decode round trip.

Definitions:
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
  samples); the spread covers how far the signals disagree. The check PASSes iff
  ``|median - declared| <= resolution + allowance`` (below) and says "measured by envelope N samples,
  resolution ±R samples[, allowance ±A samples ...]". It is "not measurable" (a warning) if any signal's
  envelope correlation is below 0.3 or the resolution exceeds :data:`ENVELOPE_MAX_RESOLUTION` (128
  samples: beyond that a wrong delay of one typical hop (256) could pass). Exact waveform
  measurement stays first: when the waveform correlation is >= 0.3 the lag must match exactly.
- **Frame allowance** (envelope fallback only): a model that synthesises its output frame by frame from
  magnitudes (a frame of F samples: the model's largest ratio, ``min_buffer_size``, for an audio -> audio
  method; ``encode``'s out_ratio for the round trip) chooses where within each frame the energy lands: a
  zero-look-ahead phase reconstruction (RTPGHI) puts a burst's edges late in their frames, a random phase
  spreads them over the frame, a creative decoder may answer a frame's edge rather than its centre. No
  measurement from outside tells that placement from a delay, so the envelope lag may differ from the
  declared delay by ``allowance = F // 4`` (:data:`ENVELOPE_FRAME_DIVISOR`) besides the resolution; 0 for a
  sample-by-sample model (F = 1). A declared delay wrong by a whole frame (a hop: the error a wrong
  frame convention makes) is still refused for frames of 256 samples and more (``F - F / 4 > 128``, the
  largest resolution that is measurable). Whether the streamed output is
  the offline output is the ``streaming`` check's business, exactly, whatever the output sounds like.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..description import MethodInfo
from ..errors import ModelCallError
from ..model import LoadedModel
from .checks import offline_call
from .delay import (ENVELOPE_MIN_LENGTH, MIN_CORRELATION_FOR_DELAY, EnvelopeDelay, envelope_delay,
                    measure_delay)
from .report import VerifyReport
from .signals import pair_test_signal

PAIR_ENCODER = "encode"
PAIR_DECODER = "decode"
PAIR_CHECK = f"delay {PAIR_ENCODER}+{PAIR_DECODER}"


def check_delay(model: LoadedModel, info: MethodInfo, length: int, report: VerifyReport,
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
        y = offline_call(model.fresh(), info.name, x)
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
            return offline_call(model.fresh(), info.name, inlets)[0, 0].astype(np.float64)

        try:
            envelope = envelope_delay(process, env_length, frame=min_buffer)
        except ModelCallError as error:
            report.add("delay", info.name, [str(error)], "could not run the envelope measurement")
            return
        add_envelope_verdict(report, "delay", info.name, f"declared {info.delay} samples", info.delay, envelope,
                              f"output waveform does not resemble the input: peak normalised correlation "
                              f"{correlation:.2f}")
        return
    problems = [] if lag == info.delay else [f"declared {info.delay} samples, measured {lag} samples "
                                             f"(cross-correlation peak {correlation:.2f})"]
    report.add("delay", info.name, problems, f"declared {info.delay} samples, measured {lag} samples")


def add_envelope_verdict(report: VerifyReport, name: str, method: Optional[str], stated: str, declared: int,
                          envelope: EnvelopeDelay, waveform_note: str) -> None:
    """PASS/FAIL/WARN of a delay check decided by the envelope fallback (tolerance = resolution + allowance)."""
    if not envelope.measurable:
        report.add(name, method, [], f"{stated}; not measurable ({waveform_note}; {envelope.why_not()})",
                   warning=True)
        return
    summary = f"{stated}, {envelope.describe()} ({waveform_note})"
    error = abs(envelope.lag - declared)
    problems = [] if error <= envelope.tolerance else [
        f"{stated}, {envelope.describe()}: off by {error:.0f} > {envelope.tolerance} samples (envelope lags per "
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


def round_trip(model: LoadedModel, encoder: MethodInfo, decoder: MethodInfo, x: np.ndarray) -> np.ndarray:
    """``decode(encode(x))`` offline on fresh copies, float64 ``(len(x),)`` from outlet 0."""
    inlets = np.zeros((1, encoder.in_channels, len(x)), dtype=np.float32)
    inlets[0, 0] = x  # further encoder inlets (labels) unconnected: zeros, as in nn~
    latent = offline_call(model.fresh(), encoder.name, inlets)
    # The latent frames go straight in: nn~'s sample-and-hold then last-sample decimation between
    # two objects returns them unchanged. Decode inlets beyond encode's outlets stay zero.
    frames = np.zeros((1, decoder.in_channels, latent.shape[-1]), dtype=np.float32)
    frames[:, :encoder.out_channels] = latent
    return offline_call(model.fresh(), decoder.name, frames)[0, 0].astype(np.float64)


def check_pair_delay(model: LoadedModel, encoder: MethodInfo, decoder: MethodInfo, length: int,
                      report: VerifyReport, min_buffer: int = 1) -> None:
    """Round trip ``decode(encode(x))``: measured lag must equal ``encode_delay + decode_delay``."""
    assert encoder.delay is not None and decoder.delay is not None  # guaranteed by delay_pair
    declared = encoder.delay + decoder.delay
    stated = (f"declared {PAIR_ENCODER}_delay {encoder.delay} + {PAIR_DECODER}_delay {decoder.delay} = "
              f"{declared} samples")
    # The lag search covers 0 .. length/2: make room for the declared total, and keep whole frames.
    step = math.lcm(encoder.in_ratio, encoder.out_ratio, decoder.in_ratio, decoder.out_ratio, min_buffer)
    length = max(length, 4 * (max(declared, 0) + 1))
    length = -(-length // step) * step
    x = pair_test_signal(length)
    try:
        y = round_trip(model, encoder, decoder, x)[None, None]
    except ModelCallError as error:
        report.add(PAIR_CHECK, None, [str(error)], f"{stated}; could not run the round trip")
        return
    lag, correlation = measure_delay(x, np.nan_to_num(y[0, 0]).astype(np.float64), length // 2)
    if correlation < MIN_CORRELATION_FOR_DELAY:
        # The waveform does not match (regenerated phase?): fall back to the amplitude envelopes.
        env_length = max(length, ENVELOPE_MIN_LENGTH)
        env_length = -(-env_length // step) * step
        try:
            envelope = envelope_delay(lambda signal: round_trip(model, encoder, decoder, signal), env_length,
                                      frame=encoder.out_ratio)
        except ModelCallError as error:
            report.add(PAIR_CHECK, None, [str(error)], f"{stated}; could not run the envelope measurement")
            return
        add_envelope_verdict(report, PAIR_CHECK, None, stated, declared, envelope,
                              f"{PAIR_DECODER}({PAIR_ENCODER}(x)) waveform does not resemble x: peak normalised "
                              f"correlation {correlation:.2f}")
        return
    summary = f"{stated}, measured {lag} samples"
    problems = [] if lag == declared else [f"{summary} (cross-correlation peak {correlation:.2f})"]
    report.add(PAIR_CHECK, None, problems, summary)
