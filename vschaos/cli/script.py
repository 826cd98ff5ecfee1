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

Everything is checked before the model loads: the output name is a bare file name (no folder part, not ``.`` or
``..``, not empty: nothing is written outside the output folder), ``--buffers`` are powers of two from the model's
largest ratio (its hop) to 65536, ``--temperature`` lies in the export's range, the output is not the checkpoint
or the config. Every problem, a file that cannot
be written (permissions, a read-only or full disk) included, is one line and a non-zero status (2: arguments,
1: the export failed, 130: Ctrl-C); the output file is replaced only by a complete, verified export.
"""
import argparse
import errno
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from vschaos.threads import add_threads_argument, apply_thread_policy
from vschaos.util import IntListAction, int_list, is_power_of_two
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
    parser.add_argument("--phase", default=None, choices=["pghi", "random", "keep_input"],
                        help="initial phase attribute (default: keep_input for a source-filter model such as "
                             "dgt_harmonic or dgt_live, whose partials sit at the input's pitch; else pghi)")
    parser.add_argument("--seed", type=int, default=0, help="initial seed attribute (default 0)")
    parser.add_argument("--buffers", nargs="+", type=int_list, action=IntListAction, default=None,
                        help="buffer sizes to verify, 512,2048 or 512 2048 (default: powers of two from the hop "
                             "to 8192)")
    parser.add_argument("--fidelity", type=float, default=1.0,
                        help="nn: keep the fewest ordered latents (principal axes of the training latents) that carry "
                             "this share of the variance, 0 < F <= 1 (default 1: all); the others decode at their "
                             "training mean. NAME.latents.md beside the export names each latent")
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
# verification streams twice the largest buffer through every method: a bound keeps that in memory and seconds
MAX_BUFFER = 2 ** 16
NAME_BYTES = 255  # the longest file name common file systems take
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def check_output_name(name: str, flag: str, suffix: str) -> None:
    """Raise ValueError naming ``flag`` unless ``name`` is a bare file name: not empty, no folder separator or NUL,
    not ``.`` or ``..``, short enough with ``suffix``; so that the export never lands outside its folder."""
    if not name.strip():
        raise ValueError(f"{flag} {name!r}: empty; give a file name (without {suffix})")
    if any(char in name for char in ("/", "\\", "\0")) or name in (".", ".."):
        raise ValueError(f"{flag} {name}: must be a bare file name (no folder part, not . or ..); the folder is -o")
    if len((name + suffix).encode("utf-8", "surrogateescape")) > NAME_BYTES:
        raise ValueError(f"{flag}: {len(name)} characters, too long for a file name (at most {NAME_BYTES} bytes "
                         f"with {suffix})")


def check_buffers(buffers: Optional[List[int]], hop: int) -> None:
    """Raise ValueError naming the first ``--buffers`` value nn~ could not call the model with: the contract's
    buffers (NN_CONTRACT.md) are powers of two, at least the largest ratio of the methods (the model's ``hop``;
    a power of two at least that is a multiple of every ratio), and at most :data:`MAX_BUFFER` here."""
    allowed = f"powers of two from {hop} to {MAX_BUFFER}"
    for buffer in buffers or []:
        if not is_power_of_two(buffer):
            raise ValueError(f"--buffers {buffer}: nn~ buffers are powers of two; allowed: {allowed}")
        if buffer > MAX_BUFFER:
            raise ValueError(f"--buffers {buffer}: above {MAX_BUFFER} (verification streams twice the largest "
                             f"buffer through every method); allowed: {allowed}")
        if buffer < hop:
            raise ValueError(f"--buffers {buffer}: below this model's largest ratio {hop} (its hop), which nn~ "
                             f"needs at least; allowed: {allowed}")


def output_path(out: Optional[Path], default_dir: Path, name: str, export_format: str,
                name_given: bool) -> Tuple[Path, Optional[str], Path]:
    """The file the export writes, a note to print (or None) and the folder's nearest existing ancestor (the
    folders below it are the export's to create): ``OUT/NAME.ts|.nm``, or ``-o`` itself when it ends in the
    format's suffix (any case; an existing file of that name is replaced, as re-exporting does). Raises
    ``ValueError`` naming ``-o`` when it is an existing file without that suffix, has the other format's suffix,
    crosses a broken symbolic link, or its folder cannot be created or written (checked, not created)."""
    suffix = SUFFIXES[export_format]
    note = None
    where = f"-o {out}" if out is not None else f"the default output folder {default_dir} (RUN_DIR; -o sets another)"
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
            raise ValueError(f"{where}: {existing} is a broken symbolic link (to {os.readlink(existing)})")
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{where}: cannot create the folder {folder} ({existing} is a file)")
    if not os.access(existing, os.W_OK):
        raise ValueError(f"{where}: cannot write in {existing} (read-only or not yours); choose a folder you "
                         f"can write with -o")
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


def _identity(path: Path) -> Optional[Tuple[int, int, int]]:
    """What tells whether ``path`` was replaced: inode, size, modification time (None: no such file)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    apply_thread_policy(args.threads)  # before the heavy imports below: torch reads it when it loads
    target: Dict[str, object] = {}  # the output path and its identity before the export, once known
    try:
        return _main(args, target)
    except KeyboardInterrupt:  # Ctrl-C: atomic writes leave no temporary; say what happened in one line
        path = target.get("path")
        if path is None:
            print("script.py: interrupted; nothing written", file=sys.stderr)
        elif _identity(path) == target.get("before"):
            print(f"script.py: interrupted; {path} unchanged", file=sys.stderr)
        else:  # the rename had happened: the file is the complete, verified export
            print(f"script.py: interrupted after {path} was written (complete and verified)", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(args: argparse.Namespace, target: Dict[str, object]) -> int:
    from vschaos.dsp.bounds import MAX_TEMPERATURE
    from vschaos.generation.errors import GenerationError
    from vschaos.generation.limits import front_end
    from vschaos.training.run import (CONFIG_NAME, RunFolderError, find_checkpoint, find_version_dir,
                                      load_run_config, open_run)

    # every argument before the model loads (and before anything is written)
    suffix = SUFFIXES[args.format]
    try:
        if args.output_name is not None:
            check_output_name(args.output_name, "--output-name", suffix)
        version_dir = find_version_dir(args.run_dir, args.version)
        note = resolve_name_option(args, version_dir)
        if args.output_name is not None:
            check_output_name(args.output_name, "-n" if note else "--output-name", suffix)
        if args.format == "nn" and not 0.0 <= args.temperature <= MAX_TEMPERATURE:  # the attribute's range
            raise ValueError(f"--temperature {args.temperature:g}: must be within [0, {MAX_TEMPERATURE:g}]")
        if not 0.0 < args.fidelity <= 1.0:  # NaN too
            raise ValueError(f"--fidelity {args.fidelity:g}: must lie in (0, 1] (the share of the latent variance "
                             f"kept; 1 keeps every latent)")
        config = load_run_config(version_dir)
        checkpoint = find_checkpoint(version_dir, args.checkpoint)
        check_buffers(args.buffers, front_end(config, str(version_dir / CONFIG_NAME))[2])
    except (RunFolderError, GenerationError, ValueError) as error:
        print(f"script.py: {error}", file=sys.stderr)
        return 2
    if note:
        print(note)
    # the run folder's own name; "script.py ." inside it has no name of its own: its absolute path has
    name = args.output_name or Path(os.path.abspath(version_dir)).parent.name
    # vschaos2's README: "The .ts file will be exported at path_to_model/", the folder given on the command line
    default_dir = Path(str(args.run_dir).rstrip("/\\") or str(args.run_dir))
    try:
        path, out_note, existing = output_path(args.out, default_dir, name, args.format, args.output_name is not None)
        for kind, source in (("checkpoint", checkpoint), ("config", version_dir / CONFIG_NAME)):
            if path.exists() and os.path.samefile(path, source):
                raise ValueError(f"{path} is the run's {kind} {source}: the export would replace it; choose "
                                 f"another -o or --output-name")
    except (ValueError, OSError) as error:
        print(f"script.py: {error}", file=sys.stderr)
        return 2
    if out_note:
        print(out_note)
    target.update(path=path, before=_identity(path))
    status = 1
    try:
        try:
            run = open_run(version_dir, None, checkpoint)
        except RunFolderError as error:
            print(f"script.py: {error}", file=sys.stderr)
            return 2
        status = export_to(run, path, args)
    finally:  # refused, failed or interrupted (Ctrl-C): no empty folder left behind
        if status != 0:
            remove_created_folders(path.parent, existing)
    return status


def cannot_write(path: Path, error: OSError, default_folder: bool) -> str:
    """One line for an OSError writing ``path`` (a :class:`vschaos.io.DiskFullError` says what space is left)."""
    from vschaos.io import DISK_FULL_ERRNOS, DiskFullError

    if isinstance(error, DiskFullError):
        return f"script.py: {error}; free some space or choose another -o"
    reason = error.strerror or str(error)
    if error.errno in UNWRITABLE:
        hint = "; choose a folder you can write with -o" if default_folder else "; choose another -o"
    elif error.errno in DISK_FULL_ERRNOS:
        hint = "; free some space or choose another -o"
    else:
        hint = ""
    return f"script.py: cannot write {path}: {reason}{hint} ({path} not written)"


def export_to(run, path: Path, args: argparse.Namespace) -> int:
    """Export ``run`` to ``path`` in ``args.format``, print the reports; the exit status."""
    from vschaos.export import ExportVerificationError
    from vschaos.host import HostError, describe_model, latency_table

    if args.format == "neutone":
        from vschaos.cli.neutone import export_neutone_run
        if args.fidelity != 1.0:
            print("note: --fidelity applies to --format nn only; ignored", file=sys.stderr)
        return export_neutone_run(run, path, path.stem, args)
    from vschaos.export.latent_axes import run_latent_axes
    from vschaos.export.ordered_export import export_ordered
    from vschaos.training.prior import load_prior, stale_prior_note
    from vschaos.training.run import RunFolderError

    try:
        prior = load_prior(run.version_dir)  # train_model.py prior RUN wrote it: the methods prior and generate
    except RunFolderError as error:
        print(f"script.py: {error}", file=sys.stderr)
        return 2
    print(f"exporting {run.version_dir} (checkpoint {run.checkpoint_path}) -> {path}")
    if prior is not None:
        print("with the run's latent prior: methods prior and generate (they play with no input)")
        note = stale_prior_note(run.version_dir, run.checkpoint_path)
        if note:
            print(note)
    try:
        axes, notes = run_latent_axes(run, fidelity=args.fidelity)
        for note in notes:  # stdout: the export goes on (stderr is the one line of a failure)
            print(note)
        options = dict(temperature=args.temperature, phase=args.phase, seed=args.seed, buffers=args.buffers)
        path, report, latents_md = export_ordered(run.vae, path, axes, prior=prior, **options)
    except ExportVerificationError as error:
        print(error.report.format(), file=sys.stderr)
        print(f"script.py: export refused, {path} not written: the model fails verification", file=sys.stderr)
        return 1
    except OSError as error:  # permissions, a read-only or full disk: whichever way it arises
        print(cannot_write(path, error, args.out is None), file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, HostError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]  # torch's errors run long
        print(f"script.py: export failed, {path} not written: {first_line}", file=sys.stderr)
        return 1
    print(report.format())
    description = describe_model(str(path))
    print()
    print(description.format())
    print()
    buffer = max(2048, description.min_buffer_size)
    print(latency_table(description, buffer))
    print(f"\nwrote {path} and {latents_md} (what each latent does)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
