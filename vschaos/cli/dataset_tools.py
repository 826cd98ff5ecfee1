"""Dataset preparation commands behind ``data_tools/*.py``: argument parsing and reports here, the work
in ``vschaos.data`` (the scripts themselves only call these functions)."""
import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from vschaos.threads import set_thread_environment
# the dataset modules (numpy, soundfile, torch for DSP) are imported by the commands after their arguments are
# parsed: --help and argument errors are instant


DEFAULT_TRANSFORM = "dgt_mid"  # the transform group's default in the dgt_mid preset


def transform_names(config_dir: Path) -> List[str]:
    """Names of the Hydra ``transform`` group: ``config_dir/transform/<name>.yaml``, sorted."""
    return sorted(p.stem for p in (Path(config_dir) / "transform").glob("*.yaml"))


def load_transform_config(name: str, config_dir: Optional[Path] = None) -> DictConfig:
    """The resolved ``transform`` config ``config_dir/transform/<name>.yaml`` (default: the
    package's ``vschaos/configs/``). Raises ``ValueError`` naming the available transforms if unknown."""
    if config_dir is None:
        from vschaos.configs import CONFIG_DIR as config_dir
    names = transform_names(config_dir)
    if name not in names:
        raise ValueError(f"unknown transform {name!r}; available in {Path(config_dir) / 'transform'}: "
                         f"{', '.join(names)}")
    config = OmegaConf.load(Path(config_dir) / "transform" / f"{name}.yaml")
    OmegaConf.resolve(config)
    return config


def check_dataset_main(argv: Optional[Sequence[str]] = None) -> int:
    """``check_dataset.py ROOT [--transform NAME] [--sample-rate SR] [--tasks ...] [--no-preset]``: print the
    validation report, frames counted with the transform's n_fft/hop at its sample rate (or
    ``--sample-rate``), after a line saying which preset ``train_model.py --config-name auto`` would pick and why
    (:mod:`vschaos.pitch.recommend`; not with ``--no-preset``); returns 0 when the dataset has no problem, 1
    otherwise (2: bad transform). A dataset that cannot be sampled gets a line saying why, not another status."""
    parser = argparse.ArgumentParser(prog="check_dataset.py",
                                     description="Validate a vschaos dataset tree and print what it holds.")
    parser.add_argument("root", help="dataset root (holds data/ and metadata/)")
    parser.add_argument("--transform", default=DEFAULT_TRANSFORM,
                        help=f"front end from vschaos/configs/transform/NAME.yaml whose frames are counted "
                             f"(default: {DEFAULT_TRANSFORM})")
    parser.add_argument("--sample-rate", type=int, default=None,
                        help="rate used to count frames (default: the transform's sample_rate)")
    parser.add_argument("--tasks", nargs="*", default=None, help="tasks to check (default: all under metadata/)")
    parser.add_argument("--no-preset", action="store_true",
                        help="skip the preset recommendation (it listens to up to a minute of the dataset)")
    args = parser.parse_args(argv)
    set_thread_environment()
    from vschaos.data.dataset import validate_dataset

    try:
        transform = load_transform_config(args.transform)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sample_rate = args.sample_rate if args.sample_rate is not None else int(transform.sample_rate)
    report = validate_dataset(args.root, tasks=args.tasks, sample_rate=sample_rate,
                              n_fft=int(transform.n_fft), hop=int(transform.hop))
    if not args.no_preset:  # first: the report ends with its verdict (OK or the problems found)
        from vschaos.pitch.recommend import RecommendError, recommend_dataset

        try:
            print(recommend_dataset(args.root).line())
        except RecommendError as error:
            print(f"preset=auto: no recommendation: {error}")
    print(report.format())
    return 0 if report.ok else 1


def folders_to_metadata_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="folders_to_metadata.py",
                                     description="Label each file with the name of its first-level folder under data/.")
    parser.add_argument("root", help="dataset root (holds data/)")
    parser.add_argument("task", help="task name, e.g. instrument")
    parser.add_argument("--force", action="store_true",
                        help="rewrite an existing metadata/TASK (existing class ids are kept, new folders appended)")
    args = parser.parse_args(argv)
    set_thread_environment()
    from vschaos.data.folders import folders_to_metadata
    from vschaos.data.problems import printable

    try:
        classes = folders_to_metadata(args.root, args.task, force=args.force)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        print(printable(f"error: {error}"), file=sys.stderr)
        return 1
    print(printable(f"wrote {Path(args.root) / 'metadata' / args.task}: {len(classes)} classes: {', '.join(classes)}"))
    return 0


