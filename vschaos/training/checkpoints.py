"""Checkpoints: atomic writes for Lightning (temp file + rename, via :mod:`vschaos.io`), ``last.ckpt`` after every
epoch (and optionally every N steps), ``best.ckpt`` never from non-finite weights or metrics; the paths a checkpoint
restores (someone else's data: :mod:`vschaos.training.trust`) never lead outside the version's ``checkpoints/``."""
import logging
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor

from vschaos.io import atomic_torch_save
from vschaos.training.trust import UnsafePathError, bare_name_problem

log = logging.getLogger(__name__)
LAST_NAME = "last"
CHECKPOINT_SUFFIX = ".ckpt"
# the paths a ModelCheckpoint's state names (Lightning deletes the k-th best on a new best, the previous best
# without a monitor): restored from a checkpoint file, so checked like the rest of it
PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


def restored_checkpoint_path(path: Any, dirpath: Optional[str]) -> str:
    """``dirpath/<file name of path>`` if that file name is one a checkpoint callback writes (a bare ``*.ckpt``
    name other than ``last.ckpt``, which :class:`LastCheckpoint` owns), else ``""`` (Lightning's "none")."""
    if not isinstance(path, str) or not path or dirpath is None:
        return ""
    parts = path.replace("\\", "/").split("/")
    name = parts[-1]
    if ".." in parts or bare_name_problem(name) is not None or not name.endswith(CHECKPOINT_SUFFIX) \
            or name == LAST_NAME + CHECKPOINT_SUFFIX:
        return ""
    return os.path.join(dirpath, name)


def restored_checkpoint_state(state: Mapping[str, Any], dirpath: Optional[str], mode: str = "min",
                              source: Any = "the checkpoint") -> Dict[str, Any]:
    """A ``ModelCheckpoint`` state read from a checkpoint file, made safe to restore into a callback that writes
    in ``dirpath``: every path re-rooted into ``dirpath`` or dropped with a warning naming ``source`` (the file)
    and the key (:func:`restored_checkpoint_path`; a ``best_k_models`` entry also when its score is not a
    number), the k-th best recomputed from what is left (``mode`` as the callback's), and ``dirpath`` set to
    ``dirpath``, so that Lightning also restores the scores of a run that was moved or copied (it forgets them
    when the saved ``dirpath`` differs, and the next epoch's checkpoint would replace ``best.ckpt`` however
    bad)."""
    state = dict(state, dirpath=dirpath)
    state.setdefault("best_model_score", None)  # Lightning reads both without a default
    state.setdefault("best_model_path", "")
    dropped = []
    for key in PATH_KEYS:
        if key in state:
            path, state[key] = state[key], restored_checkpoint_path(state[key], dirpath)
            if path and not state[key]:
                dropped.append(f"{key}={path!r}")
    best_k = state.get("best_k_models")
    kept: Dict[str, Any] = {}
    for path, score in (best_k.items() if isinstance(best_k, Mapping) else ()):
        restored = restored_checkpoint_path(path, dirpath)
        if restored and isinstance(score, (int, float, Tensor)) and torch.as_tensor(score).numel() == 1:
            kept[restored] = score
        else:
            dropped.append(f"best_k_models[{path!r}]")
    if "best_k_models" in state:
        state["best_k_models"] = kept
        if kept:  # as Lightning's _update_best_and_save leaves them
            kth = (max if mode == "min" else min)(kept, key=lambda name: float(kept[name]))
            state["kth_best_model_path"], state["kth_value"] = kth, kept[kth]
        else:
            state["kth_best_model_path"] = ""
    if dropped:
        log.warning("not restored from %s: %s (a checkpoint callback's files are bare *.ckpt names in %s)", source,
                    ", ".join(dropped), dirpath)
    return state


