"""SpectralDataModule: config handling, split/subset determinism, batches, labels, statistics."""

import numpy as np
import pytest
import torch

from vschaos.data.audio import load_audio
from vschaos.data.datamodule import BatchIndexSampler, SpectralDataModule, select_files, split_files
from vschaos.data.metadata import DatasetError
from vschaos.dsp.transforms import SpectralTransform

SR = 8000


def small_transform() -> SpectralTransform:
    return SpectralTransform(sample_rate=SR, n_fft=256, hop=64)


@pytest.fixture
def tree(tmp_path, synth):
    """6 files of 1 s in two folders; 'kind' single labels (names), 'pitch' tracks on f0 only."""
    root = tmp_path / "ds"
    keys = []
    for i in range(6):
        folder = "a" if i < 3 else "b"
        key = f"data/{folder}/f{i}.wav"
        synth.write_wav(root / key, synth.harmonic_tone(150.0 * (i + 1), 1.0, SR, seed=i), SR)
        keys.append(key)
    (root / "metadata/kind").mkdir(parents=True)
    (root / "metadata/kind/classes.txt").write_text("0\ta\n1\tb\n")
    (root / "metadata/kind/metadata.txt").write_text(
        "".join(f"{k}\t{k.split('/')[1]}\n" for k in keys[:-1]) + f"{keys[-1]}\tnone\n")
    (root / "metadata/pitch/tracks").mkdir(parents=True)
    (root / "metadata/pitch/tracks/f0.txt").write_text("0.5,1.0\t7\n")
    (root / "metadata/pitch/metadata.txt").write_text(f"{keys[0]}\ttracks/f0.txt\n")
    return root


def module(root, **kwargs) -> SpectralDataModule:
    dataset = {"root": str(root)}
    dataset.update(kwargs.pop("dataset", {}))
    return SpectralDataModule(small_transform(), dataset, **kwargs)


@pytest.mark.parametrize("dataset", [{}, {"root": None}, None])
def test_missing_root_names_the_config_key(dataset):
    with pytest.raises(ValueError, match=r"data\.dataset\.root"):
        SpectralDataModule(small_transform(), dataset)


def test_dataset_problems_raise_before_training(tmp_path, synth):
    synth.write_wav(tmp_path / "data/x.wav", synth.harmonic_tone(200.0, 0.5, SR), SR)
    (tmp_path / "metadata/t").mkdir(parents=True)
    (tmp_path / "metadata/t/metadata.txt").write_text("data/y.wav\t1\n")
    dm = SpectralDataModule(small_transform(), {"root": str(tmp_path)})
    with pytest.raises(DatasetError, match=r"metadata/t/metadata.txt:1: audio file 'data/y.wav' not found"):
        dm.prepare_data()


def test_tasks_order_and_classes(tree):
    assert module(tree).tasks == ["kind", "pitch"]
    dm = module(tree, dataset={"tasks": ["pitch", "kind"]})
    assert dm.tasks == ["pitch", "kind"]
    assert dm.task_classes == {"pitch": 8, "kind": 2}  # pitch: max id 7 + 1 (no classes.txt)


def test_split_is_seeded_stable_and_non_empty():
    train, val = split_files(10, 0.2, seed=3)
    assert len(val) == 2 and sorted(np.concatenate([train, val]).tolist()) == list(range(10))
    again = split_files(10, 0.2, seed=3)
    assert train.tolist() == again[0].tolist() and val.tolist() == again[1].tolist()
    assert len({tuple(split_files(10, 0.2, seed=s)[1]) for s in range(6)}) > 1
    assert [len(p) for p in split_files(2, 0.01, 0)] == [1, 1]
    assert [len(p) for p in split_files(2, 0.9, 0)] == [1, 1]
    assert [len(p) for p in split_files(1, 0.5, 0)] == [1, 0]
    with pytest.raises(ValueError, match="val_fraction"):
        split_files(10, 1.0, 0)


