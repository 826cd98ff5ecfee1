"""Load an exported ``.ts`` in *another* torch (e.g. the libtorch version your nn~ build ships)
and run every method the way nn~ would: a portability check for exports.

Uses only torch and the standard library, so it runs in any Python environment that has torch:

    /path/to/other-env/bin/python bench/older_libtorch_check.py exports/demo.ts [--buffer 2048]

Prints one line per method and batch size and exits non-zero if anything fails to load or run.
"""
import argparse
import sys

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="exported TorchScript file")
    parser.add_argument("--buffer", type=int, default=2048, help="host buffer size B (default 2048)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}")
    try:
        model = torch.jit.load(args.model).eval()
    except RuntimeError as error:  # TorchScript raises RuntimeError for unknown operators/versions
        print(f"FAIL load: {error}")
        return 1
    failures = 0
    torch.manual_seed(0)  # the same test signal in every torch version
    for method in model.get_methods():
        in_ch, in_ratio, out_ch, out_ratio = (int(v) for v in getattr(model, f"{method}_params"))
        for batch in (1, 4):
            x = 0.5 * torch.randn(batch, in_ch, args.buffer // in_ratio)
            try:
                with torch.no_grad():
                    y = getattr(model, method)(x)
            except RuntimeError as error:
                print(f"FAIL {method} batch {batch}: {error}")
                failures += 1
                continue
            expected = (batch, out_ch, args.buffer // out_ratio)
            ok = tuple(y.shape) == expected and y.dtype == torch.float32 and bool(torch.isfinite(y).all())
            failures += not ok
            print(f"{'PASS' if ok else 'FAIL'} {method} batch {batch}: output {tuple(y.shape)} (expected {expected})")
    for attribute in model.get_attributes():
        values = getattr(model, f"get_{attribute}")()
        status = getattr(model, f"set_{attribute}")(*values)
        failures += status != 0
        print(f"{'PASS' if status == 0 else 'FAIL'} attribute {attribute} = {list(values)} (set returned {status})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
