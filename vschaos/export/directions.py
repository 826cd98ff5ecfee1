"""Latent directions for knobs: the principal directions of a run's training latents (or the prior's axes when
the training data cannot be read), and the one-line description of that data. No plugin SDK needed."""
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from vschaos.export.latent_names import measure_effects
from vschaos.io import PathLike

MAX_DIRECTION_FRAMES = 20000  # training frames encoded for the principal directions


@dataclass
class LatentDirections:
    """Unit latent directions ``vectors (n, latent)`` with the training latents' std along each ``scales (n,)``;
    ``names``: what each does to the sound (``vschaos.export.latent_names``), empty when not measured."""
    vectors: Tensor
    scales: Tensor
    source: str
    names: List[str] = field(default_factory=list)

    @staticmethod
    def axes(latent_dim: int, why: str, first: int = 0) -> "LatentDirections":
        """Latent axes ``first`` and ``first + 1`` with unit std (the prior N(0, I)): the fallback without training
        data (``first`` = the number of pitch dimensions, which the transpose knob moves instead)."""
        n = max(0, min(2, latent_dim - first))
        return LatentDirections(torch.eye(latent_dim)[first:first + n], torch.ones(n),
                                f"latent axes {first}-{first + n - 1} of the prior ({why})")


def principal_directions(latents: Tensor, n: int = 2) -> Tuple[Tensor, Tensor]:
    """First ``n`` principal directions ``(n, latent)`` of ``latents (frames, latent)`` and the std along each.

    Signs are fixed (largest component positive) so the same latents always give the same knobs."""
    vectors, scales = ordered_components(latents)
    n = min(n, latents.shape[0], vectors.shape[0])
    return vectors[:n], scales[:n]


def ordered_components(latents: Tensor, pitch_dims: int = 0) -> Tuple[Tensor, Tensor]:
    """All principal directions of ``latents (frames, latent)`` beyond the first ``pitch_dims`` entries (left
    out: a pitch coordinate keeps its meaning), as rows ``(latent - pitch_dims, latent)`` of an orthonormal basis
    of that subspace (zero on the pitch entries), ordered by the std along each ``(latent - pitch_dims,)``
    (zero for directions the frames do not span). Signs fixed: each row's largest entry is positive. The one
    computation behind the Neutone direction knobs and the export's ordered latents."""
    block = latents.double()[:, pitch_dims:]
    centred = block - block.mean(0)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=True)
    n = vh.shape[0]
    std = torch.zeros(n, dtype=torch.float64)
    std[:singular.shape[0]] = singular / math.sqrt(max(latents.shape[0] - 1, 1))
    largest = vh.abs().argmax(dim=1)
    vh = vh * torch.sign(vh[torch.arange(n), largest]).unsqueeze(1)
    vectors = torch.cat([torch.zeros(n, pitch_dims, dtype=torch.float64), vh], dim=1)
    return vectors.float(), std.float()


def training_latents(cfg, vae: nn.Module, max_frames: int = MAX_DIRECTION_FRAMES) -> Tuple[Tensor, str]:
    """Posterior means ``(frames, latent)`` of up to ``max_frames`` training frames (the run's dataset, its
    training split, in the seeded training order) and a one-line description of that data.

    Raises ``DatasetError`` / ``ValueError`` / ``OSError`` when the dataset cannot be read."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from vschaos.training.fit import model_tasks

    dataset = OmegaConf.to_container(cfg.data.dataset, resolve=True) if cfg.data.get("dataset") is not None else {}
    if dataset.get("tasks") is None:
        dataset["tasks"] = model_tasks(vae)
    datamodule = instantiate(cfg.data, transform=vae.transform, dataset=dataset,
                             pitch_tracker=vae.window_pitch_tracker())
    datamodule.setup()
    means: List[Tensor] = []
    count = 0
    with torch.no_grad():
        for batch in datamodule.train_dataloader():
            features = vae.transform.to_features(batch["magnitude"])
            mean, _ = vae.encode(features, batch["labels"], batch.get("f0"))
            means.append(mean)
            count += mean.shape[0]
            if count >= max_frames:
                break
    if count < 2:
        raise ValueError(f"the training split of {datamodule.root} has {count} frame(s): need at least 2")
    files = datamodule.files
    seconds = sum(f.seconds for f in files)
    return torch.cat(means)[:max_frames], data_description(datamodule.root, len(files), seconds, datamodule.tasks)


def data_description(root: PathLike, n_files: Optional[int], seconds: Optional[float], tasks: Sequence[str]) -> str:
    """``'NAME' (12 files, 95 s; labels pitch, octave)`` from what is known of a dataset."""
    parts = []
    if n_files is not None:
        parts.append(f"{n_files} files" + (f", {seconds:.0f} s" if seconds is not None else ""))
    if tasks:
        parts.append("labels " + ", ".join(tasks))
    return f"'{Path(str(root)).name}'" + (f" ({'; '.join(parts)})" if parts else "")


def run_directions(cfg, vae: nn.Module) -> Tuple[LatentDirections, str]:
    """The principal directions of the run's training latents, or the prior's axes (with the reason) when
    the training data cannot be read; and the training data's description."""
    from hydra.errors import InstantiationException
    from omegaconf.errors import OmegaConfBaseException

    from vschaos.data.metadata import DatasetError

    root = cfg.data.dataset.get("root") if cfg.data.get("dataset") is not None else None
    pitch_dims = int(getattr(vae, "pitch_dims", 0))
    try:
        latents, description = training_latents(cfg, vae)
    except (DatasetError, ValueError, OSError, InstantiationException, OmegaConfBaseException) as error:
        why = f"training data {root} not readable: {error_line(error)}"
        return (named(LatentDirections.axes(int(vae.latent_dim), why, pitch_dims), vae, None),
                data_description(root or "unknown", None, None, []))
    # the measured pitch has the transpose knob; directions move the timbre only
    vectors, scales = ordered_components(latents, pitch_dims)
    n = min(2, latents.shape[0], vectors.shape[0])
    vectors, scales = vectors[:n], scales[:n]
    source = f"principal directions of {latents.shape[0]} training frames"
    if pitch_dims > 0:
        source += " (the pitch dimension left out)"
    return named(LatentDirections(vectors, scales, source), vae, latents.mean(0)), description


def error_line(error: BaseException) -> str:
    """The first line of what went wrong: the cause's, for Hydra's wrapper (its own first line names only the
    target it called)."""
    reason = error.__cause__ if error.__cause__ is not None else error
    return (str(reason).strip().splitlines() or [type(reason).__name__])[0]


def named(directions: LatentDirections, vae: nn.Module, mean: Optional[Tensor]) -> LatentDirections:
    """``directions`` with each one's measured effect on ``vae``'s sound as its name (swept around ``mean``, the
    prior's mean when None; :mod:`vschaos.export.latent_names`). Only a model (an ``nn.Module``) is decoded."""
    if not isinstance(vae, nn.Module) or directions.vectors.shape[0] == 0:
        return directions
    centre = torch.zeros(int(vae.latent_dim)) if mean is None else mean.float()
    effects = measure_effects(vae, centre, directions.vectors, directions.scales, None, 0)
    return LatentDirections(directions.vectors, directions.scales, directions.source,
                            [effect.name for effect in effects])
