"""Training speed through the real command: ``train_model.py`` run as a subprocess, as users run it (Hydra
composition, Lightning loop, data loader, validation, checkpoints, TensorBoard, progress bar).

For each thread count (default 1 and 2) and load (idle, and with one competing CPU-bound process
``python -c "while True: pass"``), one ``train_model.py --config-name PRESET threads=T trainer.max_steps=N`` run on a
synthetic dataset (the demo synthesiser at 44.1 kHz). A step-timer callback (added by a Hydra override, the way
a user adds one) times the steps after the first ``--warmup`` ones; frames/s = timed steps x batch size / time.
The frame cache is built once by a ``+check=1`` run beforehand and reported apart (its build is excluded
from the timed runs). Peak RSS is the training process's own (``wait4``). ``threads=0`` (torch's default:
one thread per core) can be added with ``--threads 0 1 2``.

    python -m bench.train_speed [--preset dgt_mid] [--threads 1 2] [--steps 150] [--warmup 10]
                                [--loads idle busy] [--minutes 3] [--override KEY=VALUE ...] [--name NAME]

Writes ``bench/results/train_speed.{json,md}`` (``--name``: another name). The machine's load average is
recorded with each row: on a shared machine the figures are only comparable within one run (the rows of one run
interleave nothing; run it on a quiet machine for absolute figures).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import lightning as L

from bench.common import competing_process, start_run, write_results
from vschaos.threads import threads_argument

REPO = Path(__file__).resolve().parents[1]  # the training subprocess imports bench.train_speed.StepTimer from here
# what the child must not inherit: the thread policy under test sets these itself
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "OMP_WAIT_POLICY")


class StepTimer(L.Callback):
    """Writes ``{"steps", "seconds", "frames"}`` of the training steps after the first ``warmup`` ones to ``path``
    when training ends (wall time, validation and checkpoints of the epochs in between included)."""

    def __init__(self, path: str, warmup: int = 10):
        self.path, self.warmup = path, int(warmup)
        self.start: Optional[float] = None
        self.steps = self.frames = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup and self.start is None:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start is not None:
            self.steps += 1
            self.frames += int(batch["magnitude"].shape[0])

    def on_train_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self.start if self.start is not None else 0.0
        Path(self.path).write_text(json.dumps({"steps": self.steps, "seconds": seconds, "frames": self.frames}))


def child_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def run_command(command: List[str], log: Path) -> Dict[str, float]:
    """Run ``command`` (stdout/stderr to ``log``); ``{"seconds", "peak_rss_mb"}``; raises with the log's tail."""
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{tail}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024.0}


def train_command(preset: str, root: Path, rundir: Path, threads: int, extra: List[str]) -> List[str]:
    return [sys.executable, str(REPO / "train_model.py"), "--config-name", preset, f"data.dataset.root={root}",
            f"rundir={rundir}", f"name={preset}", f"threads={threads}", *extra]


def timed_training(preset: str, root: Path, work: Path, threads: int, steps: int, warmup: int,
                   overrides: List[str] = ()) -> Dict[str, float]:
    timing = work / f"timing_{threads}_{time.monotonic_ns()}.json"
    extra = [*overrides, f"+trainer.max_steps={steps + warmup}", "trainer.max_epochs=-1",
             "+callbacks.step_timer._target_=bench.train_speed.StepTimer", f"+callbacks.step_timer.path={timing}",
             f"+callbacks.step_timer.warmup={warmup}"]
    process = run_command(train_command(preset, root, work / "runs", threads, extra), work / "train.log")
    measured = json.loads(timing.read_text())
    resolved = [line.split("training with ")[1].split()[0] for line in (work / "train.log").read_text().splitlines()
                if line.startswith("threads=auto: training with ")]
    return {"resolved_threads": int(resolved[0]) if resolved else threads,"steps_per_s": measured["steps"] / measured["seconds"],
            "frames_per_s": measured["frames"] / measured["seconds"],
            "timed_steps": measured["steps"], "timed_seconds": measured["seconds"],
            "process_seconds": process["seconds"], "peak_rss_mb": process["peak_rss_mb"]}


def time_demo_sh(work: Path) -> Dict[str, float]:
    """Seconds of ``bash demo.sh`` while one competing CPU-bound process runs (its log in ``work``); the venv
    setup runs first, untimed."""
    subprocess.run(["bash", "scripts/setup_env.sh"], cwd=REPO, check=True)
    with competing_process():
        loadavg = os.getloadavg()[0]
        result = run_command(["bash", "demo.sh"], work / "demo_sh.log")
    return {"seconds": result["seconds"], "loadavg_before": loadavg}


