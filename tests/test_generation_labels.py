"""Input collection, label parsing/resolution and label sources for generation (no model needed)."""
from pathlib import Path

import pytest
import torch

from vschaos.dsp.transforms import SpectralTransform
from vschaos.generation.errors import GenerationError
from vschaos.generation.labels import (TrainingMetadata, labels_for_frames, load_class_names,
                                       parse_label_arguments, resolve_label_values, user_label_to_id)
from vschaos.generation.reconstruct import collect_inputs, metrics_csv, resample_exact
from vschaos.generation.synthesis import hold_last_frame, path_seed


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_collect_inputs_mirrors_folders_and_renames_clashes(tmp_path):
    folder = tmp_path / "folder"
    touch(folder / "b.wav")
    touch(folder / "a.aif")
    touch(folder / "deep" / "x" / "c.FLAC")
    touch(folder / "notes.txt")
    single = touch(tmp_path / "elsewhere" / "a.wav")
    inputs, problems = collect_inputs([folder, single, tmp_path / "nope.wav"])
    outputs = [item.relative_output.as_posix() for item in inputs]
    assert outputs == ["a.wav", "b.wav", "deep/x/c.wav", "a-2.wav"]
    assert inputs[3].path == single
    assert len(problems) == 1 and "nope.wav" in problems[0]
    (tmp_path / "empty").mkdir()
    _, problems = collect_inputs([tmp_path / "empty"])
    assert "no sound files" in problems[0]


def test_parse_and_resolve_labels_as_a_musician_writes_them():
    raw = parse_label_arguments(["pitch=A", " octave = 4 "])
    assert raw == {"pitch": "A", "octave": "4"}
    names = load_class_names(None, {"pitch": 12, "octave": 11, "instrument": 4})
    assert names["pitch"][9] == "A" and names["octave"][5] == "4" and "instrument" not in names
    dims = {"pitch": 12, "octave": 11}
    # octave=4 is octave 4 (A4 = 440 Hz: pitch id 9, octave id midi // 12 = 5)
    assert resolve_label_values(raw, dims, names) == {"pitch": 9, "octave": 5}
    assert resolve_label_values({"pitch": "Bb", "octave": "-1"}, dims, names) == {"pitch": 10, "octave": 0}
    # raw ids only with the id: prefix
    assert resolve_label_values({"pitch": "id:9", "octave": "id:5"}, dims, names) == {"pitch": 9, "octave": 5}
    with pytest.raises(GenerationError) as info:
        resolve_label_values({"pitch": "12", "octave": "X", "colour": "1"}, dims, names)
    message = str(info.value)
    assert "pitch=12: no pitch class is named '12'" in message and "pitch=id:N (ids 0..11)" in message
    assert "octave=X: no octave class is named 'X' (names: -1, 0, 1," in message and "'colour'" in message
    for bad in (["pitch"], ["=3"], ["pitch=1", "pitch=2"]):
        with pytest.raises(GenerationError):
            parse_label_arguments(bad)


def test_user_label_never_falls_back_to_an_id_where_names_exist():
    octave_names = dict(load_class_names(None, {"octave": 11})["octave"])
    assert user_label_to_id("octave", "9", 11, octave_names) == 10
    with pytest.raises(ValueError, match="no octave class is named '10'"):
        user_label_to_id("octave", "10", 11, octave_names)
    with pytest.raises(ValueError, match="out of range, task 'octave' has ids 0..10"):
        user_label_to_id("octave", "id:11", 11, octave_names)
    with pytest.raises(ValueError, match="'id:' must be followed by an integer"):
        user_label_to_id("octave", "id:four", 11, octave_names)
    # a class whose name is an integer other than its id: the name wins
    shuffled = {0: "2", 1: "0", 2: "1"}
    assert [user_label_to_id("t", v, 3, shuffled) for v in ("0", "1", "2", "id:0")] == [1, 2, 0, 0]
    # a flat is only an alias where it is not a class name itself
    assert user_label_to_id("t", "Bb", 2, {0: "A#", 1: "Bb"}) == 1


def test_user_label_without_class_names_is_an_id():
    assert user_label_to_id("velocity", "3", 8, None) == 3
    assert user_label_to_id("velocity", "id:3", 8, {}) == 3
    with pytest.raises(ValueError, match="out of range, task 'velocity' has ids 0..7"):
        user_label_to_id("velocity", "8", 8, None)
    with pytest.raises(ValueError, match="has no class names .* give a class id"):
        user_label_to_id("velocity", "loud", 8, None)


