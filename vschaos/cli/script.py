"""``python script.py RUN_DIR [-o OUT_DIR] [-v VERSION] [-n CHECKPOINT] [--output-name NAME]``.

Exports a trained run for nn~ / nn.ar as ``OUT_DIR/NAME.ts`` (default: the run folder and the run
name), verified by our streaming host before it is written: a model that fails verification is
refused (exit status 1, no file). Prints the model description and its latency table.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from vschaos.threads import add_threads_argument, apply_thread_policy


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="script.py", description="Export a trained vschaos run for nn~ / nn.ar "
                                     "(verified by vschaos.host before it is written).")
    parser.add_argument("run_dir", type=Path, help="the run folder rundir/name (or one of its version_N folders)")
    parser.add_argument("-o", "--out", type=Path, default=None, help="output folder (default: the run folder)")
    parser.add_argument("-v", "--version", type=int, default=None,
                        help="version_N to export (default: latest; with a version folder, its sibling version_N)")
    # --name is the old spelling of -n (vschaos2: "-n name" = checkpoint name); kept so old scripts still work
    parser.add_argument("-n", "--checkpoint", "--name", dest="checkpoint", default="last",
                        help="checkpoint: last (default), best, a file name in checkpoints/, or a path "
                             "(--name: deprecated alias)")
    parser.add_argument("--output-name", default=None, help="file name without .ts (default: the run name)")
    parser.add_argument("--temperature", type=float, default=0.0, help="initial temperature attribute (default 0)")
    parser.add_argument("--phase", default="pghi", choices=["pghi", "random", "keep_input"],
                        help="initial phase attribute (default pghi)")
    parser.add_argument("--seed", type=int, default=0, help="initial seed attribute (default 0)")
    parser.add_argument("--buffers", type=int, nargs="+", default=None,
                        help="buffer sizes to verify (default: powers of two from the hop to 8192)")
    add_threads_argument(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    apply_thread_policy(args.threads)  # before the heavy imports below: torch reads it when it loads
    from vschaos.training.run import RunFolderError, open_run
    from vschaos.export import ExportVerificationError, export_model
    from vschaos.host import describe_model, latency_table

    try:
        run = open_run(args.run_dir, args.version, args.checkpoint)
    except RunFolderError as error:
        print(f"script.py: {error}", file=sys.stderr)
        return 2
    name = args.output_name or run.run_dir.name
    out_dir = args.out if args.out is not None else run.run_dir
    path = out_dir / f"{name}.ts"
    print(f"exporting {run.version_dir} (checkpoint {run.checkpoint_path}) -> {path}")
    try:
        path, report = export_model(run.vae, path, temperature=args.temperature, phase=args.phase, seed=args.seed,
                                    buffers=args.buffers)
    except ExportVerificationError as error:
        print(error.report.format(), file=sys.stderr)
        print(f"script.py: export refused, {path} not written: the model fails verification", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError) as error:
        print(f"script.py: export failed, {path} not written: {error}", file=sys.stderr)
        return 1
    print(report.format())
    description = describe_model(str(path))
    print()
    print(description.format())
    print()
    buffer = max(2048, description.min_buffer_size)
    print(latency_table(description, buffer))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
