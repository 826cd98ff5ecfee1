"""Dataset tree parsing and validation: ``root/data/**`` audio + ``root/metadata/<task>/``.

:func:`load_index` reads everything a training needs and raises :class:`DatasetError` listing
every problem at once; :func:`validate_dataset` returns the same findings as a report (for
``data_tools/check_dataset.py`` and ``+check=1``).
"""
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from vschaos.data.audio import AudioReadError, audio_info, resample_problem, scan_audio_samples
from vschaos.data.metadata import (DatasetError, FileLabels, Problem, TaskMetadata, TaskSpec,
                                   available_tasks, parse_metadata_callbacks, read_task)
from vschaos.data.problems import printable
from vschaos.data.tree import find_audio_files
from vschaos.dsp.functional import frame_centres, num_frames


@dataclass
class AudioFile:
    """One sound file: ``key`` is its ``data/...`` path relative to the root (posix)."""

    key: str
    path: Path
    seconds: float
    file_rate: int
    file_frames: int  # samples per channel at the file's own rate

    def n_samples(self, sample_rate: int) -> int:
        """Length after resampling to ``sample_rate`` (as torchaudio's resample gives it)."""
        if sample_rate == self.file_rate:
            return self.file_frames
        g = math.gcd(int(sample_rate), int(self.file_rate))
        return int(math.ceil(self.file_frames * (sample_rate // g) / (self.file_rate // g)))


@dataclass
class DatasetIndex:
    """Files (sorted by key) and per-task metadata of a dataset root."""

    root: Path
    files: List[AudioFile]
    tasks: Dict[str, TaskMetadata]  # in task order
    problems: List[Problem] = field(default_factory=list)


def resolve_tasks(root: Path, tasks: Optional[Sequence[str]]) -> List[str]:
    """``None`` -> every task under ``metadata/`` (sorted); a list -> that order."""
    if tasks is None:
        return available_tasks(root)
    if isinstance(tasks, str):
        return [tasks]
    return [str(t) for t in tasks]


def load_index(root: Union[str, Path], tasks: Optional[Sequence[str]] = None,
               metadata_callbacks: Optional[Mapping] = None, raise_on_problems: bool = True) -> DatasetIndex:
    """Scan ``root/data`` recursively, read each audio header and each task's metadata.

    Every problem (missing data/, empty dataset, unreadable audio, bad metadata lines, ...) is
    collected; with ``raise_on_problems`` a :class:`DatasetError` lists them all.
    """
    root = Path(root)
    problems: List[Problem] = []
    data_dir = root / "data"
    files: List[AudioFile] = []
    if not root.is_dir():
        problems.append(Problem(str(root), None, "dataset root not found"))
    elif not data_dir.is_dir():
        problems.append(Problem(str(data_dir), None, "no data/ folder: put the sound files in ROOT/data/"))
    else:
        found, problems = find_audio_files(data_dir, root)
        for path in found:
            key = path.relative_to(root).as_posix()
            try:
                info = audio_info(path)
                if info.frames <= 0:
                    raise AudioReadError(path, "no samples")
                files.append(AudioFile(key, path, info.frames / info.samplerate, int(info.samplerate),
                                       int(info.frames)))
            except AudioReadError as error:
                problems.append(Problem(str(path), None, f"unreadable audio: {error.reason}"))
        if not files and not problems:
            problems.append(Problem(str(data_dir), None, "empty dataset: no sound files (.wav .aif .aiff "
                                                         ".flac .mp3 .ogg) under data/"))
    try:
        specs = parse_metadata_callbacks(metadata_callbacks)
    except ValueError as error:
        problems.append(Problem("data.dataset.metadata_callbacks", None, str(error)))
        specs = {}
    # keys of unreadable files still count as existing: the audio problem is reported once
    keys = {f.key for f in files} | {Path(p.path).relative_to(root).as_posix() for p in problems
                                     if p.path.startswith(str(data_dir)) and os.path.lexists(p.path)}
    task_meta: Dict[str, TaskMetadata] = {}
    for task in resolve_tasks(root, tasks):
        meta = read_task(root, specs.get(task, TaskSpec(task)), keys)
        problems.extend(meta.problems)
        task_meta[task] = meta
    index = DatasetIndex(root, files, task_meta, problems)
    if raise_on_problems and problems:
        raise DatasetError(problems, header=f"dataset {root} has problems")
    return index


def frame_labels(labels: Optional[FileLabels], n_frames: int, n_fft: int, hop: int, sample_rate: int,
                 dtype: str = "int") -> np.ndarray:
    """Label of each frame ``(n_frames,)``, taken at the frame's centre time.

    The centre of frame ``t`` is sample ``t * hop + hop - n_fft / 2`` (see dsp.functional), i.e.
    ``(t * hop + hop - n_fft / 2) / sample_rate`` seconds. Missing: -1 (int) or NaN (float).
    """
    if labels is None:
        if dtype == "float":
            return np.full(n_frames, np.nan, dtype=np.float64)
        return np.full(n_frames, -1, dtype=np.int64)
    times = frame_centres(n_frames, n_fft, hop).numpy() / float(sample_rate)
    return labels.at(times)


def sample_problems(files: Sequence[AudioFile]) -> List[Problem]:
    """A problem per file whose samples are unusable (NaN/Inf, or beyond
    ``vschaos.data.audio.MAX_SAMPLE_MAGNITUDE``), see :func:`vschaos.data.audio.scan_audio_samples`."""
    problems: List[Problem] = []
    for audio in files:
        try:
            reason = scan_audio_samples(audio.path)
        except AudioReadError as error:
            problems.append(Problem(str(audio.path), None, f"unreadable audio: {error.reason}"))
            continue
        if reason is not None:
            problems.append(Problem(str(audio.path), None, reason))
    return problems


@dataclass
class TaskReport:
    """Per-task findings: files labelled, labelled seconds/frames, frames per class."""

    name: str
    dtype: str
    n_classes: Optional[int]
    class_names: Optional[Dict[int, str]]
    files_labelled: int = 0
    files_single: int = 0
    files_tracks: int = 0
    labelled_seconds: float = 0.0
    labelled_frames: int = 0
    total_frames: int = 0
    histogram: Dict[int, int] = field(default_factory=dict)  # class id -> frames (int tasks)
    problems: List[Problem] = field(default_factory=list)


@dataclass
class DatasetReport:
    """What :func:`validate_dataset` found. ``ok`` is False when there is any problem."""

    root: Path
    files: List[str]
    durations: List[float]
    sample_rate: Optional[int]
    n_fft: int
    hop: int
    tasks: Dict[str, TaskReport]
    problems: List[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def total_seconds(self) -> float:
        return float(sum(self.durations))

    def format(self) -> str:
        """The human-readable report printed by ``check_dataset.py``; file names that are not UTF-8 are
        shown with their bytes escaped (:func:`vschaos.data.problems.printable`), so any stream can print it."""
        out = [f"dataset {self.root}",
               f"  {len(self.files)} audio files, {self.total_seconds:.1f} s "
               f"({self.total_seconds / 60:.1f} min); frames counted with n_fft {self.n_fft}, hop {self.hop}"
               + (f", sample rate {self.sample_rate}" if self.sample_rate else ", files' own rates")]
        for name, task in self.tasks.items():
            classes = f"{task.n_classes} classes" if task.n_classes is not None else "float values"
            share = task.labelled_frames / task.total_frames if task.total_frames else 0.0
            out.append(f"task '{name}' ({task.dtype}, {classes}): {task.files_labelled}/{len(self.files)} files "
                       f"labelled ({task.files_single} single, {task.files_tracks} tracks), "
                       f"{task.labelled_seconds:.1f} s, {task.labelled_frames}/{task.total_frames} frames "
                       f"({100 * share:.1f}%) labelled")
            if task.histogram:
                names = task.class_names or {}
                cells = [f"{i}{' (' + names[i] + ')' if i in names else ''}: {n}" for i, n in sorted(task.histogram.items())]
                out.append("    frames per class: " + ", ".join(cells))
            for problem in task.problems:
                out.append(f"    ERROR {problem}")
        other = [p for p in self.problems if all(p not in t.problems for t in self.tasks.values())]
        for problem in other:
            out.append(f"ERROR {problem}")
        out.append("OK" if self.ok else f"{len(self.problems)} problem(s) found")
        return printable("\n".join(out))


def validate_dataset(root: Union[str, Path], tasks: Optional[Sequence[str]] = None,
                     sample_rate: Optional[int] = None, metadata_callbacks: Optional[Mapping] = None,
                     n_fft: int = 2048, hop: int = 512, scan_samples: bool = True) -> DatasetReport:
    """Check a dataset tree and count what it holds; never raises on dataset problems.

    Frames are counted from audio headers at ``sample_rate`` (default: each file's own rate)
    with the DGT frame layout of ``n_fft``/``hop``; a frame is labelled if its centre is.
    ``scan_samples``: also decode float sound files and report NaN/Inf or absurdly large samples
    (integer PCM files are never decoded: their samples are always in range).
    """
    index = load_index(root, tasks, metadata_callbacks, raise_on_problems=False)
    if scan_samples:
        index.problems.extend(sample_problems(index.files))
    if sample_rate is not None:  # training would stop at the first such file
        for audio in index.files:
            reason = resample_problem(audio.file_rate, sample_rate)
            if reason is not None:
                index.problems.append(Problem(str(audio.path), None, reason))
    reports: Dict[str, TaskReport] = {}
    for name, meta in index.tasks.items():
        report = TaskReport(name, meta.spec.dtype, meta.n_classes, meta.class_names, problems=list(meta.problems))
        for audio in index.files:
            rate = sample_rate or audio.file_rate
            n = num_frames(audio.n_samples(rate), n_fft, hop)
            report.total_frames += n
            labels = meta.labels.get(audio.key)
            if labels is None:
                continue
            report.files_labelled += 1
            if meta.kinds.get(audio.key) == "tracks":
                report.files_tracks += 1
            else:
                report.files_single += 1
            values = frame_labels(labels, n, n_fft, hop, rate, meta.spec.dtype)
            present = values >= 0 if meta.spec.dtype == "int" else ~np.isnan(values)
            report.labelled_frames += int(present.sum())
            starts = np.clip(labels.onsets, 0.0, audio.seconds)
            ends = np.clip(labels.offsets, 0.0, audio.seconds)
            valid = labels.values >= 0 if meta.spec.dtype == "int" else ~np.isnan(labels.values)
            report.labelled_seconds += float(np.sum((ends - starts)[valid]))
            if meta.spec.dtype == "int":
                ids, counts = np.unique(values[present], return_counts=True)
                for i, c in zip(ids.tolist(), counts.tolist()):
                    report.histogram[i] = report.histogram.get(i, 0) + c
        reports[name] = report
    return DatasetReport(Path(root), [f.key for f in index.files], [f.seconds for f in index.files],
                         sample_rate, n_fft, hop, reports, index.problems)
