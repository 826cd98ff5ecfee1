"""vschaos2 metadata readers: ``metadata.txt`` (single labels or track references),
``classes.txt`` and ``tracks/*.txt``; problems are collected with file and line, never raised one by one.

Formats (unchanged from vschaos2)::

    metadata/<task>/metadata.txt   data/.../file.wav<TAB>value          (single label)
                                   data/.../file.wav<TAB>tracks/f.txt   (track file)
    metadata/<task>/classes.txt    id<TAB>name
    metadata/<task>/tracks/f.txt   onset,offset<TAB>value               (seconds)

A value is an int id, a float (``type: float`` tasks), a class name from ``classes.txt``, or
``none``/empty (missing). A token written as an id (ASCII digits) is an id (so octave names such as
``4`` never shadow ids); anything else is looked up among the class names. A float label is a finite
ASCII decimal (``440``, ``-1.5``, ``4.4e2``); ``inf``, ``1_0`` or ``\u0663`` are problems, ``nan`` means
missing. Intervals are half-open ``[onset, offset)``; outside every interval a frame is missing.

How lines are numbered, which characters a line may hold, how a file whose name is not UTF-8 is named in
``metadata.txt`` (by the same bytes as on disk) and the syntax of numbers: :mod:`vschaos.data.textlines`. A key
written in another Unicode normalisation than the file's name (NFC/NFD) finds the file; one differing in case
does not (:class:`vschaos.data.tree.KeyMatcher`). Nothing outside the dataset root is read
(:mod:`vschaos.data.tree`).
"""
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

# DatasetError, Problem and TextFileError lived here before: importers of vschaos.data.metadata keep them
from vschaos.data.problems import DatasetError, Problem, quoted, shown  # noqa: F401
from vschaos.data.tree import KeyMatcher, outside_message, outside_root, task_name_problem
from vschaos.data.textlines import (TextFileError, content_lines, names_non_finite, not_utf8, parse_decimal,
                                    parse_id, python_reads_as_number, split_lines, undecodable_byte)

MISSING_TOKENS = ("", "none", "None", "NONE", "nan", "NaN")
SINGLE_READER = "read_single_metadata"
MULTI_READER = "read_multi_metadata"
INTERVAL_TOLERANCE = 1e-6  # seconds: rounding in written onsets/offsets is not an overlap
#: Largest number of classes of a task. The model sizes its label embeddings and predictors by the largest id
#: (+1): one stray id such as 2000000000 would ask for gigabytes of weights.
MAX_CLASSES = 1 << 16


@dataclass
class TaskSpec:
    """How a task is read: ``reader`` is ``read_single_metadata``, ``read_multi_metadata`` or
    ``None`` (auto-detect per line), ``dtype`` is ``int`` or ``float``."""

    name: str
    reader: Optional[str] = None
    dtype: str = "int"


@dataclass
class FileLabels:
    """Labels of one file for one task as sorted half-open intervals ``[onsets, offsets)``.

    ``values`` is int64 (``-1`` missing) or float64 (NaN missing). A single label is one
    interval ``(-inf, inf)``.
    """

    onsets: np.ndarray
    offsets: np.ndarray
    values: np.ndarray

    def at(self, times: np.ndarray) -> np.ndarray:
        """Label at each time ``(n,)`` seconds: the interval containing it, else missing."""
        index = np.searchsorted(self.onsets, times, side="right") - 1
        safe = np.clip(index, 0, max(len(self.onsets) - 1, 0))
        inside = (index >= 0) & (len(self.onsets) > 0)
        if len(self.onsets):
            inside &= times < self.offsets[safe]
        missing = -1 if self.values.dtype.kind == "i" else np.nan
        out = np.full(times.shape, missing, dtype=self.values.dtype)
        if len(self.onsets):
            out[inside] = self.values[safe[inside]]
        return out


@dataclass
class TaskMetadata:
    """Everything read for one task: labels per file key (``data/...``), classes, problems."""

    spec: TaskSpec
    labels: Dict[str, FileLabels] = field(default_factory=dict)
    class_names: Optional[Dict[int, str]] = None  # id -> name, from classes.txt
    kinds: Dict[str, str] = field(default_factory=dict)  # key -> "single" | "tracks"
    problems: List[Problem] = field(default_factory=list)

    @property
    def n_classes(self) -> Optional[int]:
        """From classes.txt (max id + 1), else max id seen + 1; ``None`` for float tasks."""
        if self.spec.dtype != "int":
            return None
        if self.class_names:
            return max(self.class_names) + 1
        seen = [int(v.max()) for v in (fl.values for fl in self.labels.values()) if len(v) and v.max() >= 0]
        return max(seen) + 1 if seen else 0


