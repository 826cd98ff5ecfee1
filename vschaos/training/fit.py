"""Build everything a run config describes, and train it in its run folder (new run or resume)."""
import copy
import os
import signal
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from vschaos.data.dataset import validate_dataset
from vschaos.data.metadata import available_tasks
from vschaos.io import DISK_FULL_ERRNOS, atomic_write_text
from vschaos.models.vae import ConfigurationError
from vschaos.training.checkpoints import AtomicCheckpointIO, LastCheckpoint
from vschaos.training.hparams import log_hyperparameters_to_tensorboard, module_hyperparameters
from vschaos.training.lock import NOT_WRITABLE_ERRNOS, TrainingLock, not_writable_error, require_writable
from vschaos.training.resume import ResumePlan, disk_full_error, interrupted_error, record_resume, refresh_plan
from vschaos.training.run import CONFIG_NAME, build_model, version_number

# The version folder chosen by the process that starts a run. Lightning's DDP launcher re-runs the script for
# ranks > 0 with a copy of os.environ; they read the version from here instead of picking the next free one
# (which, once rank 0 has created version_N, would be N+1: an orphan folder).
RUN_VERSION_ENV = "VSCHAOS_RUN_VERSION"
# the variables Lightning reads a process's global rank from, in its order (lightning.fabric.utilities.rank_zero)
RANK_ENV_KEYS = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
NEW_RUN_FOLDER_ACTION = "a new run creates its version folder there; set rundir= to a writable folder"


def model_tasks(vae: Any) -> List[str]:
    """The label tasks the model uses: conditioning tasks then predicted ones, in config order, each once."""
    return list(vae.task_dims)


def _task_key(vae: Any, task: str) -> str:
    """The config key that sets ``task``'s number of classes."""
    if task in vae.encoder_tasks or task in vae.decoder_tasks:
        return f"model.conditioning.{task}.dim"
    return f"model.prediction.{task}.dim"


def build_objects(cfg: DictConfig) -> Tuple[Any, Any, Any]:
    """``(vae, datamodule, lightning_module)`` from a composed config; the transform is shared by all three.

    ``data.dataset.tasks: null`` loads the model's tasks (:func:`model_tasks`; none for an unconditioned model,
    so a malformed metadata task the model does not use cannot stop its training). An explicit list must hold
    every model task: raises :class:`ConfigurationError` otherwise (reads no file).
    """
    vae = build_model(cfg)
    needed = model_tasks(vae)
    dataset = OmegaConf.to_container(cfg.data.dataset, resolve=True) if cfg.data.get("dataset") is not None else {}
    requested = dataset.get("tasks")
    if requested is None:
        dataset["tasks"] = needed
    else:
        requested = [requested] if isinstance(requested, str) else [str(t) for t in requested]
        for task in needed:
            if task not in requested:
                raise ConfigurationError(
                    f"task {task!r} is used by the model ({_task_key(vae, task)}={vae.task_dims[task]}) but "
                    f"data.dataset.tasks={requested} does not load it: its labels would all be missing. "
                    f"Add it to data.dataset.tasks (or set data.dataset.tasks=null).")
    # a model that reads its f0 from a longer window than its frames has the cache hold each frame's f0
    datamodule = instantiate(cfg.data, transform=vae.transform, dataset=dataset,
                             pitch_tracker=vae.window_pitch_tracker())
    module = instantiate(cfg.module, vae=vae)
    module.save_hyperparameters(module_hyperparameters(cfg))  # load_from_checkpoint, hparams.yaml
    return vae, datamodule, module


def check_tasks(vae: Any, datamodule: Any) -> None:
    """Raise :class:`ConfigurationError` unless the dataset serves every model task as classes that fit the
    model's ``dim``. Reads the dataset index (a ``DatasetError`` lists the dataset's own problems first)."""
    index = datamodule.index
    for task in model_tasks(vae):
        key, dim = _task_key(vae, task), vae.task_dims[task]
        if task not in index.tasks:
            raise ConfigurationError(f"task {task!r} is used by the model ({key}={dim}) but the dataset "
                                     f"{datamodule.root} loads only the tasks {list(index.tasks)}")
        meta = index.tasks[task]
        if meta.spec.dtype != "int":
            raise ConfigurationError(f"task {task!r} is read as {meta.spec.dtype} values "
                                     f"(data.dataset.metadata_callbacks) but the model uses it as classes ({key})")
        n_classes = int(meta.n_classes or 0)
        if n_classes > dim:
            source = (f"{datamodule.root}/metadata/{task}/classes.txt" if meta.class_names
                      else f"largest id in {datamodule.root}/metadata/{task} + 1")
            raise ConfigurationError(f"task {task!r}: the dataset has {n_classes} classes ({source}) but {key} is "
                                     f"{dim}: set {key}={n_classes} (labels would be clamped otherwise)")


