"""Hostile dataset trees (issue 27 part E): a sound file whose name is not UTF-8, ids and floats that Python
reads but a dataset must not (``1_0``, an Arabic-Indic digit, ``inf``), and characters that split lines in
Python but not in an editor. Each is read correctly or reported with file and line, and every report prints on
a strict UTF-8 stream."""
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vschaos.cli.dataset_tools import check_dataset_main, folders_to_metadata_main
from vschaos.data.audio import audio_info, load_audio
from vschaos.data.cache import load_or_build_cache
from vschaos.data.datamodule import SpectralDataModule
from vschaos.data.dataset import load_index, validate_dataset
from vschaos.data.folders import folders_to_metadata
from vschaos.data.metadata import DatasetError, parse_metadata
from vschaos.dsp.transforms import SpectralTransform

SR = 8000
CAFE = os.fsdecode(b"caf\xe9.wav")  # what Python makes of the bytes on POSIX: 'caf\udce9.wav'


def tone(freq: float, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray) -> Path:
    """Written through a Python file object: soundfile cannot open a name that is not UTF-8 itself."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        sf.write(handle, audio, SR, format="WAV", subtype="PCM_16")
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def cafe_tree(tmp_path) -> Path:
    """data/a.wav and data/caf\\xe9.wav (not UTF-8), an 'instrument' task naming both."""
    if os.name != "posix":
        pytest.skip("file names are bytes on POSIX only")
    root = tmp_path / "ds"
    write_wav(root / "data/a.wav", tone(220.0))
    try:
        write_wav(root / "data" / CAFE, tone(330.0))
    except OSError:  # a file system that refuses names that are not UTF-8 (macOS)
        pytest.skip("this file system refuses file names that are not UTF-8")
    write_bytes(root / "metadata/instrument/classes.txt", b"0\tviolin\n1\tpiano\n")
    write_bytes(root / "metadata/instrument/metadata.txt", b"data/a.wav\tviolin\ndata/caf\xe9.wav\tpiano\n")
    return root


def problems_of(root, **kwargs):
    return [str(p) for p in validate_dataset(root, sample_rate=SR, n_fft=256, hop=64, **kwargs).problems]


# ---------------------------------------------------------------------------------- names that are not UTF-8
def test_check_dataset_reads_a_wav_whose_name_is_not_utf8(cafe_tree, capsys):
    assert check_dataset_main([str(cafe_tree), "--sample-rate", str(SR)]) == 0
    out = capsys.readouterr().out
    assert "2 audio files, 1.0 s" in out and "2/2 files labelled" in out and out.rstrip().endswith("OK")


def test_the_audio_of_such_a_file_is_read_exactly(cafe_tree):
    path = cafe_tree / "data" / CAFE
    assert audio_info(path).frames == SR // 2
    with open(path, "rb") as handle:  # the same bytes, decoded through a Python file object
        expected, rate = sf.read(handle, dtype="float32")
    assert rate == SR and np.abs(expected - tone(330.0)).max() < 1e-4
    assert np.array_equal(load_audio(path, SR).numpy(), expected)


def test_such_a_file_is_labelled_by_its_bytes_in_metadata_txt(cafe_tree):
    index = load_index(cafe_tree)
    assert [f.key for f in index.files] == ["data/a.wav", f"data/{CAFE}"]
    labels = index.tasks["instrument"].labels
    assert labels[f"data/{CAFE}"].values.tolist() == [1] and labels["data/a.wav"].values.tolist() == [0]


def test_a_track_file_named_after_such_a_file_is_read(cafe_tree):
    """The pitch extractor names track files after the audio (tracks/caf\\xe9.wav.txt): a track reference may
    hold the bytes of a name too."""
    write_bytes(cafe_tree / "metadata/pitch/tracks" / os.fsdecode(b"caf\xe9.wav.txt"), b"0.0,0.25\t3\n")
    write_bytes(cafe_tree / "metadata/pitch/metadata.txt", b"data/caf\xe9.wav\ttracks/caf\xe9.wav.txt\n")
    pitch = load_index(cafe_tree).tasks["pitch"].labels[f"data/{CAFE}"]
    assert (pitch.onsets.tolist(), pitch.offsets.tolist(), pitch.values.tolist()) == ([0.0], [0.25], [3])


def test_a_label_that_is_not_utf8_is_refused_beside_such_a_name(cafe_tree):
    metadata = write_bytes(cafe_tree / "metadata/instrument/metadata.txt",
                           b"data/a.wav\tviolin\ndata/caf\xe9.wav\tpi\xe0no\n")
    assert problems_of(cafe_tree) == [f"{metadata}:2: not UTF-8 text (byte 0xe0); save the file as UTF-8"]


def test_its_problems_print_with_the_byte_escaped(cafe_tree, capsys):
    write_bytes(cafe_tree / "data" / os.fsdecode(b"bad\xe9.wav"), b"not a sound file")
    assert check_dataset_main([str(cafe_tree), "--sample-rate", str(SR)]) == 1
    out = capsys.readouterr().out
    out.encode("utf-8")  # strict: no surrogate reaches the stream
    assert f"ERROR {cafe_tree}/data/bad\\xe9.wav: unreadable audio: cannot read audio header" in out
    with pytest.raises(DatasetError) as caught:
        load_index(cafe_tree)
    assert f"{cafe_tree}/data/bad\\xe9.wav: unreadable audio" in str(caught.value)
    str(caught.value).encode("utf-8")


def test_a_latin1_metadata_txt_naming_a_utf8_file_says_what_is_wrong(tmp_path):
    root = tmp_path / "ds"
    write_wav(root / "data/café.wav", tone(220.0))
    metadata = write_bytes(root / "metadata/t/metadata.txt", "data/café.wav\t1\n".encode("latin-1"))
    assert problems_of(root) == [
        f"{metadata}:1: audio file 'data/caf\\xe9.wav' not found (byte 0xe9 is not UTF-8: a file name that is "
        f"not UTF-8 is written with the bytes of its name on disk; is metadata.txt saved in another encoding?)"]


def test_the_spectral_cache_builds_and_reopens_for_such_a_file(cafe_tree, tmp_path):
    transform = SpectralTransform(sample_rate=SR, n_fft=256, hop=64)
    files = load_index(cafe_tree).files
    built = load_or_build_cache(transform, files, cafe_tree, progress=False)
    reopened = load_or_build_cache(transform, files, cafe_tree, progress=False)
    assert built.built and not reopened.built and reopened.directory == built.directory
    # the same sound under an ASCII name has the same magnitudes
    plain = tmp_path / "plain"
    write_wav(plain / "data/a.wav", tone(220.0))
    write_wav(plain / "data/b.wav", tone(330.0))
    other = load_or_build_cache(transform, load_index(plain).files, plain, progress=False)
    assert np.array_equal(np.asarray(reopened.magnitudes), np.asarray(other.magnitudes))


def test_the_datamodule_trains_on_such_a_file_with_its_labels(cafe_tree):
    dm = SpectralDataModule(SpectralTransform(sample_rate=SR, n_fft=256, hop=64), {"root": str(cafe_tree)},
                            val_fraction=0.5)
    dm.setup()
    frames = dm.file_labels(f"data/{CAFE}")["instrument"]
    assert len(frames) > 0 and set(frames.tolist()) == {1}


def test_folders_to_metadata_round_trips_names_that_are_not_utf8(tmp_path, capsys):
    if os.name != "posix":
        pytest.skip("file names are bytes on POSIX only")
    root = tmp_path / "ds"
    folder = os.fsdecode(b"vi\xf6lin")
    try:
        write_wav(root / "data" / folder / CAFE, tone(220.0))
    except OSError:
        pytest.skip("this file system refuses file names that are not UTF-8")
    write_wav(root / "data/piano/a.wav", tone(330.0))
    assert folders_to_metadata_main([str(root), "instrument"]) == 0
    assert "2 classes: piano, vi\\xf6lin" in capsys.readouterr().out
    task = root / "metadata/instrument"
    assert (task / "metadata.txt").read_bytes() == b"data/piano/a.wav\t0\ndata/vi\xf6lin/caf\xe9.wav\t1\n"
    assert (task / "classes.txt").read_bytes() == b"0\tpiano\n1\tvi\\xf6lin\n"  # classes.txt stays UTF-8
    labels = load_index(root).tasks["instrument"].labels
    assert labels[f"data/{folder}/{CAFE}"].values.tolist() == [1]
    assert folders_to_metadata(root, "instrument", force=True) == ["piano", "vi\\xf6lin"]  # ids kept


# ---------------------------------------------------------------------------------- ids and floats
@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "ds"
    write_wav(root / "data/a.wav", tone(220.0))
    write_wav(root / "data/b.wav", tone(330.0))
    return root


@pytest.mark.parametrize("token", ["1_0", "\u0663", "+3", "\uff11"])
def test_an_id_that_is_not_ascii_digits_is_refused_with_file_and_line(tree, token):
    metadata = write_bytes(tree / "metadata/t/metadata.txt", f"data/a.wav\t0\ndata/b.wav\t{token}\n".encode())
    assert problems_of(tree) == [
        f"{metadata}:2: task 't': {token!r} is not an integer id (ids are ASCII digits 0-9) and the task has no "
        f"classes.txt (set metadata_callbacks.t.type: float for float labels)"]


def test_an_id_that_is_not_ascii_digits_is_not_a_class_id(tree):
    write_bytes(tree / "metadata/t/classes.txt", b"0\tlow\n1\thigh\n")
    metadata = write_bytes(tree / "metadata/t/metadata.txt", "data/a.wav\t1\ndata/b.wav\t\u0661\n".encode())
    assert problems_of(tree) == [f"{metadata}:2: task 't': unknown class '\u0661' (ids are ASCII digits 0-9) "
                                 f"(classes.txt has ['high', 'low'])"]


def test_a_class_id_that_is_not_ascii_digits_is_refused_in_classes_txt(tree):
    classes = write_bytes(tree / "metadata/t/classes.txt", b"0\tlow\n1_0\thigh\n")
    write_bytes(tree / "metadata/t/metadata.txt", b"data/a.wav\t0\n")
    assert problems_of(tree) == [f"{classes}:2: class id '1_0' is not an integer (ASCII digits 0-9)"]


def test_a_negative_id_is_still_reported_as_negative(tree):
    metadata = write_bytes(tree / "metadata/t/metadata.txt", b"data/a.wav\t-2\n")
    assert problems_of(tree) == [f"{metadata}:1: task 't': id -2 is negative (write 'none' for a missing label)"]


FLOAT_TASK = {"loud": {"type": "float"}}


@pytest.mark.parametrize("token", ["1_0", "\u0663", "inf", "-Infinity", "NAN", "1e999", "0x10", "1.5.2"])
def test_a_float_label_must_be_a_finite_ascii_decimal(tree, token):
    metadata = write_bytes(tree / "metadata/loud/metadata.txt", f"data/a.wav\t1.0\ndata/b.wav\t{token}\n".encode())
    assert problems_of(tree, metadata_callbacks=FLOAT_TASK) == [
        f"{metadata}:2: task 'loud': {token!r} is not a finite decimal number (ASCII, e.g. 440, -1.5 or 4.4e2; "
        f"'none' if missing)"]


@pytest.mark.parametrize("token, value", [("4.4e2", 440.0), ("-1.5", -1.5), (".5", 0.5), ("+2.", 2.0),
                                          ("nan", None), ("none", None)])
def test_float_labels_that_are_read(tree, token, value):
    write_bytes(tree / "metadata/loud/metadata.txt", f"data/a.wav\t{token}\n".encode())
    read = load_index(tree, metadata_callbacks=FLOAT_TASK).tasks["loud"].labels["data/a.wav"].values
    assert np.isnan(read[0]) if value is None else read.tolist() == [value]


@pytest.mark.parametrize("times", ["1_0,2", "0,\u0663", "0x1,2"])
def test_track_times_must_be_ascii_decimals(tree, times):
    track = write_bytes(tree / "metadata/pitch/tracks/a.txt", f"0.0,0.1\t1\n{times}\t2\n".encode())
    write_bytes(tree / "metadata/pitch/metadata.txt", b"data/a.wav\ttracks/a.txt\n")
    assert problems_of(tree) == [f"{track}:2: onset/offset {times!r} are not numbers (ASCII decimals, e.g. 0.25)"]


# ---------------------------------------------------------------------------------- line numbers
def editor_line(data: bytes, needle: bytes) -> int:
    """The line an editor shows ``needle`` on: LFs before it + 1."""
    return data[:data.index(needle)].count(b"\n") + 1


def test_line_numbers_after_a_lone_cr_are_an_editors(tree):
    data = b"data/a.wav\t0\rdata/b.wav\t1\ndata/zz.wav\t2\n"
    metadata = write_bytes(tree / "metadata/t/metadata.txt", data)
    assert editor_line(data, b"data/zz.wav") == 2
    assert problems_of(tree) == [
        f"{metadata}:1: carriage return (CR) inside the line: save the file with LF or CRLF line ends (old Mac "
        f"files end lines with CR alone)",
        f"{metadata}:2: audio file 'data/zz.wav' not found"]


def test_an_old_mac_file_is_not_read_as_one_comment(tree):
    """CR line ends after a comment: read by splitlines() the labels are lines, by LF they would silently be
    part of the comment; the CR is reported instead."""
    metadata = write_bytes(tree / "metadata/t/metadata.txt", b"# labels\rdata/a.wav\t0\rdata/b.wav\t1\r")
    assert [p.split(": ", 1)[0] for p in problems_of(tree)] == [f"{metadata}:1"]


SEPARATORS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", SEPARATORS, ids=[f"U+{ord(c):04X}" for c in SEPARATORS])
@pytest.mark.parametrize("where", ["metadata.txt", "classes.txt", "track file"])
def test_characters_that_split_lines_in_python_are_reported_on_their_line(tree, char, where):
    task = tree / "metadata/t"
    lines = {"metadata.txt": ["data/a.wav\t0", f"data/b.wav\t1{char}x", "data/zz.wav\t1"],
             "classes.txt": ["0\tlow", f"1\thigh{char}x", "2\tmid"],
             "track file": ["0.0,0.1\t0", f"0.1,0.2\t1{char}x", "0.3,0.4\tqq"]}[where]
    files = {"metadata.txt": "metadata.txt", "classes.txt": "classes.txt", "track file": "tracks/a.txt"}
    data = "".join(line + "\n" for line in lines).encode()
    bad = write_bytes(task / files[where], data)
    if where == "classes.txt":
        write_bytes(task / "metadata.txt", b"data/a.wav\t0\n")
    if where == "track file":
        write_bytes(task / "metadata.txt", b"data/a.wav\ttracks/a.txt\n")
    found = problems_of(tree)
    assert found[0] == (f"{bad}:2: control character U+{ord(char):04X} inside the line (some programs take it for "
                        f"a line break): remove it")
    # the line after it is line 3, as in an editor (a further problem on it, where there is one, says so)
    assert editor_line(data, lines[2].encode()) == 3
    assert [p.split(": ", 1)[0] for p in found[1:]] == {"metadata.txt": [f"{bad}:3"], "classes.txt": [],
                                                         "track file": [f"{bad}:3"]}[where]


def test_crlf_files_are_read_as_before(tree):
    write_bytes(tree / "metadata/t/classes.txt", b"0\tlow\r\n1\thigh\r\n")
    write_bytes(tree / "metadata/t/metadata.txt", b"data/a.wav\thigh\r\ndata/b.wav\t0\r\n")
    labels = load_index(tree).tasks["t"].labels
    assert labels["data/a.wav"].values.tolist() == [1] and labels["data/b.wav"].values.tolist() == [0]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_a_utf16_file_is_one_problem_not_one_per_line(tree, encoding):
    metadata = write_bytes(tree / "metadata/t/metadata.txt", "data/a.wav\t0\ndata/b.wav\t1\n".encode(encoding))
    assert problems_of(tree) == [f"{metadata}:1: holds NUL bytes (UTF-16 text?); save the file as UTF-8"]


def test_parse_metadata_splits_lines_as_the_readers_do():
    text = "data/a.wav\t1\x0cx\ndata/b.wav\t2\r\ndata/c.wav\t3\u2028y\n"
    assert parse_metadata(text) == {"data/a.wav": "1\x0cx", "data/b.wav": "2", "data/c.wav": "3\u2028y"}


# ---------------------------------------------------------------------------------- ids the model cannot size
@pytest.mark.parametrize("where", ["metadata.txt", "classes.txt", "track file"])
def test_a_class_id_too_large_for_an_embedding_is_refused_with_file_and_line(tree, where):
    from vschaos.data.metadata import MAX_CLASSES

    big = MAX_CLASSES  # one past the largest id accepted
    metadata = tree / "metadata/t/metadata.txt"
    if where == "classes.txt":
        write_bytes(tree / "metadata/t/classes.txt", f"0\tzero\n{big}\thuge\n".encode())
        write_bytes(metadata, b"data/a.wav\t0\n")
        bad, prefix = tree / "metadata/t/classes.txt", ""
    elif where == "track file":
        write_bytes(tree / "metadata/t/tracks/a.txt", f"0.0,0.1\t0\n0.1,0.2\t{big}\n".encode())
        write_bytes(metadata, b"data/a.wav\ttracks/a.txt\n")
        bad, prefix = tree / "metadata/t/tracks/a.txt", "task 't': "
    else:
        write_bytes(metadata, f"data/a.wav\t{MAX_CLASSES - 1}\ndata/b.wav\t{big}\n".encode())
        bad, prefix = metadata, "task 't': "
    assert problems_of(tree) == [f"{bad}:2: {prefix}class id {big} is too large: ids number the classes from 0, at "
                                 f"most {MAX_CLASSES - 1} (the model has one embedding row per id up to the largest)"]
