"""Time model calls per method and buffer size, and tabulate the latency a user will hear."""
from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from vschaos.util import is_power_of_two

from .engine import host_latency
from .description import ModelDescription
from .errors import HostError
from .model import LoadedModel, ModelSource, load_model
from .verify.signals import decimate, test_signal

DEFAULT_BENCH_BUFFERS = (128, 256, 512, 1024, 2048, 4096, 8192)


@dataclass
class BenchRow:
    """Timing of one method at one buffer size (milliseconds per call)."""

    method: str
    buffer_size: int
    batch: int
    calls: int
    median_ms: float
    p99_ms: float
    max_ms: float
    inverse_rtf: float  # buffer duration / median call time: how many times faster than real time
    peak_rss_mb: float  # process peak resident memory after this case


@dataclass
class BenchReport:
    path: Optional[str]
    sample_rate: int
    threads: int
    rows: List[BenchRow] = field(default_factory=list)
    latency: str = ""
    skipped: List[str] = field(default_factory=list)  # buffer sizes not timed, and why

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)

    def format(self) -> str:
        header = (f"{'method':<12} {'B':>6} {'batch':>5} {'calls':>5} {'median ms':>10} {'p99 ms':>9} "
                  f"{'max ms':>9} {'1/RTF':>9} {'peak MB':>8}")
        lines = [f"bench {self.path or '<in-memory module>'} at {self.sample_rate} Hz, {self.threads} thread(s)",
                 header, "-" * len(header)]
        for r in self.rows:
            lines.append(f"{r.method:<12} {r.buffer_size:>6} {r.batch:>5} {r.calls:>5} {r.median_ms:>10.3f} "
                         f"{r.p99_ms:>9.3f} {r.max_ms:>9.3f} {r.inverse_rtf:>9.1f} {r.peak_rss_mb:>8.0f}")
        notes = [f"skipped: {note}" for note in self.skipped]
        return "\n".join(lines + notes + ["", self.latency])


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def latency_table(description: ModelDescription, buffer_size: int, vector_size: int = 64,
                  sample_rates: Optional[Sequence[int]] = None) -> str:
    """Latency per method: host buffering (sync B - V, threaded 2B - V) plus the declared model delay.

    Milliseconds are given at ``sample_rates``: by default the model's own rate (nn~ does not resample, so that
    is the rate it runs at), or 44.1 and 48 kHz for a model that does not expose one.
    """
    if sample_rates is None:
        sample_rates = (description.sample_rate,) if description.sample_rate else (44100, 48000)
    header = f"{'method':<12} {'mode':<9} {'host':>7} {'model':>7} {'total':>7}" + "".join(
        f" {f'ms@{sr / 1000:g}k':>10}" for sr in sample_rates)
    lines = [f"latency at B={buffer_size}, V={vector_size} (samples; model = declared <method>_delay)", header,
             "-" * len(header)]
    for method in description.methods:
        model_delay = method.delay or 0
        for threaded in (False, True):
            host = host_latency(buffer_size, vector_size, threaded)
            total = host + model_delay
            declared = str(model_delay) if method.delay is not None else "?"
            lines.append(f"{method.name:<12} {'threaded' if threaded else 'sync':<9} {host:>7} {declared:>7} "
                         f"{total:>7}" + "".join(f" {1000.0 * total / sr:>10.2f}" for sr in sample_rates))
    return "\n".join(lines)


DEFAULT_SAMPLE_RATE = 44100


def bench_model(source: "ModelSource | LoadedModel", methods: Optional[Sequence[str]] = None,
                buffers: Optional[Sequence[int]] = None, threads: int = 1, batch: int = 1,
                sample_rate: Optional[int] = None, min_calls: int = 5, max_calls: int = 200,
                seconds_per_case: float = 1.0, vector_size: int = 64) -> BenchReport:
    """Time each method at each buffer size on ``threads`` torch threads (restored afterwards).

    Each case runs 2 warm-up calls, then calls until ``seconds_per_case`` or ``max_calls`` (at least
    ``min_calls``). Buffers below the model's minimum buffer size (or a method's ratio) are skipped and listed
    in ``report.skipped``; a HostError if none is left. ``sample_rate`` (for 1/RTF) defaults
    to the rate the model exposes, else 44100 Hz: a 22.05 kHz model has twice as long to compute a
    buffer as a 44.1 kHz one.
    """
    model = source if isinstance(source, LoadedModel) else load_model(source, sample_rate)
    description = model.description
    # latency in ms at --sample-rate if given, else latency_table's default (the model's rate, or 44.1/48 kHz)
    table_rates: Optional[Sequence[int]] = None
    if sample_rate is None:
        sample_rate = description.sample_rate or DEFAULT_SAMPLE_RATE
    else:
        table_rates = (sample_rate,)
    selected = [description.method(m) for m in methods] if methods else description.methods
    buffers = sorted(set(int(b) for b in (buffers or DEFAULT_BENCH_BUFFERS)))
    for buffer in buffers:
        if not is_power_of_two(buffer):
            raise HostError(f"buffer size {buffer} is not a power of two")
    report = BenchReport(model.path, sample_rate, threads)
    too_small = [b for b in buffers if b < description.min_buffer_size]
    if too_small:
        # nn~ cannot run the model with them either: every call needs whole hops
        report.skipped.append(f"B={','.join(map(str, too_small))}: below the model's minimum buffer size "
                              f"{description.min_buffer_size}")
        buffers = [b for b in buffers if b >= description.min_buffer_size]
    if not buffers:
        raise HostError(f"no buffer size to bench: every one is below the model's minimum buffer size "
                        f"{description.min_buffer_size}")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for info in selected:
            for buffer in buffers:
                if buffer % info.max_ratio:
                    continue
                x = torch.from_numpy(np.ascontiguousarray(
                    decimate(test_signal(batch, info.in_channels, buffer, info.in_ratio > 1), info.in_ratio)))
                for _ in range(2):
                    model.call(info.name, x)
                times: List[float] = []
                start_case = time.perf_counter()
                while len(times) < max_calls and (len(times) < min_calls
                                                  or time.perf_counter() - start_case < seconds_per_case):
                    model.call(info.name, x)
                    times.append(model.last_call_seconds)  # the model's own time (no time limit's handoff)
                array = np.array(times) * 1000.0
                median = float(np.median(array))
                report.rows.append(BenchRow(info.name, buffer, batch, len(times), median,
                                            float(np.percentile(array, 99)), float(array.max()),
                                            (1000.0 * buffer / sample_rate) / max(median, 1e-9), _peak_rss_mb()))
    finally:
        torch.set_num_threads(previous_threads)
    shown = sorted({max(buffers[0], description.min_buffer_size, vector_size), max(buffers[-1], vector_size)})
    report.latency = "\n\n".join(latency_table(description, b, vector_size, table_rates) for b in shown)
    return report
