"""Atomic file writes: a reader never sees a half-written file, a crash never loses the old one; and the removal
of the temporaries a killed writer leaves beside a file."""
import hashlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

import numpy as np

PathLike = Union[str, os.PathLike]


def _default_file_mode() -> int:
    """Permissions a plain ``open(path, "w")`` would give (mkstemp's are owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# what tempfile.mkdtemp / mkstemp(suffix=".tmp") put after the prefix: only such names are ever removed (should
# CPython change its random names, nothing is removed: never too much)
_RANDOM_PART = r"[a-z0-9_]{8}(?:\.tmp)?"


def machine_tag(host: str, pid_namespace: str = "") -> str:
    """``<host>_<6 hex>``: the host name made file-safe, and a digest of the full name and the process-id
    namespace, so that host names that read alike once cleaned (``node1.lab``, ``node1_lab``) and containers
    that share a host name and a folder but not their process ids (Docker ``--network host``) differ."""
    digest = hashlib.sha1(f"{host}\0{pid_namespace}".encode("utf-8", "replace")).hexdigest()[:6]
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', host)[:32] or 'host'}_{digest}"


def _this_machine() -> str:
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)  # Linux; elsewhere one namespace per host
    except OSError:
        namespace = ""
    return machine_tag(socket.gethostname(), namespace)


def temporary_prefix(path: PathLike, pid: Optional[int] = None) -> str:
    """Name prefix of the temporary files and folders written beside ``path`` by process ``pid`` (default: this
    one): ``.<name>.<machine>-<pid>.`` (:func:`machine_tag`), so that :func:`remove_stale_temporaries` can tell
    those a killed process left (``kill -9``, power loss) from those of a write still running."""
    return f".{Path(path).name}.{_this_machine()}-{os.getpid() if pid is None else pid}."


def _process_has_ended(pid: int) -> bool:
    """True only when no process ``pid`` runs here (another user's counts as running; an impossible id, as
    in a hand-made name, as unknown: not ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError, ValueError):  # PermissionError: another user's process
        return False
    return False


def remove_stale_temporaries(path: PathLike) -> List[Path]:
    """Remove the temporaries beside ``path`` (named by :func:`temporary_prefix`, then tempfile's 8 random
    characters) whose process has ended on this machine and process-id namespace; returns what it removed.
    Those of running processes, of other machines, of other files and anything named otherwise are left alone:
    two writes of one file may run at the same time. (Two machines with the same host name writing to one
    synced folder would look like one; keep such exports apart.)"""
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.{_this_machine()}-") + r"([0-9]{1,10})\." + _RANDOM_PART)
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or not _process_has_ended(int(match.group(1))):  # pid 0: this process group, running
            continue
        try:  # best effort: a temporary that cannot be removed (permissions) must not stop the write
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed


def atomic_write(path: PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    return atomic_write(path, _write)


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (plain data and tensors only)."""
    import torch  # here: the commands that never save a tensor should not pay for importing torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_tensors_only(path: PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain data, never code. A hostile or broken
    file raises (``pickle.UnpicklingError`` and the like) without torch's warning about its pickle protocol,
    which says nothing a user can act on: the caller's one-line error does."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def atomic_save_npy(path: PathLike, array: np.ndarray) -> Path:
    """``np.save`` ``array`` to ``path`` (name kept as given: no ``.npy`` appended) atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as handle:  # a file object: np.save would append ".npy" to a name
            np.save(handle, array)

    return atomic_write(path, _write)
