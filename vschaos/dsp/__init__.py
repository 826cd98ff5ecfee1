"""Signal processing: Gaussian-window STFT (DGT), phase reconstruction, the model's front end.

``functional`` holds pure, TorchScript-safe functions (DGT, contrast, spectral distances);
``phase`` the phase reconstruction (offline PGHI and fast Griffin-Lim run numba kernels; the
phase-gradient formulas are shared with the streaming RTPGHI); ``transforms.SpectralTransform`` is
the module shell used by training, generation and export; ``streaming`` holds the real-time
analysis/synthesis state.
"""
from vschaos.dsp.functional import (dgt, dual_window, gaussian_lambda, gaussian_window, idgt, log_spectral_distance,
                                    num_frames, spectral_convergence)
from vschaos.dsp.phase import griffin_lim, pghi, phase_derivatives, phase_frequency_derivative, phase_time_derivative
from vschaos.dsp.transforms import SpectralTransform

__all__ = [
    "SpectralTransform",
    "dgt",
    "dual_window",
    "gaussian_lambda",
    "gaussian_window",
    "griffin_lim",
    "idgt",
    "log_spectral_distance",
    "num_frames",
    "phase_derivatives",
    "phase_frequency_derivative",
    "phase_time_derivative",
    "pghi",
    "spectral_convergence",
]
