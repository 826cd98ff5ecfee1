"""``train_model.py prior RUN [--checkpoint NAME] [key=value ...]``: fit a latent prior to a trained run.

The run's VAE (``open_run``) encodes every file of its training set to posterior means, one sequence per file
at the latent rate (encoder labels from the dataset's metadata, as in training); a :class:`LatentPrior` is fitted
to them with Lightning (options: :data:`PRIOR_DEFAULTS`, overridden by ``key=value``), files split
into training and held-out by ``val_fraction`` (seeded). It is written into the same version folder:
``version_N/prior/prior.pt`` (tensors and plain data only: ``state_dict``, ``hyperparameters``, ``metrics``),
atomically, after every epoch whose held-out NLL is the best so far. The version folder's training lock is held
throughout. A version that has a prior already is refused (delete ``version_N/prior/`` to fit a new one).
"""
import math
import pickle
import random
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from vschaos.data.audio import AudioReadError, load_audio
from vschaos.data.dataset import frame_labels, load_index
from vschaos.io import atomic_torch_save, file_sha256, load_tensors_only
from vschaos.models.prior import LatentPrior, iid_gaussian_nll
from vschaos.models.vae import ConfigurationError
from vschaos.training.lock import require_writable, training_lock
from vschaos.training.resume import TrainingError, TrainingInterrupted
from vschaos.training.run import CHECKPOINT_LOAD_ERRORS, LoadedRun, RunFolderError, open_run

PRIOR_FOLDER = "prior"
MAX_PRIOR_LAYERS = 16
MAX_PRIOR_COMPONENTS = 64
PRIOR_FILE = "prior.pt"
# the prior's options (``key=value`` on the command line). Not a Hydra group of vschaos/configs: every group
# there composes into a training config (tests/test_configs.py), and these are not training options.
PRIOR_DEFAULTS = {
    "hidden": 64,          # GRU units
    "layers": 1,           # GRU layers
    "components": 1,       # Gaussians of the mixture each frame is drawn from (1: one diagonal Gaussian; more
                           # fit held-out files better but may play silence for long: experiments/latent_play)
    "lr": 0.003,           # Adam learning rate
    "seq_len": 256,        # frames per training chunk (each starts the GRU afresh, as a reset stream does)
    "batch_size": 8,       # chunks per batch
    "max_epochs": 30,
    "val_fraction": 0.1,   # share of FILES held out (at least one of two or more); the NLL is reported on them
    "seed": 0,             # the split and the initialisation
    "join_files": 4,       # train on the files joined end to end in this many random orders (0: each file alone)
    "dataset_root": None,  # the training dataset, if it moved since training (default: the run's data.dataset.root)
}
# a prior.pt that is not what fit_prior writes: truncated, foreign, code in its pickle, weights of another shape
PRIOR_LOAD_ERRORS = tuple(CHECKPOINT_LOAD_ERRORS) + (pickle.UnpicklingError, KeyError, TypeError, ValueError,
                                                     AttributeError, RuntimeError)


def prior_path(version_dir: Path) -> Path:
    return Path(version_dir) / PRIOR_FOLDER / PRIOR_FILE


