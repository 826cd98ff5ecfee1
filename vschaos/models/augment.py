"""Data augmentation a frame-wise spectral model can use, applied to magnitude frames at training time only."""
import torch
from torch import Tensor


def shift_pitch(magnitude: Tensor, semitones: Tensor) -> Tensor:
    """Each frame's spectrum moved along frequency by ``semitones`` (per frame): bin ``k`` takes the
    magnitude at ``k / 2**(semitones/12)`` (linear interpolation; zero above the source's top bin), as
    resampling the audio would do to every partial and formant.

    ``magnitude`` (batch, bins), ``semitones`` (batch,) -> (batch, bins).
    """
    n_bins = magnitude.shape[-1]
    ratio = torch.pow(2.0, semitones.to(magnitude.dtype) / 12.0)[:, None]
    source = torch.arange(n_bins, device=magnitude.device, dtype=magnitude.dtype)[None, :] / ratio
    below = source.floor().clamp(0, n_bins - 1)
    frac = (source - below).clamp(0, 1)
    low = torch.gather(magnitude, 1, below.long())
    high = torch.gather(magnitude, 1, (below + 1).clamp(max=n_bins - 1).long())
    shifted = low + (high - low) * frac
    return torch.where(source <= n_bins - 1, shifted, torch.zeros_like(shifted))


def augment_frames(magnitude: Tensor, pitch_semitones: float, gain_db: float,
                   generator: "torch.Generator | None" = None) -> Tensor:
    """Random pitch shift, uniform in ``[-pitch_semitones, pitch_semitones]``, and gain, uniform in
    ``[-gain_db, gain_db]`` dB, drawn per frame. (batch, bins) -> (batch, bins); zeros turn both off."""
    batch = magnitude.shape[0]
    out = magnitude
    if pitch_semitones > 0:
        shifts = (torch.rand(batch, generator=generator, device=magnitude.device) * 2 - 1) * pitch_semitones
        out = shift_pitch(out, shifts)
    if gain_db > 0:
        gains = (torch.rand(batch, 1, generator=generator, device=magnitude.device) * 2 - 1) * gain_db
        out = out * torch.pow(10.0, gains / 20.0).to(out.dtype)
    return out
