"""Operations per streamed call of the shipped presets, and the lean forms that keep them few giving the very bits of
the plain formulas they replace.

A one-frame call is what a small DAW buffer runs (one hop every few plugin calls); the calls in between only queue.
Both counts are deterministic, so a test can hold them (timings belong in ``bench/neutone_speed.py``). The budgets are
the counts of the commit that set them: a change that adds an operation to these paths fails here.
"""
import importlib.util
import math
import warnings

import pytest
import torch

from vschaos.cli.train import compose_config
from vschaos.dsp import bounds
from vschaos.dsp.f0 import HarmonicF0, harmonic_peaks, refine_f0, widened_peaks
from vschaos.dsp.resample import StreamingResampler
from vschaos.export.export import script_model
from vschaos.training.run import build_model

from test_call_cost import CountOperations  # noqa: E402  (one operation counter for the call-cost tests)

# tensor operations of the scripted forward at one frame per call (TorchDispatchMode's count)
# (5 of them: forward's level follow, vschaos.dsp.functional.follow_level; 108 of dgt_harmonic's: its voicing follow,
# HarmonicDecoder.voicing and .voiced with the energy floor of follow_floor, which `set voicing model` skips)
# (a source-filter model's forward keeps the input's phase by default: no RTPGHI, 53 operations fewer)
ONE_FRAME_BUDGETS = {"dgt_mid": 135, "dgt_harmonic": 324, "dgt_live": 331}
# a plugin call at 48 kHz that completes no hop of a 44.1 kHz model: the SDK's own checks (eager, debug mode) and ours
RESAMPLED_QUEUE_ONLY_BUDGET = 15


def _scripted(preset: str):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return script_model(build_model(compose_config(preset, [])).eval())


