"""The nn~ stream engine: ring buffers, decimation, sample-and-hold, sync and threaded modes.

Timeline (nn~'s perform routine, per vector of V samples): the vector is pushed into the input
ring; when the ring holds B samples the model runs (sync: in the audio callback; threaded: the
previous worker job is joined, its result queued, and a new job started on this buffer); then V
samples are read from the output ring. Hence the added latency B - V (sync) and 2B - V
(threaded). We implement the output ring as a FIFO pre-filled with that many zeros: it is the
same timeline, and lets us move whole buffers with numpy slices instead of looping per vector.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch

from vschaos.util import is_power_of_two

from .description import MethodInfo
from .errors import HostError
from .model import LoadedModel, ModelSource, load_model


@dataclass
class EngineStats:
    """Counters of one engine: model calls, time in the model, deadline misses, stalls."""

    calls: int = 0
    model_seconds: float = 0.0
    max_call_seconds: float = 0.0
    deadline_misses: int = 0  # calls longer than one buffer of real time (B / sample_rate)
    stalls: int = 0  # threaded mode: the worker was still busy when the next buffer was ready


def host_latency(buffer_size: int, vector_size: int, threaded: bool) -> int:
    """Samples added by nn~'s buffering: B - V (sync) or 2B - V (threaded)."""
    return (2 * buffer_size if threaded else buffer_size) - vector_size


def inlets_to_batched(signals: np.ndarray, batch: int, in_channels: int) -> np.ndarray:
    """nn~ inlet order (``index = c * batch + b``) ``(n_inlets, n)`` -> ``(batch, in_channels, n)``.

    Missing inlets are zeros; extra ones are ignored.
    """
    n = signals.shape[-1]
    full = np.zeros((in_channels * batch, n), dtype=np.float32)
    used = min(signals.shape[0], in_channels * batch)
    full[:used] = signals[:used]
    return full.reshape(in_channels, batch, n).transpose(1, 0, 2)


def batched_to_outlets(outputs: np.ndarray) -> np.ndarray:
    """``(batch, out_channels, n)`` -> nn~ outlet order (``index = b * out_channels + c``) ``(batch*out_channels, n)``."""
    return outputs.reshape(outputs.shape[0] * outputs.shape[1], outputs.shape[2])


