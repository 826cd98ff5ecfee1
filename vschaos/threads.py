"""CPU thread policy shared by every vschaos command (train, generate, extract_pitch, script, host, data tools).

Default: ONE intra-op thread and one inter-op thread per process. Our CPU work is many small operations
(frame batches of a few hundred rows by 500-4000 bins, small convolutions, per-buffer streaming calls) where a
second OpenMP thread gains little on an idle machine and loses badly on a busy one: OpenMP threads meet at a
barrier after every operation, and when another program (a DAW, a browser, a second training) holds a core,
each barrier waits for a descheduled thread, so a training step can take many times longer with torch's
default than with one thread (``python -m bench.train_speed`` measures both, idle and with a competing
process). ``threads=0`` gives torch's own default (one per core) for machines with cores to spare; any N > 1
also sets ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep instead of spinning at the barrier) unless the
environment sets it.

``auto`` (training's default, ``threads: auto``; any command's ``--threads auto``) looks before it leaps: it
counts the cores left idle over a quarter of a second while this process sleeps (``/proc/stat``; the 1-minute
load average where there is none) and takes that many, at least one: on an idle 2-core machine 2 threads,
which train faster than one; beside one competing process, 1 thread. With PASSIVE waiting, a load that
arrives after the choice slows a 2-thread training down rather than collapsing it.

The policy must be applied before the heavy work starts (the inter-op pool and OpenMP read their settings
once): every command calls :func:`apply_thread_policy` right after parsing its arguments, before importing
torch where it can. This module imports nothing heavy itself.
"""
import math
import os
import time
from typing import Optional, Union

DEFAULT_THREADS = 1
AUTO = "auto"
PROBE_SECONDS = 0.25
# libraries that size their thread pools from the environment when first loaded (OpenMP, BLAS, numexpr)
THREAD_ENV_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def add_threads_argument(parser, default: Union[int, str] = DEFAULT_THREADS) -> None:
    """The ``--threads N|auto`` option every command shares (argparse parser)."""
    parser.add_argument("--threads", type=threads_argument, default=default, metavar="N",
                        help=f"CPU threads for torch in this process (default {default}; 0: one per core; auto: "
                             f"the cores idle now). One thread is fastest on a busy machine: see docs/TRAINING.md, CPU threads")


def threads_argument(text: str) -> Union[int, str]:
    """argparse type of ``--threads``: an integer >= 0, or ``auto``."""
    import argparse

    if str(text).strip().lower() == AUTO:
        return AUTO
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0 (0: one per core) or 'auto', got '{text}'")
    return value


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> Optional[tuple]:
    """(idle, total) jiffies of all CPUs from ``/proc/stat``; None where it cannot be read."""
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:9]]  # user..steal; guest is inside user
    except (OSError, ValueError):
        return None
    if len(values) < 5:
        return None
    return values[3] + values[4], sum(values)  # idle + iowait


def idle_cores(seconds: float = PROBE_SECONDS) -> float:
    """How many cores other programs leave idle, measured over ``seconds`` while this process sleeps (so it does
    not count itself): from ``/proc/stat``, else ``cores - 1-minute load average``, else 1."""
    cores = os.cpu_count() or 1
    before = _cpu_times()
    if before is not None:
        time.sleep(seconds)
        after = _cpu_times()
        if after is not None and after[1] > before[1]:
            return cores * (after[0] - before[0]) / (after[1] - before[1])
    try:
        return max(0.0, cores - os.getloadavg()[0])
    except (AttributeError, OSError):
        return 1.0


def resolve_threads(threads: Union[int, str, None]) -> int:
    """``threads`` as a number: ``auto`` becomes the number of idle cores (at least 1, at most this process's
    cores); an integer must be >= 0 (0: torch's default)."""
    if isinstance(threads, str) and threads.strip().lower() == AUTO:
        idle = idle_cores()
        # a core counts as free when at least 3/4 idle: a DAW's light audio thread leaves it to us
        return max(1, min(available_cores(), math.floor(idle + 0.25)))
    try:
        n = int(threads or 0)
    except (TypeError, ValueError):
        raise ValueError(f"threads must be an integer >= 0 (0: one per core) or 'auto', got {threads!r}") from None
    if n < 0:
        raise ValueError(f"threads must be >= 0 (0: one per core) or 'auto', got {threads}")
    return n


def set_thread_environment(threads: Union[int, str, None] = DEFAULT_THREADS) -> int:
    """Set the thread-pool environment variables for ``threads`` (``None`` or 0: leave them as they are;
    ``auto``: :func:`resolve_threads`) so that libraries loaded afterwards (torch's OpenMP, numpy's BLAS) size
    their pools from them; imports nothing. For commands that may never load torch (the data tools).
    Returns the number of threads as an int."""
    n = resolve_threads(threads)
    if n > 0:
        for name in THREAD_ENV_VARIABLES:
            os.environ[name] = str(n)
        if n > 1:
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return n


def apply_thread_policy(threads: Union[int, str, None] = DEFAULT_THREADS) -> int:
    """Use ``threads`` intra-op threads (``None`` or 0: torch's default; ``auto``: the idle cores) and one
    inter-op thread in this process.

    Sets the thread environment variables first (:func:`set_thread_environment`), then torch's own settings.
    Returns the number of intra-op threads in effect.
    """
    n = set_thread_environment(threads)
    import torch  # after the environment is set: OpenMP reads it when torch loads

    if n > 0:
        torch.set_num_threads(n)
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            # torch allows this once, before any inter-op work; a second command run in the same process
            # (tests, notebooks) keeps the first setting
            pass
    return torch.get_num_threads()

