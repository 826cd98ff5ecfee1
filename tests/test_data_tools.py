"""Demo dataset synthesis and the data_tools commands (check_dataset, folders_to_metadata)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vschaos.data.dataset import load_index, validate_dataset
from vschaos.data.demo import INSTRUMENTS, make_demo_dataset
from vschaos.data.metadata import format_classes, format_metadata, parse_metadata
from vschaos.cli.dataset_tools import check_dataset_main, folders_to_metadata_main, make_demo_dataset_main
from vschaos.data.folders import folders_to_metadata
from vschaos.notes import octave_classes, pitch_classes

REPO = Path(__file__).resolve().parents[1]
DEMO_SR = 16000


def tree_bytes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "ds", seed=0, sample_rate=DEMO_SR, minutes=0.4,
                             files_per_instrument=1)


def test_demo_is_reproducible_from_seed(demo, tmp_path):
    again = make_demo_dataset(tmp_path / "again", seed=0, sample_rate=DEMO_SR, minutes=0.4, files_per_instrument=1)
    assert tree_bytes(demo) == tree_bytes(again)
    other = make_demo_dataset(tmp_path / "other", seed=1, sample_rate=DEMO_SR, minutes=0.4, files_per_instrument=1)
    assert tree_bytes(other)["data/bell/bell_00.wav"] != tree_bytes(demo)["data/bell/bell_00.wav"]


def test_demo_has_tasks_and_passes_validation(demo):
    report = validate_dataset(demo, sample_rate=DEMO_SR)
    assert report.ok, report.format()
    assert sorted(report.tasks) == ["instrument", "octave", "pitch"]
    assert report.total_seconds == pytest.approx(24.0, abs=0.01)
    assert report.tasks["instrument"].n_classes == len(INSTRUMENTS) and report.tasks["instrument"].files_single == 4
    assert report.tasks["pitch"].n_classes == 12 and report.tasks["octave"].n_classes == 11
    pitch = report.tasks["pitch"]
    assert pitch.files_tracks == 4 and 0 < pitch.labelled_frames < pitch.total_frames  # rests are 'none'
    assert (demo / "metadata/octave/classes.txt").read_text().splitlines()[5] == "5\t4"
    assert (demo / "metadata/pitch/classes.txt").read_text().splitlines()[9] == "9\tA"
    # the demo names classes exactly as the pitch extractor does
    assert (demo / "metadata/pitch/classes.txt").read_text() == format_classes(pitch_classes())
    assert (demo / "metadata/octave/classes.txt").read_text() == format_classes(octave_classes())
    # metadata.txt keeps the instruments' order (brass before bell), as the demo always wrote it
    instrument_text = (demo / "metadata/instrument/metadata.txt").read_text()
    assert list(parse_metadata(instrument_text))[0] == "data/brass/brass_00.wav"
    assert format_metadata(parse_metadata(instrument_text), sort_keys=False) == instrument_text


def test_demo_pitch_labels_match_the_audio(demo):
    """Each labelled note's strongest spectral peak is at the labelled pitch class and octave."""
    index = load_index(demo)
    checked = 0
    for instrument in ("brass", "clarinet", "flute"):
        key = f"data/{instrument}/{instrument}_00.wav"
        audio, rate = sf.read(demo / key)
        pitch, octave = index.tasks["pitch"].labels[key], index.tasks["octave"].labels[key]
        for onset, offset, pitch_class, octave_id in zip(pitch.onsets, pitch.offsets, pitch.values, octave.values):
            if pitch_class < 0:
                assert octave_id == -1
                continue
            segment = audio[int(onset * rate):int(offset * rate)]
            spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), n=1 << 17))
            midi = int(round(69 + 12 * np.log2(np.argmax(spectrum) * rate / (1 << 17) / 440.0)))
            assert (midi % 12, midi // 12) == (pitch_class, octave_id), (key, onset)
            checked += 1
    assert checked >= 10


def test_demo_has_silent_gaps(demo):
    index = load_index(demo)
    key = "data/flute/flute_00.wav"
    audio, rate = sf.read(demo / key)
    labels = index.tasks["pitch"].labels[key]
    rests = [(a, b) for a, b, v in zip(labels.onsets, labels.offsets, labels.values) if v < 0]
    assert rests and rests[0][0] == 0.0
    start, stop = rests[0]
    assert np.max(np.abs(audio[int(start * rate):int(stop * rate)])) < 1e-3


def test_check_dataset_exit_codes(demo, tmp_path, capsys):
    assert check_dataset_main([str(demo), "--sample-rate", str(DEMO_SR), "--tasks", "pitch"]) == 0
    out = capsys.readouterr().out
    assert "task 'pitch' (int, 12 classes)" in out and out.strip().endswith("OK")
    broken = tmp_path / "broken"
    (broken / "data").mkdir(parents=True)
    sf.write(broken / "data/x.wav", np.zeros(800, np.float32), 8000)
    (broken / "metadata/t").mkdir(parents=True)
    (broken / "metadata/t/metadata.txt").write_text("data/x.wav\t1\ndata/gone.wav\t2\n")
    assert check_dataset_main([str(broken)]) == 1
    out = capsys.readouterr().out
    assert f"{broken / 'metadata/t/metadata.txt'}:2: audio file 'data/gone.wav' not found" in out
    assert "1 problem(s) found" in out


def test_check_dataset_script_runs(tmp_path):
    (tmp_path / "data").mkdir()
    result = subprocess.run([sys.executable, str(REPO / "data_tools/check_dataset.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "empty dataset" in result.stdout


def test_folders_to_metadata(tmp_path, capsys):
    for key in ("data/violin/a.wav", "data/violin/sub/b.wav", "data/cello/c.wav", "data/loose.wav"):
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / key, np.zeros(400, np.float32), 8000)
    assert folders_to_metadata(tmp_path, "instrument") == ["cello", "violin"]
    task = tmp_path / "metadata/instrument"
    assert (task / "classes.txt").read_text() == "0\tcello\n1\tviolin\n"
    assert (task / "metadata.txt").read_text() == (
        "data/cello/c.wav\t0\ndata/loose.wav\tnone\ndata/violin/a.wav\t1\ndata/violin/sub/b.wav\t1\n")
    index = load_index(tmp_path)
    assert index.tasks["instrument"].labels["data/violin/sub/b.wav"].values.tolist() == [1]
    with pytest.raises(FileExistsError, match="--force"):
        folders_to_metadata(tmp_path, "instrument")
    assert folders_to_metadata_main([str(tmp_path), "instrument"]) == 1
    assert "exists" in capsys.readouterr().err
    (tmp_path / "data/viola").mkdir()
    sf.write(tmp_path / "data/viola/d.wav", np.zeros(400, np.float32), 8000)
    assert folders_to_metadata_main([str(tmp_path), "instrument", "--force"]) == 0
    # existing ids kept (a model trained on violin = 1 still means violin), the new folder appended
    assert (task / "classes.txt").read_text() == "0\tcello\n1\tviolin\n2\tviola\n"
    assert "data/viola/d.wav\t2\n" in (task / "metadata.txt").read_text()


def test_folders_to_metadata_force_keeps_hand_edited_class_ids(tmp_path):
    for key in ("data/violin/a.wav", "data/cello/c.wav", "data/harp/h.wav"):
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / key, np.zeros(400, np.float32), 8000)
    task = tmp_path / "metadata/instrument"
    task.mkdir(parents=True)
    (task / "classes.txt").write_text("3\tviolin\n7\tcello\n")
    (task / "metadata.txt").write_text("data/violin/a.wav\t3\n")
    assert folders_to_metadata(tmp_path, "instrument", force=True) == ["violin", "cello", "harp"]
    assert (task / "classes.txt").read_text() == "3\tviolin\n7\tcello\n8\tharp\n"
    assert parse_metadata((task / "metadata.txt").read_text()) == {
        "data/cello/c.wav": "7", "data/harp/h.wav": "8", "data/violin/a.wav": "3"}
    (task / "classes.txt").write_text("x\tviolin\n")
    with pytest.raises(ValueError, match="cannot keep the class ids of .*classes.txt.*not an integer"):
        folders_to_metadata(tmp_path, "instrument", force=True)


def test_check_dataset_counts_frames_with_a_named_transform(demo, capsys):
    assert check_dataset_main([str(demo), "--tasks", "pitch"]) == 0  # default dgt_mid at its 44.1 kHz
    assert "frames counted with n_fft 2048, hop 512, sample rate 44100" in capsys.readouterr().out
    assert check_dataset_main([str(demo), "--transform", "demo", "--tasks", "pitch"]) == 0
    assert "frames counted with n_fft 1024, hop 256, sample rate 22050" in capsys.readouterr().out
    assert check_dataset_main([str(demo), "--transform", "dgt_low", "--sample-rate", str(DEMO_SR)]) == 0
    assert f"frames counted with n_fft 1024, hop 256, sample rate {DEMO_SR}" in capsys.readouterr().out


def test_check_dataset_unknown_transform_lists_the_available_ones(demo, capsys):
    assert check_dataset_main([str(demo), "--transform", "dgt_huge"]) == 2
    err = capsys.readouterr().err
    assert "unknown transform 'dgt_huge'" in err
    assert all(name in err for name in ("demo", "dgt_low", "dgt_mid", "dgt_high"))


def test_make_demo_dataset_main_writes_the_same_bytes_as_the_function(demo, tmp_path, capsys):
    out = tmp_path / "cli"
    assert make_demo_dataset_main([str(out), "--seed", "0", "--sample-rate", str(DEMO_SR), "--minutes", "0.4",
                                   "--files-per-instrument", "1"]) == 0
    assert f"demo dataset written to {out}" in capsys.readouterr().out
    assert tree_bytes(out) == tree_bytes(demo)
    assert make_demo_dataset_main([str(tmp_path / "short"), "--minutes", "0.01"]) == 1
    assert "too short" in capsys.readouterr().err


def test_make_demo_dataset_refuses_an_existing_metadata_folder_without_force(tmp_path, capsys):
    own = tmp_path / "ds/metadata/instrument/metadata.txt"
    own.parent.mkdir(parents=True)
    own.write_text("data/mine.wav\t0\n")
    args = [str(tmp_path / "ds"), "--sample-rate", str(DEMO_SR), "--minutes", "0.4", "--files-per-instrument", "1"]
    assert make_demo_dataset_main(args) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'ds/metadata'} already holds instrument" in err and "--force" in err
    assert own.read_text() == "data/mine.wav\t0\n" and not (tmp_path / "ds/data").exists()  # nothing written
    assert make_demo_dataset_main(args + ["--force"]) == 0
    assert own.read_text().startswith("data/brass/brass_00.wav\t0\n")


def test_make_demo_dataset_script_defaults(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "data_tools/make_demo_dataset.py"), "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "default 8:" in result.stdout and "files per instrument (default 8)" in result.stdout


def test_demo_script_checks_the_dataset_with_the_transform_it_trains_with():
    import re

    from omegaconf import OmegaConf

    from vschaos.cli.train import compose_config
    from vschaos.cli.dataset_tools import load_transform_config

    script = (REPO / "demo.sh").read_text()
    preset = re.search(r"train_model\.py --config-name (\w+)", script).group(1)
    checked = re.search(r"check_dataset\.py demo_data --transform (\w+)", script)
    assert checked is not None, "demo.sh must pass --transform to check_dataset.py"
    trained = OmegaConf.to_container(compose_config(preset, ["data.dataset.root=unused"]).transform, resolve=True)
    assert OmegaConf.to_container(load_transform_config(checked.group(1))) == trained


def test_train_py_is_an_alias_of_train_model_py():
    """vschaos2's README runs ``python train.py --config-name ...``: the same command, the same answer."""
    def run(script: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True,
                              timeout=300)

    alias, original = run("train.py"), run("train_model.py")
    assert alias.returncode == original.returncode == 0, alias.stderr
    assert "--config-name" in alias.stdout
    assert alias.stdout.replace("train.py", "train_model.py") == original.stdout
