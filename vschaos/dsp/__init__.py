"""Signal processing: Gaussian-window STFT (DGT), phase reconstruction, the model's front end.

``functional`` holds pure functions (TorchScript-safe except :func:`functional.pghi`, which runs
a numba kernel offline); ``transforms.SpectralTransform`` is the module shell used by training,
generation and export; ``streaming`` holds the real-time analysis/synthesis state.
"""
from vschaos.dsp.functional import (
    dgt,
    dual_window,
    gaussian_lambda,
    gaussian_window,
    griffin_lim,
    idgt,
    log_spectral_distance,
    num_frames,
    pghi,
    phase_derivatives,
    phase_frequency_derivative,
    phase_time_derivative,
    spectral_convergence,
)
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
