"""What kind of sound a set of signals is: measures of pitch (the CREPE tracker's voicing and confidence, how its
f0 jumps) and of percussiveness (onset density, crest factor), for :mod:`vschaos.pitch.recommend`.

Every measure is taken on mono audio at 16 kHz (the tracker's rate), frame by frame every
:data:`HOP_SECONDS`, over the *sounding* frames only: a frame sounds when its 20 ms RMS level is above
:data:`SILENCE_DB` dBFS and within :data:`DYNAMIC_RANGE_DB` of the loudest frame of its signal (the silence
between notes and a release's last decades say nothing about the material).
"""
import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from vschaos.pitch.defaults import DEFAULT_MODEL, DEFAULT_THRESHOLD
from vschaos.pitch.tracker import CREPE_SAMPLE_RATE, track_pitch

SAMPLE_RATE = CREPE_SAMPLE_RATE
#: frame hop of every measure: twice the labeller's 10 ms, half the network's time, and still several frames
#: per syllable or drum hit
HOP_SECONDS = 0.02
SILENCE_DB = -60.0  # dBFS: the labeller's silence (vschaos.pitch.defaults.DEFAULT_SILENCE_DB)
DYNAMIC_RANGE_DB = 50.0
LEVEL_WINDOW_SECONDS = 0.02
#: a voiced frame's f0 "jumps" when it is this far from the previous voiced frame's (beyond a vibrato's or a
#: glide's step in one hop) and returns within RETURN_FRAMES: octave slips and a tracker switching between
#: sources, not a melody's note changes
JUMP_CENTS = 100.0
RETURN_FRAMES = 3
#: onsets: a rise of the mean log band energy (dB per band, half-wave rectified) of at least this much from one
#: frame to the next, at a local maximum within :data:`ONSET_GAP_SECONDS`. Bands, not FFT bins: a glide's partial
#: moving from bin to bin is no onset
ONSET_RISE_DB = 6.0
ONSET_GAP_SECONDS = 0.05
ONSET_FFT = 512  # 32 ms at 16 kHz: short enough to separate hits
ONSET_BANDS = 24
ONSET_FLOOR_DB = 80.0  # band levels floored this far below the signal's loudest: a flux independent of level


@dataclass
class MaterialMeasures:
    """Measures of a set of signals (all fractions in [0, 1]).

    seconds: audio measured; sounding_seconds: of which sounding (see the module docstring).
    voiced_share: sounding frames the tracker calls voiced (periodicity >= its threshold).
    periodicity_median: median CREPE periodicity (confidence) of the sounding frames.
    jump_share: consecutive voiced frame pairs whose f0 jumps and comes back (:func:`returning_jumps`).
    onsets_per_second: onsets per sounding second. crest_db: median over the signals of
    ``20 log10(peak / RMS)`` of the sounding part. signals: how many were measured.
    """

    seconds: float
    sounding_seconds: float
    voiced_share: float
    periodicity_median: float
    jump_share: float
    onsets_per_second: float
    crest_db: float
    signals: int

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


@dataclass
class SignalFrames:
    """Frame-wise measures of one signal at the hop :data:`HOP_SECONDS` (``(frames,)`` each)."""

    sounding: np.ndarray      # bool
    voiced: np.ndarray        # bool (only where sounding)
    periodicity: np.ndarray   # float in [0, 1]
    cents: np.ndarray         # f0 in cents re 10 Hz, NaN where unvoiced
    onsets: int
    crest_db: float           # NaN when nothing sounds


def hop_samples() -> int:
    return int(round(HOP_SECONDS * SAMPLE_RATE))