def make_demo_dataset_main(argv: Optional[Sequence[str]] = None) -> int:
    """``make_demo_dataset.py OUT_DIR [--seed 0] [--sample-rate 44100] [--minutes 8]
    [--files-per-instrument 8] [--force]``: synthesise the demo dataset; returns 0 (1 on bad arguments or an
    existing ``OUT_DIR/metadata/`` without ``--force``)."""
    # imported here: the other tools need neither the synthesiser nor vschaos.pitch
    from vschaos.data.demo import (DEFAULT_FILES_PER_INSTRUMENT, DEFAULT_MINUTES, DEFAULT_SAMPLE_RATE,
                                   make_demo_dataset)

    parser = argparse.ArgumentParser(prog="make_demo_dataset.py",
                                     description="Synthesise the small labelled demo dataset "
                                                 "(instrument, pitch, octave tasks).")
    parser.add_argument("out_dir", help="dataset root to create (data/ and metadata/ are written inside)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    parser.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE, help="default %(default)s")
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES,
                        help=f"total duration of audio (default {DEFAULT_MINUTES:g}: enough for the demo model "
                             f"to generalise)")
    parser.add_argument("--files-per-instrument", type=int, default=DEFAULT_FILES_PER_INSTRUMENT,
                        help="files per instrument (default %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing OUT_DIR/metadata/ (refused otherwise: it may hold your labels)")
    args = parser.parse_args(argv)
    set_thread_environment()
    try:
        out = make_demo_dataset(args.out_dir, seed=args.seed, sample_rate=args.sample_rate,
                                minutes=args.minutes, files_per_instrument=args.files_per_instrument,
                                force=args.force)
    except (ValueError, FileExistsError) as error:  # too few minutes for the number of files; existing metadata
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"demo dataset written to {out}")
    return 0


def make_sampled_dataset_main(argv: Optional[Sequence[str]] = None) -> int:
    """``make_sampled_dataset.py OUT --soundfont FILE [--programs ...] [--notes 36:96:3] [--velocities ...]
    [--seconds 3] [--sample-rate 44100] [--gain 0.2] [--force]``: render single notes with fluidsynth
    into a dataset tree; returns 0, 1 on a rendering problem, 2 on bad arguments."""
    from vschaos.data.sampled import (DEFAULT_GAIN, DEFAULT_NOTES, DEFAULT_PROGRAMS, DEFAULT_SAMPLE_RATE,
                                      DEFAULT_SECONDS, DEFAULT_VELOCITIES, SampledDatasetError,
                                      make_sampled_dataset, parse_note_range)

    parser = argparse.ArgumentParser(
        prog="make_sampled_dataset.py",
        description="Render single notes of General MIDI instruments from a SoundFont with the fluidsynth "
                    "command-line synthesiser into a vschaos dataset (instrument, pitch, octave, midi tasks; "
                    "notes.csv holds each note's true f0). Nothing is normalised.")
    parser.add_argument("out_dir", help="dataset root to create (data/, metadata/ and notes.csv are written inside)")
    parser.add_argument("--soundfont", required=True, help="a General MIDI SoundFont (.sf2 or .sf3)")
    parser.add_argument("--programs", type=int, nargs="+", default=list(DEFAULT_PROGRAMS),
                        help="GM program numbers 0..127, one instrument each (default: %(default)s)")
    parser.add_argument("--notes", default=DEFAULT_NOTES,
                        help="MIDI notes: START:STOP[:STEP], STOP included, or a comma list (default %(default)s)")
    parser.add_argument("--velocities", type=int, nargs="+", default=list(DEFAULT_VELOCITIES),
                        help="note-on velocities 1..127 (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="length of each file (default %(default)s)")
    parser.add_argument("--hold", type=float, default=None,
                        help="seconds before note off (default: min(2, 2/3 of --seconds): the release fits in)")
    parser.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE, help="default %(default)s")
    parser.add_argument("--gain", type=float, default=DEFAULT_GAIN,
                        help="fluidsynth master gain (default %(default)s, fluidsynth's own); a note that would "
                             "clip is an error")
    parser.add_argument("--fluidsynth", default="fluidsynth", help="fluidsynth executable (default: from PATH)")
    parser.add_argument("--force", action="store_true", help="write over an existing dataset in OUT")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    try:
        notes = parse_note_range(args.notes)
        rendered, silent = make_sampled_dataset(
            args.out_dir, args.soundfont, programs=args.programs, notes=notes, velocities=args.velocities,
            seconds=args.seconds, hold=args.hold, sample_rate=args.sample_rate, gain=args.gain, force=args.force,
            fluidsynth=args.fluidsynth, progress=None if args.quiet else print,
            warn=lambda message: print(message, file=sys.stderr))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (FileExistsError, SampledDatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    peaks = [n.peak_dbfs for n in rendered]
    print(f"wrote {len(rendered)} notes to {args.out_dir} ({len(set(n.instrument for n in rendered))} instruments, "
          f"peaks {min(peaks):.1f}..{max(peaks):.1f} dBFS, not normalised)"
          + (f"; skipped {len(silent)} silent notes" if silent else ""))
    return 0