class StreamEngine:
    """Drive one method of an nn~ model exactly like nn~ / mc.nn~ / nn.ar.

    Args:
        model: a path, a ScriptModule or a :class:`LoadedModel` (used as is: state is shared).
        method: method name (nn~'s third argument, ``forward`` by default).
        buffer_size: B; ``None`` = the model's minimum (largest ratio as a power of two). Must be a
            power of two, a multiple of every ratio of the method, and >= vector_size.
        vector_size: V, the DSP block size (64 in Pd).
        batch: number of parallel examples (mc.nn~ / nn.ar); 1 for plain nn~.
        threaded: run the model on a real worker thread (latency 2B - V) instead of in the callback.
        sample_rate: used for deadline accounting and passed to ``set_sample_rate`` if the model has it.
    """

    def __init__(self, model: "ModelSource | LoadedModel", method: str = "forward", buffer_size: Optional[int] = None,
                 vector_size: int = 64, batch: int = 1, threaded: bool = False, sample_rate: int = 44100):
        self.model = model if isinstance(model, LoadedModel) else load_model(model)
        self.model.set_sample_rate(sample_rate)
        self.info: MethodInfo = self.model.description.method(method)
        self.method = method
        if buffer_size is None:
            buffer_size = max(self.model.description.min_buffer_size, vector_size)
        self._check_sizes(buffer_size, vector_size, batch)
        self.buffer_size = int(buffer_size)
        self.vector_size = int(vector_size)
        self.batch = int(batch)
        self.threaded = bool(threaded)
        self.sample_rate = int(sample_rate)
        self.latency = host_latency(self.buffer_size, self.vector_size, self.threaded)
        self.stats = EngineStats()
        self._executor: Optional[ThreadPoolExecutor] = None
        self._pending: Optional[Future] = None
        self._reset_buffers()

    def _check_sizes(self, buffer_size: int, vector_size: int, batch: int) -> None:
        if not is_power_of_two(buffer_size):
            raise HostError(f"buffer size {buffer_size} is not a power of two")
        if not is_power_of_two(vector_size):
            raise HostError(f"vector size {vector_size} is not a power of two")
        if buffer_size % self.info.max_ratio:
            raise HostError(f"buffer size {buffer_size} is not a multiple of method '{self.info.name}' ratios "
                            f"(in {self.info.in_ratio}, out {self.info.out_ratio}); minimum is "
                            f"{self.model.description.min_buffer_size}")
        if vector_size > buffer_size:
            raise HostError(f"vector size {vector_size} is larger than buffer size {buffer_size}: nn~ disables itself")
        if batch < 1:
            raise HostError(f"batch must be >= 1, got {batch}")

    def _reset_buffers(self) -> None:
        self._in_ring = np.zeros((self.batch, self.info.in_channels, self.buffer_size), dtype=np.float32)
        self._in_fill = 0
        # Output FIFO pre-filled with B - V zeros (see the module docstring); threaded mode adds the
        # worker's initial all-zero result at the first full buffer, hence 2B - V.
        prefill = self.buffer_size - self.vector_size
        self._out_fifo: List[np.ndarray] = [np.zeros((self.batch, self.info.out_channels, prefill), np.float32)]

    def reset(self, reset_model: bool = True) -> None:
        """Empty the rings (as a DSP restart) and, by default, reset the model state (``reset()``/reload)."""
        self._join_pending()
        if reset_model:
            self.model.reset_state()
            self.model.set_sample_rate(self.sample_rate)
        self._reset_buffers()

    # ---- model calls ----------------------------------------------------------------------
    def _run_model(self, ring: np.ndarray) -> np.ndarray:
        """One model call on a full input ring ``(batch, in_channels, B)`` -> ``(batch, out_channels, B)``."""
        decimated = ring[:, :, self.info.in_ratio - 1::self.info.in_ratio] if self.info.in_ratio > 1 else ring
        y = self.model.call(self.method, torch.from_numpy(np.ascontiguousarray(decimated)))
        elapsed = self.model.last_call_seconds  # the model's own time, without a time limit's thread handoff
        self.stats.calls += 1
        self.stats.model_seconds += elapsed
        self.stats.max_call_seconds = max(self.stats.max_call_seconds, elapsed)
        if elapsed > self.buffer_size / self.sample_rate:
            self.stats.deadline_misses += 1
        out = y.numpy()
        if self.info.out_ratio > 1:
            out = np.repeat(out, self.info.out_ratio, axis=2)  # sample-and-hold
        return out

    def _join_pending(self) -> Optional[np.ndarray]:
        if self._pending is None:
            return None
        if not self._pending.done():
            self.stats.stalls += 1
        pending, self._pending = self._pending, None
        return pending.result()  # re-raises a ModelCallError from the worker

    def _buffer_full(self) -> None:
        ring = self._in_ring.copy() if self.threaded else self._in_ring
        if self.threaded:
            previous = self._join_pending()
            if previous is None:  # nn~'s model output buffer starts as zeros
                previous = np.zeros((self.batch, self.info.out_channels, self.buffer_size), np.float32)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vschaos-host-worker")
            self._pending = self._executor.submit(self._worker_call, ring)
            result = previous
        else:
            result = self._run_model(ring)
        self._out_fifo.append(result)
        self._in_fill = 0

    def _worker_call(self, ring: np.ndarray) -> np.ndarray:
        torch.set_grad_enabled(False)  # grad mode is per thread
        return self._run_model(ring)

    # ---- streaming ------------------------------------------------------------------------
    def process_batched(self, x: np.ndarray) -> np.ndarray:
        """Stream ``x`` ``(batch, in_channels, n)`` through the method; n must be a multiple of V.

        Returns ``(batch, out_channels, n)``: exactly what nn~ outputs for those n samples.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[0] != self.batch or x.shape[1] != self.info.in_channels:
            raise HostError(f"expected input (batch={self.batch}, in_channels={self.info.in_channels}, n), "
                            f"got {x.shape}")
        n = x.shape[2]
        if n % self.vector_size:
            raise HostError(f"input length {n} is not a multiple of the vector size {self.vector_size}")
        position = 0
        while position < n:  # one iteration per buffer boundary, slices in between
            take = min(self.buffer_size - self._in_fill, n - position)
            self._in_ring[:, :, self._in_fill:self._in_fill + take] = x[:, :, position:position + take]
            self._in_fill += take
            position += take
            if self._in_fill == self.buffer_size:
                self._buffer_full()
        return self._pop_output(n)

    def _pop_output(self, n: int) -> np.ndarray:
        out = np.concatenate(self._out_fifo, axis=2) if len(self._out_fifo) > 1 else self._out_fifo[0]
        result, rest = out[:, :, :n], out[:, :, n:]
        self._out_fifo = [rest]
        return result

    def process(self, signals: np.ndarray) -> np.ndarray:
        """Stream nn~-ordered inlet signals ``(n_inlets, n)`` (``c * batch + b``); missing inlets are zeros.

        Returns outlet signals ``(batch * out_channels, n)`` in nn~ order (``b * out_channels + c``).
        """
        signals = np.atleast_2d(np.asarray(signals, dtype=np.float32))
        return batched_to_outlets(self.process_batched(inlets_to_batched(signals, self.batch, self.info.in_channels)))

    def close(self) -> None:
        """Join the worker and stop its thread."""
        self._join_pending()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> "StreamEngine":
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
        elif self._executor is not None:
            # an error or Ctrl-C: the worker's result is not wanted, and waiting for it could outlast the user's
            # patience (a call under a time limit) or never end (one without)
            self._pending = None
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
