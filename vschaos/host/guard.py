"""Model code under a time limit: a call that never returns becomes a :class:`ModelTimeoutError`, not a hang.

A TorchScript call cannot be interrupted from Python, so the call runs on a worker thread and the caller
waits for it with a timeout. On a timeout the caller gets the error while the call keeps running on its
(daemon) thread: the guard refuses every later call (the module is still busy), and a process that wants to
end should leave with ``os._exit`` after flushing its output, as the CLI does, since a thread inside
TorchScript cannot be joined. The caller's wait is interruptible, so Ctrl-C reaches the main thread
(``KeyboardInterrupt``) even while the model runs.

The handoff costs tens of microseconds per call, and only where a limit is set (the CLI); the call's own time
is measured on the worker, so benchmarks and deadline counts do not include it.
"""
from __future__ import annotations

import queue
import threading
import time
import weakref
from typing import Any, Callable, List, Optional, Tuple

from .errors import ModelTimeoutError

# call, its arguments, and the box the worker fills: [done event, result, exception, seconds]
_Job = Tuple[Callable[..., Any], tuple, List[Any]]


def _work(jobs: "queue.SimpleQueue[Optional[_Job]]") -> None:
    import torch

    torch.set_grad_enabled(False)  # grad mode is per thread; nn~ never needs gradients
    while True:
        job = jobs.get()
        if job is None:  # the guard was garbage-collected
            return
        function, args, box = job
        start = time.perf_counter()
        try:
            box[1] = function(*args)
        except BaseException as error:  # handed to the caller, who re-raises it in its own thread
            box[2] = error
        box[3] = time.perf_counter() - start
        box[0].set()


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
        self._stuck: Optional[str] = None

    def _start(self) -> "queue.SimpleQueue[Optional[_Job]]":
        jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=_work, args=(jobs,), name="vschaos-host-call", daemon=True).start()
        # the thread ends with its guard; not at interpreter exit, where an idle daemon thread must stay asleep
        # (one woken while the interpreter finalises is torn down inside torch's thread state: an abort)
        weakref.finalize(self, jobs.put, None).atexit = False
        self._jobs = jobs
        return jobs

    def run(self, what: str, function: Callable[..., Any], *args: Any) -> Any:
        if self._stuck is not None:
            raise ModelTimeoutError(f"{what}: not called, an earlier call ({self._stuck}) never returned")
        jobs = self._jobs or self._start()
        box: List[Any] = [threading.Event(), None, None, 0.0]
        jobs.put((function, args, box))
        if not box[0].wait(self.timeout):
            self._stuck = what
            raise ModelTimeoutError(f"{what} did not return within {self.timeout:g} s; stopped")
        self.last_seconds = box[3]
        if box[2] is not None:
            raise box[2]
        return box[1]
