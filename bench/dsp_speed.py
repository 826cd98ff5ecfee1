"""Offline DSP speed for the ``dgt_mid`` front end (44.1 kHz, n_fft 2048, hop 512, 1025 bins).

Times the pieces of ``SpectralTransform.reconstruct(mag, length, "pghi+gla", n_iter=16)``, the
phase reconstruction that ``generate.py reconstruct`` runs by default: DGT analysis, magnitude,
inverse DGT, PGHI, one fast Griffin-Lim iteration (the slope between ``n_iter`` = 0 and 8 of
``phase.griffin_lim``, so the fixed set-up cost is left out), and the whole reconstruction,
each at 1 and 2 torch threads. The input is a synthesised harmonic sound with vibrato plus a
chirp (``--seconds``, default 10 s).

Timing on a shared machine is noisy, so: the stages are interleaved within each repeat (one
thread count at a time), the median of ``--repeats`` is reported, and process CPU time (``time.process_time``,
all threads) is reported next to wall time. CPU time is what an idle machine's wall time
would be at 1 thread; at 2 threads on a loaded machine a thread that waits for a descheduled
partner still spins and counts, so compare the 2-thread rows only on a quiet machine.

``ms/s`` = milliseconds per second of audio; ``x real time`` = audio seconds / seconds (higher
is faster), from wall time and from CPU time. Also reports the spectral convergence of the
reconstruction against the input magnitude at a few ``n_iter`` (the speed/quality trade-off of
the default).

Usage: ``python -m bench.dsp_speed [--seconds 10 --repeats 7] [--busy]``.
Writes ``bench/results/dsp_speed[_busy].{json,md}``.
"""
import argparse
import time
from typing import Callable, Dict, List, Tuple

import torch

from vschaos.dsp import functional as dsp
from vschaos.dsp.phase import griffin_lim, pghi
from vschaos.dsp.transforms import SpectralTransform

from bench.common import busy_argument, competing_process, interleaved_medians, start_run, test_sound, write_results

TARGET_X_REALTIME = 20.0
THREADS = (1, 2)


