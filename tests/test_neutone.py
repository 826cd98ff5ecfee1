"""The Neutone export (vschaos.export.neutone, ``script.py --format neutone``), checked with the Neutone SDK's
own loader, validation and benchmarks, against the nn~ export's ``forward``.

Needs the optional extra (``pip install -e .[neutone]``; CI installs it); without it these tests skip, except
the ones proving the nn~ path never needs the SDK.
"""
import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest
import torch
from torch import Tensor, nn

from vschaos.cli.script import main as script_main
from vschaos.cli.train import compose_config
from vschaos.dsp.transforms import SpectralTransform
from vschaos.export import script_model
from vschaos.io import temporary_prefix
from vschaos.training.run import build_model

REPO = Path(__file__).resolve().parents[1]
HAVE_SDK = importlib.util.find_spec("neutone_sdk") is not None
needs_sdk = pytest.mark.skipif(not HAVE_SDK, reason="the Neutone SDK is not installed: pip install -e .[neutone]")
DEMO_RATE, DEMO_HOP = 22050, 256
SMALL_PITCH = ["transform=demo", "model=small"]  # the pitch presets on the demo front end: fast
TOL = 1e-4  # streaming vs one offline call: float summation order differs (the host allows the same)
FAST_BENCH = dict(bench_buffers=(2048,), bench_repeat=2, bench_iters=3)
NO_BENCH = dict(benchmark=False, sdk_offline_check=False)  # the SDK's schema, reload and plugin-method checks only


def preset_vae(name: str, overrides=(), seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    vae = build_model(compose_config(name, list(overrides))).eval()
    n_bins = vae.transform.n_bins
    vae.transform.set_normalisation(torch.linspace(0.5, 0.05, n_bins), torch.linspace(0.6, 0.1, n_bins))
    return vae


def nn_export(vae: nn.Module):
    """The nn~ export of the same model: the reference the Neutone model must reproduce."""
    return script_model(vae)


def offline_forward(module, audio: Tensor, labels: Tuple[float, ...] = ()) -> Tensor:
    """``module.forward`` in one call on ``audio (1, T)`` with constant label inlets -> ``(1, T)``."""
    inputs = torch.full((1, 1 + len(labels), audio.shape[1]), -1.0)
    inputs[0, 0] = audio[0]
    for i, value in enumerate(labels):
        inputs[0, 1 + i] = value
    module.reset()
    with torch.no_grad():
        return module.forward(inputs)[0]


def shifted(reference: Tensor, delay: int) -> Tensor:
    out = torch.zeros_like(reference)
    out[:, delay:] = reference[:, :reference.shape[1] - delay]
    return out


def knob_params(values: List[float], length: int) -> Tensor:
    from neutone_sdk.constants import MAX_N_PARAMS

    params = torch.zeros(MAX_N_PARAMS, length)
    for i, value in enumerate(values):
        params[i] = value
    return params


def noise(length: int, seed: int = 1) -> Tensor:
    return 0.3 * torch.randn(1, length, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo_vae():
    return preset_vae("demo")


@pytest.fixture(scope="module")
def demo_directions():
    from vschaos.export.directions import LatentDirections

    torch.manual_seed(3)
    vectors = torch.linalg.qr(torch.randn(16, 2))[0].T.contiguous()  # two orthonormal directions
    return LatentDirections(vectors, torch.tensor([0.7, 0.3]), "test directions")


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory, demo_vae, demo_directions):
    from vschaos.export.neutone import export_neutone, make_texts

    path = tmp_path_factory.mktemp("neutone") / "demo.nm"
    texts = make_texts("demo", demo_vae, "'demo_data' (4 files, 20 s)", demo_directions)
    report = export_neutone(demo_vae, path, texts, demo_directions, **FAST_BENCH)
    return path, report


@pytest.fixture(scope="module")
def demo_loaded(demo_file):
    from vschaos.export.neutone import load_neutone_model

    return load_neutone_model(str(demo_file[0]))


# ---------------------------------------------------------------- directions
@needs_sdk
def test_principal_directions_recover_a_known_covariance():
    from vschaos.export.directions import principal_directions

    rotation = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)))[0]
    spread = torch.tensor([3.0, 2.0, 1.0, 0.5])
    latents = (torch.randn(20000, 4, generator=torch.Generator().manual_seed(1)) * spread) @ rotation.T + 5.0
    vectors, scales = principal_directions(latents)
    assert vectors.shape == (2, 4)
    assert torch.allclose(vectors @ vectors.T, torch.eye(2), atol=TOL)
    for i in range(2):  # the rotation's columns, up to the fixed sign
        assert abs(float(vectors[i] @ rotation[:, i])) > 0.999
        assert vectors[i, vectors[i].abs().argmax()] > 0
    assert torch.allclose(scales, spread[:2], rtol=0.03)


@needs_sdk
def test_the_texts_name_only_the_direction_knobs_that_fit():
    """A pitch latent (transpose knob) and labels (class knob) leave room for one direction knob of four."""
    from vschaos.export.directions import LatentDirections
    from vschaos.export.export import streaming_module
    from vschaos.export.neutone import NeutoneSpectralVAE, direction_knobs, make_texts

    vae = preset_vae("dgt_harmonic", overrides=["+model.conditioning={instrument:{dim:3,target:[decoder]}}"])
    directions = LatentDirections.axes(int(vae.latent_dim), "test", first=1)
    assert directions.vectors.shape[0] == 2 and direction_knobs(True, True) == 1
    texts = make_texts("harmonic", vae, "'notes'", directions)
    assert "direction 1 (" in texts.long_description and "direction 2" not in texts.long_description
    wrapper = NeutoneSpectralVAE(streaming_module(vae), texts, directions)
    assert [name for name, _, _ in wrapper.knobs()] == ["temperature", "direction 1", "transpose", "instrument class"]
    plain = make_texts("demo", preset_vae("demo"), "'demo'", LatentDirections.axes(8, "test"))
    assert "direction 1 and direction 2 (" in plain.long_description
    named = LatentDirections.axes(8, "test")
    named.names = ["louder", "brighter"]  # measured effects: the texts name the knobs as the plugin shows them
    assert "dir 1: louder and dir 2: brighter (" in make_texts("demo", preset_vae("demo"), "'demo'", named).long_description


