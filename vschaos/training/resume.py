"""``train_model.py resume RUN [--checkpoint NAME] [key=value ...]``: everything is checked before anything is
written (the saved config's ``_target_``s, the overrides, the checkpoint); then the previous ``config.yaml`` and
the overrides are kept under ``version_N/resumes/<K>/`` and ``config.yaml`` takes the new training options.

Training options (``trainer.*``, ``module.optimizer.lr``, ``data.batch_size``...) may change on resume; the
model, the transform and the label tasks (what the checkpoint's weights and the cached frames mean) may not
(:data:`FROZEN_KEYS`): that is a new run.
"""
import datetime
import pickle
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from omegaconf import DictConfig, OmegaConf

from vschaos.io import atomic_write_text, format_bytes, free_bytes, load_tensors_only
from vschaos.models.vae import ConfigurationError
from vschaos.training.run import (CHECKPOINT_FOLDER, CHECKPOINT_LOAD_ERRORS, CONFIG_NAME, RunFolderError,
                                  find_checkpoint, find_version_dir, list_checkpoints, load_run_config)

# keys a resume may not change: what the weights mean (model, transform = features, label tasks), which classes
# are built (a new optimiser class cannot take the saved optimiser state), and where the run lives
FROZEN_KEYS = ("model", "transform", "data.dataset.tasks", "data.dataset.metadata_callbacks", "module._target_",
               "module.optimizer._target_", "module.loss._target_", "name", "rundir")
RESUME_FOLDER = "resumes"
CSV_METRICS = "metrics.csv"  # what lightning.pytorch.loggers.CSVLogger writes in the version folder
# what a training checkpoint (as opposed to a weights file) holds: resume restores all of it
TRAINING_CHECKPOINT_KEYS = ("state_dict", "optimizer_states", "loops", "global_step")


class TrainingError(RuntimeError):
    """Training could not go on (e.g. the disk is full); the message says what was kept and how to resume."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a training (after Lightning's own shutdown); the message says what was kept and how to
    resume."""


@dataclass
class ResumePlan:
    """A checked resume: nothing has been written yet."""
    version_dir: Path
    checkpoint: Path
    cfg: DictConfig            # the saved config with the overrides applied
    saved_cfg: DictConfig      # config.yaml as it was
    overrides: List[str] = field(default_factory=list)


def parse_resume_arguments(args: Sequence[str]) -> Tuple[str, str, List[str]]:
    """``RUN [--checkpoint NAME | -n NAME] [key=value ...]`` -> ``(run, checkpoint, overrides)``."""
    args = list(args)
    if not args or args[0].startswith("-"):
        raise SystemExit("resume needs a run folder: train_model.py resume RUN [--checkpoint NAME] [key=value ...]")
    run, checkpoint, overrides = args[0], "last", []
    index = 1
    while index < len(args):
        arg = args[index]
        if arg in ("--checkpoint", "-n"):
            if index + 1 >= len(args):
                raise SystemExit(f"resume: {arg} needs a value (last, best, a file of checkpoints/ or a path)")
            checkpoint = args[index + 1]
            index += 2
            continue
        if arg.startswith("--checkpoint="):
            checkpoint = arg.split("=", 1)[1]
        elif arg.startswith("-") and not arg.startswith("+"):
            raise SystemExit(f"resume: unknown option {arg} (resume RUN [--checkpoint NAME] [key=value ...])")
        else:
            overrides.append(arg)
        index += 1
    return run, checkpoint, overrides


