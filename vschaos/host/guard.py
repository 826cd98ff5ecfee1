"""Model code under a time limit: a call that never returns becomes a :class:`ModelTimeoutError`, not a hang.

A TorchScript call cannot be interrupted from Python, so the call runs on a worker thread and the caller
waits for it with a timeout. On a timeout the caller gets the error while the call keeps running on its
(daemon) thread: the guard refuses every later call (the module is still busy), and a process that wants to
end should leave with ``os._exit`` after flushing its output, as the CLI does, since a thread inside
TorchScript cannot be joined. The caller's wait is interruptible, so Ctrl-C reaches the main thread
(``KeyboardInterrupt``) even while the model runs.

The handoff costs two thread switches per call, and only where a limit is set (the CLI; the library's default
is none); the call's own time is measured on the worker, so benchmarks and deadline counts do not include it.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
import weakref
from typing import Any, Callable, Optional, Tuple

from .errors import ModelTimeoutError

_Job = Tuple[Callable[..., Any], tuple]  # a call and its arguments
_Outcome = Tuple[Any, Optional[BaseException], float]  # its result or exception, and how long it ran


def _work(jobs: "queue.SimpleQueue[Optional[_Job]]", outcomes: "queue.SimpleQueue[_Outcome]") -> None:
    import torch

    torch.set_grad_enabled(False)  # grad mode is per thread; nn~ never needs gradients
    while True:
        job = jobs.get()
        if job is None:  # the guard was garbage-collected
            return
        function, args = job
        start = time.perf_counter()
        try:
            outcome: _Outcome = (function(*args), None, 0.0)
        except BaseException as error:  # handed to the caller, who re-raises it in its own thread
            outcome = (None, error, 0.0)
        outcomes.put((outcome[0], outcome[1], time.perf_counter() - start))


# How long a collected guard waits for its idle worker to end (it ends at once; a stuck one never does).
_STOP_WAIT = 1.0


def _stop(jobs: "queue.SimpleQueue[Optional[_Job]]", worker: threading.Thread) -> None:
    # Not while the interpreter exits: an idle daemon thread must stay asleep then (one woken during
    # finalisation is torn down inside torch's thread state, and the process aborts). And once woken, wait for
    # it to end: a command that fails just after loading a model drops its guard and returns, and a worker
    # still ending when the interpreter finalises aborted the process ("terminate called without an active
    # exception", exit 134) after its one-line error.
    if not sys.is_finalizing():
        jobs.put(None)
        if worker is not threading.current_thread():
            worker.join(_STOP_WAIT)


class CallGuard:
    """Run callables on one worker thread, waiting at most ``timeout`` seconds for each.

    ``run(what, function, *args)`` returns the function's result, re-raises its exception, or raises
    :class:`ModelTimeoutError` (``what`` names the call in its message: method, buffer size, batch).
    ``last_seconds``: how long the last completed call ran on the worker.
    """

    def __init__(self, timeout: float):
        if not timeout > 0:
            raise ValueError(f"call timeout must be > 0 seconds, got {timeout}")
        self.timeout = float(timeout)
        self.last_seconds = 0.0
        self._jobs: Optional[queue.SimpleQueue] = None
        self._outcomes: queue.SimpleQueue = queue.SimpleQueue()
        self._stuck: Optional[str] = None

    def _start(self) -> "queue.SimpleQueue[Optional[_Job]]":
        jobs: queue.SimpleQueue = queue.SimpleQueue()
        worker = threading.Thread(target=_work, args=(jobs, self._outcomes), name="vschaos-host-call", daemon=True)
        worker.start()
        weakref.finalize(self, _stop, jobs, worker).atexit = False  # the thread ends with its guard
        self._jobs = jobs
        return jobs

    def run(self, what: str, function: Callable[..., Any], *args: Any) -> Any:
        if self._stuck is not None:
            raise ModelTimeoutError(f"{what}: not called, an earlier call ({self._stuck}) never returned")
        jobs = self._jobs or self._start()
        jobs.put((function, args))
        try:
            result, error, self.last_seconds = self._outcomes.get(timeout=self.timeout)
        except queue.Empty:
            self._stuck = what  # its outcome, should it ever come, is never read
            raise ModelTimeoutError(f"{what} did not return within {self.timeout:g} s; stopped") from None
        if error is not None:
            raise error
        return result