def measure(args) -> Tuple[List[Dict[str, object]], List[Dict[str, object]], SpectralTransform, float]:
    """The stage rows and the n_iter sweep, the transform and the seconds of audio timed."""
    transform = SpectralTransform(sample_rate=44100, n_fft=2048, hop=512)
    n_fft, hop, lam = transform.n_fft, transform.hop, transform.lam
    audio = test_sound(args.seconds, transform.sample_rate)[None]
    length = audio.shape[-1]
    seconds = length / transform.sample_rate
    magnitude = transform.magnitude(audio)
    spec = transform.analyse(audio)
    phase = pghi(magnitude, lam, hop, n_fft, generator=torch.Generator().manual_seed(0))  # numba compiles here
    window, dual = transform.window, transform.dual

    def gla(n_iter: int) -> Callable[[], object]:
        return lambda: griffin_lim(magnitude, phase, window, dual, hop, length, n_iter=n_iter)

    stages: Dict[str, Callable[[], object]] = {
        "DGT analysis (analyse)": lambda: transform.analyse(audio),
        "magnitude (analyse + abs)": lambda: transform.magnitude(audio),
        "inverse DGT (synthesise)": lambda: transform.synthesise(spec, length),
        "PGHI": lambda: pghi(magnitude, lam, hop, n_fft),
        "griffin_lim n_iter=0": gla(0),
        "griffin_lim n_iter=8": gla(8),
        f"reconstruct pghi+gla {args.n_iter}": lambda: transform.reconstruct(magnitude, length, "pghi+gla", args.n_iter),
    }
    # One thread count at a time: OpenMP workers of a 2-thread call keep spinning for a while
    # after it returns, which would bill CPU time to a 1-thread call run right after it.
    timed: Dict[str, Dict[str, float]] = {}
    for threads in THREADS:
        torch.set_num_threads(threads)
        time.sleep(0.5)
        for name, value in interleaved_medians(stages, args.repeats).items():
            timed[f"{name}@{threads}"] = value

    rows = []
    for name in stages:
        if name.startswith("griffin_lim"):
            continue
        for threads in THREADS:
            rows.append(dict(what=name, threads=threads, **timed[f"{name}@{threads}"]))
    for threads in THREADS:  # one Griffin-Lim iteration = slope between 0 and 8 iterations
        zero, eight = timed[f"griffin_lim n_iter=0@{threads}"], timed[f"griffin_lim n_iter=8@{threads}"]
        rows.append(dict(what="Griffin-Lim, one iteration", threads=threads,
                         seconds=(eight["seconds"] - zero["seconds"]) / 8.0,
                         cpu_seconds=(eight["cpu_seconds"] - zero["cpu_seconds"]) / 8.0))
    for row in rows:
        row["ms_per_audio_second"] = 1000.0 * row["seconds"] / seconds
        row["cpu_ms_per_audio_second"] = 1000.0 * row["cpu_seconds"] / seconds
        row["x_realtime"] = seconds / max(row["seconds"], 1e-12)
        row["x_realtime_cpu"] = seconds / max(row["cpu_seconds"], 1e-12)

    torch.set_num_threads(1)
    time.sleep(0.5)
    sweep_calls = {n_iter: (lambda n: lambda: transform.reconstruct(magnitude, length, "pghi+gla", n))(n_iter)
                   for n_iter in args.sweep}
    sweep_timed = interleaved_medians(sweep_calls, max(3, args.repeats // 2))
    sweep = []
    for n_iter in args.sweep:
        out = transform.reconstruct(magnitude, length, "pghi+gla", n_iter, generator=torch.Generator().manual_seed(0))
        sc = float(dsp.spectral_convergence(magnitude, transform.magnitude(out)))
        cpu = sweep_timed[n_iter]["cpu_seconds"]
        sweep.append({"n_iter": n_iter, "spectral_convergence": sc, "cpu_ms_per_audio_second": 1000.0 * cpu / seconds,
                      "x_realtime_cpu": seconds / cpu})
    return rows, sweep, transform, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n-iter", type=int, default=16, help="Griffin-Lim iterations of the reconstruction")
    parser.add_argument("--sweep", type=int, nargs="*", default=[0, 4, 8, 16],
                        help="Griffin-Lim iteration counts for the spectral-convergence column")
    busy_argument(parser)
    args = parser.parse_args()
    run = start_run(__file__, competing=args.busy)
    with competing_process(args.busy):
        rows, sweep, transform, seconds = measure(args)
    n_fft, hop = transform.n_fft, transform.hop
    header = (f"Offline DSP speed, dgt_mid (sr 44100, n_fft {n_fft}, hop {hop}, {transform.n_bins} bins), "
              f"{seconds:g} s of audio, median of {args.repeats} interleaved repeats")
    lines = [header, "",
             "| what | threads | wall ms/s | cpu ms/s | x real time (wall) | x real time (cpu) |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['what']} | {row['threads']} | {row['ms_per_audio_second']:.2f} | "
                     f"{row['cpu_ms_per_audio_second']:.2f} | {row['x_realtime']:.1f} | {row['x_realtime_cpu']:.1f} |")
    lines += ["", "Spectral convergence of `reconstruct(..., \"pghi+gla\", n_iter)` on the test sound (1 thread, CPU time median):",
              "", "| n_iter | spectral convergence | cpu ms/s | x real time (cpu) |", "|---:|---:|---:|---:|"]
    for entry in sweep:
        lines.append(f"| {entry['n_iter']} | {entry['spectral_convergence']:.4f} | "
                     f"{entry['cpu_ms_per_audio_second']:.2f} | {entry['x_realtime_cpu']:.1f} |")
    default = next(r for r in rows if r["what"].startswith("reconstruct") and r["threads"] == 1)
    default2 = next(r for r in rows if r["what"].startswith("reconstruct") and r["threads"] == 2)
    slowdown = default2["seconds"] / default["seconds"]
    lines += ["", f"Default phase reconstruction (pghi+gla {args.n_iter}), 1 thread: x{default['x_realtime_cpu']:.1f} "
              f"real time by CPU time (x{default['x_realtime']:.1f} wall); phase reconstruction only, the "
              f"model's encoder/decoder come on top (bench.generation_speed). Target for the whole "
              f"reconstruct path: >= x{TARGET_X_REALTIME:g}.",
              f"2 threads / 1 thread wall time of the default: {slowdown:.2f}"
              + (" (> 1: the machine is oversubscribed; each torch op's parallel region waits for a "
                 "descheduled second thread, so 1 thread is faster here)" if slowdown > 1.0 else "")]
    text = "\n".join(lines)
    print(text)
    write_results("dsp_speed_busy" if args.busy else "dsp_speed",
                  {"seconds_of_audio": seconds, "repeats": args.repeats, "n_fft": n_fft, "hop": hop,
                   "sample_rate": transform.sample_rate, "n_iter": args.n_iter, "rows": rows, "sweep": sweep},
                  text, run=run)


if __name__ == "__main__":
    main()
