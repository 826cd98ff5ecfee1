"""The model contract: what generation, export and the commands need of a trained spectral model.

:class:`~vschaos.models.vae.SpectralVAE` is the implementation; :class:`PassThroughModel` the simplest one (the
tests' double, and what benchmarks measure a front end's delays with). Anything that satisfies :class:`SpectralModel` can be reconstructed
through, decoded along latent paths and exported for nn~. For the export it must also be
an ``nn.Module`` (it is copied, put in eval mode and frozen) and TorchScript-scriptable, since
``encode``/``decode``/``predict``/``complete_labels`` are scripted inside the nn~ module.

Shapes: ``features`` are normalised spectral frames ``(batch, bins)`` (``transform.to_features``),
latents ``(batch, latent_dim)``, labels ``{task: LongTensor (batch,)}`` with -1 = missing.
"""
from typing import Dict, List, Optional, Protocol, Tuple

import torch
from torch import Tensor, nn

from vschaos.dsp.transforms import SpectralTransform


class SpectralModel(Protocol):
    """A frame-wise spectral encoder/decoder with a diagonal-Normal latent and optional label tasks.

    Task lists are in config order (the export's inlet order follows them); ``task_dims`` gives
    the number of classes of every task that appears in them.
    """

    transform: SpectralTransform
    latent_dim: int
    n_bins: int
    encoder_tasks: List[str]
    decoder_tasks: List[str]
    predicted_tasks: List[str]
    spectrum_tasks: List[str]  # predicted from the input frames, not the latent: a bare latent leaves them missing
    task_dims: Dict[str, int]

    def encode(self, features: Tensor, labels: Dict[str, Tensor], f0_hz: Optional[Tensor] = None
               ) -> Tuple[Tensor, Tensor]:
        """Features ``(batch, bins)`` -> posterior mean and std ``(batch, latent_dim)``. ``f0_hz`` ``(batch,)``:
        the frames' f0 from :meth:`audio_f0` (a model that measures its own frames may ignore it)."""
        ...

    def audio_f0(self, audio: Tensor) -> Optional[Tensor]:
        """The f0s ``(batch, frames)`` :meth:`encode` needs for the frames of ``audio`` ``(batch, time)`` when the
        model reads them from a longer window than its frames (``transform.pitch_window``), else None."""
        ...

    def decode(self, z: Tensor, labels: Dict[str, Tensor], logits: Optional[Dict[str, Tensor]] = None) -> Tensor:
        """Latent ``(batch, latent_dim)`` -> features ``(batch, bins)``; missing decoder labels are
        completed from the model's predictions (``logits`` when already computed)."""
        ...

    def predict(self, z: Tensor, features: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Logits ``(batch, classes)`` per predicted task, from the latent and (for predictors that read
        the spectrum) the frames' ``features``; without features those tasks are absent."""
        ...

    def complete_labels(self, z: Tensor, labels: Dict[str, Tensor],
                        logits: Optional[Dict[str, Tensor]] = None) -> Dict[str, Tensor]:
        """Copy of ``labels`` with missing (-1 or absent) predicted tasks filled by the predictions' argmax."""
        ...


# The protocol's attributes and methods, read from the class above (not written twice).
CONTRACT_MEMBERS: Tuple[str, ...] = tuple(SpectralModel.__annotations__) + tuple(
    name for name, value in vars(SpectralModel).items() if callable(value) and not name.startswith("_"))


def check_model(model: object, purpose: str) -> SpectralModel:
    """``model`` itself if it has every member of :class:`SpectralModel`, else ``TypeError`` naming
    what it lacks. (``hasattr``, not ``isinstance``: from Python 3.12 a runtime protocol check no
    longer sees an ``nn.Module``'s submodules and buffers.)"""
    missing = [name for name in CONTRACT_MEMBERS if not hasattr(model, name)]
    if not missing:
        return model  # type: ignore[return-value]
    raise TypeError(f"{purpose} needs a spectral model (vschaos.models.contract.SpectralModel); "
                    f"{type(model).__name__} lacks {', '.join(missing)}")


class PassThroughModel(nn.Module):
    """The simplest :class:`SpectralModel`: latent = features, std = ``std``, decode = identity, no label tasks.
    Its output is known exactly (gain 1, delays from ``transform`` alone; with the input's phase, ``keep_input``, an
    export's ``forward`` is its input ``forward_delay`` late) and it scripts: the tests' double, and what a host or
    a benchmark measures a front end's delays with."""

    encoder_tasks: List[str]
    decoder_tasks: List[str]
    predicted_tasks: List[str]
    spectrum_tasks: List[str]
    task_dims: Dict[str, int]

    def __init__(self, transform: nn.Module, std: float = 1.0):
        super().__init__()
        self.transform = transform
        self.n_bins = int(transform.n_bins)
        self.latent_dim = int(transform.n_bins)
        self.std = float(std)
        self.encoder_tasks, self.decoder_tasks, self.predicted_tasks, self.spectrum_tasks = [], [], [], []
        self.task_dims = {}

    def encode(self, features: Tensor, labels: Dict[str, Tensor], f0_hz: Optional[Tensor] = None
               ) -> Tuple[Tensor, Tensor]:
        return features, torch.full_like(features, self.std)

    @torch.jit.unused
    def audio_f0(self, audio: Tensor) -> Optional[Tensor]:
        return None

    def decode(self, z: Tensor, labels: Dict[str, Tensor], logits: Optional[Dict[str, Tensor]] = None) -> Tensor:
        return z

    def predict(self, z: Tensor, features: Optional[Tensor] = None) -> Dict[str, Tensor]:
        return {}

    def complete_labels(self, z: Tensor, labels: Dict[str, Tensor],
                        logits: Optional[Dict[str, Tensor]] = None) -> Dict[str, Tensor]:
        return labels
