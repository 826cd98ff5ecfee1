"""Where generation writes, checked before any model is loaded: an output folder that can be written, no output
that is one of the command's inputs, and a failed write turned into one message naming the file.

Generation writes only inside ``OUT/reconstructions`` or ``OUT/trajectories``; every file there is written
atomically (``vschaos.io``), so a failure or Ctrl-C leaves complete files and no temporary."""
import errno
import os
from pathlib import Path
from typing import Callable, Iterable, List, Sequence, Tuple

from vschaos.generation.errors import GenerationError
from vschaos.io import DiskFullError

# errors that mean "this place cannot be written", whatever the permission bits said beforehand (root ignores them)
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def nearest_existing(folder: Path, flag: str) -> Path:
    """The nearest ancestor of ``folder`` (itself included) that exists; GenerationError naming ``flag`` when the
    way down to ``folder`` crosses a file or a broken symbolic link."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            raise GenerationError(f"{flag}: {existing} is a broken symbolic link (to {os.readlink(existing)})")
        existing = existing.parent
    if not existing.is_dir():
        raise GenerationError(f"{flag}: cannot create the folder {folder} ({existing} is a file, not a folder)")
    return existing


def check_output_folder(out: Path, folder: Path, flag: str = "--out") -> None:
    """Refuse (GenerationError, one line naming ``flag`` and the path) an output ``folder`` below ``out`` that
    cannot be made or written: ``out`` or a folder on the way is a file, or the nearest existing folder is not
    writable (``os.access``; it cannot see what root may write, so a write can still fail: see
    :func:`write_failure`). Creates nothing."""
    if out.exists() and not out.is_dir():
        raise GenerationError(f"{flag} {out} is a file, not a folder")
    existing = nearest_existing(folder, f"{flag} {out}")
    if not os.access(existing, os.W_OK):
        raise GenerationError(f"{flag} {out}: cannot write in {existing} (read-only or not yours); "
                              f"choose another {flag}")


def write_failure(path: Path, error: OSError) -> GenerationError:
    """One line for an OSError writing ``path`` (a :class:`vschaos.io.DiskFullError` says what space is left)."""
    done = "(no partial file left; files written before it are complete)"
    if isinstance(error, DiskFullError):
        return GenerationError(f"{error}; free some space or choose another --out {done}")
    reason = error.strerror or str(error)
    hint = "; choose another --out" if error.errno in UNWRITABLE + (errno.ENOSPC,) else ""
    return GenerationError(f"cannot write {path}: {reason}{hint} {done}")


def _identity(path: Path) -> Tuple[int, int]:
    stat = path.stat()  # follows symbolic links: a link to an input is that input
    return stat.st_dev, stat.st_ino


def refuse_overwriting_inputs(outputs: Iterable[Path], inputs: Sequence[Tuple[str, Path]], flag: str = "--out") -> None:
    """GenerationError when an output would replace an input: the same resolved path, or the same file (hard or
    symbolic link; compared where the output exists, as only an existing file can be an input). ``inputs``:
    ``(argument, path)`` pairs, the argument that named each input (``--files``); unreadable inputs are skipped
    (they are reported where they are read)."""
    by_identity = {}
    by_path = {}
    for argument, path in inputs:
        try:
            by_identity.setdefault(_identity(path), (argument, path))
            by_path.setdefault(path.resolve(), (argument, path))
        except (OSError, RuntimeError):  # missing, unreadable, a symbolic-link loop
            continue
    if not by_identity:
        return
    for output in outputs:
        try:
            if not output.exists():
                continue
            found = by_path.get(output.resolve()) or by_identity.get(_identity(output))
        except (OSError, RuntimeError):
            continue
        if found is not None:
            argument, path = found
            raise GenerationError(f"{argument} {path} is also an output ({output}): it would be replaced; choose "
                                  f"another {flag} (nothing written)")


def existing_entries(folder: Path, is_output: Callable[[str], bool]) -> List[Path]:
    """The entries of ``folder`` whose names ``is_output`` accepts (none when it does not exist): the outputs that
    could be inputs, found without listing every output a large batch count would name."""
    try:
        return [entry for entry in folder.iterdir() if is_output(entry.name)]
    except OSError:
        return []
