"""A careless or hostile dataset tree (issue 27): links that leave the dataset root or loop, FIFOs and folders
where files are expected, oversized text files, invisible characters, keys that climb out of data/, names that
differ only in Unicode normalisation or case. Each is one problem naming the file (and line), never a hang,
never a traceback, never a read outside the dataset root."""
import os
import signal
import struct
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vschaos.cli.dataset_tools import check_dataset_main
from vschaos.data import textlines
from vschaos.data.dataset import load_index, validate_dataset

SR = 8000


def write_wav(path: Path, freq: float = 220.0, seconds: float = 0.25) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    with open(path, "wb") as handle:  # a Python file object: any name the file system takes
        sf.write(handle, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR, format="WAV",
                 subtype="PCM_16")
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def problems_of(root, **kwargs):
    return [str(p) for p in validate_dataset(root, sample_rate=SR, n_fft=256, hop=64, **kwargs).problems]


@pytest.fixture
def no_hang():
    """Fails the test (instead of hanging the suite) if a read blocks for more than 5 s."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("needs POSIX timers")

    def blocked(signum, frame):
        raise TimeoutError("a dataset read blocked")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "ds"
    write_wav(root / "data/a.wav")
    write_wav(root / "data/b.wav", 330.0)
    return root


# ---------------------------------------------------------------------------------- text files that are not files
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("name", ["metadata.txt", "classes.txt", "tracks/a.txt"])
def test_a_fifo_where_a_text_file_is_expected_is_one_problem_not_a_hang(tree, name, no_hang):
    write_bytes(tree / "metadata/t/metadata.txt", b"data/a.wav\ttracks/a.txt\n")
    write_bytes(tree / "metadata/t/tracks/a.txt", b"0.0,0.1\t0\n")
    write_bytes(tree / "metadata/t/classes.txt", b"0\tx\n")
    fifo = tree / "metadata/t" / name
    fifo.unlink()
    os.mkfifo(fifo)
    assert problems_of(tree) == [f"{fifo}: is not a regular file (a FIFO, socket or device), expected a text file"]


def test_a_text_file_larger_than_the_limit_is_refused_before_it_is_read(tree, monkeypatch):
    metadata = write_bytes(tree / "metadata/t/metadata.txt", b"data/a.wav\t" + b"1" * 5000 + b"\n")
    monkeypatch.setattr(textlines, "MAX_TEXT_BYTES", 4096)
    assert problems_of(tree) == [f"{metadata}: is 5012 bytes, more than a metadata text file may hold (4096 bytes): "
                                 f"is it the right file?"]


def test_the_limit_holds_a_large_dataset():
    line = len(b"data/instrument/some_long_recording_name_0000001.wav\ttracks/some_long_recording_name.wav.txt\n")
    assert textlines.MAX_TEXT_BYTES // line > 1_000_000


@pytest.mark.parametrize("text, line", [(b"data/a.wav\t0\n\xef\xbb\xbfdata/b.wav\t0\n", 2),
                                        (b"data/a.wav\t\xef\xbb\xbf0\n", 1)])
def test_a_byte_order_mark_inside_the_file_is_a_problem_on_its_line(tree, text, line):
    metadata = write_bytes(tree / "metadata/t/metadata.txt", text)
    assert problems_of(tree) == [f"{metadata}:{line}: byte-order mark U+FEFF inside the file (two files joined?): "
                                 f"remove it, it is invisible in an editor but makes a different key or value"]


def test_a_leading_byte_order_mark_is_still_dropped(tree):
    write_bytes(tree / "metadata/t/metadata.txt", b"\xef\xbb\xbfdata/a.wav\t0\ndata/b.wav\t1\n")
    labels = load_index(tree).tasks["t"].labels
    assert labels["data/a.wav"].values.tolist() == [0] and labels["data/b.wav"].values.tolist() == [1]


# ---------------------------------------------------------------------------------- links, FIFOs, folders in data/
@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder beside the dataset, which it must never read: a sound file, a task's files."""
    folder = tmp_path / "outside"
    write_wav(folder / "secret.wav", 440.0)
    write_bytes(folder / "metadata.txt", b"data/a.wav\t7\n")
    write_bytes(folder / "classes.txt", b"7\tsecret\n")
    return folder


def outside_problem(path, real) -> str:
    return (f"{path}: links outside the dataset root (to {real}): not read; copy it into the dataset, or make the "
            f"folder that holds it the dataset root")


@pytest.mark.parametrize("link, target", [("data/s.wav", "secret.wav"), ("data/sub", ".")])
def test_a_link_in_data_to_sounds_on_another_disk_is_read(tree, outside, link, target):
    """Musicians keep sounds on another disk and link them into data/: followed, read like the others."""
    os.symlink((outside / target).resolve(), tree / link)
    assert problems_of(tree) == []
    keys = [f.key for f in load_index(tree).files]
    assert keys == sorted(["data/a.wav", "data/b.wav", "data/s.wav" if link == "data/s.wav" else "data/sub/secret.wav"])


