"""The dataset writers (folders_to_metadata.py, extract_pitch.py) on careless trees (issue 27): a root that does
not exist is named as such, and entries the readers refuse are reported, not silently skipped."""
import os

import pytest

from vschaos.cli.dataset_tools import folders_to_metadata_main
from vschaos.cli.extract_pitch import main as extract_pitch_main


def test_folders_to_metadata_on_a_missing_root_says_it_has_no_sound_files(tmp_path, capsys):
    assert folders_to_metadata_main([str(tmp_path / "missing"), "inst"]) == 1
    assert capsys.readouterr().err == f"error: no sound files under {tmp_path}/missing/data\n"
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_extract_pitch_reports_a_fifo_named_like_a_sound_file(tmp_path, capsys):
    (tmp_path / "ds" / "data").mkdir(parents=True)
    os.mkfifo(tmp_path / "ds" / "data" / "x.flac")
    assert extract_pitch_main([str(tmp_path / "ds"), "--quiet"]) == 1
    assert capsys.readouterr().err == (
        f"pitch extraction: 0 labelled, 0 already labelled (skipped), 1 failed\n"
        f"  FAILED data/x.flac: {tmp_path}/ds/data/x.flac: is not a regular file (a FIFO, socket or device): not read\n")


def test_extract_pitch_relabels_a_file_whose_track_reference_climbs_out(tmp_path, synth):
    from vschaos.data.metadata import parse_metadata
    from vschaos.pitch import extract_dataset

    root = tmp_path / "ds"
    synth.write_wav(root / "data" / "tone.wav", synth.harmonic_tone(440.0, 0.3, 16000), 16000)
    (tmp_path / "elsewhere.txt").write_text("0.0,0.3\t9\n")
    for task in ("pitch", "octave"):
        (root / "metadata" / task).mkdir(parents=True)
        (root / "metadata" / task / "metadata.txt").write_text("data/tone.wav\ttracks/../../../../elsewhere.txt\n")
    report = extract_dataset(root, model="tiny")
    assert report.processed == ["data/tone.wav"] and report.skipped == []
    entries = parse_metadata((root / "metadata" / "pitch" / "metadata.txt").read_text())
    assert entries == {"data/tone.wav": "tracks/tone.wav.txt"}


@pytest.mark.parametrize("name, shown, what", [("a\nb.wav", "a\\nb.wav", "U+000A (a control character)"),
                                               ("c\td.wav", "c\\td.wav", "U+0009 (TAB)")])
def test_a_file_name_metadata_txt_cannot_hold_is_refused_in_one_line(tmp_path, synth, capsys, name, shown, what):
    root = tmp_path / "ds"
    synth.write_wav(root / "data" / "violin" / name, synth.harmonic_tone(440.0, 0.3, 16000), 16000)
    synth.write_wav(root / "data" / "violin" / "ok.wav", synth.harmonic_tone(440.0, 0.3, 16000), 16000)
    expected = f"{root}/data/violin/{shown}: its name holds {what}, which a metadata.txt line cannot hold: rename the file"
    assert folders_to_metadata_main([str(root), "inst"]) == 1
    assert capsys.readouterr().err == f"error: {expected}\n"
    assert not (root / "metadata").exists()
    assert extract_pitch_main([str(root), "--quiet", "--model", "tiny"]) == 1
    assert capsys.readouterr().err == (f"pitch extraction: 1 labelled, 0 already labelled (skipped), 1 failed\n"
                                       f"  FAILED data/violin/{shown}: {expected}\n")
    assert (root / "metadata" / "pitch" / "metadata.txt").read_text() == "data/violin/ok.wav\ttracks/violin/ok.wav.txt\n"


def test_problems_name_such_a_file_on_one_line(tmp_path):
    from vschaos.data.problems import Problem, quoted

    assert str(Problem("data/a\nb.wav", 3, "x")) == "data/a\\nb.wav:3: x"
    assert quoted("data/a\x1bb.wav") == "'data/a\\x1bb.wav'"
