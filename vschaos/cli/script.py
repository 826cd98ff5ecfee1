"""``python script.py RUN_DIR [-o OUT_DIR] [-v VERSION] [-n CHECKPOINT|NAME] [--checkpoint C] [--output-name NAME]``.

Exports a trained run for nn~ / nn.ar as ``OUT_DIR/NAME.ts`` (default: the folder given as RUN_DIR, as vschaos2's
README says, and the run name), verified by our streaming host before it is written: a model that fails
verification is refused (exit status 1, no file). Prints the model description and its latency table.

``-o`` is a folder; a path ending in the format's suffix (``-o my_model.ts``, ``-o my_model.nm``) is the file
itself (replaced if it exists), and the command says so. ``-o`` naming an existing file without that suffix, or
a folder that cannot be created, is refused before the export starts; folders created for a refused export are
removed again.

``-n`` has two meanings, told apart by one rule: a value that names a checkpoint (``last``, ``best``, anything
ending in ``.ckpt`` or holding a folder part, a file of the version's ``checkpoints/``, or an existing file) picks
the checkpoint; any other value is the output name (vschaos2's meaning: ``-n my_model`` -> ``my_model.ts``), and
the command says so. ``--checkpoint`` and ``--output-name`` are the unambiguous spellings.
"""
import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from vschaos.threads import add_threads_argument, apply_thread_policy
from vschaos.util import IntListAction, int_list
# vschaos.training (torch, Lightning) is imported after the arguments are parsed: --help answers at once


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="script.py", description="Export a trained vschaos run for nn~ / nn.ar "
                                     "(verified by vschaos.host before it is written).")
    parser.add_argument("run_dir", type=Path, help="the run folder rundir/name (or one of its version_N folders)")
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="output folder (default: RUN_DIR, the folder given, where vschaos2 writes it too), or "
                             "the file itself when it ends in .ts (--format nn) or .nm (--format neutone)")
    parser.add_argument("-v", "--version", type=int, default=None,
                        help="version_N to export (default: latest; with a version folder, its sibling version_N)")
    parser.add_argument("-n", "--name", dest="name_or_checkpoint", default=None, metavar="CHECKPOINT|NAME",
                        help="a checkpoint (last, best, a file of checkpoints/, a path) or else the output name "
                             "(vschaos2's meaning); see the rule above")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint: last (default), best, a file name in checkpoints/, or a path")
    parser.add_argument("--output-name", default=None, help="file name without .ts (default: the run name)")
    parser.add_argument("--temperature", type=float, default=0.0, help="initial temperature attribute (default 0)")
    parser.add_argument("--phase", default="pghi", choices=["pghi", "random", "keep_input"],
                        help="initial phase attribute (default pghi)")
    parser.add_argument("--seed", type=int, default=0, help="initial seed attribute (default 0)")
    parser.add_argument("--buffers", nargs="+", type=int_list, action=IntListAction, default=None,
                        help="buffer sizes to verify, 512,2048 or 512 2048 (default: powers of two from the hop "
                             "to 8192)")
    parser.add_argument("--format", choices=["nn", "neutone"], default="nn",
                        help="nn: TorchScript for nn~ / nn.ar (default); neutone: a .nm file for the Neutone plugin "
                             "(needs pip install -e .[neutone]; verified by the Neutone SDK)")
    parser.add_argument("--data-description", default=None,
                        help="neutone: the training data as the plugin shows it (default: from the run's dataset)")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    args.checkpoint_given = args.checkpoint is not None
    if args.checkpoint is None:
        args.checkpoint = "last"
    return args


def names_a_checkpoint(value: str, version_dir: Path) -> bool:
    """The rule that tells ``-n CHECKPOINT`` from vschaos2's ``-n NAME`` (see the module docstring)."""
    from vschaos.training.run import CHECKPOINT_SUFFIX, list_checkpoints

    if value in ("last", "best") or value.endswith(CHECKPOINT_SUFFIX) or Path(value).name != value:
        return True
    return value + CHECKPOINT_SUFFIX in list_checkpoints(version_dir) or Path(value).is_file()


def resolve_name_option(args: argparse.Namespace, version_dir: Path) -> Optional[str]:
    """Apply ``-n`` to ``args.checkpoint`` or ``args.output_name``; returns a note to print (or None).
    Raises ValueError when ``-n`` would set something given twice."""
    value = args.name_or_checkpoint
    if value is None:
        return None
    if names_a_checkpoint(value, version_dir):
        if args.checkpoint_given:
            raise ValueError(f"-n {value} names a checkpoint and --checkpoint {args.checkpoint} another: give one")
        args.checkpoint = value
        return None
    if args.output_name is not None:
        from vschaos.training.run import list_checkpoints

        available = ", ".join(list_checkpoints(version_dir)) or "none"
        raise ValueError(f"-n {value} is not a checkpoint of {version_dir} ({available}), so it would be the "
                         f"output name, but --output-name {args.output_name} is given too")
    args.output_name = value
    return (f"note: -n {value}: no checkpoint of that name in {version_dir / 'checkpoints'}, so it is the output "
            f"name (vschaos2's meaning: {value}.ts); use --checkpoint to pick a checkpoint")


