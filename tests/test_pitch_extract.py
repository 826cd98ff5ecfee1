"""Pitch tracking and dataset labelling on synthesised tones of known pitch (tiny CREPE model)."""
import os
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import torch

from vschaos.cli.extract_pitch import main as extract_pitch_main
from vschaos.pitch import extract_dataset, parse_track, track_pitch
from vschaos.pitch import extract as extract_module
from vschaos.data.metadata import parse_metadata

HOP = 0.01
A4, C4, B3, E5 = 440.0, 261.63, 246.94, 659.26
# Boundaries are judged within two frames (the tones have 10 ms fades).
TOLERANCE = 2 * HOP + 1e-6


def tone_sequence(synth, segments: List[Tuple[float, float]], sample_rate: int) -> np.ndarray:
    """Concatenate ``(frequency or 0 for silence, seconds)`` segments."""
    parts = [synth.harmonic_tone(f, s, sample_rate) if f > 0 else np.zeros(int(s * sample_rate), np.float32)
             for f, s in segments]
    return np.concatenate(parts)


def main_intervals(intervals, min_seconds: float = 0.05):
    """Intervals longer than ``min_seconds`` (drops one- or two-frame transitions at note edges)."""
    return [interval for interval in intervals if interval[1] - interval[0] >= min_seconds]


def wrong_voiced_seconds(intervals, truth) -> float:
    """Seconds labelled with a voiced label that differs from ``truth(t)`` at the interval's midpoint."""
    total = 0.0
    for onset, offset, label in intervals:
        expected = truth((onset + offset) / 2)
        if label != "none" and label != expected:
            total += offset - onset
    return total


@pytest.fixture(scope="module")
def labelled_dataset(tmp_path_factory):
    """A dataset labelled once: same basename in two folders, 44.1/22.05/16 kHz, a silent gap, a bad file."""
    from conftest import harmonic_tone, write_wav  # the synth fixture is function-scoped
    import types

    synth = types.SimpleNamespace(harmonic_tone=harmonic_tone)
    root = tmp_path_factory.mktemp("pitch_dataset")
    write_wav(root / "data" / "a" / "note.wav", tone_sequence(synth, [(A4, 0.5), (0, 0.3), (C4, 0.5)], 44100), 44100)
    write_wav(root / "data" / "b" / "note.wav", tone_sequence(synth, [(B3, 0.6), (0, 0.3)], 22050), 22050)
    write_wav(root / "data" / "e5.wav", tone_sequence(synth, [(0, 0.2), (E5, 0.5)], 16000), 16000)
    (root / "data" / "broken.wav").write_bytes(b"this is not a sound file")
    other_task = root / "metadata" / "instrument"
    other_task.mkdir(parents=True)
    (other_task / "metadata.txt").write_text("data/a/note.wav\t3\n")
    (other_task / "classes.txt").write_text("3\tviolin\n")
    mtime_before = os.stat(other_task / "metadata.txt").st_mtime_ns
    messages: List[str] = []
    report = extract_dataset(root, model="tiny", hop_seconds=HOP, num_threads=2, log=messages.append)
    return root, report, messages, mtime_before


def read_track(root: Path, task: str, key: str):
    entries = parse_metadata((root / "metadata" / task / "metadata.txt").read_text())
    return parse_track((root / "metadata" / task / entries[key]).read_text())


def test_report_lists_processed_and_the_unreadable_file(labelled_dataset):
    root, report, messages, _ = labelled_dataset
    assert sorted(report.processed) == ["data/a/note.wav", "data/b/note.wav", "data/e5.wav"]
    assert [key for key, _ in report.failed] == ["data/broken.wav"] and not report.ok
    assert "broken.wav" in report.failed[0][1] and any("broken.wav" in m for m in messages)
    assert "broken.wav" in report.format()


def test_metadata_lines_unique_track_names(labelled_dataset):
    root = labelled_dataset[0]
    for task in ("pitch", "octave"):
        entries = parse_metadata((root / "metadata" / task / "metadata.txt").read_text())
        assert entries == {"data/a/note.wav": "tracks/a/note.wav.txt", "data/b/note.wav": "tracks/b/note.wav.txt",
                           "data/e5.wav": "tracks/e5.wav.txt"}
        for track in entries.values():
            assert (root / "metadata" / task / track).is_file()


def test_classes_files(labelled_dataset):
    root = labelled_dataset[0]
    pitch = (root / "metadata" / "pitch" / "classes.txt").read_text().splitlines()
    assert pitch == [f"{i}\t{n}" for i, n in enumerate("C C# D D# E F F# G G# A A# B".split())]
    octave = (root / "metadata" / "octave" / "classes.txt").read_text().splitlines()
    assert octave[0] == "0\t-1" and octave[5] == "5\t4" and octave[10] == "10\t9" and len(octave) == 11