def test_class_names_come_from_the_dataset(tmp_path):
    classes = tmp_path / "metadata" / "instrument" / "classes.txt"
    classes.parent.mkdir(parents=True)
    classes.write_text("0\tbell\n1\tflute\n")
    names = load_class_names(tmp_path, {"instrument": 2})
    assert resolve_label_values({"instrument": "flute"}, {"instrument": 2}, names) == {"instrument": 1}


def test_label_sources_in_order(tmp_path):
    root = tmp_path / "dataset"
    wav = touch(root / "data" / "a.wav")
    outside = touch(tmp_path / "b.wav")
    meta = root / "metadata" / "pitch"
    (meta / "tracks").mkdir(parents=True)
    (meta / "metadata.txt").write_text("data/a.wav\ttracks/a.txt\n")
    # pitch 3 during the first half second, then 7 until 1 s, then nothing
    (meta / "tracks" / "a.txt").write_text("0.0,0.5\t3\n0.5,1.0\t7\n")
    metadata = TrainingMetadata(root, ["pitch"], None, [wav, outside])
    transform = SpectralTransform(sample_rate=100, n_fft=64, hop=16)  # frame t centred at (16 t - 16) / 100 s
    both = dict(encoder_tasks=["pitch"], decoder_tasks=["pitch"], metadata=metadata)
    labels = labels_for_frames(10, transform, fixed={}, path=wav, **both)["pitch"]
    centres = (torch.arange(10) * 16 + 16 - 32) / 100.0
    expected = torch.where(centres < 0, -1, torch.where(centres < 0.5, 3, torch.where(centres < 1.0, 7, -1)))
    assert torch.equal(labels, expected.long())
    # --labels win over metadata
    fixed = labels_for_frames(10, transform, fixed={"pitch": 1}, path=wav, **both)["pitch"]
    assert torch.equal(fixed, torch.ones(10, dtype=torch.long))
    # a predicted decoder task is left to the model's predictor
    assert labels_for_frames(10, transform, fixed={}, encoder_tasks=[], decoder_tasks=["pitch"],
                             predicted_tasks=["pitch"], metadata=metadata, path=wav) == {}
    # outside the tree: no source
    with pytest.raises(GenerationError, match="--labels pitch=VALUE"):
        labels_for_frames(10, transform, fixed={}, path=outside, **both)


def test_small_helpers():
    audio = torch.arange(10, dtype=torch.float32)
    assert torch.equal(resample_exact(audio, 100, 100, 8), audio[:8])
    assert resample_exact(audio, 100, 100, 12)[-2:].abs().sum() == 0
    assert resample_exact(audio, 100, 200, 20).shape == (20,)
    magnitude = torch.rand(5, 3)
    held = hold_last_frame(magnitude, 8)
    assert held.shape == (8, 3) and torch.equal(held[5:], magnitude[-1:].expand(3, -1))
    assert path_seed(0, "sin", 1) == path_seed(0, "sin", 1) != path_seed(0, "sin", 2)
    text = metrics_csv([{"input": "a.wav", "output": "a.wav", "seconds": 1.0, "spectral_convergence": 0.5,
                         "log_spectral_distance_db": 3.0, "model_spectral_convergence": 0.25,
                         "model_log_spectral_distance_db": 2.0}])
    assert text.splitlines()[1] == "a.wav,a.wav,1,0.5,3,0.25,2"


def test_collect_inputs_never_gives_two_inputs_one_output_name(tmp_path):
    """a/x.wav, b/x.wav and c/x-2.wav: b's renamed output must not be c's (it was overwritten by it)."""
    files = [tmp_path / "a" / "x.wav", tmp_path / "b" / "x.wav", tmp_path / "c" / "x-2.wav", tmp_path / "d" / "X.wav"]
    for path in files:
        path.parent.mkdir()
        path.write_bytes(b"")
    inputs, problems = collect_inputs(files)
    names = [item.relative_output.as_posix() for item in inputs]
    assert problems == [] and names == ["x.wav", "x-2.wav", "x-2-2.wav", "X-3.wav"]
    assert len({name.lower() for name in names}) == len(names)
