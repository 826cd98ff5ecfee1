"""What a streamed call dispatches, by ``torch.profiler``: operations per call and the heaviest ones, the cost of
the cheapest operation, a Neutone file's plugin call at a DAW setting, and per-call times of several files
interleaved in one process (``bench/neutone_speed.py`` reports them).
"""
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from neutone_sdk.utils import load_neutone_model

from bench.common import median_seconds


def profile_calls(call: Callable[[], object], calls: int = 50, top: int = 12, min_us: float = 5.0
                  ) -> Dict[str, object]:
    """What ``call()``, one call into a scripted module, dispatches and where its arithmetic goes, by
    ``torch.profiler`` over ``calls`` calls (1 thread), per call: ``"operations"``, those it dispatches (directly
    under the module's own record; the ones they call in turn are not counted), and ``"heaviest"``, the ``top``
    operations (by name and input shapes) by their own time, each ``{"operation", "shapes", "per_call", "ms"}``
    (ms per call), with ``"heaviest_ms"`` their sum. Only operations averaging at least ``min_us`` µs each
    count: below that an operation's time is mostly dispatch and the profiler's own microsecond, above it
    arithmetic (products, convolutions, FFTs, gathers), work that no saving on dispatch removes. Operations whose
    shapes change from call to call spread over groups and may fall out of the ``top``: ``heaviest_ms`` is a
    lower bound of the call's arithmetic."""
    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                 record_shapes=True) as profile:
        for _ in range(calls):
            call()
    events = profile.events()
    record_names = {e.name for e in events if e.cpu_parent is None}
    operations = sum(1 for e in events if e.cpu_parent is not None and e.cpu_parent.cpu_parent is None)
    averages = sorted((a for a in profile.key_averages(group_by_input_shape=True)
                       if a.key not in record_names and a.self_cpu_time_total >= min_us * a.count),
                      key=lambda a: -a.self_cpu_time_total)[:top]
    heaviest = [{"operation": a.key, "shapes": str(a.input_shapes), "per_call": a.count / calls,
                 "ms": a.self_cpu_time_total / calls / 1e3} for a in averages]
    return {"operations": operations / calls, "heaviest": heaviest,
            "heaviest_ms": sum(entry["ms"] for entry in heaviest)}


def slice_us(rounds: int = 31) -> float:
    """Median µs that TorchScript spends on one slice of a small tensor (a view: no arithmetic, no data
    allocated), in a scripted chain of 200: about the least that any dispatched operation costs here."""
    source = "def chain(x: torch.Tensor) -> torch.Tensor:\n" + "    x = x[1:]\n" * 200 + "    return x\n"
    chain = torch.jit.CompilationUnit(source).chain
    x = torch.zeros(400)
    return 1e6 * median_seconds(lambda: [chain(x) for _ in range(10)], rounds, warmup=True)["seconds"] / 2000