def apply_overrides(saved: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``saved`` with ``key=value`` overrides (``+key=value`` and ``++key=value`` too) merged in."""
    dotlist = [override.lstrip("+") for override in overrides]
    bad = [override for override in dotlist if "=" not in override or override.startswith("~")]
    if bad:
        raise ConfigurationError(f"resume accepts key=value overrides only, got {bad}")
    return OmegaConf.merge(saved, OmegaConf.from_dotlist(dotlist))


def frozen_changes(saved: DictConfig, cfg: DictConfig) -> List[str]:
    """The :data:`FROZEN_KEYS` whose value differs between ``saved`` and ``cfg``."""
    def value(config: DictConfig, key: str):
        node = OmegaConf.select(config, key, default=None)
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node

    return [key for key in FROZEN_KEYS if value(saved, key) != value(cfg, key)]


def checkpoint_problem(path: Path) -> Optional[str]:
    """Why ``path`` cannot be resumed from (one line), or None. Loads it with ``weights_only=True``."""
    try:
        state = load_tensors_only(path)
    except pickle.UnpicklingError:
        return "corrupt, or holds more than tensors and plain data (refused by torch.load(weights_only=True))"
    except CHECKPOINT_LOAD_ERRORS as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        return f"{type(error).__name__}: {first_line}" if first_line else f"{type(error).__name__} (empty or truncated)"
    if not isinstance(state, dict) or any(key not in state for key in TRAINING_CHECKPOINT_KEYS):
        return f"not a training checkpoint (it needs {', '.join(TRAINING_CHECKPOINT_KEYS)})"
    weights = state["state_dict"]
    if not isinstance(weights, dict):
        return "its state_dict is not a mapping of tensors"
    for name, tensor in weights.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"weight {name} holds NaN/Inf"
    return None


def check_resume_checkpoint(path: Path, version_dir: Path) -> None:
    """Raise :class:`RunFolderError` (one line) if ``path`` cannot be resumed from, naming the checkpoints of
    ``version_dir`` that can and the command that resumes from one of them."""
    problem = checkpoint_problem(path)
    if problem is None:
        return
    folder = version_dir / CHECKPOINT_FOLDER
    usable = [name for name in list_checkpoints(version_dir)
              if (folder / name).resolve() != path.resolve() and checkpoint_problem(folder / name) is None]
    usable.sort(key=lambda name: (name != "best.ckpt", name))
    if usable:
        choice = usable[0][: -len(".ckpt")]
        offer = (f"resume from another checkpoint instead: train_model.py resume {version_dir} --checkpoint {choice}"
                 f" (usable: {', '.join(usable)})")
    else:
        offer = f"no other usable checkpoint in {folder}"
    raise RunFolderError(f"cannot resume from {path}: {problem}; {offer}")


def plan_resume(run_dir: str, checkpoint: str = "last", overrides: Sequence[str] = ()) -> ResumePlan:
    """Check a resume of ``run_dir`` (``rundir/name`` -> latest version, or a ``version_N``) and return it;
    writes nothing. Raises :class:`ConfigurationError` for an override of a :data:`FROZEN_KEYS` key and
    :class:`RunFolderError` for a missing/unsafe config or an unusable checkpoint."""
    version_dir = find_version_dir(run_dir)
    saved = load_run_config(version_dir)  # refuses _target_s outside the allow-list
    cfg = apply_overrides(saved, overrides)
    changed = frozen_changes(saved, cfg)
    if changed:
        raise ConfigurationError(
            f"resume cannot change {', '.join(changed)} (overrides: {' '.join(overrides)}): the checkpoints of "
            f"{version_dir} hold weights for the saved model, transform and tasks; start a new run to change them "
            f"(nothing was written)")
    path = find_checkpoint(version_dir, checkpoint)
    check_resume_checkpoint(path, version_dir)
    return ResumePlan(version_dir, path, cfg, saved, list(overrides))


def record_resume(plan: ResumePlan) -> Path:
    """Keep the previous ``config.yaml`` (and a CSV logger's ``metrics.csv``, which Lightning would delete) and
    this resume's overrides in ``version_N/resumes/<K>/`` (K = 1, 2...,
    claimed with an exclusive mkdir), then replace ``config.yaml`` with the new options (atomically). Returns
    the record's folder."""
    folder = plan.version_dir / RESUME_FOLDER
    folder.mkdir(exist_ok=True)
    number = 1 + max((int(p.name) for p in folder.iterdir() if p.name.isdigit()), default=0)
    while True:
        record = folder / str(number)
        try:
            record.mkdir()
            break
        except FileExistsError:
            number += 1
    atomic_write_text(record / "config_before.yaml", OmegaConf.to_yaml(plan.saved_cfg, resolve=False))
    metrics = plan.version_dir / CSV_METRICS
    if metrics.is_file() and not metrics.is_symlink():  # Lightning's CSVLogger starts its file afresh on resume
        shutil.copyfile(metrics, record / f"{metrics.stem}_before{metrics.suffix}")
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    atomic_write_text(record / "resume.yaml", OmegaConf.to_yaml(OmegaConf.create(
        {"started": started, "checkpoint": str(plan.checkpoint), "overrides": list(plan.overrides)})))
    atomic_write_text(plan.version_dir / CONFIG_NAME, OmegaConf.to_yaml(plan.cfg, resolve=True))
    return record


def refresh_plan(plan: ResumePlan) -> ResumePlan:
    """``plan``, checked again if the run's ``config.yaml`` changed since it was made (another training of the run
    ended in between: its options are the ones this resume continues from). Call it holding the run's lock."""
    if load_run_config(plan.version_dir) == plan.saved_cfg:
        return plan
    return plan_resume(str(plan.version_dir), str(plan.checkpoint), plan.overrides)


def _what_was_kept(version_dir: Path, before: str) -> str:
    """What a stopped training leaves to go on from, and the command (``before``: what to do first)."""
    kept = list_checkpoints(version_dir)
    if not kept:
        return f"no checkpoint was written yet in {version_dir}: {before}train again"
    return (f"the checkpoints already in {version_dir / CHECKPOINT_FOLDER} ({', '.join(kept)}) are intact (written "
            f"atomically): {before}train_model.py resume {version_dir}")


def disk_full_error(error: OSError, version_dir: Path) -> TrainingError:
    """A one-line :class:`TrainingError` for ENOSPC/EDQUOT while training in ``version_dir``: the file, the space
    left on its disk, what was kept and how to go on."""
    where = error.filename or version_dir
    free = getattr(error, "free_bytes", None)
    free = free_bytes(where) if free is None else free
    return TrainingError(f"disk full while writing {where} ({error.strerror}; {format_bytes(free)} free there); "
                         f"{_what_was_kept(version_dir, 'free some space, then ')}")


def interrupted_error(version_dir: Path) -> TrainingInterrupted:
    """The one line for a training stopped by Ctrl-C in ``version_dir``."""
    return TrainingInterrupted(f"interrupted (Ctrl-C); {_what_was_kept(version_dir, '')}")
