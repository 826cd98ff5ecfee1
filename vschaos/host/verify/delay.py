"""Delay measurement: waveform cross-correlation, and the envelope fallback for regenerated phase.

The definitions (what is measured, on which signals, with which resolution) are in
:mod:`vschaos.host.verify.delay_checks`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Tuple

import numpy as np

from .signals import envelope_test_signal

MIN_CORRELATION_FOR_DELAY = 0.3
# Envelope fallback (see vschaos.host.verify.delay_checks): analysis of the log band energies.
ENVELOPE_WINDOW = 256
ENVELOPE_HOP = 16
ENVELOPE_BANDS = 32
ENVELOPE_FLOOR = 1e-5  # relative to the loudest band frame: -50 dB, below which silence is all alike
ENVELOPE_SEEDS = (11, 12, 13, 14)
ENVELOPE_MIN_LENGTH = 16384  # several bursts and gaps, so the envelope correlation has one peak
ENVELOPE_MIN_RESOLUTION = 2 * ENVELOPE_HOP
ENVELOPE_MAX_RESOLUTION = 128
# A model that regenerates its phase from frames of F samples places energy within each frame as it likes:
# its envelope may lead or lag its declared delay by up to F / ENVELOPE_FRAME_DIVISOR (see delay_checks).
ENVELOPE_FRAME_DIVISOR = 4


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


def frame_allowance(frame: int) -> int:
    """Samples (>= 0) by which the envelope of a model working in frames of ``frame`` samples may lead or lag its
    declared delay: ``frame // ENVELOPE_FRAME_DIVISOR`` (0 for a sample-by-sample model, ``frame`` 1)."""
    return max(int(frame), 0) // ENVELOPE_FRAME_DIVISOR


@dataclass
class EnvelopeDelay:
    """Result of the envelope fallback: ``lag`` (median, samples), ``resolution`` (± samples), per-signal lags,
    and ``allowance`` (± samples, :func:`frame_allowance` of the model's frame). A declared delay passes within
    ``tolerance = resolution + allowance``."""

    lag: float
    resolution: int
    lags: List[float]
    correlation: float  # the lowest envelope correlation over the test signals
    allowance: int = 0
    frame: int = 1

    @property
    def measurable(self) -> bool:
        return self.correlation >= MIN_CORRELATION_FOR_DELAY and self.resolution <= ENVELOPE_MAX_RESOLUTION

    @property
    def tolerance(self) -> int:
        return self.resolution + self.allowance

    def describe(self) -> str:
        allowance = (f", allowance ±{self.allowance} samples = 1/{ENVELOPE_FRAME_DIVISOR} of the model's "
                     f"{self.frame}-sample frame" if self.allowance else "")
        return f"measured by envelope {self.lag:.0f} samples, resolution ±{self.resolution} samples{allowance}"

    def why_not(self) -> str:
        if self.correlation < MIN_CORRELATION_FOR_DELAY:
            return f"envelope correlation {self.correlation:.2f} < {MIN_CORRELATION_FOR_DELAY}"
        return (f"envelope lags {[round(v) for v in self.lags]} spread ±{self.resolution} > "
                f"{ENVELOPE_MAX_RESOLUTION} samples")


def envelope_delay(process: Callable[[np.ndarray], np.ndarray], length: int, frame: int = 1) -> EnvelopeDelay:
    """Run ``process`` (float64 ``(length,)`` in, out) on each envelope test signal and combine the lags;
    ``frame``: the model's frame in samples (its largest ratio; 1: none), which sets the allowance."""
    lags, correlations = [], []
    for seed in ENVELOPE_SEEDS:
        x = envelope_test_signal(length, seed)
        lag, correlation = measure_envelope_delay(x, process(x), length // 2)
        lags.append(lag)
        correlations.append(correlation)
    median = float(np.median(lags))
    spread = max(abs(lag - median) for lag in lags)
    return EnvelopeDelay(median, max(ENVELOPE_MIN_RESOLUTION, int(math.ceil(spread))), lags, min(correlations),
                         frame_allowance(frame), max(int(frame), 1))
