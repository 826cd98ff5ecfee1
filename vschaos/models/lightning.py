"""LightningModule around :class:`SpectralVAE`: losses, beta schedule, predictors, logging."""
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterable, Optional

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vschaos.dsp.functional import spectral_convergence_energies
from vschaos.models.components.distributions import reparameterise
from vschaos.models.losses import SpectralVAELoss
from vschaos.models.pitch_shift import InputPitchShift
from vschaos.models.vae import SpectralVAE


def _built(argument: Any) -> Any:
    """``argument`` itself, or the object a Hydra config (a mapping with ``_target_``) describes."""
    if isinstance(argument, Mapping) and "_target_" in argument:
        from hydra.utils import instantiate

        return instantiate(argument)
    return argument


class SpectralVAEModule(L.LightningModule):
    """Trains ``vae`` on batches ``{"magnitude": (batch, bins), "labels": {task: (batch,) long, -1 missing}}``.

    Args:
        vae: the model (trained here, exported as is).
        optimizer: partial optimiser ``params -> Optimizer`` (hydra ``_partial_: true``, e.g. Adam).
        loss: the reconstruction + KL objective.
        prediction_weight: weight of the predictors' cross-entropy [1.0]. Predictors see ``z.detach()``, so this
            term trains the predictors only, never the encoder.
        input_pitch_shift: training-time :class:`InputPitchShift` (encoder sees some labelled frames pitch-shifted,
            the decoder must rebuild them from the labels) [None: off]. Validation never shifts.

    Logged: ``train/*`` and ``val/*`` loss terms, ``val/spectral_convergence`` over the whole validation set
    (posterior mean, no sampling), ``val/accuracy/<task>`` and ``train/prediction/<task>``.
    The transform's normalisation is fitted from ``datamodule.normalisation()`` at the first fit only: the
    buffer ``normalisation_fitted`` is saved in checkpoints, so a resumed run keeps its statistics.
    """

    def __init__(self, vae: SpectralVAE, optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
                 loss: SpectralVAELoss, prediction_weight: float = 1.0,
                 input_pitch_shift: Optional[InputPitchShift] = None):
        super().__init__()
        # SpectralVAEModule.load_from_checkpoint passes the configs saved as hyperparameters
        # (vschaos.training.hparams): build the objects they describe
        vae, optimizer, loss, input_pitch_shift = (_built(arg) for arg in (vae, optimizer, loss, input_pitch_shift))
        self.vae = vae
        self.optimizer_factory = optimizer
        self.loss = loss
        self.prediction_weight = prediction_weight
        self.input_pitch_shift = input_pitch_shift
        self.register_buffer("normalisation_fitted", torch.tensor(False))
        # validation sums stay on the device as tensors; they are read once, at the end of the epoch
        self._val_sums: Dict[str, Tensor] = {}

    # ------------------------------------------------------------------ setup
    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if not bool(self.normalisation_fitted) and datamodule is not None and hasattr(datamodule, "normalisation"):
            mean, std = datamodule.normalisation()
            self.vae.transform.set_normalisation(mean, std)
            self.normalisation_fitted.fill_(True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())

    # ------------------------------------------------------------------ steps
    def _shared_step(self, batch: Dict, sample: bool) -> Dict[str, Tensor]:
        magnitude: Tensor = batch["magnitude"]
        labels: Dict[str, Tensor] = batch.get("labels", {})
        encoder_magnitude, shifted = magnitude, None
        if sample and self.input_pitch_shift is not None:  # training steps only (sample=True)
            encoder_magnitude, shifted = self.input_pitch_shift(magnitude, labels, self.vae.decoder_tasks)
        features = self.vae.transform.to_features(encoder_magnitude)
        mean, std = self.vae.encode(features, labels)
        z = reparameterise(mean, std) if sample else mean
        # the predictors run once, on z.detach(): their logits feed both the label completion of decode (argmax,
        # no gradient anyway) and the cross-entropy below (stop-gradient: never reaches the encoder)
        all_logits = self.vae.predict(z.detach())
        decoded = self.vae.decode(z, labels, all_logits)
        estimate = self.vae.transform.from_features(decoded)
        terms = self.loss(magnitude, estimate, mean, std, int(self.global_step))
        terms["estimate"] = estimate
        total = terms["loss"]
        # stop-gradient: the predictors learn from the latent, the encoder never learns from them
        for task, logits in all_logits.items():
            if task not in labels:
                continue
            target = labels[task]
            known = target >= 0
            if shifted is not None:  # a shifted frame's latent does not carry its labelled pitch
                known = known & ~shifted
            # counts stay tensors: int()/float() here would force a device->host sync every step
            n_known = known.sum()
            weight = known.to(logits.dtype)
            # masked mean instead of indexing logits[known]: no data-dependent shape, and a batch without any
            # label gives a zero loss (not NaN) without asking the host whether it is empty
            per_frame = F.cross_entropy(logits, target.clamp(min=0), reduction="none")
            ce = (per_frame * weight).sum() / n_known.clamp(min=1).to(logits.dtype)
            terms[f"prediction/{task}/count"] = n_known.to(logits.dtype)
            terms[f"prediction/{task}"] = ce
            terms[f"prediction/{task}/correct"] = ((logits.argmax(-1) == target) & known).sum().to(logits.dtype)
            total = total + self.prediction_weight * ce
        terms["loss"] = total
        return terms

    def training_step(self, batch: Dict, batch_idx: int) -> Tensor:
        terms = self._shared_step(batch, sample=True)
        batch_size = batch["magnitude"].shape[0]
        for name in ("loss", "spectral_convergence", "log_magnitude_l1", "kl", "beta"):
            self.log(f"train/{name}", terms[name], prog_bar=name == "loss", batch_size=batch_size)
        for name, value in terms.items():
            if name.startswith("prediction/") and not name.endswith(("count", "correct")):
                self.log(f"train/{name}", value, batch_size=batch_size)
        return terms["loss"]

    def on_validation_epoch_start(self) -> None:
        self._val_sums = {}

    def _accumulate(self, name: str, value: Tensor) -> None:
        value = value.detach()
        self._val_sums[name] = self._val_sums[name] + value if name in self._val_sums else value

    def validation_step(self, batch: Dict, batch_idx: int) -> Tensor:
        terms = self._shared_step(batch, sample=False)
        magnitude = batch["magnitude"]
        batch_size = magnitude.shape[0]
        self.log("val/loss", terms["loss"], prog_bar=True, batch_size=batch_size, sync_dist=True)
        for name in ("log_magnitude_l1", "kl"):
            self.log(f"val/{name}", terms[name], batch_size=batch_size, sync_dist=True)
        # spectral convergence of the whole validation set, not a mean of per-batch ratios
        error_energy, reference_energy = spectral_convergence_energies(magnitude, terms["estimate"])
        self._accumulate("sc_num", error_energy)
        self._accumulate("sc_den", reference_energy)
        for name, value in terms.items():
            if name.startswith("prediction/") and name.endswith(("count", "correct")):
                self._accumulate(name, value)
        return terms["loss"]

    def on_validation_epoch_end(self) -> None:
        if not self._val_sums:
            return
        names = sorted(self._val_sums)
        stacked = torch.stack([self._val_sums[name].float() for name in names])
        if self._trainer is not None:
            # sums over every rank's frames (a no-op on one device), so the ratios below are exact under DDP
            stacked = self.trainer.strategy.reduce(stacked, reduce_op="sum")
        sums = dict(zip(names, stacked.tolist()))  # the one device->host transfer of the epoch
        if sums.get("sc_den", 0.0) > 0:
            sc = (sums["sc_num"] / sums["sc_den"]) ** 0.5
            self.log("val/spectral_convergence", sc, prog_bar=True)
        for task in self.vae.predicted_tasks:
            count = sums.get(f"prediction/{task}/count", 0.0)
            if count > 0:
                self.log(f"val/accuracy/{task}", sums[f"prediction/{task}/correct"] / count)

    # ------------------------------------------------------------------ helpers for monitors
    @torch.no_grad()
    def reconstruct_magnitude(self, magnitude: Tensor, labels: Optional[Dict[str, Tensor]] = None) -> Tensor:
        """Posterior-mean reconstruction of linear magnitudes (frames, bins) -> (frames, bins)."""
        features = self.vae.transform.to_features(magnitude)
        decoded, _, _, _ = self.vae(features, labels or {}, sample=False)
        return self.vae.transform.from_features(decoded)

