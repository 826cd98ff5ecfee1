"""A latent prior: a small causal GRU over a trained VAE's latent sequences, so the decoder can play with no input.

:class:`LatentPrior` models the posterior means ``z_t`` of a file's frames (at the latent rate: one per hop; for a
model with a pitch latent, ``z_t[0]`` is the pitch coordinate and is modelled like the other entries) as an
autoregressive diagonal Gaussian: ``p(z_t | z_<t) = N(mean_t, std_t^2)`` with ``(mean_t, log std_t)`` read from
the GRU's state after ``z_<t`` (``z_-1`` is the zero vector of the normalised space, i.e. the training mean).
Everything runs in a normalised space ``(z - z_mean) / z_std`` (the training latents' per-entry statistics,
buffers of the module); :meth:`LatentPrior.nll` is in the raw latent units, per frame (summed over entries).

Sampling (:meth:`LatentPrior.sample_frames`) is one GRU step per frame, each step the same operation whatever
the number of frames asked for at once, with the noise given by the caller: the export draws it from counter
noise keyed by (seed, frame index), so a stream is bit-identical at any buffer size.

:class:`~vschaos.models.prior_module.PriorModule` is its Lightning module (apart: the export needs no Lightning).
"""
import math
from typing import Dict, Tuple

import torch
from torch import Tensor, nn

# the counter_normal stream of the prior's noise (vschaos.dsp.streaming), disjoint from the export's latent (0) and
# phase (uniform 1) streams: the offline render and the export draw the same values
PRIOR_NOISE_STREAM = 2
# normalised latents a sample may reach (in training-set standard deviations): a runaway sample is held there
NORMALISED_LIMIT = 8.0
_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