def frame_levels_db(audio: np.ndarray, n_frames: int, hop: int) -> np.ndarray:
    """RMS level in dBFS of a :data:`LEVEL_WINDOW_SECONDS` window centred on sample ``i * hop``, ``(n_frames,)``
    (the tracker's frame centres)."""
    window = max(1, int(round(LEVEL_WINDOW_SECONDS * SAMPLE_RATE)))
    half = window // 2
    padded = np.pad(audio.astype(np.float64), (half, half + n_frames * hop + window))
    cumulative = np.concatenate([[0.0], np.cumsum(padded ** 2)])
    starts = np.arange(n_frames) * hop
    energy = (cumulative[starts + window] - cumulative[starts]) / window
    return 10.0 * np.log10(np.maximum(energy, 1e-20))


def sounding_frames(levels_db: np.ndarray) -> np.ndarray:
    """Frames above :data:`SILENCE_DB` and within :data:`DYNAMIC_RANGE_DB` of the loudest: ``(frames,)`` bool."""
    if levels_db.size == 0:
        return np.zeros(0, dtype=bool)
    return (levels_db >= SILENCE_DB) & (levels_db >= levels_db.max() - DYNAMIC_RANGE_DB)


def _band_matrix(n_bins: int) -> np.ndarray:
    """``(bins, ONSET_BANDS)`` 0/1 matrix summing FFT bins into log-spaced bands from 50 Hz to Nyquist."""
    freqs = np.arange(n_bins) * SAMPLE_RATE / (2.0 * (n_bins - 1))
    edges = np.geomspace(50.0, SAMPLE_RATE / 2.0, ONSET_BANDS + 1)
    index = np.clip(np.searchsorted(edges, freqs, side="right") - 1, 0, ONSET_BANDS - 1)
    matrix = np.zeros((n_bins, ONSET_BANDS))
    matrix[np.arange(n_bins), index] = freqs >= edges[0]
    return matrix


