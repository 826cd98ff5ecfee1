"""The spectral cache of a careless or hostile dataset (issue 27): a FIFO where the cache index should be is
rebuilt over, never waited on."""
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vschaos.data.cache import load_or_build_cache
from vschaos.data.dataset import load_index
from vschaos.dsp.transforms import SpectralTransform

SR = 8000


def write_wav(path: Path, freq: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(SR // 4) / SR
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR, subtype="PCM_16")


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not hasattr(signal, "setitimer"), reason="needs FIFOs and timers")
def test_a_fifo_as_the_cache_index_is_rebuilt_over_not_waited_on(tmp_path):
    root = tmp_path / "ds"
    write_wav(root / "data/a.wav", 220.0)
    write_wav(root / "data/b.wav", 330.0)
    transform = SpectralTransform(sample_rate=SR, n_fft=256, hop=64)
    files = load_index(root).files
    first = load_or_build_cache(transform, files, root, progress=False)
    expected = np.array(first.magnitudes)
    index = first.directory / "index.json"
    index.unlink()
    os.mkfifo(index)

    def blocked(signum, frame):
        raise TimeoutError("the cache reader waited on a FIFO")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    try:
        with pytest.warns(UserWarning, match="index.json: unreadable index \\(is not a regular file"):
            again = load_or_build_cache(transform, files, root, progress=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert again.built and index.is_file() and np.array_equal(np.array(again.magnitudes), expected)


def test_a_file_where_the_cache_folder_should_be_is_one_problem(tmp_path):
    from vschaos.data.metadata import DatasetError

    root = tmp_path / "ds"
    write_wav(root / "data/a.wav", 220.0)
    (root / ".vschaos_cache").write_text("not a folder")
    with pytest.raises(DatasetError) as caught:
        load_or_build_cache(SpectralTransform(sample_rate=SR, n_fft=256, hop=64), load_index(root).files, root,
                            progress=False)
    [problem] = caught.value.problems
    assert str(problem).startswith(f"{root}/.vschaos_cache/")
    assert str(problem).endswith(": cannot create the spectral cache folder (Not a directory): remove what is in the "
                                 "way, or set data.cache_dir")
    assert (root / ".vschaos_cache").read_text() == "not a folder"
