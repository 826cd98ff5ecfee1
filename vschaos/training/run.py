"""Run folders ``rundir/name/version_N/``: find versions and checkpoints, rebuild a trained model.

:func:`open_run` is the one place that turns what a user typed (``RUN_DIR [-v N] [-n CHECKPOINT]``) into a
version folder, a checkpoint file and a loaded model; every command goes through it so that they all accept
the same spellings and report the same errors.
"""
import os
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

import yaml
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vschaos.io import load_tensors_only
from vschaos.models.vae import SpectralVAE
# what a run folder may name (re-exported: the commands and tests import them from here)
from vschaos.training.trust import (ALLOWED_TARGETS, ForbiddenTargetError, RunFolderError,  # noqa: F401
                                    UnsafePathError, check_links, check_paths, check_targets)

PathLike = Union[str, Path]
CONFIG_NAME = "config.yaml"
CHECKPOINT_FOLDER = "checkpoints"
CHECKPOINT_SUFFIX = ".ckpt"
VERSION_PATTERN = re.compile(r"^version_(\d+)$")
# A saved config.yaml is a few kilobytes; a bigger one is not ours (and is refused before it is parsed).
MAX_CONFIG_BYTES = 1 << 20
# What an error message may quote of a problem (a state dict's missing keys can list thousands of names).
MAX_PROBLEM_CHARS = 400
# What torch.load raises for a truncated, corrupt or foreign file: its zip reader reports a truncated
# archive as RuntimeError; the legacy pickle path raises EOFError (empty file), KeyError (a text file) or
# UnpicklingError (also how weights_only refuses arbitrary objects), and on random bytes IndexError, struct.error
# or UnicodeDecodeError (a ValueError) from its weights-only unpickler; OSError for unreadable files.
CHECKPOINT_LOAD_ERRORS = (RuntimeError, EOFError, KeyError, IndexError, ValueError, struct.error,
                          pickle.UnpicklingError, zipfile.BadZipFile, OSError)


@dataclass
class LoadedRun:
    """A trained model and where it came from."""
    version_dir: Path
    checkpoint_path: Path
    cfg: DictConfig
    vae: SpectralVAE

    @property
    def run_dir(self) -> Path:
        """The run folder ``rundir/name`` holding :attr:`version_dir`."""
        return self.version_dir.parent


def version_number(version_dir: PathLike) -> Optional[int]:
    """``N`` of a ``version_N`` folder name, else None."""
    match = VERSION_PATTERN.match(Path(version_dir).name)
    return int(match.group(1)) if match else None


def _clean(path: PathLike) -> Path:
    """``path`` without trailing separators (``run/version_0/`` names ``version_0``)."""
    text = str(path)
    stripped = text.rstrip("/\\")
    return Path(stripped if stripped else text[:1] or ".")