class LatentPrior(nn.Module):
    """GRU prior over latent sequences.

    Args:
        latent_dim: entries of ``z``.
        hidden: GRU units.
        layers: GRU layers.
    Buffers ``z_mean``, ``z_std`` ``(latent_dim,)``: the normalisation (set by :meth:`set_normalisation`).
    """

    def __init__(self, latent_dim: int, hidden: int = 64, layers: int = 1) -> None:
        super().__init__()
        if latent_dim < 1 or hidden < 1 or layers < 1:
            raise ValueError(f"latent_dim, hidden and layers must be >= 1, got {latent_dim}, {hidden}, {layers}")
        self.latent_dim = int(latent_dim)
        self.hidden = int(hidden)
        self.layers = int(layers)
        self.gru = nn.GRU(self.latent_dim, self.hidden, self.layers, batch_first=True)
        self.head = nn.Linear(self.hidden, 2 * self.latent_dim)
        self.register_buffer("z_mean", torch.zeros(self.latent_dim))
        self.register_buffer("z_std", torch.ones(self.latent_dim))

    def hyperparameters(self) -> Dict[str, int]:
        """What rebuilds this module (stored beside its weights)."""
        return {"latent_dim": self.latent_dim, "hidden": self.hidden, "layers": self.layers}

    @torch.jit.unused
    def set_normalisation(self, latents: Tensor, min_std: float = 1e-3) -> None:
        """Per-entry mean and std of ``latents`` ``(frames, latent_dim)`` (std at least ``min_std``)."""
        self.z_mean.copy_(latents.mean(dim=0))
        self.z_std.copy_(latents.std(dim=0, unbiased=False).clamp_min(min_std))

    def normalise(self, z: Tensor) -> Tensor:
        return (z - self.z_mean) / self.z_std

    def denormalise(self, u: Tensor) -> Tensor:
        return u * self.z_std + self.z_mean

    def _gaussian(self, out: Tensor) -> Tuple[Tensor, Tensor]:
        mean, log_std = self.head(out).chunk(2, dim=-1)
        return mean, log_std.clamp(-7.0, 2.0)  # literals: TorchScript cannot read module globals

    def initial_state(self, batch: int) -> Tuple[Tensor, Tensor]:
        """``(previous normalised z (batch, latent_dim), GRU state (layers, batch, hidden))`` before frame 0."""
        return (self.z_mean.new_zeros(batch, self.latent_dim),
                self.z_mean.new_zeros(self.layers, batch, self.hidden))

    @torch.jit.unused
    def predict(self, z: Tensor) -> Tuple[Tensor, Tensor]:
        """Teacher forcing: raw latents ``(batch, T, latent_dim)`` -> the predicted normalised mean and log std of
        every frame ``(batch, T, latent_dim)`` each, frame ``t`` from frames ``< t``."""
        u = self.normalise(z)
        previous = torch.cat([torch.zeros_like(u[:, :1]), u[:, :-1]], dim=1)
        out, _ = self.gru(previous)
        return self._gaussian(out)

    @torch.jit.unused
    def nll(self, z: Tensor) -> Tensor:
        """Negative log-likelihood (nats) of each frame of raw latents ``(batch, T, latent_dim)``: ``(batch, T)``."""
        mean, log_std = self.predict(z)
        u = self.normalise(z)
        per_entry = 0.5 * ((u - mean) / log_std.exp()) ** 2 + log_std + _HALF_LOG_TWO_PI
        return per_entry.sum(dim=-1) + self.z_std.log().sum()  # back to raw units (Jacobian of the normalisation)

    def sample_frames(self, previous: Tensor, state: Tensor, temperature: Tensor, noise: Tensor
                      ) -> Tuple[Tensor, Tensor, Tensor]:
        """Draw ``n`` frames, one GRU step each.

        Args:
            previous: normalised ``z`` of the frame before ``(batch, latent_dim)``.
            state: GRU state ``(layers, batch, hidden)``.
            temperature: ``(batch, n)``, >= 0 (0: the predicted mean).
            noise: standard normal ``(batch, n, latent_dim)``.
        Returns raw latents ``(batch, n, latent_dim)`` and the new ``(previous, state)``. Normalised samples are
        held within ``+-NORMALISED_LIMIT``.
        """
        frames = []
        scaled = temperature.unsqueeze(-1) * noise  # once per call: each operation in the loop costs per frame
        for t in range(noise.shape[1]):
            out, state = self.gru(previous.unsqueeze(1), state)
            mean, log_std = self._gaussian(out[:, 0])
            sample = mean + log_std.exp() * scaled[:, t]
            previous = sample.clamp(-8.0, 8.0)  # NORMALISED_LIMIT
            frames.append(previous)
        return self.denormalise(torch.stack(frames, dim=1)), previous, state


def sample_latents(prior: "LatentPrior", n_frames: int, temperature: float, seed: int, batch: int = 1) -> Tensor:
    """``n_frames`` raw latents ``(batch, n_frames, latent_dim)`` from a fresh stream: the export's ``prior``
    method after ``reset()`` with the ``seed`` attribute and a constant ``temperature`` inlet, in one call."""
    from vschaos.dsp.streaming import counter_normal

    previous, state = prior.initial_state(batch)
    dtype = previous.dtype
    noise = counter_normal(int(seed), PRIOR_NOISE_STREAM, batch, torch.arange(n_frames, dtype=torch.int64),
                           prior.latent_dim).to(dtype)
    temperatures = torch.full((batch, n_frames), float(temperature), dtype=dtype)
    with torch.no_grad():
        z, _, _ = prior.sample_frames(previous, state, temperatures, noise)
    return z


def iid_gaussian_nll(train: Tensor, held_out: Tensor, min_std: float = 1e-3) -> float:
    """Mean NLL per frame (nats, summed over entries) of ``held_out`` ``(frames, latent_dim)`` under the diagonal
    Gaussian fitted to ``train`` ``(frames, latent_dim)``: the baseline a prior must beat."""
    mean = train.mean(dim=0)
    std = train.std(dim=0, unbiased=False).clamp_min(min_std)
    per_entry = 0.5 * ((held_out - mean) / std) ** 2 + std.log() + _HALF_LOG_TWO_PI
    return float(per_entry.sum(dim=-1).mean())
