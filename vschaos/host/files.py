"""File names as the host reads, shows and writes them.

Names that are not UTF-8 are shown and opened through the leaf :mod:`vschaos.filenames` (``printable``,
``soundfile_name``), which the dataset readers share.

:func:`check_output` refuses, before any work, an output the host could not or must not write.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional

from vschaos.filenames import printable, soundfile_name  # noqa: F401  (rendering.py takes both from here)

from .errors import HostError

# file extensions soundfile does not take as a format name by themselves
_EXTENSION_FORMATS = {"AIF": "AIFF"}


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.abspath(a) == os.path.abspath(b)


def sound_format(path: str, subtype: str) -> str:
    """The soundfile format for ``path``'s extension (``WAV``, ``FLAC``, ``AIFF``...), checked to hold ``subtype``
    samples; :class:`HostError` naming the file otherwise."""
    import soundfile as sf

    extension = os.path.splitext(path)[1][1:].upper()
    kind = _EXTENSION_FORMATS.get(extension, extension)
    if kind not in sf.available_formats():
        raise HostError(f"cannot write {printable(path)}: '{printable(extension.lower()) or '(none)'}' is not a "
                        f"sound file extension (use .wav, .aiff, .flac...)")
    if not sf.check_format(kind, subtype):
        raise HostError(f"cannot write {printable(path)}: {kind} files cannot hold {subtype} samples (use .wav)")
    return kind


def check_output(path: str, protected: Iterable[Optional[str]] = ()) -> None:
    """Refuse, with one line naming the path, to write ``path`` where the host could not or must not: one of
    the ``protected`` files (the command's own input, its model), a folder, a path through a file, a folder
    that is not writable. Missing folders are fine (they are created)."""
    for other in protected:
        if other is not None and _same_file(path, other):
            raise HostError(f"refusing to write {printable(path)}: it is the command's own input "
                            f"{printable(other)} (choose another output file)")
    if os.path.isdir(path):
        raise HostError(f"cannot write {printable(path)}: it is a folder")
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):  # the nearest folder that exists is where writing starts
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise HostError(f"cannot write {printable(path)}: {printable(folder)} is a file, not a folder")
    if not os.access(folder, os.W_OK):
        raise HostError(f"cannot write {printable(path)}: folder {printable(folder)} is not writable")


def write_error(path: str, error: OSError) -> HostError:
    """One line for an OS error while writing ``path`` (permission, read-only or full disk)."""
    return HostError(f"cannot write {printable(path)}: {printable(error.strerror or str(error))}")
