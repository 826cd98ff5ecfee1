"""make_sampled_dataset: notes rendered by a fake ``fluidsynth`` (CI has no SoundFont) land in a valid
dataset tree with instrument/pitch/octave/midi labels and a notes.csv holding each note's true f0."""
import csv
import os
import stat
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vschaos.data.dataset import load_index, validate_dataset
from vschaos.data.sampled import (NoteSpec, SampledDatasetError, instrument_name, make_sampled_dataset,
                                  note_midi_file, parse_note_range, read_notes_csv)
from vschaos.cli.dataset_tools import make_sampled_dataset_main

SR = 16000

# A stand-in for the fluidsynth CLI: reads the note and velocity from the MIDI file it is given and
# writes a 4 s stereo float WAV (longer than asked, as fluidsynth renders the release tail) holding a
# sine at the note's frequency, amplitude gain * velocity / 127. Note 127 renders silence; FAKE_FAIL
# in the environment makes it fail like a broken install.
FAKE_FLUIDSYNTH = r'''#!{python}
import os, sys
import numpy as np, soundfile as sf
args = sys.argv[1:]
if os.environ.get("FAKE_FAIL"):
    print("fluidsynth: error: Failed to load SoundFont", file=sys.stderr)
    sys.exit(3)
out = args[args.index("-F") + 1]
rate = int(args[args.index("-r") + 1])
gain = float(args[args.index("-g") + 1])
assert args[args.index("-O") + 1] == "float" and args[args.index("-R") + 1] == "0"
data = open(args[-1], "rb").read()
at = data.index(bytes([0x90]), 14)  # first note-on, channel 1
note, velocity = data[at + 1], data[at + 2]
t = np.arange(4 * rate) / rate
amp = 0.0 if note == 127 else gain * velocity / 127.0
tone = amp * np.sin(2 * np.pi * 440.0 * 2 ** ((note - 69) / 12) * t)
sf.write(out, np.stack([tone, 0.5 * tone], axis=1).astype(np.float32), rate, subtype="FLOAT")
'''


@pytest.fixture()
def fake_fluidsynth(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "fluidsynth"
    script.write_text(FAKE_FLUIDSYNTH.replace("{python}", sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return script


@pytest.fixture()
def soundfont(tmp_path) -> Path:
    path = tmp_path / "font.sf2"
    path.write_bytes(b"RIFF fake soundfont")
    return path


def test_parse_note_range_includes_stop_and_rejects_bad_ranges():
    assert parse_note_range("36:96:3") == list(range(36, 97, 3))
    assert parse_note_range("36:96:3")[-1] == 96
    assert parse_note_range("60:62") == [60, 61, 62]
    assert parse_note_range("60,64,67") == [60, 64, 67]
    for bad in ("60:50", "a:b", "1:2:0", "120:130", ""):
        with pytest.raises(ValueError, match="--notes"):
            parse_note_range(bad)


def test_note_midi_file_has_note_on_at_zero_and_note_off_at_hold():
    data = note_midi_file(NoteSpec(program=71, midi=60, velocity=90), hold=2.0, seconds=3.0)
    assert data[:4] == b"MThd" and struct.unpack(">IHHH", data[4:14]) == (6, 0, 1, 1000)
    track = data[22:]
    assert struct.unpack(">I", data[18:22])[0] == len(track)
    assert bytes([0x00, 0xC0, 71, 0x00, 0x90, 60, 90]) in track
    # 2 s at 120 bpm and 1000 ticks per quarter = 4000 ticks = VLQ 0x9F 0x20
    assert bytes([0x9F, 0x20, 0x80, 60, 0]) in track
    assert track.endswith(bytes([0xFF, 0x2F, 0x00]))


def test_sampled_dataset_tree_labels_levels_and_f0_truth(fake_fluidsynth, soundfont, tmp_path):
    out = tmp_path / "notes"
    rendered, silent = make_sampled_dataset(out, soundfont, programs=[71, 0], notes=[57, 60, 69],
                                            velocities=[64, 127], seconds=1.0, sample_rate=SR, gain=0.5)
    assert silent == [] and len(rendered) == 12
    report = validate_dataset(out, sample_rate=SR)
    assert report.ok, report.format()
    assert sorted(report.tasks) == ["instrument", "midi", "octave", "pitch"]
    assert (out / "metadata/instrument/classes.txt").read_text() == "0\tp071_clarinet\n1\tp000_acoustic_grand_piano\n"
    index = load_index(out)
    key = "data/p071_clarinet/p071_clarinet_m069_v127.wav"
    assert index.tasks["instrument"].labels[key].values.tolist() == [0]
    assert index.tasks["midi"].labels[key].values.tolist() == [69]
    assert index.tasks["pitch"].labels[key].values.tolist() == [9]  # A
    assert index.tasks["octave"].labels[key].values.tolist() == [5]  # octave id 5 = octave 4
    audio, rate = sf.read(out / key)
    info = sf.info(str(out / key))
    assert rate == SR and len(audio) == SR and info.subtype == "PCM_16" and info.channels == 1
    # not normalised: mono mean of (tone, tone / 2) at gain 0.5, velocity 127 peaks at 0.75 * 0.5
    assert np.max(np.abs(audio)) == pytest.approx(0.375, abs=2e-4)
    rows = {row["file"]: row for row in read_notes_csv(out)}
    assert len(rows) == 12
    assert rows[key]["f0_hz"] == pytest.approx(440.0) and rows[key]["midi"] == 69
    assert rows[key]["peak_dbfs"] == pytest.approx(20 * np.log10(0.375), abs=0.01)
    quiet = rows["data/p071_clarinet/p071_clarinet_m069_v064.wav"]
    assert quiet["peak_dbfs"] == pytest.approx(20 * np.log10(0.375 * 64 / 127), abs=0.01)
    # each file's spectral peak is at its f0 from notes.csv
    for row in rows.values():
        audio, _ = sf.read(out / row["file"])
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)), n=1 << 16))
        assert np.argmax(spectrum) * SR / (1 << 16) == pytest.approx(row["f0_hz"], rel=0.005)
    with open(out / "notes.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["file", "instrument", "program", "midi", "velocity", "f0_hz",
                                             "peak_dbfs", "rms_dbfs"]


