"""What each latent component does to the decoded sound, measured, and the short name it gets for it.

A component (a unit direction ``v`` of the latent space with the training latents' std ``s`` along it) is swept
from ``-SWEEP_STD`` to ``+SWEEP_STD`` std around the training mean, every other component at the mean; each point
is decoded (labels unknown) to a magnitude frame, heard as the export plays it (the frame held, phase by RTPGHI,
overlap-added and analysed again: :func:`heard_frames`), and four descriptors are read from the steady frames
(their median):

* ``loudness``: ``10 log10(sum |X|^2)`` in dB ("louder" / "quieter");
* ``centroid``: the magnitude-weighted mean frequency in Hz, its change counted in semitones ("brighter" /
  "darker");
* ``flatness``: geometric over arithmetic mean of the power within bands of ``FLATNESS_BAND_HZ``, averaged over the
  bands weighted by their power, in dB ("noisier" / "purer"): noise between partials, where the energy is (a
  flatness over the whole spectrum would follow its tilt: a brighter sound lifts a flat floor);
* ``f0``: :class:`vschaos.dsp.f0.HarmonicF0` of the frame, in semitones ("higher" / "lower"), counted only where
  it follows the sweep (a straight-line fit explaining at least ``F0_MIN_FIT`` of its variance: the tracker of a
  frame without partials jumps between candidates).

Each change is the least-squares slope over the sweep times its width (``2 * SWEEP_STD`` std), divided by the
descriptor's ``UNITS`` entry (the change counted as one clearly audible step) to compare them: the name is the
descriptor with the largest normalised change, with its sign. No SDK, no training data: the caller gives the axes.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

SWEEP_STD = 2.0  # the sweep covers -2..+2 std of the training latents along the component
SWEEP_POINTS = 9
NEGLIGIBLE_SHARE = 0.01  # components carrying less of the variance are labelled "(negligible)"
F0_MIN_FIT = 0.9
FLATNESS_BAND_HZ = 500.0
# one clearly audible step of each descriptor: the normalisation that decides which one names a component
UNITS: Dict[str, float] = {"loudness": 6.0, "centroid": 4.0, "flatness": 6.0, "f0": 1.0}
WORDS: Dict[str, Tuple[str, str]] = {"loudness": ("louder", "quieter"), "centroid": ("brighter", "darker"),
                                     "flatness": ("noisier", "purer"), "f0": ("higher", "lower")}
_EPS = 1e-12
SILENCE_DB = 60.0  # a sweep's frames this far below its loudest count as silent (their level is not a change)
HOLD_FRAMES = 16  # each sweep point is heard as its frame held this long (heard_frames)


@dataclass
class ComponentEffect:
    """One exported latent component: inlet ``index``, its share of the variance (None: unknown or not rotated),
    each descriptor's change over the sweep (``changes``: dB for loudness and flatness, semitones for centroid
    and f0; ``centroid_hz``: the centroid at both ends), and the ``name`` (a word of :data:`WORDS`,
    ``"pitch"`` for a pitch coordinate, ``"(negligible)"``, ``"(no effect)"``)."""
    index: int
    share: Optional[float]
    name: str
    descriptor: str = ""
    changes: Dict[str, float] = field(default_factory=dict)
    centroid_hz: Tuple[float, float] = (0.0, 0.0)
    slope: float = 0.0  # the named descriptor's change per std

    def amount(self) -> str:
        """The named effect's size: ``+12.3 dB``, ``812->1930 Hz``, ``+3.1 st``; empty without one."""
        if not self.descriptor:
            return ""
        if self.descriptor == "centroid":
            return f"{self.centroid_hz[0]:.0f}->{self.centroid_hz[1]:.0f} Hz"
        unit = "dB" if self.descriptor in ("loudness", "flatness") else "st"
        return f"{self.changes[self.descriptor]:+.1f} {unit}"

    def label(self) -> str:
        """Short enough for a Max/Pd inlet tooltip: ``latent 0: louder +12.3 dB, 41%``."""
        text = f"latent {self.index}: {self.name}"
        if self.descriptor:
            text += f" {self.amount()}"
        if self.share is not None:
            text += f", {100 * self.share:.0f}%" if self.share >= 0.01 else f", {100 * self.share:.1f}%"
        return text

    def sentence(self) -> str:
        """``latent 0: louder (+12.3 dB over -2..+2 std), 41% of variance``."""
        text = f"latent {self.index}: {self.name}"
        if self.descriptor:
            text += f" ({self.amount()} over -{SWEEP_STD:g}..+{SWEEP_STD:g} std)"
        if self.share is not None:
            text += f", {100 * self.share:.1f}% of variance"
        return text


