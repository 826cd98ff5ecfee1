"""Representation (log1p vs true log range), the data-derived std floor, and the convolutional decoder."""
import math

import pytest
import torch

from vschaos.data.audio import load_audio
from vschaos.data.datamodule import SpectralDataModule
from vschaos.dsp import functional as F
from vschaos.dsp.transforms import SpectralTransform
from vschaos.models.components.decoders import SpectralDecoder, UpsamplingConvDecoder, make_decoder
from vschaos.models.vae import SpectralVAE

SR = 16000


def sine(freq: float, amplitude: float, seconds: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float()


def test_default_representation_is_log1p_exactly():
    transform = SpectralTransform(SR, 512, 128)
    assert transform.contrast_scale == 1.0
    mag = torch.rand(3, 257) * 50
    assert torch.equal(transform.contrast(mag), torch.log1p(mag))
    assert torch.equal(F.inverse_contrast(torch.log1p(mag)), torch.expm1(torch.log1p(mag)))


def test_log_floor_gives_a_true_log_range_relative_to_full_scale():
    transform = SpectralTransform(SR, 512, 128, log_floor_db=-100.0)
    assert transform.full_scale == pytest.approx(float(transform.window.sum()) / 2)
    assert transform.contrast_scale == pytest.approx(transform.full_scale * 1e-5)
    # a bin-centred full-scale sine peaks at full_scale
    centre = 64 * SR / 512
    assert float(transform.magnitude(sine(centre, 1.0)[None]).max()) == pytest.approx(transform.full_scale, rel=1e-3)
    peaks = {db: float(transform.contrast(transform.magnitude(sine(centre, 10 ** (db / 20))[None])).max())
             for db in (-20, -40, -60)}
    # 20 dB quieter = log(10) less, at every level (a true log), where log1p(|X|) hardly moves at -60 dB
    assert peaks[-20] - peaks[-40] == pytest.approx(math.log(10), abs=0.01)
    assert peaks[-40] - peaks[-60] == pytest.approx(math.log(10), abs=0.01)
    old = SpectralTransform(SR, 512, 128)
    quiet = old.contrast(old.magnitude(sine(centre, 1e-3)[None])).max() - old.contrast(
        old.magnitude(sine(centre, 1e-4)[None])).max()
    assert float(quiet) < 0.25  # log1p is almost linear there: far below log(10) = 2.30


def test_log_floor_features_round_trip():
    # the scripted transform equals the eager one: tests/test_properties.py
    transform = SpectralTransform(SR, 512, 128, log_floor_db=-90.0)
    mag = transform.magnitude(torch.randn(2, SR // 4) * 0.01)
    contrast = transform.contrast(mag)
    transform.set_normalisation(contrast.mean(dim=(0, 1)), contrast.std(dim=(0, 1)))
    features = transform.to_features(mag)
    torch.testing.assert_close(transform.from_features(features), mag, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("floor_db", [0.0, float("nan"), 3.0])
def test_log_floor_must_be_negative_db(floor_db):
    with pytest.raises(ValueError, match="log_floor_db"):
        SpectralTransform(SR, 512, 128, log_floor_db=floor_db)


def test_std_floor_is_a_fraction_of_the_pooled_spread():
    transform = SpectralTransform(SR, 512, 128)
    mean = torch.zeros(257)
    mean[:100] = 1.0
    std = torch.full((257,), 0.5)
    std[200:] = 1e-5  # band-limited: nothing up there
    pooled = math.sqrt(float((std ** 2).mean() + mean.var(unbiased=False)))
    transform.set_normalisation(mean, std)
    assert float(transform.norm_std[200:].min()) == pytest.approx(0.1 * pooled, rel=1e-5)
    assert torch.equal(transform.norm_std[:200], std[:200])
    assert torch.equal(transform.norm_mean, mean)
    unfloored = SpectralTransform(SR, 512, 128, norm_std_floor=0.0)
    unfloored.set_normalisation(mean, std)
    assert float(unfloored.norm_std.min()) == pytest.approx(1e-4)  # the absolute floor stays


def test_band_limited_fit_keeps_broadband_features_bounded():
    """Statistics of quiet notes (-30 dBFS, a few partials), then full-scale white noise: log1p features stay
    within a few hundred std (not thousands); with the log range, silent bins are not degenerate at all."""
    torch.manual_seed(0)
    notes = torch.cat([sine(f, 0.03) + sine(2 * f, 0.01) for f in (220.0, 330.0, 440.0)])
    noise = torch.rand(1, SR) * 2 - 1
    largest = {}
    for log_floor_db, std_floor in ((None, 0.1), (None, 0.0), (-100.0, 0.1)):
        transform = SpectralTransform(SR, 512, 128, log_floor_db=log_floor_db, norm_std_floor=std_floor)
        contrast = transform.contrast(transform.magnitude(notes[None])[0])
        mean, std = contrast.mean(0), contrast.std(0)
        if log_floor_db is None:
            assert float(std.min()) < 1e-3  # silent bins: what the std floor is for
        else:
            assert float(std.min()) > 0.1  # float rounding noise is above -100 dBFS: a real spread
        transform.set_normalisation(mean, std)
        features = transform.to_features(transform.magnitude(noise))
        assert bool(torch.isfinite(features).all())
        largest[(log_floor_db, std_floor)] = float(features.abs().max())
    assert largest[(None, 0.0)] > 1000 and largest[(None, 0.1)] < 300
    assert largest[(-100.0, 0.1)] < 50  # noise 30 dB above the notes: tens of std, as far as it is


def test_datamodule_statistics_follow_the_representation(tmp_path, synth):
    root = tmp_path / "ds"
    for i in range(3):
        synth.write_wav(root / f"data/f{i}.wav", 0.05 * synth.harmonic_tone(200.0 * (i + 1), 0.5, SR, seed=i), SR)
    transform = SpectralTransform(SR, 512, 128, log_floor_db=-100.0)
    dm = SpectralDataModule(transform, {"root": str(root)}, val_fraction=0.0)
    mean, std = dm.normalisation()
    contrast = torch.cat([transform.contrast(transform.magnitude(load_audio(dm.files[i].path, SR)[None])[0])
                          for i in dm.train_files]).double()
    assert torch.allclose(mean.double(), contrast.mean(0), rtol=1e-5, atol=1e-6)
    assert torch.allclose(std.double(), contrast.std(0, unbiased=False), rtol=1e-4, atol=1e-5)
    assert float(mean.max()) > 5  # log range: far above log1p's values at this level (< 0.5)


@pytest.mark.parametrize("n_bins", [33, 257, 1025, 100])
def test_upsampling_conv_decoder_reaches_exact_bin_count(n_bins):
    torch.manual_seed(0)
    decoder = make_decoder(6, n_bins, type="UpsamplingConvDecoder", channels=[8, 4, 2], kernel_size=5, stride=4,
                           hidden_dims=16, nlayers=1).eval()
    assert isinstance(decoder, UpsamplingConvDecoder)
    z = torch.randn(3, 6)
    out = decoder(z)
    assert out.shape == (3, n_bins) and bool(torch.isfinite(out).all())


def test_decoder_type_selects_the_class_and_defaults_to_the_mlp():
    assert type(make_decoder(4, 33, channels=[], hidden_dims=8, nlayers=1)) is SpectralDecoder
    with pytest.raises(ValueError, match="model.decoder.type 'Transformer'"):
        make_decoder(4, 33, type="Transformer")
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        make_decoder(4, 33, type="UpsamplingConvDecoder", kernel_size=4)
    vae = SpectralVAE(SpectralTransform(8000, 64, 16), 4,
                      encoder={"channels": [4], "kernel_size": 5, "stride": 2, "hidden_dims": 16, "nlayers": 1},
                      decoder={"type": "UpsamplingConvDecoder", "channels": [4, 2], "kernel_size": 5, "stride": 2,
                               "hidden_dims": 16, "nlayers": 1}).eval()
    scripted = torch.jit.script(vae)
    z = torch.randn(2, 4)
    torch.testing.assert_close(scripted.decode(z, {}), vae.decode(z, {}))


def test_shift_pitch_moves_partials_by_the_semitone_ratio():
    from vschaos.models.augment import augment_frames, shift_pitch

    transform = SpectralTransform(SR, 1024, 256)
    frame = transform.magnitude((sine(500.0, 0.5) + sine(1000.0, 0.25))[None])[0, 10:12]  # (2, bins)
    torch.testing.assert_close(shift_pitch(frame, torch.zeros(2)), frame)
    up = shift_pitch(frame, torch.tensor([12.0, 7.0]))
    bin_hz = SR / 1024
    assert float(up[0].argmax()) * bin_hz == pytest.approx(1000.0, abs=bin_hz)
    assert float(up[1].argmax()) * bin_hz == pytest.approx(500.0 * 2 ** (7 / 12), abs=bin_hz)
    assert float(up[0].max()) == pytest.approx(float(frame[0].max()), rel=0.02)  # level kept
    same = augment_frames(frame, 0.0, 0.0)
    assert same is frame
    louder = augment_frames(frame, 0.0, 6.0, generator=torch.Generator().manual_seed(0))
    ratio = (louder / frame.clamp_min(1e-12))[:, 40]
    assert bool(((ratio > 0.5) & (ratio < 2.0)).all()) and not torch.allclose(louder, frame)


def test_recolour_applies_a_smooth_zero_mean_equaliser_within_its_bound_per_frame():
    from vschaos.models.augment import TIMBRE_COMPONENTS, recolour, timbre_curves, warped_axis

    frames = torch.rand(64, 513) + 0.1
    assert recolour(frames, 0.0) is frames
    coloured = recolour(frames, 9.0, generator=torch.Generator().manual_seed(3))
    curves = timbre_curves(64, 513, 9.0, generator=torch.Generator().manual_seed(3))
    # the same draws give the same curve: the frames are multiplied by it, nothing else
    torch.testing.assert_close(20 * torch.log10(coloured / frames), curves, atol=1e-3, rtol=0)
    peak = curves.abs().amax(dim=-1)
    assert float(peak.max()) <= 9.0 + 1e-4 and float(peak.max()) > 6.0  # the bound, and reached near it
    assert float(peak.std()) > 1.0  # each frame its own size
    torch.testing.assert_close(curves.mean(dim=-1), torch.zeros(64), atol=1e-4, rtol=0)  # zero mean over the bins
    # the curves differ between frames (not one equaliser for the batch)
    assert float((curves[0] - curves[1]).abs().max()) > 0.5
    # smooth at any resolution: each curve is a constant plus TIMBRE_COMPONENTS cosines cos(pi j u) of the warped
    # axis u, so a least-squares fit on them leaves nothing, while one cosine fewer leaves a residual
    for bins in (129, 257, 1025):
        u = warped_axis(bins).double()
        drawn = timbre_curves(16, bins, 12.0, generator=torch.Generator().manual_seed(bins)).double()
        def residual(components):
            basis = torch.stack([torch.ones_like(u)] + [torch.cos(math.pi * j * u) for j in range(1, components + 1)], 1)
            fit = torch.linalg.lstsq(basis, drawn.T).solution
            return float((basis @ fit - drawn.T).abs().max())
        assert residual(TIMBRE_COMPONENTS) < 1e-4, bins
        assert residual(TIMBRE_COMPONENTS - 1) > 0.1, bins
        assert float(u[0]) == 0.0 and abs(float(u[-1]) - 1.0) < 1e-6 and bool((u.diff() > 0).all())


def test_shift_notes_moves_each_labelled_frame_and_its_note_labels_together():
    from vschaos.models.augment import shift_notes
    from vschaos.notes import hz_to_midi

    transform = SpectralTransform(SR, 1024, 256)
    bin_hz = SR / 1024
    f0 = 440.0  # A4: pitch 9, octave id 5
    frames = transform.magnitude(sine(f0, 0.5)[None])[0, 10:11].repeat(400, 1)
    labels = {"pitch": torch.full((400,), 9), "octave": torch.full((400,), 5), "instrument": torch.arange(400)}
    labels["pitch"][300:] = -1  # octave known, pitch not: its new octave would be unknown, so it stays
    labels["octave"][350:] = -1  # nothing known: moves freely
    moved, moved_labels = shift_notes(frames, labels, 3, generator=torch.Generator().manual_seed(0))
    heard = hz_to_midi(moved.argmax(-1).double() * bin_hz)  # the frame's new note, from its spectrum
    shift = torch.round(heard - hz_to_midi(torch.tensor(float(frames[0].argmax()) * bin_hz, dtype=torch.float64)))
    labelled = slice(0, 300)
    assert set(shift[labelled].long().tolist()) == set(range(-3, 4))  # every whole shift occurs
    midi = moved_labels["octave"][labelled] * 12 + moved_labels["pitch"][labelled]
    assert torch.equal(midi, 69 + shift[labelled].long())  # labels moved exactly as the spectrum did
    assert bool((shift[300:350] == 0).all()) and torch.equal(moved[300:350], frames[300:350])
    assert bool((moved_labels["pitch"][300:] == -1).all()) and bool((moved_labels["octave"][350:] == -1).all())
    assert set(shift[350:].long().tolist()) - {0}  # unlabelled frames move too
    assert moved_labels["instrument"] is labels["instrument"]  # other tasks untouched


def test_shift_notes_never_leaves_the_midi_range():
    from vschaos.models.augment import shift_notes

    frames = torch.rand(200, 64)
    labels = {"pitch": torch.tensor([0, 7] * 100), "octave": torch.tensor([0, 10] * 100)}  # MIDI 0 and 127
    _, moved = shift_notes(frames, labels, 5, generator=torch.Generator().manual_seed(1))
    midi = moved["octave"] * 12 + moved["pitch"]
    assert int(midi.min()) >= 0 and int(midi.max()) <= 127
    assert bool((midi[0::2] <= 5).all()) and bool((midi[1::2] >= 122).all())