def test_sampled_dataset_refuses_to_overwrite_without_force(fake_fluidsynth, soundfont, tmp_path, capsys):
    out = tmp_path / "notes"
    args = [str(out), "--soundfont", str(soundfont), "--programs", "40", "--notes", "60,62",
            "--seconds", "0.5", "--sample-rate", str(SR), "--quiet"]
    assert make_sampled_dataset_main(args) == 0
    before = (out / "data/p040_violin/p040_violin_m060_v100.wav").read_bytes()
    assert make_sampled_dataset_main(args) == 1
    assert "pass --force" in capsys.readouterr().err
    assert (out / "data/p040_violin/p040_violin_m060_v100.wav").read_bytes() == before
    assert make_sampled_dataset_main(args + ["--force", "--velocities", "50"]) == 0
    assert "2 sound files" in capsys.readouterr().err  # the velocity-100 files stay, unlabelled: said
    assert [r["velocity"] for r in read_notes_csv(out)] == [50, 50]


def test_sampled_dataset_without_fluidsynth_says_how_to_get_it(soundfont, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty_bin"))
    code = make_sampled_dataset_main([str(tmp_path / "out"), "--soundfont", str(soundfont), "--notes", "60"])
    assert code == 1
    err = capsys.readouterr().err
    assert "fluidsynth not found" in err and "apt install fluidsynth" in err
    assert not (tmp_path / "out" / "metadata").exists()


def test_sampled_dataset_reports_a_failing_fluidsynth_with_the_note(fake_fluidsynth, soundfont, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "1")
    with pytest.raises(SampledDatasetError, match=r"program 24 note 60 velocity 100 \(exit 3\).*Failed to load"):
        make_sampled_dataset(tmp_path / "out", soundfont, programs=[24], notes=[60], seconds=0.5, sample_rate=SR)
    assert not (tmp_path / "out" / "notes.csv").exists()


def test_sampled_dataset_skips_silent_notes_and_refuses_clipping(fake_fluidsynth, soundfont, tmp_path):
    rendered, silent = make_sampled_dataset(tmp_path / "a", soundfont, programs=[0], notes=[60, 127],
                                            seconds=0.5, sample_rate=SR)
    assert [n.spec.midi for n in rendered] == [60] and silent == [NoteSpec(0, 127, 100)]
    assert validate_dataset(tmp_path / "a", sample_rate=SR).ok
    with pytest.raises(SampledDatasetError, match="would clip.*lower --gain"):
        make_sampled_dataset(tmp_path / "b", soundfont, programs=[0], notes=[60], velocities=[127], gain=2.0,
                             seconds=0.5, sample_rate=SR)
    assert not (tmp_path / "b" / "data").exists()


def test_sampled_dataset_rejects_bad_arguments_before_rendering(soundfont, tmp_path, capsys):
    for extra, message in ((["--programs", "128"], "program 128"), (["--velocities", "0"], "--velocities"),
                           (["--notes", "50:40"], "--notes"), (["--seconds", "0"], "--seconds")):
        code = make_sampled_dataset_main([str(tmp_path / "out"), "--soundfont", str(soundfont)] + extra)
        assert code == 2 and message in capsys.readouterr().err
    with pytest.raises(SampledDatasetError, match="soundfont .*missing.sf2 not found"):
        make_sampled_dataset(tmp_path / "out", tmp_path / "missing.sf2", notes=[60])
    assert instrument_name(73) == "p073_flute"


def test_midi_variable_length_quantities_are_the_standard_s_examples():
    from vschaos.data.sampled import midi_vlq

    examples = {0: "00", 0x40: "40", 0x7F: "7f", 0x80: "8100", 0x2000: "c000", 0x3FFF: "ff7f", 0x4000: "818000",
                0x1FFFFF: "ffff7f", 0x200000: "81808000", 0x0FFFFFFF: "ffffff7f"}
    assert {value: midi_vlq(value).hex() for value in examples} == examples
