"""The model's spectral front end: Gaussian-window DGT magnitude, log contrast, normalisation.

One object serves training (data cache, losses), generation (offline reconstruction) and export
(it is scripted inside the model), so the front end has a single definition (docs/ARCHITECTURE.md, sections 1-2).
"""
import math
from typing import Dict, Optional

import torch
from torch import Tensor, nn

from vschaos.dsp import functional as dsp
from vschaos.dsp.phase_methods import RECONSTRUCTION_METHODS
from vschaos.dsp.phase import GLA_MOMENTUM, griffin_lim_consistent, pghi, with_magnitude

#: Bump when the meaning of ``magnitude()`` changes, so that spectral frame caches rebuild.
TRANSFORM_VERSION: int = 1
#: the longest ``pitch_window``: 1.5 s at 44.1 kHz, far beyond any note's f0 (a huge one only costs memory)
MAX_PITCH_WINDOW: int = 2 ** 16



class SpectralTransform(nn.Module):
    """Gaussian-window STFT front end (hydra: ``_target_: vschaos.dsp.transforms.SpectralTransform``).

    Args:
        sample_rate: audio rate in Hz (default 44100).
        n_fft: window length = FFT size (default 2048); must be a multiple of ``hop``.
        hop: hop size in samples (default 512).
        tfr: time-frequency ratio of the Gaussian window, ``lambda = tfr * n_fft^2`` (default 0.25).
        log_floor_db: representation. ``None`` (default, and what a config without the key gets):
            ``log1p(|X|)``, linear below ~-53 dB re a full-scale sine. A number, e.g. -100: the true
            log range ``log1p(|X| / floor)`` with ``floor`` that many dB below a full-scale sine's
            peak bin (``full_scale = sum(window) / 2``).
        norm_std_floor: :meth:`set_normalisation` floors each bin's std at this fraction of the
            std pooled over all bins (default 0.1), so silent or band-limited bins do not turn any
            energy there into huge features.
        pitch_window: 0 (default): a pitch latent's f0 is read from the model's own frames. A length
            ``> n_fft`` (a multiple of ``hop``): it is read from :meth:`pitch_magnitude`, frames of a Gaussian
            window that long which *end where the model's frames end*, so a short frame (a small delay) gets
            the frequency resolution of a long one without its look-ahead; its f0 lags the short frame's
            centre by ``(pitch_window - n_fft) / 2`` samples. A model without a pitch latent ignores it.

    Attributes: ``sample_rate, n_fft, hop, n_bins (= n_fft // 2 + 1), tfr, lam, pitch_window, pitch_bins``
    (plain values; ``pitch_bins = pitch_window // 2 + 1``, or ``n_bins`` without a pitch window);
    buffers ``window (n_fft,)``, ``dual (n_fft,)``, ``norm_mean (n_bins,)`` = 0 and
    ``norm_std (n_bins,)`` = 1 until :meth:`set_normalisation`. The buffers are saved in the
    model's state dict, so a checkpoint carries its normalisation. ``contrast_scale`` (float) is the
    magnitude where the log curve turns linear (1.0 for ``log1p(|X|)``).
    """

    sample_rate: int
    n_fft: int
    hop: int
    n_bins: int
    tfr: float
    lam: float
    contrast_scale: float
    norm_std_floor: float
    pitch_window: int
    pitch_bins: int

    def __init__(self, sample_rate: int = 44100, n_fft: int = 2048, hop: int = 512, tfr: float = 0.25,
                 log_floor_db: Optional[float] = None, norm_std_floor: float = 0.1, pitch_window: int = 0) -> None:
        super().__init__()
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if hop <= 0 or n_fft <= 0:
            raise ValueError(f"n_fft and hop must be positive, got n_fft={n_fft}, hop={hop}")
        if n_fft % hop != 0:
            raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop ({hop})")
        if n_fft % 2 != 0:
            raise ValueError(f"n_fft must be even, got {n_fft}")
        if not tfr > 0:
            raise ValueError(f"tfr must be positive, got {tfr}")
        if log_floor_db is not None and not (math.isfinite(float(log_floor_db)) and float(log_floor_db) < 0):
            raise ValueError(f"log_floor_db must be a negative number of dB (e.g. -100) or null, got {log_floor_db}")
        if not 0 <= norm_std_floor < 1:
            raise ValueError(f"norm_std_floor must lie in [0, 1), got {norm_std_floor}")
        number = isinstance(pitch_window, (int, float)) and not isinstance(pitch_window, bool)
        if not (number and math.isfinite(pitch_window)) or (pitch_window != 0 and not (
                int(pitch_window) == pitch_window and n_fft < pitch_window <= MAX_PITCH_WINDOW
                and pitch_window % hop == 0 and pitch_window % 2 == 0)):
            raise ValueError(f"pitch_window must be 0 or an even multiple of hop ({hop}) longer than n_fft "
                             f"({n_fft}), at most {MAX_PITCH_WINDOW}, got {pitch_window!r}")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        self.n_bins = self.n_fft // 2 + 1
        self.tfr = float(tfr)
        self.lam = dsp.gaussian_lambda(self.n_fft, self.tfr)
        window = dsp.gaussian_window(self.n_fft, self.tfr)
        self.register_buffer("window", window)
        self.register_buffer("dual", dsp.dual_window(window, self.hop))
        self.full_scale = float(window.sum()) / 2.0  # peak bin of a full-scale sine centred on a bin
        self.contrast_scale = 1.0 if log_floor_db is None else self.full_scale * 10.0 ** (float(log_floor_db) / 20.0)
        self.norm_std_floor = float(norm_std_floor)
        self.register_buffer("norm_mean", torch.zeros(self.n_bins))
        self.register_buffer("norm_std", torch.ones(self.n_bins))
        self.pitch_window = int(pitch_window)
        self.pitch_bins = self.pitch_window // 2 + 1 if self.pitch_window > 0 else self.n_bins
        # non-persistent: derived from the config, so checkpoints of transforms without it keep loading
        self.register_buffer("pitch_window_fn", dsp.gaussian_window(self.pitch_window, self.tfr)
                             if self.pitch_window > 0 else torch.zeros(0), persistent=False)

    # ---------------------------------------------------------------- scriptable front end
    @torch.jit.export
    def analyse(self, audio: Tensor) -> Tensor:
        """Complex DGT: ``(..., time)`` -> ``(..., frames, bins)``, ``frames = num_frames(time)``."""
        return dsp.dgt(audio, self.window, self.hop)

    @torch.jit.export
    def synthesise(self, spec: Tensor, length: int) -> Tensor:
        """Inverse DGT with the dual window: complex ``(..., frames, bins)`` -> ``(..., length)``."""
        return dsp.idgt(spec, self.dual, self.hop, length)

    @torch.jit.export
    def magnitude(self, audio: Tensor) -> Tensor:
        """Linear magnitude ``|X|``: audio ``(batch, time)`` -> ``(batch, frames, bins)``."""
        return self.analyse(audio).abs()

    @torch.jit.export
    def pitch_magnitude(self, audio: Tensor) -> Tensor:
        """The frames a pitch latent's f0 is read from: audio ``(batch, time)`` -> ``(batch, frames,
        pitch_bins)``, frame ``j`` ending where :meth:`magnitude`'s frame ``j`` ends (both cover up to sample
        ``(j + 1) * hop``). Without a pitch window, :meth:`magnitude` itself."""
        if self.pitch_window == 0:
            return self.magnitude(audio)
        frames = (audio.shape[-1] + self.hop - 1) // self.hop + self.n_fft // self.hop - 1  # num_frames
        return dsp.dgt(audio, self.pitch_window_fn, self.hop).narrow(-2, 0, frames).abs()

    @torch.jit.export
    def to_features(self, magnitude: Tensor) -> Tensor:
        """Model input: ``(contrast(|X|) - norm_mean) / norm_std``, ``(..., bins)`` -> ``(..., bins)``."""
        return (dsp.contrast(magnitude, self.contrast_scale) - self.norm_mean) / self.norm_std

    @torch.jit.export
    def contrast(self, magnitude: Tensor) -> Tensor:
        """The representation before normalisation, ``log1p(|X| / contrast_scale)``: ``(..., bins)``."""
        return dsp.contrast(magnitude, self.contrast_scale)

    @torch.jit.export
    def from_features(self, features: Tensor) -> Tensor:
        """Inverse of :meth:`to_features`, magnitude clamped ``>= 0``: ``(..., bins)`` -> ``(..., bins)``."""
        return dsp.inverse_contrast(torch.addcmul(self.norm_mean, features, self.norm_std), self.contrast_scale)

    def forward(self, audio: Tensor) -> Tensor:
        """Features of audio: ``(batch, time)`` -> ``(batch, frames, bins)``."""
        return self.to_features(self.magnitude(audio))

    # ---------------------------------------------------------------- python-side helpers
    @torch.jit.unused
    def set_normalisation(self, mean: Tensor, std: Tensor) -> None:
        """Store per-bin statistics of :meth:`contrast` (each ``(n_bins,)``). ``std`` is floored at
        ``max(1e-4, norm_std_floor * pooled)``, ``pooled`` the std of all bins' values together
        (``sqrt(mean(std^2) + var(mean))``): a silent or band-limited bin (a std near zero) would
        otherwise turn any energy there (a live microphone, broadband noise) into features far beyond the
        training range."""
        mean = torch.as_tensor(mean)
        std = torch.as_tensor(std)
        for name, value in (("mean", mean), ("std", std)):
            if tuple(value.shape) != (self.n_bins,):
                raise ValueError(
                    f"set_normalisation: {name} must have shape ({self.n_bins},) (n_bins for "
                    f"n_fft={self.n_fft}), got {tuple(value.shape)}")
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"set_normalisation: {name} contains NaN or Inf")
        with torch.no_grad():
            self.norm_mean.copy_(mean.to(self.norm_mean))
            std = std.to(self.norm_std)
            mean = mean.to(self.norm_mean)
            pooled = float(torch.sqrt(std.pow(2).mean() + mean.var(unbiased=False)))
            self.norm_std.copy_(std.clamp_min(max(1e-4, self.norm_std_floor * pooled)))

    @torch.jit.unused
    def cache_key(self) -> Dict[str, object]:
        """Plain values that define :meth:`magnitude` (for the spectral frame cache hash)."""
        return {"sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop": self.hop,
                "tfr": self.tfr, "window": "gaussian", "version": TRANSFORM_VERSION}

    @torch.jit.unused
    def num_frames(self, length: int) -> int:
        """Frames :meth:`magnitude` gives for ``length`` samples."""
        return dsp.num_frames(length, self.n_fft, self.hop)

    @torch.jit.unused
    def reconstruct(self, magnitude: Tensor, length: int, method: str = "pghi+gla", n_iter: int = 16,
                    generator: Optional[torch.Generator] = None) -> Tensor:
        """Offline audio from a magnitude ``(batch, frames, bins)`` (or ``(frames, bins)``)
        -> ``(batch, length)`` (or ``(length,)``).

        Methods: ``"pghi+gla"`` PGHI then ``n_iter`` fast Griffin-Lim iterations (default, best);
        ``"pghi"`` PGHI alone (non-iterative, fastest good one); ``"griffinlim"`` ``n_iter``
        fast Griffin-Lim iterations from random phase; ``"random"`` uniform random phase.
        ``frames`` must equal ``num_frames(length)``.
        """
        if method not in RECONSTRUCTION_METHODS:
            raise ValueError(f"unknown reconstruction method {method!r}; choose one of {RECONSTRUCTION_METHODS}")
        if magnitude.shape[-1] != self.n_bins:
            raise ValueError(f"reconstruct: magnitude has {magnitude.shape[-1]} bins, expected {self.n_bins}")
        expected = self.num_frames(length)
        if magnitude.shape[-2] != expected:
            raise ValueError(f"reconstruct: {magnitude.shape[-2]} frames cannot give {length} samples "
                             f"(expected {expected} frames for n_fft={self.n_fft}, hop={self.hop})")
        magnitude = magnitude.detach().clamp_min(0.0)
        if method.startswith("pghi"):
            phase = pghi(magnitude, self.lam, self.hop, self.n_fft, generator=generator)
        else:
            phase = (torch.rand(magnitude.shape, generator=generator, dtype=magnitude.dtype,
                                device=magnitude.device) * 2.0 - 1.0) * torch.pi
        if method in ("pghi+gla", "griffinlim") and n_iter > 0:
            # = polar(magnitude, griffin_lim(...)) without the angle/polar round trip
            consistent = griffin_lim_consistent(magnitude, phase, self.window, self.dual, self.hop, length,
                                                   n_iter, GLA_MOMENTUM)
            return self.synthesise(with_magnitude(consistent, magnitude), length)
        return self.synthesise(torch.polar(magnitude, phase), length)
