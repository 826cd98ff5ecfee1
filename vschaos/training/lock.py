"""One training at a time per version folder: ``version_N/.training.lock`` names the training that holds it.

The lock is an ``flock`` on that file, which the kernel releases when its process ends however it ends (an
exception, Ctrl-C, ``kill -9``, a crash); the file's record (pid, machine, start time) only says who holds it.
So a record left by a training that crashed is stale and taken over, while a live training refuses a second one
with a message naming it. A record from another machine cannot be checked from here (``flock`` over a network
file system may not reach that machine), so it refuses until that file is deleted by hand. Where the file system
has no ``flock`` at all, a record is stale when its process has ended on this machine
(:func:`vschaos.io.process_has_ended`, the rule of the export's temporaries).
"""
import datetime
import errno
import json
import os
import re
import socket
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from vschaos.io import DISK_FULL_ERRNOS, format_bytes, free_bytes, process_has_ended, this_machine
from vschaos.training.resume import TrainingError

try:  # POSIX; elsewhere the pid rule alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".training.lock"
NOT_WRITABLE_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)
_MAX_RECORD_BYTES = 4096  # a record is a few hundred bytes; a folder is untrusted data


class RunLockedError(TrainingError):
    """Another training holds the version folder (the message names it); nothing was written."""


class RunNotWritableError(TrainingError):
    """The run folder cannot be written (read-only file system, permissions); nothing was written."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a version folder: ``pid`` on ``machine`` (:func:`vschaos.io.machine_tag`), ``host`` as it
    names itself, ``since`` (UTC, ISO 8601)."""
    pid: int
    machine: str
    host: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} (machine {self.machine}) since {self.since}"


def _clean(text: object) -> str:
    """A record's text for a one-line message: no control characters, at most 100 characters."""
    return re.sub(r"[\x00-\x1f\x7f]", "?", str(text))[:100]


def _parse_record(data: bytes) -> Optional[LockHolder]:
    try:
        record = json.loads(data.decode("utf-8"))
        return LockHolder(int(record["pid"]), _clean(record["machine"]), _clean(record["host"]),
                          _clean(record["since"]))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _record_of(fd: int) -> Optional[LockHolder]:
    os.lseek(fd, 0, os.SEEK_SET)
    return _parse_record(os.read(fd, _MAX_RECORD_BYTES))


def read_holder(path: Union[str, os.PathLike]) -> Optional[LockHolder]:
    """The record of the lock file ``path``, or None when it is missing, empty (a training writing it right now),
    not a regular file or not a record."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        return _record_of(fd) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except OSError:
        return None
    finally:
        os.close(fd)


def not_writable_error(error: OSError, folder: Path, action: str) -> RunNotWritableError:
    """One line: ``folder`` cannot be written (``error``'s reason) and what to do."""
    return RunNotWritableError(f"cannot write in {folder} ({error.strerror}): {action} (nothing was written)")


def require_writable(folder: Path, action: str) -> None:
    """Raise :class:`RunNotWritableError` unless ``folder`` (or, while it does not exist, its nearest existing
    parent, where it would be created) can be written; cheap, so that a run fails before its dataset is read."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if os.access(existing, os.W_OK | os.X_OK):
        return
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        read_only = False
    reason = "Read-only file system" if read_only else "Permission denied"
    raise not_writable_error(OSError(errno.EROFS if read_only else errno.EACCES, reason), existing, action)


def _try_flock(fd: int) -> Optional[bool]:
    """True: this descriptor now holds the lock; False: another does; None: no flock on this file system."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return None
        raise
    return True


def _write_record(fd: int, data: bytes) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)  # reading the old record moved the offset
    os.write(fd, data)


