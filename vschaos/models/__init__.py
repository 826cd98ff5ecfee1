"""Spectral VAE (``SpectralVAE``), its Lightning training module and losses."""
from vschaos.models.losses import SpectralVAELoss, kl_divergence, log_magnitude_l1, spectral_convergence
from vschaos.models.vae import ConfigurationError, SpectralVAE

__all__ = ["SpectralVAE", "ConfigurationError", "SpectralVAELoss", "spectral_convergence", "log_magnitude_l1",
           "kl_divergence"]