def test_a_link_to_a_device_is_a_problem_never_opened(tree, monkeypatch):
    os.symlink("/dev/zero", tree / "data/z.wav")
    opened = []
    from vschaos.data import audio
    real_info = audio.sf.info
    monkeypatch.setattr(audio.sf, "info", lambda name, *a, **k: opened.append(os.fsdecode(name)) or
                        real_info(name, *a, **k))
    assert problems_of(tree) == [f"{tree / 'data/z.wav'}: is not a regular file (a FIFO, socket or device): not read"]
    assert sorted(opened) == sorted(2 * [str(tree / "data/a.wav"), str(tree / "data/b.wav")])  # header, scan
    assert check_dataset_main([str(tree), "--sample-rate", str(SR)]) == 1


def test_data_itself_linked_to_another_disk_is_read(tmp_path, outside):
    root = tmp_path / "ds"
    root.mkdir()
    os.symlink(outside, root / "data")
    assert problems_of(root) == []
    assert [f.key for f in load_index(root).files] == ["data/secret.wav"]


@pytest.mark.parametrize("part", ["metadata/t", "metadata/t/metadata.txt", "metadata/t/classes.txt"])
def test_metadata_linking_out_of_the_root_is_refused_not_read(tree, outside, part):
    write_bytes(tree / "metadata/t/metadata.txt", b"data/a.wav\t0\n")
    write_bytes(tree / "metadata/t/classes.txt", b"0\tzero\n")
    target = outside / Path(part).name if part != "metadata/t" else outside
    link = tree / part
    if link.is_dir():
        for child in link.iterdir():
            child.unlink()
        link.rmdir()
    else:
        link.unlink()
    os.symlink(target, link)
    found = problems_of(tree)
    assert found == [outside_problem(link, target.resolve())]
    assert "secret" not in " ".join(found)  # nothing of the files outside is shown


def test_a_link_loop_ends_the_walk_with_one_problem_each(tree, no_hang):
    os.symlink(tree / "data", tree / "data/loop")  # a folder link back to data/
    os.symlink("l2.wav", tree / "data/l1.wav")     # two file links naming each other
    os.symlink("l1.wav", tree / "data/l2.wav")
    assert problems_of(tree) == [
        f"{tree}/data/l1.wav: is a link that leads nowhere (its target is missing, or links form a loop)",
        f"{tree}/data/l2.wav: is a link that leads nowhere (its target is missing, or links form a loop)",
        f"{tree}/data/loop: links to a folder already walked ({tree}/data): left out, so that no file is read twice "
        f"and a loop of links ends"]


def test_a_link_to_a_folder_inside_the_root_is_walked(tree):
    write_wav(tree / "elsewhere/c.wav", 550.0)
    os.symlink("../elsewhere", tree / "data/more")
    write_bytes(tree / "metadata/t/metadata.txt", b"data/more/c.wav\t2\n")
    index = load_index(tree)
    assert [f.key for f in index.files] == ["data/a.wav", "data/b.wav", "data/more/c.wav"]
    assert index.tasks["t"].labels["data/more/c.wav"].values.tolist() == [2]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_a_sound_file_is_a_problem_not_a_hang(tree, no_hang):
    os.mkfifo(tree / "data/x.wav")
    write_bytes(tree / "metadata/t/metadata.txt", b"data/a.wav\t0\ndata/x.wav\t1\n")
    assert problems_of(tree) == [f"{tree}/data/x.wav: is not a regular file (a FIFO, socket or device): not read"]


def test_a_folder_named_like_a_sound_file_is_walked(tree):
    write_wav(tree / "data/x.wav/inner.wav", 550.0)
    assert [f.key for f in load_index(tree).files] == ["data/a.wav", "data/b.wav", "data/x.wav/inner.wav"]


@pytest.mark.parametrize("task", ["..", "../../outside", "a/b", "."])
def test_a_task_name_that_is_not_one_folder_is_refused(tree, outside, task):
    assert problems_of(tree, tasks=[task]) == [
        f"{tree}/metadata: task name '{task}' is not the name of a folder in metadata/"]


# ---------------------------------------------------------------------------------- how a key finds its file
NFD = unicodedata.normalize("NFD", "café.wav")  # as macOS's HFS+ stores the name: e + U+0301
NFC = unicodedata.normalize("NFC", "café.wav")


def test_a_key_in_another_unicode_normalisation_finds_the_file(tree):
    write_wav(tree / "data" / NFD, 550.0)
    write_bytes(tree / "metadata/t/metadata.txt", f"data/{NFC}\t3\n".encode())
    index = load_index(tree)
    assert index.tasks["t"].labels[f"data/{NFD}"].values.tolist() == [3]  # under the file's own key
    assert f"data/{NFC}" not in index.tasks["t"].labels


