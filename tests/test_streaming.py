"""Streaming DGT analysis/synthesis and real-time phase (vschaos.dsp.streaming).

Like cached_conv's own test: whatever the buffer size, the streamed result equals the offline
one after the declared delay.
"""
import math
import warnings

import pytest
import torch

from vschaos.dsp import functional as dsp
from vschaos.dsp.streaming import (
    RTPGHI,
    StreamingAnalysis,
    StreamingSynthesis,
    peak_anchors,
)
from vschaos.dsp.counter_noise import counter_normal, counter_uniform, normal_uniform_streams
from vschaos.export.module import PHASE_NOISE_STREAM

N_FFT, HOP = 1024, 256


def _script(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(module)


def _windows(n_fft=N_FFT, hop=HOP):
    window = dsp.gaussian_window(n_fft)
    return window, dsp.dual_window(window, hop)


def _vibrato_tone(seconds=1.0, sample_rate=22050, f0=220.0, n_harmonics=8):
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    freq = f0 * (1.0 + 0.01 * torch.sin(2 * math.pi * 5.0 * t))
    phase = 2 * math.pi * torch.cumsum(freq, 0) / sample_rate
    tone = sum(torch.sin(k * phase) / k for k in range(1, n_harmonics + 1))
    return (0.3 * tone).float()


def _stream_blocks(length, block):
    return [(start, min(start + block, length)) for start in range(0, length, block)]


def test_analysis_then_synthesis_is_identity_delayed():
    window, dual = _windows()
    audio = torch.randn(2, 8192)
    analysis, synthesis = StreamingAnalysis(window, HOP), StreamingSynthesis(dual, HOP)
    out = torch.cat([synthesis(analysis(audio[:, a:b])) for a, b in _stream_blocks(8192, 512)], dim=-1)
    delay = N_FFT - HOP
    assert out[:, :delay].abs().max() < 1e-5  # silence until the first sample is complete
    torch.testing.assert_close(out[:, delay:], audio[:, : 8192 - delay], atol=1e-5, rtol=1e-5)


def test_batch_size_change_reinitialises_state():
    window, dual = _windows()
    analysis, synthesis, phase = StreamingAnalysis(window, HOP), StreamingSynthesis(dual, HOP), \
        RTPGHI(N_FFT, HOP, dsp.gaussian_lambda(N_FFT))
    loud = torch.randn(4, 2048)
    synthesis(analysis(loud))
    phase(analysis(loud).abs())
    assert analysis.history.shape == (4, N_FFT - HOP) and synthesis.tail.shape == (4, N_FFT - HOP)
    fresh_analysis, fresh_synthesis, fresh_phase = StreamingAnalysis(window, HOP), StreamingSynthesis(dual, HOP), \
        RTPGHI(N_FFT, HOP, dsp.gaussian_lambda(N_FFT))
    quiet = torch.randn(2, 1024)
    spec = analysis(quiet)
    torch.testing.assert_close(spec, fresh_analysis(quiet))
    torch.testing.assert_close(synthesis(spec), fresh_synthesis(spec))
    torch.testing.assert_close(phase(spec.abs()), fresh_phase(spec.abs()))
    assert analysis.history.shape[0] == 2 and synthesis.tail.shape[0] == 2 and phase.prev_shifted_phase.shape[0] == 2


def test_reset_forgets_the_stream():
    window, dual = _windows()
    analysis, synthesis = StreamingAnalysis(window, HOP), StreamingSynthesis(dual, HOP)
    x = torch.randn(1, 1024)
    first = synthesis(analysis(x))
    synthesis(analysis(torch.randn(1, 1024)))
    analysis.reset()
    synthesis.reset()
    torch.testing.assert_close(synthesis(analysis(x)), first)


def test_non_multiple_of_hop_is_an_explicit_error():
    window, _ = _windows()
    with pytest.raises(ValueError, match="multiple of the hop"):
        StreamingAnalysis(window, HOP)(torch.zeros(1, HOP + 1))


def test_peak_anchors_follow_the_uphill_walk():
    log_mag = torch.tensor([[0.0, 1.0, 3.0, 2.0, 0.5, 0.2, 0.6, 5.0, 1.0]])
    # peaks at 2 and 7 (and none at the borders); the valley bin 5 goes to its larger neighbour 6 -> 7
    assert peak_anchors(log_mag).tolist() == [[2, 2, 2, 2, 2, 7, 7, 7, 7]]
    flat = torch.zeros(1, 5)
    assert peak_anchors(flat).tolist() == [[0, 1, 2, 3, 4]]


def test_a_flat_stretch_with_rounding_noise_stays_all_peaks():
    # a decoder output at one of its bounds is flat (a trained HarmonicDecoder's can be); float rounding (1e-7,
    # different in a streamed and an offline call) must not make some of its bins walk to a neighbour
    flat = torch.full((1, 7), 3.226)
    rounding = torch.tensor([[0.0, 2e-7, -2e-7, 4e-7, 0.0, -4e-7, 2e-7]])
    assert peak_anchors(flat + rounding).tolist() == peak_anchors(flat).tolist() == [list(range(7))]
    # a slope of 0.01 neper per bin is no tie: it still walks uphill
    slope = torch.arange(7.0).unsqueeze(0) * 0.01
    assert peak_anchors(slope).tolist() == [[6] * 7]


def _spectral_convergence_of_phase(magnitude, phase, window, dual, length):
    audio = dsp.idgt(torch.polar(magnitude, phase), dual, HOP, length)
    return float(dsp.spectral_convergence(magnitude, dsp.dgt(audio, window, HOP).abs()).mean())


def test_rtpghi_is_far_better_than_random_phase_on_a_harmonic_tone():
    window, dual = _windows()
    tone = _vibrato_tone().unsqueeze(0)
    length = tone.shape[-1]
    magnitude = dsp.dgt(tone, window, HOP).abs()
    rtpghi = RTPGHI(N_FFT, HOP, dsp.gaussian_lambda(N_FFT))
    streamed_phase = torch.cat([rtpghi(magnitude[:, a:b]) for a, b in _stream_blocks(magnitude.shape[1], 4)], dim=1)
    random_phase = (torch.rand(magnitude.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1) * math.pi
    sc_rtpghi = _spectral_convergence_of_phase(magnitude, streamed_phase, window, dual, length)
    sc_random = _spectral_convergence_of_phase(magnitude, random_phase, window, dual, length)
    # random phase leaves the spectrogram far from consistent, RTPGHI close to it; both bounds leave a wide margin
    # (python -m experiments.phase_quality scores the methods)
    assert sc_random > 0.5
    assert sc_rtpghi < 0.1


def test_counter_noise_is_a_function_of_frame_index():
    frames = torch.arange(100, 200)
    whole = counter_normal(7, 0, 3, frames, 16)
    assert whole.shape == (3, 100, 16)
    parts = torch.cat([counter_normal(7, 0, 3, frames[:30], 16), counter_normal(7, 0, 3, frames[30:], 16)], dim=1)
    torch.testing.assert_close(whole, parts, rtol=0, atol=0)
    # row 0 does not depend on how many rows there are; rows, seeds and streams differ
    torch.testing.assert_close(counter_normal(7, 0, 1, frames, 16)[0], whole[0], rtol=0, atol=0)
    assert not torch.equal(whole[0], whole[1])
    assert not torch.equal(whole, counter_normal(8, 0, 3, frames, 16))
    assert not torch.equal(whole, counter_normal(7, 1, 3, frames, 16))
    many = counter_uniform(0, 0, 4, torch.arange(1000), 32)
    assert 0.0 < float(many.min()) and float(many.max()) < 1.0
    assert abs(float(many.mean()) - 0.5) < 0.01 and abs(float(many.std()) - math.sqrt(1 / 12)) < 0.01
    normal = counter_normal(0, 0, 4, torch.arange(1000), 32)
    assert abs(float(normal.mean())) < 0.02 and abs(float(normal.std()) - 1.0) < 0.02
    # neighbouring channels/frames are uncorrelated
    flat = normal.reshape(-1, 32)
    assert abs(float(torch.corrcoef(flat.T)[0, 1])) < 0.05
    assert abs(float(torch.corrcoef(torch.stack([flat[:-1, 0], flat[1:, 0]]))[0, 1])) < 0.05


def test_normal_streams_never_reuse_the_export_uniform_streams():
    # The export's direct uniform draws (random phase) and every normal stream it could use.
    export_uniform = {PHASE_NOISE_STREAM}
    used = set()
    frames = torch.arange(50)
    for stream in range(64):
        first, second = normal_uniform_streams(stream)
        # the helper tells the truth: counter_normal is Box-Muller on exactly these two streams
        u1, u2 = counter_uniform(3, first, 2, frames, 8), counter_uniform(3, second, 2, frames, 8)
        torch.testing.assert_close(counter_normal(3, stream, 2, frames, 8),
                                   torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2))
        assert not {first, second} & export_uniform
        assert not {first, second} & used  # normal streams are disjoint from each other too
        used |= {first, second}
    # and statistically: normal stream 0 (latent noise) carries nothing of uniform stream 1 (phase)
    normal = counter_normal(0, 0, 4, torch.arange(500), 32).flatten()
    uniform = counter_uniform(0, PHASE_NOISE_STREAM, 4, torch.arange(500), 32).flatten()
    # shared as Box-Muller's angle or radius, these correlations would be ~0.89 and ~0.5
    pairs = [(normal, torch.cos(2.0 * math.pi * uniform)), (normal.abs(), torch.sqrt(-2.0 * torch.log(uniform)))]
    for a, b in pairs:
        assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.03


def test_peak_anchors_are_valid_indices_for_non_finite_frames():
    nan, inf = float("nan"), float("inf")
    log_mag = torch.tensor([[nan, 1.0, 3.0, 2.0, 0.5],
                            [nan, nan, nan, nan, nan],
                            [0.0, inf, 1.0, -inf, 2.0],
                            [1.0, 2.0, 3.0, 2.0, nan]])
    anchors = peak_anchors(log_mag)
    assert int(anchors.min()) >= 0 and int(anchors.max()) <= 4
    assert anchors[0, 2:].tolist() == [2, 2, 2]  # past the NaN the uphill walk is unchanged


@pytest.mark.parametrize("scripted", [False, True])
def test_rtpghi_survives_non_finite_magnitudes(scripted):
    window, _ = _windows()
    magnitude = dsp.dgt(_vibrato_tone(0.5).unsqueeze(0), window, HOP).abs()
    dirty = magnitude.clone()
    dirty[:, 10, 0] = float("nan")  # bin 0: a NaN there must not give every bin of the frame anchor -1
    dirty[:, 11] = float("nan")
    dirty[:, 12, 40] = float("inf")
    dirty[:, 13, 7] = -float("inf")
    make = lambda: RTPGHI(N_FFT, HOP, dsp.gaussian_lambda(N_FFT))
    phase, reference = (_script(make()), _script(make())) if scripted else (make(), make())
    blocks = _stream_blocks(magnitude.shape[1], 4)
    out = torch.cat([phase(dirty[:, a:b]) for a, b in blocks], dim=1)
    assert bool(torch.isfinite(out).all()) and bool(torch.isfinite(phase.prev_shifted_phase).all())
    # non-finite values count as silence: same phases as the stream with zeros in their place
    zeroed = torch.nan_to_num(dirty, nan=0.0, posinf=0.0, neginf=0.0)
    expected = torch.cat([reference(zeroed[:, a:b]) for a, b in blocks], dim=1)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_bin_phase_advance_is_the_bin_frequency_wrapped():
    from vschaos.dsp.phase import bin_phase_advance
    for n_fft, hop in [(2048, 512), (1024, 256), (1000, 250), (8192, 2048)]:
        advance = bin_phase_advance(n_fft, hop)
        exact = 2 * math.pi * hop * torch.arange(n_fft // 2 + 1, dtype=torch.float64) / n_fft
        assert advance.shape == (n_fft // 2 + 1,)
        assert float(advance.min()) >= -math.pi and float(advance.max()) < math.pi
        turns = (exact - advance) / (2 * math.pi)
        assert float((turns - turns.round()).abs().max()) < 1e-9  # equal modulo 2 pi


@pytest.mark.parametrize("frames_per_call", [1, 3, 8, 9, 40])
def test_synthesis_equals_offline_whichever_overlap_add_it_uses(frames_per_call):
    """Up to FOLD_MAX_FRAMES frames a call overlap-adds with one fold, beyond with block additions."""
    from vschaos.dsp.streaming import FOLD_MAX_FRAMES
    assert 8 <= FOLD_MAX_FRAMES < 9
    window, dual = _windows()
    tone = _vibrato_tone(0.5).unsqueeze(0)
    spec = dsp.dgt(tone, window, HOP)
    synthesis = StreamingSynthesis(dual, HOP)
    streamed = torch.cat([synthesis(spec[:, a:b]) for a, b in _stream_blocks(spec.shape[1], frames_per_call)], -1)
    offline = dsp.idgt(spec, dual, HOP, tone.shape[-1])
    delay = synthesis.delay
    torch.testing.assert_close(streamed[:, delay:delay + offline.shape[-1]], offline[:, : streamed.shape[-1] - delay],
                               rtol=0, atol=2e-6)


def test_a_float64_stream_keeps_the_bins_advance_exact():
    """The bins' advance is kept in the stream's dtype: rounded to float32, it would make a float64 stream drift
    by the rounding error every frame. A stationary lobe centred on bin k: its peak advances by exactly
    2 pi hop k / n_fft per frame."""
    from vschaos.dsp.phase import bin_phase_advance

    k, frames = 5, 20000
    bins = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)
    lobe = torch.exp(-0.5 * ((bins - k) / 2.0) ** 2)
    phase = RTPGHI(N_FFT, HOP, dsp.gaussian_lambda(N_FFT)).double()
    assert float((phase.bin_advance - bin_phase_advance(N_FFT, HOP)).abs().max()) > 1e-8  # rounded by .double()
    peak = torch.cat([phase(lobe.expand(1, 100, -1))[0, :, k] for _ in range(frames // 100)])
    n = torch.arange(frames, dtype=torch.float64)
    turns = torch.remainder(n * (HOP * k), N_FFT) / N_FFT  # exact: integers below 2^53
    error = torch.remainder(peak - peak[0] - 2 * math.pi * turns + math.pi, 2 * math.pi) - math.pi
    assert float(error.abs().max()) < 1e-9, f"phase drift {float(error.abs().max()):.2g} rad after {frames} frames"


def test_frame_order_synthesis_gives_the_same_bits_however_frames_are_split():
    """``frame_order=True`` sums each sample frame after frame from the kept tail, so every split of the same
    frames into calls gives the same bits (the prior's ``generate`` promises that); it also equals offline."""
    window, dual = _windows()
    tone = _vibrato_tone(0.5).unsqueeze(0)
    spec = dsp.dgt(tone, window, HOP)
    streams = []
    for frames_per_call in (1, 3, 8, 40):
        synthesis = StreamingSynthesis(dual, HOP, frame_order=True)
        streams.append(torch.cat([synthesis(spec[:, a:b])
                                  for a, b in _stream_blocks(spec.shape[1], frames_per_call)], -1))
    for other in streams[1:]:
        assert torch.equal(other, streams[0])
    offline = dsp.idgt(spec, dual, HOP, tone.shape[-1])
    delay = StreamingSynthesis(dual, HOP).delay
    torch.testing.assert_close(streams[0][:, delay:delay + offline.shape[-1]],
                               offline[:, : streams[0].shape[-1] - delay], rtol=0, atol=2e-6)
