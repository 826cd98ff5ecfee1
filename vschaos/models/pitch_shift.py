"""Input pitch shift: make a label-conditioned decoder follow its labels rather than the latent.

A frame-wise VAE whose decoder is conditioned on pitch learns to read the pitch from the latent
(the encoder sees the spectrum, so the latent carries it) and to ignore the labels: asked for
another note, it plays the note it was given. The remedy here is a training-time augmentation:
for a share of the labelled training frames, the ENCODER sees the frame with its frequency axis
scaled by a random ratio (a pitch shift of up to ``max_semitones``), while the decoder gets the
frame's true labels and must rebuild the original, unshifted frame. The pitch left in the latent
is then unreliable and the labels are the only dependable source of pitch, so the decoder learns
to take its pitch from them. Targets stay real frames (nothing synthetic is ever a target); the
predictors never learn from shifted frames (their latent does not match the labels).

Off unless configured (``module.input_pitch_shift``, see vschaos/configs/experiment/dgt_pitch_cond.yaml).
"""
from typing import Dict, Sequence, Tuple

import torch
from torch import Tensor


def scale_frequency_axis(magnitude: Tensor, ratio: Tensor) -> Tensor:
    """Scale each row's frequency axis: ``out[b, k] = magnitude[b, k / ratio[b]]`` (linear
    interpolation between bins; zero above the last bin).

    magnitude: ``(batch, bins)``; ratio: ``(batch,)`` > 0 (``2 ** (semitones / 12)``).
    A partial at bin ``k`` moves to bin ``k * ratio``: a pitch shift (with the spectral envelope).
    """
    bins = magnitude.shape[-1]
    source = torch.arange(bins, device=magnitude.device, dtype=magnitude.dtype).unsqueeze(0) / ratio.unsqueeze(-1)
    lower = source.floor().clamp(0, bins - 1)
    fraction = (source - lower).clamp(0, 1)
    lower_index = lower.long()
    upper_index = (lower_index + 1).clamp(max=bins - 1)
    out = (magnitude.gather(1, lower_index) * (1 - fraction) + magnitude.gather(1, upper_index) * fraction)
    return torch.where(source > bins - 1, torch.zeros_like(out), out)


class InputPitchShift:
    """Pick training frames to shift and shift them (see the module docstring).

    Args (defaults in brackets):
        probability: share of eligible frames whose encoder input is shifted [0.5].
        max_semitones: shifts are uniform in ``[-max_semitones, max_semitones]`` semitones [12].

    Eligible frames have a known label (>= 0) for every decoder-conditioning task: a frame without
    labels keeps its latent as the only source of pitch.
    """

    def __init__(self, probability: float = 0.5, max_semitones: float = 12.0):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"input_pitch_shift.probability must be in [0, 1], got {probability}")
        if not max_semitones > 0:
            raise ValueError(f"input_pitch_shift.max_semitones must be > 0, got {max_semitones}")
        self.probability = float(probability)
        self.max_semitones = float(max_semitones)

    def __call__(self, magnitude: Tensor, labels: Dict[str, Tensor],
                 decoder_tasks: Sequence[str]) -> Tuple[Tensor, Tensor]:
        """Magnitudes ``(batch, bins)`` -> (encoder input ``(batch, bins)``, shifted ``(batch,)`` bool)."""
        batch = magnitude.shape[0]
        eligible = torch.ones(batch, dtype=torch.bool, device=magnitude.device)
        if len(decoder_tasks) == 0:
            eligible = torch.zeros_like(eligible)
        for task in decoder_tasks:
            if task not in labels:
                eligible = torch.zeros_like(eligible)
            else:
                eligible = eligible & (labels[task] >= 0)
        shifted = eligible & (torch.rand(batch, device=magnitude.device) < self.probability)
        semitones = (2 * torch.rand(batch, device=magnitude.device) - 1) * self.max_semitones
        ratio = torch.where(shifted, 2.0 ** (semitones / 12.0), torch.ones_like(semitones)).to(magnitude.dtype)
        moved = scale_frequency_axis(magnitude, ratio)
        return torch.where(shifted.unsqueeze(-1), moved, magnitude), shifted
