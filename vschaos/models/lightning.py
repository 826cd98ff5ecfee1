"""LightningModule around :class:`SpectralVAE`: losses, beta schedule, predictors, logging, non-finite guard."""
import logging
from collections.abc import Mapping
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vschaos.dsp.functional import spectral_convergence_energies
from vschaos.models.augment import augment_batch, checked_timbre_db
from vschaos.models.components.distributions import reparameterise
from vschaos.models.losses import SpectralVAELoss
from vschaos.models.pitch_shift import InputPitchShift
from vschaos.models.vae import ConfigurationError, SpectralVAE

log = logging.getLogger(__name__)


class NonFiniteTrainingError(RuntimeError):
    """Training stopped: the loss or the gradients were NaN/Inf for ``max_nonfinite_steps`` steps in a row."""


# What each constructor argument may name when it comes as a config: SpectralVAEModule.load_from_checkpoint passes
# a checkpoint's hyper_parameters here, which are someone else's data, and hydra's instantiate calls whatever a
# ``_target_`` names (``builtins.open``...). All of them are in vschaos.training.trust.ALLOWED_TARGETS (a test keeps
# the two in step).
OPTIMIZER_NAMES = ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam")
CONFIG_TARGETS: Dict[str, FrozenSet[str]] = {
    "vae": frozenset({"vschaos.models.vae.SpectralVAE", "vschaos.dsp.transforms.SpectralTransform"}),
    "optimizer": frozenset(f"torch.optim.{name}" for name in OPTIMIZER_NAMES),
    "loss": frozenset({"vschaos.models.losses.SpectralVAELoss"}),
    "input_pitch_shift": frozenset({"vschaos.models.pitch_shift.InputPitchShift"}),
}


def _config_problems(node: Any, allowed: FrozenSet[str], key: str) -> List[str]:
    """``key=value`` of every ``_target_`` of a plain config tree outside ``allowed``, and of every interpolation
    (hyperparameters are saved resolved; instantiate would resolve ``${oc.create:...}`` into a ``_target_``)."""
    if isinstance(node, Mapping):
        problems = []
        for name, value in node.items():
            child = f"{key}.{name}"
            if name == "_target_" and not (isinstance(value, str) and value in allowed):
                problems.append(f"{child}={value!r}")
            else:
                problems += _config_problems(value, allowed, child)
        return problems
    if isinstance(node, (list, tuple)):
        return [problem for index, value in enumerate(node) for problem in
                _config_problems(value, allowed, f"{key}[{index}]")]
    return [f"{key}={node!r} (an interpolation)"] if isinstance(node, str) and "${" in node else []


def _built(name: str, argument: Any) -> Any:
    """``argument`` itself, or the object a Hydra config (a mapping with ``_target_``) describes, once every
    ``_target_`` in it is one of ``CONFIG_TARGETS[name]`` (:class:`ConfigurationError` naming the key otherwise,
    and nothing is instantiated)."""
    if not (isinstance(argument, Mapping) and "_target_" in argument):
        return argument
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    tree = OmegaConf.to_container(argument, resolve=False) if OmegaConf.is_config(argument) else argument
    problems = _config_problems(tree, CONFIG_TARGETS[name], name)
    if problems:
        raise ConfigurationError(
            f"SpectralVAEModule: refused {', '.join(problems)}: the configs a module is built from (a checkpoint's "
            f"hyper_parameters) may only name the classes of vschaos.models.lightning.CONFIG_TARGETS[{name!r}], so "
            f"that a shared checkpoint cannot run code; nothing was instantiated")
    return instantiate(argument)


def _shape(value: Any) -> Optional[tuple]:
    return tuple(value.shape) if isinstance(value, Tensor) else None