def list_versions(run_dir: PathLike) -> List[Path]:
    """The ``version_N`` folders of a run folder, by increasing N."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(version_number(p), p) for p in run_dir.iterdir() if p.is_dir() and version_number(p) is not None]
    return [path for _, path in sorted(found)]


def list_checkpoints(version_dir: PathLike) -> List[str]:
    """File names of the checkpoints in ``version_dir/checkpoints``, sorted."""
    folder = Path(version_dir) / CHECKPOINT_FOLDER
    return sorted(p.name for p in folder.glob(f"*{CHECKPOINT_SUFFIX}")) if folder.is_dir() else []


def _versions_text(run_dir: Path) -> str:
    names = [p.name for p in list_versions(run_dir)]
    return f"versions in {run_dir}: {', '.join(names) if names else 'none'}"


def _checkpoints_text(version_dir: Path) -> str:
    names = list_checkpoints(version_dir)
    text = f"checkpoints in {version_dir / CHECKPOINT_FOLDER}: {', '.join(names) if names else 'none'}"
    if not names and version_number(version_dir) is not None:
        text += "; " + _versions_with_checkpoints_text(version_dir.parent)
    return text


def _versions_with_checkpoints_text(run_dir: Path) -> str:
    """``versions with a checkpoint: version_0 (best.ckpt, last.ckpt), ...`` (or ``none``)."""
    found = [f"{p.name} ({', '.join(list_checkpoints(p))})" for p in list_versions(run_dir) if list_checkpoints(p)]
    return f"versions with a checkpoint in {run_dir}: {', '.join(found) if found else 'none'}"


def _is_version_dir(path: Path) -> bool:
    # A run *named* version_3 (rundir/version_3/version_0) holds version folders itself; a real version
    # folder never does, so that tells the two apart.
    return version_number(path) is not None and not list_versions(path)


def find_version_dir(run_dir: PathLike, version: Optional[int] = None) -> Path:
    """The version folder that ``RUN_DIR [-v version]`` names.

    ``run_dir`` is a run folder ``rundir/name`` (its highest ``version_N`` that holds a checkpoint, or
    ``version_<version>``) or one of its ``version_N`` folders. "Latest" skips versions without a checkpoint: a
    training that failed or was stopped before its first checkpoint leaves an empty ``version_N`` that must not
    hide the trained one before it. For a version folder, ``version`` None or equal to N gives that folder, and a
    different ``version`` gives its sibling ``version_<version>`` (``-v`` always picks the version within the
    same run). A trailing slash is tolerated.
    """
    run_dir = _clean(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist")
    if _is_version_dir(run_dir):
        if version is None or version == version_number(run_dir):
            return run_dir
        run_dir = run_dir.parent
    if version is not None:
        candidate = run_dir / f"version_{version}"
        if not candidate.is_dir():
            raise RunFolderError(f"{candidate} does not exist ({_versions_text(run_dir)})")
        return candidate
    versions = list_versions(run_dir)
    if not versions:
        raise RunFolderError(f"{run_dir} holds no version_N folder: not a vschaos run folder (rundir/name)")
    with_checkpoints = [p for p in versions if list_checkpoints(p)]
    # none at all: the latest, whose missing checkpoint open_run reports (with the versions that have none)
    return with_checkpoints[-1] if with_checkpoints else versions[-1]


def find_checkpoint(version_dir: PathLike, name: PathLike = "last") -> Path:
    """The checkpoint that ``-n name`` names in ``version_dir``.

    ``name`` is ``last``, ``best`` or another file of ``version_dir/checkpoints`` (with or without ``.ckpt``),
    or a path to a checkpoint file (anything with a folder part is taken as a path, as is an existing file
    that is not in ``checkpoints/``).
    """
    version_dir = Path(version_dir)
    text = str(name)
    as_path = Path(text)
    folder = version_dir / CHECKPOINT_FOLDER
    if as_path.name == text:  # a bare name: look in checkpoints/ first
        candidate = folder / (text if text.endswith(CHECKPOINT_SUFFIX) else text + CHECKPOINT_SUFFIX)
        if candidate.is_file():
            return candidate
        if not as_path.is_file():
            raise RunFolderError(f"checkpoint {candidate} not found ({_checkpoints_text(version_dir)})")
    if not as_path.is_file():
        raise RunFolderError(f"checkpoint {as_path} not found ({_checkpoints_text(version_dir)})")
    return as_path


def one_line(error: BaseException, limit: int = MAX_PROBLEM_CHARS) -> str:
    """``str(error)`` on one line (its lines joined with ``; ``), cut after ``limit`` characters: hydra's,
    omegaconf's, YAML's and ``load_state_dict``'s messages span several lines."""
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _read_config(path: Path) -> DictConfig:
    """Parse ``config.yaml`` as plain data: at most :data:`MAX_CONFIG_BYTES`, and no YAML alias (``*name``):
    a config we write never holds one, and nested aliases expand exponentially when the document becomes a
    config (a few lines of "billion laughs" hung every command that opened the run)."""
    try:
        with open(path, "rb") as handle:  # path.is_file(): a regular file, never a FIFO
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise RunFolderError(f"cannot read {path}: {error.strerror or error}") from error
    if len(data) > MAX_CONFIG_BYTES:
        raise RunFolderError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes: not a vschaos run config")
    try:
        text = data.decode("utf-8")
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise RunFolderError(f"{path}, line {event.start_mark.line + 1}: refused the YAML alias "
                                     f"*{event.anchor}: a run config holds plain values only")
        return OmegaConf.create(text)
    except yaml.MarkedYAMLError as error:  # its text quotes the line and a caret below it: name the line instead
        mark = error.problem_mark or error.context_mark
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(part) for part in (error.context, error.problem) if part) or type(error).__name__
        raise RunFolderError(f"cannot read {path}{where}: {problem}") from error
    except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError) as error:
        raise RunFolderError(f"cannot read {path}: {one_line(error)}") from error


