"""The dataset's text files (``metadata.txt``, ``classes.txt``, ``tracks/*.txt``) read line by line, and the
numbers written in them: the one place these files are read, so that every reader numbers lines and reads
values alike.

Lines are numbered as editors number them: the text is split on LF only (one CR before it, a CRLF file, is
dropped), so line ``n`` is the one after the ``(n-1)``-th LF. A character that Python's ``str.splitlines`` or
some programs take for a line break inside a line -- a lone CR (old Mac line ends), the other control
characters U+0000-U+001F but TAB, NEL U+0085, U+2028, U+2029 -- is a problem on that line, never an extra line.

The files are UTF-8 (a leading byte-order mark is dropped). Bytes that are not UTF-8 are a problem on their
line, except where ``metadata.txt`` names a file (the audio file, a track file): a file whose name is not UTF-8
(``caf\\xe9.wav``) is named there by the same bytes as on disk, read with ``errors='surrogateescape'`` exactly
as Python reads file names on POSIX (``os.fsdecode``); :func:`encode_text` writes such a name back byte for byte.

Only a regular file is read (a FIFO or a device named ``metadata.txt`` would block the reader or never end),
and at most :data:`MAX_TEXT_BYTES` of it: a larger file is refused before it is read, so a garbage file costs
no memory. A byte-order mark U+FEFF inside a line (two files joined by ``cat``) is a problem on its line: it is
invisible in an editor and would make ``data/a.wav`` a different key.

Numbers are ASCII: an id is ``-?[0-9]+`` (a negative id is read so that the error can say it is negative), a
decimal is ``[+-]digits[.digits][e[+-]digits]``. Python's ``int``/``float`` would also take ``1_0`` (10),
``\u0663`` (an Arabic-Indic 3), ``inf`` or ``NAN``; the readers refuse these with file and line (``nan``,
``NaN`` and ``none`` stay the metadata's words for a missing value).
"""
import os
import re
import stat
from pathlib import Path
from typing import List, Optional, Tuple

from vschaos.data.problems import Problem

# inside a line: what str.splitlines() or some editors break lines at, and the other C0 controls (TAB is a separator)
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x85\u2028\u2029\ufeff]")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # surrogateescape's stand-ins for bytes that are not UTF-8
_ID = re.compile(r"-?[0-9]+")
#: Largest metadata text file read. A metadata.txt line is a path and a label (well under a hundred bytes),
#: so this holds millions of files; a larger file is garbage, and reading it whole would cost its size in memory
#: several times over.
MAX_TEXT_BYTES = 128 * 1024 * 1024
#: Longest line read: a key is a path (at most 4096 bytes on Linux), a value a label or another path. A longer
#: line is garbage (a binary file, line breaks lost) and is one problem, not echoed.
MAX_LINE_CHARS = 16384
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class TextFileError(ValueError):
    """A metadata text file that cannot be read at all: ``line`` is ``None`` (a folder, permissions) or that
    of the first NUL byte (UTF-16 text)."""

    def __init__(self, path: Path, line: Optional[int], message: str):
        self.path, self.line = str(path), line
        super().__init__(message)

    def problem(self) -> Problem:
        return Problem(self.path, self.line, str(self))


def read_text(path: Path) -> str:
    """Text of ``path`` decoded as UTF-8 with ``errors='surrogateescape'`` (a leading byte-order mark is
    dropped: editors on Windows write one). Raises :class:`TextFileError` if the file cannot be opened, is not a
    regular file (a folder, a FIFO, a device: never waited on), is larger than :data:`MAX_TEXT_BYTES`, or holds
    a NUL byte (UTF-16 text, which would otherwise give a problem on every line)."""
    path = Path(path)
    if path.is_dir():
        raise TextFileError(path, None, "is a folder, expected a text file")
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise TextFileError(path, None, f"cannot read ({error.strerror or error})") from error
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TextFileError(path, None, "is not a regular file (a FIFO, socket or device), expected a text file")
        if info.st_size > MAX_TEXT_BYTES:
            raise TextFileError(path, None, f"is {info.st_size} bytes, more than a metadata text file may hold "
                                            f"({MAX_TEXT_BYTES} bytes): is it the right file?")
        try:
            data = handle.read(MAX_TEXT_BYTES + 1)  # a file growing while read is still bounded
        except OSError as error:
            raise TextFileError(path, None, f"cannot read ({error.strerror or error})") from error
    if len(data) > MAX_TEXT_BYTES:
        raise TextFileError(path, None, f"is more than {MAX_TEXT_BYTES} bytes: is it the right file?")
    if b"\x00" in data:
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise TextFileError(path, line, "holds NUL bytes (UTF-16 text?); save the file as UTF-8")
    return data.decode("utf-8-sig", errors="surrogateescape")