def parse_metadata_callbacks(callbacks: Optional[Mapping]) -> Dict[str, TaskSpec]:
    """vschaos2's ``metadata_callbacks`` ``{task: {name: read_single_metadata|read_multi_metadata,
    type: int|float}}`` -> ``TaskSpec`` per task. Raises ``ValueError`` on unknown names/types."""
    specs: Dict[str, TaskSpec] = {}
    for task, entry in (callbacks or {}).items():
        entry = entry or {}
        reader = entry.get("name")
        dtype = str(entry.get("type", "int"))
        if reader not in (None, SINGLE_READER, MULTI_READER):
            raise ValueError(f"data.dataset.metadata_callbacks.{task}.name: {reader!r} is not one of "
                             f"{SINGLE_READER}, {MULTI_READER}")
        if dtype not in ("int", "float"):
            raise ValueError(f"data.dataset.metadata_callbacks.{task}.type: {dtype!r} is not int or float")
        specs[str(task)] = TaskSpec(str(task), reader, dtype)
    return specs


def read_classes(path: Path, problems: List[Problem]) -> Dict[int, str]:
    """``classes.txt`` -> ``{id: name}``; malformed lines, duplicate ids/names become problems."""
    classes: Dict[int, str] = {}
    seen_names: Dict[str, int] = {}
    try:
        lines = content_lines(path, problems)
    except TextFileError as error:
        problems.append(error.problem())
        return classes
    for number, line in lines:
        parts = line.split("\t", 1) if "\t" in line else line.split(None, 1)
        if len(parts) != 2 or not parts[1].strip():
            problems.append(Problem(str(path), number, f"expected 'id<TAB>name', got {shown(line)}"))
            continue
        class_id = parse_id(parts[0])
        if class_id is None:
            problems.append(Problem(str(path), number, f"class id {shown(parts[0])} is not an integer (ASCII digits "
                                                       f"0-9)"))
            continue
        name = parts[1].strip()
        if class_id < 0:
            problems.append(Problem(str(path), number, f"class id {class_id} is negative"))
        elif class_id >= MAX_CLASSES:
            problems.append(Problem(str(path), number, too_large(class_id)))
        elif class_id in classes:
            problems.append(Problem(str(path), number, f"class id {class_id} defined twice"))
        elif name in seen_names:
            problems.append(Problem(str(path), number, f"class name {shown(name)} defined twice"))
        else:
            classes[class_id] = name
            seen_names[name] = class_id
    if not classes and not problems:
        problems.append(Problem(str(path), None, "no classes defined"))
    return classes


def too_large(class_id: int) -> str:
    """The problem of a class id beyond :data:`MAX_CLASSES`."""
    return (f"class id {class_id} is too large: ids number the classes from 0, at most {MAX_CLASSES - 1} (the model "
            f"has one embedding row per id up to the largest)")


def format_classes(classes: Sequence[Tuple[int, str]]) -> str:
    """``classes.txt`` text from ``(id, name)`` pairs: ``id<TAB>name`` lines (read back by
    :func:`read_classes`). The one writer of classes.txt, used by the demo, the data tools and the
    pitch extractor."""
    return "".join(f"{class_id}\t{name}\n" for class_id, name in classes)


def parse_metadata(text: str) -> Dict[str, Optional[str]]:
    """Raw ``metadata.txt`` text -> ``{key: value}`` in file order, for tools that rewrite the file
    (validation and label parsing are :func:`read_task`'s job). A line without a TAB maps to
    ``None`` so that rewriting keeps it; blank lines are dropped. Lines are split as the readers split them
    (:func:`vschaos.data.textlines.split_lines`): a stray control character stays inside its line."""
    entries: Dict[str, Optional[str]] = {}
    for line in split_lines(text):
        if not line.strip():
            continue
        if "\t" in line:
            key, value = line.split("\t", 1)
            entries[key] = value
        else:
            entries[line] = None
    return entries


def format_metadata(entries: Mapping[str, Optional[str]], sort_keys: bool = True) -> str:
    """Inverse of :func:`parse_metadata`: ``key<TAB>value`` lines (``key`` alone for ``None``),
    sorted by key by default so the file is stable whatever the order in which entries were added;
    ``sort_keys=False`` keeps the mapping's order."""
    keys = sorted(entries) if sort_keys else list(entries)
    return "".join((key if entries[key] is None else f"{key}\t{entries[key]}") + "\n" for key in keys)


