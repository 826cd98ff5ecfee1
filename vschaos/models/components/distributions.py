"""Diagonal Normal posterior helpers (Kingma & Welling 2014, "Auto-Encoding Variational Bayes")."""
from typing import Tuple

import torch
from torch import Tensor
from torch.nn import functional as F


def normal_parameters(raw: Tensor, min_std: float = 1e-4) -> Tuple[Tensor, Tensor]:
    """Split ``raw`` (batch, 2 * latent) into mean and std (batch, latent).

    The std goes through a softplus (bounded gradient, unlike exp) plus ``min_std`` so it never collapses to 0.
    """
    mean, pre_std = raw.chunk(2, dim=-1)
    return mean, F.softplus(pre_std) + min_std


def sample_latent(mean: Tensor, std: Tensor, temperature: float, noise: Tensor) -> Tensor:
    """The one latent sampling rule: ``z = mean + temperature * std * noise``, shapes (..., latent).

    ``noise`` is standard normal; only its source differs: ``torch.randn`` in training, a seeded
    generator in generation, counter-based noise in the nn~ export (reproducible at any buffer size).
    """
    return mean + temperature * std * noise


def reparameterise(mean: Tensor, std: Tensor) -> Tensor:
    """Training sample ``z = mean + std * eps``, eps ~ N(0, I) (the reparameterisation trick)."""
    return sample_latent(mean, std, 1.0, torch.randn_like(std))


def kl_standard_normal(mean: Tensor, std: Tensor) -> Tensor:
    """KL(N(mean, std^2) || N(0, I)) per latent dimension, (batch, latent), closed form."""
    variance = std * std
    return 0.5 * (variance + mean * mean - 1.0 - torch.log(variance))
