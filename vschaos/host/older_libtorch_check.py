"""Load an exported ``.ts`` in *another* torch (e.g. the libtorch version your nn~ build ships)
and run every method the way nn~ would: a portability check for exports.

    vschaos-host older-libtorch-check MODEL.ts [--buffer 2048]

This module uses only torch and the standard library (no other vschaos import), so that it also runs as a
file in a Python environment that has that torch and not vschaos:

    /path/to/other-env/bin/python vschaos/host/older_libtorch_check.py exports/demo.ts [--buffer 2048]

Prints one line per method and batch size, and per attribute, and exits non-zero if anything fails to load
or run.
"""
import argparse
import os
import stat
import sys
from typing import Any, Callable, List, Optional

# ``run(what, function, *args)``: how each call into the model is made (the host passes its time limit)
Runner = Callable[..., Any]


def _direct(what: str, function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)

DEFAULT_BUFFER = 2048
MAX_BUFFER = 1 << 16


def buffer_size(text: str) -> int:
    """argparse type of ``--buffer``: a power of two from 1 to :data:`MAX_BUFFER`."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or value & (value - 1) or value > MAX_BUFFER:
        raise argparse.ArgumentTypeError(f"{text} is not a power of two from 1 to {MAX_BUFFER}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The check's arguments (its own parser and the ``vschaos-host older-libtorch-check`` subcommand)."""
    parser.add_argument("model", help="exported TorchScript file")
    parser.add_argument("--buffer", type=buffer_size, default=DEFAULT_BUFFER,
                        help=f"host buffer size B, a power of two (default {DEFAULT_BUFFER})")


def _call(model: Any, method: str, x: Any) -> Any:
    import torch

    with torch.no_grad():
        return getattr(model, method)(x)


def check(path: str, buffer: int = DEFAULT_BUFFER, run: Runner = _direct) -> int:
    """Load ``path`` in this torch and call every method at batch 1 and 4 with ``buffer`` samples, then get and
    set every attribute; prints ``PASS``/``FAIL`` lines; returns 0 if all pass, else 1.

    ``run(what, function, *args)`` makes each call into the model (default: directly; ``what`` names it, e.g.
    ``method 'forward' (buffer 2048, batch 4)``); whatever it raises other than a model's RuntimeError
    propagates (the host's time limit)."""
    import torch  # here: ``vschaos-host --help`` answers without loading torch

    print(f"torch {torch.__version__}")
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block torch.jit.load forever
            print(f"FAIL load: {path} is not a regular file")
            return 1
        model = torch.jit.load(path).eval()
    except (RuntimeError, ValueError, OSError) as error:  # RuntimeError: unknown operators/versions, not a zip
        print(f"FAIL load: {error}")
        return 1
    failures = 0
    torch.manual_seed(0)  # the same test signal in every torch version
    for method in run("get_methods()", model.get_methods):
        in_ch, in_ratio, out_ch, out_ratio = (int(v) for v in getattr(model, f"{method}_params"))
        for batch in (1, 4):
            x = 0.5 * torch.randn(batch, in_ch, buffer // in_ratio)
            try:
                y = run(f"method '{method}' (buffer {buffer}, batch {batch})", _call, model, method, x)
            except RuntimeError as error:
                print(f"FAIL {method} batch {batch}: {error}")
                failures += 1
                continue
            expected = (batch, out_ch, buffer // out_ratio)
            ok = tuple(y.shape) == expected and y.dtype == torch.float32 and bool(torch.isfinite(y).all())
            failures += not ok
            print(f"{'PASS' if ok else 'FAIL'} {method} batch {batch}: output {tuple(y.shape)} (expected {expected})")
    for attribute in run("get_attributes()", model.get_attributes):
        values = run(f"get_{attribute}()", getattr(model, f"get_{attribute}"))
        status = run(f"set_{attribute}", getattr(model, f"set_{attribute}"), *values)
        failures += status != 0
        print(f"{'PASS' if status == 0 else 'FAIL'} attribute {attribute} = {list(values)} (set returned {status})")
    return 1 if failures else 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point when run as a file; returns the exit code (0 all pass, 1 a failure, 2 a bad argument)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # argparse already printed why
        return int(exit_request.code or 0)
    return check(args.model, args.buffer)


if __name__ == "__main__":
    sys.exit(main())
