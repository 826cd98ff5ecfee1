"""The dataset tree as the readers may see it: what lies inside the dataset root, and the walk of ``data/``.

Sound files may live elsewhere: musicians link ``data/`` (or a folder or file in it) to another disk, so a link
in ``data/`` is followed wherever it leads, as long as it leads to a regular sound file or a folder. What is never
read: a link that leads nowhere (a missing target, or a loop of links: a problem), a folder reached twice (a loop,
or the same folder linked twice: walked once, the second a problem, so a walk always ends), and a sound-file name
that is not a regular file (a FIFO, a device such as ``/dev/zero``, a socket: a problem, never opened, since
reading a FIFO would wait for a writer forever). A folder named ``x.wav`` is a folder and is walked. Text files
(``metadata/``) are stricter: one that links outside the root is refused unread (a task's files belong to the
dataset), and nothing is ever written through a link that leads out of the root.

How a ``metadata.txt`` key finds its file (Unicode normalisation, case): :class:`KeyMatcher`.
"""
import os
import unicodedata
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from vschaos.data.audio import AUDIO_EXTENSIONS
from vschaos.data.problems import Problem, quoted

PathLike = Union[str, Path]


def outside_root(path: PathLike, root: PathLike) -> Optional[Path]:
    """The real path of ``path`` (links followed) if it lies outside ``root``'s real path, else ``None``."""
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return None if real == base or base in real.parents else real


def _link_problem(path: Path, root: Path, may_leave_root: bool = False) -> Optional[str]:
    """Why the link ``path`` may not be followed, or ``None`` (``may_leave_root``: sound files and folders of
    ``data/``, which may live on another disk)."""
    if not os.path.exists(path):  # follows the link: False for a missing target and for a loop of links
        return "is a link that leads nowhere (its target is missing, or links form a loop)"
    real = outside_root(path, root)
    return None if real is None or may_leave_root else outside_message(real)


def outside_message(real: Path, done: str = "not read") -> str:
    """The problem of a link to ``real``, outside the dataset root."""
    return (f"links outside the dataset root (to {real}): {done}; copy it into the dataset, or make the "
            f"folder that holds it the dataset root")


def task_name_problem(name: str) -> Optional[str]:
    """Why ``name`` cannot be a task (one folder of ``metadata/``: ``../x`` or ``a/b`` would lead elsewhere)."""
    if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        return f"task name {quoted(name)} is not the name of a folder in metadata/"
    return None


def outside_write_problem(path: PathLike, root: PathLike) -> Optional[Problem]:
    """Why writing ``path`` would read or land outside ``root``, or ``None``: the file itself, or its nearest
    existing folder, links out of the root (an atomic write would replace such a file's link, but a writer that
    first reads the file would read outside)."""
    probe, root = Path(path), Path(root)
    if not os.path.lexists(probe):
        probe = probe.parent
        while not os.path.lexists(probe) and probe != root and probe != probe.parent:
            probe = probe.parent
    if not os.path.lexists(probe) or not probe.is_relative_to(root):  # no root yet: nothing on the way links out
        return None
    real = outside_root(probe, root)
    if real is None:
        return None
    # name the link itself: the highest folder on the way that already leads out
    while probe.parent != Path(root) and probe.parent.is_relative_to(root) and outside_root(probe.parent, root):
        probe = probe.parent
    return Problem(str(probe), None, outside_message(Path(os.path.realpath(probe)), "nothing written"))


def check_writable_inside(path: PathLike, root: PathLike) -> None:
    """Raise ``ValueError`` naming the link if writing ``path`` would read or land outside ``root``
    (:func:`outside_write_problem`)."""
    problem = outside_write_problem(path, root)
    if problem is not None:
        raise ValueError(str(problem))


def find_audio_files(data_dir: PathLike, root: Optional[PathLike] = None) -> Tuple[List[Path], List[Problem]]:
    """Every sound file (:data:`~vschaos.data.audio.AUDIO_EXTENSIONS`) under ``data_dir``, recursively, sorted
    by path relative to ``data_dir``; and a problem per entry left out (see the module's docstring). ``root``:
    the dataset root nothing may lead out of (default: the folder that holds ``data_dir``)."""
    data_dir = Path(data_dir)
    root = Path(root) if root is not None else data_dir.parent
    problems: List[Problem] = []
    if data_dir.is_symlink():
        reason = _link_problem(data_dir, root, may_leave_root=True)
        if reason is not None:
            return [], [Problem(str(data_dir), None, reason)]
    files: List[Path] = []
    walked = {os.path.realpath(data_dir): data_dir}
    pending = [data_dir]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            problems.append(Problem(str(folder), None, f"cannot list the folder ({error.strerror or error})"))
            continue
        for entry in entries:
            path = Path(entry.path)
            audio_name = path.suffix.lower() in AUDIO_EXTENSIONS
            if entry.is_symlink():
                reason = _link_problem(path, root, may_leave_root=True)
                if reason is not None:
                    if audio_name or os.path.isdir(path):  # a link to a text file is not read: no problem
                        problems.append(Problem(str(path), None, reason))
                    continue
            if entry.is_dir():  # follows a link (inside the root, checked above)
                real = os.path.realpath(path)
                if real in walked:
                    problems.append(Problem(str(path), None, f"links to a folder already walked "
                                                             f"({walked[real]}): left out, so that no file is read "
                                                             f"twice and a loop of links ends"))
                    continue
                walked[real] = path
                pending.append(path)
            elif audio_name:
                if entry.is_file():
                    files.append(path)
                else:
                    problems.append(Problem(str(path), None, "is not a regular file (a FIFO, socket or device): "
                                                             "not read"))
    files.sort(key=lambda p: p.relative_to(data_dir).as_posix())
    return files, problems


class KeyMatcher:
    """Finds the sound file a ``metadata.txt`` key names, among the ``data/...`` keys of the files found.

    A key names a file by its exact path; failing that, by the same path in Unicode NFC when exactly one file
    has it: macOS (HFS+) stores ``é`` decomposed (NFD: ``e`` + U+0301), an editor writes it composed (NFC), and
    both are the same letters to the user. Two files whose names differ only so (possible on Linux) make such a
    key ambiguous: a problem. Case is never folded (``a.wav`` and ``A.wav`` are two files on Linux); a key that
    differs from one file only in case gets a hint.
    """

    def __init__(self, keys):
        self.keys = set(keys)
        self.composed: Dict[str, List[str]] = {}
        self.folded: Dict[str, List[str]] = {}
        for key in sorted(self.keys):
            composed = unicodedata.normalize("NFC", key)
            self.composed.setdefault(composed, []).append(key)
            self.folded.setdefault(composed.casefold(), []).append(key)

    def match(self, key: str) -> Tuple[Optional[str], str]:
        """``(the file's key, "")``, or ``(None, hint)`` where ``hint`` (maybe empty) says what is near."""
        if key in self.keys:
            return key, ""
        composed = unicodedata.normalize("NFC", key)
        same = self.composed.get(composed, [])
        if len(same) == 1:
            return same[0], ""
        if same:
            return None, (f" ({len(same)} files have this name, written in different Unicode normalisations "
                          f"(NFC/NFD): {', '.join(quoted(k) for k in same)}; rename all but one)")
        near = self.folded.get(composed.casefold(), [])
        if near:
            return None, f" (names are case-sensitive: {' or '.join(quoted(k) for k in near)} exists)"
        return None, ""
