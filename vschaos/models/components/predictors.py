"""Label predictors on the latent (vschaos2 ``MLPEncoder`` with a ``Categorical`` target)."""
from torch import Tensor, nn

from vschaos.models.components.encoders import MLP


class MLPPredictor(nn.Module):
    """MLP from the latent to class logits, (batch, latent) -> (batch, n_classes).

    The caller feeds it ``z.detach()`` (stop-gradient): its loss never reaches the encoder.
    """

    def __init__(self, latent_dim: int, n_classes: int, nlayers: int = 2, hidden_dims: int = 200,
                 target_dist: str = "Categorical"):
        super().__init__()
        if target_dist != "Categorical":
            raise ValueError(f"predictor target_dist {target_dist!r} is not supported: only 'Categorical'")
        self.n_classes = n_classes
        self.net = MLP(latent_dim, n_classes, hidden_dims, nlayers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)