class _ValueParser:
    """Turns value tokens into ids/floats for a task, reporting problems with file and line."""

    def __init__(self, task: str, dtype: str, class_names: Optional[Dict[int, str]]):
        self.task = task
        self.dtype = dtype
        self.class_names = class_names
        self.name_to_id = {name: i for i, name in (class_names or {}).items()}
        self.n_classes = max(class_names) + 1 if class_names else None

    def __call__(self, token: str, path: str, line: int, problems: List[Problem]) -> Optional[float]:
        """Returns the value, ``None`` for missing, or ``None`` after adding a problem."""
        token = token.strip()
        if token in MISSING_TOKENS:
            return None
        if self.dtype == "float":
            value = parse_decimal(token)
            if value is None or not math.isfinite(value):
                problems.append(Problem(path, line, f"task '{self.task}': {shown(token)} is not a finite decimal number "
                                                    f"(ASCII, e.g. 440, -1.5 or 4.4e2; 'none' if missing)"))
                return None
            return value
        value = parse_id(token)
        if value is None:
            if token in self.name_to_id:
                return self.name_to_id[token]
            # int() would take '1_0' or an Arabic-Indic digit: say why it is not an id here
            ascii_only = " (ids are ASCII digits 0-9)" if python_reads_as_number(token) else ""
            if self.class_names:
                problems.append(Problem(path, line, f"task '{self.task}': unknown class {shown(token)}{ascii_only} "
                                                    f"(classes.txt has {sorted(self.name_to_id)[:12]}"
                                                    f"{'...' if len(self.name_to_id) > 12 else ''})"))
            else:
                problems.append(Problem(path, line, f"task '{self.task}': {shown(token)} is not an integer id"
                                                    f"{ascii_only} and the task has no classes.txt (set "
                                                    f"metadata_callbacks.{self.task}.type: float for float labels)"))
            return None
        if value < 0:
            problems.append(Problem(path, line, f"task '{self.task}': id {value} is negative (write 'none' "
                                                f"for a missing label)"))
            return None
        if value >= MAX_CLASSES:
            problems.append(Problem(path, line, f"task '{self.task}': {too_large(value)}"))
            return None
        if self.n_classes is not None and value >= self.n_classes:
            problems.append(Problem(path, line, f"task '{self.task}': id {value} out of range: classes.txt "
                                                f"defines ids 0..{self.n_classes - 1}"))
            return None
        return value

    def array(self, values: List[Optional[float]]) -> np.ndarray:
        if self.dtype == "float":
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        return np.array([-1 if v is None else v for v in values], dtype=np.int64)


def read_track_file(path: Path, parse: _ValueParser, problems: List[Problem]) -> FileLabels:
    """``onset,offset<TAB>value`` lines -> sorted intervals; malformed, unsorted or overlapping
    intervals become problems (the offending line is dropped)."""
    onsets: List[float] = []
    offsets: List[float] = []
    values: List[Optional[float]] = []
    name = str(path)
    for number, line in content_lines(path, problems):
        parts = line.split("\t", 1) if "\t" in line else line.split(None, 1)
        times = parts[0].split(",")
        if len(times) != 2:
            problems.append(Problem(name, number, f"expected 'onset,offset<TAB>value', got {shown(line)}"))
            continue
        onset, offset = parse_decimal(times[0]), parse_decimal(times[1])
        if any(parse_decimal(t) is None and not names_non_finite(t) for t in times):
            problems.append(Problem(name, number, f"onset/offset {shown(parts[0])} are not numbers (ASCII decimals, "
                                                  f"e.g. 0.25)"))
            continue
        if onset is None or offset is None or not (math.isfinite(onset) and math.isfinite(offset)):
            problems.append(Problem(name, number, f"onset/offset {shown(parts[0])} must be finite numbers of "
                                                  f"seconds"))
            continue
        if offset < onset:
            problems.append(Problem(name, number, f"interval {onset},{offset} has offset before onset"))
            continue
        if onsets and onset < onsets[-1]:
            problems.append(Problem(name, number, f"intervals not sorted: onset {onset} before the previous "
                                                  f"onset {onsets[-1]}"))
            continue
        if offsets and onset < offsets[-1] - INTERVAL_TOLERANCE:
            problems.append(Problem(name, number, f"interval {onset},{offset} overlaps the previous one "
                                                  f"(which ends at {offsets[-1]})"))
            continue
        value = parse(parts[1] if len(parts) > 1 else "", name, number, problems)
        if offset > onset:  # empty intervals label nothing
            onsets.append(onset)
            offsets.append(offset)
            values.append(value)
    return FileLabels(np.array(onsets, dtype=np.float64), np.array(offsets, dtype=np.float64),
                      parse.array(values))


