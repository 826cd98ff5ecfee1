"""A latent prior: a small causal GRU over a trained VAE's latent sequences, so the decoder can play with no input.

:class:`LatentPrior` models each frame of a file (at the latent rate: one per hop) from the frames before it:
the posterior mean ``z_t`` (for a model with a pitch latent, ``z_t[0]`` is the pitch coordinate and is modelled
like the other entries) as a mixture of ``components`` diagonal Gaussians ``N(mean_tk, std_tk^2)`` with weights
``softmax(mix_t)`` (one component: a plain diagonal Gaussian; several let the next frame be one of a few distinct
sounds, e.g. this note held or another starting, instead of their average, which decodes to neither), and, for a model whose decoder is
conditioned on labels, each decoder task's class ``y_t`` as a categorical distribution; both are read from the
GRU's state after frames ``< t``. The GRU's input for frame ``t`` is frame ``t - 1``: normalised ``z`` and one-hot
labels (an unknown label: zeros; before frame 0 everything is zero, i.e. the training mean and no label).
Latents are normalised ``(z - z_mean) / z_std`` (the training latents' per-entry statistics, buffers);
:meth:`LatentPrior.nll` is in raw latent units, per frame (summed over entries).

Sampling (:meth:`LatentPrior.sample_frames`) is one GRU step per frame, each step the same operation whatever
the number of frames asked for at once, with the noise given by the caller: the export draws it from counter
noise keyed by (seed, frame index), so a stream is bit-identical at any buffer size.

:class:`~vschaos.models.prior_module.PriorModule` is its Lightning module (apart: the export needs no Lightning).
"""
import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# counter noise streams (vschaos.dsp.streaming) of the prior: counter_normal stream 2 for the latents, uniform
# stream 3 for the labels, disjoint from the export's latent (normal 0) and phase (uniform 1) streams. The offline
# render and the export draw the same values.
PRIOR_NOISE_STREAM = 2
PRIOR_LABEL_STREAM = 3
# normalised latents a sample may reach (in training-set standard deviations): a runaway sample is held there
NORMALISED_LIMIT = 8.0
_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


