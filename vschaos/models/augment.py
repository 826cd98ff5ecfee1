"""Data augmentation a frame-wise spectral model can use, applied to magnitude frames at training time only."""
import torch
from torch import Tensor

from vschaos.models.pitch_shift import scale_frequency_axis


def shift_pitch(magnitude: Tensor, semitones: Tensor) -> Tensor:
    """Each frame's spectrum moved along frequency by ``semitones`` (per frame), as resampling the audio would
    move every partial and formant (:func:`vschaos.models.pitch_shift.scale_frequency_axis`).

    ``magnitude`` (batch, bins), ``semitones`` (batch,) -> (batch, bins).
    """
    return scale_frequency_axis(magnitude, torch.pow(2.0, semitones.to(magnitude.dtype) / 12.0))


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
