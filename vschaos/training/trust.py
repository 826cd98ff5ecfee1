"""What a run folder may hold. A run folder is someone else's data (a shared run, a downloaded checkpoint): nothing
in it may run code, or make a command write or delete a file outside its version folder.

- ``config.yaml`` names only the ``_target_``s of :data:`ALLOWED_TARGETS` (:func:`check_targets`), and in the
  fields that name a file or folder only what :data:`CHECKED_PATH_FIELDS` allows (:func:`check_paths`);
- no link inside a version folder leads out of it (:func:`check_links`): resume writes there (checkpoints, logs,
  ``config.yaml``, ``resumes/``) and would write through whatever a link names;
- a checkpoint file name is a bare name (:func:`bare_name_problem`), and every path a checkpoint restores is
  re-rooted into the version's ``checkpoints/`` or dropped (:mod:`vschaos.training.checkpoints`).

:func:`vschaos.training.run.load_run_config` applies the first two to every run folder a command reads.
"""
import fnmatch
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

PathLike = Union[str, Path]


class RunFolderError(FileNotFoundError):
    """A folder that is not a (complete) vschaos run, or a checkpoint that cannot be loaded."""


class ForbiddenTargetError(RunFolderError):
    """A run folder's config names a ``_target_`` outside :data:`ALLOWED_TARGETS` (refused, never instantiated)."""


class UnsafePathError(RunFolderError):
    """A run folder's config, checkpoint or links name a file or folder outside its version folder (refused)."""


# The only ``_target_``s a run folder's config.yaml may name. A run folder is how models are shared, and hydra's
# instantiate calls whatever a ``_target_`` names (``torch.load``, ``builtins.open``...): anything else is refused
# before any instantiation (:func:`check_targets`). vschaos's own classes, and the Lightning/torch classes that
# the presets use or that a training config commonly adds (optimisers, schedulers, callbacks, loggers).
# lightning's ModelCheckpoint is allowed: the paths its saved state names are re-rooted like BestCheckpoint's
# (LastCheckpoint.on_load_checkpoint).
OPTIMIZER_NAMES = ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam")
ALLOWED_TARGETS = frozenset([
    "vschaos.models.vae.SpectralVAE",
    "vschaos.dsp.transforms.SpectralTransform",
    "vschaos.data.datamodule.SpectralDataModule",
    "vschaos.models.lightning.SpectralVAEModule",
    "vschaos.models.losses.SpectralVAELoss",
    "vschaos.models.pitch_shift.InputPitchShift",
    "vschaos.training.callbacks.ReconstructionMonitor",
    "vschaos.training.callbacks.CPUTimeBudget",
    "vschaos.training.checkpoints.BestCheckpoint",
    "vschaos.training.checkpoints.LastCheckpoint",
    "lightning.pytorch.Trainer",
    "lightning.pytorch.loggers.TensorBoardLogger",
    "lightning.pytorch.loggers.CSVLogger",
    "lightning.pytorch.callbacks.ModelCheckpoint",
    "lightning.pytorch.callbacks.TQDMProgressBar",
    "lightning.pytorch.callbacks.RichProgressBar",
    "lightning.pytorch.callbacks.EarlyStopping",
    "lightning.pytorch.callbacks.LearningRateMonitor",
    "lightning.pytorch.callbacks.ModelSummary",
    *(f"torch.optim.{name}" for name in OPTIMIZER_NAMES),
    *(f"torch.optim.lr_scheduler.{name}" for name in (
        "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
        "ReduceLROnPlateau", "OneCycleLR", "LinearLR", "ConstantLR", "CyclicLR", "PolynomialLR")),
])
TARGET_KEY = "_target_"
# ``${other.key}``: copies another node of the config, which is checked where it is. Any other interpolation calls
# a resolver (``${oc.create:...}`` could build a ``_target_`` that the check never sees) and is refused.
KEY_REFERENCE = re.compile(r"\$\{[\w.\[\]-]*\}")


