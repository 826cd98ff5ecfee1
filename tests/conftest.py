"""Shared test helpers: small synthesised sounds. Area-specific fixtures live in their test files."""
import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

# The suite runs on 2-core machines beside other work: keep torch from oversubscribing.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def harmonic_tone(freq: float, seconds: float, sample_rate: int, n_harmonics: int = 6,
                  amplitude: float = 0.5, seed: int = 0) -> np.ndarray:
    """A harmonic tone with 1/k partial amplitudes, short fades, float32 ``(time,)``."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(seed)
    out = np.zeros_like(t)
    for k in range(1, n_harmonics + 1):
        if k * freq < sample_rate / 2:
            out += np.sin(2 * math.pi * k * freq * t + rng.uniform(0, 2 * math.pi)) / k
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01) if len(t) > 1 else 1.0
    out = amplitude * out / np.max(np.abs(out) + 1e-9) * fade
    return out.astype(np.float32)


def chirp(f0: float, f1: float, seconds: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    """Exponential sine sweep from ``f0`` to ``f1`` Hz, float32 ``(time,)``."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    k = math.log(f1 / f0) / seconds
    phase = 2 * math.pi * f0 * (np.exp(k * t) - 1) / k
    return (amplitude * np.sin(phase)).astype(np.float32)


def white_noise(seconds: float, sample_rate: int, amplitude: float = 0.3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(int(seconds * sample_rate))).astype(np.float32)


def write_wav(path, audio: np.ndarray, sample_rate: int) -> str:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    sf.write(str(path), audio, sample_rate)
    return str(path)


@pytest.fixture
def synth():
    """Access to the sound synthesisers above from tests: ``synth.harmonic_tone(...)``."""
    import types

    return types.SimpleNamespace(harmonic_tone=harmonic_tone, chirp=chirp, white_noise=white_noise,
                                 write_wav=write_wav)
