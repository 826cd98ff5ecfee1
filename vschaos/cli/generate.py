"""``generate.py``: reconstruct sound files through a trained model, or decode latent trajectories.

    python generate.py reconstruct RUN_DIR [-v N] [-n last|best|PATH] --files a.wav some_folder/ [--sr 44100] --out OUT
    python generate.py trajectories RUN_DIR --trajectories sin random line [--sr 44100] -b 3 -s 512 --out OUT
    python generate.py trajectories RUN_DIR --trajectories interpolate --files a.wav b.wav -s 512 --out OUT

RUN_DIR is a run folder rundir/name (its latest version, or version_N with -v N) or one of its
version_N folders (-v then names a sibling version of the same run); -n picks the checkpoint:
last (default), best, a file name in the version's checkpoints/ folder, or a path.

Exit status: 0 on success; 2 with a one-line ``error:`` message for a problem with the arguments
or the run folder (no traceback). ``reconstruct`` skips inputs it cannot use (unreadable, no
label source), lists them at the end and still succeeds if at least one file was written; it
fails (status 1) when nothing could be reconstructed, or when the model output NaN/Inf for any
input (that file is not written). ``trajectories`` stops (status 2) at a path whose audio is not finite.
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from omegaconf import DictConfig, OmegaConf

from vschaos.dsp.transforms import RECONSTRUCTION_METHODS
from vschaos.generation.errors import GenerationError
from vschaos.generation.labels import TrainingMetadata, load_class_names, parse_label_arguments, resolve_label_values
from vschaos.generation.latents import encode_files, latent_spread
from vschaos.generation.reconstruct import DEFAULT_GLA_ITERATIONS, DEFAULT_PHASE, collect_inputs, reconstruct_files
from vschaos.generation.synthesis import generate_trajectories
from vschaos.generation.trajectories import (INTERPOLATE, LatentSpread, UnknownTrajectoryError,
                                             check_trajectory_names)
from vschaos.models.contract import SpectralModel
from vschaos.threads import add_threads_argument, apply_thread_policy
from vschaos.training.run import RunFolderError, open_run

EXIT_ERROR = 2
EXIT_NOTHING_DONE = 1


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
    return parser


def dataset_root(cfg: DictConfig) -> Optional[Path]:
    """The run's training dataset root (``cfg.data.dataset.root``), if set."""
    root = OmegaConf.select(cfg, "data.dataset.root", default=None)
    return Path(str(root)) if root else None


def open_generation_run(args: argparse.Namespace):
    """``open_run`` for the command's arguments, with ``--dataset-root`` replacing the saved dataset root."""
    run = open_run(args.run_dir, args.version, args.checkpoint)  # RunFolderError is reported by main
    if args.dataset_root is not None:
        if not args.dataset_root.is_dir():
            raise GenerationError(f"--dataset-root {args.dataset_root}: no such folder")
        OmegaConf.update(run.cfg, "data.dataset.root", str(args.dataset_root.resolve()), force_add=True)
    return run


def metadata_callbacks(cfg: DictConfig) -> Optional[dict]:
    callbacks = OmegaConf.select(cfg, "data.dataset.metadata_callbacks", default=None)
    return OmegaConf.to_container(callbacks, resolve=True) if callbacks is not None else None


def fixed_labels(args: argparse.Namespace, cfg: DictConfig, vae: SpectralModel) -> Dict[str, int]:
    """``--labels`` as class ids; only tasks that condition the encoder or decoder are accepted
    (a label for a task that is only predicted would change nothing)."""
    raw = parse_label_arguments(args.labels)
    conditioning = {task: int(vae.task_dims[task]) for task in dict.fromkeys(vae.encoder_tasks + vae.decoder_tasks)}
    names = load_class_names(dataset_root(cfg), conditioning)
    return resolve_label_values(raw, conditioning, names)


