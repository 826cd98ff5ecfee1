"""Metadata readers, frame label timing and problem reporting (vschaos/data/metadata.py, dataset.py)."""
from pathlib import Path

import numpy as np
import pytest

from vschaos.data.dataset import frame_labels, load_index, validate_dataset
from vschaos.data.metadata import DatasetError

SR = 8000


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_tree(root: Path, synth, names=("data/cat/a.wav", "data/dog/b.wav", "data/dog/c.wav"), seconds=3.0):
    for i, name in enumerate(names):
        synth.write_wav(root / name, synth.harmonic_tone(220.0 * (i + 1), seconds, SR), SR)
    return root


def test_single_labels_ids_class_names_and_none(tmp_path, synth):
    root = make_tree(tmp_path, synth)
    write_text(root / "metadata/animal/classes.txt", "0\tcat\n1\tdog\n")
    write_text(root / "metadata/animal/metadata.txt", "data/cat/a.wav\tcat\ndata/dog/b.wav\t1\ndata/dog/c.wav\tnone\n")
    index = load_index(root)
    meta = index.tasks["animal"]
    assert [f.key for f in index.files] == ["data/cat/a.wav", "data/dog/b.wav", "data/dog/c.wav"]
    assert meta.labels["data/cat/a.wav"].values.tolist() == [0]
    assert meta.labels["data/dog/b.wav"].values.tolist() == [1]
    assert meta.labels["data/dog/c.wav"].values.tolist() == [-1]
    assert meta.n_classes == 2
    # a single label covers every frame, including frame 0 whose centre is at negative time
    assert frame_labels(meta.labels["data/cat/a.wav"], 5, 256, 64, SR).tolist() == [0] * 5


def test_numeric_int_wins_over_class_name(tmp_path, synth):
    """Octave names are digits ('4' names id 5): an int token is always an id."""
    root = make_tree(tmp_path, synth, names=("data/a.wav",))
    write_text(root / "metadata/octave/classes.txt", "".join(f"{i}\t{i - 1}\n" for i in range(11)))
    write_text(root / "metadata/octave/metadata.txt", "data/a.wav\t4\n")
    assert load_index(root).tasks["octave"].labels["data/a.wav"].values.tolist() == [4]


def test_tracks_with_gaps_honour_offsets(tmp_path, synth):
    root = make_tree(tmp_path, synth, names=("data/a.wav",))
    write_text(root / "metadata/pitch/tracks/a.txt", "0.0,0.5\t3\n1.0,1.5\tnone\n2.0,2.5\t4\n")
    write_text(root / "metadata/pitch/metadata.txt", "data/a.wav\ttracks/a.txt\n")
    labels = load_index(root).tasks["pitch"].labels["data/a.wav"]
    times = np.array([-0.1, 0.0, 0.25, 0.5, 0.75, 1.2, 2.0, 2.49, 2.5, 9.0])
    assert labels.at(times).tolist() == [-1, 3, 3, -1, -1, -1, 4, 4, -1, -1]


def test_frame_labels_at_frame_centres(tmp_path, synth):
    """Frame t's centre is (t*hop + hop - n_fft/2) / sr = 64 (t - 1) / 8000 s for n_fft 256, hop 64.
    Interval [0.5, 1.0): first frame with 64 (t-1) >= 4000 is t = 64; last with 64 (t-1) < 8000 is t = 125."""
    root = make_tree(tmp_path, synth, names=("data/a.wav",))
    write_text(root / "metadata/pitch/tracks/a.txt", "0.5,1.0\t7\n")
    write_text(root / "metadata/pitch/metadata.txt", "data/a.wav\ttracks/a.txt\n")
    labels = frame_labels(load_index(root).tasks["pitch"].labels["data/a.wav"], 200, 256, 64, SR)
    assert labels[63] == -1 and labels[64] == 7 and labels[125] == 7 and labels[126] == -1
    assert np.flatnonzero(labels == 7).tolist() == list(range(64, 126))
    # with hop 128 / n_fft 512 the centre is 128 t - 128 samples: frames 33..63 (4096 >= 4000, 7936 < 8000)
    labels = frame_labels(load_index(root).tasks["pitch"].labels["data/a.wav"], 100, 512, 128, SR)
    assert np.flatnonzero(labels == 7).tolist() == list(range(33, 64))


def test_float_task_from_metadata_callbacks(tmp_path, synth):
    root = make_tree(tmp_path, synth, names=("data/a.wav", "data/b.wav"))
    write_text(root / "metadata/loudness/metadata.txt", "data/a.wav\t0.25\ndata/b.wav\tnone\n")
    callbacks = {"loudness": {"name": "read_single_metadata", "type": "float"}}
    meta = load_index(root, metadata_callbacks=callbacks).tasks["loudness"]
    assert meta.labels["data/a.wav"].values.tolist() == [0.25]
    assert np.isnan(meta.labels["data/b.wav"].values[0])
    assert meta.n_classes is None
    with pytest.raises(DatasetError, match=r"metadata.txt:1: .*'0.25' is not an integer.*type: float"):
        load_index(root)


