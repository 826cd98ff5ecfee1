"""``script.py RUN_DIR --format neutone``: the Neutone export's command-line side (see vschaos.export.neutone)."""
import argparse
import sys
from pathlib import Path

# nn~-only options of script.py and their defaults: set with --format neutone, they are reported as ignored
NN_ONLY_OPTIONS = (("--temperature", "temperature", 0.0), ("--phase", "phase", "pghi"), ("--seed", "seed", 0),
                   ("--buffers", "buffers", None))


def export_neutone_run(run, path: Path, name: str, args: argparse.Namespace) -> int:
    """Export ``run`` to ``path`` (``.nm``) for the Neutone plugin; prints the checks and the SDK's figures.

    Exit status: 0 written, 1 refused (nothing written), 2 the Neutone SDK is not installed."""
    try:
        from vschaos.export.neutone import NeutoneExportError, export_run
    except ImportError as error:
        print(f"script.py: --format neutone needs the Neutone SDK: pip install -e .[neutone] ({error})",
              file=sys.stderr)
        return 2
    ignored = [flag for flag, attribute, default in NN_ONLY_OPTIONS if getattr(args, attribute, default) != default]
    if ignored:
        print(f"note: {', '.join(ignored)} apply to --format nn only; ignored (the Neutone model's knobs set "
              f"temperature and the latent; phase is pghi)", file=sys.stderr)
    print(f"exporting {run.version_dir} (checkpoint {run.checkpoint_path}) -> {path} (Neutone)")
    try:
        report = export_run(run, path, name, data_text=args.data_description)
    except NeutoneExportError as error:
        print(f"script.py: {error}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError) as error:
        print(f"script.py: export failed, {path} not written: {error}", file=sys.stderr)
        return 1
    print(report.format())
    print(f"\nwrote {path}")
    return 0