@needs_sdk
def test_the_class_knob_sets_forwards_label_inlet_in_the_scripted_wrapper():
    """The wrapper reads the stream's tasks and class counts through StreamingVAE's interface: knob 0 leaves the
    label unknown (-1), then the rest of the knob spans classes 0-2 of a three-class decoder task."""
    from vschaos.export.directions import LatentDirections
    from vschaos.export.export import streaming_module
    from vschaos.export.neutone import LABEL_AUTO_BELOW, NeutoneSpectralVAE, make_texts

    vae = preset_vae("demo", overrides=["+model.conditioning={instrument:{dim:3,target:[decoder]}}"])
    directions = LatentDirections.axes(int(vae.latent_dim), "test")
    texts = make_texts("demo", vae, "'demo'", directions)
    wrapper = torch.jit.script(NeutoneSpectralVAE(streaming_module(vae), texts, directions))
    reference = nn_export(vae)
    audio = noise(4 * DEMO_HOP, seed=4)
    outputs = []
    for knob, label in ((0.0, -1.0), (LABEL_AUTO_BELOW + 0.01, 0.0), (0.5, 1.0), (1.0, 2.0)):
        params = {"temperature": torch.zeros(1), "direction 1": torch.full((1,), 0.5),
                  "direction 2": torch.full((1,), 0.5), "instrument class": torch.full((1,), knob)}
        wrapper.reset_model()
        with torch.no_grad():
            outputs.append(wrapper._stream(audio, params))
        assert torch.allclose(outputs[-1], offline_forward(reference, audio, (label,)), atol=1e-6), knob
    assert not torch.allclose(outputs[1], outputs[3], atol=1e-4)  # the classes differ


def test_directions_of_a_pitch_latent_model_leave_the_pitch_out(monkeypatch):
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from vschaos.export import directions as directions_module

    # the measured pitch varies most in the training latents; the transpose knob moves it, not the directions
    spread = torch.tensor([5.0, 2.0, 1.0, 0.5])
    latents = torch.randn(5000, 4, generator=torch.Generator().manual_seed(2)) * spread
    monkeypatch.setattr(directions_module, "training_latents", lambda cfg, vae: (latents, "'notes'"))
    cfg = OmegaConf.create({"data": {"dataset": {"root": "notes"}}})
    found, _ = directions_module.run_directions(cfg, SimpleNamespace(pitch_dims=1, latent_dim=4))
    assert found.vectors[:, 0].abs().max() == 0 and "pitch dimension left out" in found.source
    assert abs(float(found.vectors[0, 1])) > 0.99 and torch.allclose(found.scales, spread[1:3], rtol=0.05)
    unpitched, _ = directions_module.run_directions(cfg, SimpleNamespace(pitch_dims=0, latent_dim=4))
    assert abs(float(unpitched.vectors[0, 0])) > 0.99
    fallback = directions_module.LatentDirections.axes(4, "no data", first=1)
    assert fallback.vectors.tolist() == [[0, 1, 0, 0], [0, 0, 1, 0]] and "axes 1-2" in fallback.source


