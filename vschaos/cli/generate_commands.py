"""The work behind ``generate.py``'s two commands, imported once the arguments are parsed (``--help`` stays
fast): ``run_reconstruct`` and ``run_trajectories`` take the parsed arguments and return the exit status."""
import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from omegaconf import DictConfig, OmegaConf

from vschaos.data.audio import AudioReadError, audio_info
from vschaos.generation.errors import GenerationError
from vschaos.generation.labels import TrainingMetadata, load_class_names, parse_label_arguments, resolve_label_values
from vschaos.generation.latents import encode_files, latent_spread
from vschaos.generation.limits import check_input_length, check_sample_rate, check_trajectory_length, front_end
from vschaos.generation.outputs import check_output_folder, existing_entries, refuse_overwriting_inputs
from vschaos.generation.reconstruct import (METRICS_NAME, RECONSTRUCTIONS, InputFile, collect_inputs,
                                           reconstruct_files)
from vschaos.generation.synthesis import MANIFEST_NAME, TRAJECTORIES_FOLDER, generate_trajectories, is_trajectory_output
from vschaos.generation.trajectories import INTERPOLATE, LatentSpread, check_trajectory_names
from vschaos.models.contract import SpectralModel
from vschaos.training.run import (CONFIG_NAME, ForbiddenTargetError, RunFolderError, find_checkpoint, find_version_dir,
                                  load_run_config, open_run)

EXIT_NOTHING_DONE = 1
SR_ADVICE = "choose a common rate such as 44100 or 48000"


def dataset_root(cfg: DictConfig) -> Optional[Path]:
    """The run's training dataset root (``cfg.data.dataset.root``), if set."""
    root = OmegaConf.select(cfg, "data.dataset.root", default=None)
    return Path(str(root)) if root else None


@dataclass
class RunFiles:
    """What a command reads of the run before loading its model: the version folder, its config, the checkpoint,
    and the front end's ``sample_rate, n_fft, hop`` (the config's, else SpectralTransform's defaults)."""

    version_dir: Path
    cfg: DictConfig
    checkpoint: Path
    sample_rate: int
    n_fft: int
    hop: int

    def inputs(self) -> List[Tuple[str, Path]]:
        """The run's files, as inputs no output may replace."""
        return [("-n", self.checkpoint), ("RUN_DIR", self.version_dir / CONFIG_NAME)]


def read_run_files(args: argparse.Namespace) -> RunFiles:
    """The run's version folder, config and checkpoint (RunFolderError, reported by main) without loading any
    weights, so that every argument is checked first."""
    version_dir = find_version_dir(args.run_dir, args.version)
    problems: List[str] = []  # both files looked for, so that one message tells all that is missing (as open_run)
    try:
        cfg = load_run_config(version_dir)
    except ForbiddenTargetError:
        raise  # a refusal, not a missing file: reported alone
    except RunFolderError as error:
        problems.append(str(error))
    try:
        checkpoint = find_checkpoint(version_dir, args.checkpoint)
    except RunFolderError as error:
        problems.append(str(error))
    if problems:
        raise RunFolderError("; ".join(problems))
    return RunFiles(version_dir, cfg, checkpoint, *front_end(cfg, str(version_dir / CONFIG_NAME)))


def open_generation_run(args: argparse.Namespace, files: RunFiles):
    """``open_run`` for the command's arguments, with ``--dataset-root`` replacing the saved dataset root."""
    if args.dataset_root is not None and not args.dataset_root.is_dir():
        raise GenerationError(f"--dataset-root {args.dataset_root}: no such folder")
    run = open_run(files.version_dir, None, files.checkpoint)  # RunFolderError is reported by main
    if args.dataset_root is not None:
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