def encode_text(text: str) -> bytes:
    """Bytes of a metadata file's ``text``: UTF-8, and each file name's undecodable bytes as they were
    (the inverse of :func:`read_text`)."""
    return text.encode("utf-8", errors="surrogateescape")


def split_lines(text: str) -> List[str]:
    """Lines of ``text`` as an editor shows them: split on LF only, one trailing CR removed from each; a
    final LF ends the last line (no empty line after it)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _control_problem(line: str) -> Optional[str]:
    found = _CONTROL.search(line)
    if found is None:
        return None
    if found.group() == "\ufeff":
        return ("byte-order mark U+FEFF inside the file (two files joined?): remove it, it is invisible in an "
                "editor but makes a different key or value")
    if found.group() == "\r":
        return ("carriage return (CR) inside the line: save the file with LF or CRLF line ends (old Mac "
                "files end lines with CR alone)")
    return (f"control character U+{ord(found.group()):04X} inside the line (some programs take it for a "
            f"line break): remove it")


def unwritable_name(name: str) -> Optional[str]:
    """Why a file ``name`` cannot be written in ``metadata.txt`` (whose lines it would break or split), or
    ``None``: a TAB separates key from value, a line break or other control character ends or spoils the line
    (Linux allows both in file names)."""
    found = re.search("[\t]", name) or _CONTROL.search(name)
    if found is None:
        return None
    return (f"its name holds U+{ord(found.group()):04X} ({'TAB' if found.group() == chr(9) else 'a control character'}"
            f"), which a metadata.txt line cannot hold: rename the file")


def not_utf8(byte: int) -> str:
    """The problem of a line holding ``byte``, which is not UTF-8."""
    return f"not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8"


def undecodable_byte(text: str) -> Optional[int]:
    """The first byte of ``text`` that was not UTF-8 (read by :func:`read_text`), or ``None``."""
    found = _UNDECODABLE.search(text)
    return None if found is None else ord(found.group()) - 0xDC00


def content_lines(path: Path, problems: List[Problem], names: bool = False) -> List[Tuple[int, str]]:
    """``(line number, text)`` of the non-blank, non-comment lines of a text file (spaces around the text
    removed). A line with a control character, with bytes that are not UTF-8, or longer than
    :data:`MAX_LINE_CHARS` becomes a problem and is left out; with ``names`` (``metadata.txt``, whose lines name files) the caller checks the bytes of content lines
    itself (:func:`undecodable_byte`). Raises :class:`TextFileError` if the file cannot be opened."""
    out = []
    for number, raw in enumerate(split_lines(read_text(path)), start=1):
        if len(raw) > MAX_LINE_CHARS:
            problems.append(Problem(str(path), number, f"line of {len(raw)} characters, more than {MAX_LINE_CHARS}: "
                                                       f"not a metadata line (a binary file, or line breaks lost?)"))
            continue
        problem = _control_problem(raw)
        stripped = raw.strip()
        content = bool(stripped) and not stripped.startswith("#")
        byte = None if names and content else undecodable_byte(raw)
        if problem is None and byte is not None:
            problem = not_utf8(byte)
        if problem is not None:
            problems.append(Problem(str(path), number, problem))
        elif content:
            out.append((number, raw.strip(" ")))
    return out


def parse_id(token: str) -> Optional[int]:
    """``token`` (spaces around it ignored) as an id written in ASCII digits with an optional leading
    minus, else ``None``."""
    token = token.strip()
    return int(token) if _ID.fullmatch(token) else None


def parse_decimal(token: str) -> Optional[float]:
    """``token`` (spaces around it ignored) as an ASCII decimal number (``440``, ``-1.5``, ``.5``,
    ``4.4e2``), else ``None``. The result is infinite if the exponent overflows (``1e999``): callers check."""
    token = token.strip()
    return float(token) if _DECIMAL.fullmatch(token) else None


def names_non_finite(token: str) -> bool:
    """Whether ``token`` is a word Python's ``float`` reads as infinite or NaN (``inf``, ``-Infinity``,
    ``nan``): a refusal can then say that the number must be finite."""
    return token.strip().lstrip("+-").lower() in ("inf", "infinity", "nan")


def python_reads_as_number(token: str) -> bool:
    """Whether Python's ``float`` takes ``token`` (``1_0``, ``\u0663``, ``inf``): to explain a refusal."""
    try:
        float(token)
    except ValueError:
        return False
    return True
