"""Dataset preparation commands behind ``data_tools/*.py`` (the scripts only parse arguments)."""
import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Union

from vschaos.data.audio import scan_audio_files
from vschaos.data.dataset import validate_dataset
from vschaos.io import atomic_write_text


def check_dataset_main(argv: Optional[Sequence[str]] = None) -> int:
    """``check_dataset.py ROOT [--sample-rate SR] [--tasks ...]``: print the validation report;
    returns 0 when the dataset has no problem, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="check_dataset.py",
                                     description="Validate a vschaos dataset tree and print what it holds.")
    parser.add_argument("root", help="dataset root (holds data/ and metadata/)")
    parser.add_argument("--sample-rate", type=int, default=None,
                        help="rate used to count frames (default: each file's own rate)")
    parser.add_argument("--tasks", nargs="*", default=None, help="tasks to check (default: all under metadata/)")
    parser.add_argument("--n-fft", type=int, default=2048)
    parser.add_argument("--hop", type=int, default=512)
    args = parser.parse_args(argv)
    report = validate_dataset(args.root, tasks=args.tasks, sample_rate=args.sample_rate,
                              n_fft=args.n_fft, hop=args.hop)
    print(report.format())
    return 0 if report.ok else 1


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
    lines = [f"{r.as_posix()}\t{ids[r.parts[1]] if len(r.parts) > 2 else 'none'}" for r in relative]
    atomic_write_text(task_dir / "classes.txt", "".join(f"{i}\t{name}\n" for i, name in enumerate(classes)))
    atomic_write_text(task_dir / "metadata.txt", "\n".join(lines) + "\n")
    return classes


def folders_to_metadata_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="folders_to_metadata.py",
                                     description="Label each file with the name of its first-level folder under data/.")
    parser.add_argument("root", help="dataset root (holds data/)")
    parser.add_argument("task", help="task name, e.g. instrument")
    parser.add_argument("--force", action="store_true", help="overwrite an existing metadata/TASK")
    args = parser.parse_args(argv)
    try:
        classes = folders_to_metadata(args.root, args.task, force=args.force)
    except (FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {Path(args.root) / 'metadata' / args.task}: {len(classes)} classes: {', '.join(classes)}")
    return 0
