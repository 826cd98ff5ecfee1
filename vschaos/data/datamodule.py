"""``SpectralDataModule``: frames of the cached magnitudes with their labels, in whole batches.

Batches are ``{"magnitude": FloatTensor (batch, bins) linear |X|, "labels": {task: LongTensor
(batch,), -1 = missing}}`` (float tasks: FloatTensor, NaN = missing). The loader never works per
frame: a sampler yields one index array per batch and the dataset gathers the rows of the
memory-mapped cache and of the label arrays with it.
"""
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import lightning
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vschaos.data.cache import FrameCache, load_or_build_cache
from vschaos.data.dataset import AudioFile, DatasetIndex, frame_labels, load_index


def _plain(value):
    """OmegaConf containers (or any mapping/sequence) -> dicts/lists, without importing omegaconf."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and type(value).__name__ == "ListConfig"):
        return [_plain(v) for v in value]
    return value


def select_files(n_available: int, n_files: Optional[int], seed: int) -> np.ndarray:
    """Indices (sorted) of the ``n_files`` subset: the first ``n_files`` of a permutation seeded by
    ``seed`` (a spread-out sample, not just the first folder). All files when ``n_files`` is None."""
    if n_files is None or n_files >= n_available:
        return np.arange(n_available)
    if n_files < 1:
        raise ValueError(f"data.dataset.n_files must be >= 1, got {n_files}")
    permutation = np.random.default_rng(seed).permutation(n_available)
    return np.sort(permutation[:n_files])


def _n_files(value) -> Optional[int]:
    """``data.dataset.n_files`` checked when the data module is made (not at fit time, after a traceback):
    ``None`` or a whole number >= 1 (``int()`` would take ``1.5`` or ``true`` as 1)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit() \
            or int(value) < 1:
        raise ValueError(f"data.dataset.n_files must be a whole number >= 1 (or null for every file), got {value!r}")
    return int(value)


