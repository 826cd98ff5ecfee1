"""Host overhead: stream 60 s of 44.1 kHz audio through a trivial gain model (the model call costs ~nothing).

Target: >= 200x real time at B=2048 on one core. Prints a table (sync vs threaded, several buffer sizes)
and writes ``bench/results/host_speed[_busy].{json,md}``; exits 1 when the target is missed.
Usage: ``python -m bench.host_speed [--busy]``.
"""
import argparse
import sys
import time
from typing import Dict, List

import numpy as np
import torch
from torch import Tensor, nn

from vschaos.host import load_model, render_array

from bench.common import busy_argument, competing_process, start_run, write_results

SAMPLE_RATE = 44100
SECONDS = 60.0
TARGET = 200.0


class BenchGain(nn.Module):
    """forward (1,1,1,1): y = 0.5 x, the cheapest possible nn~ model."""

    def __init__(self):
        super().__init__()
        self.register_buffer("forward_params", torch.tensor([1, 1, 1, 1]))

    def forward(self, x: Tensor) -> Tensor:
        return x * 0.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    busy_argument(parser)
    args = parser.parse_args()
    run = start_run(__file__, competing=args.busy)
    torch.set_num_threads(1)
    model = load_model(torch.jit.script(BenchGain()))
    audio = np.random.default_rng(0).standard_normal((1, int(SECONDS * SAMPLE_RATE))).astype(np.float32) * 0.1
    rows: List[Dict[str, object]] = []
    with competing_process(args.busy):
        for buffer in (256, 512, 2048, 8192):
            for threaded in (False, True):
                best = float("inf")
                for _ in range(3):  # best of 3: the machine is shared
                    start = time.perf_counter()
                    result = render_array(model, "forward", audio, buffer_size=buffer, threaded=threaded)
                    best = min(best, time.perf_counter() - start)
                rows.append({"buffer": buffer, "mode": "threaded" if threaded else "sync", "seconds": round(best, 4),
                             "x_realtime": round(SECONDS / best, 1), "calls": result.stats.calls})
    header = "| B | mode | wall s (60 s audio) | x real time | calls |\n|---:|---|---:|---:|---:|"
    table = "\n".join([header] + [f"| {r['buffer']} | {r['mode']} | {r['seconds']} | {r['x_realtime']} | "
                                  f"{r['calls']} |" for r in rows])
    key = next(r for r in rows if r["buffer"] == 2048 and r["mode"] == "sync")
    verdict = f"B=2048 sync: {key['x_realtime']}x real time (target >= {TARGET:g}x): " + (
        "PASS" if key["x_realtime"] >= TARGET else "FAIL")
    print(table + "\n\n" + verdict)
    write_results("host_speed_busy" if args.busy else "host_speed",
                  {"seconds_of_audio": SECONDS, "sample_rate": SAMPLE_RATE, "torch_threads": 1, "rows": rows,
                   "target_x_realtime": TARGET, "pass": key["x_realtime"] >= TARGET},
                  f"Host overhead (gain model, 60 s at 44.1 kHz, 1 thread)\n\n{table}\n\n{verdict}\n", run=run)
    return 0 if key["x_realtime"] >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
