"""Source-filter decoder: a harmonic comb at the frame's f0 plus a smooth noise envelope (DDSP-like, in the
DGT magnitude domain), and the pitch coordinate that carries f0 in the latent.

Why: a frame-wise decoder that writes each bin with its own weights (``SpectralDecoder``) cannot put a harmonic
pattern at a pitch it never produced, and convolutions over linear bins cannot either (partials spread apart as
the pitch rises). This decoder writes partial ``k`` at exactly ``k * f0``: its MLP only chooses the amplitudes of
the partials and of a noise envelope, which vary smoothly with pitch, so notes between and beyond the
recorded ones come out at the right frequencies (docs/TRAINING.md "Which preset for which sounds").

A partial of a Gaussian-window DGT is itself a Gaussian along frequency: a sinusoid at fractional bin ``c``
gives ``|X(b)| = a * exp(-pi * tfr * (b - c)^2)``, ``tfr`` the transform's time-frequency ratio. Each partial
is drawn on the few bins where that exceeds 1e-4 of its peak (``scatter_add``), so the comb costs
``batch x harmonics x ~8`` values, not ``batch x harmonics x bins``.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from vschaos.models.components.encoders import MLP

#: a partial is drawn where its Gaussian exceeds this fraction of its peak
PEAK_SUPPORT: float = 1.0e-4
#: log-amplitudes (natural log, relative to ``amplitude_reference``, a full-scale sine's peak bin) start at
#: silence (-260 dB) ...
LOG_AMPLITUDE_MIN: float = -30.0
#: ... and stop at 0 for the sum of the partials' amplitudes (so their sum of sines never exceeds full scale) and
#: at -3 for each noise band (about white noise of unit variance, whose bins average exp(-2.9) of that reference)
LOG_GAIN_MAX: float = 0.0
LOG_NOISE_MAX: float = -3.0
#: the share of a harmonic spectrum's energy that its own partials' lobes weight in (:meth:`HarmonicDecoder.voicing`):
#: for a Gaussian lobe g, sum(g * g^2) / sum(g^2) = sqrt(2/3)
PURE_HARMONIC_SHARE: float = math.sqrt(2.0 / 3.0)
#: rows per octave of :meth:`HarmonicDecoder.fit_typical`'s table
TYPICAL_STEPS_PER_OCTAVE: int = 12


def transpose_pitch(z: Tensor, semitones: float, octaves_per_unit: float) -> Tensor:
    """Latents ``(batch, latent)`` whose first entry (the pitch coordinate) is moved by ``semitones``: the
    decoder then writes the partials that much higher or lower. Shared by generation and the export."""
    return torch.cat([z[:, :1] + semitones / (12.0 * octaves_per_unit), z[:, 1:]], dim=1)


class PitchCoordinate(nn.Module):
    """The latent's pitch coordinate: ``coordinate = log2(f0 / centre_hz) / octaves_per_unit``, so the prior
    N(0, 1) spans ``centre_hz`` +- ``octaves_per_unit`` octaves per standard deviation. Defaults: 220 Hz (A3),
    1 octave per unit. ``fmin``/``fmax`` bound the f0 that a coordinate can ask for."""

    centre_hz: float
    octaves_per_unit: float
    fmin: float
    fmax: float

    def __init__(self, centre_hz: float = 220.0, octaves_per_unit: float = 1.0, fmin: float = 20.0,
                 fmax: float = 20000.0):
        super().__init__()
        values = {"centre_hz": centre_hz, "octaves_per_unit": octaves_per_unit, "fmin": fmin, "fmax": fmax}
        for name, value in values.items():
            if not (math.isfinite(float(value)) and float(value) > 0):
                raise ValueError(f"pitch coordinate: {name} must be a positive number, got {value}")
        if not fmin < fmax:
            raise ValueError(f"pitch coordinate: fmin ({fmin}) must be below fmax ({fmax})")
        self.centre_hz = float(centre_hz)
        self.octaves_per_unit = float(octaves_per_unit)
        self.fmin = float(fmin)
        self.fmax = float(fmax)

    def coordinate(self, f0_hz: Tensor) -> Tensor:
        """f0 in Hz (any shape) -> coordinate."""
        octaves = torch.log2(f0_hz.clamp(self.fmin, self.fmax) / self.centre_hz)
        # one octave per unit (the default) divides by 1, exactly: the streamed call skips the operation
        return octaves if self.octaves_per_unit == 1.0 else octaves / self.octaves_per_unit

    def hz(self, coordinate: Tensor) -> Tensor:
        """Coordinate (any shape) -> f0 in Hz, within ``[fmin, fmax]``."""
        # (not skipped at one octave per unit: exp2 of a strided view, a batch's column, rounds differently from
        # exp2 of the product's new tensor)
        return (self.centre_hz * torch.exp2(coordinate * self.octaves_per_unit)).clamp(self.fmin, self.fmax)


def band_interpolation(n_bands: int, n_bins: int, sample_rate: int) -> Tensor:
    """``(bands, bins)`` matrix of linear interpolation between ``n_bands`` points spaced evenly on the mel scale
    from 0 Hz to Nyquist: ``envelope @ matrix`` is a smooth curve over the bins."""
    if n_bands < 2:
        raise ValueError(f"noise_bands must be >= 2, got {n_bands}")

    def mel(hz: Tensor) -> Tensor:
        return 2595.0 * torch.log10(1.0 + hz / 700.0)

    bins_mel = mel(torch.linspace(0.0, sample_rate / 2.0, n_bins, dtype=torch.float64))
    points = torch.linspace(0.0, float(bins_mel[-1]), n_bands, dtype=torch.float64)
    spacing = points[1] - points[0]
    matrix = (1.0 - (bins_mel.unsqueeze(0) - points.unsqueeze(1)).abs() / spacing).clamp_min(0.0)
    return matrix.float()


class HarmonicDecoder(nn.Module):
    """Latent (first entry: the pitch coordinate, see :class:`PitchCoordinate`) + condition -> linear DGT
    magnitudes ``(batch, n_bins)``: ``n_harmonics`` partials at ``k * f0`` plus a noise envelope of
    ``noise_bands`` mel-spaced points, their log-amplitudes written by an MLP (``hidden_dims`` x ``nlayers``).

    Args: ``in_dim`` (latent + condition), ``n_bins``, ``sample_rate``, ``n_fft``, ``tfr`` (the transform's),
    ``pitch`` (the VAE's :class:`PitchCoordinate`), ``amplitude_reference`` (magnitude of log-amplitude 0,
    the transform's full-scale sine peak), ``n_harmonics`` [96], ``noise_bands`` [64], ``hidden_dims`` [512],
    ``nlayers`` [2]. Partials above the last bin are silent."""

    outputs_magnitude: bool = True
    n_bins: int
    n_harmonics: int
    bin_hz: float
    peak_rate: float
    amplitude_reference: float
    log_amplitude_min: float
    log_gain_max: float
    log_noise_max: float
    nyquist_hz: float
    pure_harmonic_share: float
    typical_fmin: float

    def __init__(self, in_dim: int, n_bins: int, sample_rate: int, n_fft: int, tfr: float, pitch: PitchCoordinate,
                 amplitude_reference: float, n_harmonics: int = 96, noise_bands: int = 64, hidden_dims: int = 512,
                 nlayers: int = 2):
        super().__init__()
        if int(n_harmonics) < 1:
            raise ValueError(f"HarmonicDecoder: n_harmonics must be >= 1, got {n_harmonics}")
        self.n_bins = int(n_bins)
        self.n_harmonics = int(n_harmonics)
        self.bin_hz = float(sample_rate) / float(n_fft)
        self.peak_rate = math.pi * float(tfr)  # |X(b)| ∝ exp(-peak_rate * (b - c)^2)
        self.amplitude_reference = float(amplitude_reference)
        self.log_amplitude_min, self.log_gain_max, self.log_noise_max = LOG_AMPLITUDE_MIN, LOG_GAIN_MAX, LOG_NOISE_MAX
        self.nyquist_hz = float(sample_rate) / 2.0
        self.pure_harmonic_share = PURE_HARMONIC_SHARE  # scripted code reads no globals
        self.pitch = pitch
        half_width = math.ceil(math.sqrt(math.log(1.0 / PEAK_SUPPORT) / self.peak_rate))
        # float, so that the model's dtype conversion carries them along (no conversion per call)
        self.register_buffer("peak_offsets", torch.arange(-half_width + 1, half_width + 1).float(), persistent=False)
        self.register_buffer("harmonic_numbers", torch.arange(1, self.n_harmonics + 1).float(), persistent=False)
        # the decoder's own partial distribution at the mean latent, one row per semitone from fmin up
        # (fit_typical; not saved: derived from the weights): the timbre :meth:`voiced` adds partials in
        self.typical_fmin = float(pitch.fmin)
        n_typical = int(math.ceil(TYPICAL_STEPS_PER_OCTAVE * math.log2(pitch.fmax / pitch.fmin))) + 1
        self.register_buffer("typical_weights", torch.zeros(n_typical, self.n_harmonics), persistent=False)
        first = torch.zeros(self.n_harmonics, dtype=torch.bool)
        first[0] = True  # the first partial always counts (see forward)
        self.register_buffer("first_harmonic", first, persistent=False)
        self.register_buffer("noise_matrix", band_interpolation(int(noise_bands), self.n_bins, int(sample_rate)),
                             persistent=False)
        # the DC and Nyquist bins stay silent: a real signal's coefficient there has phase 0 or pi, which RTPGHI
        # cannot integrate (no neighbour on one side), so a partial leaking into DC (f0 near the 30 Hz floor) would
        # make the output depend on float rounding (streaming != offline); they carry nothing audible
        edges = torch.ones(self.n_bins)
        edges[0] = 0.0
        edges[-1] = 0.0
        self.register_buffer("edge_mask", edges, persistent=False)
        # outputs: the partials' total log-amplitude, their distribution's logits, the noise bands' log-amplitudes
        self.mlp = MLP(in_dim, 1 + self.n_harmonics + int(noise_bands), hidden_dims, nlayers)
        with torch.no_grad():  # start quiet (-43 dB partials, -87 dB noise re a full-scale sine), not at full scale
            bias = self.mlp.net[-1].bias
            bias.zero_()
            bias[0] = -5.0
            bias[1 + self.n_harmonics:] = -10.0

    def comb(self, f0_hz: Tensor, amplitudes: Tensor, edges_silenced: bool = False) -> Tensor:
        """Partials ``k = 1..n_harmonics`` at ``k * f0_hz`` ``(batch,)`` with ``amplitudes`` ``(batch, n_harmonics)``
        (1 = a full-scale sine: ``amplitude_reference`` at the peak) -> magnitudes ``(batch, n_bins)``.

        ``edges_silenced``: the caller zeroes the first and last bins (DC and Nyquist) of the result, so the
        parts of partials that fall outside the bins may be added there (clamped) instead of masked: every other
        bin gets the same values, in the same order, with fewer operations per call."""
        return self.partials(f0_hz.unsqueeze(-1) * self.harmonic_numbers.to(f0_hz.dtype), amplitudes, edges_silenced)

    def partials(self, partial_hz: Tensor, amplitudes: Tensor, edges_silenced: bool = False) -> Tensor:
        """:meth:`comb` from the partials' frequencies ``k * f0_hz`` ``(batch, n_harmonics)`` (Hz)."""
        return self.place(self.lobes(partial_hz, edges_silenced), amplitudes)

    def lobes(self, partial_hz: Tensor, edges_silenced: bool = False) -> Tuple[Tensor, Tensor]:
        """Where partials at ``partial_hz`` ``(batch, K)`` fall: ``(shape (batch, K, width), index (batch, K *
        width))``, each lobe's Gaussian over the bins it covers (zero outside the bins unless ``edges_silenced``,
        see :meth:`comb`) and those bins. :meth:`place` writes amplitudes through them: partials at the same
        frequencies with several sets of amplitudes share one geometry."""
        centre = partial_hz / self.bin_hz  # (batch, K) bins
        base = centre.floor()
        bins = base.unsqueeze(-1) + self.peak_offsets.to(centre.dtype)  # (batch, K, width)
        shape = torch.exp(-self.peak_rate * (bins - centre.unsqueeze(-1)) ** 2)
        if not edges_silenced:
            shape = shape * ((bins >= 0) & (bins <= self.n_bins - 1)).to(shape.dtype)
        return shape, bins.clamp(0, self.n_bins - 1).long().flatten(1)

    def place(self, lobes: Tuple[Tensor, Tensor], amplitudes: Tensor) -> Tensor:
        """Magnitudes ``(batch, n_bins)`` of partials of ``amplitudes`` ``(batch, K)`` (1 = a full-scale sine) on
        :meth:`lobes`."""
        shape, index = lobes
        values = amplitudes.unsqueeze(-1) * shape * self.amplitude_reference
        out = shape.new_zeros(shape.shape[0], self.n_bins)
        return out.scatter_add(1, index, values.flatten(1))

    def _parts(self, h: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(partial_hz (batch, K), gain (batch, 1), weights (batch, K), noise (batch, n_bins))``: the partials'
        frequencies, their total amplitude, its distribution over them (sums to 1) and the noise envelope."""
        out = self.mlp(h)
        f0_hz = self.pitch.hz(h.select(1, 0))
        partial_hz = f0_hz.unsqueeze(-1) * self.harmonic_numbers.to(out.dtype)  # (batch, K), read twice
        # DDSP's split: a total amplitude times a distribution over the partials below Nyquist (the first always
        # counts), so the partials' amplitudes sum to at most 1: bounded by construction, whatever the weights
        gain = torch.exp(out.narrow(1, 0, 1).clamp(self.log_amplitude_min, self.log_gain_max))
        audible = (partial_hz < self.nyquist_hz) | self.first_harmonic
        weights = torch.softmax(torch.where(audible, out.narrow(1, 1, self.n_harmonics), -math.inf), dim=-1)
        noise_log = out.narrow(1, 1 + self.n_harmonics, out.shape[1] - 1 - self.n_harmonics).clamp(
            self.log_amplitude_min, self.log_noise_max)
        noise = torch.exp(noise_log) @ self.noise_matrix.to(out.dtype) * self.amplitude_reference
        return partial_hz, gain, weights, noise

    def forward(self, h: Tensor) -> Tensor:
        partial_hz, gain, weights, noise = self._parts(h)
        # edge_mask below silences DC and Nyquist, where the comb may then put what falls outside the bins
        harmonics = self.partials(partial_hz, gain * weights, edges_silenced=True)
        return (harmonics + noise) * self.edge_mask.to(noise.dtype)

    def voicing(self, magnitude: Tensor, f0_hz: Tensor) -> Tensor:
        """How harmonic at ``f0_hz`` ``(batch,)`` the frames ``magnitude`` ``(batch, n_bins)`` are, in ``[0, 1]``:
        the share of their energy under the lobes of partials at ``k * f0_hz`` (each lobe's weight its Gaussian,
        1 at the partial), 0 at the share white noise gives (the lobes' mean weight) and 1 at the share of a
        spectrum of partials at exactly those frequencies (:data:`PURE_HARMONIC_SHARE`). A frame whose partials
        are so dense that the lobes cover it all reads 0 (it cannot be told from noise)."""
        partial_hz = f0_hz.unsqueeze(-1) * self.harmonic_numbers.to(magnitude.dtype)
        below = (partial_hz < self.nyquist_hz).to(magnitude.dtype)
        lobes = (self.partials(partial_hz, below) / self.amplitude_reference).clamp_max(1.0)
        energy = magnitude * magnitude
        share = (lobes * energy).sum(dim=-1) / energy.sum(dim=-1).clamp_min(1e-20)
        noise_share = lobes.mean(dim=-1)
        return ((share - noise_share) / (self.pure_harmonic_share - noise_share).clamp_min(1e-3)).clamp(0.0, 1.0)

    @torch.jit.unused
    def typical_f0_hz(self) -> Tensor:
        """The f0 of each row of the typical table ``(rows,)``: a semitone apart from the pitch range's floor."""
        steps = torch.arange(self.typical_weights.shape[0], dtype=torch.float64)
        return (self.typical_fmin * 2.0 ** (steps / TYPICAL_STEPS_PER_OCTAVE)).float()

    @torch.jit.unused
    def fit_typical(self, inputs: Tensor) -> None:
        """Store the partial distributions of the decoder inputs ``inputs`` ``(rows, in_dim)`` (the mean latent at
        each :meth:`typical_f0_hz`, see ``SpectralVAE.fit_typical_timbre``)."""
        with torch.no_grad():
            _, _, weights, _ = self._parts(inputs.to(self.typical_weights.dtype))
            self.typical_weights.copy_(weights)

    def voiced(self, h: Tensor, voicing: Tensor, energy_floor: Optional[Tensor] = None) -> Tensor:
        """:meth:`forward` with at least ``voicing`` ``(batch,)`` of each frame's energy in partials at the f0: where
        the decoder gives them less (an input unlike the training sounds, which it answers with noise or with a
        partial far above the f0), the missing share is added in partials distributed as the decoder's own at the
        mean latent and that f0 (:meth:`fit_typical`: the model's typical timbre there), and taken from the noise;
        the frame keeps the decoder's energy, or ``voicing * energy_floor`` ``(batch, 1)`` where that is more (so
        that level follow, which raises a frame by a bounded gain, brings the partials of a frame the decoder left
        near silent to the input's level: ``vschaos.dsp.functional.follow_floor``). A periodic input thus stays
        periodic at its measured pitch, in a timbre of the model."""
        partial_hz, gain, weights, noise = self._parts(h)
        lobes = self.lobes(partial_hz, edges_silenced=True)  # the decoder's partials and the added ones share it
        own = self.place(lobes, gain * weights)
        rows = torch.log2(partial_hz.select(1, 0) / self.typical_fmin) * 12.0  # TYPICAL_STEPS_PER_OCTAVE
        index = rows.round().clamp(0, self.typical_weights.shape[0] - 1).long()
        added = self.place(lobes, self.typical_weights.to(h.dtype).index_select(0, index))
        own_energy = (own * own).sum(dim=-1, keepdim=True)
        noise_energy = (noise * noise).sum(dim=-1, keepdim=True)
        added_energy = (added * added).sum(dim=-1, keepdim=True).clamp_min(1e-20)
        share = voicing.unsqueeze(-1)
        energy = own_energy + noise_energy
        least: Optional[Tensor] = None
        if energy_floor is not None:  # the same bits as without it wherever the decoder's frame is loud enough
            least = share * energy_floor
            energy = torch.maximum(energy, least)
        missing = (share * energy - own_energy).clamp_min(0.0)
        scale = torch.sqrt((noise_energy - missing).clamp_min(0.0) / noise_energy.clamp_min(1e-20))
        edges = self.edge_mask.to(noise.dtype)
        plain = (own + noise) * edges  # what forward gives
        out = (own + added * torch.sqrt(missing / added_energy) + noise * scale) * edges
        # magnitudes on the same bins add up to more than their energies: back to the plain frame's energy
        target = (plain * plain).sum(dim=-1, keepdim=True)
        if least is not None:
            target = torch.maximum(target, least)
        return out * torch.sqrt(target / (out * out).sum(dim=-1, keepdim=True).clamp_min(1e-20))
