"""Signal processing: Gaussian-window STFT (DGT), phase reconstruction, the model's front end.

``functional`` holds pure, TorchScript-safe functions (DGT, contrast, spectral distances);
``phase`` the phase reconstruction (offline PGHI and fast Griffin-Lim run numba kernels; the
phase-gradient formulas are shared with the streaming RTPGHI); ``transforms.SpectralTransform`` is
the module shell used by training, generation and export; ``streaming`` holds the real-time
analysis/synthesis state; ``resample`` band-limited resampling that streams (the Neutone wrapper's);
``phase_methods`` the method names (no torch: command-line parsers read them).
The names below are imported on first use (``vschaos.util.lazy_exports``).
"""
from vschaos.util import lazy_exports

_EXPORTS = {
    **{name: ".functional" for name in ("dgt", "dual_window", "gaussian_lambda", "gaussian_window", "idgt",
                                        "log_spectral_distance", "num_frames", "spectral_convergence")},
    **{name: ".phase" for name in ("griffin_lim", "pghi", "phase_derivatives", "phase_frequency_derivative",
                                   "phase_time_derivative")},
    "SpectralTransform": ".transforms",
    **{name: ".resample" for name in ("StreamingResampler", "resample_offline", "resampled_stream_delay")},
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
