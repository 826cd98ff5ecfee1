"""Training objective of the spectral VAE.

Reconstruction: spectral convergence normalised by the *target*, ``||S - S^||_F / ||S||_F`` on linear
magnitudes (Arik et al. 2019, "Fast Spectrogram Inversion using Multi-head Convolutional Neural Networks";
Yamamoto et al. 2020, "Parallel WaveGAN"), plus the L1 distance of log magnitudes (same papers).
Regulariser: ``beta * KL(q(z|x) || N(0, I))`` (Kingma & Welling 2014) with a linear warm-up of beta
(Bowman et al. 2016) and optional free bits per latent dimension (Kingma et al. 2016, "Improved
Variational Inference with Inverse Autoregressive Flow").
"""
from typing import Dict

import torch
from torch import Tensor, nn

from vschaos.dsp.functional import spectral_convergence
from vschaos.models.components.distributions import kl_standard_normal

# Bound of the loss's denominator ||S||_F: a near-silent batch must not blow the gradient up.
SPECTRAL_CONVERGENCE_EPS = 1e-8


def log_magnitude_l1(target_mag: Tensor, estimate_mag: Tensor, eps: float = 1e-2) -> Tensor:
    """Mean ``|log(S + eps) - log(S^ + eps)|``: (batch, bins) x2 -> scalar.

    ``eps`` (default 1e-2, about -93 dB below a full-scale sine's peak with the Gaussian DGT) keeps the
    noise floor from dominating the loss.
    """
    return (torch.log(target_mag + eps) - torch.log(estimate_mag + eps)).abs().mean()


def kl_divergence(mean: Tensor, std: Tensor, free_bits: float = 0.0) -> Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dims, averaged over the batch: (batch, latent) -> scalar.

    With ``free_bits > 0`` each dimension's batch-mean KL is hinged at ``free_bits`` nats
    (``max(KL_d, free_bits)``): dimensions below it receive no pressure toward the prior.
    """
    per_dim = kl_standard_normal(mean, std).mean(dim=0)
    if free_bits > 0:
        per_dim = per_dim.clamp_min(free_bits)
    return per_dim.sum()


class SpectralVAELoss(nn.Module):
    """Weighted sum of the terms above; returns a dict of scalars (``loss`` is the one to minimise).

    Args (defaults): spectral_convergence_weight [1.0], log_magnitude_weight [1.0], log_eps [1e-2],
    beta [1e-3] (final KL weight), beta_warmup_steps [1000] (beta grows linearly from 0; 0 = no warm-up),
    free_bits [0.0] (nats per latent dimension; 0 = off).
    """

    def __init__(self, spectral_convergence_weight: float = 1.0, log_magnitude_weight: float = 1.0,
                 log_eps: float = 1e-2, beta: float = 1e-3, beta_warmup_steps: int = 1000, free_bits: float = 0.0):
        super().__init__()
        self.spectral_convergence_weight = spectral_convergence_weight
        self.log_magnitude_weight = log_magnitude_weight
        self.log_eps = log_eps
        self.beta = beta
        self.beta_warmup_steps = beta_warmup_steps
        self.free_bits = free_bits

    def beta_at(self, step: int) -> float:
        """KL weight after ``step`` optimiser steps (linear warm-up)."""
        if self.beta_warmup_steps <= 0:
            return self.beta
        return self.beta * min(1.0, step / self.beta_warmup_steps)

    def forward(self, target_mag: Tensor, estimate_mag: Tensor, mean: Tensor, std: Tensor,
                step: int) -> Dict[str, Tensor]:
        """Magnitudes (batch, bins), posterior mean/std (batch, latent), global step -> dict of scalars."""
        # over the whole batch (batch, bins) as one matrix, so that silent frames do not divide by ~0
        sc = spectral_convergence(target_mag, estimate_mag, eps=SPECTRAL_CONVERGENCE_EPS)
        log_l1 = log_magnitude_l1(target_mag, estimate_mag, self.log_eps)
        kl = kl_divergence(mean, std, self.free_bits)
        beta = self.beta_at(step)
        loss = self.spectral_convergence_weight * sc + self.log_magnitude_weight * log_l1 + beta * kl
        return {"loss": loss, "spectral_convergence": sc, "log_magnitude_l1": log_l1, "kl": kl,
                "beta": torch.tensor(beta)}
