"""Shared test helpers: small synthesised sounds and the one test double of the model contract.
Area-specific fixtures live in their test files."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from vschaos.models.contract import PassThroughModel


def sigint_as_at_a_terminal() -> None:
    """``preexec_fn`` of a child a test sends Ctrl-C (SIGINT) to: SIGINT's default action, as a user's terminal
    gives it. A test run started in the background (``cmd &`` in a non-interactive shell) ignores SIGINT, and a
    child inherits an ignored signal: the test would then measure the shell, not our handling of Ctrl-C."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)

# One intra-op thread, the project's own policy for small work (vschaos/threads.py): the tests' tensors are
# tiny, and a second thread only adds synchronisation, which on a busy machine makes each streamed export
# call wait for a descheduled thread at every operation.
torch.set_num_threads(1)


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
def ended_pid() -> int:
    """The id of a process that has ended, as one killed in the middle of a write (its id being reused by
    the time a test asks is not a concern)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def synth():
    """Access to the sound synthesisers above from tests: ``synth.harmonic_tone(...)``."""
    import types

    return types.SimpleNamespace(harmonic_tone=harmonic_tone, chirp=chirp, white_noise=white_noise,
                                 write_wav=write_wav)


# the one test double of :class:`vschaos.models.contract.SpectralModel` (latent = features, std = ``std``, decode =
# identity, no label tasks): the package's own, which benchmarks use too
IdentitySpectralModel = PassThroughModel


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """The demo dataset, built once per test run and shared (read-only: tests that change a dataset copy it):
    8 files of 1.5 s at 22.05 kHz with instrument, pitch and octave labels."""
    from vschaos.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("demo"), sample_rate=22050, minutes=0.2, files_per_instrument=2)


@pytest.fixture
def tree(tmp_path, synth):
    """A small unlabelled dataset: ``ds/data/f{0,1,2}.wav``, harmonic tones of 1.0, 0.7 and 1.3 s at 8 kHz."""
    root = tmp_path / "ds"
    for i, seconds in enumerate((1.0, 0.7, 1.3)):
        synth.write_wav(root / f"data/f{i}.wav", synth.harmonic_tone(200.0 * (i + 1), seconds, 8000, seed=i), 8000)
    return root


@pytest.fixture
def identity_model():
    """The model-contract double, as a factory: ``identity_model(transform, std=1.0)``."""
    return IdentitySpectralModel


@pytest.fixture(scope="module")
def normalised_demo_vae():
    """An untrained demo-preset VAE (seeded) with a normalisation that varies across bins, as a fitted one does,
    in eval mode: decoding it gives sounds whose loudness and brightness the latents move."""
    from vschaos.cli.train import compose_config
    from vschaos.training.run import build_model

    torch.manual_seed(0)
    vae = build_model(compose_config("demo", [])).eval()
    n_bins = vae.transform.n_bins
    vae.transform.set_normalisation(torch.linspace(0.5, 0.05, n_bins), torch.linspace(0.6, 0.1, n_bins))
    return vae

