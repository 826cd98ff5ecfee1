"""``script.py RUN_DIR --format neutone``: the Neutone export's command-line side (see vschaos.export.neutone)."""
import argparse
import sys
from pathlib import Path

# nn~-only options of script.py and their defaults: set with --format neutone, they are reported as ignored
NN_ONLY_OPTIONS = (("--temperature", "temperature", 0.0), ("--phase", "phase", None), ("--seed", "seed", 0),
                   ("--buffers", "buffers", None))


def export_neutone_run(run, path: Path, name: str, args: argparse.Namespace) -> int:
    """Export ``run`` to ``path`` (``.nm``) for the Neutone plugin; prints the checks and the SDK's figures.

    Exit status: 0 written, 1 refused (nothing written), 2 the Neutone SDK is not installed or an empty
    ``--data-description``."""
    if args.data_description is not None and not args.data_description.strip():
        print("script.py: --data-description is empty; omit it to describe the run's dataset", file=sys.stderr)
        return 2
    try:
        from vschaos.export.neutone import NAME_LIMIT, NeutoneExportError, export_run
    except ImportError as error:
        print(f"script.py: --format neutone needs the Neutone SDK: pip install -e .[neutone] ({error})",
              file=sys.stderr)
        return 2
    ignored = [flag for flag, attribute, default in NN_ONLY_OPTIONS if getattr(args, attribute, default) != default]
    if ignored:
        print(f"note: {', '.join(ignored)} apply to --format nn only; ignored (the Neutone model's knobs set "
              f"temperature and the latent; the phase is the model's default: the input's for a source-filter "
              f"model, pghi otherwise)", file=sys.stderr)
    print(f"exporting {run.version_dir} (checkpoint {run.checkpoint_path}) -> {path} (Neutone)")
    if len(name) > NAME_LIMIT:
        print(f"note: the plugin shows model names of up to {NAME_LIMIT} characters: {name[:NAME_LIMIT]!r} "
              f"(--output-name or -o NAME.nm sets another)")
    try:
        data_text = None if args.data_description is None else args.data_description.strip()
        report = export_run(run, path, name, data_text=data_text)
    except NeutoneExportError as error:
        print(f"script.py: {error}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, OSError) as error:
        print(f"script.py: export failed, {path} not written: {error}", file=sys.stderr)
        return 1
    print(report.format())
    print(f"\nwrote {path}")
    return 0
