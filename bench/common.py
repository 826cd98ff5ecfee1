"""What every benchmark and experiment shares: the test sound, the timing loop, the competing process and the
results writer.

Run them from the repository root as modules (``python -m bench.dsp_speed``, ``python -m experiments.f0_accuracy``)
and import these helpers as ``from bench.common import ...``.

A result records how it was measured: :func:`start_run` is called when the measurement starts (the time, the load
average, whether a competing process runs, the command line) and :func:`write_results` adds, when it ends, the
machine, the git commit (and which code files differed from it) and the load again. Each result is written twice:
``<folder>/results/<name>.{json,md}``, the latest, which ``python -m bench.report`` gathers into
``docs/BENCHMARKS.md``, and a dated copy in ``<folder>/results/history/``. Both folders are committed, so a figure
quoted anywhere can be traced to the file that measured it.
"""
import contextlib
import datetime
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from vschaos.io import atomic_write_text

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"  # not the cwd: same place from anywhere
HISTORY = "history"  # dated copies, beside the latest results
COMPETITOR = "while True: pass"  # one CPU-bound process: a musician's laptop is never idle
# the files whose changes alter a measurement: documents, and results written by an earlier run, do not make a
# result "dirty"
CODE_PATHS = ("vschaos", "bench", "experiments", ":(glob)*.py", ":(exclude)bench/results",
              ":(exclude)experiments/results")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


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


def busy_argument(parser) -> None:
    """Add ``--busy`` (one competing CPU-bound process during the measurement) to an ``argparse`` parser."""
    parser.add_argument("--busy", action="store_true",
                        help="run one competing CPU-bound process meanwhile; the result is named NAME_busy")


@dataclass(frozen=True)
class Run:
    """How a measurement was started: ``source`` (the script, relative to the repository), ``started`` (UTC),
    ``load_start`` (``os.getloadavg()``, None where unknown), ``competing`` (whether, or when, a competing
    process ran) and ``command`` (the command line, interpreter first)."""
    source: str
    started: datetime.datetime
    load_start: Optional[Tuple[float, float, float]]
    competing: str
    command: str


def _relative(path: Union[str, Path]) -> str:
    absolute = Path(os.path.abspath(path))  # not resolved: the venv's python is a link out of the repository
    return absolute.relative_to(REPO).as_posix() if absolute.is_relative_to(REPO) else str(path)


def _load_average() -> Optional[Tuple[float, float, float]]:
    return tuple(round(value, 2) for value in os.getloadavg()) if hasattr(os, "getloadavg") else None


def command_line(argv: Optional[List[str]] = None) -> str:
    """The command that started this process (``sys.orig_argv``), shell-quoted, the interpreter and the script
    given relative to the repository when they lie in it."""
    argv = list(sys.orig_argv if argv is None else argv)
    if argv:
        argv[0] = _relative(argv[0]) if os.path.isabs(argv[0]) else argv[0]
    return shlex.join(argv)


def start_run(source_file: Union[str, Path], competing: Union[bool, str] = False) -> Run:
    """Call when the measurement starts, with the script's ``__file__``. ``competing``: True when one competing
    process runs throughout, or a sentence saying when one ran."""
    if isinstance(competing, bool):
        competing = f"yes, one CPU-bound process (python -c '{COMPETITOR}')" if competing else "no"
    return Run(source=_relative(source_file), started=datetime.datetime.now(datetime.timezone.utc),
               load_start=_load_average(), competing=competing, command=command_line())


def _git(*args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_metadata(run: Run) -> Dict[str, object]:
    """What a result records about its measurement (``meta`` in the JSON): ``run`` plus, now, the end time and
    load, the machine, and the commit with the code files that differed from it (None where git is missing)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return {
        "source": run.source,
        "command": run.command,
        "started_utc": run.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "os": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "commit": commit.strip() if commit else None,
        "dirty": None if status is None else sorted(line[3:] for line in status.splitlines() if line.strip()),
        "load_average": {"start": run.load_start, "end": _load_average()},
        "competing_process": run.competing,
    }


def meta_line(meta: Mapping[str, object]) -> str:
    """One markdown line saying when, where, on which code, under which load and with which command a result
    was measured."""
    machine = meta["machine"]
    start, end = meta["load_average"]["start"], meta["load_average"]["end"]
    if meta["commit"] is None:
        code = "commit unknown"
    elif meta["dirty"]:
        dirty = meta["dirty"]
        changed = ", ".join(dirty) if len(dirty) <= 3 else f"{len(dirty)} code files (listed in the JSON)"
        code = f"commit {meta['commit'][:10]} with uncommitted changes to {changed}"
    else:
        code = f"commit {meta['commit'][:10]}"
    load = "unknown" if start is None or end is None else f"{start[0]:.2f} at start, {end[0]:.2f} at end"
    return (f"Measured {meta['started_utc'].replace('T', ' ')[:16]} to {meta['finished_utc'][11:16]} UTC on "
            f"{machine['cpu']} ({machine['cores']} cores), {machine['os']}, Python {machine['python']}, "
            f"torch {machine['torch']}; {code}; load average (1 min) {load}; competing process: "
            f"{meta['competing_process']}; command: `{meta['command']}`.")


def demote_headings(markdown: str, levels: int = 1) -> str:
    """``markdown`` with each heading (outside fenced code) ``levels`` deeper, so that it nests under a title."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            line = "#" * levels + line
        lines.append(line)
    return "\n".join(lines)


def write_results(name: str, data: Mapping[str, object], markdown: str,
                  directory: Optional[Union[str, Path]] = None, run: Optional[Run] = None) -> Path:
    """Write ``<directory>/<name>.json`` (``{"meta": run_metadata(run), "data": data}``, indented) and
    ``<name>.md`` (a ``# name`` title, :func:`meta_line`, then ``markdown``, its headings one level deeper),
    each atomically (a crashed or interrupted run never leaves a half-written result), and the same two files as
    ``<directory>/history/<name>-<YYYYmmdd-HHMMSS>.*`` (UTC start time). ``directory`` defaults to the results
    folder beside ``run.source`` (``bench/results``, ``experiments/results``). Without ``run`` the load at start
    is not recorded. Returns the directory; ``ValueError`` for a name that is not a plain file name."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"results name {name!r}: use letters, digits, '_', '-' and '.' only")
    if run is None:
        run = Run(source=_relative(sys.argv[0]) if sys.argv and sys.argv[0] else "unknown",
                  started=datetime.datetime.now(datetime.timezone.utc), load_start=None,
                  competing="not recorded", command=command_line())
    if directory is not None:
        out = Path(directory)
    elif (REPO / run.source).parent.name in ("bench", "experiments"):
        out = (REPO / run.source).parent / "results"
    else:
        out = RESULTS_DIR
    meta = run_metadata(run)
    text = json.dumps({"meta": meta, "data": data}, indent=2) + "\n"
    body = f"# {name}\n\n{meta_line(meta)}\n\n{demote_headings(markdown.strip())}\n"
    stamp = run.started.strftime("%Y%m%d-%H%M%S")
    for folder, stem in ((out / HISTORY, f"{name}-{stamp}"), (out, name)):
        atomic_write_text(folder / f"{stem}.json", text)
        atomic_write_text(folder / f"{stem}.md", body)
    return out
