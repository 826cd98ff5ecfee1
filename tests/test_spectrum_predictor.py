"""SpectrumNotePredictor: log-frequency bands, pitch translation, folds, learning unseen pitches, bounds."""
import math

import pytest
import torch

from vschaos.dsp.transforms import SpectralTransform
from vschaos.models.components.spectrum_predictor import (UNREACHABLE_LOGIT, SpectrumNotePredictor,
                                                          log_frequency_weights)
from vschaos.models.vae import ConfigurationError, SpectralVAE

RATE, N_FFT = 16000, 1024
N_BINS = N_FFT // 2 + 1


def tone_magnitudes(midi: float, harmonics=(1.0, 0.5, 0.33, 0.25, 0.2), seconds: float = 0.5) -> torch.Tensor:
    """DGT magnitudes ``(frames, bins)`` of a steady harmonic tone at MIDI note ``midi``."""
    f0 = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
    t = torch.arange(int(seconds * RATE)) / RATE
    audio = sum(a * torch.sin(2 * math.pi * f0 * (k + 1) * t) for k, a in enumerate(harmonics))
    magnitude = SpectralTransform(RATE, N_FFT, 256).magnitude(audio.reshape(1, -1).float())[0]
    return magnitude[4:-4]  # steady frames


def test_band_weights_interpolate_where_bands_are_narrower_than_bins_and_vanish_above_nyquist():
    centres = 440.0 * 2.0 ** (torch.arange(-3, 4) / 36.0)  # a third of a semitone apart: ~8.5 Hz < 15.6 Hz bins
    weights = log_frequency_weights(N_FFT, RATE, centres)
    torch.testing.assert_close(weights.sum(0), torch.ones(7))
    # 440 Hz lies between bins 28 (437.5 Hz) and 29 (453.1 Hz): linear interpolation
    assert weights[:, 3].nonzero().flatten().tolist() == [28, 29]
    assert float(weights[28, 3]) == pytest.approx(1 - 2.5 / 15.625, abs=1e-6)
    wide = log_frequency_weights(N_FFT, RATE, torch.tensor([3000.0, 4000.0, 7999.0, 8001.0, 12000.0]))
    torch.testing.assert_close(wide.sum(0), torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0]))
    assert int((wide[:, 1] > 0).sum()) > 2  # a band wider than a bin averages several bins


def test_a_pure_tone_peaks_in_its_own_band():
    predictor = SpectrumNotePredictor(N_FFT, RATE, 12, "pitch_class")
    bands = predictor.log_bands(tone_magnitudes(69.0, harmonics=(1.0,)))
    margin = 5  # positions added on each side for the unpadded convolutions (kernels 5, 5, 3)
    axis_index_of_a4 = int(predictor.stack_index[1, margin + (69 - predictor.midi_low) * 3 + 1])  # h = 1, A4's centre
    assert bands.argmax(-1).unique().tolist() == [axis_index_of_a4]
    assert float(bands.max()) == pytest.approx(math.log(1 + predictor.floor), abs=1e-6)  # relative to the peak


def test_a_semitone_up_is_the_same_scores_one_note_up():
    """Weights are shared along log frequency: the note scores of a tone a semitone higher are the scores of the
    lower tone moved by one note (up to the linear bins' interpolation)."""
    torch.manual_seed(0)
    predictor = SpectrumNotePredictor(N_FFT, RATE, 12, "pitch_class", midi_low=36, midi_high=96)
    with torch.no_grad():
        low = predictor.note_logits(tone_magnitudes(66.0)).mean(0)
        high = predictor.note_logits(tone_magnitudes(67.0)).mean(0)
    interior = slice(2, -2)  # the convolutions' zero padding makes the ends differ
    moved = (high[1:] - low[:-1])[interior].abs().max()
    unmoved = (high - low)[interior].abs().max()
    assert float(moved) < 0.25 * float(unmoved)


