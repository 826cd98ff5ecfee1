"""Label a dataset by its folders: each file's first-level sub-folder of ``data/`` is its class."""
from pathlib import Path
from typing import Dict, List, Union

from vschaos.data.audio import scan_audio_files
from vschaos.data.metadata import Problem, format_classes, format_metadata, read_classes
from vschaos.data.problems import printable, printable_name
from vschaos.data.textlines import encode_text, unwritable_name
from vschaos.data.tree import check_writable_inside, task_name_problem
from vschaos.io import atomic_write, atomic_write_text


def folders_to_metadata(root: Union[str, Path], task: str, force: bool = False) -> List[str]:
    """Write ``metadata/TASK/metadata.txt`` (single labels) and ``classes.txt`` from the first-level
    sub-folder of ``data/`` each file lies in; files directly in ``data/`` get ``none``.

    A new task numbers its classes in sorted folder order. Refuses (``FileExistsError``) to replace an existing
    task unless ``force``; with ``force`` the ids of an existing ``classes.txt`` are kept (a trained model's
    class 1 stays class 1) and new folders get the next ids, in sorted order. Returns the class names by id.

    A file whose name is not UTF-8 is written in ``metadata.txt`` with the bytes of its name (read back by
    :func:`vschaos.data.metadata.read_task`); a folder name that is not UTF-8 becomes a class name with those
    bytes written ``\\xNN`` (:func:`vschaos.data.problems.printable`), since ``classes.txt`` is UTF-8 text.
    ``ValueError`` (nothing written): ``task`` is not one folder name, ``metadata/TASK`` links out of the
    dataset root, or a file's name holds a TAB or a line break (:func:`vschaos.data.textlines.unwritable_name`).
    """
    root = Path(root)
    bad_name = task_name_problem(task)
    if bad_name is not None:
        raise ValueError(bad_name)
    task_dir = root / "metadata" / task
    for written in (task_dir / "metadata.txt", task_dir / "classes.txt"):  # nothing written outside the dataset
        check_writable_inside(written, root)
    if (task_dir / "metadata.txt").exists() and not force:
        raise FileExistsError(f"{task_dir / 'metadata.txt'} exists; pass --force to overwrite it")
    data_dir = root / "data"
    files = scan_audio_files(data_dir) if data_dir.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no sound files under {data_dir}")
    relative = [p.relative_to(root) for p in files]
    for path, key in zip(files, relative):
        reason = unwritable_name(key.as_posix())
        if reason is not None:  # nothing written: a broken metadata.txt would mislabel the files after it
            raise ValueError(f"{printable_name(str(path))}: {reason}")
    ids = _existing_class_ids(task_dir / "classes.txt")
    folder_class = {r.parts[1]: printable(r.parts[1]) for r in relative if len(r.parts) > 2}
    for name in sorted(set(folder_class.values()) - set(ids)):
        ids[name] = max(ids.values(), default=-1) + 1
    entries = {r.as_posix(): str(ids[folder_class[r.parts[1]]]) if len(r.parts) > 2 else "none" for r in relative}
    classes = sorted((class_id, name) for name, class_id in ids.items())
    atomic_write_text(task_dir / "classes.txt", format_classes(classes))
    metadata = encode_text(format_metadata(entries, sort_keys=False))  # scan order; file names byte for byte
    atomic_write(task_dir / "metadata.txt", lambda tmp: Path(tmp).write_bytes(metadata))
    return [name for _, name in classes]


def _existing_class_ids(path: Path) -> Dict[str, int]:
    """``{name: id}`` of an existing ``classes.txt`` (empty if there is none); ValueError if it is malformed
    (renumbering silently would change what a trained model's class ids mean)."""
    if not path.is_file():
        return {}
    problems: List[Problem] = []
    classes = read_classes(path, problems)
    if problems:
        raise ValueError(f"cannot keep the class ids of {path}: " + "; ".join(str(p) for p in problems)
                         + " (fix or delete it)")
    return {name: class_id for class_id, name in classes.items()}