def run_reconstruct(args: argparse.Namespace) -> int:
    run = open_generation_run(args)
    cfg, vae = run.cfg, run.vae
    labels = fixed_labels(args, cfg, vae)
    inputs, problems = collect_inputs(args.files)
    tasks = list(dict.fromkeys(vae.encoder_tasks + vae.decoder_tasks))
    metadata = TrainingMetadata(dataset_root(cfg), tasks, metadata_callbacks(cfg), [i.path for i in inputs]) \
        if tasks else None
    report = reconstruct_files(vae, inputs, args.out, fixed_labels=labels, metadata=metadata, sample_rate=args.sr,
                               temperature=args.temperature, method=args.phase, n_iter=args.n_iter, seed=args.seed)
    report.skipped = problems + report.skipped
    print(report.format())
    if report.non_finite:
        print(f"error: the model output NaN/Inf for {len(report.non_finite)} input(s); those files were not "
              f"written (see above)", file=sys.stderr)
        return EXIT_NOTHING_DONE
    if not report.rows:
        print("error: nothing was reconstructed", file=sys.stderr)
        return EXIT_NOTHING_DONE
    return 0


def interpolation_endpoints(args: argparse.Namespace, cfg: DictConfig, vae: SpectralModel,
                            labels: Dict[str, int]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """Posterior means and stds ``(frames, latent_dim)`` of the two ``--files`` sounds."""
    if len(args.files) != 2 or not all(Path(p).is_file() for p in args.files):
        raise GenerationError("the 'interpolate' trajectory needs exactly two sound files: --files A B")
    return encode_files(vae, args.files, fixed_labels=labels, dataset_root=dataset_root(cfg),
                        metadata_callbacks=metadata_callbacks(cfg))


def spread_from_argument(args: argparse.Namespace, cfg: DictConfig, vae: SpectralModel,
                         labels: Dict[str, int]) -> Optional[LatentSpread]:
    """Spread of the posterior means of every frame of ``--spread-from`` (None: the prior)."""
    if not args.spread_from:
        return None
    inputs, problems = collect_inputs(args.spread_from)
    if problems:
        raise GenerationError("--spread-from: " + "; ".join(problems))
    try:
        return latent_spread(vae, [item.path for item in inputs], fixed_labels=labels,
                             dataset_root=dataset_root(cfg), metadata_callbacks=metadata_callbacks(cfg))
    except GenerationError as error:
        raise GenerationError(f"--spread-from: {error}") from error


def run_trajectories(args: argparse.Namespace) -> int:
    check_trajectory_names(args.trajectories)  # before loading anything
    run = open_generation_run(args)
    cfg, vae = run.cfg, run.vae
    labels = fixed_labels(args, cfg, vae)
    means: Optional[List[torch.Tensor]] = None
    stds: Optional[List[torch.Tensor]] = None
    if INTERPOLATE in args.trajectories:
        means, stds = interpolation_endpoints(args, cfg, vae, labels)
    elif args.files:
        print("note: --files is only used by the 'interpolate' trajectory; ignored", file=sys.stderr)
    spread = spread_from_argument(args, cfg, vae, labels)
    conditioning = {task: int(vae.task_dims[task]) for task in vae.decoder_tasks}
    report = generate_trajectories(vae, args.trajectories, args.out, batches=args.batches, steps=args.steps,
                                   fixed_labels=labels, sample_rate=args.sr, seed=args.seed, method=args.phase,
                                   n_iter=args.n_iter, spread=spread, endpoints=means, endpoint_stds=stds,
                                   class_names=load_class_names(dataset_root(cfg), conditioning))
    print(report.format())
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``generate.py`` / ``vschaos-generate``; returns the exit status."""
    args = build_parser().parse_args(argv)
    apply_thread_policy(args.threads)
    try:
        if args.command == "reconstruct":
            return run_reconstruct(args)
        return run_trajectories(args)
    except (GenerationError, RunFolderError, UnknownTrajectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
