"""Speed of the Neutone wrapper's streaming resampler (``vschaos.dsp.resample``), per DAW call, scripted, 1 thread.

For each DAW rate and buffer, and each model rate of the presets (22.05 kHz: demo; 44.1 kHz: dgt_*), times
what the wrapper does per call: push a DAW buffer into the down resampler and pull what it completes, push the
model's output (as many model samples) into the up resampler and pull one DAW buffer. Two ways side by side,
interleaved round by round: ``cycle``, the default (each call reads its taps and input positions as slices of
the cycle of positions laid out once), and ``general`` (``cycle_max_values = 0``: the per-call index arithmetic
and table gather, the path of odd rate pairs). Both give the same samples bit
for bit (``tests/test_resample.py``); the bench checks that too.

Usage: ``python -m bench.resample_speed [--repeats 200] [--busy]``; ``--busy`` runs one competing CPU-bound
process meanwhile. Writes ``bench/results/resample_speed[_busy].{json,md}``.
"""
import argparse
import warnings
from typing import Dict, List, Tuple

import torch

from bench.common import busy_argument, competing_process, interleaved_medians, start_run, write_results
from vschaos.dsp.resample import StreamingResampler

SETTINGS: List[Tuple[int, int, int]] = [  # DAW rate, DAW buffer, model rate
    (48000, 2048, 22050), (48000, 2048, 44100), (48000, 256, 22050), (44100, 512, 22050), (96000, 1024, 44100)]
CALLS_PER_SAMPLE = 20  # each timed sample runs this many DAW calls: one call alone is near the timer's resolution


def scripted(daw_rate: int, model_rate: int, cycle: bool) -> Tuple[torch.jit.ScriptModule, torch.jit.ScriptModule]:
    pair = []
    for in_rate, out_rate in ((daw_rate, model_rate), (model_rate, daw_rate)):
        resampler = StreamingResampler(in_rate, out_rate)
        if not cycle:
            resampler.cycle_max_values = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            pair.append(torch.jit.script(resampler))
    return pair[0], pair[1]


def daw_calls(down, up, buffers: torch.Tensor):
    """One timed sample: ``CALLS_PER_SAMPLE`` DAW calls of down and up resampling; returns the last outputs."""
    outputs = []
    for x in buffers:
        down.push(x)
        model_rate_x = down.pull(down.ready())
        up.push(model_rate_x)
        outputs.append(up.pull(x.shape[1]))
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed samples per way (default %(default)s)")
    busy_argument(parser)
    args = parser.parse_args()
    run = start_run(__file__, competing=args.busy)
    torch.set_num_threads(1)
    load = "one competing CPU-bound process" if args.busy else "idle"
    rows: List[Dict[str, object]] = []
    with competing_process(args.busy):
        for daw_rate, buffer, model_rate in SETTINGS:
            buffers = torch.randn(CALLS_PER_SAMPLE, 1, buffer, generator=torch.Generator().manual_seed(0)) * 0.1
            ways = {"cycle": scripted(daw_rate, model_rate, True), "general": scripted(daw_rate, model_rate, False)}
            first = {name: daw_calls(*pair, buffers) for name, pair in ways.items()}
            identical = all(torch.equal(a, b) for a, b in zip(first["cycle"], first["general"]))
            times = interleaved_medians({name: (lambda pair=pair: daw_calls(*pair, buffers))
                                         for name, pair in ways.items()}, args.repeats)
            cycle_us = times["cycle"]["seconds"] / CALLS_PER_SAMPLE * 1e6
            general_us = times["general"]["seconds"] / CALLS_PER_SAMPLE * 1e6
            rows.append({"daw_rate": daw_rate, "buffer": buffer, "model_rate": model_rate, "cycle_us": cycle_us,
                         "general_us": general_us, "ratio": general_us / cycle_us, "identical": identical,
                         "share_of_buffer": cycle_us * 1e-6 / (buffer / daw_rate)})
    lines = [f"Streaming resampler per DAW call, down and up ({load})", "",
             f"Scripted, 1 thread, torch {torch.__version__}; medians of {args.repeats} samples of "
             f"{CALLS_PER_SAMPLE} calls, the two ways interleaved.", "",
             "| DAW rate / buffer | model rate | cycle (us per call) | general (us) | general / cycle | same samples "
             "| share of the buffer's time |", "|---|---:|---:|---:|---:|---|---:|"]
    for row in rows:
        lines.append(f"| {row['daw_rate']} / {row['buffer']} | {row['model_rate']} | {row['cycle_us']:.1f} | "
                     f"{row['general_us']:.1f} | {row['ratio']:.2f} | {'yes' if row['identical'] else 'NO'} | "
                     f"{100 * row['share_of_buffer']:.2f} % |")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    name = "resample_speed_busy" if args.busy else "resample_speed"
    write_results(name, {"load": load, "repeats": args.repeats, "calls_per_sample": CALLS_PER_SAMPLE,
                         "rows": rows}, markdown, run=run)


if __name__ == "__main__":
    main()
