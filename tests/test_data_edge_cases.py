"""Data edge cases (issue 14 item 9 and item 2's dataset check): text encodings, a folder where a
file belongs, non-finite track times, non-finite or absurd audio samples. Each is reported with
its file (and line), never as a traceback or a misleading message."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vschaos.data.audio import MAX_SAMPLE_MAGNITUDE, AudioValueError, load_audio
from vschaos.data.cache import load_or_build_cache
from vschaos.data.dataset import load_index, validate_dataset
from vschaos.data.metadata import DatasetError
from vschaos.dsp.transforms import SpectralTransform

SR = 8000


def tree_with(tmp_path, synth, names=("data/a.wav", "data/b.wav")) -> Path:
    root = tmp_path / "ds"
    for i, name in enumerate(names):
        synth.write_wav(root / name, synth.harmonic_tone(220.0 * (i + 1), 0.5, SR), SR)
    return root


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def problems_of(root, **kwargs):
    return [str(p) for p in validate_dataset(root, sample_rate=SR, n_fft=256, hop=64, **kwargs).problems]


# (file with a latin-1 byte, its text, the task's metadata.txt written beside it (None: it is that file), bad line)
LATIN1_FILES = [
    ("metadata/instrument/classes.txt", "0\tviolin\n1\tpiano\n2\tcor anglais \u00e9\n",
     ("metadata/instrument/metadata.txt", b"data/a.wav\t0\n"), 3),
    ("metadata/instrument/metadata.txt", "data/a.wav\t0\ndata/b.wav\tcaf\u00e9\n", None, 2),
    ("metadata/pitch/tracks/a.txt", "0.0,0.2\t1\n# r\u00e9sum\u00e9\n",
     ("metadata/pitch/metadata.txt", b"data/a.wav\ttracks/a.txt\n"), 2),
]


@pytest.mark.parametrize("relative, text, pointer, line", LATIN1_FILES,
                         ids=["classes.txt", "metadata.txt", "track file"])
def test_a_latin1_metadata_file_is_reported_with_file_and_line(tmp_path, synth, relative, text, pointer, line):
    root = tree_with(tmp_path, synth)
    bad = root / relative
    write_bytes(bad, text.encode("latin-1"))
    if pointer is not None:
        write_bytes(root / pointer[0], pointer[1])
    assert problems_of(root) == [f"{bad}:{line}: not UTF-8 text (byte 0xe9); save the file as UTF-8"]


def test_utf8_byte_order_mark_is_tolerated_in_every_metadata_file(tmp_path, synth):
    root = tree_with(tmp_path, synth)
    bom = b"\xef\xbb\xbf"
    write_bytes(root / "metadata/instrument/classes.txt", bom + "0\tviolin\n1\tpiano\n".encode())
    write_bytes(root / "metadata/instrument/metadata.txt", bom + b"data/a.wav\tpiano\ndata/b.wav\t0\n")
    write_bytes(root / "metadata/pitch/tracks/a.txt", bom + b"0.0,0.25\t3\n")
    write_bytes(root / "metadata/pitch/metadata.txt", bom + b"data/a.wav\ttracks/a.txt\n")
    index = load_index(root)
    instrument = index.tasks["instrument"]
    assert instrument.class_names == {0: "violin", 1: "piano"}
    assert instrument.labels["data/a.wav"].values.tolist() == [1]
    assert instrument.labels["data/b.wav"].values.tolist() == [0]
    pitch = index.tasks["pitch"].labels["data/a.wav"]
    assert (pitch.onsets.tolist(), pitch.offsets.tolist(), pitch.values.tolist()) == ([0.0], [0.25], [3])


def test_metadata_txt_that_is_a_folder_is_reported(tmp_path, synth):
    root = tree_with(tmp_path, synth)
    (root / "metadata/instrument/metadata.txt").mkdir(parents=True)
    assert problems_of(root) == [f"{root / 'metadata/instrument/metadata.txt'}: is a folder, expected a text file"]
    with pytest.raises(DatasetError, match="metadata.txt: is a folder"):
        load_index(root, tasks=["instrument"])


def test_classes_txt_and_track_file_that_are_folders_are_reported(tmp_path, synth):
    root = tree_with(tmp_path, synth)
    (root / "metadata/instrument/classes.txt").mkdir(parents=True)
    write_bytes(root / "metadata/instrument/metadata.txt", b"data/a.wav\t0\n")
    (root / "metadata/pitch/tracks/a.txt").mkdir(parents=True)
    write_bytes(root / "metadata/pitch/metadata.txt", b"data/a.wav\ttracks/a.txt\n")
    assert problems_of(root) == [f"{root / 'metadata/instrument/classes.txt'}: is a folder, expected a text file",
                                 f"{root / 'metadata/pitch/tracks/a.txt'}: is a folder, expected a text file"]


@pytest.mark.parametrize("times", ["nan,0.5", "0.1,inf", "-inf,0.2", "0.1,NaN"])
def test_non_finite_track_times_are_reported_as_such(tmp_path, synth, times):
    root = tree_with(tmp_path, synth)
    track = root / "metadata/pitch/tracks/a.txt"
    write_bytes(track, f"0.0,0.05\t1\n{times}\t2\n".encode())
    write_bytes(root / "metadata/pitch/metadata.txt", b"data/a.wav\ttracks/a.txt\n")
    assert problems_of(root) == [f"{track}:2: onset/offset {times!r} must be finite numbers of seconds"]


def write_float_wav(path: Path, audio: np.ndarray, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, SR, subtype=subtype)
    return path


@pytest.mark.parametrize("value, reason", [
    (np.nan, "contains NaN/Inf samples (first at sample 100)"),
    (np.inf, "contains NaN/Inf samples (first at sample 100)"),
    (-np.inf, "contains NaN/Inf samples (first at sample 100)"),
    (1e30, "sample magnitude 1e+30 is beyond 1000 (full scale is 1): rescale the file to about +-1"),
])
def test_non_finite_or_absurd_audio_is_rejected_by_the_dataset_check(tmp_path, synth, value, reason):
    root = tree_with(tmp_path, synth)
    audio = synth.harmonic_tone(330.0, 0.5, SR)
    audio[100] = value
    bad = write_float_wav(root / "data/bad.wav", audio)
    assert problems_of(root) == [f"{bad}: {reason}"]
    assert problems_of(root, scan_samples=False) == []  # headers alone cannot tell


def test_float_wav_scaled_by_1e30_is_reported_not_trained_on(tmp_path, synth):
    """Issue 14's reproduction: a whole float WAV times 1e30 (finite in float32)."""
    root = tree_with(tmp_path, synth)
    bad = write_float_wav(root / "data/loud.wav", synth.harmonic_tone(330.0, 0.5, SR) * np.float32(1e30))
    assert problems_of(root) == [f"{bad}: sample magnitude 5e+29 is beyond 1000 (full scale is 1): "
                                 f"rescale the file to about +-1"]