def descriptors(magnitude: Tensor, sample_rate: int, n_fft: int) -> Dict[str, Tensor]:
    """Loudness (dB), centroid (Hz), flatness (dB) and f0 (Hz) of magnitude frames ``(n, bins)``: each ``(n,)``."""
    from vschaos.dsp.f0 import HarmonicF0

    magnitude = magnitude.double().clamp_min(0.0)
    power = magnitude ** 2
    freqs = torch.arange(magnitude.shape[1], dtype=torch.float64) * (sample_rate / n_fft)
    loudness = 10.0 * torch.log10(power.sum(1) + _EPS)
    centroid = (magnitude * freqs).sum(1) / (magnitude.sum(1) + _EPS)
    band = max(4, int(round(FLATNESS_BAND_HZ * n_fft / sample_rate)))
    n_bands = magnitude.shape[1] // band
    bands = power[:, :n_bands * band].reshape(power.shape[0], n_bands, band)
    band_power = bands.mean(2)
    band_flatness = torch.exp(torch.log(bands + _EPS).mean(2)) / (band_power + _EPS)
    flatness_ratio = (band_flatness * band_power).sum(1) / (band_power.sum(1) + _EPS)
    flatness = 10.0 * torch.log10(flatness_ratio + _EPS)
    tracker = HarmonicF0(n_fft, sample_rate, fmax=min(2000.0, 0.45 * sample_rate)).double()
    f0 = tracker(magnitude)
    return {"loudness": loudness, "centroid": centroid, "flatness": flatness, "f0": f0}


def heard_frames(transform: nn.Module, magnitude: Tensor) -> Tensor:
    """What a listener gets from each decoded magnitude frame ``(n, bins)`` held still: the frame repeated
    ``HOLD_FRAMES`` times, given its phase by :class:`~vschaos.dsp.streaming.RTPGHI` and overlap-added as the export
    plays it, then analysed again by ``transform``; returns the steady frames ``(n, frames, bins)`` (those whose
    window lies in the held sound). Read from the decoder's frame alone, a colour such as the noise between
    partials would be one the audio cannot have: the phase and the overlap-add fill it in."""
    from vschaos.dsp.streaming import RTPGHI, StreamingSynthesis

    n_fft, hop = int(transform.n_fft), int(transform.hop)
    held = magnitude.float().clamp_min(0.0).unsqueeze(1).expand(-1, HOLD_FRAMES, -1).contiguous()
    phase = RTPGHI(n_fft, hop, float(transform.lam))(held)
    audio = StreamingSynthesis(transform.dual.float(), hop)(torch.polar(held, phase))
    again = transform.magnitude(audio.to(transform.window.dtype))
    overlap = n_fft // hop
    return again[:, 2 * overlap: again.shape[1] - overlap]


def _fit(t: Tensor, y: Tensor) -> Tuple[float, float]:
    """Least-squares slope of ``y`` on ``t`` and the share of ``y``'s variance the line explains."""
    tc, yc = t - t.mean(), y - y.mean()
    slope = float((tc * yc).sum() / (tc * tc).sum())
    total = float((yc * yc).sum())
    explained = 1.0 if total <= _EPS else min(1.0, slope * slope * float((tc * tc).sum()) / total)
    return slope, explained