def load_run_config(version_dir: PathLike) -> DictConfig:
    """The resolved ``config.yaml`` saved in a version folder, checked as someone else's data
    (:mod:`vschaos.training.trust`): its ``_target_``s are in :data:`ALLOWED_TARGETS` (:class:`ForbiddenTargetError`
    otherwise), its fields that name a file or folder keep inside the version folder, and no link inside the
    version folder leads out of it (:class:`UnsafePathError` otherwise). Every reader of a run folder (script,
    generate, resume) comes through here, so none of them instantiates, writes or deletes on a refused folder."""
    path = Path(version_dir) / CONFIG_NAME
    if not path.is_file():
        raise RunFolderError(f"{path} not found: {version_dir} is not a vschaos run version folder")
    cfg = _read_config(path)
    if not isinstance(cfg, DictConfig):
        raise RunFolderError(f"{path} is not a mapping: not a vschaos run config")
    check_targets(cfg, path)
    check_paths(cfg, path)  # after check_targets: resolves the config, which then holds plain references only
    check_links(version_dir)
    return cfg


def build_model(cfg: DictConfig) -> SpectralVAE:
    """Instantiate the transform and the VAE described by a run config (untrained)."""
    transform = instantiate(cfg.transform)
    return instantiate(cfg.model, transform=transform)


def checkpoint_load_problem(path: PathLike, error: BaseException) -> str:
    """One line for what :func:`vschaos.io.load_tensors_only` raised on the checkpoint ``path`` (one of
    :data:`CHECKPOINT_LOAD_ERRORS`): the error's name and its first line, or what the file is when torch's text
    is empty (an empty file's ``EOFError``) or unsafe to repeat (an ``UnpicklingError`` advises
    ``weights_only=False``, i.e. running the file's code: never offered here)."""
    name = "struct.error" if isinstance(error, struct.error) else type(error).__name__
    if isinstance(error, pickle.UnpicklingError):
        return f"{name}: the file is corrupt or holds more than tensors and plain data " \
               f"(refused by torch.load(weights_only=True))"
    first_line = (str(error).strip().splitlines() or [""])[0]
    if first_line:
        return f"{name}: {first_line}"
    try:
        size = os.path.getsize(path)
    except OSError:
        size = None
    return f"{name}: the file is empty (0 bytes)" if size == 0 else f"{name}: the file is truncated or corrupt"


def _load_vae_state(path: Path, version_dir: Path) -> dict:
    """The ``vae.``-prefixed weights of a checkpoint, prefix removed (RunFolderError if unusable)."""
    def cannot(reason: str) -> RunFolderError:
        return RunFolderError(f"cannot load the model from {path}: {reason} ({_checkpoints_text(version_dir)})")

    try:
        state = load_tensors_only(path)
    except CHECKPOINT_LOAD_ERRORS as error:
        raise cannot(checkpoint_load_problem(path, error)) from error
    state_dict = state.get("state_dict") if isinstance(state, dict) else None
    if not isinstance(state_dict, dict):
        raise cannot("no 'state_dict' in the file: not a training checkpoint")
    vae_state = {key[len("vae."):]: value for key, value in state_dict.items() if key.startswith("vae.")}
    if not vae_state:
        raise cannot("it holds no 'vae.' weights: not a vschaos checkpoint")
    return vae_state


def open_run(run_dir: PathLike, version: Optional[int] = None, checkpoint: PathLike = "last") -> LoadedRun:
    """Rebuild a trained VAE from ``RUN_DIR [-v version] [-n checkpoint]``; the VAE is in eval mode.

    See :func:`find_version_dir` for ``run_dir``/``version`` and :func:`find_checkpoint` for ``checkpoint``.
    Loads with ``torch.load(weights_only=True)``. Every problem (missing folder, version, config or checkpoint;
    truncated, corrupt or foreign checkpoint; weights that do not fit the saved config) is a
    :class:`RunFolderError` naming the path and what is available instead.
    """
    version_dir = find_version_dir(run_dir, version)
    # look for both files before failing, so that one message tells everything that is missing
    problems: List[str] = []
    try:
        cfg = load_run_config(version_dir)
    except (ForbiddenTargetError, UnsafePathError):
        raise  # a refusal, not a missing file: reported alone
    except RunFolderError as error:
        problems.append(str(error))
    try:
        path = find_checkpoint(version_dir, checkpoint)
    except RunFolderError as error:
        problems.append(str(error))
    if problems:
        raise RunFolderError("; ".join(problems))
    vae_state = _load_vae_state(path, version_dir)
    config_path = version_dir / CONFIG_NAME
    try:
        vae = build_model(cfg)
    except (InstantiationException, OmegaConfBaseException) as error:
        raise RunFolderError(f"{config_path} does not describe a vschaos model: {one_line(error)}") from error
    try:
        vae.load_state_dict(vae_state)
    except (RuntimeError, KeyError) as error:  # missing/unexpected keys, shape mismatches
        raise RunFolderError(f"the weights of {path} do not fit the model of {config_path}: "
                             f"{one_line(error)}") from error
    return LoadedRun(version_dir, path, cfg, vae.eval())

