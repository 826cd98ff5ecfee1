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


class UpsamplingConvDecoder(nn.Module):
    """Latent (+ condition) -> normalised spectral frame through convolutions along frequency that mirror the
    encoder: (batch, in_dim) -> (batch, n_bins).

    An MLP writes a coarse map ``(channels[0], n_bins / stride**len(channels))``; each stage upsamples it by
    ``stride`` (linear interpolation to the exact length of the matching encoder stage) and applies a
    ``Conv1d(kernel_size)`` + SiLU; a last ``Conv1d`` writes one channel per bin. Every layer after the MLP
    uses the same weights at every bin, so a spectral shape learnt at one frequency can be written at
    another (the MLP decoder's last Linear has separate weights per bin). Upsampling then convolving has no
    checkerboard pattern, unlike strided transposed convolutions. Defaults: channels (32, 16, 8), kernel 7,
    stride 4, MLP 512 x 2.
    """

    def __init__(self, in_dim: int, n_bins: int, channels: Sequence[int] = (32, 16, 8), kernel_size: int = 7,
                 stride: int = 4, hidden_dims: int = 512, nlayers: int = 2):
        super().__init__()
        channels = list(channels)
        if not channels:
            raise ValueError("UpsamplingConvDecoder needs at least one channel count (channels: [32, 16, 8])")
        if kernel_size % 2 != 1:
            raise ValueError(f"UpsamplingConvDecoder: kernel_size must be odd (same-length convs), got {kernel_size}")
        self.n_bins = n_bins
        lengths = [n_bins]
        for _ in channels:
            lengths.append(conv_output_length(lengths[-1], kernel_size, stride))
        self.coarse_channels = channels[0]
        self.coarse_length = lengths[-1]
        self.lengths: List[int] = list(reversed(lengths[:-1]))  # length after each upsampling stage
        self.mlp = MLP(in_dim, self.coarse_channels * self.coarse_length, hidden_dims, nlayers)
        outs = channels[1:] + [channels[-1]]
        self.stages = nn.ModuleList(
            [nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2) for c_in, c_out in zip(channels, outs)])
        self.activation = nn.SiLU()
        self.head = nn.Conv1d(outs[-1], 1, kernel_size, padding=kernel_size // 2)

    def forward(self, h: Tensor) -> Tensor:
        out = self.mlp(h).view(h.shape[0], self.coarse_channels, self.coarse_length)
        for index, conv in enumerate(self.stages):
            out = nn.functional.interpolate(out, size=self.lengths[index], mode="linear", align_corners=True)
            out = self.activation(conv(out))
        return self.head(out).squeeze(1)


DECODER_TYPES = ("SpectralDecoder", "UpsamplingConvDecoder")


def make_decoder(in_dim: int, n_bins: int, type: str = "SpectralDecoder", **kwargs) -> nn.Module:
    """The decoder named by ``model.decoder.type`` (default ``SpectralDecoder``, what configs without the key
    get), built with the remaining ``model.decoder`` keys."""
    if type == "SpectralDecoder":
        return SpectralDecoder(in_dim, n_bins, **kwargs)
    if type == "UpsamplingConvDecoder":
        return UpsamplingConvDecoder(in_dim, n_bins, **kwargs)
    raise ValueError(f"model.decoder.type {type!r} is not one of {', '.join(DECODER_TYPES)}")
