"""The f0 tracker (vschaos/dsp/f0.py), the pitch latent and the source-filter decoder
(vschaos/models/components/harmonic.py): known frequencies in, known frequencies out."""
import math
import warnings

import pytest
import torch

from conftest import harmonic_tone
from tests.test_export import _verify_buffers, preset_vae
from vschaos.cli.train import compose_config
from vschaos.dsp.f0 import HarmonicF0, f0_candidates, harmonic_peaks, refine_f0, subharmonic_taps
from vschaos.dsp.transforms import SpectralTransform
from vschaos.export import export_model, script_model
from vschaos.models.components.harmonic import HarmonicDecoder, PitchCoordinate, band_interpolation
from vschaos.models.vae import ConfigurationError, SpectralVAE
from vschaos.training.fit import build_objects

RATE = 22050


@pytest.fixture(scope="module")
def transform():
    return SpectralTransform(sample_rate=RATE, n_fft=1024, hop=256)


@pytest.fixture(scope="module")
def tracker():
    return HarmonicF0(1024, RATE)


def _frames(transform, audio) -> torch.Tensor:
    """Magnitude frames of the steady middle of ``audio`` (numpy or tensor): (frames, bins)."""
    magnitude = transform.magnitude(torch.as_tensor(audio, dtype=torch.float32)[None])[0]
    return magnitude[6:-6]


def _cents(estimate: torch.Tensor, truth: float) -> torch.Tensor:
    return 1200 * torch.log2(estimate / truth)


@pytest.mark.parametrize("freq", [98.0, 220.5, 347.3, 880.0, 1500.0])
def test_tracker_finds_a_harmonic_tones_f0_within_a_cent(transform, tracker, freq):
    frames = _frames(transform, harmonic_tone(freq, 0.8, RATE, n_harmonics=8))
    cents = _cents(tracker(frames), freq)
    assert cents.abs().max() < 1.0, cents


def test_tracker_prefers_the_fundamental_of_an_odd_harmonic_tone(transform, tracker):
    # clarinet-like: odd partials only; the octave above (2 f0) collects none of them
    t = torch.arange(int(0.8 * RATE)) / RATE
    tone = sum(torch.sin(2 * math.pi * 196.0 * k * t) / k for k in (1, 3, 5, 7, 9))
    assert _cents(tracker(_frames(transform, 0.3 * tone)), 196.0).abs().max() < 1.0


def test_tracker_is_level_independent_and_batch_consistent(transform, tracker):
    frames = _frames(transform, harmonic_tone(261.6, 0.6, RATE))
    loud, quiet = tracker(frames), tracker(frames * 1e-4)
    assert torch.allclose(loud, quiet, rtol=1e-4)
    singles = torch.cat([tracker(frames[i:i + 1]) for i in range(frames.shape[0])])
    assert torch.allclose(loud, singles, rtol=1e-5)


def test_tracker_gives_a_finite_f0_in_range_for_silence_and_noise(transform, tracker):
    silence = torch.zeros(3, transform.n_bins)
    noise = _frames(transform, torch.randn(RATE // 2, generator=torch.Generator().manual_seed(0)))
    for frames in (silence, noise):
        f0 = tracker(frames)
        assert torch.isfinite(f0).all() and (f0 >= 30 - 1e-3).all() and (f0 <= 2000 + 1e-3).all()


def test_scripted_tracker_equals_eager(transform, tracker):
    frames = _frames(transform, harmonic_tone(440.0, 0.5, RATE))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(tracker)
    assert torch.equal(scripted(frames), tracker(frames))


def test_refinement_reads_between_the_bins():
    # a Gaussian peak's log is a parabola: three bins give its centre exactly
    bins = torch.arange(64, dtype=torch.float64)
    centre = 10.37
    magnitude = sum(torch.exp(-math.pi * 0.25 * (bins - k * centre) ** 2) / k for k in (1, 2, 3, 4))[None]
    refined = refine_f0(magnitude, torch.tensor([10.0 * 1.0], dtype=torch.float64), bin_hz=1.0, n_harmonics=4)
    assert abs(float(refined) - centre) < 2e-3


def test_subharmonic_taps_read_the_two_bins_around_each_harmonic_by_closeness():
    # each candidate a millionth of a bin from the next: the grid misses no partial, so with no tolerance the
    # reads fall off with the distance alone
    grid = torch.tensor([2.5, 2.500001, 4.0, 4.000001], dtype=torch.float64)
    index, weight = subharmonic_taps(grid, n_bins=10, bin_hz=1.0, n_harmonics=3, decay=0.5, tolerance=0.0)
    # 2.5: harmonics at bins 2.5, 5, 7.5 read bins (2, 3), (5, 6), (7, 8); decay 1, 0.5, 0.25 times closeness
    assert index[:, 0].tolist() == [[2, 5, 7], [3, 6, 8]]
    assert torch.allclose(weight[:, 0], torch.tensor([[0.5, 0.5, 0.125], [0.5, 0.0, 0.125]]), atol=1e-5)
    # 4.0: k=3 at bin 12 lies beyond the last bin and reads nothing
    assert torch.allclose(weight[:, 2], torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]]), atol=1e-5)


