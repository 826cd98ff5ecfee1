"""What is wrong with a dataset, and how file names are shown in reports.

File names are bytes on POSIX: a name that is not UTF-8 (``caf\\xe9.wav`` from an older system) reaches
Python as a str holding surrogate escapes (``os.fsdecode``), which a strict UTF-8 stream (a terminal,
pytest's capture, a log file) refuses to print. Every report goes through :func:`printable`.
"""
import re
from dataclasses import dataclass
from typing import List, Optional

from vschaos.filenames import printable  # noqa: F401  (every report shows names through it)

#: Characters of a file's text shown in a message: a garbage line may be megabytes long.
SHOWN_CHARS = 200


_NAME_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable_name(name: str) -> str:
    """A file name for a one-line message: :func:`printable`, and control characters that Linux allows in a
    name (a line break, a TAB) written as Python writes them (``\\n``, ``\\x1b``), so the message stays one
    line."""
    return printable(_NAME_CONTROL.sub(lambda m: repr(m.group())[1:-1], name))


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


def quoted(name: str) -> str:
    """``name`` in single quotes for a message, through :func:`printable`; cut after :data:`SHOWN_CHARS`."""
    return f"'{printable_name(_cut(name))}'"


def shown(text: str) -> str:
    """``repr(text)`` for a message (control characters visible), cut after :data:`SHOWN_CHARS`."""
    return repr(text) if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]!r}... ({len(text)} characters)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: the file, the 1-based line (if any), and what is wrong.
    ``path`` is the name as the file system gives it; ``str()`` is printable (see :func:`printable`)."""

    path: str
    line: Optional[int]
    message: str

    def __str__(self) -> str:
        path = printable_name(self.path)
        where = path if self.line is None else f"{path}:{self.line}"
        return printable(f"{where}: {self.message}")


class DatasetError(Exception):
    """A dataset has problems; ``problems`` lists every one, the message prints them all."""

    def __init__(self, problems: List[Problem], header: str = "dataset has problems"):
        self.problems = list(problems)
        lines = [f"{printable(header)} ({len(self.problems)}):"] + [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines))
