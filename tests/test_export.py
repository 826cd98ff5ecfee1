"""The nn~ export (vschaos.export, script.py), checked with our streaming host (vschaos.host).

Fast tests use the demo and pitch presets with random weights and the model-contract double
(``identity_model``, tests/conftest.py) whose output is known exactly (delays, gain). Full-preset
verifications are marked slow.
"""
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import List

import pytest
import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from vschaos.dsp.transforms import SpectralTransform
from vschaos.cli.train import compose_config
from vschaos.export import (ExportVerificationError, StreamingVAE, export_model, label_ids,
                            script_model)
from vschaos.host import load_model as host_load
from vschaos.host import next_power_of_two, verify_model
from vschaos.host.verify import default_buffers
from vschaos.io import temporary_prefix
from vschaos.training.run import build_model

REPO = Path(__file__).resolve().parents[1]
PRESETS = ["demo", "dgt_low", "dgt_mid", "dgt_high", "dgt_harmonic", "dgt_live", "dgt_pitch_cond", "dgt_pitch_prediction"]


# dgt_pitch_prediction with vschaos2's predictors on the latent (the preset's read the spectrum)
LATENT_PREDICTORS = [f"{change}model.prediction.{task}.{key}" for task in ("pitch", "octave") for change, key in
                     (("", "type=MLPEncoder"), ("~", "args.fold"), ("~", "args.channels"))]


def preset_config(name: str, overrides=()):
    return compose_config(name, list(overrides))  # the training CLI's own composition


def preset_vae(name: str, seed: int = 0, overrides=()) -> nn.Module:
    """The preset's VAE with a random (seeded) init and a non-trivial normalisation."""
    torch.manual_seed(seed)
    vae = build_model(preset_config(name, overrides)).eval()
    n_bins = vae.transform.n_bins
    vae.transform.set_normalisation(torch.linspace(0.5, 0.05, n_bins), torch.linspace(0.6, 0.1, n_bins))
    return vae


class WrongDelayExport(StreamingVAE):
    """A deliberately broken export: it declares a forward delay one hop shorter than it has."""

    def delays(self):
        encode, decode, forward = super().delays()
        return encode, decode, forward - self.hop


