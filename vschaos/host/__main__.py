"""Command line: ``python -m vschaos.host {describe,verify,render,bench,older-libtorch-check} MODEL.ts ...``
(console script ``vschaos-host``).

Every argument is checked while parsing (:mod:`.arguments`), before any model is loaded. Every call into the
model's code runs under ``--call-timeout`` (:mod:`.guard`): a call that never returns is a FAIL naming the
method and buffer size, and Ctrl-C stops the command at any point; both end the process with ``os._exit``
after flushing, since a call still running inside TorchScript cannot be joined.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, NoReturn, Optional

from vschaos.util import IntListAction
from vschaos.io import atomic_write_text
from vschaos.threads import DEFAULT_THREADS, apply_thread_policy

from . import older_libtorch_check
from .arguments import (DEFAULT_CALL_TIMEOUT, MAX_BATCH, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, OneLineParser,
                        batch_list, bench_seconds, bench_threads, int_between, method_names, positive_seconds,
                        power_of_two, power_of_two_list, tolerance)
from .errors import HostError, ModelTimeoutError, NonFiniteOutputError
from .files import check_output, printable

EXIT_OK = 0
EXIT_FAILED = 1  # verify ran and found problems; render's model output NaN/Inf (nothing written); a call hung
EXIT_ERROR = 2  # the command could not run (bad file, bad argument, model error)
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


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
    parser = OneLineParser(prog="vschaos-host", description="Run any nn~ model exactly as nn~ does, "
                           "and check it before opening a patcher.")
    commands = parser.add_subparsers(dest="command", required=True)  # subparsers are OneLineParsers too

    describe = commands.add_parser("describe", help="methods, attributes, buffer size, delays")
    describe.add_argument("model")
    describe.add_argument("--json", action="store_true", help="print JSON")
    describe.add_argument("--yaml", metavar="FILE", help="write nn.ar's model description YAML")

    verify = commands.add_parser("verify", help="contract, shapes, streaming == offline, delays; exit 0 if all pass")
    verify.add_argument("model")
    verify.add_argument("--buffers", nargs="+", type=power_of_two_list, action=IntListAction,
                        help="powers of two, e.g. 512,2048 or 512 2048 (default: largest ratio .. 8192)")
    verify.add_argument("--batch-sizes", nargs="+", type=batch_list, action=IntListAction, default=[1, 4],
                        help=f"1 to {MAX_BATCH} (default 1,4)")
    verify.add_argument("--methods", type=method_names)
    verify.add_argument("--tolerance", type=tolerance, default=1e-3,
                        help="streaming vs offline: largest error allowed, times max(1, output peak), in (0, 1] "
                             "(default 1e-3)")
    verify.add_argument("--set", action="append", metavar="ATTR=VALUE", help="set an attribute first")
    verify.add_argument("--json", action="store_true")

    render = commands.add_parser("render", help="stream a sound file through a method")
    render.add_argument("model")
    render.add_argument("method")
    render.add_argument("input")
    render.add_argument("output")
    render.add_argument("--buffer", type=power_of_two, default=None, help="B (default: the model's minimum)")
    render.add_argument("--vector", type=power_of_two, default=64, help="V, the DSP vector size (default 64)")
    render.add_argument("--batch", type=int_between(1, MAX_BATCH, "a batch size"), default=1)
    render.add_argument("--threaded", action="store_true", help="worker thread (latency 2B-V)")
    render.add_argument("--compensate-delay", action="store_true", help="remove host latency + declared delay")
    render.add_argument("--set", action="append", metavar="ATTR=VALUE")
    render.add_argument("--resample", action="store_true",
                        help="resample an input at another rate than the model's (refused otherwise); "
                             "the output is written at the model's rate")

    bench = commands.add_parser("bench", help="time per call, 1/RTF, memory, latency table")
    bench.add_argument("model")
    bench.add_argument("--methods", type=method_names)
    bench.add_argument("--buffers", nargs="+", type=power_of_two_list, action=IntListAction,
                       help="e.g. 128,2048,8192 or 128 2048 8192 (below the model's minimum: skipped, with a note)")
    bench.add_argument("--threads", type=bench_threads, default=DEFAULT_THREADS,
                       help="torch threads: N >= 0 (0: one per core) or auto (default %(default)s)")
    bench.add_argument("--batch", type=int_between(1, MAX_BATCH, "a batch size"), default=1)
    bench.add_argument("--seconds", type=bench_seconds, default=1.0, help="time budget per case (default 1)")
    bench.add_argument("--sample-rate", type=int_between(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE, "a sample rate"),
                       default=None, help="sample rate for 1/RTF (default: the model's own, else 44100)")
    bench.add_argument("--json", action="store_true")

    older = commands.add_parser("older-libtorch-check", help="run every method and attribute with the torch of "
                                "this Python, e.g. the libtorch version an nn~ build ships",
                                description=older_libtorch_check.__doc__.split("\n\n")[0])
    older_libtorch_check.add_arguments(older)

    for command in (describe, verify, render, bench, older):
        command.add_argument("--call-timeout", type=positive_seconds, default=DEFAULT_CALL_TIMEOUT,
                             metavar="SECONDS",
                             help="longest any one call into the model may take before the command stops with a "
                                  "FAIL (default %(default)g)")
    return parser


def _run(args: argparse.Namespace, threads: int) -> int:
    if args.command == "older-libtorch-check":
        from .guard import CallGuard

        return older_libtorch_check.check(args.model, args.buffer, CallGuard(args.call_timeout).run)

    from .bench import bench_model
    from .model import load_model
    from .rendering import render
    from .verify import verify_model

    # bench's --sample-rate reaches set_sample_rate, as nn~ tells a model its rate
    model = load_model(args.model, getattr(args, "sample_rate", None), call_timeout=args.call_timeout)
    if args.command == "describe":
        description = model.description
        if args.yaml:
            check_output(args.yaml, (args.model,))
            # atomic: nn.ar never reads a half-written description, a failure keeps the old one
            atomic_write_text(args.yaml, description.to_nnar_yaml())
        print(description.to_json() if args.json else description.format())
        return EXIT_OK
    if args.command == "verify":
        report = verify_model(model, args.buffers, tuple(args.batch_sizes), args.tolerance, args.methods,
                              _attribute_settings(args.set))
        print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else report.format())
        return EXIT_OK if report.ok else EXIT_FAILED
    if args.command == "render":
        result = render(model, args.method, args.input, args.output, args.buffer, args.vector,
                        args.batch, args.threaded, args.compensate_delay, _attribute_settings(args.set),
                        resample=args.resample)
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"wrote {printable(args.output)}: {result.output.shape[0]} channel(s), {result.output.shape[1]} "
              f"samples; host latency {result.latency}, declared model delay {result.model_delay}, "
              f"compensated {result.compensated}; {result.stats.calls} calls, "
              f"{result.stats.deadline_misses} deadline misses")
        return EXIT_OK
    if args.command == "bench":
        import torch  # loaded already; 0 threads (one per core) is torch's own count

        report = bench_model(model, args.methods, args.buffers, threads or torch.get_num_threads(), args.batch,
                             sample_rate=args.sample_rate, seconds_per_case=args.seconds)
        print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
        return EXIT_OK
    raise HostError(f"unknown command {args.command}")


def _leave(line: str, code: int) -> NoReturn:
    """Print ``line`` on stderr, flush, and end the process now: a model call may still run on its thread,
    and a thread inside TorchScript can be neither interrupted nor joined (a normal exit would wait or abort)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            pass
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
    os._exit(code)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 verification failed, 2 error).

    A model call over ``--call-timeout`` (exit 1) and Ctrl-C (exit 130) end the process (see :func:`_leave`)."""
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_request:  # argparse already printed why
            return int(exit_request.code or 0)
        # one torch thread per process unless bench asks for more (vschaos/threads.py says why)
        threads = apply_thread_policy(getattr(args, "threads", DEFAULT_THREADS))
        return _run(args, threads)
    except KeyboardInterrupt:
        _leave("vschaos-host: interrupted", EXIT_INTERRUPTED)
    except ModelTimeoutError as error:
        _leave(f"FAIL: {error} (raise --call-timeout if the model is only slow)", EXIT_FAILED)
    except NonFiniteOutputError as error:  # the command ran; the model's output is what is wrong
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except HostError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        print(f"error: {printable(str(error))}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError as error:  # numpy's or torch's allocator: a model or file larger than this machine takes
        print(f"error: out of memory ({printable(str(error)).splitlines()[0] if str(error) else 'MemoryError'})",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
