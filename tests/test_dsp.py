"""Offline DSP: DGT round trip and conventions, phase gradient, PGHI, fast Griffin-Lim, metrics,
and the SpectralTransform front end."""
import json
import math

import numpy as np
import pytest
import torch

from vschaos.dsp import functional as dsp
from vschaos.dsp.phase import griffin_lim, log_magnitude, pghi, phase_derivatives, phase_time_derivative, with_magnitude
from vschaos.dsp.transforms import SpectralTransform

SR = 44100
CONFIGS = [(1024, 256), (2048, 512), (8192, 2048)]


def _setup(n_fft: int, hop: int):
    window = dsp.gaussian_window(n_fft)
    return window, dsp.dual_window(window, hop), dsp.gaussian_lambda(n_fft)


def _consistent_sc(mag: torch.Tensor, phase: torch.Tensor, window, dual, hop: int, length: int) -> float:
    """SC between the target magnitude and the magnitude of the re-analysed reconstruction."""
    audio = dsp.idgt(torch.polar(mag, phase), dual, hop, length)
    return dsp.spectral_convergence(mag, dsp.dgt(audio, window, hop).abs()).item()


# ------------------------------------------------------------------------------ DGT core
@pytest.mark.parametrize("n_fft,hop", CONFIGS)
@pytest.mark.parametrize("kind", ["noise", "chirp"])
def test_dgt_round_trip_is_exact(synth, n_fft, hop, kind):
    length = 13331  # not a multiple of any hop: the padding must still cover every sample
    if kind == "noise":
        x = torch.from_numpy(synth.white_noise(length / SR, SR))
    else:
        x = torch.from_numpy(synth.chirp(50.0, 15000.0, length / SR, SR))
    window, dual, _ = _setup(n_fft, hop)
    spec = dsp.dgt(x, window, hop)
    assert spec.shape == (dsp.num_frames(length, n_fft, hop), n_fft // 2 + 1)
    y = dsp.idgt(spec, dual, hop, length)
    assert y.shape == x.shape
    rel = (torch.linalg.vector_norm(y - x) / torch.linalg.vector_norm(x)).item()
    assert rel < 1e-5


@pytest.mark.parametrize("n_fft,hop", CONFIGS + [(1024, 512), (1024, 1024)])
def test_dual_window_is_biorthogonal(n_fft, hop):
    # Perfect reconstruction of overlap-add: sum_k g[n + k hop] * g_d[n + k hop] == 1 for every n.
    window, dual, _ = _setup(n_fft, hop)
    total = (window.double() * dual.double()).reshape(n_fft // hop, hop).sum(0)
    torch.testing.assert_close(total, torch.ones(hop, dtype=torch.float64), atol=1e-6, rtol=0)
    assert torch.all(dual > 0)


def test_dual_window_rejects_hop_not_dividing_n_fft():
    with pytest.raises(ValueError, match="multiple of hop"):
        dsp.dual_window(dsp.gaussian_window(1024), 300)


def test_frame_count_and_centre_convention():
    n_fft, hop = 1024, 256
    window, _, _ = _setup(n_fft, hop)
    assert dsp.num_frames(1000, n_fft, hop) == 4 + 3  # ceil(1000/256) hops + n_fft/hop - 1
    centres = dsp.frame_centres(12, n_fft, hop)
    assert centres[0].item() == hop - n_fft / 2 and centres[5].item() == 5 * hop + hop - n_fft / 2
    # An impulse exactly at a frame's centre: that frame has the largest energy and, since phases
    # are referenced to the frame centre, a real positive spectrum (phase 0 in every bin).
    x = torch.zeros(3000, dtype=torch.float64)
    t = 7
    x[int(centres[t].item())] = 1.0
    spec = dsp.dgt(x, window.double(), hop)
    assert spec.shape[0] == dsp.num_frames(3000, n_fft, hop)
    assert int(spec.abs().pow(2).sum(-1).argmax()) == t
    assert torch.allclose(spec[t].imag, torch.zeros_like(spec[t].imag), atol=1e-9)
    assert torch.all(spec[t].real > 0.99)


@pytest.mark.parametrize("n_fft,hop", [(1024, 256), (1000, 300)])
def test_overlap_add_matches_naive_sum(n_fft, hop):
    frames = torch.randn(2, 5, n_fft, dtype=torch.float64)
    out = dsp.overlap_add(frames, hop)
    naive = torch.zeros(2, 4 * hop + n_fft, dtype=torch.float64)
    for t in range(5):
        naive[:, t * hop : t * hop + n_fft] += frames[:, t]
    torch.testing.assert_close(out, naive)


# ------------------------------------------------------------------------------ phase gradient
def test_phase_derivatives_match_true_phase_differences(synth):
    # The Gaussian-window relations predict the DGT's own phase differences between neighbours.
    n_fft, hop = 2048, 512
    window, _, lam = _setup(n_fft, hop)
    x = torch.from_numpy(synth.chirp(200.0, 6000.0, 0.5, SR)).double()
    spec = dsp.dgt(x, window.double(), hop)
    mag, phase = spec.abs(), torch.angle(spec)
    dphi_time, dphi_freq = phase_derivatives(log_magnitude(mag), lam, hop, n_fft)

    def wrap(a):
        return torch.remainder(a + math.pi, 2 * math.pi) - math.pi

    big_t = mag[1:] > 1e-2 * mag.max()
    err_t = wrap(phase[1:] - phase[:-1] - 0.5 * (dphi_time[1:] + dphi_time[:-1]))[big_t].abs()
    big_f = mag[:, 1:] > 1e-2 * mag.max()
    err_f = wrap(phase[:, 1:] - phase[:, :-1] - 0.5 * (dphi_freq[:, 1:] + dphi_freq[:, :-1]))[big_f].abs()
    # the trapezoidal steps match the true phase differences up to the discretisation; a sign error gives ~pi/2
    assert err_t.median().item() < 0.15
    assert err_f.median().item() < 0.15


def test_phase_time_derivative_of_a_sinusoid_is_its_frequency():
    n_fft, hop = 2048, 512
    window, _, lam = _setup(n_fft, hop)
    freq_bin = 100.25  # between bins: the log-magnitude slope term must correct the bin frequency
    n = torch.arange(SR // 2, dtype=torch.float64)
    x = torch.cos(2 * math.pi * freq_bin / n_fft * n)
    mag = dsp.dgt(x, window.double(), hop).abs()
    dphi_time = phase_time_derivative(log_magnitude(mag), lam, hop, n_fft)
    expected = 2 * math.pi * freq_bin * hop / n_fft
    mid = mag.shape[0] // 2
    # Every strong bin of the main lobe sees the true frequency. Bin 101 gets a looser bound: the
    # window is truncated at exp(-pi) of its peak, so it is not exactly Gaussian. Without the
    # log-magnitude slope term bin 99 would be off by 2 pi * 1.25 bins * hop / n_fft = 1.96 rad.
    assert abs(dphi_time[mid, 100].item() - expected) < 1e-2
    assert abs(dphi_time[mid, 99].item() - expected) < 1e-2
    assert abs(dphi_time[mid, 101].item() - expected) < 0.1


# ------------------------------------------------------------------------------ PGHI and GLA
@pytest.fixture
def dgt_mid():
    return _setup(2048, 512)


def _test_sounds(synth):
    return {
        "harmonic": synth.harmonic_tone(220.0, 0.5, SR),
        "chirp": synth.chirp(100.0, 8000.0, 0.5, SR),
    }


@pytest.mark.parametrize("name", ["harmonic", "chirp"])
def test_pghi_beats_random_phase_and_gla_refines(synth, dgt_mid, name):
    window, dual, lam = dgt_mid
    n_fft, hop = 2048, 512
    x = torch.from_numpy(_test_sounds(synth)[name])
    mag = dsp.dgt(x, window, hop).abs()
    gen = torch.Generator().manual_seed(0)
    random_phase = (torch.rand(mag.shape, generator=gen) * 2 - 1) * math.pi
    phase_pghi = pghi(mag, lam, hop, n_fft, generator=gen)
    phase_gla = griffin_lim(mag, phase_pghi, window, dual, hop, x.shape[-1], n_iter=16)
    sc_random = _consistent_sc(mag, random_phase, window, dual, hop, x.shape[-1])
    sc_pghi = _consistent_sc(mag, phase_pghi, window, dual, hop, x.shape[-1])
    sc_gla = _consistent_sc(mag, phase_gla, window, dual, hop, x.shape[-1])
    # random phase leaves the spectrogram far from consistent, PGHI close to it and GLA closer still; each bound
    # leaves room on both sides (python -m experiments.phase_quality scores the methods)
    assert sc_random > 0.5
    assert sc_pghi < 0.04
    assert sc_gla < 0.75 * sc_pghi
    assert sc_gla < 0.02
    assert phase_pghi.shape == mag.shape and phase_pghi.dtype == mag.dtype
    assert phase_pghi.abs().max().item() <= math.pi


def test_pghi_tolerance_gives_random_phase_only_to_small_coefficients(synth, dgt_mid):
    window, _, lam = dgt_mid
    x = torch.from_numpy(synth.harmonic_tone(330.0, 0.5, SR))
    x[: SR // 4] = 0.0  # silent first half: only floor-level coefficients there
    mag = dsp.dgt(x, window, 512).abs()
    tol = 1e-4
    small = mag < tol * mag.max()
    assert small.any() and (~small).any()
    a = pghi(mag, lam, 512, 2048, tol=tol, generator=torch.Generator().manual_seed(1))
    b = pghi(mag, lam, 512, 2048, tol=tol, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a[~small], b[~small])  # integrated phase is deterministic
    assert (a[small] != b[small]).float().mean().item() > 0.99  # random below the tolerance
    silent = torch.zeros_like(mag)
    assert torch.isfinite(pghi(silent, lam, 512, 2048)).all()


def test_pghi_rejects_wrong_bin_count(dgt_mid):
    with pytest.raises(ValueError, match="bins"):
        pghi(torch.ones(10, 513), dgt_mid[2], 512, 2048)


# ------------------------------------------------------------------------------ metrics
def test_spectral_convergence_and_lsd_known_values():
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 7, 5, generator=gen) + 0.1
    assert dsp.spectral_convergence(ref, ref).tolist() == [0.0, 0.0]
    torch.testing.assert_close(dsp.spectral_convergence(ref, torch.zeros_like(ref)), torch.ones(2))
    torch.testing.assert_close(dsp.spectral_convergence(ref, 3 * ref), torch.full((2,), 2.0))
    torch.testing.assert_close(dsp.log_spectral_distance(ref, ref), torch.zeros(2))
    torch.testing.assert_close(dsp.log_spectral_distance(ref, 10 * ref, eps=0.0), torch.full((2,), 20.0))
    # batch-aware: each row is reduced on its own
    est = ref.clone()
    est[1] *= 2
    sc = dsp.spectral_convergence(ref, est)
    assert sc.shape == (2,) and sc[0].item() == 0.0 and abs(sc[1].item() - 1.0) < 1e-6


# ------------------------------------------------------------------------------ SpectralTransform
@pytest.fixture
def transform():
    return SpectralTransform(sample_rate=16000, n_fft=512, hop=128)


def test_transform_attributes_and_cache_key():
    t = SpectralTransform()
    assert (t.sample_rate, t.n_fft, t.hop, t.n_bins) == (44100, 2048, 512, 1025)
    assert t.lam == dsp.gaussian_lambda(2048, 0.25)
    assert set(t.state_dict()) == {"window", "dual", "norm_mean", "norm_std"}
    assert t.pitch_window == 0 and t.pitch_window_fn.numel() == 0  # no pitch window: nothing to keep
    key = t.cache_key()
    assert json.loads(json.dumps(key)) == key
    assert key != SpectralTransform(hop=256).cache_key()


def test_normalisation_round_trip(transform, synth):
    mag = transform.magnitude(torch.from_numpy(synth.white_noise(0.2, 16000))[None])
    log_mag = torch.log1p(mag)
    mean, std = log_mag.mean(dim=(0, 1)), log_mag.std(dim=(0, 1))
    transform.set_normalisation(mean, std)
    feats = transform.to_features(mag)
    # fitted statistics give standardised features
    assert abs(feats.mean().item()) < 1e-4 and abs(feats.std().item() - 1.0) < 0.05
    torch.testing.assert_close(transform.from_features(feats), mag, atol=1e-5, rtol=1e-4)
    assert transform.from_features(torch.full((3, transform.n_bins), -100.0)).min().item() == 0.0
    # the statistics live in the state dict (a checkpoint carries them)
    fresh = SpectralTransform(sample_rate=16000, n_fft=512, hop=128)
    fresh.load_state_dict(transform.state_dict())
    torch.testing.assert_close(fresh.to_features(mag), feats)


def test_set_normalisation_validates(transform):
    with pytest.raises(ValueError, match=r"shape \(257,\)"):
        transform.set_normalisation(torch.zeros(256), torch.ones(257))
    with pytest.raises(ValueError, match="NaN"):
        transform.set_normalisation(torch.full((257,), float("nan")), torch.ones(257))
    transform.set_normalisation(torch.zeros(257), torch.zeros(257))
    assert transform.norm_std.min().item() == pytest.approx(1e-4)  # clamped away from 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_fft=1000, hop=300), "multiple of hop"),
    (dict(n_fft=2048, hop=0), "positive"),
    (dict(tfr=0.0), "tfr"),
])
def test_transform_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpectralTransform(**kwargs)


def test_transform_reconstruct_methods_rank_as_expected(synth):
    t = SpectralTransform(sample_rate=SR, n_fft=2048, hop=512)
    audio = torch.from_numpy(synth.harmonic_tone(196.0, 0.5, SR))[None]
    mag = t.magnitude(audio)
    gen = torch.Generator().manual_seed(0)
    sc = {}
    for method in ("random", "griffinlim", "pghi", "pghi+gla"):
        out = t.reconstruct(mag, audio.shape[-1], method=method, n_iter=16, generator=gen)
        assert out.shape == audio.shape
        sc[method] = dsp.spectral_convergence(mag, t.magnitude(out)).item()
    # the methods rank as their design says: random, then Griffin-Lim from random phase, PGHI, PGHI refined by GLA
    assert sc["random"] > 0.5 > 0.25 > sc["griffinlim"] > sc["pghi"] > sc["pghi+gla"]
    assert sc["pghi+gla"] < 0.05
    with pytest.raises(ValueError, match="unknown reconstruction method"):
        t.reconstruct(mag, audio.shape[-1], method="magic")
    with pytest.raises(ValueError, match="frames"):
        t.reconstruct(mag, audio.shape[-1] + 10 * 512)


# ------------------------------------------------------------------------------ fast paths
# The optimised offline code (rotation instead of the (-1)^m multiply, fused overlap-add,
# numba Griffin-Lim update, numba PGHI gradient) must give the textbook results to rounding.

def _reference_dgt(x, window, hop):
    """dgt written out: frames * window -> rfft -> (-1)^m (phase at the frame centre)."""
    n_fft = window.shape[0]
    frames = dsp.pad_for_dgt(x, n_fft, hop).unfold(-1, n_fft, hop)
    return torch.fft.rfft(frames * window, dim=-1) * dsp.centre_phase_sign(n_fft, window.dtype)


def _reference_idgt(spec, dual, hop, length):
    n_fft = dual.shape[0]
    frames = torch.fft.irfft(spec * dsp.centre_phase_sign(n_fft, dual.dtype), n=n_fft, dim=-1) * dual
    out = torch.zeros(spec.shape[:-2] + ((spec.shape[-2] - 1) * hop + n_fft,), dtype=frames.dtype)
    for t in range(spec.shape[-2]):
        out[..., t * hop : t * hop + n_fft] += frames[..., t, :]
    return out[..., n_fft - hop : n_fft - hop + length]


def _reference_griffin_lim(mag, phase, window, dual, hop, length, n_iter, momentum=0.99):
    """Fast Griffin-Lim exactly as Perraudin et al. write it, with the reference transforms."""
    spec = torch.polar(mag, phase)
    previous = spec
    for _ in range(n_iter):
        current = mag * torch.sgn(_reference_dgt(_reference_idgt(spec, dual, hop, length), window, hop))
        spec = current + momentum * (current - previous)
        previous = current
    return torch.angle(_reference_dgt(_reference_idgt(spec, dual, hop, length), window, hop))


def _phase_error(a, b):
    return (torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi).abs()


@pytest.mark.parametrize("n_fft,hop", [(1024, 256), (1024, 1024), (1000, 250), (999, 333)])
@pytest.mark.parametrize("grad", [False, True])
def test_frame_transforms_equal_the_sign_multiply(n_fft, hop, grad):
    # even n_fft: rotation by n_fft/2 (with and without autograd); odd: the explicit sign
    window = dsp.gaussian_window(n_fft, dtype=torch.float64)
    dual = dsp.dual_window(window, hop)
    frames = torch.randn(2, 5, n_fft, dtype=torch.float64, requires_grad=grad)
    spec = dsp.dgt_frames(frames, window)
    sign = dsp.centre_phase_sign(n_fft, torch.float64)
    torch.testing.assert_close(spec, torch.fft.rfft(frames * window, dim=-1) * sign, rtol=0, atol=1e-10)
    out = dsp.idgt_frames(spec, dual)
    torch.testing.assert_close(out, torch.fft.irfft(spec * sign, n=n_fft, dim=-1) * dual, rtol=0, atol=1e-12)
    if grad:
        out.sum().backward()
        assert frames.grad is not None and torch.isfinite(frames.grad).all()


@pytest.mark.parametrize("n_fft,hop", [(2048, 512), (1024, 1024), (1000, 250), (512, 64)])
def test_idgt_fused_overlap_add_equals_reference(n_fft, hop):
    window = dsp.gaussian_window(n_fft, dtype=torch.float64)
    dual = dsp.dual_window(window, hop)
    length = 5 * hop + 37
    spec = torch.randn(3, dsp.num_frames(length, n_fft, hop), n_fft // 2 + 1, dtype=torch.complex128)
    torch.testing.assert_close(dsp.idgt(spec, dual, hop, length), _reference_idgt(spec, dual, hop, length),
                               rtol=0, atol=1e-12)
    x = torch.randn(2, length, dtype=torch.float64)
    torch.testing.assert_close(dsp.dgt(x, window, hop), _reference_dgt(x, window, hop), rtol=0, atol=1e-10)


@pytest.mark.parametrize("n_fft,hop", [(2048, 512), (1024, 1024)])  # fused path / generic fallback
@pytest.mark.parametrize("momentum", [0.99, 0.0])
def test_griffin_lim_equals_reference_iteration(synth, n_fft, hop, momentum):
    window = dsp.gaussian_window(n_fft, dtype=torch.float64)
    dual = dsp.dual_window(window, hop)
    lam = dsp.gaussian_lambda(n_fft)
    x = torch.from_numpy(np.stack([synth.harmonic_tone(220.0, 0.3, SR), synth.chirp(200.0, 6000.0, 0.3, SR)])).double()
    mag = dsp.dgt(x, window, hop).abs()
    init = pghi(mag, lam, hop, n_fft, generator=torch.Generator().manual_seed(0))
    ref = _reference_griffin_lim(mag, init, window, dual, hop, x.shape[-1], 4, momentum)
    fast = griffin_lim(mag, init, window, dual, hop, x.shape[-1], n_iter=4, momentum=momentum)
    assert fast.shape == mag.shape and fast.dtype == torch.float64
    big = mag > 1e-4 * mag.amax(dim=(-2, -1), keepdim=True)
    # float64: the two orders of operations agree to ~1e-12 rad on every coefficient that matters
    assert _phase_error(fast, ref)[big].max().item() < 1e-8


def test_griffin_lim_numba_and_torch_updates_agree(synth, dgt_mid, monkeypatch):
    # Without the numba kernel (ImportError) the torch ops run; both are the same update.
    import vschaos.dsp._pghi_kernel as kernel
    window, dual, lam = dgt_mid
    x = torch.from_numpy(synth.harmonic_tone(261.6, 0.4, SR))
    mag = dsp.dgt(x, window, 512).abs()
    init = pghi(mag, lam, 512, 2048, generator=torch.Generator().manual_seed(0))
    with_numba = griffin_lim(mag, init, window, dual, 512, x.shape[-1], n_iter=16)
    monkeypatch.delattr(kernel, "gla_project_momentum")
    with_torch = griffin_lim(mag, init, window, dual, 512, x.shape[-1], n_iter=16)
    big = mag > 1e-3 * mag.max()
    # float32 after 16 momentum-0.99 iterations: the momentum amplifies rounding, so the worst coefficient
    # gets a loose bound and the median a tight one; a wrong update gives errors of order 1 rad
    assert _phase_error(with_numba, with_torch)[big].median().item() < 1e-3
    assert _phase_error(with_numba, with_torch)[big].max().item() < 0.1
    sc = [_consistent_sc(mag, p, window, dual, 512, x.shape[-1]) for p in (with_numba, with_torch)]
    assert abs(sc[0] - sc[1]) < 1e-4 * sc[1] + 1e-7


def test_with_magnitude_equals_polar_of_angle():
    spec = torch.randn(2, 6, 9, dtype=torch.complex64)
    spec[0, 1, 2] = 0  # angle(0) = 0: the result there is the magnitude itself
    mag = torch.rand(2, 6, 9)
    out = with_magnitude(spec, mag)
    torch.testing.assert_close(out, torch.polar(mag, torch.angle(spec)), rtol=1e-5, atol=1e-6)
    assert out[0, 1, 2].item() == complex(mag[0, 1, 2].item(), 0.0)
    assert spec[0, 1, 2].item() == 0  # the input is not modified


def test_transform_reconstruct_equals_griffin_lim_composition(synth):
    t = SpectralTransform(sample_rate=SR, n_fft=2048, hop=512)
    audio = torch.from_numpy(synth.harmonic_tone(196.0, 0.4, SR))[None]
    mag = t.magnitude(audio)
    out = t.reconstruct(mag, audio.shape[-1], method="pghi+gla", n_iter=8, generator=torch.Generator().manual_seed(5))
    phase = pghi(mag, t.lam, t.hop, t.n_fft, generator=torch.Generator().manual_seed(5))
    phase = griffin_lim(mag, phase, t.window, t.dual, t.hop, audio.shape[-1], n_iter=8)
    expected = t.synthesise(torch.polar(mag, phase), audio.shape[-1])
    rel = (torch.linalg.vector_norm(out - expected) / torch.linalg.vector_norm(expected)).item()
    assert rel < 1e-5


def test_pghi_numba_gradient_and_wrap_equal_torch(synth, dgt_mid):
    from vschaos.dsp._pghi_kernel import phase_gradient, wrap_phase_inplace
    window, _, lam = dgt_mid
    n_fft, hop = 2048, 512
    chirp = torch.from_numpy(synth.chirp(100.0, 9000.0, 0.3, SR))
    log_mag = log_magnitude(dsp.dgt(chirp, window, hop).abs().double())
    dphi_time, dphi_freq = phase_derivatives(log_mag, lam, hop, n_fft)
    got_time, got_freq = torch.empty_like(log_mag), torch.empty_like(log_mag)
    phase_gradient(log_mag.numpy(), hop * n_fft / lam, -lam / (n_fft * hop), 2 * math.pi * hop / n_fft,
                   got_time.numpy(), got_freq.numpy())
    torch.testing.assert_close(got_time, dphi_time, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(got_freq, dphi_freq, rtol=1e-12, atol=1e-9)
    # a single frame (no time slope): same as the torch version with lam=4, hop=2, n_fft=8
    one = torch.randn(1, 5, dtype=torch.float64)
    t1, f1 = torch.empty_like(one), torch.empty_like(one)
    phase_gradient(one.numpy(), 2 * 8 / 4.0, -4.0 / (8 * 2), 2 * math.pi * 2 / 8, t1.numpy(), f1.numpy())
    ref_time, ref_freq = phase_derivatives(one, 4.0, 2, 8)
    torch.testing.assert_close(t1, ref_time, rtol=1e-12, atol=1e-12)
    assert torch.equal(f1, torch.zeros_like(f1)) and torch.equal(ref_freq, torch.zeros_like(ref_freq))
    values = torch.tensor([-1e4, -7.0, -math.pi, -1e-12, 0.0, 3.0, math.pi, 2 * math.pi, 123.456], dtype=torch.float64)
    wrapped = values.clone()
    wrap_phase_inplace(wrapped.numpy())
    torch.testing.assert_close(wrapped, torch.remainder(values + math.pi, 2 * math.pi) - math.pi, rtol=0, atol=1e-9)
    assert wrapped.min().item() >= -math.pi and wrapped.max().item() < math.pi
