"""Label a whole dataset: ``root/data/**`` -> ``root/metadata/{pitch,octave}/`` (vschaos2 format).

For every sound file ``root/data/<rel>`` both tasks get a line ``data/<rel><TAB>tracks/<rel>.txt``
in ``metadata.txt`` and a track file ``tracks/<rel>.txt`` (the relative path keeps names unique
when two folders hold files with the same basename). ``classes.txt`` names the ids. Only
``metadata/pitch`` and ``metadata/octave`` are ever written; entries of files not processed in
this run are kept as they are.
"""
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch

from vschaos.data.audio import AudioReadError, audio_info, load_audio
from vschaos.data.metadata import format_classes, format_metadata, parse_metadata
from vschaos.data.problems import printable, printable_name
from vschaos.data.textlines import TextFileError, encode_text, read_text, unwritable_name
from vschaos.data.tree import check_writable_inside, find_audio_files, outside_root
from vschaos.io import atomic_write, atomic_write_text
from vschaos.notes import octave_classes, pitch_classes
from vschaos.pitch.defaults import (DEFAULT_FMAX, DEFAULT_FMIN, DEFAULT_HOP_SECONDS, DEFAULT_MEDIAN_FRAMES,
                                    DEFAULT_MODEL, DEFAULT_SILENCE_DB, DEFAULT_THRESHOLD, MODELS)
from vschaos.pitch.tracker import track_pitch
from vschaos.pitch.tracks import format_track, pitch_octave_labels, merge_frames

TASKS = ("pitch", "octave")
# metadata.txt is rewritten at most this often (and always at the end, even on Ctrl-C): rewriting
# it after every file would cost O(files^2) writes on large datasets.
METADATA_FLUSH_SECONDS = 1.0


@dataclass
class ExtractionReport:
    """What :func:`extract_dataset` did; keys are ``data/...`` paths as in metadata.txt."""

    processed: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)  # (key, error message)

    @property
    def ok(self) -> bool:
        return not self.failed

    def format(self) -> str:
        lines = [f"pitch extraction: {len(self.processed)} labelled, {len(self.skipped)} already labelled "
                 f"(skipped), {len(self.failed)} failed"]
        lines += [f"  FAILED {printable_name(key)}: {message}" for key, message in self.failed]
        return printable("\n".join(lines))  # a file name that is not UTF-8 prints as \xNN


def dataset_key(root: Path, audio_path: Path) -> str:
    """``data/<relative path>`` (POSIX separators), the key used in metadata.txt."""
    return audio_path.relative_to(root).as_posix()


def track_name(key: str) -> str:
    """``data/a/b.wav -> tracks/a/b.wav.txt``: unique per file, readable, mirrors the data tree."""
    return "tracks/" + key[len("data/"):] + ".txt"


@contextmanager
def torch_threads(num_threads: Optional[int]) -> Iterator[None]:
    """Run the block with ``num_threads`` torch threads (unchanged when ``None``), then restore."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(max(1, int(num_threads)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_parameters(model: str, hop_seconds: float, fmin: float, fmax: float) -> None:
    """Raise ``ValueError`` before any work for settings that would fail on every file."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {MODELS}")
    if not hop_seconds > 0:
        raise ValueError(f"hop must be positive, got {hop_seconds}")
    if not 0 < fmin < fmax:
        raise ValueError(f"need 0 < fmin < fmax, got fmin={fmin} fmax={fmax}")


class _TaskMetadata:
    """One task's metadata.txt held in memory and written back atomically. It is read and written as the
    dataset readers read it (:mod:`vschaos.data.textlines`): a file whose name is not UTF-8 keeps the bytes of
    its name. Raises ``ValueError`` naming the file if it cannot be read (a folder, UTF-16 text)."""

    def __init__(self, task_dir: Path):
        self.task_dir = task_dir
        self.path = task_dir / "metadata.txt"
        try:
            text = read_text(self.path) if self.path.exists() else ""
        except TextFileError as error:
            raise ValueError(str(error.problem())) from error
        self.entries: Dict[str, Optional[str]] = parse_metadata(text)
        self.dirty = False

    def is_labelled(self, key: str) -> bool:
        value = self.entries.get(key)
        # a reference climbing out of the task (tracks/../../x) is not a label: the file is labelled again
        return (value is not None and value.startswith("tracks/") and (self.task_dir / value).is_file()
                and outside_root(self.task_dir / value, self.task_dir / "tracks") is None)

    def set(self, key: str, value: str) -> None:
        self.entries[key] = value
        self.dirty = True

    def flush(self) -> None:
        if self.dirty:
            data = encode_text(format_metadata(self.entries))
            atomic_write(self.path, lambda tmp: Path(tmp).write_bytes(data))
            self.dirty = False


