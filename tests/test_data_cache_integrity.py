"""Cache integrity (issue 14 item 10): same-size damage to the cache files and same-size, same-mtime
rewrites of the audio are detected, and the cache is rebuilt with a warning that names the damage."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vschaos.data.cache import DIGEST_BLOCK, content_digest, load_or_build_cache
from vschaos.data.dataset import load_index
from vschaos.dsp.transforms import SpectralTransform

SR = 8000


def build(root):
    return load_or_build_cache(SpectralTransform(sample_rate=SR, n_fft=256, hop=64), load_index(root).files, root,
                               progress=False)


def overwrite(path: Path, offset: int, data: bytes) -> None:
    size, mtime = path.stat().st_size, path.stat().st_mtime_ns
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)
    os.utime(path, ns=(mtime, mtime))
    assert path.stat().st_size == size


def test_4kb_of_0xff_inside_magnitudes_is_caught_and_rebuilt(tree):
    """Issue 14's reproduction: 4 KB of 0xFF inside magnitudes.npy gave NaN rows."""
    first = build(tree)
    reference = np.array(first.magnitudes)
    offsets = first.offsets.copy()
    path = first.directory / "magnitudes.npy"
    row_bytes = reference.shape[1] * 4
    header = path.stat().st_size - reference.nbytes
    start_row = int(offsets[1]) + 3  # inside the second file's block
    overwrite(path, header + start_row * row_bytes, b"\xff" * 4096)
    del first
    with pytest.warns(UserWarning, match=r"rows \d+\.\.\d+ \(data/f1\.wav\) fail their checksum"):
        second = build(tree)
    assert second.built
    np.testing.assert_array_equal(np.array(second.magnitudes), reference)
    assert np.isfinite(np.array(second.magnitudes)).all()


def test_finite_garbage_in_stats_is_caught_and_rebuilt(tree):
    first = build(tree)
    reference = first.stats.copy()
    path = first.directory / "stats.npy"
    overwrite(path, path.stat().st_size - 64, np.full(8, 123.0).tobytes())  # finite, plausible values
    with pytest.warns(UserWarning, match=r"stats\.npy: fails its checksum"):
        second = build(tree)
    assert second.built
    np.testing.assert_array_equal(second.stats, reference)


@pytest.mark.parametrize("value, message", [(np.nan, "contains NaN/Inf"), (-5.0, "negative sums of squares")])
def test_invalid_stats_are_named_as_such(tree, value, message):
    first = build(tree)
    stats = first.stats.copy()
    stats[1, 1, 3] = value
    path = first.directory / "stats.npy"
    with open(path, "wb") as handle:
        np.save(handle, stats)
    with pytest.warns(UserWarning, match=f"stats.npy: {message}"):
        assert build(tree).built


def test_audio_rewritten_with_same_size_and_mtime_rebuilds(tree, synth):
    path = tree / "data/f1.wav"
    first = build(tree)
    old = first.magnitudes[first.offsets[1]:first.offsets[2]].copy()
    stat = path.stat()
    sf.write(str(path), synth.white_noise(0.7, SR, seed=5), SR)  # same format and length: same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    second = build(tree)
    assert second.built and second.directory != first.directory
    assert not np.allclose(second.magnitudes[second.offsets[1]:second.offsets[2]], old)


def test_content_digest_reads_both_ends_only(tmp_path):
    path = tmp_path / "x.bin"
    data = bytearray(os.urandom(3 * DIGEST_BLOCK))
    path.write_bytes(bytes(data))
    reference = content_digest(path, len(data))
    data[DIGEST_BLOCK + 10] ^= 0xFF  # the middle: not read
    path.write_bytes(bytes(data))
    assert content_digest(path, len(data)) == reference
    for position in (5, len(data) - 5):
        changed = bytearray(data)
        changed[position] ^= 0xFF
        path.write_bytes(bytes(changed))
        assert content_digest(path, len(changed)) != reference
    path.write_bytes(b"short")  # smaller than one block: read once
    short = content_digest(path, 5)
    path.write_bytes(b"shorT")
    assert content_digest(path, 5) != short


def test_index_without_checksums_is_rebuilt(tree):
    first = build(tree)
    index_path = first.directory / "index.json"
    index = json.loads(index_path.read_text())
    del index["block_crc32"]
    index_path.write_text(json.dumps(index))
    with pytest.warns(UserWarning, match="no block checksums"):
        assert build(tree).built