def prior_options(overrides: Sequence[str]) -> DictConfig:
    """The packaged prior options with ``key=value`` overrides (``prior.key=`` and ``+key=`` accepted); an unknown
    key or a malformed override is a :class:`ConfigurationError` naming it."""
    base = OmegaConf.create(PRIOR_DEFAULTS)
    dotlist = []
    for override in overrides:
        text = override.lstrip("+")
        text = text[len("prior."):] if text.startswith("prior.") else text
        key = text.split("=", 1)[0]
        if "=" not in text or key not in base:
            raise ConfigurationError(f"prior: unknown option {override!r} (options: "
                                     f"{', '.join(f'{k}={v}' for k, v in base.items())})")
        dotlist.append(text)
    cfg = OmegaConf.merge(base, OmegaConf.from_dotlist(dotlist))
    if not isinstance(cfg.join_files, int) or cfg.join_files < 0:
        raise ConfigurationError(f"prior: join_files must be an integer >= 0, got {cfg.join_files!r}")
    for key in ("hidden", "layers", "components", "seq_len", "batch_size", "max_epochs"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ConfigurationError(f"prior: {key} must be a positive integer, got {cfg[key]!r}")
    if cfg.dataset_root is not None and not Path(str(cfg.dataset_root)).is_dir():
        raise ConfigurationError(f"prior: dataset_root={cfg.dataset_root}: no such folder")
    if not 0.0 <= float(cfg.val_fraction) < 1.0:
        raise ConfigurationError(f"prior: val_fraction must be within [0, 1), got {cfg.val_fraction}")
    return cfg


def load_prior(version_dir: Path) -> Optional[LatentPrior]:
    """The run's prior (eval mode), or None when the version has none; a broken file is a :class:`RunFolderError`
    naming it."""
    path = prior_path(version_dir)
    if not path.exists():
        return None
    try:
        state = load_tensors_only(path)
        hyper = state["hyperparameters"]
        sizes = (int(hyper["latent_dim"]), int(hyper["hidden"]), int(hyper["layers"]),
                 [int(d) for d in hyper.get("label_dims", [])], int(hyper.get("components", 1)))
        weights = state["state_dict"]
        components = sizes[4]
        head_rows = 2 * components * sizes[0] + sum(sizes[3]) + (components if components > 1 else 0)
        expected = {"gru.weight_hh_l0": (3 * sizes[1], sizes[1]),
                    "gru.weight_ih_l0": (3 * sizes[1], sizes[0] + sum(sizes[3])),
                    "head.weight": (head_rows, sizes[1])}
        # the sizes must be those of the weights before a module is built from them: a file is untrusted data
        if any(tuple(weights[name].shape) != shape for name, shape in expected.items()) \
                or not 1 <= sizes[2] <= MAX_PRIOR_LAYERS or not 1 <= sizes[4] <= MAX_PRIOR_COMPONENTS:
            raise ValueError(f"its hyperparameters {hyper} do not describe its weights")
        prior = LatentPrior(*sizes)
        prior.load_state_dict(state["state_dict"])
    except PRIOR_LOAD_ERRORS as error:  # untrusted data: one line naming the file
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RunFolderError(f"cannot load the prior {path}: {first} (delete {path.parent} and run "
                             f"train_model.py prior again)") from None
    return prior.eval()


@torch.no_grad()
def latent_sequences(run: LoadedRun, dataset_root: Optional[str] = None) -> List[Tuple[Tensor, Tensor]]:
    """``(posterior means (frames, latent_dim), decoder label ids (frames, n_decoder_tasks) int64, -1 unknown)``
    of every file of the run's dataset (or of ``dataset_root``), in the index's order."""
    dataset = run.cfg.data.dataset
    root = dataset_root or dataset.get("root")
    if root is None:
        raise ConfigurationError(f"{run.version_dir}: the run's config names no dataset (data.dataset.root); "
                                 f"give it with dataset_root=PATH")
    if not Path(str(root)).is_dir():
        raise ConfigurationError(f"the run's dataset {root} is not a folder (moved since training?): give its place "
                                 f"with dataset_root=PATH")
    vae, transform = run.vae, run.vae.transform
    tasks = list(dict.fromkeys(list(vae.encoder_tasks) + list(vae.decoder_tasks)))
    callbacks = OmegaConf.to_container(dataset.metadata_callbacks) if dataset.get("metadata_callbacks") else None
    index = load_index(root, tasks or [], callbacks)
    sequences = []
    for item in index.files:
        try:
            audio = load_audio(item.path, int(transform.sample_rate))
        except AudioReadError as error:
            raise ConfigurationError(str(error)) from None
        magnitude = transform.magnitude(audio[None, :])[0]
        n_frames = magnitude.shape[0]
        labels = {task: torch.from_numpy(frame_labels(index.tasks[task].labels.get(item.key), n_frames,
                                                      int(transform.n_fft), int(transform.hop),
                                                      int(transform.sample_rate))).long() for task in tasks}
        f0 = vae.audio_f0(audio[None, :])
        mean, _ = vae.encode(transform.to_features(magnitude), {task: labels[task] for task in vae.encoder_tasks},
                             None if f0 is None else f0[0])
        decoder_labels = torch.stack([labels[task] for task in vae.decoder_tasks], dim=-1) if vae.decoder_tasks \
            else torch.zeros(n_frames, 0, dtype=torch.long)
        sequences.append((mean.float(), decoder_labels))
    return sequences


def split_files(sequences: List, val_fraction: float, seed: int) -> Tuple[List, List]:
    """``(train, held_out)`` by file (seeded); at least one training file, held-out empty for one file."""
    order = list(range(len(sequences)))
    random.Random(seed).shuffle(order)
    n_val = min(len(order) - 1, math.ceil(val_fraction * len(order))) if val_fraction > 0 else 0
    return [sequences[i] for i in order[n_val:]], [sequences[i] for i in order[:n_val]]


def joined_files(sequences: Sequence[Tuple[Tensor, Tensor]], orders: int, seed: int) -> List[Tuple[Tensor, Tensor]]:
    """The ``(z, labels)`` sequences joined end to end, in ``orders`` seeded random orders (one sequence per
    order): trained on them, the prior learns that a file's ending (often silence) is followed by another file's
    beginning, so a long stream moves on instead of staying where a file ended."""
    rng = random.Random(seed)
    joined = []
    for _ in range(orders):
        order = list(range(len(sequences)))
        rng.shuffle(order)
        joined.append((torch.cat([sequences[i][0] for i in order]), torch.cat([sequences[i][1] for i in order])))
    return joined


def chunks(sequences: Sequence[Tuple[Tensor, Tensor]], seq_len: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Consecutive chunks of ``seq_len`` frames of each ``(z, labels)`` sequence, padded: ``(z (n, seq_len, L),
    labels (n, seq_len, n_labels) (-1 in padding), mask (n, seq_len))``. Each chunk starts the prior afresh, as a
    stream after a reset does."""
    pieces, label_pieces, masks = [], [], []
    for z, labels in sequences:
        for start in range(0, z.shape[0], seq_len):
            piece, ids = z[start:start + seq_len], labels[start:start + seq_len]
            missing = seq_len - piece.shape[0]
            mask = torch.zeros(seq_len)
            mask[:piece.shape[0]] = 1.0
            pieces.append(torch.cat([piece, piece.new_zeros(missing, piece.shape[1])]))
            label_pieces.append(torch.cat([ids, ids.new_full((missing, ids.shape[1]), -1)]))
            masks.append(mask)
    return torch.stack(pieces), torch.stack(label_pieces), torch.stack(masks)


@dataclass
class PriorReport:
    path: Path
    held_out_nll: Optional[float]   # nats per frame, the prior's (latents only: comparable with the baseline)
    iid_nll: Optional[float]        # nats per frame, a diagonal Gaussian fitted to the training latents

    def format(self) -> str:
        if self.held_out_nll is None:
            return f"prior: {self.path} (no held-out files to measure it on)"
        return (f"prior: {self.path}; held-out NLL {self.held_out_nll:.3f} nats/frame, i.i.d. Gaussian "
                f"{self.iid_nll:.3f} (margin {self.iid_nll - self.held_out_nll:.3f})")


def stale_prior_note(version_dir: Path, checkpoint_path: Path) -> Optional[str]:
    """A note when the version's prior was fitted to the latents of another checkpoint (or of this file before
    training went on) than ``checkpoint_path``; None when it matches, has no prior or does not record it."""
    path = prior_path(version_dir)
    if not path.exists():
        return None
    try:
        fitted = load_tensors_only(path).get("fitted_to")
        if not isinstance(fitted, dict) or fitted.get("sha256") == file_sha256(checkpoint_path):
            return None
    except (*PRIOR_LOAD_ERRORS, OSError):  # load_prior says what is wrong with the file
        return None
    return (f"note: the prior was fitted to the latents of checkpoints/{fitted.get('checkpoint')} as it was then, "
            f"this uses {Path(checkpoint_path).name}: their latents may differ; to fit it again, delete "
            f"{path.parent} and run train_model.py prior {version_dir}")


def _saver(path: Path, hyperparameters: Dict[str, int], iid: Optional[float], fitted_to: Dict[str, str]):
    import lightning as L

    class SaveBest(L.Callback):
        """Write prior.pt atomically after each validation whose held-out NLL is the best so far."""

        def __init__(self):
            self.best = math.inf

        def on_validation_end(self, trainer, module) -> None:
            if trainer.sanity_checking:
                return
            value = trainer.callback_metrics.get("val_nll", trainer.callback_metrics.get("train_nll"))
            value = float(value) if value is not None else math.inf
            if math.isfinite(value) and value <= self.best:
                self.best = value
                metrics = {"held_out_loss": value, "iid_nll": iid, "epoch": int(trainer.current_epoch)}
                atomic_torch_save({"state_dict": module.prior.state_dict(), "hyperparameters": hyperparameters,
                                   "metrics": metrics, "fitted_to": fitted_to}, path)

    return SaveBest()


def _kept(path: Path) -> str:
    return f"{path} holds the best prior so far" if path.exists() else "no prior was written"


def fit_prior(run_dir: str, checkpoint: str = "last", overrides: Sequence[str] = ()) -> PriorReport:
    """Fit and write the prior of ``run_dir`` (see the module docstring); errors are one line:
    :class:`RunFolderError` / :class:`ConfigurationError` / the lock's :class:`TrainingError`."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from vschaos.models.prior_module import PriorModule  # Lightning loads only when a prior is fitted

    options = prior_options(overrides)
    run = open_run(run_dir, checkpoint=checkpoint)
    path = prior_path(run.version_dir)
    if path.exists():
        raise RunFolderError(f"{run.version_dir} has a prior already ({path}); delete {path.parent} to fit a new one")
    require_writable(run.version_dir, "the prior is written into the version folder")
    with training_lock(run.version_dir):
        torch.manual_seed(int(options.seed))
        sequences = latent_sequences(run, options.dataset_root)
        train, held_out = split_files(sequences, float(options.val_fraction), int(options.seed))
        label_dims = [int(run.vae.task_dims[task]) for task in run.vae.decoder_tasks]
        module = PriorModule(run.vae.latent_dim, int(options.hidden), int(options.layers), float(options.lr),
                             label_dims, int(options.components))
        train_latents = torch.cat([z for z, _ in train])
        module.prior.set_normalisation(train_latents)
        iid = iid_gaussian_nll(train_latents, torch.cat([z for z, _ in held_out])) if held_out else None
        fitted = joined_files(train, int(options.join_files), int(options.seed)) if options.join_files else train
        train_loader = DataLoader(TensorDataset(*chunks(fitted, int(options.seq_len))),
                                  batch_size=int(options.batch_size), shuffle=True)
        val_loader = (DataLoader(TensorDataset(*chunks(held_out, int(options.seq_len))),
                                 batch_size=int(options.batch_size)) if held_out else None)
        path.parent.mkdir(exist_ok=True)
        # the checkpoint whose latents the prior models: an export of another one says so (stale_prior_note)
        fitted_to = {"checkpoint": run.checkpoint_path.name, "sha256": file_sha256(run.checkpoint_path)}
        saver = _saver(path, module.prior.hyperparameters(), iid, fitted_to)
        trainer = L.Trainer(max_epochs=int(options.max_epochs), accelerator="cpu", devices=1, logger=False,
                            enable_checkpointing=False, callbacks=[saver], default_root_dir=str(path.parent),
                            enable_model_summary=False, num_sanity_val_steps=0,
                            limit_val_batches=1.0 if held_out else 0, log_every_n_steps=1)
        handler = signal.getsignal(signal.SIGINT)
        try:
            trainer.fit(module, train_loader, val_loader)
            if val_loader is None:  # no held-out files: keep the last epoch
                atomic_torch_save({"state_dict": module.prior.state_dict(),
                                   "hyperparameters": module.prior.hyperparameters(), "metrics": {},
                                   "fitted_to": fitted_to}, path)
        except OSError as error:  # a full disk (DiskFullError names the space left), permissions
            raise TrainingError(f"cannot write the prior: {error} ({_kept(path)})") from None
        except SystemExit as exit_:  # Lightning answers Ctrl-C with its own shutdown, then sys.exit(1)
            if isinstance(exit_.__context__, KeyboardInterrupt):
                raise TrainingInterrupted(f"interrupted (Ctrl-C): {_kept(path)}") from None
            raise
        finally:  # Lightning leaves SIGINT ignored
            if handler is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, handler)
        held = None
        if held_out:
            module.prior.eval()
            with torch.no_grad():
                best = load_prior(run.version_dir)
                held = float(torch.cat([best.nll(z[None], ids[None])[0][0] for z, ids in held_out]).mean())
    return PriorReport(path, held, iid)