def checkpoint_fit_problems(module: nn.Module, checkpoint: Mapping) -> List[str]:
    """What in ``checkpoint`` (a Lightning checkpoint, someone else's data) does not fit ``module``: missing or
    unexpected weights, weights of another shape, optimiser states over another number of parameters or holding
    tensors of another shape than their parameter's (torch reports each of these as a multi-line traceback,
    the last one only at the first optimiser step). Empty when it fits."""
    weights = checkpoint.get("state_dict")
    if not isinstance(weights, Mapping):
        return ["it holds no state_dict"]
    own = module.state_dict()
    problems = [f"missing weight {key}" for key in own if key not in weights]
    problems += [f"unexpected weight {key}" for key in weights if key not in own]
    problems += [f"weight {key} is {_shape(weights[key])}, the model's {tuple(value.shape)}"
                 for key, value in own.items() if key in weights and _shape(weights[key]) != tuple(value.shape)]
    parameters = list(module.parameters())
    for index, state in enumerate(checkpoint.get("optimizer_states") or []):
        groups = state.get("param_groups", []) if isinstance(state, Mapping) else []
        ids = [i for group in groups if isinstance(group, Mapping) for i in group.get("params", [])]
        if sorted(ids) != list(range(len(parameters))):
            problems.append(f"optimizer state {index} is for {len(ids)} parameters, the model has {len(parameters)}")
            continue
        saved = state.get("state", {})
        for i, values in (saved.items() if isinstance(saved, Mapping) else ()):
            for name, value in (values.items() if isinstance(values, Mapping) else ()):
                if isinstance(i, int) and 0 <= i < len(parameters) and isinstance(value, Tensor) \
                        and value.dim() > 0 and tuple(value.shape) != tuple(parameters[i].shape):
                    problems.append(f"optimizer state {index}: {name} of parameter {i} is {tuple(value.shape)}, "
                                    f"the parameter's {tuple(parameters[i].shape)}")
    return problems


