"""Data augmentation a frame-wise spectral model can use, applied to magnitude frames at training time only."""
import math
from typing import Dict, Optional, Tuple

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
    return _augment_frames(magnitude, None, pitch_semitones, gain_db, generator)[0]


def _augment_frames(magnitude: Tensor, f0_hz: Optional[Tensor], pitch_semitones: float, gain_db: float,
                    generator: "torch.Generator | None") -> Tuple[Tensor, Optional[Tensor]]:
    """:func:`augment_frames`, and the frames' f0s ``(batch,)`` (or None) moved by the same shifts."""
    batch = magnitude.shape[0]
    out = magnitude
    if pitch_semitones > 0:
        shifts = (torch.rand(batch, generator=generator, device=magnitude.device) * 2 - 1) * pitch_semitones
        out = shift_pitch(out, shifts)
        f0_hz = None if f0_hz is None else f0_hz * torch.pow(2.0, shifts.to(f0_hz.dtype) / 12.0)
    if gain_db > 0:
        gains = (torch.rand(batch, 1, generator=generator, device=magnitude.device) * 2 - 1) * gain_db
        out = out * torch.pow(10.0, gains / 20.0).to(out.dtype)
    return out, f0_hz


def augment_batch(batch: Dict, note_semitones: int, pitch_semitones: float, gain_db: float, timbre_db: float,
                  generator: "torch.Generator | None" = None) -> Dict:
    """A training batch ``{"magnitude", "labels"[, "f0"]}`` through the augmentations a module's options ask for,
    in this order: :func:`shift_notes`, :func:`augment_frames`, :func:`recolour` (zeros turn each off). A batch's
    ``f0`` (the frames' f0s, read from a longer window than the frames) moves with its frames' pitch."""
    batch = dict(batch)
    if note_semitones > 0:
        batch["magnitude"], batch["labels"], shifts = _shift_notes(batch["magnitude"], batch.get("labels", {}),
                                                                   note_semitones, generator)
        if "f0" in batch:
            batch["f0"] = batch["f0"] * torch.pow(2.0, shifts.to(batch["f0"].dtype) / 12.0)
    if pitch_semitones > 0 or gain_db > 0:
        batch["magnitude"], f0_hz = _augment_frames(batch["magnitude"], batch.get("f0"), pitch_semitones, gain_db,
                                                    generator)
        if f0_hz is not None:
            batch["f0"] = f0_hz
    if timbre_db > 0:
        batch["magnitude"] = recolour(batch["magnitude"], timbre_db, generator)
    return batch


#: cosines over the warped frequency axis that make a random timbre curve (:func:`recolour`)
TIMBRE_COMPONENTS: int = 3
#: the largest ``module.augment_timbre_db`` accepted: microphones and rooms colour a sound by far less
MAX_TIMBRE_DB: float = 60.0
#: the warp's knee in bins per bins of the frame: ``log1p(bin / knee)``, mel-like (~700 Hz at 44.1 kHz)
TIMBRE_KNEE: float = 1.0 / 32.0


def checked_timbre_db(max_db: float) -> float:
    """``module.augment_timbre_db`` as a float within ``[0, MAX_TIMBRE_DB]``; ValueError naming it otherwise."""
    if not 0 <= float(max_db) <= MAX_TIMBRE_DB:
        raise ValueError(f"module.augment_timbre_db must lie in [0, {MAX_TIMBRE_DB:g}] dB (0 = off), got {max_db}")
    return float(max_db)


def warped_axis(bins: int, device: "torch.device | None" = None) -> Tensor:
    """The mel-like frequency axis of the timbre curves, ``(bins,)``: ``log1p(bin / knee)`` scaled to 0 at DC
    and 1 at the last bin (:data:`TIMBRE_KNEE`)."""
    k = torch.arange(bins, dtype=torch.float32, device=device)
    knee = bins * TIMBRE_KNEE
    return torch.log1p(k / knee) / math.log1p((bins - 1) / knee)