def test_float_audio_slightly_over_full_scale_is_accepted(tmp_path, synth):
    root = tree_with(tmp_path, synth)
    write_float_wav(root / "data/hot.wav", synth.harmonic_tone(330.0, 0.5, SR) * np.float32(3.0), subtype="DOUBLE")
    assert problems_of(root) == []
    assert float(load_audio(root / "data/hot.wav", SR).abs().max()) == pytest.approx(1.5, rel=1e-6)
    assert MAX_SAMPLE_MAGNITUDE == 1000.0


def test_load_audio_refuses_non_finite_samples_naming_the_file(tmp_path, synth):
    audio = synth.harmonic_tone(330.0, 0.5, SR)
    audio[7] = np.nan
    bad = write_float_wav(tmp_path / "bad.wav", audio)
    with pytest.raises(AudioValueError, match=r"bad\.wav: contains NaN/Inf samples \(first at sample 7\)"):
        load_audio(bad, SR)


def test_cache_build_reports_every_file_with_unusable_samples(tmp_path, synth):
    """Training never fits statistics on NaN audio: the cache build names each bad file, and no
    cache is left behind."""
    root = tree_with(tmp_path, synth)
    for name, value in (("data/nan.wav", np.nan), ("data/z_loud.wav", 1e30)):
        audio = synth.harmonic_tone(330.0, 0.5, SR)
        audio[3] = value
        write_float_wav(root / name, audio)
    transform = SpectralTransform(sample_rate=SR, n_fft=256, hop=64)
    with pytest.raises(DatasetError) as caught:
        load_or_build_cache(transform, load_index(root).files, root, progress=False)
    assert [str(p) for p in caught.value.problems] == [
        f"{root / 'data/nan.wav'}: contains NaN/Inf samples (first at sample 3)",
        f"{root / 'data/z_loud.wav'}: sample magnitude 1e+30 is beyond 1000 (full scale is 1): rescale the file "
        f"to about +-1"]
    assert not list((root / ".vschaos_cache").rglob("index.json"))
