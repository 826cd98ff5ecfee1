"""The nn~ export with ordered, named latents: :func:`export_ordered` is :func:`vschaos.export.export.export_model`
with a run's :class:`~vschaos.export.latent_axes.LatentAxes`, then ``<name>.latents.md`` beside the file."""
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch

from vschaos.export.export import export_model, streaming_module
from vschaos.export.latent_axes import LatentAxes, write_latents_markdown
from vschaos.export.module import StreamingVAE
from vschaos.io import PathLike
from vschaos.models.contract import SpectralModel


def ordered_module(vae: SpectralModel, axes: LatentAxes, temperature: float = 0.0, phase: Optional[str] = None,
                   seed: int = 0, dtype: torch.dtype = torch.float32) -> StreamingVAE:
    """:class:`StreamingVAE` with ``axes`` around a frozen copy of ``vae`` in ``dtype`` (not scripted)."""
    return streaming_module(vae, temperature=temperature, phase=phase, seed=seed, dtype=dtype, axes=axes)


def export_ordered(vae: SpectralModel, path: PathLike, axes: LatentAxes, temperature: float = 0.0,
                   phase: Optional[str] = None, seed: int = 0, buffers: Optional[Sequence[int]] = None,
                   batch_sizes: Sequence[int] = (1, 4), **options) -> Tuple[Path, object, Path]:
    """:func:`export_model` with ordered latents ``axes`` (``options``: its others, e.g. ``prior``), then
    ``<name>.latents.md`` beside the file: ``(path, VerifyReport, its path)``. Raises what ``export_model``
    raises; the notes are written only once the model is."""
    written, report = export_model(vae, path, temperature=temperature, phase=phase, seed=seed, buffers=buffers,
                                   batch_sizes=batch_sizes, axes=axes, **options)
    return written, report, write_latents_markdown(written, axes)
