"""Which preset for a dataset: ``dgt_harmonic`` for one pitched source at a time, ``dgt_mid`` for everything else.

``dgt_harmonic``'s decoder writes partials at the f0 its tracker measures, one f0 per frame: it suits material
whose frames mostly carry one clear pitch. :func:`recommend_dataset` reads a bounded sample of a dataset
(:func:`sample_plan`: at most ``max_seconds`` of audio, spread over files chosen evenly through the sorted file
list, so a large folder costs no more than a small one), measures it (:mod:`vschaos.pitch.material`) and
:func:`recommend` decides. ``train_model.py --config-name auto`` and ``check_dataset.py`` print the same
:meth:`Recommendation.line`. The thresholds below were set on rendered notes, drums, speech, music and
synthesised tones (``python -m experiments.preset_choice``, results in ``experiments/results/preset_choice.md``).
"""
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf

from vschaos.data.audio import resample_problem
from vschaos.data.tree import find_audio_files
from vschaos.filenames import printable, soundfile_name
from vschaos.pitch.material import SAMPLE_RATE, MaterialMeasures, measure_signals

HARMONIC = "dgt_harmonic"
GENERAL = "dgt_mid"
DEFAULT_MAX_SECONDS = 60.0
MIN_EXCERPT_SECONDS = 2.0  # shorter excerpts of long files say little about onsets and pitch movement

# dgt_harmonic needs all three. Set between the materials of experiments/results/preset_choice.md: single notes,
# melodies and synthesised tones on one side; chords, a melody over bass and chords, drums, speech (clean and in
# noise), produced music, noise and clicks on the other. The closest "other" is the ensemble (a melody over bass and
# chords): voiced in most frames, with the tracker less sure.
#: most sounding frames voiced: drums, noise, speech's consonants and most mixtures fall below
MIN_VOICED_SHARE = 0.85
#: the tracker confident on the typical frame: mixtures of notes and noisy recordings fall below
MIN_PERIODICITY = 0.8
#: few f0 jumps that come back (a tracker torn between simultaneous sources, octave slips)
MAX_JUMP_SHARE = 0.05


class RecommendError(ValueError):
    """The dataset cannot be sampled (no data/ folder, no sound file, none readable): one line naming it."""


@dataclass
class Recommendation:
    """The preset picked for a dataset (``preset``), why (one sentence with the measured numbers) and the
    measures themselves; ``skipped``: sampled files that could not be read (named in ``line``)."""

    preset: str
    reason: str
    measures: MaterialMeasures
    skipped: Tuple[str, ...] = ()

    def line(self) -> str:
        """One line for a terminal: ``preset=auto -> <preset>: <reason>``."""
        note = f" ({len(self.skipped)} unreadable file(s) left out, first {self.skipped[0]})" if self.skipped else ""
        return f"preset=auto -> {self.preset}: {self.reason}{note}"


def recommend(measures: MaterialMeasures) -> Recommendation:
    """Pick :data:`HARMONIC` when the voiced share, the median periodicity and the jump share all pass their
    thresholds, :data:`GENERAL` otherwise; the reason quotes the numbers and names what failed."""
    m = measures
    if m.sounding_seconds <= 0:
        return Recommendation(GENERAL, f"the {m.seconds:.0f} s sampled are silent (nothing above -60 dBFS): no "
                                       f"pitch to follow -> {GENERAL}", m)
    numbers = (f"{m.voiced_share:.0%} of frames voiced with median periodicity {m.periodicity_median:.2f}, "
               f"{m.jump_share:.1%} pitch jumps, {m.onsets_per_second:.1f} onsets/s, crest {m.crest_db:.0f} dB")
    if m.voiced_share >= MIN_VOICED_SHARE and m.periodicity_median >= MIN_PERIODICITY \
            and m.jump_share <= MAX_JUMP_SHARE:
        return Recommendation(HARMONIC, f"{numbers}: one pitched source -> {HARMONIC}", m)
    if m.voiced_share < MIN_VOICED_SHARE and m.periodicity_median < MIN_PERIODICITY:
        why = "no single clear pitch in many frames (percussion, noise, speech, several notes at once)"
    elif m.voiced_share < MIN_VOICED_SHARE:
        why = "pitch in only part of the sound"
    elif m.periodicity_median < MIN_PERIODICITY:
        why = "the pitch tracker is unsure (several sources or noise)"
    else:
        why = "the pitch jumps back and forth (several sources at once)"
    return Recommendation(GENERAL, f"{numbers}: {why} -> {GENERAL}", m)


