"""Ordered latents (vschaos.export.latent_axes) and named latents (vschaos.export.latent_names) in the nn~ export.

Held: the rotated export's encode/decode equal the unrotated model's (exactly up to float64 rounding); ``--fidelity``
keeps the fewest components reaching its share and decodes the rest at the mean; a pitch coordinate is never
rotated; a decoder double whose latents are a gain, a spectral tilt and a noise mix gets its components named
"louder" (with the slope the gain law gives), "brighter" and "noisier"; the stored axes file is keyed to the
checkpoint, a stale or malformed one recomputed with a note; unreadable training data gives identity axes.
"""
import math
from types import SimpleNamespace
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from vschaos.cli.train import compose_config
from vschaos.dsp.transforms import SpectralTransform
from vschaos.export import latent_axes as axes_module
from vschaos.export.latent_axes import (AXES_FILE, LatentAxes, axes_from_latents, fidelity_components,
                                        latents_markdown, run_latent_axes)
from vschaos.export.latent_names import SWEEP_STD, measure_effects
from vschaos.export.ordered_export import export_ordered, ordered_module
from vschaos.export.export import streaming_module
from vschaos.io import atomic_torch_save
from vschaos.training.run import build_model

RATE, N_FFT, HOP = 22050, 1024, 256


def designed_latents(stds: List[float], mean: List[float], frames: int = 400, seed: int = 0,
                     basis: Optional[Tensor] = None) -> Tensor:
    """Latents whose principal axes are exactly ``basis``'s rows (default: the coordinate axes) with these stds."""
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randn(frames, len(stds), generator=generator, dtype=torch.float64)
    q, _ = torch.linalg.qr(raw - raw.mean(0))  # centred orthonormal columns
    scores = q * math.sqrt(frames - 1) * torch.tensor(stds, dtype=torch.float64)
    if basis is not None:
        scores = scores @ basis.double()
    return (scores + torch.tensor(mean, dtype=torch.float64)).float()


def random_rotation(n: int, seed: int = 1) -> Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q.float()


@pytest.fixture(scope="module")
def demo_axes(normalised_demo_vae):
    latent_dim = int(normalised_demo_vae.latent_dim)
    stds = [2.0 * 0.6 ** i for i in range(latent_dim)]
    latents = designed_latents(stds, [0.3] * latent_dim, basis=random_rotation(latent_dim))
    return axes_from_latents(latents, 0, "designed latents")


def sound(seconds: float = 0.5) -> Tensor:
    t = torch.arange(int(seconds * RATE), dtype=torch.float64) / RATE
    tone = sum(torch.sin(2 * math.pi * 220.0 * k * t) / k for k in range(1, 6))
    return (0.3 * tone + 0.05 * torch.randn(t.shape[0], generator=torch.Generator().manual_seed(3))).float()


# ---------------------------------------------------------------- ordering and fidelity
def test_axes_recover_the_designed_order_shares_and_fidelity():
    basis = random_rotation(4)
    axes = axes_from_latents(designed_latents([3.0, 2.0, 1.0, 0.1], [1.0, -2.0, 0.5, 0.0], basis=basis), 0, "t")
    assert torch.allclose(axes.scales, torch.tensor([3.0, 2.0, 1.0, 0.1]), atol=1e-4)
    total = 9 + 4 + 1 + 0.01
    assert torch.allclose(axes.shares, torch.tensor([9, 4, 1, 0.01]) / total, atol=1e-5)
    assert torch.allclose(axes.components.abs(), basis.abs(), atol=1e-4)  # the designed axes, up to sign
    assert fidelity_components(axes, 1.0) == 4
    assert fidelity_components(axes, 0.95) == 3  # 9/14.01 = 64%, 13/14.01 = 92.8%, 14/14.01 = 99.9%
    assert fidelity_components(axes, 0.5) == 1
    with pytest.raises(ValueError, match="fidelity must lie in"):
        fidelity_components(axes, 0.0)