def test_subharmonic_taps_read_a_partial_in_full_within_the_tolerance():
    # 10.3 bins between harmonics, decay 0.5: harmonic 1 at 10.3 reads bin 10 with min(1, 0.7 + t) and bin 11
    # with min(1, 0.3 + t); harmonic 2 at 20.6 reads bin 20 with 0.5 min(1, 0.4 + t), bin 21 with 0.5 min(1, 0.6 + t)
    grid = torch.tensor([10.3, 10.300001], dtype=torch.float64)
    expected = {0.0: [[0.7, 0.2], [0.3, 0.3]], 0.15: [[0.85, 0.275], [0.45, 0.375]],
                0.45: [[1.0, 0.425], [0.75, 0.5]]}
    for tolerance, reads in expected.items():
        _, weight = subharmonic_taps(grid, n_bins=100, bin_hz=1.0, n_harmonics=2, decay=0.5, tolerance=tolerance)
        assert torch.allclose(weight[:, 0], torch.tensor(reads), atol=1e-5), (tolerance, weight[:, 0])
    # 2.5 bins between harmonics: the tolerance fades (a quarter of it), as two harmonics would read one partial
    _, weight = subharmonic_taps(torch.tensor([2.5, 2.500001], dtype=torch.float64), n_bins=10, bin_hz=1.0,
                                 n_harmonics=1, tolerance=0.4)
    assert torch.allclose(weight[:, 0, 0], torch.tensor([0.6, 0.6]), atol=1e-5)
    with pytest.raises(ValueError, match="tolerance"):
        subharmonic_taps(grid, 100, 1.0, tolerance=1.0)


def test_tracker_follows_a_bright_sawtooth_glide_without_octave_jumps():
    # every harmonic up to Nyquist, 300 -> 600 Hz in 2 s: the upper harmonics of the f0's nearest candidates
    # fall between grid points while the octave above may fall on one; read with no tolerance, frames near
    # 500 Hz came out an octave high
    rate, hop, seconds = 44100, 512, 2.0
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    f0 = 300.0 * 2.0 ** (t / seconds)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / rate
    saw = sum(torch.sin(k * phase) / k * (k * f0 < rate / 2) for k in range(1, 74))
    frames = SpectralTransform(sample_rate=rate, n_fft=2048, hop=hop).magnitude((0.2 * saw).float()[None])[0]
    truth = f0[torch.arange(frames.shape[0]) * hop % len(f0)]  # frame i is centred on sample i * hop
    cents = _cents(HarmonicF0(2048, rate)(frames).double(), truth)[6:-6]
    assert (cents.abs() < 50).double().mean() >= 0.99, cents[cents.abs() >= 50]


def test_subharmonic_taps_widen_the_harmonics_that_the_grid_may_miss():
    # candidates half a bin apart: harmonic k may lie k/4 bin from the partial, so from k = 4 it reads peaks
    # widened by 1 bin, from k = 8 by 2 (the largest width within reach), each at its nearest bin
    index, weight = subharmonic_taps(torch.tensor([100.0, 100.5]), n_bins=2000, bin_hz=1.0, n_harmonics=12,
                                     decay=0.5, widths=(0, 1, 2, 4))
    level = index[0, 0] // 2000
    assert level.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    assert (index[0, 0, 3:] % 2000).tolist() == [100 * k for k in range(4, 13)]
    assert torch.equal(index[0, 0, 3:], index[1, 0, 3:]) and (weight[1, 0, 3:] == 0).all()
    assert torch.allclose(weight[0, 0, 3:], 0.5 ** torch.arange(3.0, 12.0))
    with pytest.raises(ValueError, match="widths"):
        subharmonic_taps(torch.tensor([100.0]), 2000, 1.0, widths=(1, 2))