def markdown(preset: str, rows: List[Dict], cache: Dict[str, float], steps: int, warmup: int,
             overrides: List[str]) -> str:
    lines = [f"Training speed through train_model.py, preset {preset}"
             + (f" ({' '.join(overrides)})" if overrides else "")
             + f", CPU ({os.cpu_count()} cores), {steps} timed steps after {warmup} warm-up steps", "",
             "| threads | load | steps/s | frames/s | process s (total) | peak RSS MB | load avg (1 min) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        threads = "torch default" if r["threads"] == 0 else str(r["threads"])
        if r["threads"] == "auto":
            threads = f"auto ({r['resolved_threads']})"
        lines.append(f"| {threads} | {r['load']} | {r['steps_per_s']:.1f} | {r['frames_per_s']:,.0f} | "
                     f"{r['process_seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['loadavg_before']:.2f} |")
    lines += ["", f"Frame cache (built once by `+check=1`, excluded above): {cache['frames']:,} frames of "
                  f"{cache['audio_seconds']:.0f} s audio, check run {cache['seconds']:.1f} s in all "
                  f"(start-up included), peak RSS {cache['peak_rss_mb']:.0f} MB.",
              "load 'busy': one competing process `python -c \"while True: pass\"` runs throughout."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dgt_mid")
    parser.add_argument("--threads", type=threads_argument, nargs="+", default=[1, 2],
                        help="thread counts to time (0: torch's default, auto: the policy's probe)")
    parser.add_argument("--loads", nargs="+", choices=["idle", "busy"], default=["idle", "busy"])
    parser.add_argument("--steps", type=int, default=150, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (start of the loop)")
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes of synthetic audio (44.1 kHz)")
    parser.add_argument("--demo-sh", action="store_true",
                        help="also time `bash demo.sh` with one competing process (setup run first, untimed; "
                             "writes demo.sh's outputs in the checkout, as demo.sh does)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a Hydra override for every timed run (repeatable), e.g. data.batch_size=512")
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--name", default="train_speed", help="results file name (default %(default)s)")
    args = parser.parse_args()
    from vschaos.data.demo import make_demo_dataset

    busy = "busy" in args.loads
    run = start_run(__file__, competing=(busy if len(args.loads) == 1 or not busy
                                         else "during the rows of load 'busy' only"))

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        root = work / "data"
        if not (root / "metadata").is_dir():
            make_demo_dataset(root, sample_rate=44100, minutes=args.minutes, files_per_instrument=4)
        check = run_command(train_command(args.preset, root, work / "runs", 1, ["+check=1"]), work / "check.log")
        summary = next((line for line in (work / "check.log").read_text().splitlines()
                        if line.startswith("dataset ")), "")
        frames = int(summary.split(" frames")[0].rsplit(" ", 1)[1]) if " frames" in summary else 0
        audio_seconds = float(summary.split(" s;")[0].rsplit(" ", 1)[1]) if " s;" in summary else 0.0
        cache = {"frames": frames, "audio_seconds": audio_seconds, **check}
        print(f"cache: {cache}", flush=True)
        rows = []
        for load in args.loads:
            with competing_process(load == "busy"):
                for threads in args.threads:
                    loadavg = os.getloadavg()[0]
                    row = {"preset": args.preset, "threads": threads, "load": load, "loadavg_before": loadavg,
                           **timed_training(args.preset, root, work, threads, args.steps, args.warmup,
                                           args.override)}
                    row["loadavg_after"] = os.getloadavg()[0]
                    rows.append(row)
                    print(row, flush=True)
        demo = time_demo_sh(work) if args.demo_sh else None
    table = markdown(args.preset, rows, cache, args.steps, args.warmup, args.override)
    if demo is not None:
        table += (f"\n`bash demo.sh` with one competing process (setup excluded): {demo['seconds']:.0f} s "
                  f"(load average {demo['loadavg_before']:.2f} before).\n")
    print(table)
    write_results(args.name, {"preset": args.preset, "overrides": args.override, "steps": args.steps,
                              "warmup": args.warmup, "cpu_count": os.cpu_count(), "cache": cache, "runs": rows,
                              "demo_sh": demo}, table, run=run)


if __name__ == "__main__":
    main()