@pytest.mark.parametrize("preset", sorted(ONE_FRAME_BUDGETS))
def test_a_one_frame_call_of_each_preset_stays_within_its_budget(preset):
    module = _scripted(preset)
    x = 0.1 * torch.randn(1, 1, module.hop, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        module.forward(x)  # the first call sizes the streaming state
        counter = CountOperations()
        with counter:
            module.forward(x)
    assert counter.count <= ONE_FRAME_BUDGETS[preset], (
        f"{preset}'s scripted forward dispatches {counter.count} tensor operations per one-frame call (budget "
        f"{ONE_FRAME_BUDGETS[preset]}); measure with python -m bench.neutone_speed --compare")


needs_sdk = pytest.mark.skipif(importlib.util.find_spec("neutone_sdk") is None,
                               reason="the Neutone SDK is not installed: pip install -e .[neutone]")


@needs_sdk
def test_a_resampled_plugin_call_that_only_queues_resamples_nothing_in():
    """At 48 kHz and 128 samples, a 44.1 kHz model with a 512-sample hop runs a hop every fourth or fifth call; the
    calls in between push their input into the input resampler, which resamples nothing until a whole hop can be,
    and pull the output resampler: a few operations, whatever the model."""
    from vschaos.export.directions import LatentDirections
    from vschaos.export.neutone import NeutoneSpectralVAE, NeutoneTexts
    from vschaos.export.export import streaming_module

    torch.manual_seed(0)
    vae = build_model(compose_config("dgt_mid", [])).eval()
    wrapper = NeutoneSpectralVAE(streaming_module(vae), NeutoneTexts("dgt_mid", "t", "t", "t", ["t"]),
                                 LatentDirections.axes(int(vae.latent_dim), "test"))
    buffer = 128
    wrapper.set_model_sample_rate_and_buffer_size(48000, buffer)
    audio = 0.1 * torch.randn(1, 40 * buffer, generator=torch.Generator().manual_seed(1))
    counts = []
    with torch.no_grad():
        for i in range(audio.shape[1] // buffer):
            counter = CountOperations()
            with counter:
                wrapper(audio[:, i * buffer:(i + 1) * buffer], torch.full((wrapper._get_max_n_params(), buffer), 0.5))
            counts.append(counter.count)
    queue_only = [count for count in counts if count <= 2 * RESAMPLED_QUEUE_ONLY_BUDGET]
    # 40 calls of 128 samples at 48 kHz make 4704 model samples: 9 hops, so 31 calls that only queue
    assert len(queue_only) == len(counts) - 9
    assert max(queue_only) <= RESAMPLED_QUEUE_ONLY_BUDGET, counts


def test_a_resampler_that_pulls_on_every_call_and_pushes_on_some_keeps_only_what_it_will_read():
    """The input that no later output reads is dropped before each push (not after each pull): memory stays
    bounded and the samples are those of one push and one pull of everything."""
    resampler = StreamingResampler(44100, 48000)
    x = torch.randn(1, 30 * 512, generator=torch.Generator().manual_seed(2))
    outputs, lengths = [], []
    for i in range(30):
        resampler.push(x[:, i * 512:(i + 1) * 512])
        lengths.append(resampler.history.shape[1])
        ready = resampler.ready()
        for start in range(0, ready, 128):  # what the push completes, in pulls of up to 128
            outputs.append(resampler.pull(min(128, ready - start)))
    streamed = torch.cat(outputs, dim=1)
    whole = StreamingResampler(44100, 48000)
    whole.push(x)
    assert streamed.shape[1] > 29 * 512 * 48000 // 44100 and torch.equal(streamed, whole.pull(streamed.shape[1]))
    assert max(lengths) <= 512 + 2 * resampler.half_width and resampler.underruns == 0


# ---------------------------------------------------------------- the lean forms against the plain formulas

def _plain_harmonic_peaks(compressed: torch.Tensor, min_height: float = 1.0e-3) -> torch.Tensor:
    floor = compressed.mean(dim=-1, keepdim=True) + compressed.std(dim=-1, keepdim=True)
    level = compressed - floor
    level = torch.where(level > min_height, level, torch.zeros_like(level))
    inner = level[:, 1:-1]
    is_peak = (inner >= level[:, :-2]) & (inner > level[:, 2:])
    return torch.nn.functional.pad(inner * is_peak.to(level.dtype), (1, 1))


def _plain_refine(magnitude, coarse_hz, bin_hz: float, n_harmonics: int = 8):
    n_bins = magnitude.shape[-1]
    k = torch.arange(1, n_harmonics + 1, dtype=magnitude.dtype)
    expected = coarse_hz.unsqueeze(-1) * k / bin_hz
    centre = expected.round().long()
    valid = (centre >= 2) & (centre <= n_bins - 3)
    centre = centre.clamp(2, n_bins - 3)
    offsets = torch.arange(-1, 2)
    window = magnitude.gather(1, (centre.unsqueeze(-1) + offsets).flatten(1)).view(centre.shape[0], -1, 3)
    peak = centre + window.argmax(dim=-1) - 1
    triple = magnitude.gather(1, (peak.unsqueeze(-1) + offsets).flatten(1)).view(centre.shape[0], -1, 3)
    log_triple = torch.log(triple + 1e-12)
    left, middle, right = log_triple[..., 0], log_triple[..., 1], log_triple[..., 2]
    curvature = left - 2 * middle + right
    is_peak = (middle >= left) & (middle >= right) & (curvature < 0)
    delta = torch.where(is_peak, 0.5 * (left - right) / torch.where(is_peak, curvature, -torch.ones_like(curvature)),
                        torch.zeros_like(curvature)).clamp(-0.5, 0.5)
    position = peak.to(magnitude.dtype) + delta
    weight = triple[..., 1] * (valid & is_peak).to(magnitude.dtype)
    numerator = (weight * k * position).sum(-1)
    denominator = (weight * k * k).sum(-1)
    fitted = numerator / denominator.clamp_min(1e-30) * bin_hz
    ratio = fitted / coarse_hz
    tolerance = torch.clamp(0.75 * bin_hz / coarse_hz, min=2 ** (1 / 12) - 1)
    ok = (denominator > 0) & ((ratio - 1).abs() < tolerance)
    return torch.where(ok, fitted, coarse_hz)


def _frames(dtype: torch.dtype) -> torch.Tensor:
    """Magnitude frames (2048-point, 44.1 kHz): harmonic tones from 25 Hz to 2.5 kHz, noise, silence, a click."""
    generator = torch.Generator().manual_seed(5)
    n_fft, rate = 2048, 44100
    t = torch.arange(n_fft, dtype=torch.float64) / rate
    window = torch.exp(-0.5 * ((torch.arange(n_fft, dtype=torch.float64) - n_fft / 2) / (n_fft / 8)) ** 2)
    frames = []
    for f0 in torch.exp(torch.linspace(math.log(25.0), math.log(2500.0), 60, dtype=torch.float64)).tolist():
        tone = sum(float(torch.rand(1, generator=generator)) ** 2 * torch.sin(2 * math.pi * f0 * k * t + k)
                   for k in range(1, 21) if f0 * k < rate / 2)
        frames.append(torch.fft.rfft(tone * window).abs())
    frames += [torch.fft.rfft(torch.randn(n_fft, generator=generator, dtype=torch.float64) * window).abs()
               for _ in range(10)]
    click = torch.zeros(n_fft, dtype=torch.float64)
    click[1000] = 1.0
    frames += [torch.zeros(n_fft // 2 + 1, dtype=torch.float64), torch.fft.rfft(click * window).abs()]
    return torch.stack(frames).to(dtype)


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous().view(torch.int32 if x.dtype == torch.float32 else torch.int64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_f0_trackers_lean_steps_give_the_plain_formulas_bits(dtype):
    magnitude = _frames(dtype)
    tracker = HarmonicF0(2048, 44100)
    compressed = torch.log1p(magnitude / (1e-3 * magnitude.amax(dim=-1, keepdim=True) + 1e-12))
    peaks = harmonic_peaks(compressed)
    assert torch.equal(_bits(peaks), _bits(_plain_harmonic_peaks(compressed)))
    pooled = [peaks] + [torch.nn.functional.max_pool1d(peaks.unsqueeze(1), 2 * w + 1, 1, w).squeeze(1)
                        for w in (1, 2, 4)]
    assert torch.equal(_bits(widened_peaks(peaks, [0, 1, 2, 4])), _bits(torch.cat(pooled, dim=-1)))
    coarse = tracker.candidates.to(dtype)[tracker.salience(magnitude).argmax(dim=-1)]
    refined = refine_f0(magnitude, coarse, tracker.bin_hz)
    assert torch.equal(_bits(refined), _bits(_plain_refine(magnitude, coarse, tracker.bin_hz)))
    assert torch.equal(_bits(tracker(magnitude)), _bits(refined.clamp(tracker.fmin, tracker.fmax)))
    assert bool((refined != coarse).any())  # the fit moved some frames: the comparison covers it


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_clip_of_audio_within_the_knee_is_the_formulas_result(dtype):
    def formula(audio):
        x = torch.nan_to_num(audio, nan=0.0)
        size, room = x.abs(), bounds.OUTPUT_LIMIT - bounds.OUTPUT_KNEE
        saturated = torch.tanh((size - bounds.OUTPUT_KNEE).clamp_min(0.0) / room) * room + bounds.OUTPUT_KNEE
        return torch.copysign(torch.minimum(size, saturated), x)

    quiet = torch.cat([torch.tensor([-2.0, -0.0, 0.0, 2.0, math.nan], dtype=dtype),
                       torch.randn(500, generator=torch.Generator().manual_seed(6), dtype=dtype).clamp(-2, 2)])
    loud = torch.cat([quiet, torch.tensor([2.5, -math.inf, 1e30], dtype=dtype)])
    for audio in (quiet, loud):
        got = bounds.soft_clip(audio)
        assert torch.equal(_bits(got), _bits(formula(audio)))
    assert torch.equal(_bits(bounds.soft_clip(quiet)), _bits(torch.nan_to_num(quiet, nan=0.0)))