def test_both_normalisations_of_one_file_are_one_file_labelled_twice(tree):
    write_wav(tree / "data" / NFD, 550.0)
    metadata = write_bytes(tree / "metadata/t/metadata.txt", f"data/{NFD}\t3\ndata/{NFC}\t4\n".encode())
    assert problems_of(tree) == [f"{metadata}:2: 'data/{NFC}' already labelled on line 1"]


def test_two_files_differing_only_in_normalisation_make_such_a_key_ambiguous(tree):
    composed, decomposed = "\u1ec7.wav", "e\u0323\u0302.wav"  # e with dot below and circumflex: NFC, NFD
    reordered = "e\u0302\u0323.wav"  # the same letter, marks in another order: neither name exactly
    write_wav(tree / "data" / composed, 550.0)
    write_wav(tree / "data" / decomposed, 660.0)
    assert len(load_index(tree).files) == 4  # Linux keeps both names
    metadata = write_bytes(tree / "metadata/t/metadata.txt", f"data/{decomposed}\t3\ndata/{reordered}\t4\n".encode())
    assert problems_of(tree) == [
        f"{metadata}:2: audio file 'data/{reordered}' not found (2 files have this name, written in different "
        f"Unicode normalisations (NFC/NFD): 'data/{decomposed}', 'data/{composed}'; rename all but one)"]
    assert load_index(tree, raise_on_problems=False).tasks["t"].labels[f"data/{decomposed}"].values.tolist() == [3]


def test_a_key_differing_in_case_is_not_matched_but_named(tree):
    metadata = write_bytes(tree / "metadata/t/metadata.txt", b"data/A.wav\t1\n")
    assert problems_of(tree) == [f"{metadata}:1: audio file 'data/A.wav' not found (names are case-sensitive: "
                                 f"'data/a.wav' exists)"]


def test_a_windows_path_says_to_use_slashes(tree):
    metadata = write_bytes(tree / "metadata/t/metadata.txt", b"data\\a.wav\t1\n")
    assert problems_of(tree) == [f"{metadata}:1: key 'data\\a.wav' is not a path inside data/ (expected "
                                 f"'data/...<TAB>value') (folders are separated by /, not \\)"]


@pytest.mark.parametrize("key", ["data/../../outside/secret.wav", "data/./../data/a.wav", "/data/a.wav"])
def test_a_key_climbing_out_of_data_is_refused(tree, outside, key):
    metadata = write_bytes(tree / "metadata/t/metadata.txt", f"{key}\t1\n".encode())
    assert problems_of(tree) == [f"{metadata}:1: key '{key}' is not a path inside data/ (expected "
                                 f"'data/...<TAB>value')"]


# ---------------------------------------------------------------------------------- sound files that lie
def wav_header(path: Path, rate: int, frames: int, real_frames: int) -> Path:
    """A 16-bit mono WAV whose header says ``rate`` Hz and ``frames`` frames, followed by ``real_frames``."""
    size = 2 * frames
    header = (b"RIFF" + struct.pack("<I", (36 + size) & 0xFFFFFFFF) + b"WAVEfmt " +
              struct.pack("<IHHIIHH", 16, 1, 1, rate, (2 * rate) & 0xFFFFFFFF, 2, 16) + b"data" +
              struct.pack("<I", size & 0xFFFFFFFF))
    return write_bytes(path, header + bytes(2 * real_frames))


def test_a_rate_that_would_need_a_huge_resampling_filter_is_refused_before_allocating(tree):
    prime = wav_header(tree / "data/prime.wav", 999983, 2000, 2000)
    expected = (f"its sample rate 999983 Hz cannot be resampled to {SR} Hz (the exact filter between them has "
                f"about 8e+09 taps, more than 16777216): convert the file to a common rate (e.g. {SR} Hz) first")
    assert problems_of(tree) == [f"{prime}: {expected}"]
    from vschaos.data import audio
    with pytest.raises(audio.AudioReadError) as caught:
        audio.load_audio(prime, SR)
    assert str(caught.value) == f"{prime}: {expected}"


@pytest.mark.parametrize("rates", [(44100, 48000), (192000, 44100), (11025, 16000), (22050, 16000), (8000, 44100),
                                   (88200, 48000), (32000, 44100), (96000, 22050)])
def test_common_rates_resample_between_each_other(rates):
    from vschaos.data.audio import resample_problem

    assert resample_problem(*rates) is None and resample_problem(*reversed(rates)) is None


