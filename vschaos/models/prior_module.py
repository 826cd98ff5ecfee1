"""Lightning module of the latent prior (:mod:`vschaos.models.prior`): masked NLL over padded sequence chunks."""
from typing import List, Optional

import lightning as L
import torch
from torch import Tensor

from vschaos.models.lightning import NonFiniteTrainingError
from vschaos.models.prior import LatentPrior


class PriorModule(L.LightningModule):
    """Lightning module of :class:`LatentPrior`: batches ``(z (batch, T, latent_dim), labels (batch, T, n_labels)
    int64 (-1: unknown), mask (batch, T))``, loss the mean NLL (latents and known labels) per valid frame; logs
    ``train_nll`` and ``val_nll``."""

    def __init__(self, latent_dim: int, hidden: int = 64, layers: int = 1, lr: float = 3e-3,
                 label_dims: Optional[List[int]] = None, components: int = 1) -> None:
        super().__init__()
        self.prior = LatentPrior(latent_dim, hidden, layers, label_dims, components)
        self.lr = float(lr)

    def _loss(self, batch) -> Tensor:
        z, labels, mask = batch
        latent_nll, label_nll = self.prior.nll(z, labels)
        return ((latent_nll + label_nll) * mask).sum() / mask.sum().clamp_min(1.0)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        loss = self._loss(batch)
        if not torch.isfinite(loss):
            raise NonFiniteTrainingError("the prior's loss is NaN/Inf (latents out of range? try a lower lr=); "
                                         "nothing better than the last prior.pt was kept")
        self.log("train_nll", loss, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.log("val_nll", self._loss(batch), prog_bar=True, batch_size=batch[0].shape[0])

    def configure_optimizers(self):
        return torch.optim.Adam(self.prior.parameters(), lr=self.lr)
