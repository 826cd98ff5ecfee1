"""What every benchmark script shares: the test sound, the timing loop, the competing process and the results writer.

The scripts are run as files (``python bench/NAME.py``), so this folder is ``sys.path[0]`` and
they import it as ``from common import ...``.
"""
import contextlib
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Union

import numpy as np
import torch

from vschaos.io import atomic_write_text

RESULTS_DIR = Path(__file__).resolve().parent / "results"  # not the cwd: same place from anywhere
COMPETITOR = "while True: pass"  # one CPU-bound process: a musician's laptop is never idle


@contextlib.contextmanager
def competing_process(busy: bool = True) -> Iterator[None]:
    """Run ``python -c "while True: pass"`` (when ``busy``) for the duration of the block, then end it."""
    competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR]) if busy else None
    try:
        yield
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()


def test_sound(seconds: float, sample_rate: int) -> torch.Tensor:
    """Harmonic tone (220 Hz, vibrato, 10 partials) plus a quieter exponential chirp, ``(time,)``
    float32."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    freq = 220.0 * (1.0 + 0.01 * np.sin(2 * math.pi * 5.0 * t))
    phase = 2 * math.pi * np.cumsum(freq) / sample_rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 11))
    chirp = np.sin(2 * math.pi * 100.0 * seconds / math.log(50.0) * (50.0 ** (t / seconds) - 1.0))
    audio = 0.3 * tone / np.abs(tone).max() + 0.1 * chirp
    return torch.from_numpy(audio.astype(np.float32))


def interleaved_medians(calls: Mapping[str, Callable[[], object]], repeats: int,
                        warmup: bool = True) -> Dict[str, Dict[str, float]]:
    """Median wall and process-CPU seconds of each call over ``repeats`` rounds. One round runs
    every call once, so load changes on a shared machine hit all of them alike. CPU time (all
    threads) shows how much the machine stole: on an idle one, wall ~ cpu / threads. ``warmup``
    first runs each call once untimed (allocator, FFT plans, numba)."""
    walls: Dict[str, List[float]] = {name: [] for name in calls}
    cpus: Dict[str, List[float]] = {name: [] for name in calls}
    if warmup:
        for call in calls.values():
            call()
    for _ in range(repeats):
        for name, call in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            call()
            walls[name].append(time.perf_counter() - start)
            cpus[name].append(time.process_time() - start_cpu)
    return {name: {"seconds": statistics.median(walls[name]), "cpu_seconds": statistics.median(cpus[name])}
            for name in calls}


def median_seconds(call: Callable[[], object], repeats: int, warmup: bool = False) -> Dict[str, float]:
    """:func:`interleaved_medians` of a single call: ``{"seconds", "cpu_seconds"}``."""
    return interleaved_medians({"call": call}, repeats, warmup=warmup)["call"]


def write_results(name: str, data: Mapping[str, object], markdown: str,
                  directory: Optional[Union[str, Path]] = None) -> Path:
    """Write ``<directory>/<name>.json`` (``data``, indented) and ``<name>.md`` (``markdown``),
    each atomically (a crashed or interrupted run never leaves a half-written result);
    ``directory`` defaults to ``bench/results``. Returns the directory."""
    out = Path(directory) if directory is not None else RESULTS_DIR
    atomic_write_text(out / f"{name}.json", json.dumps(data, indent=2) + "\n")
    atomic_write_text(out / f"{name}.md", markdown if markdown.endswith("\n") else markdown + "\n")
    return out