def _walk(node: Any, key: str) -> Iterator[Tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf and every ``_target_`` of a plain (container) config tree."""
    if isinstance(node, dict):
        for name, value in node.items():
            child = f"{key}.{name}" if key else str(name)
            if name == TARGET_KEY:  # whatever its type: a mapping there is refused, not walked into
                yield child, value
            else:
                yield from _walk(value, child)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{key}[{index}]")
    else:
        yield key, node


def check_targets(cfg: DictConfig, source: PathLike) -> None:
    """Raise :class:`ForbiddenTargetError` naming the key and value of every ``_target_`` of ``cfg`` (read from
    ``source``) that is not in :data:`ALLOWED_TARGETS` (an interpolated ``_target_`` included), and of every
    resolver interpolation (``${oc.create:...}`` could build a ``_target_`` this check would not see; plain
    references ``${other.key}`` are allowed). Reads the config unresolved: instantiates and runs nothing."""
    tree = OmegaConf.to_container(cfg, resolve=False)
    refused = []
    for key, value in _walk(tree, ""):
        if key.rsplit(".", 1)[-1] == TARGET_KEY and not (isinstance(value, str) and value in ALLOWED_TARGETS):
            refused.append(f"{key}={value!r}")
        elif isinstance(value, str) and "${" in KEY_REFERENCE.sub("", value):
            refused.append(f"{key}={value!r} (a resolver interpolation)")
    if refused:
        raise ForbiddenTargetError(
            f"{source}: refused {', '.join(refused)}: a run folder may only name vschaos's own classes and the "
            f"torch/Lightning classes listed in vschaos.training.run.ALLOWED_TARGETS, so that a shared run folder "
            f"cannot run code; nothing was instantiated")


# ----------------------------------------------------------------------------- fields that name a file or folder

def bare_name_problem(name: Any) -> Optional[str]:
    """Why ``name`` is not a bare file name (one that can only name a file in the folder it is joined to), or
    None: a non-empty string without a folder separator, without ``..``, not absolute."""
    if not isinstance(name, str) or not name:
        return "a file name must be a non-empty string"
    if any(sep in name for sep in ("/", "\\", os.sep, os.altsep or "/")) or ".." in name or "\0" in name:
        return "a file name may hold no folder separator and no '..'"
    return None


def relative_inside_problem(path: Any) -> Optional[str]:
    """Why ``path`` could name something outside the folder it is joined to, or None: it must be a relative path
    without a ``..`` part, and without ``~`` or ``$`` (Lightning's loggers expand them in their folders)."""
    if not isinstance(path, str):
        return "a folder must be given as a string"
    if os.path.isabs(path) or path.startswith("\\") or any(c in path for c in "~$\0"):
        return "a folder must be a relative path (no '~' or '$')"
    if ".." in re.split(r"[/\\]", path):
        return "a folder may not leave the version folder ('..')"
    return None


def _must_be_null(value: Any) -> Optional[str]:
    return None if value is None else "a run folder may not set it"


# Fields that name a file or folder, and what a run folder's config may put there (None passes every rule: the
# default). A key is a dotted path; ``*`` matches one key.
CHECKED_PATH_FIELDS: Dict[str, Callable[[Any], Optional[str]]] = {
    "callbacks.*.filename": lambda v: None if v is None else bare_name_problem(v),  # a ModelCheckpoint's file name
    "logger.sub_dir": lambda v: None if v is None else relative_inside_problem(v),  # TensorBoardLogger: a subfolder
    "logger.filename_suffix": lambda v: None if v is None else bare_name_problem(v),  # its SummaryWriter's files
    "trainer.model_registry": _must_be_null,  # Lightning would upload the checkpoints to a model hub
}
# Fields that name a folder which the commands derive themselves: the value in config.yaml is never used (resume,
# generate and script take the version folder as found on disk; fit passes it to the logger, the trainer and the
# checkpoint callbacks).
DERIVED_PATH_FIELDS = ("rundir", "name", "logger.save_dir", "logger.name", "logger.version",
                       "trainer.default_root_dir", "callbacks.*.dirpath")
# The dataset a run reads: ``data.dataset.root`` (its spectral cache is written under ROOT/.vschaos_cache/<hash>/
# unless ``data.cache_dir`` names another folder for it). Files of ours only, in folders named by a hash; nothing
# there is ever deleted but the cache's own files. ``--dataset-root`` / ``data.dataset.root=`` replace it.
DATA_PATH_FIELDS = ("data.dataset.root", "data.cache_dir")
# Any other field named like these names a file or folder that nothing here checks: refused unless null.
PATH_LIKE_NAME = re.compile(r"(dir|path|paths|file|filename|root|suffix|folder|registry)$", re.IGNORECASE)


def _matches(key: str, patterns: Any) -> Optional[str]:
    return next((pattern for pattern in patterns if fnmatch.fnmatchcase(key, pattern)), None)


def check_paths(cfg: DictConfig, source: PathLike) -> None:
    """Raise :class:`UnsafePathError` naming ``source`` and every field of ``cfg`` that names a file or folder a
    run folder may not name (:data:`CHECKED_PATH_FIELDS`; any other path-like field that is not null, other than
    :data:`DERIVED_PATH_FIELDS` and :data:`DATA_PATH_FIELDS`). Call after :func:`check_targets`: the config is
    resolved (plain key references only)."""
    try:
        tree = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise RunFolderError(f"cannot read {source}: {error}") from error
    refused = []
    for key, value in _walk(tree, ""):
        pattern = _matches(key, CHECKED_PATH_FIELDS)
        if pattern is not None:
            problem = CHECKED_PATH_FIELDS[pattern](value)
        elif _matches(key, DERIVED_PATH_FIELDS + DATA_PATH_FIELDS) or value is None:
            problem = None
        else:
            last = key.rsplit(".", 1)[-1].split("[", 1)[0]
            problem = "names a file or folder that vschaos does not check" if PATH_LIKE_NAME.search(last) else None
        if problem is not None:
            refused.append(f"{key}={value!r} ({problem})")
    if refused:
        raise UnsafePathError(
            f"{source}: refused {', '.join(refused)}: a run folder's files may only be written inside its version "
            f"folder; nothing was written")


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


# The folders of a version folder that commands write into (checkpoints, resume records, the latent prior): if
# one exists it must be a folder (resume failed with a FileExistsError traceback on a file named resumes).
WRITTEN_FOLDERS = ("checkpoints", "resumes", "prior")


def check_links(version_dir: PathLike) -> None:
    """Raise :class:`UnsafePathError` if a link inside ``version_dir`` (at any depth) leads outside it, or to
    nothing: a command that writes in the version folder (resume) would write through it. The version folder
    itself, and the folders above it, may be links. Also refused: one of :data:`WRITTEN_FOLDERS` that exists
    but is not a folder."""
    for name in WRITTEN_FOLDERS:
        path = os.path.join(version_dir, name)
        if os.path.lexists(path) and not os.path.isdir(path):
            raise UnsafePathError(f"{path} is not a folder: commands write their files into {name}/ there; move "
                                  f"it away; nothing was written")
    root = os.path.realpath(version_dir)
    for folder, dirs, files in os.walk(version_dir):  # does not follow links to folders
        for name in sorted(dirs + files):
            path = os.path.join(folder, name)
            if os.path.islink(path):
                target = os.path.realpath(path)
                if not (_inside(target, root) and os.path.exists(path)):
                    raise UnsafePathError(
                        f"{path} is a link to {os.readlink(path)}, outside {version_dir} or to nothing: a run folder "
                        f"must hold its own files (a command writing there would write through the link); copy the "
                        f"file in instead; nothing was written")
