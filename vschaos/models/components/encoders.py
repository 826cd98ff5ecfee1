"""Frame-wise spectral encoder: strided 1-D convolutions along the frequency axis, then an MLP."""
from typing import List, Sequence

import torch
from torch import Tensor, nn


def conv_output_length(length: int, kernel_size: int, stride: int) -> int:
    """Length after ``Conv1d(kernel_size, stride, padding=kernel_size // 2)``."""
    return (length + 2 * (kernel_size // 2) - kernel_size) // stride + 1


class MLP(nn.Module):
    """``nlayers`` hidden Linear+activation layers of width ``hidden_dims``, then a Linear to ``out_dim``.

    (batch, in_dim) -> (batch, out_dim). ``nlayers=0`` is a single Linear.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dims: int = 256, nlayers: int = 2):
        super().__init__()
        layers: List[nn.Module] = []
        width = in_dim
        for _ in range(nlayers):
            layers += [nn.Linear(width, hidden_dims), nn.SiLU()]
            width = hidden_dims
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SpectralEncoder(nn.Module):
    """Normalised spectral frame (+ condition vector) -> raw posterior parameters.

    (batch, n_bins), (batch, cond_dim) -> (batch, out_dim). Each conv layer has ``channels[i]`` filters of
    ``kernel_size`` bins and stride ``stride`` (defaults: 8/16/32 channels, kernel 7, stride 4), so the
    frequency axis shrinks by ``stride`` per layer before the MLP; ``channels=[]`` gives a pure MLP.
    """

    def __init__(self, n_bins: int, out_dim: int, channels: Sequence[int] = (8, 16, 32), kernel_size: int = 7,
                 stride: int = 4, hidden_dims: int = 256, nlayers: int = 2, cond_dim: int = 0):
        super().__init__()
        layers: List[nn.Module] = []
        in_channels, length = 1, n_bins
        for out_channels in channels:
            layers += [nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2), nn.SiLU()]
            in_channels, length = out_channels, conv_output_length(length, kernel_size, stride)
        self.convs = nn.Sequential(*layers)
        self.uses_convs = len(layers) > 0
        self.flat_dim = in_channels * length
        self.cond_dim = cond_dim
        self.mlp = MLP(self.flat_dim + cond_dim, out_dim, hidden_dims, nlayers)

    def forward(self, features: Tensor, condition: Tensor) -> Tensor:
        h = features
        if self.uses_convs:
            h = self.convs(features.unsqueeze(1)).flatten(1)
        if self.cond_dim > 0:
            h = torch.cat([h, condition], dim=-1)
        return self.mlp(h)
