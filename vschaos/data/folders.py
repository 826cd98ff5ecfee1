"""Label a dataset by its folders: each file's first-level sub-folder of ``data/`` is its class."""
from pathlib import Path
from typing import List, Union

from vschaos.data.audio import scan_audio_files
from vschaos.data.metadata import format_classes, format_metadata
from vschaos.io import atomic_write_text


def folders_to_metadata(root: Union[str, Path], task: str, force: bool = False) -> List[str]:
    """Write ``metadata/TASK/metadata.txt`` (single labels) and ``classes.txt`` from the first-level
    sub-folder of ``data/`` each file lies in; files directly in ``data/`` get ``none``.

    Class ids follow the sorted folder names. Returns the class names. Refuses (``FileExistsError``)
    to replace an existing task unless ``force``.
    """
    root = Path(root)
    task_dir = root / "metadata" / task
    if (task_dir / "metadata.txt").exists() and not force:
        raise FileExistsError(f"{task_dir / 'metadata.txt'} exists; pass --force to overwrite it")
    data_dir = root / "data"
    files = scan_audio_files(data_dir) if data_dir.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no sound files under {data_dir}")
    relative = [p.relative_to(root) for p in files]
    classes = sorted({r.parts[1] for r in relative if len(r.parts) > 2})
    ids = {name: i for i, name in enumerate(classes)}
    entries = {r.as_posix(): str(ids[r.parts[1]]) if len(r.parts) > 2 else "none" for r in relative}
    atomic_write_text(task_dir / "classes.txt", format_classes(list(enumerate(classes))))
    atomic_write_text(task_dir / "metadata.txt", format_metadata(entries, sort_keys=False))  # scan order
    return classes
