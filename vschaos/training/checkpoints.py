"""Checkpoints: atomic writes for Lightning (temp file + rename, via :mod:`vschaos.io`), ``last.ckpt`` after every
epoch (and optionally every N steps), ``best.ckpt`` never from non-finite weights or metrics."""
import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor

from vschaos.io import atomic_torch_save

log = logging.getLogger(__name__)
LAST_NAME = "last"


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


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that never saves a non-finite monitored value or a model with non-finite weights
    (Lightning treats a NaN metric as +inf and would still save it as the first "best")."""

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
        """On resume of a run folder that was moved or copied, keep the best score: Lightning restores it only
        when the saved ``dirpath`` equals today's (it warns and forgets it otherwise, so the next epoch's
        checkpoint would replace ``best.ckpt`` however bad). Checkpoints always live in the version's own
        ``checkpoints/`` folder, so the saved paths are re-rooted there by file name."""
        saved = state_dict.get("dirpath")
        if saved and self.dirpath and os.path.normpath(saved) != os.path.normpath(self.dirpath):
            def moved(path: Any) -> Any:
                return os.path.join(self.dirpath, os.path.basename(path)) if path else path

            state_dict = dict(state_dict, dirpath=self.dirpath)
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                if key in state_dict:
                    state_dict[key] = moved(state_dict[key])
            if "best_k_models" in state_dict:
                state_dict["best_k_models"] = {moved(path): score for path, score in state_dict["best_k_models"].items()}
        super().load_state_dict(state_dict)