def profile_plugin(path: Path, daw_rate: int, daw_buffer: int, calls: int = 50) -> Dict[str, object]:
    """:func:`profile_calls` of a Neutone file's plugin call at this DAW rate and buffer (a stereo DAW, as the
    SDK's benchmark), after enough calls that the stream and TorchScript's optimised graph are warm. Where the
    buffer is shorter than a hop, the figures are means over calls that run a frame and calls that only queue.
    """
    model, _ = load_neutone_model(str(path))
    model.set_daw_sample_rate_and_buffer_size(daw_rate, daw_buffer)
    buffer = torch.rand(2, daw_buffer, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for _ in range(3 * calls):
            model.forward(buffer)
    return profile_calls(lambda: model.forward(buffer), calls)


def stream_state(model) -> Callable[[], Tuple[bool, int, int]]:
    """For a vschaos Neutone file's loaded plugin (``load_neutone_model``), its wrapper's state as
    ``(resampling, samples pushed to the output resampler, samples in the output queue)``
    (:class:`~vschaos.export.neutone_plugin.WholeHopsAtDawRates`), read before and after a call by
    :func:`ran_hops`."""
    inner = model.w2w_base
    return lambda: (bool(inner.vs_resampling), int(inner.vs_up.pushed), int(inner.vs_ready.shape[1]))


def ran_hops(before: Tuple[bool, int, int], after: Tuple[bool, int, int], daw_buffer: int) -> bool:
    """Whether a plugin call of ``daw_buffer`` samples ran hops of the model, from :func:`stream_state` before and
    after it: resampling, its output reached the output resampler; at the model's own rate, its output queue lost
    less than the buffer it played."""
    if after[0]:
        return after[1] != before[1]
    return after[2] > before[2] - daw_buffer


def split_medians(times_us: Sequence[float], ran: Sequence[bool]) -> Tuple[Optional[float], Optional[float]]:
    """Median µs of the calls that ran hops (``ran``) and of those that only queued (``None`` where there were
    none)."""
    hops = [t for t, hop in zip(times_us, ran) if hop]
    queued = [t for t, hop in zip(times_us, ran) if not hop]
    return (statistics.median(hops) if hops else None), (statistics.median(queued) if queued else None)


def plugin_calls(paths: Sequence[Path], daw_rate: int, buffers: Sequence[int], rounds: int = 15,
                 seconds: float = 0.05) -> List[Dict[str, object]]:
    """Per-call time of each file's plugin call at this DAW rate and each of ``buffers``, all in this process and
    interleaved round after round (a file and buffer, then the next: a machine whose speed drifts moves them
    together), each round a block of calls lasting about ``seconds`` (a whole number of hops' worth of calls at a
    buffer shorter than a hop, so that calls that run a frame and calls that only queue mix as in a stream):
    ``[{file, buffer, min_us, median_us, operations, hop_us, queue_us, hop_share}]``, ``min_us`` the least block mean (the
    call at its quickest on a loaded machine), ``operations`` the mean dispatched per call (:func:`profile_calls`),
    ``hop_us`` and ``queue_us`` the median time of a call that runs hops and of one that only queues
    (:func:`split_medians`; ``None`` where no call did), from as many calls again each round, each timed alone
    (the block means stay free of that timing's own cost), and ``hop_share`` the fraction of those that ran hops."""
    cases = []
    for path in paths:
        for daw_buffer in buffers:
            model, _ = load_neutone_model(str(path))
            model.set_daw_sample_rate_and_buffer_size(daw_rate, daw_buffer)
            audio = torch.rand(2, daw_buffer, generator=torch.Generator().manual_seed(0)) * 0.2 - 0.1
            call = (lambda m=model, a=audio: m.forward(a))
            with torch.no_grad():
                for _ in range(64):
                    call()
                start = time.perf_counter()
                for _ in range(16):
                    call()
            calls = max(16, int(seconds / max((time.perf_counter() - start) / 16, 1e-6)) // 16 * 16)
            cases.append((str(path), daw_buffer, call, calls, stream_state(model)))
    times: Dict[Tuple[str, int], List[float]] = {(path, b): [] for path, b, _, _, _ in cases}
    alone: Dict[Tuple[str, int], List[float]] = {(path, b): [] for path, b, _, _, _ in cases}
    ran: Dict[Tuple[str, int], List[bool]] = {(path, b): [] for path, b, _, _, _ in cases}
    with torch.no_grad():
        for _ in range(rounds):
            for path, daw_buffer, call, calls, state in cases:
                start = time.perf_counter()
                for _ in range(calls):
                    call()
                times[(path, daw_buffer)].append(1e6 * (time.perf_counter() - start) / calls)
                for _ in range(calls):
                    before = state()
                    start = time.perf_counter()
                    call()
                    alone[(path, daw_buffer)].append(1e6 * (time.perf_counter() - start))
                    ran[(path, daw_buffer)].append(ran_hops(before, state(), daw_buffer))
    rows = []
    for path, b, call, _, _ in cases:
        hop_us, queue_us = split_medians(alone[(path, b)], ran[(path, b)])
        rows.append({"file": path, "buffer": b, "min_us": min(times[(path, b)]),
                     "median_us": statistics.median(times[(path, b)]),
                     "operations": profile_calls(call, 64)["operations"], "hop_us": hop_us, "queue_us": queue_us,
                     "hop_share": sum(ran[(path, b)]) / len(ran[(path, b)])})
    return rows
