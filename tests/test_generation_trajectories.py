"""Latent trajectories (pure functions) and the latent/spectrogram figure."""
import math

import pytest
import torch

from vschaos.generation.plots import plot_latents_and_spectrogram
from vschaos.generation.trajectories import (
    TRAJECTORIES,
    LatentSpread,
    UnknownTrajectoryError,
    check_trajectory_names,
    circle_trajectory,
    interpolate_trajectory,
    line_trajectory,
    make_trajectory,
    random_trajectory,
    sin_trajectory,
    trajectory_names,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", sorted(TRAJECTORIES))
def test_shape_finite_and_deterministic(name):
    a = make_trajectory(name, 200, 6, _gen(3))
    b = make_trajectory(name, 200, 6, _gen(3))
    c = make_trajectory(name, 200, 6, _gen(4))
    assert a.shape == (200, 6) and a.dtype == torch.float32
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("name", sorted(TRAJECTORIES))
def test_paths_stay_within_the_prior(name):
    # many draws: every value within a few std of N(0, I), and the path actually moves
    paths = torch.stack([make_trajectory(name, 256, 8, _gen(seed)) for seed in range(20)])
    assert paths.abs().max() < 5.0
    assert paths.std(dim=1).mean() > 0.2


@pytest.mark.parametrize("name", sorted(TRAJECTORIES))
def test_paths_are_smooth(name):
    # neighbouring frames differ much less than the path's overall spread
    path = make_trajectory(name, 512, 4, _gen(0))
    step = (path[1:] - path[:-1]).abs().max()
    assert step < 0.25 * (path.max() - path.min())


def test_sin_is_sinusoidal_per_dimension():
    # a pure sinusoid obeys x[t+1] + x[t-1] = 2 cos(w) x[t] exactly: fit c per dimension
    path = sin_trajectory(1000, 3, _gen(1)).double()
    middle, sides = path[1:-1], path[2:] + path[:-2]
    c = (middle * sides).sum(0) / (middle * middle).sum(0)
    residual = (sides - c * middle).abs().max()
    assert residual < 1e-4
    assert ((c / 2).abs() < 1).all()  # oscillating, not growing
    assert (path.amax(0) > 0.45).all()  # amplitude at least ~0.5 standard units


def test_random_walk_has_unit_stationary_variance():
    paths = torch.cat([random_trajectory(256, 16, _gen(seed)) for seed in range(10)], dim=1)
    assert 0.7 < float(paths.std()) < 1.3


def test_line_is_piecewise_linear_through_its_vertices():
    path = line_trajectory(301, 5, _gen(2), n_segments=3)
    second_difference = (path[2:] - 2 * path[1:-1] + path[:-2]).abs().amax(dim=1)
    kinks = (second_difference > 1e-4).nonzero().flatten() + 1
    # the only bends are at the vertices (frames 100 and 200 for 301 frames and 3 segments)
    assert set(kinks.tolist()) <= {99, 100, 101, 199, 200, 201}
    assert len(kinks) >= 2


def test_circle_lies_in_a_plane_at_constant_radius():
    path = circle_trajectory(400, 7, _gen(5))
    radius = path.norm(dim=1)
    assert torch.allclose(radius, radius[0].expand_as(radius), atol=1e-4)
    assert 0.5 <= float(radius[0]) <= 2.0
    singular = torch.linalg.svdvals(path)
    assert singular[2] < 1e-3 * singular[0]  # rank 2
    assert torch.allclose(path[0], circle_trajectory(400, 7, _gen(5))[0])
    # one turn: the path closes on itself
    assert (path[-1] - path[0]).norm() < 0.05 * float(radius[0]) * 2 * math.pi


def test_circle_in_one_dimension_degenerates_to_a_cosine():
    path = circle_trajectory(100, 1, _gen(0))
    assert path.shape == (100, 1) and torch.isfinite(path).all()


def test_spread_maps_standard_units():
    spread = LatentSpread(torch.tensor([10.0, -5.0]), torch.tensor([0.1, 3.0]))
    standard = make_trajectory("sin", 100, 2, _gen(0))
    mapped = make_trajectory("sin", 100, 2, _gen(0), spread=spread)
    assert torch.allclose(mapped, spread.mean + spread.std * standard)
    latents = torch.randn(5000, 3, generator=_gen(1)) * torch.tensor([1.0, 2.0, 0.5]) + 4.0
    fitted = LatentSpread.from_latents(latents)
    assert torch.allclose(fitted.mean, torch.full((3,), 4.0), atol=0.1)
    assert torch.allclose(fitted.std, torch.tensor([1.0, 2.0, 0.5]), atol=0.1)


def test_interpolate_between_points_is_a_straight_line():
    start, end = torch.tensor([0.0, 1.0]), torch.tensor([2.0, -1.0])
    path = interpolate_trajectory(start, end, 5)
    assert torch.allclose(path, torch.tensor([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0], [1.5, -0.5], [2.0, -1.0]]))


def test_interpolate_between_sequences_is_frame_aligned():
    start = torch.zeros(10, 3)
    start[:, 0] = torch.linspace(0, 1, 10)
    end = torch.full((4, 3), 5.0)
    path = interpolate_trajectory(start, end, 50)
    assert path.shape == (50, 3)
    assert torch.allclose(path[0], start[0]) and torch.allclose(path[-1], end[-1])
    # halfway: the mean of both time-stretched sequences at that time
    assert torch.allclose(path[:, 1], 5.0 * torch.linspace(0, 1, 50), atol=1e-5)


def test_interpolate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="interpolate expects"):
        interpolate_trajectory(torch.zeros(3), torch.zeros(4), 10)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownTrajectoryError) as info:
        check_trajectory_names(["sin", "spiral", "zigzag"])
    message = str(info.value)
    assert "'spiral'" in message and "'zigzag'" in message
    for name in trajectory_names():
        assert name in message
    with pytest.raises(UnknownTrajectoryError, match="valid: "):
        make_trajectory("spiral", 10, 2, _gen(0))
    check_trajectory_names(["sin", "random", "line", "circle", "interpolate"])


def test_plot_writes_a_png(tmp_path):
    latents = make_trajectory("sin", 64, 4, _gen(0))
    magnitude = torch.rand(64, 129, generator=_gen(1))
    out = plot_latents_and_spectrogram(tmp_path / "sub" / "fig.png", latents, magnitude, 16000, 64,
                                       title="sin 0")
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000
    assert not list((tmp_path / "sub").glob(".*.tmp"))
