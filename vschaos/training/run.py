"""Run folders ``rundir/name/version_N/``: find versions and checkpoints, rebuild a trained model."""
import re
from pathlib import Path
from typing import Optional, Tuple, Union

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vschaos.models.vae import SpectralVAE

PathLike = Union[str, Path]
CONFIG_NAME = "config.yaml"
VERSION_PATTERN = re.compile(r"^version_(\d+)$")


class RunFolderError(FileNotFoundError):
    """A folder that is not a (complete) vschaos run."""


def version_number(version_dir: PathLike) -> Optional[int]:
    """``N`` of a ``version_N`` folder name, else None."""
    match = VERSION_PATTERN.match(Path(version_dir).name)
    return int(match.group(1)) if match else None


def find_version_dir(run_dir: PathLike, version: Optional[int] = None) -> Path:
    """``run_dir/version_<version>`` (the highest N if ``version`` is None); a ``version_N`` folder is returned as is."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist")
    if version_number(run_dir) is not None and version is None:
        return run_dir
    if version is not None:
        candidate = run_dir / f"version_{version}"
        if not candidate.is_dir():
            raise RunFolderError(f"{candidate} does not exist (run folder {run_dir})")
        return candidate
    versions = sorted((version_number(p), p) for p in run_dir.iterdir() if p.is_dir() and version_number(p) is not None)
    if not versions:
        raise RunFolderError(f"{run_dir} holds no version_N folder: not a vschaos run folder (rundir/name)")
    return versions[-1][1]


def find_checkpoint(version_dir: PathLike, name: str = "last") -> Path:
    """``version_dir/checkpoints/<name>.ckpt`` (``name`` may also be a file name or a path)."""
    path = Path(name)
    if path.suffix == ".ckpt" and path.is_file():
        return path
    folder = Path(version_dir) / "checkpoints"
    candidate = folder / (name if name.endswith(".ckpt") else f"{name}.ckpt")
    if not candidate.is_file():
        present = sorted(p.name for p in folder.glob("*.ckpt")) if folder.is_dir() else []
        raise RunFolderError(f"checkpoint {candidate} not found (present in {folder}: {present or 'none'})")
    return candidate


def load_run_config(version_dir: PathLike) -> DictConfig:
    """The resolved ``config.yaml`` saved in a version folder."""
    path = Path(version_dir) / CONFIG_NAME
    if not path.is_file():
        raise RunFolderError(f"{path} not found: {version_dir} is not a vschaos run version folder")
    return OmegaConf.load(path)


def build_model(cfg: DictConfig) -> SpectralVAE:
    """Instantiate the transform and the VAE described by a run config (untrained)."""
    transform = instantiate(cfg.transform)
    return instantiate(cfg.model, transform=transform)


def load_model(run_dir: PathLike, version: Optional[int] = None, checkpoint: str = "last"
               ) -> Tuple[DictConfig, SpectralVAE]:
    """Rebuild a trained VAE from a run folder alone: ``(config, vae)`` with ``vae`` in eval mode.

    ``run_dir`` is ``rundir/name`` (latest version, or ``version``) or a ``version_N`` folder; ``checkpoint`` is
    ``"last"``, ``"best"`` or a checkpoint path. Loads with ``torch.load(weights_only=True)``.
    """
    version_dir = find_version_dir(run_dir, version)
    cfg = load_run_config(version_dir)
    path = find_checkpoint(version_dir, checkpoint)
    state = torch.load(path, map_location="cpu", weights_only=True)
    vae_state = {key[len("vae."):]: value for key, value in state["state_dict"].items() if key.startswith("vae.")}
    if not vae_state:
        raise RunFolderError(f"{path} holds no 'vae.' weights: not a vschaos checkpoint")
    vae = build_model(cfg)
    vae.load_state_dict(vae_state)
    return cfg, vae.eval()