def extract_dataset(root: Union[str, Path], model: str = DEFAULT_MODEL, hop_seconds: float = DEFAULT_HOP_SECONDS,
                    fmin: float = DEFAULT_FMIN, fmax: float = DEFAULT_FMAX, threshold: float = DEFAULT_THRESHOLD,
                    silence_db: float = DEFAULT_SILENCE_DB, median_frames: int = DEFAULT_MEDIAN_FRAMES,
                    force: bool = False, num_threads: Optional[int] = None, progress: bool = False,
                    log: Optional[Callable[[str], None]] = None) -> ExtractionReport:
    """Write pitch and octave track metadata for every sound file under ``root/data``.

    Files already present in both tasks' metadata.txt with existing track files are skipped
    unless ``force``. Unreadable files are reported in ``ExtractionReport.failed`` (and through
    ``log`` as they happen) and the run goes on. Tracking parameters: see :func:`track_pitch`. Raises
    ``ValueError`` naming the file (nothing written there) if ``metadata/pitch``, ``metadata/octave`` or a folder
    of their ``tracks/`` links out of the dataset root, or if a metadata.txt cannot be read.
    """
    check_parameters(model, hop_seconds, fmin, fmax)
    root = Path(root)
    data_dir = root / "data"
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no data/ folder in the dataset root")
    task_dirs = {task: root / "metadata" / task for task in TASKS}
    for task in TASKS:  # nothing read or written outside the dataset (a link in metadata/ could lead anywhere)
        for name in ("metadata.txt", "classes.txt", "tracks/x"):
            check_writable_inside(task_dirs[task] / name, root)
    metadata = {task: _TaskMetadata(task_dirs[task]) for task in TASKS}
    atomic_write_text(task_dirs["pitch"] / "classes.txt", format_classes(pitch_classes()))
    atomic_write_text(task_dirs["octave"] / "classes.txt", format_classes(octave_classes()))

    report = ExtractionReport()
    todo: List[Tuple[str, Path]] = []
    found, left_out = find_audio_files(data_dir, root)
    for problem in left_out:  # links out of the dataset, FIFOs: never read, said once
        report.failed.append((dataset_key(root, Path(problem.path)), str(problem)))
    for audio_path in found:
        key = dataset_key(root, audio_path)
        reason = unwritable_name(key)
        if reason is not None:  # its metadata.txt line would break the file
            report.failed.append((key, f"{printable_name(str(audio_path))}: {reason}"))
            continue
        if not force and all(metadata[task].is_labelled(key) for task in TASKS):
            report.skipped.append(key)
        else:
            todo.append((key, audio_path))

    iterator = todo
    if progress and todo:
        from tqdm import tqdm

        iterator = tqdm(todo, desc="extract_pitch", unit="file", dynamic_ncols=True)
    last_flush = time.monotonic()
    with torch_threads(num_threads):
        try:
            for key, audio_path in iterator:
                try:
                    sample_rate = int(audio_info(audio_path).samplerate)
                    audio = load_audio(audio_path, sample_rate)
                    track = track_pitch(audio, sample_rate, model=model, hop_seconds=hop_seconds, fmin=fmin,
                                        fmax=fmax, threshold=threshold, silence_db=silence_db,
                                        median_frames=median_frames)
                except (AudioReadError, RuntimeError, ValueError) as error:
                    # AudioReadError names the file already (printable: a name that is not UTF-8 as \xNN)
                    named = printable_name(str(audio_path)) in str(error)
                    message = str(error) if named else f"{printable_name(str(audio_path))}: {printable(str(error))}"
                    report.failed.append((key, message))
                    if log is not None:
                        log(printable(f"error: {message}"))
                    continue
                times = track.times.tolist()
                for task, labels in zip(TASKS, pitch_octave_labels(track)):
                    name = track_name(key)
                    check_writable_inside(task_dirs[task] / name, root)  # tracks/<folder> may be a link out
                    atomic_write_text(task_dirs[task] / name, format_track(merge_frames(labels, times, track.duration)))
                    metadata[task].set(key, name)
                report.processed.append(key)
                if time.monotonic() - last_flush >= METADATA_FLUSH_SECONDS:
                    for task in TASKS:
                        metadata[task].flush()
                    last_flush = time.monotonic()
        finally:
            # Also on Ctrl-C or an unexpected error: every finished file stays recorded, and the
            # progress bar gives the terminal back (an unclosed tqdm leaves its line and its
            # monitor thread behind).
            if iterator is not todo:
                iterator.close()
            for task in TASKS:
                metadata[task].flush()
    return report
