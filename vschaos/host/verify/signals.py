"""Deterministic test signals of the verification, and nn~'s decimation of control-rate inlets."""
from __future__ import annotations

import math

import numpy as np


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