# ---------------------------------------------------------------- the rotated export
def test_rotated_encode_decode_equal_the_unrotated_model(normalised_demo_vae, demo_axes):
    plain = streaming_module(normalised_demo_vae, dtype=torch.float64)
    rotated = ordered_module(normalised_demo_vae, demo_axes, dtype=torch.float64)
    assert rotated.latent_rotated and not plain.latent_rotated
    x = sound(1.0).reshape(1, 1, -1)[..., : 8 * 2048]
    z = plain.encode(x)
    c = rotated.encode(x)
    mean, components = demo_axes.mean.double(), demo_axes.components.double()
    expected = torch.einsum("kl,blt->bkt", components, z.double() - mean.reshape(1, -1, 1))
    assert torch.allclose(c.double(), expected, atol=1e-5)
    assert torch.allclose(plain.decode(z), rotated.decode(c), atol=1e-5)
    assert rotated.encode_output_labels[0].startswith("(signal) latent 0")


def test_fidelity_keeps_fewer_inlets_and_decodes_the_dropped_components_at_the_mean(normalised_demo_vae, demo_axes):
    kept = fidelity_components(demo_axes, 0.9)
    assert 1 <= kept < int(normalised_demo_vae.latent_dim)
    axes = LatentAxes(demo_axes.mean, demo_axes.components, demo_axes.scales, demo_axes.shares, 0, "t", kept)
    rotated = ordered_module(normalised_demo_vae, axes, dtype=torch.float64)
    plain = streaming_module(normalised_demo_vae, dtype=torch.float64)
    assert int(rotated.encode_params[2]) == kept and int(rotated.decode_params[0]) == kept
    assert len(rotated.decode_input_labels) == kept
    c = torch.randn(1, kept, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    z = axes.mean.double().reshape(1, -1, 1) + torch.einsum("kl,bkt->blt", axes.components[:kept].double(), c)
    assert torch.allclose(rotated.decode(c.float()), plain.decode(z.float()), atol=1e-5)


def test_a_pitch_coordinate_is_never_rotated():
    torch.manual_seed(0)
    vae = build_model(compose_config("dgt_harmonic", [])).eval()
    latent_dim, pitch_dims = int(vae.latent_dim), int(vae.pitch_dims)
    assert pitch_dims == 1
    # the pitch varies most and correlates with the rest: still its own inlet, uncentred
    stds = [5.0] + [1.0 / (i + 1) for i in range(latent_dim - 1)]
    latents = designed_latents(stds, [0.7] * latent_dim, basis=random_rotation(latent_dim))
    axes = axes_from_latents(latents, pitch_dims, "t")
    assert torch.equal(axes.components[0], torch.eye(latent_dim)[0])
    assert float(axes.components[1:, 0].abs().max()) == 0.0
    assert float(axes.shares[0]) == 0.0 and abs(float(axes.shares.sum()) - 1.0) < 1e-5
    rotation = axes_module.LatentRotation(axes, torch.float64)
    z = latents[:6].double()
    assert torch.allclose(rotation.to_inlets(z)[:, 0], z[:, 0])  # the pitch inlet is the coordinate itself
    assert torch.allclose(rotation.from_inlets(rotation.to_inlets(z)), z, atol=1e-9)
    axes.effects = measure_effects(vae, axes.mean, axes.components, axes.scales, axes.shares, pitch_dims)
    assert axes.labels()[0] == "latent 0: pitch"


# ---------------------------------------------------------------- names
class GainTiltNoise(nn.Module):
    """A decoder double with three latents: z0 a gain of ``GAIN_DB`` dB per unit, z1 a spectral tilt, z2 a mix of
    a flat noise floor into harmonic partials at 220 Hz. Only what naming reads: transform, latent_dim, decode."""

    GAIN_DB = 3.0

    def __init__(self, transform: SpectralTransform):
        super().__init__()
        self.transform = transform
        self.latent_dim = 3
        freqs = torch.arange(transform.n_bins, dtype=torch.float64) * RATE / N_FFT
        partials = sum(torch.exp(-0.5 * ((freqs - 220.0 * k) / 15.0) ** 2) / k for k in range(1, 9))
        kernel = torch.exp(-0.5 * (torch.arange(-40, 41, dtype=torch.float64) * RATE / N_FFT / 110.0) ** 2)
        envelope = torch.nn.functional.conv1d(partials.reshape(1, 1, -1), kernel.reshape(1, 1, -1), padding=40)[0, 0]
        self.register_buffer("partials", (partials / partials.norm()).float())
        self.register_buffer("envelope", (envelope / envelope.norm()).float())
        self.register_buffer("position", (freqs / freqs[-1] - 0.5).float())

    def decode(self, z: Tensor, labels: Dict[str, Tensor], logits: Optional[Dict[str, Tensor]] = None) -> Tensor:
        gain = 10.0 ** (self.GAIN_DB * z[:, :1] / 20.0)
        noise = torch.sigmoid(2.0 * z[:, 2:3])
        mixed = (1 - noise) * self.partials + noise * self.envelope  # the same spectral envelope, partials or noise
        tilted = mixed * torch.exp(2.0 * z[:, 1:2] * self.position)
        tilted = tilted / tilted.pow(2).sum(1, keepdim=True).sqrt()  # a tilt at constant power: not louder
        return self.transform.to_features(10.0 * gain * tilted)


def test_a_gain_latent_is_named_louder_with_its_slope_and_the_others_by_what_they_do():
    model = GainTiltNoise(SpectralTransform(sample_rate=RATE, n_fft=N_FFT, hop=HOP))
    # training latents: gain varies most (std 2), then the tilt (std 1), then the noise mix (std 0.5)
    axes = axes_from_latents(designed_latents([2.0, 1.0, 0.5], [0.0, 0.0, -1.0]), 0, "t")
    effects = measure_effects(model, axes.mean, axes.components, axes.scales, axes.shares, 0)
    assert [effect.name for effect in effects] == ["louder", "brighter", "noisier"]
    # the gain law: 3 dB per latent unit, 2 units per std
    assert effects[0].slope == pytest.approx(GainTiltNoise.GAIN_DB * 2.0, abs=0.01)
    assert effects[0].changes["loudness"] == pytest.approx(GainTiltNoise.GAIN_DB * 2.0 * 2 * SWEEP_STD, abs=0.05)
    assert abs(effects[0].changes["centroid"]) < 0.01 and abs(effects[0].changes["flatness"]) < 0.01
    assert effects[1].centroid_hz[1] > effects[1].centroid_hz[0]
    labels = [effect.label() for effect in effects]
    assert labels[0] == "latent 0: louder +24.0 dB, 76%"
    assert all(len(label) <= 60 for label in labels)  # a Max/Pd inlet tooltip
    assert effects[0].sentence() == "latent 0: louder (+24.0 dB over -2..+2 std), 76.2% of variance"
    # a component whose sign runs the other way is named by its direction
    flipped = measure_effects(model, axes.mean, -axes.components[:1], axes.scales[:1], None, 0)
    assert flipped[0].name == "quieter" and flipped[0].slope == pytest.approx(-6.0, abs=0.01)


def test_negligible_components_are_labelled_and_latents_md_tells_each(normalised_demo_vae):
    latent_dim = int(normalised_demo_vae.latent_dim)
    stds = [1.0] * 4 + [1e-3] * (latent_dim - 4)
    axes = axes_from_latents(designed_latents(stds, [0.0] * latent_dim), 0, "t")
    axes.effects = measure_effects(normalised_demo_vae, axes.mean, axes.components, axes.scales, axes.shares, 0)
    labels = axes.labels()
    assert all("(negligible)" in label for label in labels[4:]) and not any("(negligible)" in l for l in labels[:4])
    text = latents_markdown(axes, "demo")
    assert "# Latents of demo" in text and "| 0 | " in text and f"| {latent_dim - 1} | (negligible) |" in text
    assert "100.0%" in text  # the cumulative share


# ---------------------------------------------------------------- stored axes
def fake_run(tmp_path, vae, checkpoint_bytes: bytes = b"weights 1") -> SimpleNamespace:
    version = tmp_path / "run" / "version_0"
    (version / "checkpoints").mkdir(parents=True, exist_ok=True)
    checkpoint = version / "checkpoints" / "last.ckpt"
    checkpoint.write_bytes(checkpoint_bytes)
    return SimpleNamespace(version_dir=version, checkpoint_path=checkpoint, cfg=None, vae=vae)


@pytest.fixture
def counted_latents(monkeypatch, normalised_demo_vae):
    latent_dim = int(normalised_demo_vae.latent_dim)
    latents = designed_latents([1.5 ** -i for i in range(latent_dim)], [0.2] * latent_dim)
    calls = []

    def training_latents(cfg, vae):
        calls.append(1)
        return latents, "'designed'"

    monkeypatch.setattr(axes_module, "training_latents", training_latents)
    return calls


def test_axes_are_stored_once_per_checkpoint_and_recomputed_when_it_changes(tmp_path, normalised_demo_vae, counted_latents):
    run = fake_run(tmp_path, normalised_demo_vae)
    first, notes = run_latent_axes(run, fidelity=0.9, name=False)
    assert len(counted_latents) == 1 and (run.version_dir / AXES_FILE).is_file()
    assert any("stored in" in note for note in notes) and any("cumulative share" in note for note in notes)
    assert any(f"--fidelity 0.9 keeps {first.kept} of" in note for note in notes)
    again, notes = run_latent_axes(run, name=False)
    assert len(counted_latents) == 1 and any("read from" in note for note in notes)
    read, why = axes_module.stored_axes(run)  # what generate.py reads: never computed
    assert why == "" and torch.equal(read.components, again.components)
    assert torch.allclose(again.components, first.components) and again.kept == int(normalised_demo_vae.latent_dim)
    run.checkpoint_path.write_bytes(b"weights 2")  # a new checkpoint: the stored axes are stale
    assert axes_module.stored_axes(run)[0] is None and "another checkpoint" in axes_module.stored_axes(run)[1]
    _, notes = run_latent_axes(run, name=False)
    assert len(counted_latents) == 2 and any("another checkpoint; recomputing" in note for note in notes)


@pytest.mark.parametrize("content, why", [
    (b"not a torch file", "unreadable"),
    ({"format": "something else"}, "not a vschaos latent-axes file"),
    ("bad components", "'components' is not a finite tensor"),
    ("not orthonormal", "not an orthonormal basis"),
    ("link", "is a symbolic link"),
])
def test_a_malformed_axes_file_is_ignored_with_a_warning_and_replaced(tmp_path, normalised_demo_vae, counted_latents,
                                                                      content, why):
    run = fake_run(tmp_path, normalised_demo_vae)
    good, _ = run_latent_axes(run, name=False)
    path = run.version_dir / AXES_FILE
    stored = torch.load(path, weights_only=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "bad components":
        atomic_torch_save({**stored, "components": torch.full((2, 2), float("nan"))}, path)
    elif content == "not orthonormal":
        atomic_torch_save({**stored, "components": 2.0 * stored["components"]}, path)
    elif content == "link":  # to a well-formed file outside the version folder: not read
        outside = tmp_path / "elsewhere.pt"
        atomic_torch_save(stored, outside)
        path.unlink()
        path.symlink_to(outside)
    else:
        atomic_torch_save(content, path)
    axes, notes = run_latent_axes(run, name=False)
    assert any(note.startswith("warning:") and why in note for note in notes), notes
    assert len(counted_latents) == 2 and torch.allclose(axes.components, good.components)
    assert not path.is_symlink()
    assert torch.equal(torch.load(path, weights_only=True)["components"], stored["components"])  # replaced


def no_root_error():
    from hydra.errors import InstantiationException

    try:
        raise ValueError("no such folder: give data.dataset.root")
    except ValueError as cause:
        error = InstantiationException("Error in call to target 'SpectralDataModule':\nValueError(...)\nfull_key: data")
        error.__cause__ = cause
        return error


@pytest.mark.parametrize("error", [lambda: OSError("no such folder: /data/gone"), no_root_error])
def test_unreadable_training_data_gives_identity_axes_and_says_so(tmp_path, normalised_demo_vae, monkeypatch, error):
    def unreadable(cfg, vae):
        raise error()

    monkeypatch.setattr(axes_module, "training_latents", unreadable)
    run = fake_run(tmp_path, normalised_demo_vae)
    axes, notes = run_latent_axes(run, fidelity=0.5, name=False)
    assert torch.equal(axes.components, torch.eye(int(normalised_demo_vae.latent_dim))) and axes.shares is None
    assert axes.kept == int(normalised_demo_vae.latent_dim)
    assert any("training data not readable: no such folder" in note for note in notes)
    assert any("--fidelity 0.5 ignored" in note for note in notes)
    assert axes.is_identity() and not ordered_module(normalised_demo_vae, axes).latent_rotated  # no matrix product per call
    assert not (run.version_dir / AXES_FILE).exists()  # nothing stored: the data may be back next time


# ---------------------------------------------------------------- the verified export and the command line
def test_the_ordered_export_verifies_and_writes_latents_md(tmp_path, normalised_demo_vae, demo_axes):
    from vschaos.host import describe_model

    kept = fidelity_components(demo_axes, 0.9)
    axes = LatentAxes(demo_axes.mean, demo_axes.components, demo_axes.scales, demo_axes.shares, 0, "t", kept)
    axes.effects = measure_effects(normalised_demo_vae, axes.mean, axes.components[:kept], axes.scales[:kept], axes.shares)
    path, report, notes = export_ordered(normalised_demo_vae, tmp_path / "demo.ts", axes, buffers=[256, 2048],
                                         batch_sizes=(1,))
    assert report.ok and notes == tmp_path / "demo.latents.md"
    description = describe_model(str(path))
    decode = description.method("decode")
    assert decode.in_channels == kept
    assert decode.input_labels[:kept] == [f"(signal) {label}" for label in axes.labels()]
    assert f"| 0 | {axes.effects[0].name} |" in notes.read_text()
    assert f"{kept} of {int(normalised_demo_vae.latent_dim)} latents exported" in notes.read_text()


def test_script_refuses_a_fidelity_outside_its_range_before_loading(tmp_path, capsys):
    from vschaos.cli.script import main

    for value in ("0", "1.5", "nan"):
        assert main([str(tmp_path / "nowhere"), "--fidelity", value]) == 2
    # the run folder is checked first; with one present the flag itself is named
    from test_generation_cli import make_run

    run_dir = make_run(tmp_path / "runs", "demo", "tiny")
    capsys.readouterr()
    assert main([str(run_dir), "--fidelity", "1.5"]) == 2
    assert "--fidelity 1.5: must lie in (0, 1]" in capsys.readouterr().err


def test_neutone_direction_knobs_are_named_by_what_they_do(monkeypatch):
    """run_directions (the Neutone knobs) shares the ordered components and names each by its measured effect."""
    from omegaconf import OmegaConf

    from vschaos.export import directions as directions_module
    from vschaos.export.neutone_wrapper import direction_knob_names

    model = GainTiltNoise(SpectralTransform(sample_rate=RATE, n_fft=N_FFT, hop=HOP))
    latents = designed_latents([2.0, 1.0, 0.5], [0.0, 0.0, -1.0])
    monkeypatch.setattr(directions_module, "training_latents", lambda cfg, vae: (latents, "'designed'"))
    cfg = OmegaConf.create({"data": {"dataset": {"root": "designed"}}})
    directions, _ = directions_module.run_directions(cfg, model)
    axes = axes_from_latents(latents, 0, "t")
    assert torch.allclose(directions.vectors, axes.components[:2]) and torch.allclose(directions.scales, axes.scales[:2])
    assert directions.names == ["louder", "brighter"]
    assert direction_knob_names(directions) == ["dir 1: louder", "dir 2: brighter"]
    unnamed = directions_module.LatentDirections(directions.vectors, directions.scales, "t")
    assert direction_knob_names(unnamed) == ["direction 1", "direction 2"]


def test_script_exports_ordered_latents_of_a_run_and_reuses_its_stored_axes(tmp_path, capsys):
    from vschaos.cli.script import main
    from vschaos.data.demo import make_demo_dataset
    from test_generation_cli import make_run

    data = make_demo_dataset(tmp_path / "demo_data", sample_rate=RATE, minutes=0.1, files_per_instrument=1)
    run_dir = make_run(tmp_path / "runs", "demo", "tiny", dataset_root=data)
    assert main([str(run_dir), "-o", str(tmp_path / "out"), "--fidelity", "0.95", "--buffers", "2048"]) == 0
    printed = capsys.readouterr().out
    assert "latent axes computed from" in printed and "cumulative share of the variance by component" in printed
    kept = int(printed.split("--fidelity 0.95 keeps ")[1].split()[0])
    model = torch.jit.load(str(tmp_path / "out" / "tiny.ts"))
    assert int(model.decode_params[0]) == kept < int(model.latent_dim)
    assert (run_dir / "version_0" / AXES_FILE).is_file()
    assert f"{kept} of {int(model.latent_dim)} latents exported" in (tmp_path / "out" / "tiny.latents.md").read_text()
    assert main([str(run_dir), "-o", str(tmp_path / "again"), "--buffers", "2048"]) == 0
    assert "latent axes read from" in capsys.readouterr().out
    # generate.py trajectories then follows the stored axes: path dimension 0 is the main component
    from vschaos.cli.generate import main as generate
    from vschaos.export.latent_axes import checkpoint_digest, load_axes

    args = ["trajectories", str(run_dir), "--trajectories", "line", "-s", "8", "--seed", "3"]
    assert generate(args + ["--out", str(tmp_path / "ordered")]) == 0
    assert "paths follow the ordered latent axes" in capsys.readouterr().out
    path = torch.from_numpy(np.load(tmp_path / "ordered" / "trajectories" / "line_0.npy")).float()
    digest = checkpoint_digest(run_dir / "version_0" / "checkpoints" / "last.ckpt")
    stored, why = load_axes(run_dir / "version_0" / AXES_FILE, digest, int(model.latent_dim), 0)
    assert stored is not None, why
    (run_dir / "version_0" / AXES_FILE).unlink()
    assert generate(args + ["--out", str(tmp_path / "prior")]) == 0
    assert "ordered latent axes" not in capsys.readouterr().out
    units = torch.from_numpy(np.load(tmp_path / "prior" / "trajectories" / "line_0.npy")).float()  # prior: N(0, I)
    from vschaos.generation.trajectories import LatentSpread
    ordered = LatentSpread.ordered(stored.mean, stored.components, stored.scales)
    assert torch.allclose(path, ordered.apply(units), atol=1e-4) and not torch.allclose(path, units, atol=1e-2)


def test_trajectories_in_the_ordered_space_move_along_the_main_component_first():
    from vschaos.generation.trajectories import LatentSpread, make_trajectory

    basis = random_rotation(4)
    axes = axes_from_latents(designed_latents([3.0, 2.0, 1.0, 0.1], [1.0, -2.0, 0.5, 0.0], basis=basis), 0, "t")
    spread = LatentSpread.ordered(axes.mean, axes.components, axes.scales)
    step = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    moved = spread.apply(step)
    assert torch.allclose(moved[1], axes.mean) and torch.allclose(moved[0], axes.mean + 3.0 * axes.components[0],
                                                                  atol=1e-4)
    path = make_trajectory("sin", 16, 4, torch.Generator().manual_seed(0), spread)
    scores = (path.double() - axes.mean.double()) @ axes.components.double().T / axes.scales.double()
    plain = make_trajectory("sin", 16, 4, torch.Generator().manual_seed(0))
    assert torch.allclose(scores.float(), plain, atol=1e-4)  # the same standard-unit path, along the components
    with pytest.raises(ValueError, match="components"):
        LatentSpread.ordered(axes.mean, axes.components[:2], axes.scales)


def test_a_component_that_fades_to_silence_reads_as_at_most_the_silence_floor_louder():
    """A decoder whose latent 0 takes the sound from near silence (-120 dB) to full: named louder, but by no more
    than SILENCE_DB (a change from silence is not +150 dB to a musician)."""
    from vschaos.export.latent_names import SILENCE_DB

    class FadeFromSilence(nn.Module):
        def __init__(self, vae):
            super().__init__()
            self.transform = vae.transform

        def decode(self, z, labels):
            gain = torch.sigmoid(8.0 * z[:, :1]) ** 6  # ~1e-14 at -2 std, ~1 at +2 std
            magnitude = gain * torch.linspace(50.0, 1.0, int(self.transform.n_bins), dtype=z.dtype)
            return self.transform.to_features(magnitude)

    base = build_model(compose_config("demo", [])).eval()
    model = FadeFromSilence(base).double()
    effects = measure_effects(model, torch.zeros(16, dtype=torch.float64), torch.eye(16, dtype=torch.float64)[:1],
                              torch.ones(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    assert effects[0].descriptor == "loudness" and effects[0].name == "louder"
    assert 40.0 < effects[0].changes["loudness"] <= SILENCE_DB + 1e-6, effects[0].changes


def test_sweep_changes_reads_a_known_sweep():
    """The change over a sweep from descriptor values alone (the bench re-analyses decoded audio with it): a
    linear 3 dB/std loudness over -2..+2 std changes 12 dB; an octave of centroid is +12 semitones; a point
    60 dB below the loudest counts as silent, so its colour is left out."""
    from vschaos.export.latent_names import SILENCE_DB, sweep_changes

    t = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)
    values = {"loudness": -20.0 + 3.0 * t, "centroid": 500.0 * 2.0 ** ((t + 2.0) / 4.0),
              "flatness": torch.full_like(t, -10.0), "f0": torch.full_like(t, 220.0)}
    changes, slopes, fits = sweep_changes(t, values)
    assert changes["loudness"] == pytest.approx(12.0) and slopes["loudness"] == pytest.approx(3.0)
    assert changes["centroid"] == pytest.approx(12.0) and fits["centroid"] == pytest.approx(1.0)
    assert changes["flatness"] == pytest.approx(0.0) and changes["f0"] == pytest.approx(0.0)
    values["loudness"] = values["loudness"].clone()
    values["loudness"][0] = -20.0 - SILENCE_DB - 50.0  # silent end point: floored, its centroid unread
    values["centroid"] = values["centroid"].clone()
    values["centroid"][0] = 20000.0
    changes, _, _ = sweep_changes(t, values)
    assert changes["centroid"] == pytest.approx(12.0 * 7 / 8, rel=0.05)
    assert changes["loudness"] < 12.0 + SILENCE_DB


def test_heard_frames_play_a_frame_as_the_export_would():
    """A held frame of a real tone comes back (RTPGHI phase, overlap-add, analysis) close to itself, at the
    level it was given: the loudness a name states is the audio's."""
    import math

    from vschaos.dsp import functional as F
    from vschaos.dsp.transforms import SpectralTransform
    from vschaos.export.latent_names import HOLD_FRAMES, heard_frames

    transform = SpectralTransform(sample_rate=22050, n_fft=1024, hop=256)
    t = torch.arange(22050, dtype=torch.float64) / 22050
    tone = sum(torch.sin(2 * math.pi * k * 220.0 * t) / k for k in range(1, 12)).float() * 0.1
    frame = transform.magnitude(tone[None])[0, 40:41]  # (1, bins), a steady frame
    heard = heard_frames(transform, frame)
    assert heard.shape[0] == 1 and 2 <= heard.shape[1] < HOLD_FRAMES and heard.shape[2] == frame.shape[1]
    assert float(F.spectral_convergence(frame.expand_as(heard[0]), heard[0])) < 0.15
    louder = heard_frames(transform, 4.0 * frame)
    # four times the frame: 12 dB louder to the last digits (RTPGHI reads log-magnitude differences)
    torch.testing.assert_close(louder.pow(2).sum(-1), 16.0 * heard.pow(2).sum(-1), rtol=1e-4, atol=0.0)