def test_other_tasks_untouched(labelled_dataset):
    root, _, _, mtime_before = labelled_dataset
    other = root / "metadata" / "instrument"
    assert (other / "metadata.txt").read_text() == "data/a/note.wav\t3\n"
    assert os.stat(other / "metadata.txt").st_mtime_ns == mtime_before
    assert sorted(p.name for p in (root / "metadata").iterdir()) == ["instrument", "octave", "pitch"]


def test_44k_file_labels_and_boundaries(labelled_dataset):
    root = labelled_dataset[0]
    for task, a4, c4 in (("pitch", "9", "0"), ("octave", "5", "5")):
        intervals = read_track(root, task, "data/a/note.wav")
        significant = main_intervals(intervals)
        # A4 and C4 share octave 4 (id 5): in the octave track only the silent gap splits them.
        assert [label for _, _, label in significant] == [a4, "none", c4]
        (on1, off1, _), (on_gap, off_gap, _), (on2, off2, _) = significant
        assert abs(on1 - 0.0) <= TOLERANCE and abs(off1 - 0.5) <= TOLERANCE
        assert abs(on_gap - 0.5) <= TOLERANCE and abs(off_gap - 0.8) <= TOLERANCE
        assert abs(on2 - 0.8) <= TOLERANCE and abs(off2 - 1.3) <= TOLERANCE
        truth = lambda t: a4 if t < 0.5 else ("none" if t < 0.8 else c4)
        assert wrong_voiced_seconds(intervals, truth) <= TOLERANCE
        # Contiguous, sorted, onsets on the 10 ms frame grid, ending at the file's real end.
        for (_, offset, _), (onset, _, _) in zip(intervals, intervals[1:]):
            assert offset == onset
        assert all(abs(on / HOP - round(on / HOP)) < 1e-4 for on, _, _ in intervals)
        assert intervals[0][0] == 0.0 and intervals[-1][1] == pytest.approx(1.3, abs=1e-6)


def test_22k_file_b3_then_silence(labelled_dataset):
    root = labelled_dataset[0]
    for task, label in (("pitch", "11"), ("octave", "4")):
        intervals = read_track(root, task, "data/b/note.wav")
        significant = main_intervals(intervals)
        assert [lab for _, _, lab in significant] == [label, "none"]
        assert abs(significant[0][1] - 0.6) <= TOLERANCE
        assert wrong_voiced_seconds(intervals, lambda t: label if t < 0.6 else "none") <= TOLERANCE


def test_16k_file_silence_then_e5(labelled_dataset):
    root = labelled_dataset[0]
    for task, label in (("pitch", "4"), ("octave", "6")):
        significant = main_intervals(read_track(root, task, "data/e5.wav"))
        assert [lab for _, _, lab in significant] == ["none", label]
        assert abs(significant[1][0] - 0.2) <= TOLERANCE


def test_frame_times_exact_without_drift_at_22050(synth):
    """A note ending late in a 22.05 kHz file is found there: frame times are i * 160 / 16000 exactly."""
    sample_rate = 22050
    audio = tone_sequence(synth, [(A4, 3.7), (0, 0.3)], sample_rate)
    track = track_pitch(torch.from_numpy(audio), sample_rate, model="tiny", hop_seconds=HOP)
    n_16k = round(len(audio) * 16000 / sample_rate)
    assert len(track.times) == 1 + n_16k // 160
    assert torch.equal(track.times, torch.arange(len(track.times), dtype=torch.float64) * (160 / 16000))
    voiced_times = track.times[track.voiced]
    assert abs(voiced_times.max().item() - 3.7) <= TOLERANCE
    assert voiced_times.min().item() <= TOLERANCE
    cents = 1200 * torch.log2(track.f0_hz[track.voiced] / A4)
    assert (cents.abs() < 50).float().mean().item() > 0.98


def test_rerun_skips_and_force_redoes(tmp_path, synth):
    root = tmp_path / "ds"
    synth.write_wav(root / "data" / "x" / "tone.wav", synth.harmonic_tone(A4, 0.4, 44100), 44100)
    synth.write_wav(root / "data" / "y" / "tone.wav", synth.harmonic_tone(C4, 0.4, 22050), 22050)
    first = extract_dataset(root, num_threads=2)
    assert sorted(first.processed) == ["data/x/tone.wav", "data/y/tone.wav"] and first.ok
    files = [root / "metadata" / t / n for t in ("pitch", "octave") for n in ("metadata.txt", "tracks/x/tone.wav.txt")]
    stamps = {path: os.stat(path).st_mtime_ns for path in files}

    second = extract_dataset(root, num_threads=2)
    assert second.processed == [] and sorted(second.skipped) == ["data/x/tone.wav", "data/y/tone.wav"]
    assert {path: os.stat(path).st_mtime_ns for path in files} == stamps

    # A missing track file makes that file (only) unlabelled again.
    (root / "metadata" / "octave" / "tracks" / "y" / "tone.wav.txt").unlink()
    third = extract_dataset(root, num_threads=2)
    assert third.processed == ["data/y/tone.wav"] and third.skipped == ["data/x/tone.wav"]

    forced = extract_dataset(root, num_threads=2, force=True)
    assert sorted(forced.processed) == ["data/x/tone.wav", "data/y/tone.wav"] and forced.skipped == []
    assert all(os.stat(path).st_mtime_ns != stamps[path] for path in files[1::2])


