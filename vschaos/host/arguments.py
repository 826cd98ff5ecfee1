"""The host CLI's argument types: every number is checked when the command line is parsed, before any model
is loaded or any check runs, and a bad one is refused with one line naming the argument (exit 2).

Torch-free, so that ``--help`` and a refused argument answer at once.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable, List, Union

from vschaos.threads import threads_argument
from vschaos.util import int_list, is_power_of_two

MAX_BUFFER = 1 << 16  # 65536 samples, 1.5 s at 44.1 kHz: beyond any nn~ buffer in use
MAX_BATCH = 64  # mc.nn~ / nn.ar voices; verify and bench allocate (batch, channels, buffer) per call
MAX_THREADS = 256
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768000
MAX_BENCH_SECONDS = 600.0
# Per call into the model's code. A hang is caught after this long; a model this slow on one verify call
# (at most 2 x 8192 samples at batch 4 by default) would be unusable in a patch anyway, even on a slow CPU.
DEFAULT_CALL_TIMEOUT = 120.0


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose refusal is one line on stderr (``PROG: error: MESSAGE``), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(text: str, kind: Callable[[str], Union[int, float]], what: str) -> Union[int, float]:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0 (``--call-timeout``)."""
    value = _number(text, float, "a number of seconds")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got '{text}'")
    return float(value)


def bench_seconds(text: str) -> float:
    """The bench's time budget per case: finite, > 0 and at most :data:`MAX_BENCH_SECONDS`."""
    value = positive_seconds(text)
    if value > MAX_BENCH_SECONDS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_BENCH_SECONDS:g} seconds per case, got '{text}'")
    return value


def tolerance(text: str) -> float:
    """Streaming vs offline tolerance: finite, in (0, 1] (1 already allows an error as large as the peak)."""
    value = _number(text, float, "a number")
    if not (math.isfinite(value) and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0 and <= 1, got '{text}'")
    return float(value)


def int_between(low: int, high: int, what: str) -> Callable[[str], int]:
    """argparse type: an integer in ``[low, high]``."""

    def parse(text: str) -> int:
        value = _number(text, int, f"{what} (an integer)")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what} from {low} to {high}, got '{text}'")
        return int(value)

    return parse


def power_of_two(text: str) -> int:
    """One buffer or vector size: a power of two from 1 to :data:`MAX_BUFFER`."""
    value = _number(text, int, "a power of two")
    if not is_power_of_two(value) or value > MAX_BUFFER:
        raise argparse.ArgumentTypeError(f"{text} is not a power of two from 1 to {MAX_BUFFER}")
    return int(value)


def power_of_two_list(text: str) -> List[int]:
    """``512,2048`` -> ``[512, 2048]``, each a power of two from 1 to :data:`MAX_BUFFER` (``--buffers``)."""
    values = int_list(text)
    for value in values:
        power_of_two(str(value))
    return values


def batch_list(text: str) -> List[int]:
    """``1,4`` -> ``[1, 4]``, each from 1 to :data:`MAX_BATCH` (``--batch-sizes``)."""
    check = int_between(1, MAX_BATCH, "batch sizes")
    return [check(str(value)) for value in int_list(text)]


def method_names(text: str) -> List[str]:
    """``forward,encode`` -> ``["forward", "encode"]``; at least one name."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected method names separated by commas, got '{text}'")
    return names


def bench_threads(text: str) -> Union[int, str]:
    """``--threads`` of the bench: the shared ``N|auto`` (:func:`vschaos.threads.threads_argument`), N at most
    :data:`MAX_THREADS`."""
    value = threads_argument(text)
    if isinstance(value, int) and value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_THREADS} threads, got '{text}'")
    return value