class AtomicCheckpointIO(TorchCheckpointIO):
    """Like Lightning's ``TorchCheckpointIO`` but a crash mid-write never leaves a truncated ``.ckpt``."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO does not take storage_options, got {storage_options!r}")
        atomic_torch_save(checkpoint, path)


def parameters_are_finite(module: torch.nn.Module) -> bool:
    """Whether every parameter and floating-point buffer of ``module`` is finite (one host sync)."""
    tensors = [t.detach() for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


class LastCheckpoint(L.Callback):
    """Writes ``dirpath/last.ckpt`` at the end of every training epoch (after its validation), and every
    ``every_n_train_steps`` optimiser steps when that is > 0 [0: epoch ends only].

    Lightning's ``ModelCheckpoint(save_last=True)`` rewrites ``last.ckpt`` only when it also saves a top-k
    checkpoint, i.e. when the monitored metric improves: the epochs since the last improvement were lost after a
    crash. A model whose weights are not all finite is never written (the previous ``last.ckpt`` is kept and a
    warning names the step). ``dirpath`` is set by :func:`vschaos.training.fit.fit` to the run's
    ``checkpoints/`` folder. A mid-epoch checkpoint resumes at that step count, replaying the epoch's data order.
    """

    def __init__(self, every_n_train_steps: int = 0, dirpath: Optional[str] = None):
        super().__init__()
        if int(every_n_train_steps) < 0:
            raise ValueError(f"callbacks.last.every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.every_n_train_steps = int(every_n_train_steps)
        self.dirpath = dirpath
        self._saved_step: Optional[int] = None

    @property
    def path(self) -> Path:
        if self.dirpath is None:
            raise ValueError("LastCheckpoint.dirpath is not set")
        return Path(self.dirpath) / f"{LAST_NAME}.ckpt"

    def _save(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        # every rank runs this (trainer.save_checkpoint synchronises them); DDP weights are identical on all ranks,
        # so they all take the same decision
        if not parameters_are_finite(pl_module):
            log.warning("not writing %s at step %d: the model holds non-finite weights (the previous one is kept)",
                        self.path, trainer.global_step)
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # full: optimiser and loop state, to resume
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if self.every_n_train_steps > 0 and step > 0 and step % self.every_n_train_steps == 0 \
                and step != self._saved_step:
            self._save(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer, pl_module)  # always: the end-of-epoch state replaces a mid-epoch one of the same step

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: Dict[str, Any]) -> None:
        """Make every checkpoint callback's saved state safe before Lightning restores it (it calls this hook of
        every callback first): each path re-rooted into that callback's ``dirpath`` or dropped
        (:func:`restored_checkpoint_state`). Lightning's own ``ModelCheckpoint`` (configured, or the one it adds
        when a config has none) would otherwise delete whatever its restored ``best_model_path`` names. A
        ``LastCheckpoint`` is part of every training (fit adds one), so this runs on every resume."""
        states = checkpoint.get("callbacks")
        if not isinstance(states, dict):
            return
        owners = {}
        for callback in trainer.checkpoint_callbacks:
            owners.setdefault(callback.state_key, callback)
            owners.setdefault(callback._legacy_state_key, callback)
        for key, state in states.items():
            owner = owners.get(key)  # Lightning restores no state that no callback claims
            if owner is not None and isinstance(state, Mapping):
                states[key] = restored_checkpoint_state(state, owner.dirpath, owner.mode, trainer.ckpt_path)


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that never saves a non-finite monitored value or a model with non-finite weights
    (Lightning treats a NaN metric as +inf and would still save it as the first "best"), and never writes or
    deletes outside its ``dirpath``: ``filename`` must be a bare name (ValueError otherwise), the paths a resumed
    checkpoint restores are re-rooted into ``dirpath`` or dropped, and every write and removal is checked."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        problem = None if self.filename is None else bare_name_problem(self.filename)
        if problem is not None:
            raise ValueError(f"BestCheckpoint: filename={self.filename!r}: {problem} (checkpoints are written in "
                             f"the run's own checkpoints/ folder)")

    def check_monitor_top_k(self, trainer: L.Trainer, current: Optional[Tensor] = None) -> bool:
        if current is None:
            return False
        finite = bool(torch.isfinite(torch.as_tensor(current)).all()) and parameters_are_finite(trainer.lightning_module)
        finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            log.warning("not saving a best checkpoint at step %d: %s=%s, or non-finite weights", trainer.global_step,
                        self.monitor, float(current))
            return False
        return super().check_monitor_top_k(trainer, current)

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore the best scores, every saved path re-rooted into this callback's ``dirpath`` (the version's
        ``checkpoints/``) or dropped: :func:`restored_checkpoint_state`. A moved run keeps its best score."""
        super().load_state_dict(restored_checkpoint_state(state_dict, self.dirpath, self.mode))

    def _check_inside(self, filepath: str) -> None:
        """Raise :class:`UnsafePathError` unless ``filepath`` is a bare name in ``dirpath``: the last guard of
        what this callback writes or deletes (file names and restored paths are checked before it ever runs)."""
        folder = os.path.dirname(os.path.abspath(filepath))
        if self.dirpath is None or folder != os.path.abspath(self.dirpath) \
                or bare_name_problem(os.path.basename(filepath)) is not None:
            raise UnsafePathError(f"refused to write or delete {filepath}: a best checkpoint lives in "
                                  f"{self.dirpath}; nothing was written")

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        self._check_inside(filepath)
        super()._save_checkpoint(trainer, filepath)

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        self._check_inside(filepath)
        super()._remove_checkpoint(trainer, filepath)