def test_interrupted_run_keeps_finished_files(tmp_path, synth, monkeypatch):
    root = tmp_path / "ds"
    for name in ("a", "b", "c"):
        synth.write_wav(root / "data" / f"{name}.wav", synth.harmonic_tone(A4, 0.3, 16000), 16000)
    (root / "metadata" / "pitch").mkdir(parents=True)
    (root / "metadata" / "pitch" / "metadata.txt").write_text("data/old.wav\ttracks/old.wav.txt\n")
    real_track_pitch = extract_module.track_pitch
    calls = []

    def interrupt_on_second_file(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_track_pitch(*args, **kwargs)

    monkeypatch.setattr(extract_module, "track_pitch", interrupt_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        extract_dataset(root, num_threads=2)
    entries = parse_metadata((root / "metadata" / "pitch" / "metadata.txt").read_text())
    assert entries == {"data/old.wav": "tracks/old.wav.txt", "data/a.wav": "tracks/a.wav.txt"}
    assert "data/a.wav" in parse_metadata((root / "metadata" / "octave" / "metadata.txt").read_text())


def test_cli_exit_codes_and_options(tmp_path, synth, capsys):
    root = tmp_path / "ds"
    synth.write_wav(root / "data" / "tone.wav", synth.harmonic_tone(B3, 0.4, 44100), 44100)
    assert extract_pitch_main([str(root), "--jobs", "2", "--quiet", "--hop", "0.005"]) == 0
    intervals = main_intervals(parse_track((root / "metadata" / "pitch" / "tracks" / "tone.wav.txt").read_text()))
    assert [label for _, _, label in intervals] == ["11"]
    assert "1 labelled" in capsys.readouterr().out
    (root / "data" / "bad.flac").write_bytes(b"not audio")
    assert extract_pitch_main([str(root), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "bad.flac" in err and "1 failed" in err
    assert extract_pitch_main([str(tmp_path / "missing"), "--quiet"]) == 2
    assert extract_pitch_main([str(root), "--quiet", "--fmin", "900", "--fmax", "100"]) == 2


def test_silence_skips_the_network_and_noise_is_unvoiced(synth, monkeypatch):
    from vschaos.pitch import tracker

    noise = track_pitch(torch.from_numpy(synth.white_noise(0.5, 16000, amplitude=0.3)), 16000)
    assert noise.voiced.float().mean().item() < 0.1

    def no_network(*args, **kwargs):
        raise AssertionError("the network ran on digital silence")

    monkeypatch.setattr(tracker, "crepe_probabilities", no_network)
    silence = track_pitch(torch.zeros(8000), 16000)
    assert len(silence.times) == 51 and not silence.voiced.any() and silence.periodicity.abs().max() == 0
    # A tone below the silence floor (-60 dBFS) is unvoiced too.
    quiet = torch.from_numpy(synth.harmonic_tone(A4, 0.5, 16000, amplitude=1e-4))
    assert not track_pitch(quiet, 16000).voiced.any()


def test_interrupted_run_closes_its_progress_bar(tmp_path, synth, monkeypatch):
    import tqdm as tqdm_module

    bars = []

    class RecordingBar(tqdm_module.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.closed_by_caller = False
            bars.append(self)

        def __iter__(self):
            # keep the generator alive, as a runtime without reference counting would: then only
            # an explicit close() ends the bar (CPython would close it when the loop unwinds)
            self.generator = super().__iter__()
            return self.generator

        def close(self):
            self.closed_by_caller = True
            super().close()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    root = tmp_path / "ds"
    synth.write_wav(root / "data" / "a.wav", synth.harmonic_tone(A4, 0.3, 16000), 16000)
    monkeypatch.setattr(tqdm_module, "tqdm", RecordingBar)
    monkeypatch.setattr(extract_module, "track_pitch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        extract_dataset(root, progress=True)
    assert len(bars) == 1 and bars[0].closed_by_caller


def test_a_file_whose_name_is_not_utf8_is_labelled_and_skipped_on_rerun(tmp_path, synth, capsys):
    """metadata.txt names ``caf\\xe9.wav`` by the bytes of its name (as the dataset readers read it); the reports
    print the byte as ``\\xe9`` on a strict UTF-8 stream."""
    import soundfile as sf

    from vschaos.data.dataset import load_index

    if os.name != "posix":
        pytest.skip("file names are bytes on POSIX only")
    root = tmp_path / "ds"
    cafe = os.fsdecode(b"caf\xe9.wav")
    (root / "data").mkdir(parents=True)
    try:
        with open(root / "data" / cafe, "wb") as handle:  # soundfile cannot open such a name itself
            sf.write(handle, synth.harmonic_tone(A4, 0.4, 16000), 16000, format="WAV", subtype="PCM_16")
    except OSError:
        pytest.skip("this file system refuses file names that are not UTF-8")
    (root / "data" / os.fsdecode(b"bad\xe9.wav")).write_bytes(b"not a sound file")
    assert extract_pitch_main([str(root), "--quiet", "--model", "tiny"]) == 1
    captured = capsys.readouterr()
    (captured.out + captured.err).encode("utf-8")  # strict: no surrogate reached the streams
    assert "1 labelled, 0 already labelled (skipped), 1 failed" in captured.err
    assert f"FAILED data/bad\\xe9.wav: {root}/data/bad\\xe9.wav: cannot read audio" in captured.err
    for task in ("pitch", "octave"):
        metadata = root / "metadata" / task / "metadata.txt"
        assert metadata.read_bytes() == b"data/caf\xe9.wav\ttracks/caf\xe9.wav.txt\n"
    pitch = load_index(root, tasks=["pitch"], raise_on_problems=False).tasks["pitch"]
    intervals = main_intervals(list(zip(pitch.labels[f"data/{cafe}"].onsets, pitch.labels[f"data/{cafe}"].offsets,
                                        pitch.labels[f"data/{cafe}"].values.tolist())))
    assert [label for _, _, label in intervals] == [9]  # A

    stamp = os.stat(root / "metadata" / "pitch" / "metadata.txt").st_mtime_ns
    (root / "data" / os.fsdecode(b"bad\xe9.wav")).unlink()
    assert extract_pitch_main([str(root), "--quiet", "--model", "tiny"]) == 0
    assert "0 labelled, 1 already labelled (skipped), 0 failed" in capsys.readouterr().out
    assert os.stat(root / "metadata" / "pitch" / "metadata.txt").st_mtime_ns == stamp


def test_a_metadata_txt_that_cannot_be_read_is_one_line_naming_it(tmp_path, synth, capsys):
    root = tmp_path / "ds"
    synth.write_wav(root / "data" / "tone.wav", synth.harmonic_tone(A4, 0.3, 16000), 16000)
    (root / "metadata" / "pitch" / "metadata.txt").mkdir(parents=True)
    assert extract_pitch_main([str(root), "--quiet"]) == 2
    assert capsys.readouterr().err == f"error: {root}/metadata/pitch/metadata.txt: is a folder, expected a text file\n"
    (root / "metadata" / "pitch" / "metadata.txt").rmdir()
    (root / "metadata" / "pitch" / "metadata.txt").write_bytes("data/tone.wav\ttracks/t.txt\n".encode("utf-16"))
    assert extract_pitch_main([str(root), "--quiet"]) == 2
    assert "metadata/pitch/metadata.txt:1: holds NUL bytes" in capsys.readouterr().err


def test_a_rate_whose_resampling_filter_would_not_fit_is_refused_before_allocating():
    with pytest.raises(ValueError, match="its sample rate 999983 Hz cannot be resampled to 16000 Hz"):
        track_pitch(torch.full((2000,), 0.1), 999983, model="tiny")


def test_nothing_is_written_through_a_link_out_of_the_dataset(tmp_path, synth, capsys):
    root, victim = tmp_path / "ds", tmp_path / "victim"
    synth.write_wav(root / "data" / "violin" / "tone.wav", synth.harmonic_tone(A4, 0.3, 16000), 16000)
    victim.mkdir()
    (root / "metadata").mkdir()
    os.symlink(victim, root / "metadata" / "pitch")
    assert extract_pitch_main([str(root), "--quiet", "--model", "tiny"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {root}/metadata/pitch: links outside the dataset "
                                              f"root (to {victim.resolve()}): nothing written")
    os.unlink(root / "metadata" / "pitch")
    (root / "metadata" / "pitch" / "tracks").mkdir(parents=True)
    os.symlink(victim, root / "metadata" / "pitch" / "tracks" / "violin")
    assert extract_pitch_main([str(root), "--quiet", "--model", "tiny"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {root}/metadata/pitch/tracks/violin: links outside the dataset "
                                              f"root (to {victim.resolve()}): nothing written")
    assert list(victim.iterdir()) == []
