"""Bounded by construction: no input, latent, attribute value, dtype
or weights makes ``encode``/``decode``/``forward`` emit NaN/Inf or an unbounded sample, eager or
scripted; invalid shapes raise one line naming the method. Property-style: every input x method x
weights x (eager, scripted), on a tiny model."""
import copy
import math
import re
from typing import Dict

import pytest
import torch
from torch import Tensor

from vschaos.dsp import bounds
from vschaos.dsp.transforms import SpectralTransform
from vschaos.export import StreamingVAE, script_model
from vschaos.models.vae import SpectralVAE

B = 512  # samples per call: 8 hops of 64
PITCH_CLASSES = 4


def tiny_vae(weights: str, decoder_channels=(), seed: int = 0) -> SpectralVAE:
    """A tiny pitch-conditioned VAE with a predictor and bad statistics (norm_std at the
    1e-4 floor in the upper, "band-limited" half of the bins). ``weights``: ``init`` (default init),
    ``random`` (every parameter N(0, 1)) or ``x100`` (the default init times 100)."""
    torch.manual_seed(seed)
    transform = SpectralTransform(sample_rate=8000, n_fft=256, hop=64)
    vae = SpectralVAE(transform, latent_dim=4,
                      encoder={"channels": [4], "hidden_dims": 32, "nlayers": 1},
                      decoder={"channels": list(decoder_channels), "hidden_dims": 32, "nlayers": 1},
                      conditioning={"pitch": {"dim": PITCH_CLASSES, "target": ["decoder"]}},
                      prediction={"pitch": {"dim": PITCH_CLASSES, "args": {"nlayers": 1, "hidden_dims": 16}}})
    n = transform.n_bins
    std = torch.where(torch.arange(n) < n // 2, torch.full((n,), 0.3), torch.full((n,), 1e-4))
    transform.set_normalisation(torch.linspace(0.3, 1e-4, n), std)
    with torch.no_grad():
        for parameter in vae.parameters():
            if weights == "random":
                parameter.normal_()
            elif weights == "x100":
                parameter.mul_(100.0)
    return vae.eval()


def audio_inputs() -> Dict[str, Tensor]:
    """Issue 9 / 14's inputs, ``(batch 2, 1, B)`` float32 unless said."""
    g = torch.Generator().manual_seed(1)
    t = torch.arange(B, dtype=torch.float32)
    impulse = torch.zeros(B)
    impulse[100] = 1.0
    mixed = torch.rand(B, generator=g) * 2 - 1
    mixed[::7], mixed[3::11], mixed[5::13] = float("nan"), float("inf"), -float("inf")
    rows = {
        "white noise 0 dBFS": torch.rand(B, generator=g) * 2 - 1,
        "impulse": impulse,
        "dc": torch.ones(B),
        "full-scale square": torch.sign(torch.sin(2 * math.pi * 440.0 * t / 8000.0)),
        "1e12": torch.full((B,), 1e12),
        "1e30 noise": (torch.rand(B, generator=g) * 2 - 1) * 1e30,
        "nan": torch.full((B,), float("nan")),
        "inf": torch.full((B,), float("inf")),
        "nan/inf mixed": mixed,
    }
    out = {name: row.expand(2, B).reshape(2, 1, B).clone() for name, row in rows.items()}
    out["float64 noise"] = out["white noise 0 dBFS"].double()
    return out


def latent_inputs(latent_dim: int) -> Dict[str, Tensor]:
    """Latents ``(batch 2, latent + 1 label, B // hop)``; the label inlet is in range."""
    frames = B // 64

    def with_label(z: Tensor) -> Tensor:
        return torch.cat([z, torch.full((2, 1, frames), 2.0, dtype=z.dtype)], dim=1)

    g = torch.Generator().manual_seed(2)
    return {name: with_label(z) for name, z in {
        "normal": torch.randn(2, latent_dim, frames, generator=g),
        "+-300": torch.randn(2, latent_dim, frames, generator=g).sign() * 300.0,
        "1e30": torch.full((2, latent_dim, frames), 1e30),
        "nan": torch.full((2, latent_dim, frames), float("nan")),
        "-inf": torch.full((2, latent_dim, frames), -float("inf")),
        "float64": torch.randn(2, latent_dim, frames, generator=g, dtype=torch.float64) * 3,
    }.items()}


def check_bounded(name: str, out: Tensor, limit: float) -> None:
    assert out.dtype == torch.float32, f"{name}: dtype {out.dtype}"
    assert bool(torch.isfinite(out).all()), f"{name}: NaN/Inf in the output"
    assert float(out.abs().max()) <= limit, f"{name}: peak {float(out.abs().max())} > {limit}"


def modules(weights: str):
    vae = tiny_vae(weights)
    eager_vae = copy.deepcopy(vae)
    for parameter in eager_vae.parameters():
        parameter.requires_grad_(False)
    eager = StreamingVAE(eager_vae, temperature=bounds.MAX_TEMPERATURE).eval()
    return {"eager": eager, "scripted": script_model(vae, temperature=bounds.MAX_TEMPERATURE)}


@pytest.mark.parametrize("weights", ["init", "random", "x100"])
def test_no_input_latent_or_weights_give_non_finite_or_unbounded_outputs(weights):
    for kind, model in modules(weights).items():
        clean = audio_inputs()["white noise 0 dBFS"] * 0.1
        for name, x in audio_inputs().items():
            model.reset()
            for call in range(2):  # twice: the state carried from a bad buffer is bounded too
                where = f"{kind} {weights} encode({name}) call {call}"
                latent = model.encode(x)
                check_bounded(where, latent, bounds.LATENT_LIMIT)
                predicted = latent[:, -1]
                assert bool(((predicted >= 0) & (predicted < PITCH_CLASSES)).all()), where
        for phase in ("pghi", "random", "keep_input"):
            assert model.set_phase(phase) == 0
            for name, x in audio_inputs().items():
                label = torch.full_like(x, 1.0)
                model.reset()
                for call in range(2):
                    where = f"{kind} {weights} {phase} forward({name}) call {call}"
                    check_bounded(where, model.forward(torch.cat([x, label], dim=1)), bounds.OUTPUT_LIMIT)
                # a clean buffer afterwards: nothing stuck in the state
                check_bounded(f"{kind} {weights} forward after {name}",
                              model.forward(torch.cat([clean, torch.ones_like(clean)], dim=1)), bounds.OUTPUT_LIMIT)
            for name, z in latent_inputs(4).items():
                model.reset()
                for call in range(2):
                    check_bounded(f"{kind} {weights} {phase} decode({name}) call {call}", model.decode(z),
                                  bounds.OUTPUT_LIMIT)
            for state in ("forward_analysis", "forward_synthesis", "decode_synthesis", "forward_rtpghi"):
                for buffer_name, buffer in getattr(model, state).named_buffers():
                    assert buffer.dtype != torch.float64, f"{kind}: {state}.{buffer_name} became float64"
                    if buffer.is_floating_point():
                        assert bool(torch.isfinite(buffer).all()), f"{kind} {weights}: {state}.{buffer_name}"


def test_a_float64_call_does_not_poison_the_export():
    """Issue 14's reproduction: a float64 call, then float32 calls, as if the float64 call had been float32."""
    model, fresh = script_model(tiny_vae("init")), script_model(tiny_vae("init"))
    x = audio_inputs()["white noise 0 dBFS"] * 0.3
    label = torch.ones_like(x)
    first = model.forward(torch.cat([x, label], dim=1).double())
    second = model.forward(torch.cat([x, label], dim=1))
    expected = torch.cat([fresh.forward(torch.cat([x, label], dim=1)) for _ in range(2)], dim=-1)
    assert first.dtype == second.dtype == torch.float32
    torch.testing.assert_close(torch.cat([first, second], dim=-1), expected, rtol=0, atol=0)
    assert model.forward_analysis.history.dtype == torch.float32


def test_temperature_above_the_documented_maximum_is_refused():
    model = script_model(tiny_vae("init"))
    assert bounds.MAX_TEMPERATURE == 10.0
    assert model.set_temperature(1e4) == -1 and model.get_temperature() == (0.0,)
    assert model.set_temperature(float("nan")) == -1 and model.set_temperature(-0.1) == -1
    assert model.set_temperature(10.0) == 0 and model.get_temperature() == (10.0,)
    with pytest.raises(ValueError, match=r"temperature must be within \[0, 10\], got 11"):
        StreamingVAE(tiny_vae("init"), temperature=11.0)


@pytest.mark.parametrize("method, shape, message", [
    ("forward", (0, 2, B), r"forward: empty batch \(shape \[0, 2, 512\]\), expected at least one row"),
    ("forward", (1, 2, 0), r"forward: empty buffer \(0 samples \(a multiple of the hop size 64\)\)"),
    ("encode", (0, 1, B), r"encode: empty batch"),
    ("encode", (1, 1, 0), r"encode: empty buffer"),
    ("decode", (1, 5, 0), r"decode: empty buffer \(0 latent frames\)"),
    ("decode", (0, 5, 8), r"decode: empty batch"),
    ("decode", (1, 4, 8), r"decode: expected 5 input channels, got 4 \(shape \[1, 4, 8\]\)"),
    ("forward", (1, 3, B), r"forward: expected 2 input channels, got 3"),
    ("encode", (1, 2, B), r"encode: expected 1 input channels, got 2"),
    ("forward", (2, B), r"forward: expected a \(batch, 2, time\) tensor, got shape \[2, 512\]"),
    ("forward", (1, 2, 100), r"forward: buffer of 100 samples is not a multiple of the hop size 64"),
])
def test_invalid_shapes_raise_one_line_naming_the_method(method, shape, message):
    eager = StreamingVAE(tiny_vae("init"))
    scripted = script_model(tiny_vae("init"))
    with pytest.raises(ValueError, match=message):
        getattr(eager, method)(torch.zeros(shape))
    with pytest.raises(torch.jit.Error) as caught:
        getattr(scripted, method)(torch.zeros(shape))
    last = str(caught.value).strip().splitlines()[-1]  # TorchScript prints its frames, then the error
    assert last.startswith("builtins.ValueError: " + method + ":")
    assert re.search(message, last)


def test_export_refuses_non_finite_weights():
    vae = tiny_vae("init")
    with torch.no_grad():
        vae.decoder.mlp.net[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"export refused: 1 of \d+ parameters are NaN/Inf"):
        script_model(vae)


def test_model_clamps_features_latents_and_decoded_magnitudes_in_every_path():
    """The clamps live in SpectralVAE, so training, generation and export share them."""
    vae = tiny_vae("x100")
    transform = vae.transform
    features = torch.randn(3, transform.n_bins) * 1e6
    features[0, :5] = float("nan")
    mean, std = vae.encode(features, {})
    expected_mean, expected_std = vae.encode(torch.nan_to_num(features).clamp(-100, 100), {})
    torch.testing.assert_close((mean, std), (expected_mean, expected_std), rtol=0, atol=0)
    z = torch.tensor([[1e30, -1e30, float("nan"), 3.0]])
    torch.testing.assert_close(vae.decode(z, {}), vae.decode(torch.tensor([[50.0, -50.0, 0.0, 3.0]]), {}))
    with torch.no_grad():
        magnitude = transform.from_features(vae.decode(torch.randn(64, 4) * 50, {}))
    ceiling = float(bounds.magnitude_ceiling(transform.window))
    assert bool(torch.isfinite(magnitude).all()) and float(magnitude.min()) >= 0.0
    assert float(magnitude.max()) <= ceiling * (1 + 1e-5)
    assert ceiling == pytest.approx(4.0 * float(transform.window.sum()))


def test_decoded_clamp_never_touches_what_a_full_scale_input_gives():
    """Training targets (the features of any audio within full scale) pass the decoded-feature clamp
    unchanged, so the clamp cannot change what a model learns."""
    vae = tiny_vae("init")
    transform = vae.transform
    t = torch.arange(4096, dtype=torch.float32)
    signals = torch.stack([torch.sign(torch.sin(2 * math.pi * 440.0 * t / 8000.0)), torch.ones(4096),
                           torch.sin(2 * math.pi * 1000.0 * t / 8000.0), torch.zeros(4096)])
    features = transform.to_features(transform.magnitude(signals)).reshape(-1, transform.n_bins)
    torch.testing.assert_close(vae.bound_decoded(features), features, rtol=0, atol=0)
    # a full-scale input's magnitudes stay below the ceiling by the documented headroom
    peak = float(transform.magnitude(signals).max())
    window_sum = float(transform.window.sum())
    assert peak <= window_sum * (1 + 1e-6) and window_sum == pytest.approx(
        float(bounds.magnitude_ceiling(transform.window)) / bounds.MAGNITUDE_HEADROOM)


def test_soft_clip_is_identity_within_the_knee_and_bounded_beyond():
    x = torch.linspace(-1e6, 1e6, 200001)
    x = torch.cat([x, torch.linspace(-3, 3, 6001), torch.tensor([float("nan"), float("inf"), -float("inf")])])
    y = bounds.soft_clip(x)
    inside = x.abs() <= bounds.OUTPUT_KNEE
    assert torch.equal(y[inside], x[inside])
    assert bool(torch.isfinite(y).all()) and float(y.abs().max()) <= bounds.OUTPUT_LIMIT
    assert y[-3].item() == 0.0 and y[-2].item() == pytest.approx(4.0) and y[-1].item() == pytest.approx(-4.0)
    finite = x[:-3].sort().values
    assert bool((bounds.soft_clip(finite).diff() >= 0).all())  # monotone
    # slope 1 on both sides of the knee: no kink
    h = 1e-3
    slope = (bounds.soft_clip(torch.tensor(2.0 + h)) - bounds.soft_clip(torch.tensor(2.0))) / h
    assert float(slope) == pytest.approx(1.0, abs=2e-3)
    assert bounds.OUTPUT_KNEE == 2.0 and bounds.OUTPUT_LIMIT == 4.0