class SpectralVAEModule(L.LightningModule):
    """Trains ``vae`` on batches ``{"magnitude": (batch, bins), "labels": {task: (batch,) long, -1 missing}}``.

    Args:
        vae: the model (trained here, exported as is).
        optimizer: partial optimiser ``params -> Optimizer`` (hydra ``_partial_: true``, e.g. Adam).
        loss: the reconstruction + KL objective.
        prediction_weight: weight of the predictors' cross-entropy [1.0]. Predictors see ``z.detach()``, so this
            term trains the predictors only, never the encoder.
        augment_pitch_semitones: training frames are moved along frequency by a random shift uniform in
            +-this many semitones (:func:`vschaos.models.augment.shift_pitch`) [0 = off]: the decoder learns to
            write every pitch in between the recorded ones.
        augment_gain_db: training frames get a random gain uniform in +-this many dB [0 = off].
        augment_timbre_db: training frames go through a random smooth equaliser of up to this many dB
            (:func:`vschaos.models.augment.recolour`) [0 = off].
        augment_note_semitones: training frames are moved by a whole number of semitones, uniform in +-this many,
            and their ``pitch``/``octave`` labels with them (:func:`vschaos.models.augment.shift_notes`) [0 = off]:
            a pitch-conditioned decoder learns the notes between and around the recorded ones.
        input_pitch_shift: training-time :class:`InputPitchShift` (encoder sees some labelled frames pitch-shifted,
            the decoder must rebuild them from the labels) [None: off]. Validation never shifts.
        predictor_frames: spectrum predictors (``SpectrumNotePredictor``) learn from the first this many frames
            of each (shuffled) training batch [64; 0 = all]: their convolutions along frequency cost more than the
            rest of the model per frame, and a quarter of a batch teaches them as well (experiments/pitch_following.py).
            They still complete the labels of every frame. Latent predictors always learn from every frame.
        max_nonfinite_steps: an optimiser step whose loss or gradients are not all finite is skipped (the weights
            and the optimiser state stay as they were) with a warning; after this many such steps in a row
            training stops with :class:`NonFiniteTrainingError` [10]. ``train/skipped_steps`` counts them.

    ``vae``, ``optimizer``, ``loss`` and ``input_pitch_shift`` may also be given as Hydra configs (what
    ``load_from_checkpoint`` passes from a checkpoint's hyper_parameters); they are built only if every
    ``_target_`` in them is one of :data:`CONFIG_TARGETS` for that argument and no value is an interpolation
    (:class:`ConfigurationError` naming the key otherwise).

    Logged: ``train/*`` and ``val/*`` loss terms, ``val/spectral_convergence`` over the whole validation set
    (posterior mean, no sampling), ``val/accuracy/<task>`` and ``train/prediction/<task>``.
    The transform's normalisation is fitted from ``datamodule.normalisation()`` at the first fit only: the
    buffer ``normalisation_fitted`` is saved in checkpoints, so a resumed run keeps its statistics.
    """

    def __init__(self, vae: SpectralVAE, optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
                 loss: SpectralVAELoss, prediction_weight: float = 1.0,
                 input_pitch_shift: Optional[InputPitchShift] = None, max_nonfinite_steps: int = 10,
                 augment_pitch_semitones: float = 0.0, augment_gain_db: float = 0.0, predictor_frames: int = 64,
                 augment_note_semitones: int = 0, augment_timbre_db: float = 0.0):
        super().__init__()
        if int(max_nonfinite_steps) < 1:
            raise ValueError(f"module.max_nonfinite_steps must be >= 1, got {max_nonfinite_steps}")
        # SpectralVAEModule.load_from_checkpoint passes the configs saved as hyperparameters
        # (vschaos.training.hparams): build the objects they describe
        vae, optimizer, loss, input_pitch_shift = (_built(name, arg) for name, arg in (
            ("vae", vae), ("optimizer", optimizer), ("loss", loss), ("input_pitch_shift", input_pitch_shift)))
        self.vae = vae
        self.optimizer_factory = optimizer
        self.loss = loss
        self.prediction_weight = prediction_weight
        if input_pitch_shift is not None and vae.pitch_from_window:  # it would move the frames, not their f0
            raise ConfigurationError("module.input_pitch_shift cannot move the f0 a model reads from "
                                     "transform.pitch_window: set module.input_pitch_shift=null")
        self.input_pitch_shift = input_pitch_shift
        self.max_nonfinite_steps = int(max_nonfinite_steps)
        self.nonfinite_in_a_row = 0
        self.skipped_steps = 0
        self._loss_is_finite: Optional[Tensor] = None
        self.augment_pitch_semitones = float(augment_pitch_semitones)
        self.augment_gain_db = float(augment_gain_db)
        self.augment_timbre_db = checked_timbre_db(augment_timbre_db)
        if int(augment_note_semitones) < 0 or int(augment_note_semitones) != augment_note_semitones:
            raise ValueError(f"module.augment_note_semitones must be a whole number >= 0, got {augment_note_semitones}")
        self.augment_note_semitones = int(augment_note_semitones)
        if int(predictor_frames) < 0:
            raise ValueError(f"module.predictor_frames must be >= 0 (0 = every frame), got {predictor_frames}")
        self.predictor_frames = int(predictor_frames)
        self.register_buffer("normalisation_fitted", torch.tensor(False))
        # validation sums stay on the device as tensors; they are read once, at the end of the epoch
        self._val_sums: Dict[str, Tensor] = {}
        self._step_terms: Dict[str, Tensor] = {}  # this training step's loss terms, logged in on_train_batch_end
        self._step_batch_size = 0

    # ------------------------------------------------------------------ setup
    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if not bool(self.normalisation_fitted) and datamodule is not None and hasattr(datamodule, "normalisation"):
            mean, std = datamodule.normalisation()
            self.vae.transform.set_normalisation(mean, std)
            self.normalisation_fitted.fill_(True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())

    def on_load_checkpoint(self, checkpoint: Dict) -> None:
        """On resume, the configured optimiser options (``module.optimizer.lr``...) replace the saved ones:
        Lightning would restore the old values with the optimiser state, silently ignoring a resume override.
        The optimiser's moments and step counts are kept. A checkpoint whose weights or optimiser state do not
        fit this model is a :class:`ConfigurationError` (one line) before anything is restored
        (:func:`checkpoint_fit_problems`)."""
        problems = checkpoint_fit_problems(self, checkpoint)
        if problems:
            text = "; ".join(problems)
            raise ConfigurationError(f"the checkpoint does not fit this run's model: "
                                     f"{text if len(text) <= 400 else text[:400] + '...'}")
        configured = self.optimizer_factory([torch.nn.Parameter(torch.zeros(1))]).defaults
        for state in checkpoint.get("optimizer_states", []):
            for group in state.get("param_groups", []):
                for key in group.keys() & configured.keys():
                    if key != "params":
                        group[key] = configured[key]

    # ------------------------------------------------------------------ steps
    def _shared_step(self, batch: Dict, sample: bool) -> Dict[str, Tensor]:
        magnitude: Tensor = batch["magnitude"]
        labels: Dict[str, Tensor] = batch.get("labels", {})
        encoder_magnitude, shifted = magnitude, None
        if sample and self.input_pitch_shift is not None:  # training steps only (sample=True)
            encoder_magnitude, shifted = self.input_pitch_shift(magnitude, labels, self.vae.decoder_tasks)
        features = self.vae.transform.to_features(encoder_magnitude)
        mean, std = self.vae.encode(features, labels, batch.get("f0"))
        z = reparameterise(mean, std) if sample else mean
        # the latent predictors run once, on z.detach(): their logits feed both the label completion of decode
        # (argmax, no gradient anyway) and the cross-entropy below (stop-gradient: never reaches the encoder)
        all_logits = self.vae.predict(z.detach())
        # spectrum predictors read the true frames (never the pitch-shifted encoder input), so every labelled
        # frame teaches them; they complete labels on every frame, and train on at most predictor_frames
        trained_logits = dict(all_logits)
        if len(self.vae.spectrum_tasks) > 0:
            with torch.no_grad():
                all_logits.update(self._spectrum_completion_logits(magnitude, labels, every_frame=not sample))
            if sample:
                subset = magnitude[: self.predictor_frames] if self.predictor_frames > 0 else magnitude
                for task in self.vae.spectrum_tasks:
                    trained_logits[task] = self.vae.spectrum_predictors[task](subset)
            else:
                trained_logits = all_logits
        decoded = self.vae.decode(z, labels, all_logits)
        estimate = self.vae.transform.from_features(decoded)
        # a pitch latent is measured, not sampled from the prior: it stays outside the KL
        pitch_dims = self.vae.pitch_dims
        terms = self.loss(magnitude, estimate, mean[:, pitch_dims:], std[:, pitch_dims:], int(self.global_step))
        terms["estimate"] = estimate
        total = terms["loss"]
        # stop-gradient: the predictors learn from the latent, the encoder never learns from them
        for task, logits in trained_logits.items():
            if task not in labels:
                continue
            target = labels[task][: logits.shape[0]]
            known = target >= 0
            if shifted is not None and task not in self.vae.spectrum_tasks:
                # a shifted frame's latent does not carry its labelled pitch (its spectrum, unshifted, does)
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

    def _spectrum_completion_logits(self, magnitude: Tensor, labels: Dict[str, Tensor],
                                    every_frame: bool) -> Dict[str, Tensor]:
        """Spectrum predictors' logits ``{task: (batch, classes)}`` for label completion. In training only the
        frames missing a label of theirs are read (the others' rows stay 0: their label is known, the argmax is
        never used): the predictors cost more per frame than the VAE, and most training frames are labelled."""
        if every_frame:
            return {task: self.vae.spectrum_predictors[task](magnitude) for task in self.vae.spectrum_tasks}
        missing = torch.zeros(magnitude.shape[0], dtype=torch.bool, device=magnitude.device)
        for task in self.vae.spectrum_tasks:
            missing = missing | (labels[task] < 0 if task in labels else torch.ones_like(missing))
        rows = missing.nonzero().squeeze(1)
        out: Dict[str, Tensor] = {}
        for task in self.vae.spectrum_tasks:
            predictor = self.vae.spectrum_predictors[task]
            logits = magnitude.new_zeros(magnitude.shape[0], predictor.n_classes)
            if rows.numel() > 0:
                logits[rows] = predictor(magnitude[rows]).to(logits.dtype)
            out[task] = logits
        return out

    def training_step(self, batch: Dict, batch_idx: int) -> Tensor:
        batch = augment_batch(batch, self.augment_note_semitones, self.augment_pitch_semitones, self.augment_gain_db,
                              self.augment_timbre_db)
        terms = self._shared_step(batch, sample=True)
        batch_size = batch["magnitude"].shape[0]
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=batch_size)
        # the other terms are logged in on_train_batch_end, on the steps the logger writes
        self._step_terms = {name: value.detach() for name, value in terms.items()
                            if name in ("spectral_convergence", "log_magnitude_l1", "kl", "beta")
                            or (name.startswith("prediction/") and not name.endswith(("count", "correct")))}
        self._step_batch_size = batch_size
        self._loss_is_finite = torch.isfinite(terms["loss"].detach())  # read in on_before_optimizer_step
        return terms["loss"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Log the step's loss terms when the logger writes this step: every ``trainer.log_every_n_steps``, or when
        a callback (CPU budget, early stopping) has just stopped training, as Lightning decides it; on the other
        steps nothing is logged, because Lightning would drop those values anyway and each ``self.log`` call is
        Python work on every step of a small CPU model. (Callbacks' ``on_train_batch_end`` run before this hook, so
        ``should_stop`` is final here.)"""
        terms, self._step_terms = self._step_terms, {}
        # Lightning's own decision (its logger connector's; if a Lightning version lacks it, log every step)
        connector = getattr(self._trainer, "_logger_connector", None) if self._trainer is not None else None
        if connector is not None and not getattr(connector, "should_update_logs", True):
            return
        for name, value in terms.items():
            self.log(f"train/{name}", value, batch_size=self._step_batch_size)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip this step if the loss or a gradient is NaN/Inf: drop the gradients, so the optimiser leaves the
        weights and its state untouched; stop after ``max_nonfinite_steps`` in a row. Costs one host sync per step.
        Under DDP the gradients are already averaged here, and the decision is made unanimous."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        finite = torch.isfinite(torch.nn.utils.get_total_norm(grads)) if grads else torch.tensor(True)
        if self._loss_is_finite is not None:
            finite = finite & self._loss_is_finite.to(finite.device)
        ok = bool(finite)
        if self._trainer is not None:
            ok = self.trainer.strategy.reduce_boolean_decision(ok, all=True)
        if ok:
            self.nonfinite_in_a_row = 0
            return
        for parameter in self.parameters():
            parameter.grad = None
        self.nonfinite_in_a_row += 1
        self.skipped_steps += 1
        if self._trainer is not None:
            self.log("train/skipped_steps", float(self.skipped_steps))
        step = int(self.global_step)
        if self.nonfinite_in_a_row >= self.max_nonfinite_steps:
            raise NonFiniteTrainingError(
                f"training stopped at step {step}: the loss or the gradients were NaN/Inf for "
                f"{self.nonfinite_in_a_row} steps in a row (module.max_nonfinite_steps={self.max_nonfinite_steps}); "
                f"the checkpoints keep the last finite weights. Check the dataset for extreme levels, or lower "
                f"module.optimizer.lr")
        log.warning("step %d skipped: non-finite loss or gradients (%d in a row, stopping at %d)", step,
                    self.nonfinite_in_a_row, self.max_nonfinite_steps)

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
    def reconstruct_magnitude(self, magnitude: Tensor, labels: Optional[Dict[str, Tensor]] = None,
                              f0_hz: Optional[Tensor] = None) -> Tensor:
        """Posterior-mean reconstruction of linear magnitudes (frames, bins) -> (frames, bins) (``f0_hz``: the
        frames' f0s, as batches carry them for a model that reads them from a longer window)."""
        features = self.vae.transform.to_features(magnitude)
        decoded, _, _, _ = self.vae(features, labels or {}, sample=False, f0_hz=f0_hz)
        return self.vae.transform.from_features(decoded)

