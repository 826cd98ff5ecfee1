"""Frame-wise spectral decoder: MLP, then (optionally) transposed convolutions back to the bins."""
from typing import List, Sequence

from torch import Tensor, nn

from vschaos.models.components.encoders import MLP, conv_output_length


class SpectralDecoder(nn.Module):
    """Latent (+ condition vector) -> normalised spectral frame, (batch, in_dim) -> (batch, n_bins).

    With ``channels=[]`` (default) the MLP's last Linear writes the bins directly: sharp harmonics, fast on
    CPU. With channels (e.g. ``[32, 16, 8]``, mirroring the encoder) the MLP writes a coarse
    ``(channels[0], n_bins / stride**len)`` map that transposed convs (stride ``stride``) upsample to the bins.
    """

    def __init__(self, in_dim: int, n_bins: int, channels: Sequence[int] = (), kernel_size: int = 7,
                 stride: int = 4, hidden_dims: int = 256, nlayers: int = 2):
        super().__init__()
        self.n_bins = n_bins
        channels = list(channels)
        lengths = [n_bins]
        for _ in channels:
            lengths.append(conv_output_length(lengths[-1], kernel_size, stride))
        self.coarse_channels = channels[0] if channels else 1
        self.coarse_length = lengths[-1]
        self.mlp = MLP(in_dim, self.coarse_channels * self.coarse_length if channels else n_bins, hidden_dims, nlayers)
        layers: List[nn.Module] = []
        targets = list(reversed(lengths[:-1]))  # lengths to reach after each transposed conv
        for index, in_channels in enumerate(channels):
            out_channels = channels[index + 1] if index + 1 < len(channels) else 1
            current = lengths[len(channels) - index]
            # output_padding picks the exact target length (the conv's floor division loses up to stride-1 bins)
            natural = (current - 1) * stride - 2 * (kernel_size // 2) + kernel_size
            layers.append(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride,
                                             padding=kernel_size // 2, output_padding=targets[index] - natural))
            if out_channels != 1:
                layers.append(nn.SiLU())
        self.deconvs = nn.Sequential(*layers)
        self.uses_convs = len(layers) > 0

    def forward(self, h: Tensor) -> Tensor:
        out = self.mlp(h)
        if self.uses_convs:
            out = self.deconvs(out.view(out.shape[0], self.coarse_channels, self.coarse_length)).squeeze(1)
        return out
