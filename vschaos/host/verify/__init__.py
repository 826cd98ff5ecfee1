"""Verify that an nn~ model will work in nn~ / nn.ar, before anyone opens a patcher.

Checks, per method: the contract (params, labels, attribute types, get/set round trips, host
rejection of wrong counts/types), output shape and dtype for every batch size and every buffer
size, NaN/Inf, determinism, streaming == offline, and declared delay == measured delay.

Layout: :mod:`.report` (the result types), :mod:`.signals` (test signals, nn~'s decimation),
:mod:`.delay` (delay measurement), :mod:`.checks` (contract, attributes, shapes, streaming),
:mod:`.delay_checks` (declared vs measured delay; the delay definitions), :mod:`.runner`
(:func:`verify_model`). Everything public is importable from ``vschaos.host.verify``.
"""
from .delay import (ENVELOPE_BANDS, ENVELOPE_FLOOR, ENVELOPE_FRAME_DIVISOR, ENVELOPE_HOP, ENVELOPE_MAX_RESOLUTION,
                    ENVELOPE_MIN_LENGTH, ENVELOPE_MIN_RESOLUTION, ENVELOPE_SEEDS, ENVELOPE_WINDOW,
                    MIN_CORRELATION_FOR_DELAY, EnvelopeDelay, envelope_delay, envelope_features, frame_allowance,
                    measure_delay, measure_envelope_delay)
from .delay_checks import PAIR_CHECK, PAIR_DECODER, PAIR_ENCODER, delay_pair
from .report import Check, VerifyReport
from .runner import MAX_DEFAULT_BUFFER, default_buffers, verify_model
from .signals import decimate, envelope_test_signal, pair_test_signal, test_signal

__all__ = [
    "Check", "ENVELOPE_BANDS", "ENVELOPE_FLOOR", "ENVELOPE_FRAME_DIVISOR", "ENVELOPE_HOP", "ENVELOPE_MAX_RESOLUTION", "ENVELOPE_MIN_LENGTH",
    "ENVELOPE_MIN_RESOLUTION", "ENVELOPE_SEEDS", "ENVELOPE_WINDOW", "EnvelopeDelay", "MAX_DEFAULT_BUFFER",
    "MIN_CORRELATION_FOR_DELAY", "PAIR_CHECK", "PAIR_DECODER", "PAIR_ENCODER", "VerifyReport", "decimate",
    "default_buffers", "delay_pair", "envelope_delay", "envelope_features", "envelope_test_signal", "frame_allowance",
    "measure_delay",
    "measure_envelope_delay", "pair_test_signal", "test_signal", "verify_model",
]
