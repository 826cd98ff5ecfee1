"""Atomic file writes: a reader never sees a half-written file, a crash never loses the old one, a full disk is
one :class:`DiskFullError` naming the file and the space left; and the removal of the temporaries a killed writer
leaves beside a file."""
import errno
import hashlib
import io
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

import numpy as np

PathLike = Union[str, os.PathLike]
# no space left, or the user's quota reached: either way, nothing more can be written there
DISK_FULL_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class DiskFullError(OSError):
    """No space (or quota) left while writing ``filename`` atomically: the previous file, if any, is intact and
    no temporary is left. ``errno`` is ENOSPC or EDQUOT; ``free_bytes`` is what the disk had free once the
    temporary was removed (None when it could not be read)."""

    free_bytes: Optional[int] = None

    def __str__(self) -> str:
        return (f"disk full: cannot write {self.filename} ({self.strerror}; {format_bytes(self.free_bytes)} free "
                f"on its disk); the previous file, if any, is intact")


def format_bytes(count: Optional[int]) -> str:
    """``count`` bytes for a message: ``0 bytes``, ``812 bytes``, ``3.4 kB``, ``12.0 MB``, ``1.5 GB`` (powers of
    1000); ``an unknown amount`` for None."""
    if count is None:
        return "an unknown amount"
    if count < 1000:
        return f"{count} bytes"
    for unit in ("kB", "MB", "GB", "TB"):
        count /= 1000
        if count < 1000 or unit == "TB":
            break
    return f"{count:.1f} {unit}"


def free_bytes(path: PathLike) -> Optional[int]:
    """Bytes free for this user on the disk that holds ``path`` (its nearest existing folder), or None."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


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


def this_machine() -> str:
    """:func:`machine_tag` of this host and process-id namespace: where a pid means this process."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)  # Linux; elsewhere one namespace per host
    except OSError:
        namespace = ""
    return machine_tag(socket.gethostname(), namespace)


# a file name's limit on common file systems (ext4, APFS, NTFS: 255 bytes or characters)
NAME_MAX_BYTES = 255
# what a temporary's name adds around <name>: the dots, "-", a pid of up to 10 digits, tempfile's 8 random
# characters and ".tmp"
_TEMPORARY_EXTRA_BYTES = len(".." + "-" + "0" * 10 + "." + "x" * 8 + ".tmp")


def _temporary_name_part(name: str) -> str:
    """``name`` cut (in bytes, as the file system counts) so that a temporary named after it still fits in
    :data:`NAME_MAX_BYTES`: a legal 255-byte output name must not fail for its temporary's sake."""
    room = NAME_MAX_BYTES - _TEMPORARY_EXTRA_BYTES - len(os.fsencode(this_machine()))
    encoded = os.fsencode(name)
    return name if len(encoded) <= room else os.fsdecode(encoded[:max(room, 1)])


def temporary_prefix(path: PathLike, pid: Optional[int] = None) -> str:
    """Name prefix of the temporary files and folders written beside ``path`` by process ``pid`` (default: this
    one): ``.<name>.<machine>-<pid>.`` (:func:`machine_tag`; ``<name>`` cut so that the temporary's whole name
    fits a file system's limit), so that :func:`remove_stale_temporaries` can tell those a killed process left
    (``kill -9``, power loss) from those of a write still running."""
    return f".{_temporary_name_part(Path(path).name)}.{this_machine()}-{os.getpid() if pid is None else pid}."


def process_has_ended(pid: int) -> bool:
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
    pattern = re.compile(re.escape(f".{_temporary_name_part(path.name)}.{this_machine()}-") + r"([0-9]{1,10})\."
                         + _RANDOM_PART)
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or not process_has_ended(int(match.group(1))):  # pid 0: this process group, running
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


def write_bytes(path: PathLike, data: Union[bytes, memoryview]) -> None:
    """Write ``data`` to ``path`` with Python file I/O: the one place the atomic writers below hand bytes to the
    disk, so that a full disk is ``OSError(ENOSPC)`` (a C++ writer such as ``torch.save``'s reports it as a
    RuntimeError, or aborts the process)."""
    with open(path, "wb") as handle:
        handle.write(data)


def _about_this_write(error: OSError, path: Path) -> bool:
    """Whether ``error`` concerns writing ``path`` (its folder, a temporary of it, or a write that names no file),
    rather than some other file the write callback touched."""
    if error.filename is None:
        return True
    name = os.fsdecode(error.filename)
    return name in (str(path), str(path.parent)) or (
        os.path.dirname(name) == str(path.parent) and os.path.basename(name).startswith(temporary_prefix(path)))


def atomic_write(path: PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then fsync it and rename it into place.

    On any failure (an exception, Ctrl-C) the temporary is removed and ``path`` keeps its previous content.
    No space left (ENOSPC, EDQUOT) raises :class:`DiskFullError` naming ``path``; another ``OSError`` of this
    write (a read-only folder, a permission) is re-raised with ``path``, not the temporary, as its file name.
    """
    path = Path(path)
    tmp: Optional[str] = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())  # a delayed allocation's ENOSPC arrives here, before the rename
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:  # already gone, or cannot be: remove_stale_temporaries takes it once we have ended
                pass
        if not isinstance(error, OSError) or isinstance(error, DiskFullError) or error.errno is None or \
                not _about_this_write(error, path):
            raise
        if error.errno in DISK_FULL_ERRNOS:
            full = DiskFullError(error.errno, error.strerror, str(path))
            full.free_bytes = free_bytes(path)
            raise full from error
        raise OSError(error.errno, error.strerror, str(path)) from error  # OSError picks the errno's subclass
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""

    data = text.encode("utf-8")
    return atomic_write(path, lambda tmp: write_bytes(tmp, data))


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (plain data and tensors only).

    The object is serialised in memory first (the file's size again in RAM, briefly), then written by
    :func:`write_bytes`: a full disk is a :class:`DiskFullError`, never torch's ``[enforce fail at
    inline_container.cc]`` RuntimeError."""
    import torch  # here: the commands that never save a tensor should not pay for importing torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda tmp: write_bytes(tmp, buffer.getbuffer()))


def atomic_jit_save(module: Any, path: PathLike, verify: Optional[Callable[[str], None]] = None) -> Path:
    """``torch.jit.save`` a scripted ``module`` to ``path`` atomically; ``verify(tmp_path)``, if given, runs on
    the written temporary and may raise to refuse it (``path`` is then left as it was).

    Serialised in memory first, as :func:`atomic_torch_save`: torch's C++ file writer aborts the whole process
    on a full disk (``terminate called after throwing an instance of 'c10::Error'``); here it is a
    :class:`DiskFullError`."""
    import torch

    buffer = io.BytesIO()
    torch.jit.save(module, buffer)

    def _write(tmp: str) -> None:
        write_bytes(tmp, buffer.getbuffer())
        if verify is not None:
            verify(tmp)

    return atomic_write(path, _write)


def file_sha256(path: PathLike) -> str:
    """SHA-256 of a file's bytes (hex), read a mebibyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
