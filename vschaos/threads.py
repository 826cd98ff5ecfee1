"""CPU thread policy shared by every vschaos command (train, generate, extract_pitch, script, host, data tools).

Default: ONE intra-op thread and one inter-op thread per process. Our CPU work is many small operations
(frame batches of a few hundred rows by 500-4000 bins, small convolutions, per-buffer streaming calls) where a
second OpenMP thread gains little on an idle machine and loses badly on a busy one: OpenMP threads meet at a
barrier after every operation, and when another program (a DAW, a browser, a second training) holds a core,
each barrier waits for a descheduled thread. Measured on 2 cores with other work running: 650 ms per demo
training step with torch's default 2 threads against 16 ms with 1 (bench/train_speed.py measures both, idle
and with a competing process). ``threads=0`` gives torch's own default (one per core) for machines with
cores to spare; any N > 1 also sets ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep instead of spinning at the
barrier) unless the environment sets it.

The policy must be applied before the heavy work starts (the inter-op pool and OpenMP read their settings
once): every command calls :func:`apply_thread_policy` right after parsing its arguments, before importing
torch where it can. This module imports nothing heavy itself.
"""
import os
import sys
from typing import Optional

DEFAULT_THREADS = 1
# libraries that size their thread pools from the environment when first loaded (OpenMP, BLAS, numexpr)
THREAD_ENV_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def add_threads_argument(parser, default: int = DEFAULT_THREADS) -> None:
    """The ``--threads N`` option every command shares (argparse parser)."""
    parser.add_argument("--threads", type=threads_argument, default=default, metavar="N",
                        help=f"CPU threads for torch in this process (default {default}; 0: one per core). "
                             f"One thread is fastest on a busy machine: see README, CPU threads")


def threads_argument(text: str) -> int:
    """argparse type of ``--threads``: an integer >= 0."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0 (0: one per core), got '{text}'")
    return value


def set_thread_environment(threads: Optional[int] = DEFAULT_THREADS) -> int:
    """Set the thread-pool environment variables for ``threads`` (``None`` or 0: leave them as they are) so that
    libraries loaded afterwards (torch's OpenMP, numpy's BLAS) size their pools from them; imports nothing.
    For commands that may never load torch (the data tools). Returns ``threads`` as an int."""
    n = int(threads or 0)
    if n < 0:
        raise ValueError(f"threads must be >= 0 (0: one per core), got {threads}")
    if n > 0:
        for name in THREAD_ENV_VARIABLES:
            os.environ[name] = str(n)
        if n > 1:
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return n


def apply_thread_policy(threads: Optional[int] = DEFAULT_THREADS) -> int:
    """Use ``threads`` intra-op threads (``None`` or 0: torch's default) and one inter-op thread in this process.

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

