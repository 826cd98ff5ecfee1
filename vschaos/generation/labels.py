"""Labels for generation: ``--labels task=value`` parsing, class names, training-tree metadata.

Label sources, in order of precedence (per task the model is conditioned on):

1. ``--labels task=value`` (a class name, or ``id:N`` for a raw id: :func:`user_label_to_id`), the same
   for every frame;
2. for a decoder task that has a predictor: the model's own prediction from the latent
   (left absent here; :meth:`SpectralVAE.decode` completes it);
3. the file's metadata, when the file lies inside the run's training tree
   (``cfg.data.dataset.root``/data/...), read per frame at the frame centres;
4. otherwise there is no source: :class:`GenerationError` (the message says how to give one).
"""
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import torch
from torch import Tensor

from vschaos.data.dataset import frame_labels
from vschaos.data.textlines import parse_id
from vschaos.data.metadata import (FileLabels, Problem, TaskMetadata, parse_metadata_callbacks, read_classes,
                                   read_task, TaskSpec)
from vschaos.dsp.transforms import SpectralTransform
from vschaos.generation.errors import GenerationError


def parse_label_arguments(items: Optional[Sequence[str]]) -> Dict[str, str]:
    """``["pitch=A", "octave=5"]`` -> ``{"pitch": "A", "octave": "5"}`` (raw strings)."""
    parsed: Dict[str, str] = {}
    for item in items or []:
        task, sep, value = item.partition("=")
        task, value = task.strip(), value.strip()
        if not sep or not task or not value:
            raise GenerationError(f"--labels expects task=value items, got {item!r}")
        if task in parsed:
            raise GenerationError(f"--labels gives task {task!r} twice")
        parsed[task] = value
    return parsed


ID_PREFIX = "id:"
# Enharmonic spellings a musician may type for the built-in pitch classes (sharps are the class names).
FLAT_ALIASES = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}


def builtin_class_names(task: str, n_classes: int) -> Optional[Dict[int, str]]:
    """Names of the pitch tasks written by ``extract_pitch.py`` (docs/INTERFACES.md), when the
    task has that name and size: lets ``--labels pitch=A octave=4`` work without the dataset."""
    from vschaos.notes import octave_classes, pitch_classes

    if task == "pitch" and n_classes == 12:
        return dict(pitch_classes())
    if task == "octave" and n_classes == 11:
        return dict(octave_classes())
    return None


def load_class_names(dataset_root: Optional[Path], task_dims: Mapping[str, int]) -> Dict[str, Dict[int, str]]:
    """``{task: {id: name}}`` from ``root/metadata/<task>/classes.txt`` when readable, else the
    built-in pitch names (:func:`builtin_class_names`), else nothing for that task."""
    names: Dict[str, Dict[int, str]] = {}
    for task, dim in task_dims.items():
        classes: Optional[Dict[int, str]] = None
        if dataset_root is not None:
            path = Path(dataset_root) / "metadata" / task / "classes.txt"
            if path.is_file():
                problems: List[Problem] = []
                try:
                    classes = read_classes(path, problems) or None
                except (OSError, UnicodeDecodeError):
                    classes = None
        if classes is None:
            classes = builtin_class_names(task, int(dim))
        if classes:
            names[task] = classes
    return names


def _name_lookup(names: Mapping[int, str]) -> Dict[str, int]:
    """Name -> id, plus the flat spellings of sharp names (``Bb`` -> the id of ``A#``) where the
    flat is not itself a class name."""
    by_name = {name: class_id for class_id, name in names.items()}
    for flat, sharp in FLAT_ALIASES.items():
        if sharp in by_name and flat not in by_name:
            by_name[flat] = by_name[sharp]
    return by_name


def user_label_to_id(task: str, value: str, n_classes: int, names: Optional[Mapping[int, str]]) -> int:
    """One label typed by a person (``--labels task=value``) -> class id; ``ValueError`` with a
    one-line message naming the task, the value and what is accepted.

    The rule (docs/GENERATING.md, "Labels as you write them"):

    * ``id:N`` is always the raw class id N (as stored in metadata files and sent to nn~ inlets);
    * otherwise, where the task has class names (its ``classes.txt``, or the built-in pitch and
      octave names), the value is a class NAME: ``octave=4`` is the class named ``4`` (octave 4,
      id 5), ``pitch=A`` the note A (``Bb`` = ``A#``). A value that names no class is an error,
      even if it is an integer: it never silently falls back to an id;
    * a task without class names has nothing but ids: a plain integer is the id.
    """
    shown = f"{task}={value}"
    ids = f"ids 0..{n_classes - 1}"
    if value.startswith(ID_PREFIX):
        text = value[len(ID_PREFIX):].strip()
        class_id = parse_id(text)  # ASCII digits only, as in metadata files: int() also takes '1_0' and '٣'
        if class_id is None:
            raise ValueError(f"--labels {shown}: '{ID_PREFIX}' must be followed by an integer class id ({ids})")
        if not 0 <= class_id < n_classes:
            raise ValueError(f"--labels {shown}: out of range, task {task!r} has {ids}")
        return class_id
    if names:
        by_name = _name_lookup(names)
        if value in by_name:
            return by_name[value]
        listed = ", ".join(names[i] for i in sorted(names))
        raise ValueError(f"--labels {shown}: no {task} class is named {value!r} (names: {listed}); "
                         f"a raw class id is written {task}={ID_PREFIX}N ({ids})")
    class_id = parse_id(value)
    if class_id is None:
        raise ValueError(f"--labels {shown}: task {task!r} has no class names (no classes.txt): "
                         f"give a class id ({ids})")
    if not 0 <= class_id < n_classes:
        raise ValueError(f"--labels {shown}: out of range, task {task!r} has {ids}")
    return class_id