@pytest.mark.parametrize("freq", [309.8, 610.0, 1234.7])
def test_tracker_finds_harmonic_tones_at_dgt_high_resolution(freq):
    # 8192 points, 5.4 Hz bins: a quarter semitone spans several bins above ~400 Hz; these read octaves off
    # unless the grid is capped at half a bin and the upper harmonics read widened peaks
    rate, n_fft = 44100, 8192
    tone = harmonic_tone(freq, 1.0, rate, n_harmonics=8)
    frames = SpectralTransform(sample_rate=rate, n_fft=n_fft, hop=2048).magnitude(
        torch.as_tensor(tone, dtype=torch.float32)[None])[0][4:-4]
    cents = _cents(HarmonicF0(n_fft, rate)(frames), freq)
    assert cents.abs().max() < 20.0, cents


def test_harmonic_peaks_keep_only_local_maxima_above_the_floor():
    # two peaks over a flat floor: only their top bins remain, the taller one higher
    bins = torch.arange(40, dtype=torch.float64)
    compressed = 0.1 + 6 * torch.exp(-0.5 * (bins - 5.3) ** 2) + 3 * torch.exp(-0.5 * (bins - 22.0) ** 2)
    height = harmonic_peaks(compressed[None])[0]
    assert (height > 0).nonzero().flatten().tolist() == [5, 22]
    assert float(height[5]) > float(height[22]) > 0


@pytest.mark.parametrize("freq,n_harmonics", [(41.2, 1), (65.4, 1), (110.0, 1), (220.0, 1), (440.0, 1),
                                               (55.0, 8), (82.4, 8)])
def test_tracker_reads_sines_and_low_notes_at_dgt_mid_resolution(freq, n_harmonics):
    # reading the flanks of each partial, low candidates would win: a sine read as a deep subharmonic, and
    # low notes at the 30 Hz floor (partials 21.5 Hz bins apart: 55 Hz is 2.6 bins)
    rate, n_fft = 44100, 2048
    t = torch.arange(int(0.8 * rate)) / rate
    tone = harmonic_tone(freq, 0.8, rate, n_harmonics=n_harmonics) if n_harmonics > 1 else \
        0.3 * torch.sin(2 * math.pi * freq * t)
    frames = SpectralTransform(sample_rate=rate, n_fft=n_fft, hop=512).magnitude(
        torch.as_tensor(tone, dtype=torch.float32)[None])[0][6:-6]
    cents = _cents(HarmonicF0(n_fft, rate)(frames), freq)
    assert cents.abs().max() < 20.0, cents


