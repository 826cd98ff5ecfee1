"""The work behind ``generate.py``'s two commands, imported once the arguments are parsed (``--help`` stays
fast): ``run_reconstruct`` and ``run_trajectories`` take the parsed arguments and return the exit status."""
import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from omegaconf import DictConfig, OmegaConf

from vschaos.generation.errors import GenerationError
from vschaos.generation.labels import TrainingMetadata, load_class_names, parse_label_arguments, resolve_label_values
from vschaos.generation.latents import encode_files, latent_spread
from vschaos.generation.reconstruct import collect_inputs, reconstruct_files
from vschaos.generation.synthesis import generate_trajectories
from vschaos.generation.trajectories import INTERPOLATE, LatentSpread, check_trajectory_names
from vschaos.models.contract import SpectralModel
from vschaos.training.run import open_run

EXIT_NOTHING_DONE = 1


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
                               temperature=args.temperature, method=args.phase, n_iter=args.n_iter, seed=args.seed,
                               transpose=args.transpose)
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