def resolve_label_values(raw: Mapping[str, str], task_dims: Mapping[str, int],
                         class_names: Mapping[str, Mapping[int, str]]) -> Dict[str, int]:
    """Turn raw ``--labels`` values into class ids with :func:`user_label_to_id` (names win, ``id:N``
    for raw ids), checking tasks, names and ranges. Every problem is reported in one
    :class:`GenerationError`."""
    resolved: Dict[str, int] = {}
    problems: List[str] = []
    for task, value in raw.items():
        if task not in task_dims:
            known = ", ".join(task_dims) if task_dims else "none: this model is not conditioned"
            problems.append(f"unknown task {task!r} in --labels (the model's tasks: {known})")
            continue
        try:
            resolved[task] = user_label_to_id(task, value, int(task_dims[task]), class_names.get(task))
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise GenerationError("; ".join(problems))
    return resolved


class TrainingMetadata:
    """Per-frame labels of files that belong to a training tree ``root/data/...``.

    Each task's metadata is read once, for the keys asked for (other lines are ignored: the
    training already validated them).
    """

    def __init__(self, root: Optional[Path], tasks: Iterable[str], callbacks: Optional[Mapping] = None,
                 candidate_files: Iterable[Path] = ()):
        self.root = Path(root).resolve() if root is not None else None
        self.tasks: Dict[str, TaskMetadata] = {}
        if self.root is None or not (self.root / "metadata").is_dir():
            return
        try:
            specs = parse_metadata_callbacks(callbacks)
        except ValueError:
            specs = {}
        keys = {key for key in (self.key_of(path) for path in candidate_files) if key is not None}
        for task in tasks:
            if (self.root / "metadata" / task / "metadata.txt").is_file():
                self.tasks[task] = read_task(self.root, specs.get(task, TaskSpec(task)), keys)

    def key_of(self, path: Path) -> Optional[str]:
        """``data/...`` key of ``path`` if it lies in the tree's ``data/`` folder, else ``None``."""
        if self.root is None:
            return None
        resolved = Path(path).resolve()
        data_dir = self.root / "data"
        if data_dir not in resolved.parents:
            return None
        return resolved.relative_to(self.root).as_posix()

    def file_labels(self, path: Path, task: str) -> Optional[FileLabels]:
        """The file's labels for ``task``, or ``None`` (not in the tree, task unread, no line)."""
        key = self.key_of(path)
        meta = self.tasks.get(task)
        if key is None or meta is None or meta.spec.dtype != "int":
            return None
        return meta.labels.get(key)


def labels_for_frames(n_frames: int, transform: SpectralTransform, *, fixed: Mapping[str, int],
                      encoder_tasks: Sequence[str], decoder_tasks: Sequence[str] = (),
                      predicted_tasks: Sequence[str] = (), metadata: Optional[TrainingMetadata] = None,
                      path: Optional[Path] = None) -> Dict[str, Tensor]:
    """Per-frame labels ``{task: LongTensor (n_frames,)}`` for one sound, following the order of
    sources in the module docstring; metadata is read at the centres of ``transform``'s frames.
    Predicted decoder tasks without a fixed label are left out (the model predicts them); raises
    :class:`GenerationError` for a task with no source."""
    labels: Dict[str, Tensor] = {}
    tasks = list(dict.fromkeys(list(encoder_tasks) + list(decoder_tasks)))
    for task in tasks:
        if task in fixed:
            labels[task] = torch.full((n_frames,), int(fixed[task]), dtype=torch.long)
            continue
        if task in predicted_tasks and task not in encoder_tasks:
            continue
        found = metadata.file_labels(path, task) if metadata is not None and path is not None else None
        if found is not None:
            values = frame_labels(found, n_frames, int(transform.n_fft), int(transform.hop),
                                  int(transform.sample_rate), dtype="int")
            labels[task] = torch.from_numpy(values).long()
            continue
        role = "the encoder" if task in encoder_tasks else "the decoder"
        where = ("it is not in the training dataset" if metadata is None or metadata.root is None
                 else f"it has no '{task}' metadata in the training dataset {metadata.root}")
        raise GenerationError(f"task {task!r} conditions {role} and has no label source for "
                              f"{path if path is not None else 'this sound'} ({where}): "
                              f"give one with --labels {task}=VALUE")
    return labels