def check_input_sizes(inputs: List[InputFile], files: RunFiles, out_rate: int) -> None:
    """Refuse, before the model loads, a sound whose rate the resampler cannot reach the model's from with a filter
    of reasonable size, or that is too long to reconstruct in the memory available. An unreadable file is left
    to the reconstruction, which skips and reports it."""
    for item in inputs:
        try:
            info = audio_info(item.path)
        except AudioReadError:
            continue
        check_sample_rate(int(info.samplerate), files.sample_rate, f"--files {item.path}",
                          "convert it to a common rate such as 44100 or 48000 Hz first")
        check_input_length(f"--files {item.path}", int(info.frames), int(info.samplerate), n_fft=files.n_fft,
                           hop=files.hop, model_rate=files.sample_rate, out_rate=out_rate)


def run_reconstruct(args: argparse.Namespace) -> int:
    # every argument before the model loads: nothing is written when one is refused
    parse_label_arguments(args.labels)
    target_dir = args.out / RECONSTRUCTIONS
    check_output_folder(args.out, target_dir)
    files = read_run_files(args)
    if args.sr is not None:
        check_sample_rate(files.sample_rate, args.sr, f"--sr {args.sr}", SR_ADVICE)
    inputs, problems = collect_inputs(args.files)
    check_input_sizes(inputs, files, args.sr or files.sample_rate)
    outputs = [target_dir / item.relative_output for item in inputs] + [target_dir / METRICS_NAME]
    refuse_overwriting_inputs(outputs, [("--files", item.path) for item in inputs] + files.inputs())
    run = open_generation_run(args, files)
    cfg, vae = run.cfg, run.vae
    labels = fixed_labels(args, cfg, vae)
    tasks = list(dict.fromkeys(vae.encoder_tasks + vae.decoder_tasks))
    metadata = TrainingMetadata(dataset_root(cfg), tasks, metadata_callbacks(cfg), [i.path for i in inputs]) \
        if tasks else None
    report = reconstruct_files(vae, inputs, args.out, fixed_labels=labels, metadata=metadata, sample_rate=args.sr,
                               temperature=args.temperature, method=args.phase, n_iter=args.n_iter, seed=args.seed,
                               transpose=args.transpose, level=args.level)
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


def check_interpolation_files(files: List[Path]) -> None:
    """GenerationError unless ``--files`` names exactly two files (the sounds to interpolate between)."""
    if len(files) != 2 or not all(Path(p).is_file() for p in files):
        raise GenerationError("the 'interpolate' trajectory needs exactly two sound files: --files A B")


