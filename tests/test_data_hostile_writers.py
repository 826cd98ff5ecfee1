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