def count_onsets(audio: np.ndarray, sounding: np.ndarray) -> int:
    """Onsets in ``audio`` (16 kHz): peaks of the rectified rise of the floored log band energies, see
    :data:`ONSET_RISE_DB`, counted where the frame (at the same hop as ``sounding``) sounds."""
    hop = hop_samples()
    if audio.size < ONSET_FFT:
        return 0
    power = torch.stft(torch.from_numpy(audio.astype(np.float32)), ONSET_FFT, hop, window=torch.hann_window(ONSET_FFT),
                       center=True, pad_mode="constant", return_complex=True).abs().square().numpy().T  # (frames, bins)
    db = 10.0 * np.log10(np.maximum(power @ _band_matrix(power.shape[1]), 1e-20))
    floor = db.max() - ONSET_FLOOR_DB
    db = np.maximum(db, floor)
    # from the floor before the first frame: a hit at the very start of a file is an onset
    flux = np.maximum(np.diff(db, axis=0, prepend=np.full((1, db.shape[1]), floor)), 0.0).mean(axis=1)
    # frames whose window runs past the end see the cut as a broadband rise: not an onset
    flux[(audio.size - ONSET_FFT // 2) // hop + 1:] = 0.0
    gap = max(1, int(round(ONSET_GAP_SECONDS / HOP_SECONDS)))
    padded = np.pad(flux, gap, constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * gap + 1)
    peaks = (flux >= ONSET_RISE_DB) & (flux == windows.max(axis=1))
    n = min(len(peaks), len(sounding))
    return int(np.count_nonzero(peaks[:n] & sounding[:n]))


def returning_jumps(cents: np.ndarray, voiced: np.ndarray) -> Tuple[int, int]:
    """``(jumps, pairs)``: of the ``pairs`` of consecutive voiced frames, how many step by more than
    :data:`JUMP_CENTS` and come back within :data:`RETURN_FRAMES` frames (a later voiced frame within
    :data:`JUMP_CENTS` of the frame before the step). A melody's note change does not come back; a tracker
    torn between two sources, or slipping an octave, does."""
    both = voiced[1:] & voiced[:-1]
    steps = np.abs(np.diff(cents))
    jumps = 0
    for t in np.flatnonzero(both & (np.nan_to_num(steps, nan=0.0) > JUMP_CENTS)) + 1:
        after = cents[t + 1: t + 1 + RETURN_FRAMES]
        if np.any(np.abs(after[~np.isnan(after)] - cents[t - 1]) <= JUMP_CENTS):
            jumps += 1
    return jumps, int(both.sum())


def crest_factor_db(audio: np.ndarray, sounding: np.ndarray) -> float:
    """``20 log10(peak / RMS)`` of the samples of the sounding frames (hop :data:`HOP_SECONDS`); NaN if none."""
    hop = hop_samples()
    mask = np.repeat(sounding, hop)[: audio.size]
    if mask.size < audio.size:
        mask = np.concatenate([mask, np.zeros(audio.size - mask.size, dtype=bool)])
    samples = audio[mask].astype(np.float64)
    if samples.size == 0:
        return math.nan
    rms = math.sqrt(float(np.mean(samples ** 2)))
    return 20.0 * math.log10(max(float(np.max(np.abs(samples))), 1e-20) / max(rms, 1e-20))


def measure_signal(audio: np.ndarray, model: str = DEFAULT_MODEL) -> SignalFrames:
    """Frame-wise measures of one mono signal at :data:`SAMPLE_RATE` (``(time,)`` float)."""
    audio = np.asarray(audio, dtype=np.float32)
    # raw tracker output (no median filters): a switching f0 is what the jump share measures
    track = track_pitch(torch.from_numpy(audio), SAMPLE_RATE, model=model, hop_seconds=HOP_SECONDS,
                        silence_db=SILENCE_DB, median_frames=1)
    periodicity = track.periodicity.numpy().astype(np.float64)
    sounding = sounding_frames(frame_levels_db(audio, periodicity.size, hop_samples()))
    voiced = sounding & (periodicity >= DEFAULT_THRESHOLD) & track.voiced.numpy()
    f0 = track.f0_hz.numpy().astype(np.float64)
    cents = np.where(voiced, 1200.0 * np.log2(np.where(voiced, f0, 10.0) / 10.0), np.nan)
    return SignalFrames(sounding=sounding, voiced=voiced, periodicity=periodicity, cents=cents,
                        onsets=count_onsets(audio, sounding), crest_db=crest_factor_db(audio, sounding))


def summarise(frames: Sequence[SignalFrames]) -> MaterialMeasures:
    """Pool the frames of several signals into one :class:`MaterialMeasures` (shares over all frames)."""
    hop = HOP_SECONDS
    n_frames = sum(f.sounding.size for f in frames)
    sounding = sum(int(f.sounding.sum()) for f in frames)
    voiced = sum(int(f.voiced.sum()) for f in frames)
    periodicity: List[np.ndarray] = [f.periodicity[f.sounding] for f in frames]
    pairs = jumps = 0
    for f in frames:
        found, both = returning_jumps(f.cents, f.voiced)
        jumps, pairs = jumps + found, pairs + both
    crests = [f.crest_db for f in frames if not math.isnan(f.crest_db)]
    pooled = np.concatenate(periodicity) if periodicity else np.zeros(0)
    return MaterialMeasures(
        seconds=n_frames * hop, sounding_seconds=sounding * hop,
        voiced_share=voiced / sounding if sounding else 0.0,
        periodicity_median=float(np.median(pooled)) if pooled.size else 0.0,
        jump_share=jumps / pairs if pairs else 0.0,
        onsets_per_second=sum(f.onsets for f in frames) / (sounding * hop) if sounding else 0.0,
        crest_db=float(np.median(crests)) if crests else 0.0, signals=len(frames))


def measure_signals(signals: Sequence[np.ndarray], model: str = DEFAULT_MODEL) -> MaterialMeasures:
    """:class:`MaterialMeasures` of mono signals at :data:`SAMPLE_RATE` (each ``(time,)``)."""
    return summarise([measure_signal(s, model) for s in signals])
