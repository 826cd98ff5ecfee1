"""Atomic file writes: a reader never sees a half-written file, a crash never loses the old one."""
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np

PathLike = Union[str, os.PathLike]


def _default_file_mode() -> int:
    """Permissions a plain ``open(path, "w")`` would give (mkstemp's are owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