def split_files(n_files: int, val_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded file-level split -> (train indices, val indices), both sorted.

    Depends only on ``n_files``, ``val_fraction`` and ``seed`` (stable across runs and resume).
    With >= 2 files and ``val_fraction > 0`` both parts are non-empty.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = 0
    if val_fraction > 0 and n_files >= 2:
        n_val = min(max(1, int(round(n_files * val_fraction))), n_files - 1)
    permutation = np.random.default_rng(seed).permutation(n_files)
    return np.sort(permutation[n_val:]), np.sort(permutation[:n_val])


class BatchIndexSampler(Sampler):
    """Yields one int64 index array per batch over ``range(n)``; a new seeded shuffle per epoch
    (epoch ``e`` uses seed ``(seed, e)``) or, without shuffle, the natural order.

    Lightning calls :meth:`set_epoch` with the trainer's epoch before every epoch (it does so for any
    ``dataloader.sampler`` that has one), so a resumed run at epoch ``k`` replays the order a fresh
    run has at epoch ``k``. Without ``set_epoch`` calls each iteration moves on to the next epoch."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle of epoch ``epoch`` for the next iteration (the trainer's epoch counter is the
        truth: it survives a resume, this object's own counter does not)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
            self.epoch += 1
        else:
            order = np.arange(self.n)
        stop = len(self) * self.batch_size if self.drop_last else self.n
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size]

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else math.ceil(self.n / self.batch_size)


class FrameBatchDataset(Dataset):
    """Frames ``rows`` of the cache with their labels; indexed with an index *array* per batch.

    ``dataset[indices]`` -> ``{"magnitude": (batch, bins) float32, "labels": {task: (batch,)}}``, plus
    ``"f0": (batch,)`` Hz when the cache holds f0s (``f0``, every frame of the cache).
    The memmap is reopened lazily, so the dataset pickles small for worker processes.
    """

    def __init__(self, magnitudes_path: Path, rows: np.ndarray, labels: Dict[str, np.ndarray],
                 f0: Optional[np.ndarray] = None):
        self.magnitudes_path = Path(magnitudes_path)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = labels
        self.f0 = f0
        self._magnitudes: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_magnitudes"] = None
        return state

    def __getitem__(self, indices) -> Dict[str, object]:
        if self._magnitudes is None:
            self._magnitudes = np.load(self.magnitudes_path, mmap_mode="r")
        rows = np.sort(self.rows[np.asarray(indices, dtype=np.int64)])  # ascending: sequential reads
        magnitude = torch.from_numpy(np.asarray(self._magnitudes[rows], dtype=np.float32))
        labels = {task: torch.from_numpy(values[rows]) for task, values in self.labels.items()}
        if self.f0 is not None:
            return {"magnitude": magnitude, "labels": labels, "f0": torch.from_numpy(self.f0[rows])}
        return {"magnitude": magnitude, "labels": labels}


def _passthrough(batch):
    return batch


class SpectralDataModule(lightning.LightningDataModule):
    """Dataset tree -> validated index -> spectral frame cache -> batches of frames.

    Args:
        transform: object with ``sample_rate, n_fft, hop, n_bins``, ``magnitude(audio (batch, time))
            -> (batch, frames, bins)`` and ``cache_key()`` (a ``SpectralTransform``).
        dataset: vschaos2's ``data.dataset`` dict: ``root`` (required), ``n_files`` (subset: first
            ``n_files`` of a permutation seeded by ``split_seed``), ``tasks`` (None: every task under
            ``metadata/``, sorted; a list: that order), ``metadata_callbacks``; optional
            ``cache_dtype`` (``float32`` default, or ``float16``).
        batch_size: frames per batch. val_fraction: share of files held out (by file).
        split_seed: seeds the split, the subset and the per-epoch shuffles.
        num_workers: DataLoader workers (0 is usually fastest: a batch is one gather).
        cache_dir: folder for caches (default ``ROOT/.vschaos_cache``).
        pitch_tracker: the model's f0 tracker when it reads a longer window than its frames
            (``SpectralVAE.window_pitch_tracker``): the cache then holds each frame's f0 and batches carry it.
    """

    def __init__(self, transform, dataset: Mapping, batch_size: int = 256, val_fraction: float = 0.1,
                 split_seed: int = 0, num_workers: int = 0, cache_dir: Optional[str] = None, pitch_tracker=None):
        super().__init__()
        config = _plain(dataset) if dataset is not None else {}
        if not isinstance(config, dict) or config.get("root") in (None, ""):
            raise ValueError("data.dataset.root is not set: pass +data.dataset.root=PATH (or "
                             "data.dataset.root=PATH) pointing at a folder with data/ and metadata/")
        self.transform = transform
        self.root = Path(str(config["root"])).expanduser()
        self.n_files: Optional[int] = _n_files(config.get("n_files"))
        self.requested_tasks = config.get("tasks")
        self.metadata_callbacks = config.get("metadata_callbacks")
        self.cache_dtype = str(config.get("cache_dtype") or "float32")
        self.batch_size = int(batch_size)
        self.val_fraction = float(val_fraction)
        self.split_seed = int(split_seed)
        self.num_workers = int(num_workers)
        self.cache_dir = cache_dir
        self.pitch_tracker = pitch_tracker
        split_files(2, self.val_fraction, 0)  # validates val_fraction now, not at fit time
        self._index: Optional[DatasetIndex] = None
        self._files: Optional[List[AudioFile]] = None
        self._cache: Optional[FrameCache] = None
        self._labels: Optional[Dict[str, np.ndarray]] = None
        self._file_positions: Optional[Dict[str, int]] = None  # file key -> position in _files, for file_labels
        self.train_files: Optional[np.ndarray] = None
        self.val_files: Optional[np.ndarray] = None

    # ------------------------------------------------------------------ index (cheap, lazy)
    @property
    def index(self) -> DatasetIndex:
        """The validated dataset index; raises ``DatasetError`` listing every problem."""
        if self._index is None:
            index = load_index(self.root, self.requested_tasks, self.metadata_callbacks)
            chosen = select_files(len(index.files), self.n_files, self.split_seed)
            self._files = [index.files[i] for i in chosen]
            self.train_files, self.val_files = split_files(len(self._files), self.val_fraction, self.split_seed)
            self._index = index
        return self._index

    @property
    def files(self) -> List[AudioFile]:
        """The files used (after the ``n_files`` subset), sorted by key."""
        _ = self.index
        return list(self._files)

    @property
    def tasks(self) -> List[str]:
        return list(self.index.tasks)

    @property
    def task_classes(self) -> Dict[str, int]:
        """Classes per int task: from classes.txt (max id + 1), else max id seen + 1."""
        return {t: m.n_classes for t, m in self.index.tasks.items() if m.spec.dtype == "int"}

    @property
    def task_types(self) -> Dict[str, str]:
        return {t: m.spec.dtype for t, m in self.index.tasks.items()}

    # ------------------------------------------------------------------ lightning hooks
    def prepare_data(self) -> None:
        """Validate the dataset and build the frame cache if needed (rank 0 only under DDP)."""
        if self._cache is not None:  # already opened by setup() (``fit()`` calls it before Lightning does)
            return
        load_or_build_cache(self.transform, self.files, self.root, self.cache_dir, self.cache_dtype,
                            pitch_tracker=self.pitch_tracker)

    def setup(self, stage: Optional[str] = None) -> None:
        """Open the cache (building it if prepare_data did not) and compute frame labels."""
        if self._cache is not None:
            return
        cache = load_or_build_cache(self.transform, self.files, self.root, self.cache_dir, self.cache_dtype,
                                    pitch_tracker=self.pitch_tracker)
        labels: Dict[str, np.ndarray] = {}
        sample_rate, n_fft, hop = int(self.transform.sample_rate), int(self.transform.n_fft), int(self.transform.hop)
        for task, meta in self.index.tasks.items():
            parts = [frame_labels(meta.labels.get(f.key), int(n), n_fft, hop, sample_rate, meta.spec.dtype)
                     for f, n in zip(self._files, cache.n_frames)]
            dtype = np.int64 if meta.spec.dtype == "int" else np.float32
            labels[task] = np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
        self._labels = labels
        self._cache = cache

    def file_labels(self, key: str) -> Dict[str, np.ndarray]:
        """Frame labels ``{task: (frames,)}`` of the file ``key`` (``data/...``), as batches carry them."""
        if self._cache is None:
            self.setup()
        if self._file_positions is None:
            self._file_positions = {f.key: i for i, f in enumerate(self._files)}
        i = self._file_positions.get(key)
        if i is None:
            raise ValueError(f"{key!r} is not one of the files of this datamodule")
        start, stop = self._cache.offsets[i], self._cache.offsets[i + 1]
        return {task: values[start:stop] for task, values in self._labels.items()}

    def _rows(self, file_indices: np.ndarray) -> np.ndarray:
        offsets = self._cache.offsets
        parts = [np.arange(offsets[i], offsets[i + 1]) for i in file_indices]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def _dataset(self, file_indices: np.ndarray) -> FrameBatchDataset:
        if self._cache is None:
            self.setup()
        return FrameBatchDataset(self._cache.directory / "magnitudes.npy", self._rows(file_indices), self._labels,
                                 self._cache.f0)

    def _loader(self, dataset: FrameBatchDataset, shuffle: bool) -> DataLoader:
        sampler = BatchIndexSampler(len(dataset), self.batch_size, shuffle, self.split_seed)
        return DataLoader(dataset, sampler=sampler, batch_size=None, collate_fn=_passthrough,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._dataset(self.train_files), shuffle=True)

    def val_dataloader(self):
        """Validation frames in order; an empty list when no file is held out."""
        _ = self.index
        if len(self.val_files) == 0:
            return []
        return self._loader(self._dataset(self.val_files), shuffle=False)

    # ------------------------------------------------------------------ statistics
    def normalisation(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-bin mean and std ``(bins,)`` float32 of the transform's ``contrast(|X|)`` over the training
        split. ``log1p(|X|)`` (the default representation) was accumulated in float64 while the cache was
        built; another representation (``log_floor_db``) is accumulated here, in float64, in one pass."""
        if self._cache is None:
            self.setup()
        if float(getattr(self.transform, "contrast_scale", 1.0)) == 1.0:
            mean, std = self._cache.normalisation(self.train_files)
        else:
            mean, std = self._contrast_statistics(self.train_files)
        return torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(std.astype(np.float32))

    def _contrast_statistics(self, file_indices: Sequence[int], chunk: int = 4096) -> Tuple[np.ndarray, np.ndarray]:
        magnitudes, offsets = self._cache.magnitudes, self._cache.offsets
        sums = np.zeros((2, magnitudes.shape[1]), dtype=np.float64)
        count = 0
        with torch.no_grad():
            for i in file_indices:
                for start in range(int(offsets[i]), int(offsets[i + 1]), chunk):
                    stop = min(start + chunk, int(offsets[i + 1]))
                    # a copy: the cache is a read-only memory map, and torch warns on non-writable arrays
                    chunk_magnitudes = np.array(magnitudes[start:stop], dtype=np.float32)
                    features = self.transform.contrast(torch.from_numpy(chunk_magnitudes)).numpy()
                    sums[0] += features.sum(axis=0, dtype=np.float64)
                    sums[1] += np.einsum("fb,fb->b", features, features, dtype=np.float64)
                    count += stop - start
        if count == 0:
            raise ValueError("normalisation: the selected files have no frames")
        mean = sums[0] / count
        return mean, np.sqrt(np.maximum(sums[1] / count - mean * mean, 0.0))

    def summary(self) -> str:
        """Files, frames, seconds and labels per task (printed by ``+check=1``)."""
        if self._cache is None:
            self.setup()
        n_frames = self._cache.n_frames
        seconds_per_frame = self.transform.hop / self.transform.sample_rate
        lines = [f"dataset {self.root}: {len(self._files)} files"
                 + (f" (subset n_files={self.n_files})" if self.n_files is not None else "")
                 + f", {int(n_frames.sum())} frames, {sum(f.seconds for f in self._files):.1f} s; "
                 f"cache {self._cache.directory} ({self.cache_dtype})"]
        for name, part in (("train", self.train_files), ("val", self.val_files)):
            lines.append(f"  {name}: {len(part)} files, {int(n_frames[part].sum())} frames "
                         f"({int(n_frames[part].sum()) * seconds_per_frame:.1f} s)")
        for task in self.tasks:
            values = self._labels[task]
            present = values >= 0 if values.dtype.kind == "i" else ~np.isnan(values)
            n_missing = int((~present).sum())
            kind = (f"{self.task_classes[task]} classes" if task in self.task_classes else "float")
            line = (f"  task '{task}' ({kind}): {int(present.sum())} labelled frames, {n_missing} missing "
                    f"({100.0 * n_missing / max(len(values), 1):.1f}%)")
            if values.dtype.kind == "i" and present.any():
                ids, counts = np.unique(values[present], return_counts=True)
                line += "; per class " + ", ".join(f"{i}: {c}" for i, c in zip(ids.tolist(), counts.tolist()))
            lines.append(line)
        return "\n".join(lines)
