"""A careless or hostile dataset tree (issue 27): links that leave the dataset root or loop, FIFOs and folders
where files are expected, oversized text files, invisible characters, keys that climb out of data/, names that
differ only in Unicode normalisation or case. Each is one problem naming the file (and line), never a hang,
never a traceback, never a read outside the dataset root."""
import os
import signal
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