def max_excerpts(max_seconds: float = DEFAULT_MAX_SECONDS, min_excerpt: float = MIN_EXCERPT_SECONDS) -> int:
    """How many files a sample of ``max_seconds`` reads at most (at least one)."""
    return max(1, int(max_seconds // min_excerpt))


def spread(n: int, k: int) -> List[int]:
    """``min(n, k)`` indices of ``range(n)`` evenly spaced, first and last included."""
    if n <= 0:
        return []
    return sorted(set(np.linspace(0, n - 1, min(n, k)).round().astype(int).tolist()))


def sample_plan(durations: Sequence[float], max_seconds: float = DEFAULT_MAX_SECONDS,
                min_excerpt: float = MIN_EXCERPT_SECONDS) -> List[Tuple[int, float, float]]:
    """``(file index, start s, length s)`` of the excerpts to read from files of ``durations`` (seconds, in
    the dataset's sorted order), at most ``max_seconds`` in all.

    ``k = min(n, max_seconds // min_excerpt)`` files are taken evenly spaced through the list (so the sample
    spans its folders), each up to ``max_seconds / k`` seconds: the whole file when it is that short, else its
    beginning when the file is at most twice as long (a note's attack), else its middle (a track's intro or
    fade says less). Raises ``ValueError`` for ``max_seconds <= 0``."""
    if not max_seconds > 0 or not min_excerpt > 0:
        raise ValueError(f"max_seconds and min_excerpt must be > 0, got {max_seconds}, {min_excerpt}")
    picks = spread(len(durations), max_excerpts(max_seconds, min_excerpt))
    if not picks:
        return []
    each = max_seconds / len(picks)
    plan = []
    for index in picks:
        duration = max(0.0, float(durations[index]))
        length = min(duration, each)
        start = 0.0 if duration <= 2 * each else (duration - length) / 2
        if length > 0:
            plan.append((index, start, length))
    return plan


def read_excerpt(path: Union[str, Path], start: float, seconds: float) -> np.ndarray:
    """``seconds`` of ``path`` from ``start`` (seconds), mixed to mono and resampled to :data:`SAMPLE_RATE`:
    ``(time,)`` float32. Only the excerpt is decoded. Raises ``ValueError`` naming the file if it cannot be
    read or resampled."""
    import torch
    import torchaudio.functional as AF

    name = printable(path)
    try:
        with sf.SoundFile(soundfile_name(path)) as audio:
            rate = int(audio.samplerate)
            problem = resample_problem(rate, SAMPLE_RATE)
            if problem is not None:
                raise ValueError(f"{name}: {problem}")
            first = int(round(start * rate))
            if audio.seekable() and first:
                audio.seek(min(first, max(0, audio.frames - 1)))
            data = audio.read(int(round(seconds * rate)), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise ValueError(f"{name}: cannot read the audio ({error})") from None
    mono = np.nan_to_num(data.mean(axis=1), nan=0.0, posinf=0.0, neginf=0.0)
    if rate != SAMPLE_RATE and mono.size:
        mono = AF.resample(torch.from_numpy(np.ascontiguousarray(mono)), rate, SAMPLE_RATE).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)


def _duration(path: Path) -> Optional[float]:
    try:
        info = sf.info(soundfile_name(path))
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None
    return info.frames / float(info.samplerate) if info.samplerate > 0 else None


def recommend_dataset(root: Union[str, Path], max_seconds: float = DEFAULT_MAX_SECONDS) -> Recommendation:
    """Sample ``root/data/**`` (:func:`sample_plan`), measure and :func:`recommend`. Files that cannot be read
    are left out (and listed in ``skipped``; ``check_dataset.py`` reports why). Raises :class:`RecommendError`
    when there is no ``data/`` folder, no sound file, or none that can be read."""
    data_dir = Path(root) / "data"
    if not data_dir.is_dir():
        raise RecommendError(f"{printable(data_dir)}: no such folder (a dataset holds its sound files in data/)")
    files, _ = find_audio_files(data_dir, root)
    if not files:
        raise RecommendError(f"{printable(data_dir)}: no sound file to look at")
    if not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
    chosen = [files[i] for i in spread(len(files), max_excerpts(max_seconds))]  # headers of these only: fast
    durations = [_duration(path) for path in chosen]
    skipped = [printable(path) for path, d in zip(chosen, durations) if d is None]
    readable = [(path, d) for path, d in zip(chosen, durations) if d is not None]
    signals = []
    for index, start, length in sample_plan([d for _, d in readable], max_seconds):
        try:
            signals.append(read_excerpt(readable[index][0], start, length))
        except ValueError:
            skipped.append(printable(readable[index][0]))
    if not signals:
        raise RecommendError(f"{printable(data_dir)}: none of the {len(files)} sound files could be read")
    result = recommend(measure_signals(signals))
    result.skipped = tuple(skipped)
    return result


def describe(measures: MaterialMeasures) -> str:
    """The measures as ``key=value`` pairs (for logs and results tables)."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) and math.isfinite(v) else f"{k}={v}"
                     for k, v in measures.as_dict().items())
