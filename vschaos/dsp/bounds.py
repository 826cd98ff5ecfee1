"""The model's documented limits: every value that crosses a model boundary is finite and bounded.

Used by ``SpectralVAE`` (training, generation and export share them: one front end, docs/ARCHITECTURE.md §2) and
by the scripted nn~ module for what only a live host can send (NaN/Inf audio, any latent, any
attribute value). TorchScript-safe pure functions; the limits are plain constants (passed as default
arguments: TorchScript cannot read module globals) so that docs/EXPORT.md "Limits" can quote them.

=====================  =========  ===========================================================
limit                  value      where
=====================  =========  ===========================================================
``INPUT_LIMIT``        1e4        audio inlets of ``encode``/``forward``: NaN/Inf -> 0, clamped
                                  to +-1e4 (80 dB above full scale)
``FEATURE_LIMIT``      100        normalised features entering the encoder (z-scores: training
                                  data sits within a few units)
``LATENT_LIMIT``       50         latents entering the decoder and leaving ``encode``: NaN/Inf
                                  -> 0, clamped to +-50 (the prior is N(0, 1))
``MAGNITUDE_HEADROOM`` 4          decoded magnitudes <= 4 x the largest DGT magnitude of a
                                  full-scale input (``sum(window)``), clamped in the feature
                                  domain before the inverse contrast
``MAX_TEMPERATURE``    10         ``set_temperature`` refuses larger values (returns -1)
``OUTPUT_KNEE``        2          audio outlets are untouched within +-2 (twice full scale) ...
``OUTPUT_LIMIT``       4          ... and soft-clipped (tanh) beyond it, never past +-4
=====================  =========  ===========================================================
"""
import math

import torch
from torch import Tensor

INPUT_LIMIT: float = 1.0e4
FEATURE_LIMIT: float = 100.0
LATENT_LIMIT: float = 50.0
MAGNITUDE_HEADROOM: float = 4.0
MAX_TEMPERATURE: float = 10.0
OUTPUT_KNEE: float = 2.0
OUTPUT_LIMIT: float = 4.0


def bounded(x: Tensor, limit: float) -> Tensor:
    """``x`` with NaN and +-Inf -> 0 (a host's signal can carry them: they mean nothing), then clamped
    to ``[-limit, limit]`` (any shape)."""
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).clamp(-limit, limit)


def bounded_audio_input(x: Tensor, limit: float = INPUT_LIMIT) -> Tensor:
    """Audio inlet values (any shape) -> within ``+-INPUT_LIMIT``; NaN/Inf -> 0."""
    return bounded(x, limit)


def bounded_features(features: Tensor, limit: float = FEATURE_LIMIT) -> Tensor:
    """Normalised features ``(..., bins)`` entering the encoder -> within ``+-FEATURE_LIMIT``; NaN/Inf -> 0."""
    return bounded(features, limit)


def bounded_latent(z: Tensor, limit: float = LATENT_LIMIT) -> Tensor:
    """Latents ``(..., latent)`` -> within ``+-LATENT_LIMIT``; NaN/Inf -> 0 (the prior's mean)."""
    return bounded(z, limit)


def magnitude_ceiling(window: Tensor, headroom: float = MAGNITUDE_HEADROOM) -> Tensor:
    """Largest decoded magnitude allowed (a 0-d tensor): ``MAGNITUDE_HEADROOM * sum(|window|)``.

    ``sum(|window|)`` bounds ``|X|`` for any input within full scale (``|x| <= 1``)."""
    return window.abs().sum() * headroom


def bounded_decoded_features(features: Tensor, floor: Tensor, ceiling: Tensor) -> Tensor:
    """Decoded features ``(..., bins)`` -> within ``[floor, ceiling]`` per bin (each ``(bins,)``):
    ``floor`` is the feature of a zero magnitude, ``ceiling`` that of :func:`magnitude_ceiling`, so
    the inverse contrast can neither overflow nor see NaN. NaN -> the floor (silence).

    Below the floor the inverse contrast gives a zero magnitude anyway, and training targets lie below
    the ceiling, so neither clamp changes what a model learns."""
    # NaN -> -inf then the floor; +-Inf -> the largest finite floats, then the ceiling / the floor
    return torch.clamp(torch.nan_to_num(features, nan=-math.inf), min=floor, max=ceiling)


def soft_clip(audio: Tensor, knee: float = OUTPUT_KNEE, limit: float = OUTPUT_LIMIT) -> Tensor:
    """Audio outlets (any shape) -> finite, identical within ``+-OUTPUT_KNEE``, smoothly saturating
    (tanh, continuous slope 1 at the knee) towards ``+-OUTPUT_LIMIT`` beyond it; NaN -> 0."""
    x = torch.nan_to_num(audio, nan=0.0)  # +-Inf -> +-the largest float: tanh -> 1, i.e. +-limit
    size = x.abs()
    if float(size.amax()) <= knee:  # usual audio, all within the knee: x as the formula below returns it, in
        return x  # four operations instead of ten (each costs time on every streamed call)
    room = limit - knee
    # knee + room * tanh(excess / room) equals the knee within it (>= |x|) and lies below |x| beyond it
    saturated = torch.tanh((size - knee).clamp_min(0.0) / room) * room + knee
    return torch.copysign(torch.minimum(size, saturated), x)