def sweep_changes(t: Tensor, values: Dict[str, Tensor]) -> Tuple[Dict[str, float], Dict[str, float], Dict[str, float]]:
    """Each descriptor's change over one sweep: ``values`` maps the names of :func:`descriptors` to their values
    ``(points,)`` at the sweep positions ``t`` (std). Returns ``(changes, slopes, fits)``: the change over the
    sweep (dB, or semitones for centroid and f0: the fitted slope times the sweep's width, never more than the
    values span), the slope per std, and the share of variance the line explains. Silence is "quiet", not -120 dB:
    loudness is floored at ``SILENCE_DB`` below the sweep's loudest point, and the colour descriptors (centroid,
    flatness, f0) are read over the audible points only (fewer than three: no change)."""
    loudest = float(values["loudness"].max())
    heard = values["loudness"] > loudest - SILENCE_DB
    width = float(t.max() - t.min())
    slopes: Dict[str, float] = {}
    fits: Dict[str, float] = {}
    spans: Dict[str, float] = {}
    for name, y in values.items():
        y, at = y.double(), t
        if name == "loudness":
            y = y.clamp_min(loudest - SILENCE_DB)
        else:
            if int(heard.sum()) < 3:
                slopes[name], fits[name] = 0.0, 0.0
                continue
            y, at = y[heard], t[heard]
        if name in ("centroid", "f0"):  # pitch-like: semitones (relative to a middle point; the slope is the same)
            y = 12.0 * torch.log2(y.clamp_min(_EPS) / y[len(y) // 2].clamp_min(_EPS))
        slopes[name], fits[name] = _fit(at, y)
        spans[name] = float(y.max() - y.min())
    # the line's change over the sweep, never more than the sweep spans (a step-like effect overshoots it)
    changes = {name: max(-spans.get(name, 0.0), min(spans.get(name, 0.0), slope * width))
               for name, slope in slopes.items()}
    return changes, slopes, fits


def measure_effects(vae: nn.Module, mean: Tensor, components: Tensor, scales: Tensor,
                    shares: Optional[Tensor], pitch_dims: int = 0) -> List[ComponentEffect]:
    """The effect of each component (rows of ``components (k, L)``, std ``scales (k,)`` along each, around
    ``mean (L,)``) on ``vae``'s decoded magnitudes; ``shares (k,)`` of the variance or None; the first
    ``pitch_dims`` rows are the pitch coordinate (named ``pitch``, not swept)."""
    k = components.shape[0]
    effects: List[ComponentEffect] = []
    t = torch.linspace(-SWEEP_STD, SWEEP_STD, SWEEP_POINTS, dtype=torch.float64)
    swept = [j for j in range(pitch_dims, k) if shares is None or float(shares[j]) >= NEGLIGIBLE_SHARE]
    decoded: Dict[str, Tensor] = {}
    if swept:
        steps = t.unsqueeze(0) * scales.double()[swept].unsqueeze(1)  # (n, points)
        z = mean.double() + steps.unsqueeze(-1) * components.double()[swept].unsqueeze(1)  # (n, points, L)
        dtype = vae.transform.norm_mean.dtype
        transform = vae.transform
        with torch.no_grad():
            features = vae.decode(z.reshape(-1, z.shape[-1]).to(dtype), {})
            heard = heard_frames(transform, transform.from_features(features))  # (n * points, steady, bins)
        steady = heard.shape[1]
        decoded = {name: value.reshape(len(swept), SWEEP_POINTS, steady).median(dim=2).values
                   for name, value in descriptors(heard.reshape(-1, heard.shape[-1]), int(transform.sample_rate),
                                                  int(transform.n_fft)).items()}
    for j in range(k):
        share = None if shares is None or j < pitch_dims else float(shares[j])
        if j < pitch_dims:
            effects.append(ComponentEffect(j, None, "pitch"))
            continue
        if j not in swept:
            effects.append(ComponentEffect(j, share, "(negligible)"))
            continue
        row = swept.index(j)
        changes, slopes, fits = sweep_changes(t, {name: values[row] for name, values in decoded.items()})
        candidates = [name for name in changes if name != "f0" or fits["f0"] >= F0_MIN_FIT]
        best = max(candidates, key=lambda name: abs(changes[name]) / UNITS[name])
        centroid = decoded["centroid"][row]
        effect = ComponentEffect(j, share, "", changes=changes, slope=slopes[best],
                                 centroid_hz=(float(centroid[0]), float(centroid[-1])))
        if abs(changes[best]) / UNITS[best] < 0.05:  # under a twentieth of an audible step: nothing to name
            effect.name = "(no effect)"
        else:
            effect.descriptor = best
            effect.name = WORDS[best][0 if changes[best] > 0 else 1]
        effects.append(effect)
    return effects
