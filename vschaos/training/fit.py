"""Build everything a run config describes, and train it in its run folder (new run or resume)."""
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from vschaos.io import atomic_write_text
from vschaos.training.checkpoints import AtomicCheckpointIO
from vschaos.training.run import CONFIG_NAME, build_model, find_checkpoint, version_number


def build_objects(cfg: DictConfig) -> Tuple[Any, Any, Any]:
    """``(vae, datamodule, lightning_module)`` from a composed config; the transform is shared by all three."""
    vae = build_model(cfg)
    datamodule = instantiate(cfg.data, transform=vae.transform)
    module = instantiate(cfg.module, vae=vae)
    return vae, datamodule, module


def describe_model(vae: Any) -> str:
    """The model's structure and its parameter counts per block (for ``+check=1``)."""
    counts = vae.parameter_counts()
    lines = [str(vae), "", "parameters per block:"]
    lines += [f"  {name:<20s} {count:>12,d}" for name, count in counts.items()]
    lines.append(f"conditioning: encoder {vae.encoder_tasks}, decoder {vae.decoder_tasks}; "
                 f"predicted: {vae.predicted_tasks}")
    return "\n".join(lines)


def check(cfg: DictConfig) -> str:
    """Report for ``+check=1``: model, parameter counts and the dataset summary; trains nothing, writes no run."""
    vae, datamodule, _ = build_objects(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return describe_model(vae) + "\n\ndataset:\n" + datamodule.summary()


def _callbacks(cfg: DictConfig, checkpoint_dir: Path) -> List[L.Callback]:
    callbacks: List[L.Callback] = []
    for callback_cfg in (cfg.get("callbacks") or {}).values():
        if callback_cfg is None:
            continue
        callback = instantiate(callback_cfg)
        if isinstance(callback, ModelCheckpoint):
            callback.dirpath = str(checkpoint_dir)  # checkpoints always live in the run's version folder
        callbacks.append(callback)
    return callbacks


def fit(cfg: DictConfig, resume_dir: Optional[Path] = None) -> Path:
    """Train the run ``cfg`` describes; returns its version folder ``rundir/name/version_N``.

    A new run gets the next free ``version_N`` under ``cfg.rundir/cfg.name``. With ``resume_dir`` (a version
    folder) training continues there from ``checkpoints/last.ckpt`` (global step and optimiser state included).
    """
    L.seed_everything(int(cfg.seed), workers=True)
    vae, datamodule, module = build_objects(cfg)
    logger_kwargs: Dict[str, Any] = {"save_dir": str(cfg.rundir), "name": str(cfg.name)}
    ckpt_path: Optional[str] = None
    if resume_dir is not None:
        # the folder on disk wins over the saved rundir/name (the run may have been moved)
        logger_kwargs = {"save_dir": str(resume_dir.parent.parent), "name": resume_dir.parent.name,
                         "version": version_number(resume_dir)}
        ckpt_path = str(find_checkpoint(resume_dir, "last"))
    logger = instantiate(cfg.logger, **logger_kwargs)
    version_dir = Path(logger.log_dir)
    version_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(version_dir / CONFIG_NAME, OmegaConf.to_yaml(cfg, resolve=True))
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=_callbacks(cfg, version_dir / "checkpoints"),
                          plugins=[AtomicCheckpointIO()], default_root_dir=str(version_dir))
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return version_dir