SUFFIXES = {"nn": ".ts", "neutone": ".nm"}


def output_path(out: Optional[Path], default_dir: Path, name: str, export_format: str,
                name_given: bool) -> Tuple[Path, Optional[str], Path]:
    """The file the export writes, a note to print (or None) and the folder's nearest existing ancestor (the
    folders below it are the export's to create): ``OUT/NAME.ts|.nm``, or ``-o`` itself when it ends in the
    format's suffix (any case; an existing file of that name is replaced, as re-exporting does). Raises
    ``ValueError`` naming ``-o`` when it is an existing file without that suffix, has the other format's suffix,
    crosses a broken symbolic link, or its folder cannot be created or written (checked, not created)."""
    suffix = SUFFIXES[export_format]
    note = None
    if out is None:
        folder, path = default_dir, default_dir / f"{name}{suffix}"
    elif out.suffix.lower() in SUFFIXES.values() and not out.is_dir():
        if out.suffix.lower() != suffix:
            raise ValueError(f"-o {out} ends in {out.suffix}, but --format {export_format} writes a {suffix} file")
        if name_given:
            raise ValueError(f"-o {out} names the file and --output-name (or -n) {name} names it too: give one")
        folder, path = out.parent, out
        note = f"note: -o {out} ends in {out.suffix}: writing that file (-o is otherwise a folder)"
    else:
        if out.exists() and not out.is_dir():
            raise ValueError(f"-o {out} is an existing file, not a folder (the export goes to -o/NAME{suffix}; "
                             f"-o NAME{suffix} writes that file)")
        folder, path = out, out / f"{name}{suffix}"
    if path.is_dir():
        raise ValueError(f"{path} is a folder: the export would replace it; choose another -o or --output-name")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            raise ValueError(f"-o {out}: {existing} is a broken symbolic link (to {os.readlink(existing)})")
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"-o {out}: cannot create the folder {folder} ({existing} is a file)")
    if not os.access(existing, os.W_OK):
        raise ValueError(f"-o {out}: cannot write in {existing} (not writable)")
    return path, note, existing


def remove_created_folders(folder: Path, existing: Path) -> None:
    """After a refused export: remove the folders from ``folder`` up to (not including) ``existing`` that the
    export created and left empty."""
    while folder != existing and existing in folder.parents:
        try:
            folder.rmdir()  # only an empty folder
        except OSError:
            return
        folder = folder.parent


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    apply_thread_policy(args.threads)  # before the heavy imports below: torch reads it when it loads
    from vschaos.training.run import RunFolderError, find_version_dir, open_run

    try:
        version_dir = find_version_dir(args.run_dir, args.version)
        note = resolve_name_option(args, version_dir)
        run = open_run(version_dir, None, args.checkpoint)
    except (RunFolderError, ValueError) as error:
        print(f"script.py: {error}", file=sys.stderr)
        return 2
    if note:
        print(note)
    name = args.output_name or run.run_dir.name
    # vschaos2's README: "The .ts file will be exported at path_to_model/", the folder given on the command line
    default_dir = Path(str(args.run_dir).rstrip("/\\") or str(args.run_dir))
    try:
        path, out_note, existing = output_path(args.out, default_dir, name, args.format, args.output_name is not None)
    except ValueError as error:
        print(f"script.py: {error}", file=sys.stderr)
        return 2
    if out_note:
        print(out_note)
    status = 1
    try:
        status = export_to(run, path, args)
    finally:  # refused, failed or interrupted (Ctrl-C): no empty folder left behind
        if status != 0:
            remove_created_folders(path.parent, existing)
    return status


def export_to(run, path: Path, args: argparse.Namespace) -> int:
    """Export ``run`` to ``path`` in ``args.format``, print the reports; the exit status."""
    from vschaos.export import ExportVerificationError, export_model
    from vschaos.host import describe_model, latency_table

    if args.format == "neutone":
        from vschaos.cli.neutone import export_neutone_run
        return export_neutone_run(run, path, path.stem, args)
    print(f"exporting {run.version_dir} (checkpoint {run.checkpoint_path}) -> {path}")
    try:
        path, report = export_model(run.vae, path, temperature=args.temperature, phase=args.phase, seed=args.seed,
                                    buffers=args.buffers)
    except ExportVerificationError as error:
        print(error.report.format(), file=sys.stderr)
        print(f"script.py: export refused, {path} not written: the model fails verification", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, OSError) as error:
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