def global_rank(environ: Mapping[str, str]) -> int:
    """This process's global rank as Lightning reads it from the environment (0 when none is set)."""
    for key in RANK_ENV_KEYS:
        if environ.get(key) is not None:
            return int(environ[key])
    return 0


def choose_version(run_root: Path, environ: Mapping[str, str]) -> int:
    """The ``N`` of a new run's ``run_root/version_N``.

    The launching process (global rank 0) takes the next free number (as TensorBoardLogger would); a process of
    rank > 0 takes the launcher's choice from ``environ[RUN_VERSION_ENV]``. Rank 0 never reads that variable, so
    a value left from an earlier run in the same process cannot make a new run reuse an old folder.
    """
    if global_rank(environ) > 0 and environ.get(RUN_VERSION_ENV) is not None:
        return int(environ[RUN_VERSION_ENV])
    numbers = [version_number(p) for p in run_root.iterdir() if p.is_dir()] if run_root.is_dir() else []
    numbers = [n for n in numbers if n is not None]
    return max(numbers) + 1 if numbers else 0


DATA_FOLDER_KEYS = ("data.dataset.root", "data.cache_dir")  # folders a run reads (and caches) its data in


def with_absolute_dataset_root(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` whose ``data.dataset.root`` and ``data.cache_dir`` (where set) are absolute (resolved
    against the current directory).

    The run's ``config.yaml`` is read again by ``resume`` and ``generate.py`` from any directory: a relative folder
    would then name another one (a resume would build a second cache wherever it was started). To point a run at
    a moved dataset: ``resume RUN data.dataset.root=NEW`` or ``generate.py ... --dataset-root NEW``.
    """
    folders = {key: OmegaConf.select(cfg, key, default=None) for key in DATA_FOLDER_KEYS}
    if all(value is None for value in folders.values()):
        return cfg
    cfg = copy.deepcopy(cfg)
    for key, value in folders.items():
        if value is not None:
            OmegaConf.update(cfg, key, str(Path(str(value)).expanduser().resolve()))
    return cfg


def claim_version(run_root: Path, environ: Mapping[str, str], attempts: int = 1000) -> int:
    """Create ``run_root/version_N`` for a new run and return ``N``; the folder is this launch's alone.

    Rank 0 takes the next free number (:func:`choose_version`) and creates its folder with a plain ``mkdir``
    (no ``exist_ok``): when two launches pick the same number at once, exactly one ``mkdir`` succeeds and the
    other retries with the next number, so two runs never share a folder. A DDP process of rank > 0 takes the
    launcher's choice (:func:`choose_version`) and creates nothing.
    """
    if global_rank(environ) > 0:  # never creates a folder: rank 0 is the one writer
        return choose_version(run_root, environ)
    run_root.mkdir(parents=True, exist_ok=True)
    for _ in range(attempts):
        version = choose_version(run_root, environ)
        try:
            (run_root / f"version_{version}").mkdir()
        except FileExistsError:  # another launch claimed it between our listing and our mkdir
            continue
        return version
    raise OSError(f"could not claim a version folder in {run_root} after {attempts} attempts")


def model_structure_report(vae: Any) -> str:
    """The model's structure and its parameter counts per block (for ``+check=1``)."""
    counts = vae.parameter_counts()
    lines = [str(vae), "", "parameters per block:"]
    lines += [f"  {name:<20s} {count:>12,d}" for name, count in counts.items()]
    lines.append(f"conditioning: encoder {vae.encoder_tasks}, decoder {vae.decoder_tasks}; "
                 f"predicted: {vae.predicted_tasks}")
    return "\n".join(lines)


def check(cfg: DictConfig) -> str:
    """Report for ``+check=1``: model, parameter counts and the dataset summary; trains nothing, writes no run.

    The summary covers the tasks the model loads; metadata tasks it does not load are reported after it (with
    their problems, as ``check_dataset`` shows them) without failing the check.
    """
    vae, datamodule, _ = build_objects(cfg)
    check_tasks(vae, datamodule)
    datamodule.setup("fit")
    report = model_structure_report(vae) + "\n\ndataset:\n" + datamodule.summary()
    unused = [task for task in available_tasks(datamodule.root) if task not in datamodule.tasks]
    if unused:
        transform = datamodule.transform
        others = validate_dataset(datamodule.root, unused, int(transform.sample_rate), datamodule.metadata_callbacks,
                                  int(transform.n_fft), int(transform.hop))
        report += "\n\nmetadata tasks the model does not load:\n" + "\n".join(
            line for line in others.format().splitlines()[2:])  # skip the file lines printed above
    return report


def is_fast_dev_run(cfg: DictConfig) -> bool:
    """``debug=fast_dev_run`` (``trainer.fast_dev_run`` true or a batch count): a smoke test that keeps nothing."""
    return bool(OmegaConf.select(cfg, "trainer.fast_dev_run", default=False))


def _callbacks(cfg: DictConfig, checkpoint_dir: Path) -> List[L.Callback]:
    """The configured callbacks, checkpoints in ``checkpoint_dir``; ``last.ckpt`` is always written by one
    :class:`LastCheckpoint` (added when the config has none, e.g. a run started before it existed), never by a
    ``ModelCheckpoint(save_last=True)``, which would rewrite it only when its metric improves."""
    callbacks: List[L.Callback] = []
    for callback_cfg in (cfg.get("callbacks") or {}).values():
        if callback_cfg is None:
            continue
        callback = instantiate(callback_cfg)
        if isinstance(callback, (ModelCheckpoint, LastCheckpoint)) and is_fast_dev_run(cfg):
            # Lightning says "checkpointing is suppressed" in fast_dev_run, yet save_last still writes last.ckpt
            # at train end (which, on resume, would replace the real one)
            continue
        if isinstance(callback, (ModelCheckpoint, LastCheckpoint)):
            callback.dirpath = str(checkpoint_dir)  # checkpoints always live in the run's version folder
        if isinstance(callback, ModelCheckpoint):
            callback.save_last = False
        if isinstance(callback, ProgressBar) and not cfg.trainer.get("enable_progress_bar", True):
            continue  # trainer.enable_progress_bar=false means no bar (Lightning refuses one passed in anyway)
        callbacks.append(callback)
    if not is_fast_dev_run(cfg) and not any(isinstance(callback, LastCheckpoint) for callback in callbacks):
        callbacks.append(LastCheckpoint(dirpath=str(checkpoint_dir)))
    return callbacks


FAST_DEV_RUN_MESSAGE = ("debug=fast_dev_run: one training and one validation batch ran; nothing was kept "
                        "(no run folder, no checkpoint)")


def fit(cfg: DictConfig, resume: Optional[ResumePlan] = None) -> Optional[Path]:
    """Train the run ``cfg`` describes; returns its version folder ``rundir/name/version_N``.

    A new run claims the next free ``version_N`` under ``cfg.rundir/cfg.name``. With ``resume`` (a checked
    :class:`ResumePlan`, ``cfg`` being its ``cfg``) training continues in its version folder from its checkpoint
    (global step and optimiser state included). The process holds the version folder's lock while it trains
    (:mod:`vschaos.training.lock`): a second training of the same folder raises :class:`RunLockedError` before
    it writes anything, as does a resume of a version that a new run is training. A full disk is a
    :class:`TrainingError` (one line: the file, the space left, what was kept); a run folder that cannot be
    written a :class:`RunNotWritableError`; Ctrl-C a :class:`TrainingInterrupted`; a diverged training a
    :class:`NonFiniteTrainingError`. A new ``debug=fast_dev_run`` run keeps nothing, as Lightning's own message
    says: it runs in a scratch folder that is deleted, prints :data:`FAST_DEV_RUN_MESSAGE` and returns None (an
    empty ``version_N`` would only clutter the run folder).
    """
    if is_fast_dev_run(cfg) and resume is None:
        with tempfile.TemporaryDirectory(prefix="vschaos_fast_dev_run_") as scratch:
            scratch_cfg = copy.deepcopy(cfg)
            OmegaConf.update(scratch_cfg, "rundir", scratch)
            _fit(scratch_cfg, None)
        print(FAST_DEV_RUN_MESSAGE)
        return None
    return _fit(cfg, resume)


def _fit(cfg: DictConfig, resume: Optional[ResumePlan]) -> Path:
    rank = global_rank(os.environ)
    with ExitStack() as held:  # rank 0 holds the version folder's lock until this function ends, however it ends
        if resume is not None and rank == 0:
            # before anything slow: a second training of the run is refused at once, and writes nothing
            held.enter_context(TrainingLock(resume.version_dir))
            resume = refresh_plan(resume)
            cfg = resume.cfg
        elif resume is None and rank == 0:
            require_writable(Path(str(cfg.rundir)) / str(cfg.name), NEW_RUN_FOLDER_ACTION)
        return _fit_locked(cfg, resume, rank, held)


def _fit_locked(cfg: DictConfig, resume: Optional[ResumePlan], rank: int, held: ExitStack) -> Path:
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):  # int('abc') would be a traceback, int(1.5) a surprise
        raise ConfigurationError(f"seed must be a whole number, got {seed!r}")
    L.seed_everything(seed, workers=True)
    cfg = with_absolute_dataset_root(cfg)  # config.yaml must name the same folder from any directory
    vae, datamodule, module = build_objects(cfg)
    # every configuration and dataset problem is reported here, before a run folder exists: the index lists all
    # dataset problems at once (DatasetError), then the cache is built once (Lightning's own prepare_data/setup
    # calls find it and only reopen it)
    check_tasks(vae, datamodule)
    datamodule.setup("fit")
    ckpt_path: Optional[str] = None
    if resume is not None:
        # the folder on disk wins over the saved rundir/name (the run may have been moved)
        resume_dir = resume.version_dir
        save_dir, name, version = resume_dir.parent.parent, resume_dir.parent.name, version_number(resume_dir)
        ckpt_path = str(resume.checkpoint)
    else:
        save_dir, name = Path(str(cfg.rundir)), str(cfg.name)
        try:
            version = claim_version(save_dir / name, os.environ)
        except OSError as error:
            if error.errno in NOT_WRITABLE_ERRNOS:
                raise not_writable_error(error, Path(error.filename or save_dir / name).parent,
                                         NEW_RUN_FOLDER_ACTION) from None
            raise
    logger_kwargs: Dict[str, Any] = {"save_dir": str(save_dir), "name": name, "version": version}
    logger = instantiate(cfg.logger, **logger_kwargs)
    version_dir = Path(logger.log_dir)
    try:
        # the Trainer first: a config it refuses (an unknown key, a bad value) changes nothing in the run folder
        trainer = _trainer(cfg, logger, version_dir)
        if rank == 0:  # one writer: processes of rank > 0 run this function too under DDP
            if resume is not None:
                record_resume(resume)
            else:
                held.enter_context(TrainingLock(version_dir))  # ours alone already (claimed): a resume is refused
                atomic_write_text(version_dir / CONFIG_NAME, OmegaConf.to_yaml(cfg, resolve=True))
        if rank == 0 and isinstance(logger, TensorBoardLogger):
            log_hyperparameters_to_tensorboard(logger, cfg)  # TensorBoard's HPARAMS tab
        # set before trainer.fit: Lightning's DDP launcher starts the other ranks from inside it, with this environment
        os.environ[RUN_VERSION_ENV] = str(version)
        _train(trainer, module, datamodule, ckpt_path, version_dir)
    except OSError as error:
        if error.errno in DISK_FULL_ERRNOS:
            raise disk_full_error(error, version_dir) from error
        if error.errno in NOT_WRITABLE_ERRNOS and _inside(error.filename, version_dir):
            raise not_writable_error(error, version_dir, "training writes its checkpoints and logs there") from error
        raise
    return version_dir


def _trainer(cfg: DictConfig, logger: Any, version_dir: Path) -> L.Trainer:
    """The config's Trainer in ``version_dir``; a :class:`ConfigurationError` naming ``trainer`` and the first line
    of the cause when Lightning refuses the config (Hydra wraps it in several lines)."""
    try:
        return instantiate(cfg.trainer, logger=logger, callbacks=_callbacks(cfg, version_dir / "checkpoints"),
                           plugins=[AtomicCheckpointIO()], default_root_dir=str(version_dir))
    except (InstantiationException, TypeError, ValueError) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise ConfigurationError(f"trainer (or a callback it is given) refused the config: {first}") from None


def _train(trainer: L.Trainer, module: Any, datamodule: Any, ckpt_path: Optional[str], version_dir: Path) -> None:
    """``trainer.fit``. Lightning answers Ctrl-C with its own shutdown, then ``sys.exit(1)`` and leaves SIGINT
    ignored: here that is a :class:`TrainingInterrupted` saying what was kept, and SIGINT's handler is restored
    (a notebook or a test session goes on)."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        # weights_only: a checkpoint holds tensors and plain data (Lightning would otherwise unpickle anything)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit as exit_:
        if isinstance(exit_.__context__, KeyboardInterrupt):
            raise interrupted_error(version_dir) from None
        raise
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)


def _inside(filename: Any, folder: Path) -> bool:
    """Whether an error's file name (None: unknown, taken as inside) is ``folder`` or below it."""
    if filename is None:
        return True
    path = Path(os.path.abspath(os.fsdecode(filename)))
    folder = Path(os.path.abspath(folder))
    return path == folder or folder in path.parents
