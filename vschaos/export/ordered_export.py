"""The nn~ export with ordered, named latents: :func:`export_ordered` scripts :class:`StreamingVAE` with a run's
:class:`~vschaos.export.latent_axes.LatentAxes`, verifies and writes it as :func:`vschaos.export.export.export_model`
does (the same float32-then-float64 rule and ``save_verified``), then writes ``latents.md`` beside it."""
import copy
import warnings
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch

from vschaos.export.export import ExportVerificationError, in_model_dtypes, save_verified
from vschaos.export.latent_axes import LatentAxes, write_latents_markdown
from vschaos.export.module import StreamingVAE
from vschaos.io import PathLike
from vschaos.models.contract import SpectralModel


def ordered_module(vae: SpectralModel, axes: LatentAxes, temperature: float = 0.0, phase: str = "pghi",
                   seed: int = 0, dtype: torch.dtype = torch.float32) -> StreamingVAE:
    """:class:`StreamingVAE` with ``axes`` around a frozen copy of ``vae`` in ``dtype`` (not scripted)."""
    vae = copy.deepcopy(vae).eval().to(dtype)
    for parameter in vae.parameters():
        parameter.requires_grad_(False)
    return StreamingVAE(vae, temperature=temperature, phase=phase, seed=seed, axes=axes).eval()


def export_ordered(vae: SpectralModel, path: PathLike, axes: LatentAxes, temperature: float = 0.0,
                   phase: str = "pghi", seed: int = 0, buffers: Optional[Sequence[int]] = None,
                   batch_sizes: Sequence[int] = (1, 4)) -> Tuple[Path, object, Path]:
    """Script ``vae`` with ordered latents ``axes``, write it to ``path`` after the host's verification and
    ``latents.md`` beside it: ``(path, VerifyReport, latents.md path)``. Raises what ``export_model`` raises
    (:class:`ExportVerificationError`, ``DiskFullError``/``OSError``, ``ValueError``); ``latents.md`` is written
    only after the model."""
    def attempt(dtype: torch.dtype) -> Tuple[Path, object]:
        module = ordered_module(vae, axes, temperature=temperature, phase=phase, seed=seed, dtype=dtype)
        with warnings.catch_warnings():  # TorchScript is what nn~ loads: torch's deprecation notice is expected
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
            scripted = torch.jit.script(module)
        return save_verified(scripted, path, buffers=buffers, batch_sizes=batch_sizes)

    def failures(error: Exception) -> str:
        return ", ".join(f"{check.method or 'model'} {check.name}" for check in error.report.failures)

    (written, report), model_math = in_model_dtypes(attempt, ExportVerificationError, failures)
    report.add("model math", None, [], model_math, warning=model_math != "float32")
    return written, report, write_latents_markdown(written, axes)
