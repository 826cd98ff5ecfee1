"""Hyperparameters of a run: what ``SpectralVAEModule.load_from_checkpoint`` needs, and TensorBoard's HPARAMS tab.

The checkpoint's ``hyper_parameters`` hold the module's constructor arguments as plain configs (dicts, lists,
numbers, strings: a checkpoint still loads with ``torch.load(weights_only=True)``), resolved (no interpolation);
the module instantiates them when it is given configs instead of objects, and only when every ``_target_`` in
them is one that argument may name (``vschaos.models.lightning.CONFIG_TARGETS``): a shared checkpoint's
hyper_parameters are someone else's data.
"""
from typing import Any, Dict

from omegaconf import DictConfig, OmegaConf

# the metric TensorBoard's HPARAMS tab shows beside the hyperparameters (the best checkpoint's metric too)
HPARAMS_METRIC = "val/spectral_convergence"


def module_hyperparameters(cfg: DictConfig) -> Dict[str, Any]:
    """``SpectralVAEModule`` arguments of the run ``cfg`` as plain configs: ``vae`` (the model config with its
    ``transform``), then every key of ``cfg.module`` (optimizer, loss, prediction_weight, ...)."""
    vae = OmegaConf.to_container(cfg.model, resolve=True)
    vae["transform"] = OmegaConf.to_container(cfg.transform, resolve=True)
    module = OmegaConf.to_container(cfg.module, resolve=True)
    return {"vae": vae, **{key: value for key, value in module.items() if not key.startswith("_")}}


def flat_hyperparameters(cfg: DictConfig) -> Dict[str, Any]:
    """The run config as ``{"model/latent_dim": 16, ...}`` with values TensorBoard accepts (numbers, strings,
    booleans; lists and nulls as text); Hydra's ``_target_``-style keys left out."""
    flat: Dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not str(key).startswith("_"):
                    walk(value, f"{prefix}/{key}" if prefix else str(key))
        elif isinstance(node, (bool, int, float, str)):
            flat[prefix] = node
        else:
            flat[prefix] = str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def log_hyperparameters_to_tensorboard(logger: Any, cfg: DictConfig) -> None:
    """Write the HPARAMS session of this run (hyperparameters + the metric to compare runs by) to a
    TensorBoardLogger's event file, without logging a value for the metric itself."""
    from torch.utils.tensorboard.summary import hparams

    experiment, session_start, session_end = hparams(flat_hyperparameters(cfg), {HPARAMS_METRIC: 0.0})
    writer = logger.experiment._get_file_writer()
    for summary in (experiment, session_start, session_end):
        writer.add_summary(summary)