def test_tracker_gives_each_frame_the_same_f0_in_any_batch(transform, tracker):
    # streaming sends one frame at a time, the offline path all of them: a near-tie between two candidates
    # must not be decided differently (noise frames are full of near-ties)
    # (noise frames are full of near-ties), nor a flat frame (a click: every bin on the floor, whose last
    # bits depend on the batch size)
    clicks = torch.zeros(RATE)
    clicks[::RATE // 20] = 1.0
    for audio in (torch.randn(RATE, generator=torch.Generator().manual_seed(1)), clicks):
        frames = _frames(transform, audio)
        together = tracker.salience(frames)
        alone = torch.cat([tracker.salience(frames[i:i + 1]) for i in range(frames.shape[0])])
        assert torch.equal(together, alone)
        assert torch.equal(tracker(frames), torch.cat([tracker(frames[i:i + 1]) for i in range(frames.shape[0])]))


def test_tracker_arguments_are_checked():
    with pytest.raises(ValueError, match="fmin"):
        f0_candidates(500.0, 100.0, 4)
    with pytest.raises(ValueError, match="max_step_hz"):
        f0_candidates(50.0, 100.0, 4, max_step_hz=0.0)
    # a quarter semitone apart, but never more than max_step_hz; the last one reaches fmax
    grid = f0_candidates(100.0, 2000.0, 4, max_step_hz=10.0).double()
    steps = grid.diff()
    assert grid[0] == 100.0 and grid[-1] >= 2000.0 > grid[-2]
    assert torch.allclose(steps, torch.minimum(grid[:-1] * (2 ** (1 / 48) - 1), torch.tensor(10.0)), rtol=1e-5)
    with pytest.raises(ValueError, match="steps_per_semitone"):
        f0_candidates(50.0, 100.0, 0)
    with pytest.raises(ValueError, match="Nyquist"):
        HarmonicF0(1024, RATE, fmax=12000.0)


# ---------------------------------------------------------------- pitch coordinate and decoder
def test_pitch_coordinate_round_trips_and_clamps():
    pitch = PitchCoordinate(220.0, 1.0, fmin=20.0, fmax=11025.0)
    hz = torch.tensor([55.0, 220.0, 440.0, 3520.0])
    assert torch.allclose(pitch.coordinate(hz), torch.tensor([-2.0, 0.0, 1.0, 4.0]))
    assert torch.allclose(pitch.hz(pitch.coordinate(hz)), hz, rtol=1e-6)
    assert float(pitch.hz(torch.tensor(50.0))) == 11025.0 and float(pitch.hz(torch.tensor(-50.0))) == 20.0
    with pytest.raises(ValueError, match="octaves_per_unit"):
        PitchCoordinate(220.0, 0.0)


def test_comb_partial_has_the_shape_of_a_sine_in_the_dgt(transform):
    # a partial drawn by the comb matches the transform's own magnitude of a sine at that frequency
    freq = 1000.3
    t = torch.arange(RATE) / RATE
    sine = transform.magnitude(torch.sin(2 * math.pi * freq * t)[None])[0, 20]
    decoder = HarmonicDecoder(4, transform.n_bins, RATE, transform.n_fft, transform.tfr,
                              PitchCoordinate(fmax=RATE / 2), transform.full_scale, n_harmonics=1)
    comb = decoder.comb(torch.tensor([freq]), torch.tensor([[1.0]]))[0]
    centre = int(sine.argmax())
    near = slice(centre - 3, centre + 4)
    shape_error = (comb[near] / comb[near].norm() - sine[near] / sine[near].norm()).norm()
    assert shape_error < 0.02
    assert int(comb.argmax()) == centre and float(comb[centre + 8:].abs().max()) == 0.0


def test_comb_places_every_partial_at_k_f0_and_none_above_nyquist(transform):
    decoder = HarmonicDecoder(4, transform.n_bins, RATE, transform.n_fft, transform.tfr,
                              PitchCoordinate(fmax=RATE / 2), transform.full_scale, n_harmonics=40)
    f0 = torch.tensor([440.0, 1234.5])
    comb = decoder.comb(f0, torch.ones(2, 40))
    bin_hz = RATE / transform.n_fft
    for row, freq in enumerate(f0.tolist()):
        peaks = [b for b in range(1, transform.n_bins - 1)
                 if comb[row, b] > comb[row, b - 1] and comb[row, b] >= comb[row, b + 1] and comb[row, b] > 1.0]
        expected = [round(k * freq / bin_hz) for k in range(1, 41) if k * freq / bin_hz < transform.n_bins - 1.5]
        assert peaks == expected
    assert torch.isfinite(comb).all()


def test_decoder_level_is_bounded_whatever_the_weights(transform):
    # partial amplitudes sum to <= 1 (a sum of sines within full scale), noise bands <= exp(-3): even with weights
    # x100 and hostile latents, no bin exceeds (1 + exp(-3)) x a full-scale sine's peak
    torch.manual_seed(0)
    decoder = HarmonicDecoder(6, transform.n_bins, RATE, transform.n_fft, transform.tfr,
                              PitchCoordinate(fmax=RATE / 2), transform.full_scale, n_harmonics=48, noise_bands=16)
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.mul_(100.0)
    h = torch.randn(64, 6) * 10
    h[:, 0] = torch.linspace(-4, 6, 64)  # f0 from 14 Hz (clamped to 20) to Nyquist
    with torch.no_grad():
        magnitude = decoder(h)
    assert torch.isfinite(magnitude).all()
    assert float(magnitude.max()) <= transform.full_scale * (1 + math.exp(-3)) * 1.0001
    assert float(magnitude.max()) > 0.5 * transform.full_scale  # the bound is reached, not a silent decoder
    # DC and Nyquist stay silent (RTPGHI cannot integrate a phase there: HarmonicDecoder's edge_mask)
    assert float(magnitude[:, 0].abs().max()) == 0.0 and float(magnitude[:, -1].abs().max()) == 0.0


def test_band_interpolation_is_a_partition_of_unity():
    matrix = band_interpolation(16, 513, RATE)
    assert matrix.shape == (16, 513) and torch.allclose(matrix.sum(0), torch.ones(513), atol=1e-5)


# ---------------------------------------------------------------- in the VAE
def _harmonic_vae(transform, **decoder):
    torch.manual_seed(0)
    return SpectralVAE(transform, latent_dim=6, encoder={"channels": [4, 8], "hidden_dims": 32},
                       decoder={"type": "HarmonicDecoder", "n_harmonics": 24, "noise_bands": 16, "hidden_dims": 32,
                                **decoder},
                       pitch_latent={"centre_hz": 220.0})


def test_pitch_latent_is_the_measured_f0_with_no_spread(transform):
    vae = _harmonic_vae(transform)
    frames = _frames(transform, harmonic_tone(440.0, 0.5, RATE))
    mean, std = vae.encode(transform.to_features(frames), {})
    assert mean.shape == (frames.shape[0], 6)
    assert torch.allclose(mean[:, 0], torch.ones(frames.shape[0]), atol=1e-3)  # log2(440 / 220) = 1
    assert torch.all(std[:, 0] == vae.min_std) and torch.all(std[:, 1:] > vae.min_std)


def test_harmonic_vae_decodes_partials_at_the_latent_pitch(transform):
    vae = _harmonic_vae(transform)
    with torch.no_grad():  # mute the noise envelope: only the comb sounds
        vae.decoder.mlp.net[-1].bias[1 + 24:] = -30.0
    z = torch.zeros(1, 6)
    z[0, 0] = math.log2(330.0 / 220.0)
    magnitude = transform.from_features(vae.decode(z, {}))[0]
    bin_hz = RATE / transform.n_fft
    peaks = [b for b in range(1, 200) if magnitude[b] > magnitude[b - 1] and magnitude[b] >= magnitude[b + 1]
             and magnitude[b] > 1e-3 * magnitude.max()]
    assert peaks[:4] == [round(k * 330.0 / bin_hz) for k in (1, 2, 3, 4)]


def test_transpose_attribute_moves_forwards_pitch_by_semitones(transform, tracker):
    vae = _harmonic_vae(transform).eval()
    with torch.no_grad():  # partials falling off ~3 dB each, as instruments' do (equal partials read an octave up)
        last = vae.decoder.mlp.net[-1]
        last.weight[1:] = 0.0
        last.bias[1:1 + 24] = -0.35 * torch.arange(24.0)
        last.bias[1 + 24:] = -30.0  # and no noise
    scripted = script_model(vae)
    assert scripted.get_attributes() == ["temperature", "phase", "seed", "level", "transpose", "voicing"]
    assert scripted.transpose_params.tolist() == [2]  # float, for nn~'s attribute parser
    tone = torch.as_tensor(harmonic_tone(220.0, 0.8, RATE, n_harmonics=8))[: 64 * 256]
    measured = {}
    for semitones in (0.0, 12.0, -7.0):
        assert scripted.set_transpose(semitones) == 0 and scripted.get_transpose() == (semitones,)
        scripted.reset()
        with torch.no_grad():
            out = scripted.forward(tone.view(1, 1, -1))[0, 0]
        measured[semitones] = float(tracker(_frames(transform, out)[10:-4]).median())
    assert abs(float(_cents(torch.tensor(measured[0.0]), 220.0))) < 10
    assert abs(float(_cents(torch.tensor(measured[12.0]), 440.0))) < 10
    assert abs(float(_cents(torch.tensor(measured[-7.0]), 220.0 * 2 ** (-7 / 12)))) < 10
    # refused (the value is kept): NaN, beyond +-48 semitones
    for bad in (float("nan"), 48.5, -1e9):
        assert scripted.set_transpose(bad) == -1 and scripted.get_transpose() == (-7.0,)


def test_a_source_filter_forward_keeps_the_inputs_phase_unless_it_transposes(transform):
    from vschaos.models.contract import PassThroughModel

    vae = _harmonic_vae(transform).eval()
    default, explicit, rebuilt = script_model(vae), script_model(vae, phase="keep_input"), script_model(vae, phase="pghi")
    assert default.get_phase() == ("keep_input",) and rebuilt.get_phase() == ("pghi",)
    assert script_model(PassThroughModel(transform)).get_phase() == ("pghi",)  # no partials at the input's f0
    tone = torch.as_tensor(harmonic_tone(220.0, 0.5, RATE, n_harmonics=8))[: 32 * 256].view(1, 1, -1)
    with torch.no_grad():
        kept, same, pghi = default.forward(tone), explicit.forward(tone), rebuilt.forward(tone)
    assert torch.equal(kept, same) and not torch.allclose(kept, pghi, atol=1e-3)
    # transposed, the partials leave the input's: the phase is rebuilt from the magnitudes, as phase pghi does
    for module in (default, rebuilt):
        module.reset()
        assert module.set_transpose(5.0) == 0
    with torch.no_grad():
        assert torch.equal(default.forward(tone), rebuilt.forward(tone))
    assert default.get_phase() == ("keep_input",)  # the attribute stays: back at transpose 0 it applies again


def test_harmonic_vae_scripts_and_stays_finite_on_hostile_latents(transform):
    vae = _harmonic_vae(transform).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(vae)
    z = torch.tensor([[float("nan")] * 6, [1e6] * 6, [-1e6] * 6, [0.3] * 6])
    eager, script = vae.decode(z, {}), scripted.decode(z, {})
    assert torch.isfinite(eager).all() and torch.equal(eager, script)
    features = transform.to_features(_frames(transform, harmonic_tone(300.0, 0.4, RATE)))
    assert torch.equal(scripted.encode(features, {})[0], vae.encode(features, {})[0])


def test_harmonic_configuration_errors_name_the_key(transform):
    with pytest.raises(ConfigurationError, match="model.pitch_latent"):
        SpectralVAE(transform, 6, decoder={"type": "HarmonicDecoder"})
    for value in (5, "abc"):  # a command-line slip: model.pitch_latent=5
        with pytest.raises(ConfigurationError, match="model.pitch_latent must be a mapping"):
            SpectralVAE(transform, 6, pitch_latent=value)
    with pytest.raises(ConfigurationError, match="unknown key"):
        SpectralVAE(transform, 6, decoder={"type": "HarmonicDecoder"}, pitch_latent={"centre": 220})
    with pytest.raises(ConfigurationError, match="latent_dim >= 2"):
        SpectralVAE(transform, 1, pitch_latent={})
    with pytest.raises(ConfigurationError, match="model.decoder"):
        SpectralVAE(transform, 6, decoder={"type": "HarmonicDecoder", "channels": [8]}, pitch_latent={})


def test_the_pitch_dimension_stays_out_of_the_kl(tmp_path):
    cfg = compose_config("demo", [f"data.dataset.root={tmp_path}", "model=harmonic"])
    vae, _, module = build_objects(cfg)
    assert vae.pitch_dims == 1 and vae.latent_dim == 16
    vae.transform.set_normalisation(torch.zeros(vae.n_bins), torch.ones(vae.n_bins))
    frames = _frames(vae.transform, harmonic_tone(440.0, 0.6, vae.transform.sample_rate))
    with torch.no_grad():
        terms = module._shared_step({"magnitude": frames}, sample=False)
        mean, std = vae.encode(vae.transform.to_features(frames), {})
    from vschaos.models.losses import kl_divergence
    assert torch.allclose(terms["kl"], kl_divergence(mean[:, 1:], std[:, 1:]))
    assert float(kl_divergence(mean, std)) > float(terms["kl"]) + 5  # the pitch dim alone would add ~9 nats


@pytest.mark.slow
def test_harmonic_model_export_passes_the_host_verification(tmp_path):
    vae = preset_vae("demo", overrides=["model=harmonic"])
    path, report = export_model(vae, tmp_path / "harmonic.ts", buffers=_verify_buffers(vae.transform.hop),
                                batch_sizes=(1, 4))
    assert report.ok, report.format()