def _still_at(fd: int, path: Path) -> bool:
    """Whether ``path`` is still the file open as ``fd`` (a training that released it unlinks it first)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


class TrainingLock:
    """The lock of ``version_dir`` (a context manager: held inside ``with``, released on any exit).

    :meth:`acquire` raises :class:`RunLockedError` when another training holds it and
    :class:`RunNotWritableError` when the folder cannot be written; both write nothing.
    """

    def __init__(self, version_dir: Union[str, os.PathLike]):
        self.version_dir = Path(version_dir)
        self.path = self.version_dir / LOCK_NAME
        self._fd: Optional[int] = None

    def _refuse(self, holder: Optional[LockHolder], other_machine: bool = False) -> RunLockedError:
        who = holder.describe() if holder is not None else "a training that is starting (its record is not written yet)"
        hint = (f"if no training of this run runs on {holder.host} any more, delete {self.path}" if other_machine
                else "wait for it to end, or stop it")
        return RunLockedError(f"{self.version_dir} is being trained by {who}: two trainings may not write into one "
                              f"version folder; {hint} (nothing was written)")

    def _taken(self, holder: Optional[LockHolder], flocked: Optional[bool]) -> Optional[RunLockedError]:
        """Why the lock is not ours although no flock stopped us (None: it is ours to take)."""
        if holder is None:
            return None  # no record, or a torn one (its writer ended while writing it)
        if holder.machine != this_machine():
            return self._refuse(holder, other_machine=True)
        if flocked is None and holder.pid != os.getpid() and not process_has_ended(holder.pid):
            return self._refuse(holder)
        return None  # flocked: the kernel says no process holds it; otherwise its process has ended

    def _open(self) -> int:
        """Open (create) the lock file; never through a link: a run folder is untrusted data, and the record is
        written into this file."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as error:
            if error.errno in NOT_WRITABLE_ERRNOS:
                raise not_writable_error(error, self.version_dir, "training writes its checkpoints and logs there; "
                                         "copy the run to a writable folder and resume the copy") from None
            if error.errno in (errno.ELOOP, errno.EISDIR):
                raise self._not_a_lock_file("a symbolic link" if error.errno == errno.ELOOP else "a folder") from None
            raise
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
            os.close(fd)
            raise self._not_a_lock_file("not a regular file" if not stat.S_ISREG(status.st_mode) else
                                        "a hard link to another file")
        return fd

    def _not_a_lock_file(self, what: str) -> RunLockedError:
        return RunLockedError(f"{self.path} is {what}, not a lock file written by train_model.py: delete it, then "
                              f"train again (nothing was written)")

    def acquire(self, attempts: int = 100) -> "TrainingLock":
        try:
            return self._acquire(attempts)
        except OSError as error:
            if error.errno not in DISK_FULL_ERRNOS:
                raise
            raise TrainingError(f"disk full: cannot write {self.path} ({error.strerror}; "
                                f"{format_bytes(free_bytes(self.path))} free there): free some space and try "
                                f"again (nothing was written)") from None

    def _acquire(self, attempts: int) -> "TrainingLock":
        for _ in range(attempts):
            fd = self._open()
            owned = False
            try:
                flocked = _try_flock(fd)
                if flocked is False:
                    raise self._refuse(_record_of(fd))
                if not _still_at(fd, self.path):  # released (unlinked) between our open and our flock: again
                    os.close(fd)
                    continue
                refusal = self._taken(_record_of(fd), flocked)
                if refusal is not None:
                    raise refusal
                owned = True
                record = {"pid": os.getpid(), "machine": this_machine(), "host": socket.gethostname(),
                          "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
                _write_record(fd, json.dumps(record).encode("utf-8") + b"\n")
            except BaseException:
                try:
                    if owned and _still_at(fd, self.path):  # e.g. a full disk while writing the record
                        os.unlink(self.path)
                finally:
                    os.close(fd)
                raise
            self._fd = fd
            return self
        raise RunLockedError(f"could not take the lock {self.path} after {attempts} attempts (trainings starting and "
                             f"ending in a loop?)")

    def release(self) -> None:
        """Remove the lock file, then drop the flock (in this order: whoever opened the file meanwhile sees it
        is gone and opens a new one). Idempotent."""
        if self._fd is None:
            return
        try:
            if _still_at(self._fd, self.path):
                os.unlink(self.path)
        except OSError:  # a folder made read-only meanwhile: the record stays, stale once we have ended
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "TrainingLock":
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


@contextmanager
def training_lock(version_dir: Union[str, os.PathLike]) -> Iterator[TrainingLock]:
    """``with training_lock(version_dir):`` hold the version folder's lock (see :class:`TrainingLock`)."""
    with TrainingLock(version_dir) as lock:
        yield lock