class LatentPrior(nn.Module):
    """GRU prior over latent (and label) sequences.

    Args:
        latent_dim: entries of ``z``.
        hidden: GRU units.
        layers: GRU layers.
        label_dims: classes of each modelled label task (the VAE's decoder tasks, in order); empty: latents only.
        components: Gaussians of the latents' mixture (1: one diagonal Gaussian).
    Buffers ``z_mean``, ``z_std`` ``(latent_dim,)``: the normalisation (set by :meth:`set_normalisation`).
    """

    label_dims: List[int]

    def __init__(self, latent_dim: int, hidden: int = 64, layers: int = 1, label_dims: Optional[List[int]] = None,
                 components: int = 1) -> None:
        super().__init__()
        label_dims = [int(d) for d in (label_dims or [])]
        if latent_dim < 1 or hidden < 1 or layers < 1 or components < 1 or any(d < 1 for d in label_dims):
            raise ValueError(f"latent_dim, hidden, layers, components and label_dims must be >= 1, got {latent_dim}, "
                             f"{hidden}, {layers}, {components}, {label_dims}")
        self.latent_dim = int(latent_dim)
        self.hidden = int(hidden)
        self.layers = int(layers)
        self.label_dims = label_dims
        self.n_labels = len(label_dims)
        self.input_size = self.latent_dim + sum(label_dims)
        self.components = int(components)
        self.mix_size = self.components if self.components > 1 else 0  # one Gaussian needs no weights
        # uniform noise per frame: one per class (the labels' Gumbel-max draw), then one per component
        self.uniform_channels = sum(label_dims) + self.mix_size
        self.gru = nn.GRU(self.input_size, self.hidden, self.layers, batch_first=True)
        # one head: [means (K L) | log stds (K L) | label logits | mixture logits]; with K = 1 the layout of a
        # plain Gaussian, so a one-component prior reads the same weights as before mixtures existed
        self.head = nn.Linear(self.hidden, 2 * self.components * self.latent_dim + sum(label_dims) + self.mix_size)
        self.register_buffer("z_mean", torch.zeros(self.latent_dim))
        self.register_buffer("z_std", torch.ones(self.latent_dim))

    def hyperparameters(self) -> Dict[str, object]:
        """What rebuilds this module (stored beside its weights)."""
        return {"latent_dim": self.latent_dim, "hidden": self.hidden, "layers": self.layers,
                "label_dims": list(self.label_dims), "components": self.components}

    @torch.jit.unused
    def set_normalisation(self, latents: Tensor, min_std: float = 1e-3) -> None:
        """Per-entry mean and std of ``latents`` ``(frames, latent_dim)`` (std at least ``min_std``)."""
        self.z_mean.copy_(latents.mean(dim=0))
        self.z_std.copy_(latents.std(dim=0, unbiased=False).clamp_min(min_std))

    def normalise(self, z: Tensor) -> Tensor:
        return (z - self.z_mean) / self.z_std

    def denormalise(self, u: Tensor) -> Tensor:
        return u * self.z_std + self.z_mean

    def _split(self, out: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """GRU output ``(..., hidden)`` -> normalised means and log stds (clamped) ``(..., K, latent_dim)``, the
        label logits (all tasks, concatenated) and the mixture logits ``(..., K)`` (zeros for one component)."""
        size = self.components * self.latent_dim
        parts = torch.split(self.head(out), [size, size, self.input_size - self.latent_dim, self.mix_size],
                            dim=-1)  # one operation: the export steps once per frame
        lead = list(out.shape[:-1])
        shape = lead + [self.components, self.latent_dim]
        mix = parts[3] if self.mix_size > 0 else out.new_zeros(lead + [1])
        # literals: TorchScript reads no globals
        return parts[0].reshape(shape), parts[1].clamp(-7.0, 2.0).reshape(shape), parts[2], mix

    def one_hot(self, labels: Tensor) -> Tensor:
        """Label ids ``(..., n_labels)`` (-1: unknown) -> the GRU's label input ``(..., sum(label_dims))``."""
        parts: List[Tensor] = []
        for task, classes in enumerate(self.label_dims):
            ids = labels[..., task]
            hot = F.one_hot(ids.clamp(0, classes - 1), classes).to(self.z_mean.dtype)
            parts.append(hot * (ids >= 0).unsqueeze(-1).to(hot.dtype))
        if len(parts) == 0:
            return self.z_mean.new_zeros(labels.shape[:-1] + (0,))
        return torch.cat(parts, dim=-1)

    def initial_state(self, batch: int) -> Tuple[Tensor, Tensor]:
        """``(GRU input of frame 0 (batch, input_size), GRU state (layers, batch, hidden))``: all zeros."""
        return (self.z_mean.new_zeros(batch, self.input_size),
                self.z_mean.new_zeros(self.layers, batch, self.hidden))

    @torch.jit.unused
    def nll(self, z: Tensor, labels: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Teacher forcing on raw latents ``(batch, T, latent_dim)`` and label ids ``(batch, T, n_labels)`` (-1:
        unknown; None: all unknown): the negative log-likelihood (nats) of each frame's latents ``(batch, T)``
        and of its known labels ``(batch, T)`` (summed over tasks; 0 without labels)."""
        if labels is None:
            labels = torch.full(z.shape[:-1] + (self.n_labels,), -1, dtype=torch.long, device=z.device)
        u = self.normalise(z)
        inputs = torch.cat([u, self.one_hot(labels)], dim=-1)
        previous = torch.cat([torch.zeros_like(inputs[:, :1]), inputs[:, :-1]], dim=1)
        out, _ = self.gru(previous)
        mean, log_std, logits, mix = self._split(out)
        per_entry = 0.5 * ((u.unsqueeze(-2) - mean) / log_std.exp()) ** 2 + log_std + _HALF_LOG_TWO_PI
        weighted = torch.log_softmax(mix, dim=-1) - per_entry.sum(dim=-1)  # (batch, T, K)
        latent_nll = -torch.logsumexp(weighted, dim=-1) + self.z_std.log().sum()  # raw units: the Jacobian
        label_nll = torch.zeros_like(latent_nll)
        start = 0
        for task, classes in enumerate(self.label_dims):
            ids = labels[..., task]
            log_p = torch.log_softmax(logits[..., start:start + classes], dim=-1)
            picked = log_p.gather(-1, ids.clamp(0, classes - 1).unsqueeze(-1)).squeeze(-1)
            label_nll = label_nll - picked * (ids >= 0).to(picked.dtype)
            start += classes
        return latent_nll, label_nll

    def sample_frames(self, previous: Tensor, state: Tensor, temperature: Tensor, noise: Tensor, uniform: Tensor
                      ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Draw ``n`` frames, one GRU step each.

        Args:
            previous: the GRU input of the next frame ``(batch, input_size)`` (:meth:`initial_state`, then what
                the last call returned).
            state: GRU state ``(layers, batch, hidden)``.
            temperature: ``(batch, n)``, >= 0 (0: the predicted mean and the most likely classes).
            noise: standard normal ``(batch, n, latent_dim)``.
            uniform: uniform in (0, 1) ``(batch, n, uniform_channels)``, for the labels, then the mixture
                component: each class (component) is drawn from ``softmax(logits / temperature)`` as
                ``argmax(logits + temperature * gumbel)`` (the Gumbel-max trick; temperature 0: the most likely
                class, and the most likely component's mean).
        Returns raw latents ``(batch, n, latent_dim)``, label ids ``(batch, n, n_labels)`` and the new
        ``(previous, state)``. Normalised samples are held within ``+-NORMALISED_LIMIT``.
        """
        frames: List[Tensor] = []
        drawn: List[Tensor] = []
        # once per call: each operation in the loop costs on every frame
        scaled = temperature.unsqueeze(-1) * noise
        gumbel = uniform
        if self.uniform_channels > 0:
            gumbel = temperature.unsqueeze(-1) * -torch.log(-torch.log(uniform))
        label_channels = self.uniform_channels - self.mix_size
        for t in range(noise.shape[1]):
            if self.layers == 1:  # the same weights as one step of self.gru, at a third less cost per call
                hidden = torch.gru_cell(previous, state[0], self.gru.weight_ih_l0, self.gru.weight_hh_l0,
                                        self.gru.bias_ih_l0, self.gru.bias_hh_l0)
                state = hidden.unsqueeze(0)
            else:
                out, state = self.gru(previous.unsqueeze(1), state)
                hidden = out[:, 0]
            mean, log_std, logits, mix = self._split(hidden)  # (batch, K, L) twice, labels, (batch, K)
            if self.mix_size > 0:
                pick = (mix + gumbel[:, t, label_channels:]).argmax(dim=-1)
                index = pick.reshape(-1, 1, 1).expand(-1, 1, self.latent_dim)
                mean, log_std = mean.gather(1, index), log_std.gather(1, index)
            sample = (mean[:, 0] + log_std[:, 0].exp() * scaled[:, t]).clamp(-8.0, 8.0)  # NORMALISED_LIMIT
            frames.append(sample)
            if self.n_labels > 0:
                perturbed = logits + gumbel[:, t, :label_channels]
                ids: List[Tensor] = []
                hot: List[Tensor] = [sample]
                start = 0
                for classes in self.label_dims:
                    task_ids = perturbed[:, start:start + classes].argmax(dim=-1)
                    ids.append(task_ids)
                    hot.append(F.one_hot(task_ids, classes).to(sample.dtype))
                    start += classes
                drawn.append(torch.stack(ids, dim=-1))
                previous = torch.cat(hot, dim=-1)
            else:
                previous = sample
        z = self.denormalise(torch.stack(frames, dim=1))
        if self.n_labels > 0:
            labels = torch.stack(drawn, dim=1)
        else:
            labels = torch.zeros(z.shape[0], z.shape[1], 0, dtype=torch.int64, device=z.device)
        return z, labels, previous, state


def sample_latents(prior: LatentPrior, n_frames: int, temperature: float, seed: int, batch: int = 1
                   ) -> Tuple[Tensor, Tensor]:
    """``n_frames`` raw latents ``(batch, n_frames, latent_dim)`` and label ids ``(batch, n_frames, n_labels)``
    from a fresh stream: the export's ``prior`` method after ``reset()`` with the ``seed`` attribute and a constant
    ``temperature`` inlet, in one call."""
    from vschaos.dsp.counter_noise import counter_normal, counter_uniform

    previous, state = prior.initial_state(batch)
    dtype = previous.dtype
    frames = torch.arange(n_frames, dtype=torch.int64)
    noise = counter_normal(int(seed), PRIOR_NOISE_STREAM, batch, frames, prior.latent_dim).to(dtype)
    uniform = counter_uniform(int(seed), PRIOR_LABEL_STREAM, batch, frames, prior.uniform_channels).to(dtype)
    temperatures = torch.full((batch, n_frames), float(temperature), dtype=dtype)
    with torch.no_grad():
        z, labels, _, _ = prior.sample_frames(previous, state, temperatures, noise, uniform)
    return z, labels


def iid_gaussian_nll(train: Tensor, held_out: Tensor, min_std: float = 1e-3) -> float:
    """Mean NLL per frame (nats, summed over entries) of ``held_out`` ``(frames, latent_dim)`` under the diagonal
    Gaussian fitted to ``train`` ``(frames, latent_dim)``: the baseline a prior must beat."""
    mean = train.mean(dim=0)
    std = train.std(dim=0, unbiased=False).clamp_min(min_std)
    per_entry = 0.5 * ((held_out - mean) / std) ** 2 + std.log() + _HALF_LOG_TWO_PI
    return float(per_entry.sum(dim=-1).mean())