def _script(module: nn.Module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(module)


def _stream(method, x: Tensor, step: int) -> Tensor:
    return torch.cat([method(x[..., i:i + step]) for i in range(0, x.shape[-1], step)], dim=-1)


@pytest.fixture(scope="module")
def small_transform():
    return SpectralTransform(sample_rate=22050, n_fft=1024, hop=256)


@pytest.fixture(scope="module")
def demo_vae():
    return preset_vae("demo")


@pytest.fixture(scope="module")
def demo_export(demo_vae):
    return script_model(demo_vae)


@pytest.fixture(scope="module")
def prediction_vae():
    return preset_vae("dgt_pitch_prediction", overrides=LATENT_PREDICTORS)


@pytest.fixture(scope="module")
def prediction_export(prediction_vae):
    return script_model(prediction_vae)


# ---------------------------------------------------------------- gain and delays (stand-in)
@pytest.mark.parametrize("block", [256, 512, 2048])
@pytest.mark.parametrize("batch", [1, 4])
def test_forward_keep_input_is_the_input_delayed_at_unit_gain(small_transform, identity_model, block, batch):
    model = _script(StreamingVAE(identity_model(small_transform), phase="keep_input"))
    audio = torch.randn(batch, 1, 8192) * 0.3
    out = _stream(model.forward, audio, block)
    delay = int(model.forward_delay[0])
    assert delay == 1024 - 256
    torch.testing.assert_close(out[..., delay:], audio[..., : 8192 - delay], atol=2e-5, rtol=1e-4)


def test_host_measures_the_declared_forward_delay(small_transform, identity_model):
    model = _script(StreamingVAE(identity_model(small_transform), phase="keep_input"))
    report = verify_model(model, buffers=[256, 2048], batch_sizes=(1,), methods=["forward"])
    delay = [c for c in report.checks if c.name == "delay" and c.method == "forward"]
    assert report.ok, report.format()
    assert len(delay) == 1 and not delay[0].warning and "measured 768 samples" in delay[0].summary


def test_decode_delay_is_the_centre_of_the_frame_it_produces(small_transform, identity_model):
    model = _script(StreamingVAE(identity_model(small_transform)))
    hop, n_fft = 256, 1024
    latent = torch.full((1, model.latent_dim, 16), -30.0)  # silence (features clamp to magnitude 0)
    # One flat first frame: a fresh RTPGHI gives its peaks (here every bin) phase 0, i.e. an impulse
    # at the frame's centre. The frame is read in block 0, so the impulse lands at the delay.
    latent[:, :, 0] = 1.0
    audio = model.decode(latent)[0, 0]
    assert int(model.decode_delay[0]) == n_fft // 2
    assert int(audio.abs().argmax()) == int(model.decode_delay[0])
    assert float(audio[: n_fft // 2 - hop].abs().max()) < 1e-3 * float(audio.abs().max())


def test_encode_delay_is_the_lag_of_the_frame_centre(small_transform, identity_model):
    model = _script(StreamingVAE(identity_model(small_transform)))
    hop, n_fft = 256, 1024
    impulse_at = 10 * hop + hop - n_fft // 2 + 3 * hop  # the centre of frame 13
    audio = torch.zeros(1, 1, 8192)
    audio[0, 0, impulse_at] = 1.0
    energy = model.encode(audio)[0].exp().sum(0)  # features = log1p|X| (identity normalisation)
    frame = int(energy.argmax())
    assert frame == 13
    # the frame is output (and held) from sample frame * hop: the lag behind its centre is the delay
    assert frame * hop - impulse_at == int(model.encode_delay[0]) == n_fft // 2 - hop
    assert int(model.encode_delay[0]) + int(model.decode_delay[0]) == int(model.forward_delay[0])


def test_export_with_a_wrong_declared_delay_is_refused(small_transform, identity_model, tmp_path):
    broken = _script(WrongDelayExport(identity_model(small_transform), phase="keep_input"))
    from vschaos.export import save_verified
    target = tmp_path / "broken.ts"
    with pytest.raises(ExportVerificationError, match="declared 512 samples, measured 768"):
        save_verified(broken, target, buffers=[256, 2048], batch_sizes=(1,))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- labels
def test_label_ids_round_clamp_and_unknown():
    values = torch.tensor([-3.0, -0.2, 0.0, 0.4, 0.6, 4.5, 11.2, 99.0, float("nan")])
    assert label_ids(values, 12).tolist() == [-1, -1, 0, 0, 1, 4, 11, 11, -1]


def test_label_inlets_follow_config_order_and_change_decode(prediction_export):
    model = prediction_export
    assert model.decode_input_labels[16:] == ["(signal) pitch class 0-11 (<0: predicted)",
                                              "(signal) octave class 0-10 (<0: predicted)"]
    assert model.encode_output_labels[16:] == ["(signal) predicted pitch class 0-11",
                                               "(signal) predicted octave class 0-10"]
    assert model.forward_input_labels == ["(signal) audio input", "(signal) pitch class 0-11 (<0: predicted)",
                                          "(signal) octave class 0-10 (<0: predicted)"]
    assert model.decode_params.tolist() == [18, 512, 1, 1]
    assert model.encode_params.tolist() == [1, 1, 18, 512]
    z = torch.randn(1, 16, 4)

    def decode_with(pitch: float, octave: float) -> Tensor:
        model.reset()
        x = torch.cat([z, torch.full((1, 1, 4), pitch), torch.full((1, 1, 4), octave)], dim=1)
        return model.decode(x)

    base = decode_with(2.0, 4.0)
    assert not torch.allclose(base, decode_with(9.0, 4.0))
    assert not torch.allclose(base, decode_with(2.0, 6.0))
    torch.testing.assert_close(decode_with(2.3, 4.0), base)  # rounded per frame
    torch.testing.assert_close(decode_with(1e6, 4.0), decode_with(11.0, 4.0))  # clamped
    for weird in (-1.0, -1e9, float("nan"), float("inf")):
        out = decode_with(weird, weird)
        assert out.shape == (1, 1, 2048) and bool(torch.isfinite(out).all())
    # negative = the model's own prediction: same as feeding the predicted classes
    predicted = model.vae.predict(z[0].T.to(model.vae.transform.norm_mean.dtype))  # the model math's dtype
    pitch, octave = predicted["pitch"].argmax(-1), predicted["octave"].argmax(-1)
    from_prediction = decode_with(-1.0, -1.0)
    model.reset()
    x = torch.cat([z, pitch.float().reshape(1, 1, 4), octave.float().reshape(1, 1, 4)], dim=1)
    torch.testing.assert_close(from_prediction, model.decode(x))


def test_spectrum_predictors_fill_unknown_labels_in_forward_from_the_input_and_not_in_decode():
    model = script_model(preset_vae("dgt_pitch_prediction"))
    assert model.forward_input_labels[1:] == ["(signal) pitch class 0-11 (<0: predicted)",
                                              "(signal) octave class 0-10 (<0: predicted)"]
    assert model.decode_input_labels[16:] == ["(signal) pitch class 0-11 (<0: unknown)",
                                              "(signal) octave class 0-10 (<0: unknown)"]
    t = torch.arange(8192) / 44100.0
    audio = sum(0.3 / k * torch.sin(2 * math.pi * 220.0 * k * t) for k in range(1, 6)).reshape(1, 1, -1)
    model.reset()
    classes = model.encode(audio)[:, 16:]  # (1, 2, frames): the spectrum predictors' classes per frame
    inlets = classes.repeat_interleave(model.hop, dim=-1)  # as nn~ would send them back, one value per hop
    model.reset()
    predicted = model.forward(torch.cat([audio, torch.full_like(inlets, -1.0)], dim=1))
    model.reset()
    given = model.forward(torch.cat([audio, inlets], dim=1))
    torch.testing.assert_close(predicted, given)
    model.reset()
    other = model.forward(torch.cat([audio, (inlets + 3) % 11], dim=1))
    assert not torch.allclose(predicted, other)  # the labels matter, so the equality above says something


def test_encode_outputs_predicted_classes(prediction_export):
    model = prediction_export
    model.reset()
    out = model.encode(torch.randn(2, 1, 2048) * 0.2)
    assert out.shape == (2, 18, 4)
    classes = out[:, 16:]
    assert bool((classes == classes.round()).all())
    assert 0 <= float(classes[:, 0].min()) and float(classes[:, 0].max()) <= 11
    assert 0 <= float(classes[:, 1].min()) and float(classes[:, 1].max()) <= 10
    latent = out[:, :16].transpose(1, 2).reshape(-1, 16).to(model.vae.transform.norm_mean.dtype)
    expected = model.vae.predict(latent)["pitch"].argmax(-1)
    assert classes[:, 0].reshape(-1).tolist() == expected.float().tolist()


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
def test_inlet_order_is_the_config_order_under_any_hash_seed():
    code = ("import json, warnings; warnings.simplefilter('ignore');"
            "from tests.test_export import preset_vae; from vschaos.export import StreamingVAE;"
            "m = StreamingVAE(preset_vae('dgt_pitch_cond'));"
            "print(json.dumps([m.decode_input_labels[16:], m.forward_input_labels, m.encoder_tasks]))")
    outputs = set()
    for hash_seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout.strip().splitlines()[-1])
    assert len(outputs) == 1
    decode_labels, forward_labels, _ = json.loads(outputs.pop())
    config_order = list(preset_config("dgt_pitch_cond").model.conditioning.keys())
    assert [label.split()[1] for label in decode_labels] == config_order
    assert [label.split()[1] for label in forward_labels[1:]] == config_order


# ---------------------------------------------------------------- the interface wrappers use
def _chained_stages(model, x: Tensor) -> Tensor:
    """``forward(x)`` through the public stages alone, in the order vschaos.export.streaming_stages gives."""
    spec = model.analyse(x)
    counter = model.forward_counter(x.shape[0], spec.shape[1])
    f0 = model.pitch_in(x)
    decoded = model.network(model.features_in(spec), model.forward_labels(x), counter, f0)
    magnitude = model.features_out(decoded, spec)
    return model.synthesise(magnitude, model.phase_of(magnitude, spec, counter))


@pytest.mark.parametrize("preset, phase, temperature, transpose", [
    ("dgt_pitch_prediction", "pghi", 0.0, 0.0), ("dgt_pitch_prediction", "random", 1.0, 0.0),
    ("demo", "keep_input", 0.5, 0.0), ("dgt_harmonic", "pghi", 0.3, 7.0), ("dgt_live", "pghi", 0.3, -5.0)])
def test_forward_is_its_public_stages_chained(preset, phase, temperature, transpose):
    """Wrappers and bench/neutone_speed.py use forward's public stages: chained, call after call (the streaming
    state carried, a batch of two), they give forward's own output bit for bit, with label inlets, predictors,
    latent noise, the latent offset, transpose, every phase mode and out-of-bound input samples."""
    vae = preset_vae(preset, overrides=LATENT_PREDICTORS if preset == "dgt_pitch_prediction" else ())
    stages, whole = script_model(vae), script_model(vae)
    hop, n_tasks = whole.hop, len(whole.forward_tasks)
    x = 0.1 * torch.randn(2, 1 + n_tasks, 12 * hop, generator=torch.Generator().manual_seed(3))
    x[:, 1:] = -1.0
    if n_tasks:
        x[0, 1] = 4.0  # a known label on one row, unknown on the other
    x[0, 0, 100], x[1, 0, 300], x[0, 0, 500:520] = math.nan, -math.inf, 5e4
    offset = torch.linspace(-0.5, 0.5, whole.latent_dim)
    for model in (stages, whole):
        assert model.set_phase(phase) == 0 and model.set_temperature(temperature) == 0 and model.set_seed(7) == 0
        if transpose:
            assert model.set_transpose(transpose) == 0
        model.set_latent_offset(offset)
    with torch.no_grad():
        for start in range(0, x.shape[2], 4 * hop):
            block = x[..., start:start + 4 * hop]
            expected = whole.forward(block)
            assert float(expected.abs().max()) > 0.0
            assert torch.equal(_chained_stages(stages, block), expected)


def test_the_latent_offset_moves_forward_and_refuses_a_wrong_shape(demo_vae):
    model = script_model(demo_vae)
    audio = 0.2 * torch.randn(1, 1, 2048, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        plain = model.forward(audio)
        model.reset()
        model.set_latent_offset(torch.full((model.latent_dim,), 0.5))
        moved = model.forward(audio)
        model.reset()
        model.set_latent_offset(torch.zeros(model.latent_dim))  # zeros: no effect
        assert torch.equal(model.forward(audio), plain) and not torch.allclose(moved, plain, atol=1e-3)
    eager = StreamingVAE(demo_vae)
    with pytest.raises(ValueError, match=r"^set_latent_offset: expected shape \[16\], got \[3\]$"):
        eager.set_latent_offset(torch.zeros(3))
    with pytest.raises(torch.jit.Error, match=r"set_latent_offset: expected shape \[16\], got \[2, 16\]"):
        model.set_latent_offset(torch.zeros(2, 16))
    assert model.forward_latent_offset.abs().max() == 0.0  # a refused offset leaves the previous one


def test_stream_delay_is_the_declared_forward_delay(small_transform, identity_model):
    model = StreamingVAE(identity_model(small_transform))
    assert model.stream_delay == int(model.forward_delay) == small_transform.n_fft - small_transform.hop
    assert WrongDelayExport(identity_model(small_transform)).stream_delay == model.stream_delay - small_transform.hop


# ---------------------------------------------------------------- attributes
def test_attributes_round_trip_and_refuse_bad_values(demo_export):
    model = demo_export
    assert model.get_attributes() == ["temperature", "phase", "seed", "level"]
    assert model.set_transpose(3.0) == -1  # no pitch latent: nothing to transpose (models/components/harmonic.py)
    assert model.get_methods() == ["forward", "encode", "decode"]
    assert model.temperature_params.tolist() == [2] and model.phase_params.tolist() == [3]
    assert model.seed_params.tolist() == [1]
    assert model.set_temperature(0.7) == 0 and model.get_temperature() == (0.7,)
    assert model.set_temperature(-1.0) != 0 and model.get_temperature() == (0.7,)
    assert model.set_phase("random") == 0 and model.get_phase() == ("random",)
    assert model.set_phase("griffin") != 0 and model.get_phase() == ("random",)
    assert model.set_seed(42) == 0 and model.get_seed() == (42,)
    model.set_temperature(0.0)
    model.set_phase("pghi")
    model.set_seed(0)


def test_phase_attribute_switches_modes(demo_export):
    model = demo_export
    audio = torch.randn(1, 1, 4096) * 0.2
    outputs = {}
    for mode in ("pghi", "random", "keep_input"):
        assert model.set_phase(mode) == 0
        model.reset()
        outputs[mode] = model.forward(audio)
    model.set_phase("pghi")
    assert not torch.allclose(outputs["pghi"], outputs["random"])
    assert not torch.allclose(outputs["pghi"], outputs["keep_input"])
    # all modes share the magnitude: same energy scale, very different waveforms
    energies = {k: float(v.pow(2).mean()) for k, v in outputs.items()}
    assert max(energies.values()) < 4 * min(energies.values())


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
def test_temperature_and_random_phase_are_streamable_and_reproducible(demo_export):
    model = demo_export
    model.set_temperature(1.0)
    model.set_phase("random")
    try:
        audio = torch.randn(2, 1, 4096) * 0.2
        model.reset()
        whole_forward, whole_latent = model.forward(audio), model.encode(audio)
        model.reset()
        torch.testing.assert_close(_stream(model.forward, audio, 256), whole_forward, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(_stream(model.encode, audio, 1024), whole_latent, atol=1e-5, rtol=1e-4)
        model.reset()
        mean_free = model.encode(audio)
        model.set_temperature(0.0)
        model.reset()
        assert not torch.allclose(mean_free, model.encode(audio))  # temperature samples around the mean
        report = verify_model(model, buffers=[256, 1024], batch_sizes=(1, 3),
                              attributes={"temperature": [1.0], "phase": ["random"]})
        assert report.ok, report.format()
    finally:
        model.set_temperature(0.0)
        model.set_phase("pghi")


def test_phase_noise_is_independent_of_latent_noise(small_transform, identity_model):
    model = StreamingVAE(identity_model(small_transform), temperature=1.0, phase="random", seed=5)
    batch, frames, bins = 2, 64, small_transform.n_bins
    counter = torch.zeros(batch, dtype=torch.int64)  # a fresh stream: frames 0..63
    # identity VAE, std 1, zero features: z is exactly the latent noise
    noise = model._latent(torch.zeros(batch * frames, bins), {}, counter, batch, frames).reshape(-1)
    phase = model._random_phase(torch.ones(batch, frames, bins), counter).reshape(-1)
    uniform = (phase / math.pi + 1.0) / 2.0
    assert float(noise.std()) > 0.9 and float(phase.std()) > 1.5  # both are really random
    # if the phase's uniforms were Box-Muller's angle or radius input, these would be ~-0.89 / ~0.5
    for a, b in [(noise, torch.cos(phase)), (noise.abs(), torch.sqrt(-2.0 * torch.log(uniform)))]:
        assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.03


# ---------------------------------------------------------------- non-finite input (audio thread safety)
def _dirty(x: Tensor, channels: int) -> Tensor:
    """``x`` with NaN, +Inf and -Inf in its first ``channels`` channels, in one block of 1024 samples."""
    x = x.clone()
    x[:, 0, 1024 + 5] = float("nan")
    x[:, :channels, 1024 + 300] = float("inf")
    x[:, 0, 1024 + 700] = -float("inf")
    x[:, :channels, 1024 + 900:2048] = float("nan")
    return x


@pytest.mark.parametrize("phase", ["pghi", "random", "keep_input"])
def test_non_finite_audio_neither_raises_nor_sticks(small_transform, identity_model, demo_vae, phase):
    for vae in (identity_model(small_transform), demo_vae):
        model, fresh = (script_model(vae, phase=phase, temperature=0.5) for _ in range(2))
        audio = torch.randn(2, 1, 8192) * 0.2
        dirty = _dirty(audio, 1)
        for method in ("forward", "encode"):
            out = _stream(getattr(model, method), dirty, 1024)  # must not raise
            # NaN/Inf are read as 0: exactly the stream with zeros in their place, so the state
            # (analysis history, overlap-add tail, phase) is clean again once they have left it
            expected = _stream(getattr(fresh, method), torch.nan_to_num(dirty, 0.0, 0.0, 0.0), 1024)
            assert bool(torch.isfinite(out).all())
            torch.testing.assert_close(out, expected, rtol=0, atol=0)
        assert bool(torch.isfinite(model.forward_rtpghi.prev_shifted_phase).all())


@pytest.mark.parametrize("phase", ["pghi", "random"])
def test_non_finite_latents_neither_raise_nor_stick(small_transform, identity_model, demo_vae, phase):
    for vae in (identity_model(small_transform), demo_vae):
        model, fresh = (script_model(vae, phase=phase) for _ in range(2))
        z = torch.randn(2, vae.latent_dim, 32)
        dirty = z.clone()
        dirty[:, 0, 4] = float("nan")  # one latent channel of one frame
        dirty[:, :, 5] = float("nan")  # a whole frame
        dirty[:, 1, 6] = float("inf")
        dirty[:, 2, 7] = -float("inf")
        out = _stream(model.decode, dirty, 4)
        assert bool(torch.isfinite(out).all())
        torch.testing.assert_close(out, _stream(fresh.decode, torch.nan_to_num(dirty, 0.0, 0.0, 0.0), 4),
                                   rtol=0, atol=0)
    # A stand-in VAE without the SpectralVAE's clamps can decode a finite latent to an infinite
    # magnitude (exp of a huge feature): the phase state stays finite, the output is soft-clipped
    # (finite, within OUTPUT_LIMIT), and the stream is clean once the frame has left the overlap-add.
    model = script_model(identity_model(small_transform))
    huge = torch.randn(1, small_transform.n_bins, 16)
    huge[:, :, 3] = 1e30
    out = _stream(model.decode, huge, 4)
    assert bool(torch.isfinite(model.decode_rtpghi.prev_shifted_phase).all())
    assert bool(torch.isfinite(out).all()) and float(out.abs().max()) <= 4.0
    clean_from = (3 + 1024 // 256) * 256  # the last sample frame 3 overlaps, + 1
    assert float(out[..., clean_from:].abs().max()) > 0


# ---------------------------------------------------------------- hop and host buffer sizes
def test_a_hop_that_is_not_a_power_of_two_is_refused(identity_model):
    transform = SpectralTransform(sample_rate=22050, n_fft=1200, hop=300)
    for make in (lambda: StreamingVAE(identity_model(transform)), lambda: script_model(identity_model(transform))):
        with pytest.raises(ValueError, match=r"hop 300: .*power-of-two buffers.*power-of-two hop \(e\.g\. 256 or 512\)"):
            make()


def test_verify_buffers_are_the_host_buffer_sizes(identity_model):
    # save_verified leaves buffers=None to the host: its default sizes for an export are the
    # powers of two from the smallest one >= hop to 8192 (at least that smallest one)
    for hop, expected in ((256, [256, 512, 1024, 2048, 4096, 8192]),
                          (64, [64, 128, 256, 512, 1024, 2048, 4096, 8192])):
        transform = SpectralTransform(sample_rate=22050, n_fft=4 * hop, hop=hop)
        description = host_load(_script(StreamingVAE(identity_model(transform)))).description
        assert description.min_buffer_size == next_power_of_two(hop) == hop
        assert default_buffers(description.min_buffer_size) == expected
    assert default_buffers(next_power_of_two(300)) == [512, 1024, 2048, 4096, 8192]  # powers of two, not 300 * 2^k
    assert default_buffers(next_power_of_two(16384)) == [16384]


# ---------------------------------------------------------------- export per preset (host verify)
def _verify_buffers(hop: int) -> List[int]:
    return sorted({hop, 2 * hop, 2048, 4096})


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_export_passes_the_host_verification(preset, tmp_path):
    vae = preset_vae(preset)
    path, report = export_model(vae, tmp_path / f"{preset}.ts", buffers=_verify_buffers(vae.transform.hop),
                                batch_sizes=(1, 4))
    assert report.ok and path.is_file()
    names = {(c.name, c.method) for c in report.checks if c.passed}
    for method in ("encode", "decode", "forward"):
        assert ("streaming", method) in names and ("shape", method) in names
    loaded = host_load(str(path))
    assert [m.name for m in loaded.description.methods] == ["forward", "encode", "decode"]
    hop, n_fft = vae.transform.hop, vae.transform.n_fft
    assert loaded.description.method("forward").delay == n_fft - hop


@pytest.mark.slow
def test_demo_export_passes_the_host_verification(demo_vae, tmp_path):
    """The fast version of the per-preset check (demo preset, all four buffer sizes)."""
    path, report = export_model(demo_vae, tmp_path / "demo.ts", buffers=[256, 512, 2048, 4096], batch_sizes=(1, 4))
    assert report.ok, report.format()
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["demo.ts"]


# ---------------------------------------------------------------- script.py
def _make_run(root: Path, preset: str, break_weights: bool = False) -> Path:
    """A run folder as training writes it: rundir/name/version_0/{config.yaml, checkpoints/last.ckpt}."""
    run = root / "runs" / "my_run"
    version = run / "version_0"
    (version / "checkpoints").mkdir(parents=True)
    OmegaConf.save(preset_config(preset), version / "config.yaml")
    vae = preset_vae(preset)
    state = {f"vae.{k}": v for k, v in vae.state_dict().items()}
    if break_weights:
        for key in state:
            if key.startswith("vae.decoder.") and state[key].is_floating_point():
                state[key] = torch.full_like(state[key], float("nan"))
    torch.save({"state_dict": state}, version / "checkpoints" / "last.ckpt")
    return run


def _script_py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "script.py"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_script_py_refuses_a_broken_model(tmp_path):
    run = _make_run(tmp_path, "demo", break_weights=True)
    out = tmp_path / "out"
    result = _script_py(str(run), "-o", str(out), "--buffers", "256", "2048")
    assert result.returncode != 0
    assert "export refused" in result.stderr and "NaN" in result.stderr
    assert not out.exists()  # the folder made for the refused export is removed again


@pytest.mark.slow
def test_script_py_writes_a_verified_model(tmp_path):
    run = _make_run(tmp_path, "demo")
    result = _script_py(str(run) + "/", "-v", "0", "-n", "last", "--buffers", "256", "2048")
    assert result.returncode == 0, result.stderr
    written = run / "my_run.ts"
    assert written.is_file()
    assert "RESULT: OK" in result.stdout and "latency at B=2048" in result.stdout
    custom = tmp_path / "exports"
    result = _script_py(str(run / "version_0"), "-o", str(custom), "--output-name", "other", "--buffers", "256")
    assert result.returncode == 0, result.stderr
    assert (custom / "other.ts").is_file()
    model = torch.jit.load(str(custom / "other.ts"))
    latent_channels = int(model.decode_params[0])  # the demo preset's latent size, read from the export
    assert model.decode(torch.zeros(1, latent_channels, 8)).shape == (1, 1, 2048)
    missing = _script_py(str(tmp_path / "nope"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    # vschaos2's "-n name": the output name, written in the folder given (vschaos2's README: path_to_model/)
    from vschaos.cli import script

    assert script.main([str(run), "-n", "my_model", "--buffers", "256"]) == 0
    assert (run / "my_model.ts").is_file()


def test_script_output_path_takes_a_folder_or_the_file_and_refuses_what_it_cannot_write(tmp_path):
    from vschaos.cli.script import output_path

    run = tmp_path / "runs" / "my_run"
    assert output_path(None, run, "my_run", "nn", False) == (run / "my_run.ts", None, tmp_path)
    path, note, existing = output_path(tmp_path / "new" / "deep", run, "my_run", "neutone", False)
    assert (path, note, existing) == (tmp_path / "new" / "deep" / "my_run.nm", None, tmp_path)
    # a path with the format's suffix, in any case, is the file itself (a musician's "-o my_model.nm"), said so
    path, note, _ = output_path(tmp_path / "out" / "my_model.nm", run, "my_run", "neutone", False)
    assert path == tmp_path / "out" / "my_model.nm" and "writing that file" in note
    assert output_path(tmp_path / "My.TS", run, "my_run", "nn", False)[0] == tmp_path / "My.TS"
    assert not (tmp_path / "new").exists() and not (tmp_path / "out").exists()  # checked, not created
    previous = tmp_path / "again.ts"
    previous.write_text("an earlier export")
    assert output_path(previous, run, "my_run", "nn", False)[0] == previous  # re-exporting replaces it
    with pytest.raises(ValueError, match=r"ends in \.ts, but --format neutone writes a \.nm file"):
        output_path(tmp_path / "my_model.ts", run, "my_run", "neutone", False)
    with pytest.raises(ValueError, match="names it too: give one"):
        output_path(tmp_path / "my_model.ts", run, "other", "nn", True)
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    with pytest.raises(ValueError, match=r"notes\.txt is an existing file, not a folder"):
        output_path(existing, run, "my_run", "nn", False)
    with pytest.raises(ValueError, match=r"-o .*notes\.txt/sub: cannot create the folder .*notes\.txt is a file"):
        output_path(existing / "sub", run, "my_run", "nn", False)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="dangling is a broken symbolic link"):
        output_path(tmp_path / "dangling" / "sub", run, "my_run", "nn", False)
    (tmp_path / "clash" / "my_run.ts").mkdir(parents=True)
    with pytest.raises(ValueError, match="is a folder: the export would replace it"):
        output_path(tmp_path / "clash", run, "my_run", "nn", False)
    assert existing.read_text() == "keep me"


def test_script_py_refuses_an_output_it_cannot_write_before_exporting(tmp_path, capsys):
    from vschaos.cli import script

    run = _make_run(tmp_path, "demo")
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    assert script.main([str(run), "-o", str(existing)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("script.py: -o ") and "is an existing file, not a folder" in error
    assert existing.read_text() == "keep me" and not (run / "my_run.ts").exists()


def test_script_py_interrupted_leaves_no_folder_behind(tmp_path, monkeypatch):
    from vschaos.cli import script

    def interrupted(run, path, args):
        path.parent.mkdir(parents=True)  # as the export does before writing
        raise KeyboardInterrupt

    monkeypatch.setattr(script, "export_to", interrupted)
    run = _make_run(tmp_path, "demo")
    assert script.main([str(run), "-o", str(tmp_path / "new" / "deep")]) == 130  # Ctrl-C: one line, exit 130
    assert not (tmp_path / "new").exists()


def test_pd_example_is_a_valid_patch():
    """patches/pd_example.pd parses as a Pd file: records end with ';', connections name existing
    objects, nn~ objects name a method of our exports and a buffer that is a power of two."""
    text = (REPO / "patches" / "pd_example.pd").read_text()
    records = [r.strip() for r in text.replace("\\;", "").split(";\n") if r.strip()]
    assert records[0].startswith("#N canvas")
    objects = [r for r in records[1:] if r.split()[1] in ("obj", "msg", "text", "floatatom")]
    connects = [r.split() for r in records[1:] if r.split()[1] == "connect"]
    assert len(objects) + len(connects) == len(records) - 1
    nn_objects = {i: r.split() for i, r in enumerate(objects) if r.split()[1] == "obj" and r.split()[4] == "nn~"}
    assert {tokens[6] for tokens in nn_objects.values()} == {"decode", "forward"}
    for tokens in nn_objects.values():
        buffer = int(tokens[7].rstrip(";"))
        assert buffer & (buffer - 1) == 0
    for _, _, source, outlet, sink, inlet in connects:
        assert 0 <= int(source) < len(objects) and 0 <= int(sink) < len(objects)
    decode_inlets = {int(c[5]) for c in connects if int(c[4]) in nn_objects and nn_objects[int(c[4])][5] == "demo.ts"
                     and nn_objects[int(c[4])][6] == "decode"}
    from vschaos.cli.train import compose_config

    demo_latents = int(compose_config("demo", []).model.latent_dim)
    assert decode_inlets == set(range(demo_latents))  # one slider per latent dimension of the demo preset


def test_pd_example_turns_a_midi_note_into_the_label_ids_the_inlets_take():
    """The Pd example's note box feeds the pitch model's decode label inlets (after the latents)
    with the class ids of that note: pitch = midi mod 12, octave id = midi div 12 (A4 -> 9, 5)."""
    from vschaos.cli.train import compose_config
    from vschaos.notes import midi_to_pitch_class_octave

    latents = int(compose_config("dgt_pitch_prediction", []).model.latent_dim)
    text = (REPO / "patches" / "pd_example.pd").read_text()
    records = [r.strip() for r in text.replace("\\;", "").split(";\n") if r.strip()]
    objects = [r.split() for r in records[1:] if r.split()[1] in ("obj", "msg", "text", "floatatom")]
    connects = [[int(v) for v in r.split()[2:6]] for r in records[1:] if r.split()[1] == "connect"]
    note = next(i for i, tokens in enumerate(objects) if tokens[1] == "floatatom" and tokens[8] == "note")
    decode = next(i for i, tokens in enumerate(objects)
                  if tokens[1] == "obj" and tokens[4:7] == ["nn~", "pitch_model.ts", "decode"])

    def run(index: int, value: float, inlets: dict) -> None:
        """Propagate a float message (and signal) from object ``index`` through the patch."""
        tokens = objects[index]
        kind = tokens[4] if tokens[1] == "obj" else tokens[1]
        if kind == "mod":
            value = value % int(tokens[5])
        elif kind == "div":
            value = value // int(tokens[5])
        for source, outlet, sink, inlet in connects:
            if source != index:
                continue
            if sink == decode:
                inlets[inlet] = value
            else:
                run(sink, value, inlets)

    for midi in (69, 60, 59, 84, 36):
        inlets: dict = {}
        run(note, midi, inlets)
        assert inlets == dict(zip((latents, latents + 1), midi_to_pitch_class_octave(midi)))


# ---------------------------------------------------------------- dtype of the model math
def _fail_in_float32(monkeypatch):
    """save_verified that refuses every float32 model (as a model whose stream depends on the buffer size)."""
    import vschaos.export.export as export_module
    from vschaos.host.verify.report import VerifyReport

    real = export_module.save_verified
    attempts = []

    def save_verified(scripted, path, buffers=None, batch_sizes=(1, 4)):
        dtype = scripted.vae.transform.norm_mean.dtype
        attempts.append(dtype)
        if dtype == torch.float32:
            report = VerifyReport(str(path), [2048], [1], 1e-3, 4096)
            report.add("streaming", "forward", ["buffer 512: streaming differs from offline by 0.01"], "differs")
            raise ExportVerificationError(report, path)
        return real(scripted, path, buffers=buffers, batch_sizes=batch_sizes)

    monkeypatch.setattr(export_module, "save_verified", save_verified)
    return attempts


def test_export_runs_the_model_math_in_float32_when_it_verifies(small_transform, identity_model, tmp_path):
    path, report = export_model(identity_model(small_transform), tmp_path / "m.ts", phase="keep_input",
                                buffers=[256, 2048], batch_sizes=(1,))
    line = [check for check in report.checks if check.name == "model math"]
    assert [(check.passed, check.warning, check.summary) for check in line] == [(True, False, "float32")]
    assert torch.jit.load(str(path)).vae.transform.norm_mean.dtype == torch.float32


def test_export_falls_back_to_float64_when_float32_fails_verification(small_transform, identity_model, tmp_path,
                                                                      monkeypatch, ended_pid):
    attempts = _fail_in_float32(monkeypatch)
    killed_export = tmp_path / (temporary_prefix(tmp_path / "m.ts", ended_pid) + "k9k9k9k9.tmp")  # as after kill -9
    killed_export.write_bytes(b"half a model")
    path, report = export_model(identity_model(small_transform), tmp_path / "m.ts", phase="keep_input",
                                buffers=[256, 2048], batch_sizes=(1,))
    assert attempts == [torch.float32, torch.float64]
    assert torch.jit.load(str(path)).vae.transform.norm_mean.dtype == torch.float64
    assert "WARN model math: float64 (float32 failed: forward streaming)" in report.format()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ts"]  # the killed export's temporary is removed


def test_export_refused_when_float64_fails_too(small_transform, identity_model, tmp_path):
    broken = WrongDelayExport(identity_model(small_transform), phase="keep_input")
    import vschaos.export.export as export_module

    calls = []

    def wrong_delay_script(vae, temperature=0.0, phase="pghi", seed=0, dtype=torch.float32):
        calls.append(dtype)
        return _script(WrongDelayExport(export_module.copy.deepcopy(vae).to(dtype), phase=phase))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export_module, "script_model", wrong_delay_script)
        with pytest.raises(ExportVerificationError, match="declared 512 samples, measured 768"):
            export_model(broken.vae, tmp_path / "m.ts", phase="keep_input", buffers=[256, 2048], batch_sizes=(1,))
    assert calls == [torch.float32, torch.float64]
    assert list(tmp_path.iterdir()) == []
