"""Latent trajectories: pure functions giving paths ``(steps, latent_dim)`` through a VAE's latent space.

Every generator-driven trajectory is first drawn in *standard units* (a unit-variance scale:
values mostly within +-2) and then mapped through a :class:`LatentSpread`
(``mean + std * path``, per dimension). The default spread is the prior N(0, I): the decoder was
trained on latents pulled towards it by the KL term, so +-2 standard units stays where the
decoder has seen data. When the training latents' aggregate posterior is known (per-dimension
mean/std of encoded training frames, :meth:`LatentSpread.from_latents`), passing it instead
keeps paths inside the region the encoder actually uses, which matters for models trained with
a small beta whose posterior does not fill the prior. With the run's ordered latent axes
(:meth:`LatentSpread.ordered`, the principal axes the nn~ export uses), a path's dimension ``i`` moves
along the ``i``-th principal component instead: dimension 0 is the direction the training sounds vary most.

All randomness comes from the ``torch.Generator`` passed in: a seed gives the same path.
"""
from dataclasses import dataclass
import math
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor

# Amplitudes (standard units) of sinusoids and circle radii are drawn in this range: large
# enough to move audibly through the space, small enough to stay within ~2 std of the prior.
AMPLITUDE_RANGE = (0.5, 2.0)
# Sinusoid frequencies, in cycles over the whole path, drawn log-uniformly in this range.
CYCLES_RANGE = (0.5, 4.0)
# Random points (line vertices) are clamped to this many standard units.
POINT_CLAMP = 2.5


class UnknownTrajectoryError(ValueError):
    """A trajectory name that is not in :data:`TRAJECTORIES`; the message lists the valid ones."""


@dataclass(frozen=True)
class LatentSpread:
    """Per-dimension location and scale that standard-unit paths are mapped through.

    ``mean``, ``std``: ``(latent_dim,)``; ``basis`` (optional, ``(latent_dim, latent_dim)``, orthonormal rows):
    path dimension ``i`` moves along row ``i`` (``std[i]`` along it) instead of latent axis ``i``.
    """

    mean: Tensor
    std: Tensor
    basis: Optional[Tensor] = None

    @staticmethod
    def prior(latent_dim: int) -> "LatentSpread":
        """The VAE prior N(0, I)."""
        return LatentSpread(torch.zeros(latent_dim), torch.ones(latent_dim))

    @staticmethod
    def from_latents(latents: Tensor, min_std: float = 1e-3) -> "LatentSpread":
        """Spread of encoded training latents ``(n, latent_dim)`` (aggregate posterior means)."""
        if latents.dim() != 2 or latents.shape[0] < 2:
            raise ValueError(f"from_latents expects (n >= 2, latent_dim), got {tuple(latents.shape)}")
        return LatentSpread(latents.mean(0), latents.std(0).clamp_min(min_std))

    @staticmethod
    def ordered(mean: Tensor, components: Tensor, scales: Tensor, min_std: float = 1e-3) -> "LatentSpread":
        """Paths along ordered latent axes: training mean ``(L,)``, components ``(L, L)`` (rows, by decreasing
        variance) and the std along each ``(L,)`` (``vschaos.export.latent_axes.LatentAxes``' fields)."""
        if components.dim() != 2 or components.shape[0] != components.shape[1] or components.shape[0] != mean.shape[0]:
            raise ValueError(f"ordered expects components (L, L) for a mean of {tuple(mean.shape)}, got "
                             f"{tuple(components.shape)}")
        return LatentSpread(mean.float(), scales.float().clamp_min(min_std), components.float())

    def apply(self, path: Tensor) -> Tensor:
        """``(steps, latent_dim)`` standard units -> latent coordinates."""
        if self.basis is None:
            return self.mean.to(path) + self.std.to(path) * path
        return torch.addmm(self.mean.to(path), self.std.to(path) * path, self.basis.to(path))