def test_a_header_claiming_more_frames_than_the_file_holds_counts_what_is_there(tree):
    wav_header(tree / "data/lies.wav", SR, 10 ** 9, 100)
    index = load_index(tree)
    assert [f.file_frames for f in index.files if f.key == "data/lies.wav"] == [100]
    from vschaos.data.audio import load_audio
    assert load_audio(tree / "data/lies.wav", SR).shape == (100,)


# ---------------------------------------------------------------------------------- garbage lines are not echoed
def test_a_line_longer_than_the_limit_is_one_short_problem(tree):
    metadata = write_bytes(tree / "metadata/t/metadata.txt", b"data/a.wav\t" + b"x" * 100_000 + b"\ndata/b.wav\t1\n")
    assert problems_of(tree) == [f"{metadata}:1: line of 100011 characters, more than 16384: not a metadata line "
                                 f"(a binary file, or line breaks lost?)"]
    assert load_index(tree, raise_on_problems=False).tasks["t"].labels["data/b.wav"].values.tolist() == [1]


def test_long_keys_and_values_are_cut_in_messages(tree):
    key, label = "data/" + "k" * 1000 + ".wav", "v" * 1000
    metadata = write_bytes(tree / "metadata/t/metadata.txt", f"{key}\t0\ndata/a.wav\t{label}\n".encode())
    write_bytes(tree / "metadata/t/classes.txt", b"0\tzero\n")
    assert problems_of(tree) == [
        f"{metadata}:1: audio file '{key[:200]}... (1009 characters)' not found",
        f"{metadata}:2: task 't': unknown class '{label[:200]}'... (1000 characters) (classes.txt has ['zero'])"]


# ---------------------------------------------------------------------------------- files the OS refuses
def refuse(monkeypatch, refused: Path) -> None:
    """Simulates ``chmod 000 refused`` for this (root) process: the OS and libsndfile refuse to open it."""
    from vschaos.data import audio

    real_open, real_info = os.open, audio.sf.info

    def os_open(path, *args, **kwargs):
        if os.fsdecode(path) == str(refused):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    def info(name, *args, **kwargs):
        if os.fsdecode(name) == str(refused):
            raise RuntimeError(f"Error opening '{refused}': System error.")
        return real_info(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(audio.sf, "info", info)


def test_an_unreadable_sound_file_says_permission_denied(tree, monkeypatch):
    refuse(monkeypatch, tree / "data/a.wav")
    assert problems_of(tree) == [f"{tree}/data/a.wav: unreadable audio: cannot read audio header (Permission denied)"]


def test_an_unreadable_metadata_txt_says_permission_denied(tree, monkeypatch):
    metadata = write_bytes(tree / "metadata/t/metadata.txt", b"data/a.wav\t0\n")
    refuse(monkeypatch, metadata)
    assert problems_of(tree) == [f"{metadata}: cannot read (Permission denied)"]


def test_a_folder_that_cannot_be_listed_is_one_problem(tree, monkeypatch):
    locked = tree / "data/locked"
    write_wav(locked / "c.wav")
    real_scandir = os.scandir

    def scandir(path):
        if os.fsdecode(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert problems_of(tree) == [f"{locked}: cannot list the folder (Permission denied)"]


# ---------------------------------------------------------------------------------- writers stay inside too
def test_folders_to_metadata_writes_nothing_through_a_link_out_or_a_climbing_task(tree, outside, capsys):
    from vschaos.cli.dataset_tools import folders_to_metadata_main

    write_wav(tree / "data/violin/c.wav")
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    (tree / "metadata").mkdir()
    os.symlink(outside, tree / "metadata/inst")
    assert folders_to_metadata_main([str(tree), "inst", "--force"]) == 1
    assert capsys.readouterr().err == (f"error: {tree}/metadata/inst: links outside the dataset root "
                                       f"(to {outside.resolve()}): nothing written; copy it into the "
                                       f"dataset, or make the folder that holds it the dataset root\n")
    assert folders_to_metadata_main([str(tree), "../../outside"]) == 1
    assert capsys.readouterr().err == "error: task name '../../outside' is not the name of a folder in metadata/\n"
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before


def test_the_spectral_cache_is_not_written_through_a_link_out(tree, outside):
    from vschaos.data.cache import load_or_build_cache
    from vschaos.data.metadata import DatasetError
    from vschaos.dsp.transforms import SpectralTransform

    os.symlink(outside, tree / ".vschaos_cache")
    before = sorted(p.name for p in outside.iterdir())
    with pytest.raises(DatasetError) as caught:
        load_or_build_cache(SpectralTransform(sample_rate=SR, n_fft=256, hop=64), load_index(tree).files, tree,
                            progress=False)
    assert [str(p) for p in caught.value.problems] == [
        f"{tree}/.vschaos_cache: links outside the dataset root (to {outside.resolve()}): nothing written; copy it "
        f"into the dataset, or make the folder that holds it the dataset root"]
    assert sorted(p.name for p in outside.iterdir()) == before