# ---------------------------------------------------------------- export and SDK checks
@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
@needs_sdk
def test_export_passes_the_sdk_checks_and_reports_figures(demo_file, demo_loaded):
    path, report = demo_file
    model, metadata = demo_loaded  # load_neutone_model validates the metadata against the SDK's schema
    assert path.is_file() and not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    assert metadata["model_name"] == "demo" and metadata["is_experimental"] is True
    assert metadata["native_sample_rates"] == []  # any rate: the wrapper resamples itself
    assert metadata["native_buffer_sizes"] == []  # any size: the wrapper queues the hops itself
    assert metadata["is_input_mono"] and metadata["is_output_mono"]
    assert "'demo_data' (4 files, 20 s)" in metadata["model_short_description"]
    assert [p["name"] for p in metadata["neutone_parameters"].values()] == ["temperature", "direction 1",
                                                                            "direction 2"]
    model.set_daw_sample_rate_and_buffer_size(DEMO_RATE, 2048)
    assert model.calc_model_delay_samples() == 1024 - DEMO_HOP and model.calc_buffering_delay_samples() == 0
    assert [(c.sample_rate, c.daw_buffer) for c in report.checks] == [(0, 2048), (0, 256), (0, 441), (48000, 441)]
    assert all(c.ok for c in report.checks)
    assert [c.queue_delay for c in report.checks[:3]] == [0, 0, DEMO_HOP - 1]  # 441 and 256 share no factor
    speed = report.benchmarks.inverse_rtf(48000, 2048)
    assert speed is not None and speed > 0
    # the SDK's latency benchmark at 44.1 kHz: our delay in DAW samples, the plugin's buffering none
    from vschaos.dsp.resample import StreamingResampler, resampled_stream_delay

    row = [r for r in report.benchmarks.latency if r["sample_rate"] == 44100 and r["buffer_size"] == 2048][0]
    widths = StreamingResampler(44100, DEMO_RATE).half_width, StreamingResampler(DEMO_RATE, 44100).half_width
    assert row["buffering"] == 0
    assert row["model"] == resampled_stream_delay(44100, DEMO_RATE, 2048, DEMO_HOP, 1024 - DEMO_HOP, *widths)[0]
    assert 2 * (1024 - DEMO_HOP) < row["model"] < 2 * (1024 - DEMO_HOP) + 100  # twice the model's, plus filters
    text = report.format()
    assert "1/RTF" in text and "PASS" in text and "direction 2" in text and "model math: float32" in text
    assert model.w2w_base.model.vae.transform.norm_mean.dtype == torch.float32


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
@needs_sdk
def test_neutone_export_falls_back_to_float64_when_float32_fails_our_checks(tmp_path, demo_vae, demo_directions,
                                                                          monkeypatch, ended_pid):
    import vschaos.export.neutone as neutone
    from vschaos.export.neutone import export_neutone, load_neutone_model, make_texts

    real, dtypes = neutone.check_buffer, []

    def check_buffer(model, buffer, **options):
        check = real(model, buffer, **options)
        dtypes.append(model.w2w_base.model.vae.transform.norm_mean.dtype)
        if dtypes[-1] == torch.float32:  # as a model whose stream depends on the buffer size
            check.problems.append(f"buffer {buffer}: output differs from StreamingVAE.forward by up to 0.01")
        return check

    monkeypatch.setattr(neutone, "check_buffer", check_buffer)
    killed_export = tmp_path / (temporary_prefix(tmp_path / "demo.nm", ended_pid) + "k9k9k9k9")  # as after kill -9
    killed_export.mkdir()
    (killed_export / "model.nm").write_bytes(b"half")
    texts = make_texts("demo", demo_vae, "'demo_data'", demo_directions)
    report = export_neutone(demo_vae, tmp_path / "demo.nm", texts, demo_directions, check_buffers=(2048,),
                            resampled_checks=(), **NO_BENCH)
    assert dtypes == [torch.float32, torch.float64]
    assert report.model_math.startswith("float64 (float32 failed: buffer 2048: output differs")
    model, _ = load_neutone_model(str(tmp_path / "demo.nm"))
    assert model.w2w_base.model.vae.transform.norm_mean.dtype == torch.float64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.nm"]  # no temporary folder left, nor the killed one's


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
@needs_sdk
@pytest.mark.parametrize("buffer, queue", [(2048, 0), (128, DEMO_HOP - 128), (100, DEMO_HOP - 4), (441, DEMO_HOP - 1)])
def test_loaded_model_equals_the_nn_export_forward_after_the_reported_delay(demo_vae, demo_loaded, buffer, queue):
    """Any buffer is native: the plugin queues nothing, the wrapper runs whole hops and its output queue holds
    hop - gcd(buffer, hop) samples, reported as model delay."""
    from vschaos.export.neutone_checks import stream_file_model

    model, _ = demo_loaded
    reference_module = nn_export(demo_vae)
    model.set_daw_sample_rate_and_buffer_size(DEMO_RATE, buffer)
    assert model.model_bs == buffer and model.calc_buffering_delay_samples() == 0
    assert model.calc_model_delay_samples() == int(reference_module.forward_delay[0]) + queue
    audio = noise(8192 // buffer * buffer)
    out = stream_file_model(model, audio, DEMO_RATE, buffer)
    whole_hops = torch.zeros(1, -(-audio.shape[1] // DEMO_HOP) * DEMO_HOP)  # forward takes whole hops; causal
    whole_hops[:, :audio.shape[1]] = audio
    expected = shifted(offline_forward(reference_module, whole_hops)[:, :audio.shape[1]], queue)
    assert out.abs().max() > 0.01
    assert torch.allclose(out, expected, atol=TOL), float((out - expected).abs().max())


@needs_sdk
def test_the_hop_queue_is_the_least_that_never_runs_dry():
    from vschaos.export.neutone import hop_queue_delay

    assert [hop_queue_delay(b, 256) for b in (2048, 256, 128, 941, 441, 100, 1)] == [0, 0, 128, 255, 255, 252, 255]
    for buffer in (1, 30, 100, 128, 441, 941, 1882):  # calls of `buffer`, whole hops out: never short, once exact
        level, lowest = hop_queue_delay(buffer, 256), []
        for call in range(1, 2 * 256 + 1):
            level += (call * buffer // 256 - (call - 1) * buffer // 256) * 256 - buffer
            lowest.append(level)
        assert min(lowest) == 0


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
@needs_sdk
@pytest.mark.parametrize("daw_rate, daw_buffer", [(48000, 64), (96000, 96), (44100, 480), (48000, 100),
                                                  (44100, 960), (48000, 2048), (44100, 1536)])
def test_odd_daw_buffers_do_not_queue_for_long(demo_loaded, daw_rate, daw_buffer):
    """Every DAW rate and buffer size is native, so the plugin neither resamples nor queues (with a list of native
    sizes it would queue up to the first one the resampled DAW buffer divides, several DAW buffers long), and the
    wrapper adds to the model's own delay less than a hop and its resamplers' filters."""
    model, _ = demo_loaded
    model.set_daw_sample_rate_and_buffer_size(daw_rate, daw_buffer)
    assert model.model_bs == model.io_bs == daw_buffer and not model.is_resampling()
    assert model.calc_buffering_delay_samples() == 0
    own = model.w2w_base.vs_delay * daw_rate / DEMO_RATE
    added_ms = 1e3 * (model.w2w_base.calc_model_delay_samples() - own) / daw_rate
    assert 0 <= added_ms < 1e3 * DEMO_HOP / DEMO_RATE + 1.8


@needs_sdk
def test_the_saved_file_carries_no_laid_out_cycle(demo_file):
    """The cycles are streaming state: laid out for the SDK's set-up call before saving, they would make the file
    larger for nothing; the plugin's own set-up call lays them out."""
    fresh = torch.jit.load(str(demo_file[0]))
    resamplers = (fresh.w2w_base.vs_down, fresh.w2w_base.vs_up)
    assert [r.cycle_base.shape[0] for r in resamplers] == [0, 0]
    assert [r.cycle_taps.numel() for r in resamplers] == [0, 0]
    fresh.set_daw_sample_rate_and_buffer_size(48000, 2048)
    assert all(r.cycle_base.shape[0] > 0 for r in resamplers)


@needs_sdk
@pytest.mark.parametrize("daw_rate, buffer, laid_out", [(48000, 2048, (True, True)), (44100, 441, (True, True)),
                                                       (96000, 64, (True, True)), (90024, 64, (True, False)),
                                                       (48000, 28600, (True, True)), (48000, 29500, (True, False)),
                                                       (48000, 65536, (False, False))])
def test_the_resamplers_allocate_their_taps_when_the_plugin_sets_the_rate_not_in_its_audio_thread(
        demo_loaded, daw_rate, buffer, laid_out):
    """The cycle of each resampler is laid out when the plugin sets the rate and buffer, or never (a buffer too
    large for its budget, or 90024 Hz up from 22.05 kHz: 15004 positions, a rounded table; the general path
    then), never in the first audio call: the settings here sit at the edges of that budget."""
    model, _ = demo_loaded
    model.set_daw_sample_rate_and_buffer_size(daw_rate, buffer)
    resamplers = (model.w2w_base.vs_down, model.w2w_base.vs_up)
    before = [(r.cycle_base.data_ptr(), r.cycle_base.shape[0]) for r in resamplers]
    assert tuple(r.cycle_base.shape[0] > 0 for r in resamplers) == laid_out
    for seed in range(40 if buffer < 4096 else 3):  # down then pulls 941 or 942 at 2048, 13552 or 13553 at 29500
        model.forward(noise(buffer, seed).repeat(2, 1))
    assert [(r.cycle_base.data_ptr(), r.cycle_base.shape[0]) for r in resamplers] == before  # none while playing


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
@needs_sdk
@pytest.mark.parametrize("daw_rate", [48000, 44100])
def test_resampled_output_does_not_depend_on_the_buffer_size(demo_loaded, daw_rate):
    """The wrapper resamples the input its filter's half width late whatever the buffer, so the model's hops fall
    at the same instants of the stream: buffers of 64, 441 and 2048 give one output, each after its own reported
    delay (with a hop grid chosen per buffer, the frames would land elsewhere and the output differ by ~-3 dB)."""
    from vschaos.export.neutone_checks import stream_file_model

    model, _ = demo_loaded
    audio = noise(daw_rate // 2)
    outputs = {}
    for buffer in (2048, 441, 64):
        model.set_daw_sample_rate_and_buffer_size(daw_rate, buffer)
        delay = int(model.calc_model_delay_samples()) + int(model.calc_buffering_delay_samples())
        padded = torch.zeros(1, -(-(audio.shape[1] + 4096) // buffer) * buffer)
        padded[:, :audio.shape[1]] = audio
        outputs[buffer] = stream_file_model(model, padded, daw_rate, buffer)[0, delay:delay + audio.shape[1]]
    assert outputs[2048].abs().max() > 0.01
    for buffer in (441, 64):
        assert torch.allclose(outputs[buffer], outputs[2048], atol=TOL), float((outputs[buffer] - outputs[2048]).abs().max())


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
@needs_sdk
def test_temperature_and_direction_knobs_act_on_the_latent(demo_vae, demo_loaded, demo_directions):
    from vschaos.export.neutone import DIRECTION_RANGE, TEMPERATURE_MAX
    from vschaos.export.neutone_checks import stream_file_model

    model, _ = demo_loaded
    audio = noise(4096, seed=2)
    reference_module = nn_export(demo_vae)
    # temperature knob 0.25 -> temperature 0.25 * TEMPERATURE_MAX, same counter noise (seed 0)
    out = stream_file_model(model, audio, DEMO_RATE, 2048, knob_params([0.25, 0.5, 0.5], audio.shape[1]))
    assert reference_module.set_temperature(0.25 * TEMPERATURE_MAX) == 0
    assert torch.allclose(out, offline_forward(reference_module, audio), atol=TOL)
    assert not torch.allclose(out, offline_forward(nn_export(demo_vae), audio), atol=1e-3)
    # direction knobs: 1.0 -> +DIRECTION_RANGE std along direction 1; 0.0 -> -DIRECTION_RANGE std along 2
    out = stream_file_model(model, audio, DEMO_RATE, 2048, knob_params([0.0, 1.0, 0.0], audio.shape[1]))
    reference_module = nn_export(demo_vae)
    offset = DIRECTION_RANGE * (demo_directions.scales[0] * demo_directions.vectors[0]
                                - demo_directions.scales[1] * demo_directions.vectors[1])
    reference_module.set_latent_offset(offset)
    assert torch.allclose(out, offline_forward(reference_module, audio), atol=TOL)
    # back to the defaults: no offset left behind
    out = stream_file_model(model, audio, DEMO_RATE, 2048)
    assert torch.allclose(out, offline_forward(nn_export(demo_vae), audio), atol=TOL)


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
@needs_sdk
def test_a_non_finite_knob_reads_as_its_default_or_its_end(demo_loaded):
    """A host can send NaN/Inf knob values: NaN is the knob's default, +Inf its top, -Inf its bottom."""
    from vschaos.export.neutone_checks import stream_file_model

    model, _ = demo_loaded
    audio = noise(4096, seed=4)
    nan, inf = float("nan"), float("inf")
    out = stream_file_model(model, audio, DEMO_RATE, 2048, knob_params([nan, nan, nan], audio.shape[1]))
    assert torch.equal(out, stream_file_model(model, audio, DEMO_RATE, 2048, knob_params([0.0, 0.5, 0.5], 4096)))
    out = stream_file_model(model, audio, DEMO_RATE, 2048, knob_params([inf, -inf, inf], audio.shape[1]))
    assert bool(torch.isfinite(out).all())
    assert torch.equal(out, stream_file_model(model, audio, DEMO_RATE, 2048, knob_params([1.0, 0.0, 1.0], 4096)))
    # one bad sample in a buffer counts as one sample: a direction knob held at 1 does not fall back to 0.5
    held = knob_params([0.0, 1.0, 0.5], audio.shape[1])
    with_nan, with_default, with_inf = held.clone(), held.clone(), held.clone()
    with_nan[1, 100], with_default[1, 100], with_inf[1, 100] = nan, 0.5, -inf
    out = stream_file_model(model, audio, DEMO_RATE, 2048, with_nan)
    assert torch.equal(out, stream_file_model(model, audio, DEMO_RATE, 2048, with_default))
    assert not torch.allclose(out, stream_file_model(model, audio, DEMO_RATE, 2048, knob_params([0.0, 0.5, 0.5], 4096)))
    with_zero = held.clone()
    with_zero[1, 100] = 0.0
    assert torch.equal(stream_file_model(model, audio, DEMO_RATE, 2048, with_inf),
                       stream_file_model(model, audio, DEMO_RATE, 2048, with_zero))


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
@needs_sdk
def test_note_knob_conditions_a_pitch_model(tmp_path):
    from vschaos.export.directions import LatentDirections
    from vschaos.export.neutone import LABEL_AUTO_BELOW, NOTE_RANGE, export_neutone, load_neutone_model, make_texts
    from vschaos.export.neutone_checks import stream_file_model

    vae = preset_vae("dgt_pitch_cond", SMALL_PITCH)
    directions = LatentDirections.axes(int(vae.latent_dim), "no data in this test")
    path = tmp_path / "pitch.nm"
    export_neutone(vae, path, make_texts("pitch", vae, "'notes'", directions), directions, **NO_BENCH)
    model, metadata = load_neutone_model(str(path))
    assert [p["name"] for p in metadata["neutone_parameters"].values()][-1] == "note"
    assert "pitch" in metadata["tags"]
    audio = noise(4096, seed=4)
    reference_module = nn_export(vae)
    tasks = list(reference_module.forward_tasks)
    low, high = NOTE_RANGE
    a4 = LABEL_AUTO_BELOW + (69 - low) / (high - low) * (1 - LABEL_AUTO_BELOW)  # MIDI 69: A (9), octave id 5
    labels = [0.0] * len(tasks)
    labels[tasks.index("pitch")], labels[tasks.index("octave")] = 9.0, 5.0
    out = stream_file_model(model, audio, DEMO_RATE, 2048, knob_params([0.0, 0.5, 0.5, a4], audio.shape[1]))
    assert torch.allclose(out, offline_forward(reference_module, audio, tuple(labels)), atol=TOL)
    auto = stream_file_model(model, audio, DEMO_RATE, 2048)  # note knob 0: labels unknown (-1)
    assert torch.allclose(auto, offline_forward(reference_module, audio, (-1.0,) * len(tasks)), atol=TOL)
    assert not torch.allclose(out, auto, atol=1e-3)


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
@needs_sdk
def test_transpose_knob_moves_a_harmonic_models_pitch(tmp_path):
    from vschaos.export.directions import LatentDirections
    from vschaos.export.neutone import TRANSPOSE_RANGE, export_neutone, load_neutone_model, make_texts
    from vschaos.export.neutone_checks import stream_file_model

    vae = preset_vae("demo", ("model=harmonic",))
    directions = LatentDirections.axes(int(vae.latent_dim), "no data in this test", first=vae.pitch_dims)
    assert directions.vectors[:, 0].abs().sum() == 0  # the directions leave the pitch to the transpose knob
    path = tmp_path / "harmonic.nm"
    export_neutone(vae, path, make_texts("harmonic", vae, "'notes'", directions), directions, **NO_BENCH)
    model, metadata = load_neutone_model(str(path))
    names = [p["name"] for p in metadata["neutone_parameters"].values()]
    assert names == ["temperature", "direction 1", "direction 2", "transpose"]
    audio = noise(4096, seed=5)
    out = stream_file_model(model, audio, DEMO_RATE, 2048, knob_params([0.0, 0.5, 0.5, 0.75], audio.shape[1]))
    # the reference in the model math the export chose: this untrained model's output is 40 dB under its input,
    # forward's level follow raises it as much, and float32 rounding with it (the export then runs in float64)
    dtype = next(model.parameters()).dtype
    reference_module = script_model(vae, dtype=dtype)
    assert reference_module.set_transpose(0.5 * TRANSPOSE_RANGE) == 0  # knob 0.75 = half way up
    assert torch.allclose(out, offline_forward(reference_module, audio), atol=TOL)
    untransposed = stream_file_model(model, audio, DEMO_RATE, 2048)
    assert torch.allclose(untransposed, offline_forward(script_model(vae, dtype=dtype), audio), atol=TOL)
    assert not torch.allclose(out, untransposed, atol=1e-3)


class WrongDelayNeutone:  # built lazily: the class needs the SDK
    @staticmethod
    def make():
        from vschaos.export.neutone import NeutoneSpectralVAE

        class WrongDelay(NeutoneSpectralVAE):
            """Reports one hop less delay than the model has."""

            @torch.jit.export
            def calc_model_delay_samples(self) -> int:
                return self.vs_delay - 256

        return WrongDelay


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
@needs_sdk
def test_a_model_whose_reported_delay_is_wrong_is_refused(tmp_path, monkeypatch, identity_model):
    import vschaos.export.neutone as neutone
    from vschaos.export.directions import LatentDirections

    # the shared double: output = the input's spectrogram with RTPGHI phase, so its delay is measurable
    vae = identity_model(SpectralTransform(sample_rate=DEMO_RATE, n_fft=1024, hop=DEMO_HOP))
    directions = LatentDirections.axes(int(vae.latent_dim), "identity")
    texts = neutone.make_texts("identity", vae, "'none'", directions)
    path = tmp_path / "out" / "identity.nm"
    # the right delay passes: the delay is measured (the identity model's output resembles its input)
    report = neutone.export_neutone(vae, path, texts, directions, **NO_BENCH)
    assert all(c.ok for c in report.checks) and "measured" in report.checks[0].delay_summary
    path.unlink()
    monkeypatch.setattr(neutone, "NeutoneSpectralVAE", WrongDelayNeutone.make())
    with pytest.raises(neutone.NeutoneExportError, match="reported delay"):
        neutone.export_neutone(vae, path, texts, directions, **NO_BENCH)
    assert list(path.parent.iterdir()) == []  # nothing written, no temporary folder left


# ---------------------------------------------------------------- command line
from test_generation_cli import make_run  # noqa: E402  (one run-folder maker for the CLI tests)


@needs_sdk
@pytest.mark.slow
def test_script_format_neutone_uses_the_training_latents(tmp_path, capsys):
    from vschaos.data.demo import make_demo_dataset
    from vschaos.export.directions import principal_directions, training_latents
    from vschaos.export.neutone import load_neutone_model
    from vschaos.training.run import open_run

    data = make_demo_dataset(tmp_path / "demo_data", sample_rate=DEMO_RATE, minutes=0.1, files_per_instrument=1)
    run_dir = make_run(tmp_path / "runs", "demo", "tiny", dataset_root=data)
    assert script_main([str(run_dir), "--format", "neutone", "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "1/RTF" in printed and "principal directions of" in printed and "SDK benchmark-latency" in printed
    assert "any DAW rate resampled inside (exact pitch)" in printed
    assert "48 kHz / 441: equals StreamingVAE.forward between the wrapper's resamplers" in printed
    model, metadata = load_neutone_model(str(tmp_path / "out" / "tiny.nm"))
    assert "'demo_data' (" in metadata["model_short_description"]
    # the stored directions are the principal directions of the training latents, scaled
    run = open_run(run_dir)
    latents, _ = training_latents(run.cfg, run.vae)
    vectors, scales = principal_directions(latents)
    from vschaos.export.neutone import DIRECTION_RANGE
    steps = model.w2w_base.vs_direction_steps
    assert torch.allclose(steps, DIRECTION_RANGE * scales.unsqueeze(1) * vectors, atol=TOL)


@needs_sdk
@pytest.mark.slow
def test_script_neutone_without_training_data_falls_back_to_the_prior_axes(tmp_path, capsys):
    run_dir = make_run(tmp_path / "runs", "demo", "nodata", dataset_root=tmp_path / "gone")
    assert script_main([str(run_dir), "--format", "neutone", "--temperature", "0.5",
                        "--data-description", "my synth patches"]) == 0
    captured = capsys.readouterr()
    assert "latent axes 0-1 of the prior" in captured.out and "not readable" in captured.out
    assert "--temperature apply to --format nn only" in captured.err
    from vschaos.export.neutone import load_neutone_model

    _, metadata = load_neutone_model(str(run_dir / "nodata.nm"))
    assert "my synth patches" in metadata["model_short_description"]


@needs_sdk
def test_script_neutone_refuses_an_empty_data_description(tmp_path, capsys):
    run_dir = make_run(tmp_path / "runs", "demo", "blank")
    assert script_main([str(run_dir), "--format", "neutone", "--data-description", "   "]) == 2
    assert "--data-description is empty" in capsys.readouterr().err
    assert not (run_dir / "blank.nm").exists()


@needs_sdk
def test_script_neutone_says_when_the_plugin_cuts_the_name(tmp_path, capsys, monkeypatch):
    from vschaos.export import neutone

    def refuse(*args, **kwargs):
        raise neutone.NeutoneExportError("stopped by the test")

    monkeypatch.setattr(neutone, "export_run", refuse)  # the note comes before the export
    run_dir = make_run(tmp_path / "runs", "demo", "short")
    long_name = "my very long model name for the plugin"
    assert script_main([str(run_dir), "--format", "neutone", "--output-name", long_name]) == 1
    printed = capsys.readouterr().out
    assert f"up to 30 characters: {long_name[:30]!r}" in printed


def test_without_the_sdk_neutone_export_is_a_clear_error_and_nn_is_unaffected(tmp_path, capsys, monkeypatch):
    run_dir = make_run(tmp_path / "runs", "demo", "nosdk")
    monkeypatch.setitem(sys.modules, "neutone_sdk", None)  # import neutone_sdk -> ImportError
    for name in [name for name in sys.modules if name.startswith("vschaos.export.neutone")]:
        monkeypatch.delitem(sys.modules, name)  # the export's modules, imported again: without the SDK
    assert script_main([str(run_dir), "--format", "neutone", "-o", str(tmp_path / "out")]) == 2
    assert "pip install -e .[neutone]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@needs_sdk
@pytest.mark.parametrize("preset, overrides, last_knob", [("dgt_mid", (), "direction 2"),
                                                         ("dgt_harmonic", (), "transpose"),
                                                         ("dgt_pitch_cond", (), "note"),
                                                         ("dgt_pitch_prediction", (), "note")])
def test_full_presets_pass_the_sdk_checks(tmp_path, preset, overrides, last_knob):
    from vschaos.export.directions import LatentDirections
    from vschaos.export.neutone import export_neutone, make_texts

    vae = preset_vae(preset, overrides)
    directions = LatentDirections.axes(int(vae.latent_dim), "random weights")
    report = export_neutone(vae, tmp_path / f"{preset}.nm", make_texts(preset, vae, "'none'", directions), directions,
                            **FAST_BENCH)
    assert all(c.ok for c in report.checks)
    assert report.metadata["native_sample_rates"] == []
    assert report.knobs[-1][0] == last_knob
    assert report.benchmarks.inverse_rtf(48000, 2048) > 0


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
def test_the_nn_path_never_imports_the_sdk():
    code = ("import sys, vschaos.export, vschaos.cli.script, vschaos.host; "
            "assert 'neutone_sdk' not in sys.modules, 'neutone_sdk imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def _bench_module(name: str, monkeypatch):
    """A bench/ script as a module: ``bench`` is a package of the repository root (``python -m bench.NAME``)."""
    return importlib.import_module(f"bench.{name}")


@needs_sdk
def test_the_plugins_resampling_plays_a_fixed_pitch_sharp_as_the_readme_says(tmp_path, monkeypatch):
    """docs/NEUTONE.md, the plugin's own resampling plays pitches sharp: the table there is measured by
    bench/neutone_pitch.py. If a new SDK rounds differently, this fails and the table must be measured again."""
    bench = _bench_module("neutone_pitch", monkeypatch)
    model_rate = 22050
    path = bench.save_shell(bench._Oscillator(model_rate), tmp_path / "tone.nm", [model_rate], [256, 512, 1024])
    from neutone_sdk.utils import load_neutone_model

    model, _ = load_neutone_model(str(path))
    cents = {setting: 1200 * math.log2(bench.played_hz(model, *setting, seconds=2.0) / bench.TONE_HZ)
             for setting in [(44100, 256), (48000, 64), (48000, 2048)]}
    assert abs(cents[(44100, 256)]) < 0.5
    assert cents[(48000, 64)] == pytest.approx(35.0, abs=0.5)  # 30 samples for 29.4
    assert cents[(48000, 2048)] == pytest.approx(0.4, abs=0.3)  # 941 for 940.8
    # the figure every export prints predicts what the plugin plays
    for setting, measured in cents.items():  # 2 s of sound: the measurement resolves ~0.25 cent
        assert bench.resampling_pitch_cents([model_rate], *setting) == pytest.approx(measured, abs=0.3)
    assert bench.resampling_pitch_cents([48000], 48000, 100) == 0.0
    assert bench.resampling_pitch_cents([], 48000, 64) == 0.0  # any rate native: the plugin leaves it alone


@needs_sdk
@pytest.mark.parametrize("daw_rate, daw_buffer", [(48000, 64), (48000, 2048), (96000, 32), (44100, 100),
                                                  (176400, 64), (192000, 441), (8000, 64)])
def test_our_wrapper_plays_a_fixed_pitch_in_tune_at_any_buffer(tmp_path, monkeypatch, daw_rate, daw_buffer):
    """The same oscillator behind WholeHopsAtDawRates (every rate native, resampled inside with the position
    carried across calls): in tune at DAW settings where the plugin's own resampling plays sharp (by how much:
    bench/neutone_pitch.py), rare rates included."""
    bench = _bench_module("neutone_pitch", monkeypatch)
    path = bench.save_shell(bench._Oscillator(DEMO_RATE), tmp_path / "tone.nm", [DEMO_RATE], [], hop=DEMO_HOP)
    from neutone_sdk.utils import load_neutone_model

    model, metadata = load_neutone_model(str(path))
    assert metadata["native_sample_rates"] == []
    played = bench.played_hz(model, daw_rate, daw_buffer, seconds=2.0)
    assert 1200 * math.log2(played / bench.TONE_HZ) == pytest.approx(0.0, abs=0.3)


@needs_sdk
@pytest.mark.parametrize("daw_rate, daw_buffer", [(48000, 441), (44100, 100), (96000, 64)])
def test_the_reported_delay_is_the_waveforms_delay_through_our_resamplers(tmp_path, monkeypatch, daw_rate,
                                                                            daw_buffer):
    """An identity behind WholeHopsAtDawRates: what comes out is what went in (band-limited), exactly the
    reported delay later: the waveform correlation peaks there at 1.0."""
    from neutone_sdk.utils import load_neutone_model

    from vschaos.export.neutone_checks import stream_file_model
    from vschaos.host.verify import measure_delay

    bench = _bench_module("neutone_speed", monkeypatch)
    path = bench.save_shell(bench._Identity(), tmp_path / "identity.nm", [DEMO_RATE], [], hop=DEMO_HOP)
    model, _ = load_neutone_model(str(path))
    model.set_daw_sample_rate_and_buffer_size(daw_rate, daw_buffer)
    delay = int(model.calc_model_delay_samples()) + int(model.calc_buffering_delay_samples())
    import torchaudio.functional as AF

    length = daw_rate // 2 // daw_buffer * daw_buffer
    audio = AF.resample(noise(length * 16000 // daw_rate + 100), 16000, daw_rate)[:, :length]  # noise below 8 kHz
    out = stream_file_model(model, audio, daw_rate, daw_buffer)
    lag, correlation = measure_delay(audio[0].double().numpy(), out[0].double().numpy(), length // 2)
    assert lag == delay and correlation > 0.99  # not 1: the input's abrupt start is not band-limited
    assert torch.allclose(out[0, delay + 2000:], audio[0, 2000:length - delay], atol=1e-2)  # past the start
    assert float(out[0, delay + 2000:].abs().max()) > 0.3


class _FullScaleSquare(nn.Module):
    """+-4 (the outlets' bound) alternating every 5 samples, whatever the input: the worst case for ringing."""

    def forward(self, x: Tensor) -> Tensor:
        return 4.0 * torch.sign(torch.sin(torch.arange(x.shape[1]).to(x.dtype) * (math.pi / 5.0) + 0.1)).unsqueeze(0)


@needs_sdk
def test_the_output_bound_holds_after_our_resampling(tmp_path, monkeypatch):
    from neutone_sdk.utils import load_neutone_model

    from vschaos.dsp.resample import resample_offline
    from vschaos.export.neutone_checks import stream_file_model

    bench = _bench_module("neutone_speed", monkeypatch)
    path = bench.save_shell(_FullScaleSquare(), tmp_path / "square.nm", [DEMO_RATE], [], hop=DEMO_HOP)
    model, _ = load_neutone_model(str(path))
    out = stream_file_model(model, torch.zeros(1, 48000 // 480 * 480), 48000, 480)
    square = _FullScaleSquare()(torch.zeros(1, DEMO_RATE))
    assert float(resample_offline(square, DEMO_RATE, 48000, 40000).abs().max()) > 4.2  # the filter rings past 4
    assert float(out.abs().max()) == 4.0


@needs_sdk
def test_the_resampled_check_compares_with_the_clamped_chain(tmp_path, demo_vae, demo_directions):
    """The wrapper clamps after its output resampler, where a model at its soft-clipped +-4 rings past it; the
    check's offline reference must clamp too, or a trained model fed louder input than it learnt is refused at
    every DAW rate but its own. A low limit makes the clamp act at this model's level."""
    from neutone_sdk.utils import load_neutone_model, save_neutone_model

    from vschaos.export.neutone import NeutoneSpectralVAE, make_texts, streaming_module
    from vschaos.export.neutone_checks import check_buffer, stream_file_model

    texts = make_texts("demo", demo_vae, "'demo_data'", demo_directions)
    wrapper = NeutoneSpectralVAE(streaming_module(demo_vae), texts, demo_directions)
    wrapper.vs_output_limit = 0.0625  # exact in float32
    save_neutone_model(wrapper, tmp_path, dump_samples=False, submission=False, speed_benchmark=False,
                       test_offline_mode=False)
    model, _ = load_neutone_model(str(tmp_path / "model.nm"))
    assert float(stream_file_model(model, noise(48000 // 441 * 441), 48000, 441).abs().max()) == 0.0625
    assert check_buffer(model, 441, daw_rate=48000).problems == []


@needs_sdk
@pytest.mark.parametrize("preset", ["demo", "dgt_pitch_prediction", "dgt_harmonic", "dgt_live"])
def test_bench_stages_chained_are_the_streamed_forward(monkeypatch, preset):
    """bench/neutone_speed.py times forward's stages one by one: the stages, chained, must give forward's own output
    (labels, predictors and the f0 tracker included), or the split misattributes time."""
    from vschaos.export.export import script_model

    bench = _bench_module("neutone_speed", monkeypatch)
    vae = preset_vae(preset)
    x = 0.1 * torch.randn(1, 1 + len(script_model(vae).forward_tasks), 2048,
                          generator=torch.Generator().manual_seed(1))
    x[:, 1:] = -1.0
    x[0, 0, 700], x[0, 0, 900], x[0, 0, 1000:1010] = math.nan, math.inf, 5e4  # the input bound acts (INPUT_LIMIT)
    stages, chained = bench.forward_stages(script_model(vae), x)
    # a model that reads its f0 from a longer window (dgt_live) has that analysis as a stage of its own
    assert list(stages) == bench.STAGES + (["pitch window"] if preset == "dgt_live" else [])
    with torch.no_grad():
        expected = script_model(vae).forward(x)
    assert float(expected.abs().max()) > 0.0
    assert torch.equal(chained, expected)


class _ProductThenAdd(nn.Module):
    """Two operations: one product large enough to dominate the profile, one small addition."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1024, 1024, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(x, self.weight) + 1.0


@needs_sdk
def test_bench_profile_counts_what_a_call_dispatches(monkeypatch):
    """bench/neutone_speed.py's profile says how many operations a plugin call dispatches and which do the most
    arithmetic: a module of one product and one addition dispatches two, its product (aten::mm under matmul) is
    the heaviest, once per call, with its shapes, and operations averaging under ``min_us`` are left out."""
    bench = _bench_module("neutone_speed", monkeypatch)
    module = torch.jit.script(_ProductThenAdd())
    x = torch.randn(256, 1024, generator=torch.Generator().manual_seed(1))  # a product ~1000x the add
    with torch.no_grad():
        module(x)
    profile = bench.profile_calls(lambda: module(x), calls=10, top=20, min_us=0.0)
    assert profile["operations"] == 2.0
    heaviest = profile["heaviest"]
    assert (heaviest[0]["operation"], heaviest[0]["per_call"], heaviest[0]["shapes"]) == (
        "aten::mm", 1.0, "[[256, 1024], [1024, 1024]]")
    assert "aten::add" in [entry["operation"] for entry in heaviest[1:]]
    assert profile["heaviest_ms"] == pytest.approx(sum(entry["ms"] for entry in heaviest))
    assert heaviest[0]["ms"] > 3 * max(entry["ms"] for entry in heaviest[1:])  # far more idle; load can stall an add
    assert bench.profile_calls(lambda: module(x), calls=10, min_us=1e9)["heaviest"] == []


@needs_sdk
def test_bench_floor_is_the_plugin_around_an_identity(tmp_path, monkeypatch):
    """bench/neutone_speed.py subtracts this floor from a model's figure: it must be the plugin's own work (four
    knobs, the model's native sizes) around an identity, and nothing else."""
    from neutone_sdk.utils import load_neutone_model

    from vschaos.export.neutone_checks import stream_file_model

    bench = _bench_module("neutone_speed", monkeypatch)
    path = bench.floor_file(tmp_path, [DEMO_RATE], [DEMO_HOP, 2 * DEMO_HOP])
    assert bench.native_sizes(path) == ([DEMO_RATE], [DEMO_HOP, 2 * DEMO_HOP])
    model, metadata = load_neutone_model(str(path))
    assert len(metadata["neutone_parameters"]) == 4
    audio = torch.randn(1, 8 * DEMO_HOP, generator=torch.Generator().manual_seed(0))
    # at a native rate and buffer size the plugin neither resamples nor queues: the identity's output is its input
    assert torch.equal(stream_file_model(model, audio, DEMO_RATE, DEMO_HOP), audio)
    assert not any(p.name.startswith(".shell.") for p in tmp_path.iterdir())  # the staging folder is removed
    assert bench.floor_file(tmp_path, [DEMO_RATE], [DEMO_HOP]) != path  # one floor per rate and size list
    assert bench.floor_file(tmp_path, [DEMO_RATE, 48000], [DEMO_HOP, 2 * DEMO_HOP]) != path
    assert bench.floor_file(tmp_path, [DEMO_RATE], [DEMO_HOP, 2 * DEMO_HOP]) == path
    # a model at 1/RTF 10 beside a floor of 20 adds half a buffer's duration minus a twentieth: 2.133 ms
    assert bench.model_ms(10.0, 20.0) == pytest.approx(1e3 * 2048 / 48000 * (0.1 - 0.05))
