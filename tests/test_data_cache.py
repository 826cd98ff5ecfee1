"""Spectral frame cache: chunked DGT, reuse, rebuild on change/corruption, statistics."""
import json
import os

import numpy as np
import pytest
import torch

from vschaos.data.audio import load_audio
from vschaos.data.cache import file_magnitudes, load_or_build_cache
from vschaos.data.dataset import load_index
from vschaos.dsp.transforms import SpectralTransform

SR = 8000


def small_transform(hop: int = 64) -> SpectralTransform:
    return SpectralTransform(sample_rate=SR, n_fft=256, hop=hop)


def build(root, transform=None, **kwargs):
    return load_or_build_cache(transform or small_transform(), load_index(root).files, root, progress=False, **kwargs)


def test_chunked_magnitudes_equal_whole_file_transform(synth):
    transform = small_transform()
    audio = torch.from_numpy(synth.chirp(100.0, 3000.0, 0.9, SR))
    whole = transform.magnitude(audio[None])[0]
    chunked = file_magnitudes(transform, audio, chunk_frames=7, batch_chunks=2)  # many chunks, ragged end
    assert chunked.shape == whole.shape == (transform.num_frames(audio.shape[0]), 129)
    assert torch.allclose(chunked, whole, atol=1e-5, rtol=1e-5)


def test_cache_content_offsets_and_reuse(tree):
    cache = build(tree)
    assert cache.built
    files = load_index(tree).files
    expected = [small_transform().magnitude(load_audio(f.path, SR)[None])[0].numpy() for f in files]
    assert cache.n_frames.tolist() == [e.shape[0] for e in expected]
    for i, e in enumerate(expected):
        np.testing.assert_allclose(cache.magnitudes[cache.offsets[i]:cache.offsets[i + 1]], e, atol=1e-5)
    assert cache.directory.parent == tree / ".vschaos_cache"
    mtime = os.stat(cache.directory / "magnitudes.npy").st_mtime_ns
    again = build(tree)
    assert not again.built and again.directory == cache.directory
    assert os.stat(cache.directory / "magnitudes.npy").st_mtime_ns == mtime


def test_rebuilt_when_a_file_changes(tree, synth):
    first = build(tree)
    synth.write_wav(tree / "data/f1.wav", synth.white_noise(0.7, SR, seed=5), SR)
    os.utime(tree / "data/f1.wav", ns=(1, 1))  # a different mtime even on coarse clocks
    second = build(tree)
    assert second.built and second.directory != first.directory
    assert not np.allclose(second.magnitudes[second.offsets[1]:second.offsets[2]],
                           first.magnitudes[first.offsets[1]:first.offsets[2]])


def test_rebuilt_when_transform_changes(tree):
    first = build(tree)
    second = build(tree, small_transform(hop=32))
    assert second.built and second.directory != first.directory
    assert second.n_frames.tolist() != first.n_frames.tolist()
    third = build(tree, SpectralTransform(sample_rate=SR, n_fft=256, hop=64, tfr=0.5))
    assert third.built and third.directory not in (first.directory, second.directory)


def test_truncated_cache_is_rebuilt_with_a_warning(tree):
    first = build(tree)
    reference = np.array(first.magnitudes)
    path = first.directory / "magnitudes.npy"
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    del first
    with pytest.warns(UserWarning, match="corrupt or partial"):
        second = build(tree)
    assert second.built
    np.testing.assert_array_equal(np.array(second.magnitudes), reference)


@pytest.mark.parametrize("damage", ["bad_json", "wrong_shape"])
def test_damaged_index_or_array_is_rebuilt(tree, damage):
    first = build(tree)
    if damage == "bad_json":
        (first.directory / "index.json").write_text("{not json")
    else:
        np.save(first.directory / "magnitudes.npy", np.zeros((3, 129), np.float32))
        index = json.loads((first.directory / "index.json").read_text())
        index["magnitudes_bytes"] = (first.directory / "magnitudes.npy").stat().st_size
        (first.directory / "index.json").write_text(json.dumps(index))
    with pytest.warns(UserWarning, match="rebuilding"):
        second = build(tree)
    assert second.built and second.magnitudes.shape == (int(first.offsets[-1]), 129)


def test_no_temporary_files_left(tree):
    cache = build(tree)
    assert sorted(p.name for p in cache.directory.iterdir()) == ["index.json", "magnitudes.npy", "stats.npy"]


def test_statistics_equal_direct_computation(tree):
    cache = build(tree, cache_dir=str(tree.parent / "elsewhere"))
    assert cache.directory.parent == tree.parent / "elsewhere"
    files = load_index(tree).files
    chosen = [0, 2]
    features = np.concatenate([torch.log1p(small_transform().magnitude(load_audio(files[i].path, SR)[None])[0])
                               .double().numpy() for i in chosen])
    mean, std = cache.normalisation(chosen)
    np.testing.assert_allclose(mean, features.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, features.std(0), rtol=1e-4, atol=1e-6)


def test_float16_cache_is_close_and_separate(tree):
    full = build(tree)
    half = build(tree, dtype="float16")
    assert half.magnitudes.dtype == np.float16 and half.directory != full.directory
    a = np.log1p(np.asarray(full.magnitudes, dtype=np.float64))
    b = np.log1p(np.asarray(half.magnitudes, dtype=np.float64))
    assert np.max(np.abs(a - b)) < 2e-3  # float16 keeps ~11 bits: log1p error <= ~1e-3
    with pytest.raises(ValueError, match="cache dtype"):
        build(tree, dtype="int8")


def test_resampled_files_frame_count_and_content(tmp_path, synth):
    """Files at other rates are resampled; the cache's predicted frame count must match the real one."""
    root = tmp_path / "ds"
    synth.write_wav(root / "data/hi.wav", synth.harmonic_tone(300.0, 0.77, 22050), 22050)
    synth.write_wav(root / "data/lo.wav", synth.harmonic_tone(300.0, 0.5, 11025), 11025)
    cache = build(root)
    files = load_index(root).files
    for i, f in enumerate(files):
        direct = small_transform().magnitude(load_audio(f.path, SR)[None])[0].numpy()
        assert cache.n_frames[i] == direct.shape[0] == small_transform().num_frames(f.n_samples(SR))
        np.testing.assert_allclose(cache.magnitudes[cache.offsets[i]:cache.offsets[i + 1]], direct, atol=1e-5)


def test_statistics_follow_the_dsp_contrast(tree, monkeypatch):
    """The fitted normalisation is of ``dsp.functional.contrast``, not a private copy of it: a
    different contrast changes the statistics (and the cache keeps its linear magnitudes)."""
    import vschaos.data.cache as cache_module

    reference = build(tree, cache_dir=str(tree.parent / "log1p"))
    monkeypatch.setattr(cache_module, "contrast", torch.sqrt)
    changed = build(tree, cache_dir=str(tree.parent / "sqrt"))
    np.testing.assert_array_equal(np.asarray(changed.magnitudes), np.asarray(reference.magnitudes))
    mean, _ = changed.normalisation([0, 1, 2])
    expected = np.sqrt(np.asarray(changed.magnitudes, dtype=np.float32)).astype(np.float64).mean(0)
    np.testing.assert_allclose(mean, expected, rtol=1e-5, atol=1e-7)
    assert not np.allclose(mean, reference.normalisation([0, 1, 2])[0])