def timbre_curves(batch: int, bins: int, max_db: float, generator: "torch.Generator | None" = None,
                  device: "torch.device | None" = None) -> Tensor:
    """Random smooth spectral envelopes in dB, ``(batch, bins)`` on ``device``: a sum of
    :data:`TIMBRE_COMPONENTS` cosines ``cos(pi j u)`` of the :func:`warped_axis` ``u`` (a tilt, then broad
    bumps), coefficients uniform in [-1, 1], minus its mean over the bins, scaled so that its largest magnitude
    is uniform in ``[0, max_db]``. Zero mean over the bins is not zero mean in energy: most bins lie high on the
    warped axis, so a curve also raises or lowers a frame's broadband level, by up to about ``max_db``. The
    draws come from ``generator`` (on its own device, then moved) or, without one, from the default generator
    of ``device``."""
    warped = warped_axis(bins, device)
    orders = torch.arange(1, TIMBRE_COMPONENTS + 1, dtype=torch.float32, device=device)
    basis = torch.cos(math.pi * orders.unsqueeze(-1) * warped)  # (components, bins)
    # drawn where they are used unless a generator says otherwise: no host-to-device copy per training step
    where = generator.device if generator is not None else device
    coefficients = torch.rand(batch, TIMBRE_COMPONENTS, generator=generator, device=where).to(device) * 2 - 1
    curves = coefficients @ basis
    curves = curves - curves.mean(dim=-1, keepdim=True)
    size = torch.rand(batch, 1, generator=generator, device=where).to(device) * max_db
    return curves / curves.abs().amax(dim=-1, keepdim=True).clamp_min(1e-6) * size


def recolour(magnitude: Tensor, max_db: float, generator: "torch.Generator | None" = None) -> Tensor:
    """Each frame through its own random smooth equaliser (:func:`timbre_curves`, up to ``max_db`` dB): a
    model trained on a few instruments in one room then meets other instruments, microphones and rooms nearer
    what it learnt. ``magnitude`` (batch, bins) -> (batch, bins); ``max_db`` <= 0 returns it unchanged."""
    if max_db <= 0:
        return magnitude
    curves = timbre_curves(magnitude.shape[0], magnitude.shape[1], max_db, generator, magnitude.device)
    return magnitude * torch.pow(10.0, curves / 20.0).to(magnitude.dtype)


def shift_notes(magnitude: Tensor, labels: Dict[str, Tensor], max_semitones: int,
                generator: "torch.Generator | None" = None) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Each frame moved along frequency by a whole number of semitones, uniform in ``[-max_semitones,
    max_semitones]``, and its ``pitch`` / ``octave`` labels (``vschaos.notes``: ``midi % 12``, ``midi // 12``)
    moved with it, so a pitch-conditioned decoder sees every note near the recorded ones, labelled right.

    A frame whose octave is known but not its pitch class stays where it is (its new octave is unknown), as
    does one that would leave MIDI 0..127; unlabelled frames move freely. ``magnitude`` (batch, bins),
    ``labels`` ``{task: (batch,) long, -1 missing}`` -> both moved (other tasks' labels unchanged).
    """
    moved, labels, _ = _shift_notes(magnitude, labels, max_semitones, generator)
    return moved, labels


def _shift_notes(magnitude: Tensor, labels: Dict[str, Tensor], max_semitones: int,
                 generator: "torch.Generator | None") -> Tuple[Tensor, Dict[str, Tensor], Tensor]:
    """:func:`shift_notes`, and the shift of each frame in semitones ``(batch,)`` (long)."""
    batch = magnitude.shape[0]
    shifts = torch.randint(-max_semitones, max_semitones + 1, (batch,), generator=generator).to(magnitude.device)
    pitch, octave = labels.get("pitch"), labels.get("octave")
    out = dict(labels)
    if octave is not None:
        pitch_known = pitch >= 0 if pitch is not None else torch.zeros_like(octave, dtype=torch.bool)
        both = (octave >= 0) & pitch_known
        moved = octave * 12 + (pitch if pitch is not None else 0) + shifts
        stays = ((octave >= 0) & ~pitch_known) | (both & ((moved < 0) | (moved > 127)))
        shifts = torch.where(stays, torch.zeros_like(shifts), shifts)
        if pitch is not None:
            moved = octave * 12 + pitch + shifts
            out["octave"] = torch.where(both, torch.div(moved, 12, rounding_mode="floor"), octave)
    if pitch is not None:
        out["pitch"] = torch.where(pitch >= 0, (pitch + shifts) % 12, pitch)
    return shift_pitch(magnitude, shifts.to(magnitude.dtype)), out, shifts
