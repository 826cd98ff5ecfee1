"""File names as the OS gives them, shown and passed on safely (a leaf: nothing from vschaos).

On POSIX a file name is bytes: one that is not UTF-8 (``caf\\xe9.wav`` from an older system) reaches Python as a
str holding surrogate escapes (``os.fsdecode``). A strict UTF-8 stream (a terminal, pytest's capture, a log file)
refuses to print those, and soundfile cannot encode them. Every report shows a name through :func:`printable`,
and every sound-file open passes it through :func:`soundfile_name`; the dataset readers and the host share both.
"""
import os
import re
from typing import Union

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: "re.Match[str]") -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's escape of the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def printable(name: Union[str, os.PathLike]) -> str:
    """``name`` (a str or a path) with each undecodable byte of a file name shown as ``\\xNN``
    (``caf\\udce9.wav`` -> ``caf\\xe9.wav``; other lone surrogates as ``\\uNNNN``): always encodable as strict
    UTF-8."""
    return _SURROGATE.sub(_escape, os.fspath(name))


def soundfile_name(path: Union[str, os.PathLike]) -> Union[str, bytes]:
    """``path`` as soundfile must be given it: the bytes on POSIX (``os.fsencode``), str elsewhere (Windows names
    are UTF-16 and go to libsndfile's wide-character call)."""
    return os.fsencode(path) if os.name == "posix" else os.fspath(path)
