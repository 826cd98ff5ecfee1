"""``generate.py``: reconstruct sound files through a trained model, or decode latent trajectories.

    python generate.py reconstruct RUN_DIR [-v N] [-n last|best|PATH] --files a.wav some_folder/ [--sr 44100] --out OUT
    python generate.py trajectories RUN_DIR --trajectories sin random line [--sr 44100] -b 3 -s 512 --out OUT
    python generate.py trajectories RUN_DIR --trajectories interpolate --files a.wav b.wav -s 512 --out OUT
    python generate.py prior RUN_DIR -s 10 [--temperature 1] [--seed 0] --out OUT   (after train_model.py prior)

RUN_DIR is a run folder rundir/name (its latest version, or version_N with -v N) or one of its
version_N folders (-v then names a sibling version of the same run); -n picks the checkpoint:
last (default), best, a file name in the version's checkpoints/ folder, or a path.

Every file is written inside OUT/reconstructions or OUT/trajectories, atomically. Before any model is
loaded, the arguments are checked: OUT must be a folder that can be written, no output may be one of
the inputs (--files, --spread-from, the checkpoint: same path, or same file through a link), -s must
fit in the memory a path of that length needs with the run's front end, and --sr must be a rate the
resampler can reach with a filter of reasonable size.

Exit status: 0 on success; 2 with a one-line ``error:`` message for a problem with the arguments,
the run folder or a file that cannot be written (no traceback; files already written are complete,
none is partial). ``reconstruct`` skips inputs it cannot use (unreadable, no label source), lists
them at the end and still succeeds if at least one file was written; it fails (status 1) when
nothing could be reconstructed, or when the model output NaN/Inf for any input (that file is not
written). ``trajectories`` stops (status 2) at a path whose audio is not finite. Ctrl-C: one line,
status 130.
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from vschaos.dsp.phase_methods import DEFAULT_GLA_ITERATIONS, DEFAULT_PHASE, RECONSTRUCTION_METHODS
from vschaos.notes import MAX_TRANSPOSE_SEMITONES
from vschaos.threads import add_threads_argument, apply_thread_policy
# the models, torch and Lightning (vschaos.cli.generate_commands) load after the arguments are parsed

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _semitones(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of semitones, got {text!r}") from None
    if not abs(value) <= MAX_TRANSPOSE_SEMITONES:
        raise argparse.ArgumentTypeError(f"semitones must lie within +-{MAX_TRANSPOSE_SEMITONES:g}, got {text}")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="run folder rundir/name (latest version) or a version_N folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("-v", "--version", type=int, default=None,
                        help="run version N (default: the latest; with a version folder, its sibling version_N)")
    parser.add_argument("-n", "--checkpoint", default="last",
                        help="checkpoint: last (default), best, a file name in checkpoints/, or a path")
    parser.add_argument("--sr", type=_positive_int, default=None,
                        help="output sample rate (default: the model's; resampled with torchaudio)")
    parser.add_argument("--labels", nargs="+", default=[], metavar="TASK=VALUE",
                        help="fixed labels for conditioned models, as class NAMES: pitch=A octave=4 is A4 "
                             "(440 Hz; flats too: pitch=Bb); a raw class id only with the id: prefix "
                             "(octave=id:5 is also octave 4)")
    parser.add_argument("--phase", choices=RECONSTRUCTION_METHODS, default=DEFAULT_PHASE,
                        help=f"offline phase reconstruction (default {DEFAULT_PHASE}: PGHI then fast Griffin-Lim)")
    parser.add_argument("--n-iter", type=_non_negative_int, default=DEFAULT_GLA_ITERATIONS,
                        help=f"Griffin-Lim iterations for pghi+gla/griffinlim (default {DEFAULT_GLA_ITERATIONS})")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--dataset-root", type=Path, default=None, metavar="DIR",
                        help="the training dataset, if it moved since training (default: data.dataset.root of the "
                             "run's config.yaml); used for class names and training labels")
    add_threads_argument(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="generate.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    reconstruct = commands.add_parser("reconstruct", help="reconstruct sound files through the model")
    _add_common(reconstruct)
    reconstruct.add_argument("--files", nargs="+", type=Path, required=True,
                             help="sound files and folders (walked recursively)")
    reconstruct.add_argument("--temperature", type=_non_negative_float, default=0.0,
                             help="0: posterior mean (default); T > 0: sample with std * T")
    reconstruct.add_argument("--transpose", type=_semitones, default=0.0, metavar="SEMITONES",
                             help="move the measured pitch by this many semitones (models with a pitch latent: "
                                  "dgt_harmonic; default 0)")
    reconstruct.add_argument("--level", choices=["follow", "model"], default="follow",
                             help="follow: each output frame at the input frame's energy, like the export's forward "
                                  "(default); model: the decoder's own level")
    trajectories = commands.add_parser("trajectories", help="decode latent trajectories to sound")
    _add_common(trajectories)
    trajectories.add_argument("--trajectories", nargs="+", required=True, metavar="TYPE",
                              help="sin random line circle interpolate")
    trajectories.add_argument("-b", "--batches", type=_positive_int, default=1, help="paths per type")
    trajectories.add_argument("-s", "--steps", type=_positive_int, default=256, help="frames per path")
    trajectories.add_argument("--files", nargs="+", type=Path, default=[],
                              help="for 'interpolate': the two sounds A B to interpolate between")
    trajectories.add_argument("--spread-from", nargs="+", type=Path, default=[], metavar="PATH",
                              help="sound files/folders (e.g. the training data) whose encoded latents set "
                                   "the per-dimension mean/std of the paths (default: the prior N(0, I))")
    prior = commands.add_parser("prior", help="play the run's latent prior (train_model.py prior RUN) with no input")
    _add_common(prior)
    prior.add_argument("-s", "--seconds", type=_positive_float, required=True, help="length of the sound")
    prior.add_argument("--temperature", type=_non_negative_float, default=1.0,
                       help="1: the prior's own spread (default); 0: its most likely path")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``generate.py`` / ``vschaos-generate``; returns the exit status."""
    args = build_parser().parse_args(argv)
    apply_thread_policy(args.threads)
    from vschaos.cli.generate_commands import run_prior, run_reconstruct, run_trajectories
    from vschaos.generation.errors import GenerationError
    from vschaos.generation.trajectories import UnknownTrajectoryError
    from vschaos.training.run import RunFolderError

    try:
        if args.command == "reconstruct":
            return run_reconstruct(args)
        if args.command == "prior":
            return run_prior(args)
        return run_trajectories(args)
    except (GenerationError, RunFolderError, UnknownTrajectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"interrupted; the files already in {args.out} are complete, none is partial", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