def _uniform(shape: List[int], low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def _positions(steps: int) -> Tensor:
    """Normalised time ``(steps,)`` in ``[0, 1)``: one period over the path closes on itself."""
    return torch.arange(steps, dtype=torch.float32) / steps


def _check(steps: int, latent_dim: int) -> None:
    if steps < 1 or latent_dim < 1:
        raise ValueError(f"a trajectory needs steps >= 1 and latent_dim >= 1 (got {steps}, {latent_dim})")


def sin_trajectory(steps: int, latent_dim: int, generator: torch.Generator) -> Tensor:
    """Independent sinusoid per dimension: random amplitude in :data:`AMPLITUDE_RANGE`, frequency
    (log-uniform in :data:`CYCLES_RANGE` cycles over the path) and phase. ``(steps, latent_dim)``."""
    _check(steps, latent_dim)
    amplitude = _uniform([latent_dim], *AMPLITUDE_RANGE, generator)
    log_low, log_high = math.log(CYCLES_RANGE[0]), math.log(CYCLES_RANGE[1])
    cycles = torch.exp(_uniform([latent_dim], log_low, log_high, generator))
    phase = _uniform([latent_dim], 0.0, 2.0 * math.pi, generator)
    t = _positions(steps)[:, None]
    return amplitude * torch.sin(2.0 * math.pi * cycles * t + phase)


def random_trajectory(steps: int, latent_dim: int, generator: torch.Generator,
                      correlation_steps: Optional[float] = None) -> Tensor:
    """Smooth random walk that stays inside the prior: Gaussian increments low-passed by a
    Gaussian kernel of width ``correlation_steps`` (default ``steps / 8``, at least 1 frame),
    rescaled so each dimension has unit stationary variance. ``(steps, latent_dim)``.

    A plain cumulative sum would drift out of the region the decoder knows (its variance grows
    with ``steps``); the low-passed noise is a stationary Gaussian process instead.
    """
    _check(steps, latent_dim)
    width = max(1.0, steps / 8.0) if correlation_steps is None else max(1.0, float(correlation_steps))
    radius = int(math.ceil(3.0 * width))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / width) ** 2)
    kernel = kernel / kernel.norm()  # unit L2 norm: filtered white noise keeps unit variance
    noise = torch.randn([latent_dim, 1, steps + 2 * radius], generator=generator)
    smooth = torch.nn.functional.conv1d(noise, kernel[None, None, :])  # (latent_dim, 1, steps)
    return smooth[:, 0, :].transpose(0, 1).contiguous()


def line_trajectory(steps: int, latent_dim: int, generator: torch.Generator, n_segments: int = 3) -> Tensor:
    """Straight segments through ``n_segments + 1`` random points (N(0, I) clamped to
    +-:data:`POINT_CLAMP`), equal time per segment. ``(steps, latent_dim)``."""
    _check(steps, latent_dim)
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    points = torch.randn([n_segments + 1, latent_dim], generator=generator).clamp(-POINT_CLAMP, POINT_CLAMP)
    # position along the vertices, 0 .. n_segments inclusive at the last step
    where = torch.linspace(0.0, float(n_segments), steps) if steps > 1 else torch.zeros(1)
    index = where.floor().long().clamp(max=n_segments - 1)
    frac = (where - index.float())[:, None]
    return points[index] * (1.0 - frac) + points[index + 1] * frac


def circle_trajectory(steps: int, latent_dim: int, generator: torch.Generator) -> Tensor:
    """One turn of a circle centred on the prior mean, in a random 2-D plane (an orthonormal pair
    from the QR decomposition of a Gaussian matrix), radius in :data:`AMPLITUDE_RANGE`, random
    starting angle. With ``latent_dim == 1`` it degenerates to a cosine. ``(steps, latent_dim)``."""
    _check(steps, latent_dim)
    gaussian = torch.randn([latent_dim, 2], generator=generator)
    basis, _ = torch.linalg.qr(gaussian)  # (latent_dim, min(latent_dim, 2)) orthonormal columns
    radius = _uniform([1], *AMPLITUDE_RANGE, generator)
    start = _uniform([1], 0.0, 2.0 * math.pi, generator)
    angle = 2.0 * math.pi * _positions(steps) + start
    coords = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)[:, : basis.shape[1]]
    return radius * coords @ basis.transpose(0, 1)