def test_folds_take_the_best_note_of_each_class():
    torch.manual_seed(0)
    magnitude = tone_magnitudes(60.0)[:3]
    for fold, n_classes, class_of in (("pitch_class", 12, lambda m: m % 12), ("octave", 11, lambda m: m // 12)):
        predictor = SpectrumNotePredictor(N_FFT, RATE, n_classes, fold, midi_low=30, midi_high=90)
        with torch.no_grad():
            notes, logits = predictor.note_logits(magnitude), predictor(magnitude)
        midi = torch.arange(30, 91)
        for c in range(n_classes):
            members = class_of(midi) == c
            expected = torch.logsumexp(notes[:, members], -1) if members.any() else torch.logsumexp(
                torch.full_like(notes, UNREACHABLE_LOGIT), -1)
            torch.testing.assert_close(logits[:, c], expected)
    assert int(predictor(magnitude).argmax(-1).min()) >= 2  # octaves below MIDI 30 are never predicted


def test_it_learns_pitch_and_octave_at_pitches_it_never_saw():
    """Trained 250 steps on tones every 3 semitones (random timbres), right on >= 90 % of the notes in between."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)

    def notes(midis):
        frames, pitch, octave = [], [], []
        for midi in midis:
            timbre = tuple(float(a) for a in torch.rand(6, generator=generator) ** 2 + 0.05)
            magnitude = tone_magnitudes(float(midi), timbre, seconds=0.3)
            frames.append(magnitude)
            pitch.append(torch.full((len(magnitude),), midi % 12))
            octave.append(torch.full((len(magnitude),), midi // 12))
        return torch.cat(frames), torch.cat(pitch), torch.cat(octave)

    train = notes(list(range(48, 85, 3)) * 2)
    test = notes([m for m in range(49, 84) if m % 3 != 0])
    predictors = {"pitch": SpectrumNotePredictor(N_FFT, RATE, 12, "pitch_class", 36, 96, channels=8),
                  "octave": SpectrumNotePredictor(N_FFT, RATE, 11, "octave", 36, 96, channels=8)}
    optimiser = torch.optim.Adam([p for m in predictors.values() for p in m.parameters()], 3e-3)
    for _ in range(250):
        index = torch.randint(len(train[0]), (64,))
        loss = sum(torch.nn.functional.cross_entropy(predictors[task](train[0][index]), target[index])
                   for task, target in (("pitch", train[1]), ("octave", train[2])))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        for task, target in (("pitch", test[1]), ("octave", test[2])):
            accuracy = (predictors[task](test[0]).argmax(-1) == target).float().mean()
            assert accuracy >= 0.9, f"{task} accuracy {float(accuracy):.2f} on unseen pitches"


def test_a_silent_frame_scores_every_note_alike_in_any_precision_and_an_empty_batch_is_empty():
    torch.manual_seed(0)
    predictor = SpectrumNotePredictor(N_FFT, RATE, 12, "pitch_class")
    with torch.no_grad():
        notes = predictor.note_logits(torch.zeros(2, N_BINS))
        # unpadded convolutions: the ends of the range read the spectrum's floor too, not a loud padding
        torch.testing.assert_close(notes, torch.full_like(notes, float(notes[0, 0])))
        half = predictor.half()(torch.zeros(2, N_BINS, dtype=torch.float16))
        assert half.dtype == torch.float16 and bool(torch.isfinite(half).all())
        assert predictor.float()(torch.zeros(0, N_BINS)).shape == (0, 12)


def test_any_input_gives_finite_logits_and_the_script_agrees():
    torch.manual_seed(0)
    predictor = SpectrumNotePredictor(N_FFT, RATE, 11, "octave").eval()
    scripted = torch.jit.script(predictor)
    inputs = torch.stack([torch.zeros(N_BINS), torch.full((N_BINS,), float("nan")),
                          torch.full((N_BINS,), float("inf")), torch.full((N_BINS,), 1e30),
                          torch.rand(N_BINS), -torch.rand(N_BINS)])
    with torch.no_grad():
        eager = predictor(inputs)
        torch.testing.assert_close(scripted(inputs), eager)
    assert bool(torch.isfinite(eager).all())


@pytest.mark.parametrize("args, message", [
    ({"fold": "semitone"}, "fold must be one of"),
    ({"fold": "octave", "bins_per_semitone": 2}, "bins_per_semitone must be an odd whole number >= 1, got 2"),
    ({"fold": "octave", "bins_per_semitone": 0}, "bins_per_semitone must be an odd whole number >= 1, got 0"),
    ({"fold": "octave", "kernel_size": 4}, "kernel_size must be an odd whole number >= 1, got 4"),
    ({"fold": "octave", "channels": 0}, "channels must be a whole number >= 1, got 0"),
    ({"fold": "octave"}, "predicts 11 classes .* dim 12"),
    ({"fold": "pitch_class", "midi_low": 90, "midi_high": 40}, "midi_low < midi_high"),
    ({"fold": "pitch_class", "width": 3}, "unexpected keyword argument 'width'"),
])
def test_a_bad_spectrum_predictor_config_names_the_task(args, message):
    dim = 11 if args.get("fold") == "octave" and "predicts" not in message else 12
    with pytest.raises(ConfigurationError, match=rf"model\.prediction\.pitch: .*{message}"):
        SpectralVAE(SpectralTransform(RATE, N_FFT, 256), latent_dim=4, conditioning={"pitch": {"dim": dim}},
                    prediction={"pitch": {"dim": dim, "type": "SpectrumNotePredictor", "args": args}})


def test_forward_fills_missing_labels_from_the_spectrum_and_decode_of_a_bare_latent_leaves_them_missing():
    torch.manual_seed(0)
    transform = SpectralTransform(RATE, N_FFT, 256)
    vae = SpectralVAE(transform, latent_dim=4, encoder={"channels": [], "hidden_dims": 16, "nlayers": 1},
                      decoder={"hidden_dims": 16, "nlayers": 1},
                      conditioning={"pitch": {"dim": 12}, "octave": {"dim": 11}},
                      prediction={"pitch": {"dim": 12, "type": "SpectrumNotePredictor", "args": {"fold": "pitch_class"}},
                                  "octave": {"dim": 11, "type": "SpectrumNotePredictor", "args": {"fold": "octave"}}})
    assert vae.spectrum_tasks == ["pitch", "octave"] and vae.predicted_tasks == ["pitch", "octave"]
    features = transform.to_features(torch.cat([tone_magnitudes(57.0)[:2], tone_magnitudes(64.0)[:2]]))
    missing = {"pitch": torch.full((4,), -1), "octave": torch.full((4,), -1)}
    with torch.no_grad():
        decoded, z, mean, _ = vae(features, missing, sample=False)
        logits = vae.predict(mean, features)
        assert set(vae.predict(mean)) == set()  # without the frames there is nothing to predict from
        guessed = {task: logits[task].argmax(-1) for task in ("pitch", "octave")}
        torch.testing.assert_close(decoded, vae.decode(mean, guessed))
        torch.testing.assert_close(vae.decode(mean, missing), vae.decode(mean, {}))  # zero embeddings
        assert not torch.allclose(vae.decode(mean, missing), decoded)
        scripted = torch.jit.script(vae)
        torch.testing.assert_close(scripted(features, missing, False)[0], decoded)