def test_read_multi_metadata_forces_tracks(tmp_path, synth):
    root = make_tree(tmp_path, synth, names=("data/a.wav",))
    write_text(root / "metadata/pitch/pitch_a.dat", "0,1\t2\n")
    write_text(root / "metadata/pitch/metadata.txt", "data/a.wav\tpitch_a.dat\n")
    meta = load_index(root, metadata_callbacks={"pitch": {"name": "read_multi_metadata"}}).tasks["pitch"]
    assert meta.kinds["data/a.wav"] == "tracks"
    assert meta.labels["data/a.wav"].at(np.array([0.5, 1.5])).tolist() == [2, -1]


def test_every_problem_reported_at_once_with_file_and_line(tmp_path, synth):
    root = make_tree(tmp_path, synth)
    (root / "data/broken.wav").write_bytes(b"RIFF not really a wave file")
    write_text(root / "metadata/animal/classes.txt", "0\tcat\n1\tdog\n")
    write_text(root / "metadata/animal/metadata.txt",
               "data/cat/a.wav\tcat\n"        # 1 fine
               "other/x.wav\tcat\n"           # 2 key outside data/
               "data/missing.wav\tdog\n"      # 3 missing file
               "data/dog/b.wav\tbird\n"       # 4 unknown class
               "data/dog/c.wav\t7\n")         # 5 id out of range
    write_text(root / "metadata/pitch/tracks/a.txt",
               "1.0,2.0\t1\n"                 # 1 fine
               "zero,2.0\t1\n"                # 2 malformed times
               "1.5,2.5\t2\n"                 # 3 overlaps [1, 2)
               "0.2,0.3\t2\n"                 # 4 unsorted
               "no tab here\n")               # 5 malformed line
    write_text(root / "metadata/pitch/metadata.txt", "data/cat/a.wav\ttracks/a.txt\ndata/dog/b.wav\ttracks/nope.txt\n")
    with pytest.raises(DatasetError) as caught:
        load_index(root)
    found = {(Path(p.path).parent.name + "/" + Path(p.path).name, p.line): p.message for p in caught.value.problems}
    expected = {
        ("data/broken.wav", None): "unreadable audio",
        ("animal/metadata.txt", 2): "not a path inside data/",
        ("animal/metadata.txt", 3): "not found",
        ("animal/metadata.txt", 4): "unknown class 'bird'",
        ("animal/metadata.txt", 5): "out of range",
        ("tracks/a.txt", 2): "not numbers",
        ("tracks/a.txt", 3): "overlaps",
        ("tracks/a.txt", 4): "not sorted",
        ("tracks/a.txt", 5): "expected 'onset,offset<TAB>value'",
    }
    for where, text in expected.items():
        assert where in found and text in found[where], (where, found)
    missing_track = [p for p in caught.value.problems if "nope.txt" in p.message]
    assert len(missing_track) == 1 and missing_track[0].line == 2 and missing_track[0].path.endswith("pitch/metadata.txt")
    message = str(caught.value)
    assert f"{root / 'metadata/animal/metadata.txt'}:4: task 'animal': unknown class 'bird'" in message
    assert f"{root / 'metadata/pitch/tracks/a.txt'}:3:" in message
    assert len(caught.value.problems) == 10


def test_bad_classes_file_lines(tmp_path, synth):
    root = make_tree(tmp_path, synth, names=("data/a.wav",))
    write_text(root / "metadata/t/classes.txt", "0\tx\nzero\ty\n0\tz\n")
    write_text(root / "metadata/t/metadata.txt", "data/a.wav\tx\n")
    with pytest.raises(DatasetError) as caught:
        load_index(root)
    lines = sorted((p.line, p.message) for p in caught.value.problems)
    assert [line for line, _ in lines] == [2, 3]
    assert "not an integer" in lines[0][1] and "defined twice" in lines[1][1]


def test_empty_dataset_and_missing_data_dir(tmp_path):
    (tmp_path / "empty/data").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"empty/data: empty dataset"):
        load_index(tmp_path / "empty")
    with pytest.raises(DatasetError, match=r"nodata/data: no data/ folder"):
        (tmp_path / "nodata").mkdir()
        load_index(tmp_path / "nodata")


def test_requested_task_without_metadata(tmp_path, synth):
    root = make_tree(tmp_path, synth, names=("data/a.wav",))
    with pytest.raises(DatasetError, match=r"metadata/pitch/metadata.txt: task 'pitch': metadata.txt not found"):
        load_index(root, tasks=["pitch"])


def test_validate_dataset_counts(tmp_path, synth):
    root = make_tree(tmp_path, synth, names=("data/a.wav", "data/b.wav"), seconds=2.0)
    write_text(root / "metadata/pitch/classes.txt", "".join(f"{i}\tp{i}\n" for i in range(12)))
    write_text(root / "metadata/pitch/tracks/a.txt", "0.5,1.0\t7\n1.0,1.5\tnone\n")
    write_text(root / "metadata/pitch/metadata.txt", "data/a.wav\ttracks/a.txt\n")
    report = validate_dataset(root, sample_rate=SR, n_fft=256, hop=64)
    assert report.ok and report.files == ["data/a.wav", "data/b.wav"]
    assert report.durations == [2.0, 2.0]
    task = report.tasks["pitch"]
    assert task.files_labelled == 1 and task.files_tracks == 1
    assert task.labelled_seconds == pytest.approx(0.5)
    assert task.histogram == {7: 62}  # frames 64..125, as in test_frame_labels_at_frame_centres
    assert task.total_frames == 2 * (16000 // 64 + 256 // 64 - 1)
    assert "7 (p7): 62" in report.format()