def interpolation_endpoints(args: argparse.Namespace, cfg: DictConfig, vae: SpectralModel,
                            labels: Dict[str, int]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """Posterior means and stds ``(frames, latent_dim)`` of the two ``--files`` sounds."""
    check_interpolation_files(args.files)
    return encode_files(vae, args.files, fixed_labels=labels, dataset_root=dataset_root(cfg),
                        metadata_callbacks=metadata_callbacks(cfg))


def spread_from_argument(args: argparse.Namespace, run, labels: Dict[str, int]) -> Optional[LatentSpread]:
    """Spread of the posterior means of every frame of ``--spread-from``; without it, the run's ordered latent
    axes where an export stored them (path dimension 0 moves along the main component, as inlet 0 of the export
    does), else None (the prior)."""
    cfg, vae = run.cfg, run.vae
    if not args.spread_from:
        from vschaos.export.latent_axes import stored_axes

        axes, why = stored_axes(run)
        if why:
            print(f"note: {why}; paths follow the prior's axes")
        if axes is None:
            return None
        print("note: paths follow the ordered latent axes stored with this checkpoint (latent_axes.pt)")
        return LatentSpread.ordered(axes.mean, axes.components, axes.scales)
    inputs, problems = collect_inputs(args.spread_from)
    if problems:
        raise GenerationError("--spread-from: " + "; ".join(problems))
    try:
        return latent_spread(vae, [item.path for item in inputs], fixed_labels=labels,
                             dataset_root=dataset_root(cfg), metadata_callbacks=metadata_callbacks(cfg))
    except GenerationError as error:
        raise GenerationError(f"--spread-from: {error}") from error


def run_trajectories(args: argparse.Namespace) -> int:
    # every argument before the model loads: nothing is written when one is refused
    check_trajectory_names(args.trajectories)
    parse_label_arguments(args.labels)
    if INTERPOLATE in args.trajectories:
        check_interpolation_files(args.files)
    target_dir = args.out / TRAJECTORIES_FOLDER
    check_output_folder(args.out, target_dir)
    files = read_run_files(args)
    out_rate = args.sr or files.sample_rate
    check_sample_rate(files.sample_rate, out_rate, f"--sr {out_rate}", SR_ADVICE)
    check_trajectory_length(args.steps, n_fft=files.n_fft, hop=files.hop, model_rate=files.sample_rate,
                            out_rate=out_rate)
    inputs = [("--files", Path(path)) for path in args.files if INTERPOLATE in args.trajectories]
    spread_inputs, _ = collect_inputs(args.spread_from)  # its problems are reported where it is read
    inputs += [("--spread-from", item.path) for item in spread_inputs] + files.inputs()
    names = set(args.trajectories)
    outputs = existing_entries(target_dir, lambda entry: entry == MANIFEST_NAME or
                               is_trajectory_output(entry, names, args.batches))
    refuse_overwriting_inputs(outputs, inputs)
    run = open_generation_run(args, files)
    cfg, vae = run.cfg, run.vae
    labels = fixed_labels(args, cfg, vae)
    means: Optional[List[torch.Tensor]] = None
    stds: Optional[List[torch.Tensor]] = None
    if INTERPOLATE in args.trajectories:
        means, stds = interpolation_endpoints(args, cfg, vae, labels)
    elif args.files:
        print("note: --files is only used by the 'interpolate' trajectory; ignored", file=sys.stderr)
    spread = spread_from_argument(args, run, labels)
    conditioning = {task: int(vae.task_dims[task]) for task in vae.decoder_tasks}
    report = generate_trajectories(vae, args.trajectories, args.out, batches=args.batches, steps=args.steps,
                                   fixed_labels=labels, sample_rate=args.sr, seed=args.seed, method=args.phase,
                                   n_iter=args.n_iter, spread=spread, endpoints=means, endpoint_stds=stds,
                                   class_names=load_class_names(dataset_root(cfg), conditioning))
    print(report.format())
    return 0


def run_prior(args: argparse.Namespace) -> int:
    """``generate.py prior``: every argument checked before the model loads, then one WAV of ``-s`` seconds."""
    from vschaos.dsp.bounds import MAX_TEMPERATURE
    from vschaos.generation.prior import PRIOR_FOLDER, prior_file_name, render_prior
    from vschaos.training.prior import load_prior, prior_path, stale_prior_note

    if args.temperature > MAX_TEMPERATURE:
        raise GenerationError(f"--temperature {args.temperature:g}: must be within [0, {MAX_TEMPERATURE:g}]")
    parse_label_arguments(args.labels)
    target_dir = args.out / PRIOR_FOLDER
    check_output_folder(args.out, target_dir)
    files = read_run_files(args)
    if not prior_path(files.version_dir).exists():
        raise GenerationError(f"{files.version_dir} has no prior: fit one first with "
                              f"train_model.py prior {args.run_dir}")
    out_rate = args.sr or files.sample_rate
    check_sample_rate(files.sample_rate, out_rate, f"--sr {out_rate}", SR_ADVICE)
    steps = max(1, int(args.seconds * files.sample_rate) // files.hop + 1)
    check_trajectory_length(steps, n_fft=files.n_fft, hop=files.hop, model_rate=files.sample_rate,
                            out_rate=out_rate)
    name = prior_file_name(args.seed, args.temperature)
    refuse_overwriting_inputs([target_dir / name], files.inputs())
    prior = load_prior(files.version_dir)
    run = open_generation_run(args, files)
    note = stale_prior_note(files.version_dir, run.checkpoint_path)
    if note:
        print(note)
    path = render_prior(run.vae, prior, args.out, seconds=args.seconds, temperature=args.temperature,
                        seed=args.seed, sample_rate=args.sr, fixed_labels=fixed_labels(args, run.cfg, run.vae),
                        method=args.phase, n_iter=args.n_iter)
    print(f"wrote {path} ({args.seconds:g} s at {out_rate} Hz, temperature {args.temperature:g}, seed {args.seed})")
    return 0