def test_module_split_same_across_instances(tree):
    first, second = module(tree, val_fraction=0.34, split_seed=7), module(tree, val_fraction=0.34, split_seed=7)
    assert first.files == second.files and len(first.files) == 6
    assert first.val_files.tolist() == second.val_files.tolist() and len(first.val_files) == 2
    assert set(first.train_files.tolist()) | set(first.val_files.tolist()) == set(range(6))


def test_n_files_subset_is_deterministic(tree):
    keys = [f.key for f in module(tree, dataset={"n_files": 3}, split_seed=1).files]
    assert keys == [f.key for f in module(tree, dataset={"n_files": 3}, split_seed=1).files]
    assert len(keys) == 3 and keys == sorted(keys)
    expected = [f"data/{'a' if i < 3 else 'b'}/f{i}.wav" for i in select_files(6, 3, 1)]
    assert keys == expected
    assert select_files(6, None, 0).tolist() == list(range(6))


def test_sampler_shuffles_each_epoch_and_covers_everything():
    sampler = BatchIndexSampler(10, 4, shuffle=True, seed=0)
    epoch0, epoch1 = [b.tolist() for b in sampler], [b.tolist() for b in sampler]
    assert [len(b) for b in epoch0] == [4, 4, 2] and len(sampler) == 3
    assert sorted(sum(epoch0, [])) == list(range(10)) == sorted(sum(epoch1, []))
    assert epoch0 != epoch1
    ordered = BatchIndexSampler(10, 4, shuffle=False)
    assert [b.tolist() for b in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(BatchIndexSampler(10, 4, shuffle=False, drop_last=True)) == 2


def test_batches_shapes_labels_and_coverage(tree):
    dm = module(tree, batch_size=50, val_fraction=0.34, split_seed=0)
    dm.prepare_data()
    dm.setup("fit")
    cache = dm._cache
    n_train = int(cache.n_frames[dm.train_files].sum())
    batches = list(dm.train_dataloader())
    assert [b["magnitude"].shape[0] for b in batches[:-1]] == [50] * (len(batches) - 1)
    batch = batches[0]
    assert batch["magnitude"].dtype == torch.float32 and batch["magnitude"].shape[1] == 129
    assert set(batch["labels"]) == {"kind", "pitch"}
    assert batch["labels"]["kind"].dtype == torch.int64 and batch["labels"]["kind"].shape == (50,)
    # every training frame exactly once per epoch: compare sums against the cache rows
    total = sum(b["magnitude"].double().sum() for b in batches)
    direct = sum(np.asarray(cache.magnitudes[cache.offsets[i]:cache.offsets[i + 1]], np.float64).sum()
                 for i in dm.train_files)
    assert sum(b["magnitude"].shape[0] for b in batches) == n_train
    assert float(total) == pytest.approx(direct, rel=1e-9)
    # label counts: 'kind' missing exactly on the frames of f5 (if in train), pitch labelled on 62 frames of f0
    kinds = torch.cat([b["labels"]["kind"] for b in batches])
    f5_frames = int(cache.n_frames[5]) if 5 in dm.train_files else 0
    assert int((kinds == -1).sum()) == f5_frames
    pitches = torch.cat([b["labels"]["pitch"] for b in batches])
    assert int((pitches == 7).sum()) == (62 if 0 in dm.train_files else 0)
    # validation: in order, magnitudes equal to a direct transform of the held-out files
    val = torch.cat([b["magnitude"] for b in dm.val_dataloader()])
    direct_val = torch.cat([small_transform().magnitude(load_audio(dm.files[i].path, SR)[None])[0]
                            for i in dm.val_files])
    assert torch.allclose(val, direct_val, atol=1e-5)


def test_file_labels_follow_frame_centres(tree):
    dm = module(tree)
    labels = dm.file_labels("data/a/f0.wav")
    # centre of frame t = 64 (t - 1) / 8000 s: [0.5, 1.0) covers frames 64..125
    assert np.flatnonzero(labels["pitch"] == 7).tolist() == list(range(64, 126))
    assert (labels["kind"] == 0).all()
    assert (dm.file_labels("data/b/f5.wav")["kind"] == -1).all()


def test_float_task_batches_use_nan(tmp_path, synth):
    synth.write_wav(tmp_path / "data/x.wav", synth.harmonic_tone(200.0, 0.5, SR), SR)
    synth.write_wav(tmp_path / "data/y.wav", synth.harmonic_tone(300.0, 0.5, SR), SR)
    (tmp_path / "metadata/loud").mkdir(parents=True)
    (tmp_path / "metadata/loud/metadata.txt").write_text("data/x.wav\t0.5\n")
    dm = SpectralDataModule(small_transform(), {"root": str(tmp_path), "metadata_callbacks":
                                                {"loud": {"name": "read_single_metadata", "type": "float"}}},
                            val_fraction=0.0)
    assert dm.task_classes == {} and dm.task_types == {"loud": "float"}
    values = torch.cat([b["labels"]["loud"] for b in dm.train_dataloader()])
    assert values.dtype == torch.float32
    assert int((values == 0.5).sum()) == int(torch.isnan(values).sum()) == small_transform().num_frames(4000)
    assert dm.val_dataloader() == []


def test_normalisation_equals_direct_computation(tree):
    dm = module(tree, val_fraction=0.34)
    mean, std = dm.normalisation()
    assert mean.dtype == torch.float32 and mean.shape == (129,)
    features = torch.cat([torch.log1p(small_transform().magnitude(load_audio(dm.files[i].path, SR)[None])[0])
                          for i in dm.train_files]).double()
    assert torch.allclose(mean.double(), features.mean(0), rtol=1e-5, atol=1e-6)
    assert torch.allclose(std.double(), features.std(0, unbiased=False), rtol=1e-4, atol=1e-6)


def test_summary_counts(tree):
    dm = module(tree, val_fraction=0.34)
    text = dm.summary()
    n = small_transform().num_frames(SR)
    assert f"6 files, {6 * n} frames" in text
    assert f"task 'kind' (2 classes): {5 * n} labelled frames, {n} missing" in text
    assert f"task 'pitch' (8 classes): 62 labelled frames, {6 * n - 62} missing" in text


def test_works_with_omegaconf_config(tree):
    from omegaconf import OmegaConf

    config = OmegaConf.create({"root": str(tree), "tasks": ["pitch"], "n_files": None,
                               "metadata_callbacks": {"pitch": {"name": "read_multi_metadata", "type": "int"}}})
    dm = SpectralDataModule(small_transform(), config)
    assert dm.tasks == ["pitch"] and len(dm.files) == 6


@pytest.mark.parametrize("value", [0, -3, 1.5, True, "abc", "2.0"])
def test_n_files_must_be_a_whole_number_when_the_module_is_made(tmp_path, value):
    """Checked at construction (one line through Hydra's instantiate), not at fit time after a traceback;
    ``int()`` would take 1.5 or true as 1."""
    from vschaos.data.datamodule import SpectralDataModule
    from vschaos.dsp.transforms import SpectralTransform

    with pytest.raises(ValueError, match=r"data.dataset.n_files must be a whole number >= 1 \(or null for every "
                                         r"file\), got "):
        SpectralDataModule(SpectralTransform(sample_rate=8000, n_fft=256, hop=64),
                           {"root": str(tmp_path), "n_files": value})


def test_n_files_written_as_text_digits_is_read(tmp_path):
    from vschaos.data.datamodule import SpectralDataModule
    from vschaos.dsp.transforms import SpectralTransform

    module = SpectralDataModule(SpectralTransform(sample_rate=8000, n_fft=256, hop=64),
                                {"root": str(tmp_path), "n_files": "3"})
    assert module.n_files == 3