TrajectoryFunction = Callable[[int, int, torch.Generator], Tensor]

TRAJECTORIES: Dict[str, TrajectoryFunction] = {
    "sin": sin_trajectory,
    "random": random_trajectory,
    "line": line_trajectory,
    "circle": circle_trajectory,
}
"""Generator-driven trajectories by name. ``interpolate`` is separate: it needs two sounds."""

INTERPOLATE = "interpolate"


def trajectory_names() -> List[str]:
    """Every name ``generate.py trajectories`` accepts (registry plus ``interpolate``)."""
    return sorted(TRAJECTORIES) + [INTERPOLATE]


def check_trajectory_names(names: List[str]) -> None:
    """Raise :class:`UnknownTrajectoryError` naming every unknown name and listing the valid ones."""
    valid = trajectory_names()
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise UnknownTrajectoryError(
            f"unknown trajectory type(s) {', '.join(repr(n) for n in unknown)}; valid: {', '.join(valid)}"
        )


def make_trajectory(name: str, steps: int, latent_dim: int, generator: torch.Generator,
                    spread: Optional[LatentSpread] = None) -> Tensor:
    """Latent path ``(steps, latent_dim)`` of the registered type ``name``, mapped through
    ``spread`` (default: the prior N(0, I))."""
    if name not in TRAJECTORIES:
        check_trajectory_names([name])
        raise UnknownTrajectoryError(f"{name!r} is not a generator-driven trajectory: it needs two sounds")
    path = TRAJECTORIES[name](steps, latent_dim, generator)
    return (spread if spread is not None else LatentSpread.prior(latent_dim)).apply(path)


def resample_path(path: Tensor, steps: int) -> Tensor:
    """Linear resampling of ``(frames, latent_dim)`` to ``(steps, latent_dim)`` (end points kept)."""
    if path.dim() != 2:
        raise ValueError(f"resample_path expects (frames, latent_dim), got {tuple(path.shape)}")
    if steps == 1:
        return path[:1].clone()
    if path.shape[0] == 1:
        return path.expand(steps, -1).clone()
    where = torch.linspace(0.0, float(path.shape[0] - 1), steps)
    index = where.floor().long().clamp(max=path.shape[0] - 2)
    frac = (where - index.float())[:, None]
    return path[index] * (1.0 - frac) + path[index + 1] * frac


def interpolate_trajectory(start: Tensor, end: Tensor, steps: int) -> Tensor:
    """Path from ``start`` to ``end`` over ``steps`` frames ``(steps, latent_dim)``.

    ``start``/``end`` are either points ``(latent_dim,)`` (e.g. the mean latent of a sound): the
    path is the straight line between them; or sequences ``(frames, latent_dim)`` (a sound's
    frame latents, any lengths): both are time-stretched to ``steps`` frames and frame ``t`` is
    cross-faded ``(1 - a) * start[t] + a * end[t]`` with ``a`` going linearly from 0 to 1, so the
    result follows the first sound's evolution at the beginning and the second's at the end.
    """
    if start.dim() != end.dim() or start.shape[-1] != end.shape[-1] or start.dim() not in (1, 2):
        raise ValueError(f"interpolate expects two (latent_dim,) points or two (frames, latent_dim) "
                         f"sequences, got {tuple(start.shape)} and {tuple(end.shape)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if start.dim() == 1:
        start, end = start[None, :], end[None, :]
    start_path = resample_path(start.float(), steps)
    end_path = resample_path(end.float(), steps)
    weight = (torch.linspace(0.0, 1.0, steps) if steps > 1 else torch.zeros(1))[:, None]
    return (1.0 - weight) * start_path + weight * end_path
