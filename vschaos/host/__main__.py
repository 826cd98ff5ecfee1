"""Command line: ``python -m vschaos.host {describe,verify,render,bench} MODEL.ts ...`` (console script ``vschaos-host``)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Optional

from vschaos.util import IntListAction, int_list
from vschaos.io import atomic_write_text
from vschaos.threads import DEFAULT_THREADS, apply_thread_policy

from .errors import HostError, NonFiniteOutputError

EXIT_OK = 0
EXIT_FAILED = 1  # verify ran and found problems; render's model output NaN/Inf (nothing written)
EXIT_ERROR = 2  # the command could not run (bad file, bad argument, model error)


def _attribute_settings(items: Optional[List[str]]) -> Dict[str, List[str]]:
    """``attr=v1,v2`` (or ``attr=v1 v2``) -> ``{attr: [v1, v2]}``; values stay text, typed by the model's codes."""
    settings: Dict[str, List[str]] = {}
    for item in items or []:
        if "=" not in item:
            raise HostError(f"--set expects attr=value, got '{item}'")
        name, values = item.split("=", 1)
        settings[name.strip()] = [v for v in values.replace(",", " ").split(" ") if v != ""]
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vschaos-host", description="Run any nn~ model exactly as nn~ does, "
                                     "and check it before opening a patcher.")
    commands = parser.add_subparsers(dest="command", required=True)

    describe = commands.add_parser("describe", help="methods, attributes, buffer size, delays")
    describe.add_argument("model")
    describe.add_argument("--json", action="store_true", help="print JSON")
    describe.add_argument("--yaml", metavar="FILE", help="write nn.ar's model description YAML")

    verify = commands.add_parser("verify", help="contract, shapes, streaming == offline, delays; exit 0 if all pass")
    verify.add_argument("model")
    verify.add_argument("--buffers", nargs="+", type=int_list, action=IntListAction,
                        help="e.g. 512,2048 or 512 2048 (default: largest ratio .. 8192)")
    verify.add_argument("--batch-sizes", nargs="+", type=int_list, action=IntListAction, default=[1, 4])
    verify.add_argument("--methods", type=lambda t: [m for m in t.split(",") if m])
    verify.add_argument("--tolerance", type=float, default=1e-3,
                        help="streaming vs offline: largest error allowed, times max(1, output peak) (default 1e-3)")
    verify.add_argument("--set", action="append", metavar="ATTR=VALUE", help="set an attribute first")
    verify.add_argument("--json", action="store_true")

    render = commands.add_parser("render", help="stream a sound file through a method")
    render.add_argument("model")
    render.add_argument("method")
    render.add_argument("input")
    render.add_argument("output")
    render.add_argument("--buffer", type=int, default=None, help="B (default: the model's minimum)")
    render.add_argument("--vector", type=int, default=64, help="V, the DSP vector size")
    render.add_argument("--batch", type=int, default=1)
    render.add_argument("--threaded", action="store_true", help="worker thread (latency 2B-V)")
    render.add_argument("--compensate-delay", action="store_true", help="remove host latency + declared delay")
    render.add_argument("--set", action="append", metavar="ATTR=VALUE")
    render.add_argument("--resample", action="store_true",
                        help="resample an input at another rate than the model's (refused otherwise); "
                             "the output is written at the model's rate")

    bench = commands.add_parser("bench", help="time per call, 1/RTF, memory, latency table")
    bench.add_argument("model")
    bench.add_argument("--methods", type=lambda t: [m for m in t.split(",") if m])
    bench.add_argument("--buffers", nargs="+", type=int_list, action=IntListAction,
                       help="e.g. 128,2048,8192 or 128 2048 8192 (below the model's minimum: skipped, with a note)")
    bench.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch threads (default %(default)s)")
    bench.add_argument("--batch", type=int, default=1)
    bench.add_argument("--seconds", type=float, default=1.0, help="time budget per case")
    bench.add_argument("--sample-rate", type=int, default=None,
                       help="sample rate for 1/RTF (default: the model's own, else 44100)")
    bench.add_argument("--json", action="store_true")
    return parser


def _run(args: argparse.Namespace) -> int:
    from .bench import bench_model
    from .model import describe_model, load_model
    from .rendering import render
    from .verify import verify_model

    if args.command == "describe":
        description = describe_model(args.model)
        if args.yaml:
            # atomic: nn.ar never reads a half-written description, a failure keeps the old one
            atomic_write_text(args.yaml, description.to_nnar_yaml())
        print(description.to_json() if args.json else description.format())
        return EXIT_OK
    if args.command == "verify":
        report = verify_model(args.model, args.buffers, tuple(args.batch_sizes), args.tolerance, args.methods,
                              _attribute_settings(args.set))
        print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else report.format())
        return EXIT_OK if report.ok else EXIT_FAILED
    if args.command == "render":
        result = render(load_model(args.model), args.method, args.input, args.output, args.buffer, args.vector,
                        args.batch, args.threaded, args.compensate_delay, _attribute_settings(args.set),
                        resample=args.resample)
        print(f"wrote {args.output}: {result.output.shape[0]} channel(s), {result.output.shape[1]} samples; "
              f"host latency {result.latency}, declared model delay {result.model_delay}, "
              f"compensated {result.compensated}; {result.stats.calls} calls, "
              f"{result.stats.deadline_misses} deadline misses")
        return EXIT_OK
    if args.command == "bench":
        report = bench_model(args.model, args.methods, args.buffers, args.threads, args.batch,
                             sample_rate=args.sample_rate, seconds_per_case=args.seconds)
        print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
        return EXIT_OK
    raise HostError(f"unknown command {args.command}")


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 verification failed, 2 error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # argparse already printed usage
        return int(exit_request.code or 0)
    # one torch thread per process unless bench asks for more (vschaos/threads.py says why)
    apply_thread_policy(getattr(args, "threads", DEFAULT_THREADS))
    try:
        return _run(args)
    except NonFiniteOutputError as error:  # the command ran; the model's output is what is wrong
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except HostError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