def _is_track_reference(value: str) -> bool:
    return value.startswith("tracks/") or value.endswith(".txt")


def read_task(root: Path, spec: TaskSpec, audio_keys: set) -> TaskMetadata:
    """Read ``root/metadata/<task>/`` (metadata.txt, classes.txt, tracks/) into :class:`TaskMetadata`.

    ``audio_keys`` are the ``data/...`` paths of the audio files found; a key naming anything
    else is a problem. Files without a line are simply missing for this task.
    """
    task_dir = root / "metadata" / spec.name
    meta = TaskMetadata(spec)
    metadata_path = task_dir / "metadata.txt"
    bad_name = task_name_problem(spec.name)
    if bad_name is not None:
        meta.problems.append(Problem(str(root / "metadata"), None, bad_name))
        return meta
    for path in (task_dir, metadata_path, task_dir / "classes.txt"):  # never read outside the dataset
        real = outside_root(path, root) if os.path.lexists(path) else None
        if real is not None:
            meta.problems.append(Problem(str(path), None, outside_message(real)))
            return meta
    if not metadata_path.exists():
        meta.problems.append(Problem(str(metadata_path), None, f"task '{spec.name}': metadata.txt not found"))
        return meta
    classes_path = task_dir / "classes.txt"
    if classes_path.exists():
        meta.class_names = read_classes(classes_path, meta.problems)
    parse = _ValueParser(spec.name, spec.dtype, meta.class_names)
    seen: Dict[str, int] = {}
    name = str(metadata_path)
    try:
        lines = content_lines(metadata_path, meta.problems, names=True)
    except TextFileError as error:
        meta.problems.append(error.problem())
        return meta
    matcher = KeyMatcher(audio_keys)
    for number, line in lines:
        key, _, value = line.partition("\t")
        key, value = key.strip(), value.strip()
        tracks = spec.reader == MULTI_READER or (spec.reader is None and _is_track_reference(value))
        byte = None if tracks else undecodable_byte(value)  # a track file's name may hold such bytes, a label not
        if byte is not None:
            meta.problems.append(Problem(name, number, not_utf8(byte)))
            continue
        normalised = Path(key).as_posix()
        parts = Path(key).parts
        if not parts or parts[0] != "data" or ".." in parts or Path(key).is_absolute():
            slash = " (folders are separated by /, not \\)" if "\\" in key else ""
            meta.problems.append(Problem(name, number, f"key {quoted(key)} is not a path inside data/ "
                                                       f"(expected 'data/...<TAB>value'){slash}"))
            continue
        normalised, hint = matcher.match(normalised)
        if normalised is None:
            hint += "" if "\t" in line else " (key and value must be separated by a TAB)"
            byte = undecodable_byte(key)
            if byte is not None:
                hint += (f" (byte 0x{byte:02x} is not UTF-8: a file name that is not UTF-8 is written with the "
                         f"bytes of its name on disk; is metadata.txt saved in another encoding?)")
            meta.problems.append(Problem(name, number, f"audio file {quoted(key)} not found{hint}"))
            continue
        if normalised in seen:
            meta.problems.append(Problem(name, number, f"{quoted(key)} already labelled on line "
                                                       f"{seen[normalised]}"))
            continue
        seen[normalised] = number
        if tracks:
            track_path = (task_dir / value).resolve()
            if not value or task_dir.resolve() not in track_path.parents:
                meta.problems.append(Problem(name, number, f"track file {quoted(value)} is not inside {task_dir}"))
                continue
            if not track_path.exists():
                meta.problems.append(Problem(name, number, f"track file {task_dir / value} not found"))
                continue
            try:
                meta.labels[normalised] = read_track_file(task_dir / value, parse, meta.problems)
            except TextFileError as error:
                meta.problems.append(error.problem())
                continue
            meta.kinds[normalised] = "tracks"
        else:
            parsed = parse(value, name, number, meta.problems)
            meta.labels[normalised] = FileLabels(np.array([-np.inf]), np.array([np.inf]), parse.array([parsed]))
            meta.kinds[normalised] = "single"
    return meta


def available_tasks(root: Path) -> List[str]:
    """Sorted names of the sub-folders of ``root/metadata`` that hold a ``metadata.txt`` (a
    ``metadata.txt`` that is not a file still names a task, so that :func:`read_task` reports it)."""
    meta_dir = Path(root) / "metadata"
    if not meta_dir.is_dir():
        return []
    return sorted(p.name for p in meta_dir.iterdir() if p.is_dir() and (p / "metadata.txt").exists())
