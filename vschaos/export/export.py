"""The export procedure: script a trained ``SpectralVAE`` for nn~, verify it, then write it.

A file is only ever moved into place after our streaming host (``vschaos.host.verify_model``)
passed it: the module is saved to a temporary file beside the target, verified from that file
(exactly what nn~ would load), and renamed; on failure the temporary file is removed.
"""
import copy
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple, Type, TypeVar, Union

import torch

from vschaos.export.latent_axes import LatentAxes
from vschaos.export.module import StreamingVAE
from vschaos.export.prior import with_prior
from vschaos.io import atomic_jit_save, remove_stale_temporaries
from vschaos.models.contract import SpectralModel
from vschaos.models.prior import LatentPrior

PathLike = Union[str, Path]


class ExportVerificationError(RuntimeError):
    """The scripted model failed the host's verification; ``report`` is the ``VerifyReport``."""

    def __init__(self, report: object, path: Optional[PathLike] = None):
        self.report = report
        where = f" ({path} was not written)" if path is not None else ""
        super().__init__(f"export refused: the model fails verification{where}\n{report.format()}")


Attempt = TypeVar("Attempt")


def in_model_dtypes(attempt: Callable[[torch.dtype], Attempt], refused: Type[Exception],
                    reason: Callable[[Exception], str]) -> Tuple[Attempt, str]:
    """``attempt(dtype)`` with float32 model math, again with float64 if float32 raised ``refused`` (a stream
    whose output depends on the buffer size, see StreamingVAE's docstring); float64's own failure propagates.
    Returns the result and what the report says: ``float32`` or ``float64 (float32 failed: <reason>)``. Every
    export target goes through this one rule."""
    try:
        return attempt(torch.float32), "float32"
    except refused as error:
        failure = reason(error)
    return attempt(torch.float64), f"float64 (float32 failed: {failure})"


def streaming_module(vae: SpectralModel, temperature: float = 0.0, phase: Optional[str] = None, seed: int = 0,
                     dtype: torch.dtype = torch.float32, prior: Optional[LatentPrior] = None,
                     axes: Optional[LatentAxes] = None) -> StreamingVAE:
    """:class:`StreamingVAE` around a copy of ``vae`` in ``dtype`` (eval mode, no gradients), not scripted: what
    both export targets (nn~ and Neutone) wrap. The dtype of the model math only: StreamingVAE's docstring. With a
    ``prior`` (a copy of it, in ``dtype``), the module also has ``prior`` and ``generate``
    (:func:`~vschaos.export.prior.with_prior`). ``axes``: ordered latents for ``encode``/``decode``
    (:mod:`vschaos.export.latent_axes`), None for the model's own."""
    vae = copy.deepcopy(vae).eval().to(dtype)
    for parameter in vae.parameters():
        parameter.requires_grad_(False)
    if prior is None:
        return StreamingVAE(vae, temperature=temperature, phase=phase, seed=seed, axes=axes).eval()
    return with_prior(vae, prior, dtype, temperature=temperature, phase=phase, seed=seed, axes=axes)


def script_model(vae: SpectralModel, temperature: float = 0.0, phase: Optional[str] = None, seed: int = 0,
                 dtype: torch.dtype = torch.float32, prior: Optional[LatentPrior] = None,
                 axes: Optional[LatentAxes] = None) -> torch.jit.ScriptModule:
    """Wrap a copy of ``vae`` in ``dtype`` (eval mode, no gradients) in :class:`StreamingVAE` and script it.

    Raises ``ValueError`` if the hop is not a power of two (nn~ could never call the model). The
    caller's ``vae`` is not modified. ``torch.jit.script`` is what nn~'s libtorch loads; its
    deprecation warning in recent torch is expected and silenced here.
    """
    module = streaming_module(vae, temperature=temperature, phase=phase, seed=seed, dtype=dtype, prior=prior,
                              axes=axes)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
        scripted = torch.jit.script(module)
    return scripted


def save_verified(scripted: torch.jit.ScriptModule, path: PathLike, buffers: Optional[Sequence[int]] = None,
                  batch_sizes: Sequence[int] = (1, 4)) -> Tuple[Path, object]:
    """Save ``scripted`` to ``path`` only if ``vschaos.host.verify_model`` passes on the saved file.

    Returns ``(path, report)``. Raises :class:`ExportVerificationError` (nothing written) otherwise, and
    ``vschaos.io.DiskFullError`` (an ``OSError`` naming ``path`` and the space left; nothing written, a previous
    file intact) when the disk is full.
    """
    from vschaos.host import verify_model  # the host is optional for scripting alone

    path = Path(path)
    reports: Dict[str, object] = {}

    def verify(tmp: str) -> None:
        report = verify_model(tmp, buffers=None if buffers is None else list(buffers),
                              batch_sizes=tuple(batch_sizes))
        report.path = str(path)
        reports["report"] = report
        if not report.ok:
            raise ExportVerificationError(report, path)

    remove_stale_temporaries(path)  # what an export killed by SIGKILL or a power loss left beside it
    scripted.reset()
    with warnings.catch_warnings():  # TorchScript is what nn~ loads: torch's deprecation notice is expected
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.save.*", category=FutureWarning)
        # serialised in memory, written by Python: a full disk is a DiskFullError, not a C++ abort of the process
        atomic_jit_save(scripted, path, verify=verify)
    return path, reports["report"]


def export_model(vae: SpectralModel, path: PathLike, temperature: float = 0.0, phase: Optional[str] = None, seed: int = 0,
                 buffers: Optional[Sequence[int]] = None, batch_sizes: Sequence[int] = (1, 4),
                 prior: Optional[LatentPrior] = None, axes: Optional[LatentAxes] = None) -> Tuple[Path, object]:
    """Script ``vae`` for nn~ and write it to ``path`` after verification: ``(path, VerifyReport)``. With a
    ``prior``, the file also has ``prior`` and ``generate`` (:mod:`vschaos.export.prior`); with ``axes``,
    ``encode``/``decode`` exchange ordered, named latents (:func:`vschaos.export.latent_axes.run_latent_axes`).

    The model math runs in float32; if that fails verification (a stream whose output depends on the buffer
    size, see StreamingVAE), the export is retried in float64 and the report says so (a WARN line). Only if
    float64 fails too is the export refused, with float64's report."""
    def attempt(dtype: torch.dtype) -> Tuple[Path, object]:
        # only what is given: a stand-in script_model (tests) need not know the optional parts
        extras = {name: value for name, value in (("prior", prior), ("axes", axes)) if value is not None}
        scripted = script_model(vae, temperature=temperature, phase=phase, seed=seed, dtype=dtype, **extras)
        return save_verified(scripted, path, buffers=buffers, batch_sizes=batch_sizes)

    def failures(error: Exception) -> str:
        return ", ".join(f"{check.method or 'model'} {check.name}" for check in error.report.failures)

    (written, report), model_math = in_model_dtypes(attempt, ExportVerificationError, failures)
    report.add("model math", None, [], model_math, warning=model_math != "float32")
    return written, report
