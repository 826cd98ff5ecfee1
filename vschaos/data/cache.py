"""Spectral frame cache: the magnitudes of every file in one contiguous memory-mappable array.

Layout of ``cache_dir/<hash>/`` (default ``cache_dir = ROOT/.vschaos_cache``)::

    magnitudes.npy   (total_frames, bins) float32 (or float16) linear |X|, files one after another
    stats.npy        (n_files, 2, bins) float64: per file, sum and sum of squares of contrast(|X|)
    f0.npy           (total_frames,) float32 Hz, only for a model whose f0 comes from a longer window
                     (``transform.pitch_window``): each frame's f0 read by the model's tracker
    index.json       fingerprint, file keys, frame offsets, shapes, byte sizes (written last)

``<hash>`` hashes everything that changes the magnitudes: ``transform.cache_key()``, the sample
rate, the dtype and each file's key, size, mtime and a digest of its first and last 64 KiB (so that a
file rewritten with the same size and mtime rebuilds), and, with f0s, the tracker's ``cache_key()`` and the
pitch window. Labels are not cached. Every file is
written to a temporary name and renamed; ``index.json`` is the commit marker, so a crash leaves
no index pointing at partial data. A cache that fails any check (bad JSON, fingerprint, shape,
dtype, byte size, truncated ``.npy``) is rebuilt with a warning.

Integrity: ``index.json`` holds a CRC-32 of each file's block of rows in ``magnitudes.npy`` and of
``stats.npy`` (and ``f0.npy``); every open verifies them (one sequential read of the cache, which also warms the page
cache for training; cost in ``bench/cache_integrity.py``), so same-size damage (a disk error, a
stray write) is caught and the cache rebuilt instead of feeding NaN or garbage rows to training.
"""
import hashlib
import io
import json
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

from vschaos.data.audio import AudioReadError, AudioValueError, load_audio
from vschaos.data.dataset import AudioFile
from vschaos.data.metadata import DatasetError, Problem
from vschaos.data.problems import printable
from vschaos.data.textlines import TextFileError, read_text
from vschaos.data.tree import outside_write_problem
from vschaos.dsp.f0 import window_f0
from vschaos.dsp.functional import chunked_frames, contrast, num_frames
from vschaos.io import atomic_save_npy, atomic_write, atomic_write_text

CACHE_FORMAT = 2  # 2: content digests in the fingerprint, CRC-32 of blocks and stats in the index
CACHE_DIRNAME = ".vschaos_cache"
DTYPES = ("float32", "float16")


@dataclass
class FrameCache:
    """A loaded cache. ``magnitudes`` is a read-only memmap ``(total_frames, bins)``; the frames
    of file ``i`` are rows ``offsets[i]:offsets[i + 1]``. ``built`` says whether this call built it."""

    directory: Path
    keys: List[str]
    offsets: np.ndarray  # (n_files + 1,) int64
    magnitudes: np.ndarray
    stats: np.ndarray  # (n_files, 2, bins) float64
    built: bool
    f0: Optional[np.ndarray] = None  # (total_frames,) float32 Hz, when built with a pitch tracker

    @property
    def n_frames(self) -> np.ndarray:
        """Frames per file ``(n_files,)``."""
        return np.diff(self.offsets)

    def normalisation(self, file_indices: Sequence[int]) -> "tuple[np.ndarray, np.ndarray]":
        """Per-bin mean and std ``(bins,)`` float64 of ``contrast(|X|)`` (dsp.functional) over the frames of these files."""
        indices = np.asarray(file_indices, dtype=np.int64)
        count = float(self.n_frames[indices].sum())
        if count == 0:
            raise ValueError("normalisation: the selected files have no frames")
        sums = self.stats[indices].sum(axis=0)  # (2, bins), float64
        mean = sums[0] / count
        var = np.maximum(sums[1] / count - mean * mean, 0.0)
        return mean, np.sqrt(var)


def cache_fingerprint(transform, files: Sequence[AudioFile], dtype: str, pitch_tracker=None) -> Dict[str, object]:
    """Plain data that identifies a cache's content (hashed for its folder name)."""
    entries = []
    for f in files:
        stat = f.path.stat()
        entries.append([f.key, int(stat.st_size), int(stat.st_mtime_ns), content_digest(f.path, int(stat.st_size))])
    fingerprint = {"format": CACHE_FORMAT, "transform": dict(transform.cache_key()),
                   "sample_rate": int(transform.sample_rate), "dtype": dtype, "files": entries}
    if pitch_tracker is not None:  # only then: the caches without f0s keep their names
        fingerprint["pitch"] = {"window": int(transform.pitch_window), "tracker": dict(pitch_tracker.cache_key())}
    return fingerprint


def fingerprint_hash(fingerprint: Dict[str, object]) -> str:
    # ASCII JSON (the default): a file name that is not UTF-8 (surrogate escapes) is written \udcNN, never
    # an encoding error, and stays distinct from the UTF-8 name it resembles
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def file_magnitudes(transform, audio: torch.Tensor, chunk_frames: int = 128, batch_chunks: int = 2) -> torch.Tensor:
    """``transform.magnitude`` of a whole file ``(time,)`` -> ``(frames, bins)``, computed in
    batches of overlapping chunks so memory stays bounded and the FFTs are batched.
    Equal to ``transform.magnitude(audio[None])[0]`` to float rounding."""
    n_fft, hop = int(transform.n_fft), int(transform.hop)
    return chunked_frames(audio, n_fft, hop, num_frames(audio.shape[-1], n_fft, hop), transform.magnitude,
                          chunk_frames, batch_chunks)


# ---------------------------------------------------------------------------------------- integrity
DIGEST_BLOCK = 1 << 16  # bytes read at each end of an audio file for its content digest


def content_digest(path: Path, size: int) -> str:
    """BLAKE2b (64-bit) of a file's first and last ``DIGEST_BLOCK`` bytes: catches a rewrite that keeps
    size and mtime (most edits change a header or the end) for two small reads per file."""
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as handle:
        digest.update(handle.read(DIGEST_BLOCK))
        if size > DIGEST_BLOCK:
            handle.seek(max(DIGEST_BLOCK, size - DIGEST_BLOCK))
            digest.update(handle.read(DIGEST_BLOCK))
    return digest.hexdigest()


def block_checksums(magnitudes: np.ndarray, offsets: np.ndarray) -> List[int]:
    """CRC-32 of each file's rows ``magnitudes[offsets[i]:offsets[i + 1]]`` (their bytes as stored)."""
    return [zlib.crc32(np.ascontiguousarray(magnitudes[start:stop]).data) for start, stop in zip(offsets[:-1], offsets[1:])]


def file_checksum(path: Path) -> int:
    """CRC-32 of a whole (small) file."""
    return zlib.crc32(Path(path).read_bytes())


def _verify_integrity(directory: Path, index: Dict[str, object], magnitudes: np.ndarray, offsets: np.ndarray,
                      keys: List[str]) -> None:
    """Compare the CRC-32s recorded in ``index.json`` with the data; ``ValueError`` naming the first damaged
    block (its audio file) or ``stats.npy``."""
    recorded = index.get("block_crc32")
    if not isinstance(recorded, list) or len(recorded) != len(keys):
        raise ValueError(f"{directory / 'index.json'}: no block checksums")
    for key, expected, actual, start, stop in zip(keys, recorded, block_checksums(magnitudes, offsets),
                                                  offsets[:-1], offsets[1:]):
        if actual != expected:
            raise ValueError(f"{directory / 'magnitudes.npy'}: rows {start}..{stop} ({key}) fail their checksum "
                             f"(damaged on disk)")
    if file_checksum(directory / "stats.npy") != index.get("stats_crc32"):
        raise ValueError(f"{directory / 'stats.npy'}: fails its checksum (damaged on disk)")


def _validate_stats(path: Path, stats: np.ndarray, n_files: int, n_bins: int) -> None:
    """``stats.npy`` holds per-file sums and sums of squares: right shape and dtype, finite, squares >= 0."""
    if stats.shape != (n_files, 2, n_bins) or stats.dtype != np.float64:
        raise ValueError(f"{path}: shape {stats.shape} {stats.dtype}, expected ({n_files}, 2, {n_bins}) float64")
    if not np.all(np.isfinite(stats)):
        raise ValueError(f"{path}: contains NaN/Inf")
    if np.any(stats[:, 1] < 0):
        raise ValueError(f"{path}: negative sums of squares")


def _load_cache(directory: Path, fingerprint: Dict[str, object], keys: List[str]) -> FrameCache:
    """Open an existing cache, raising ``ValueError`` on any inconsistency."""
    index_path = directory / "index.json"
    try:
        index = json.loads(read_text(index_path))  # a regular file only: a FIFO here would block forever
    except (TextFileError, OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{index_path}: unreadable index ({error})") from error
    if not isinstance(index, dict) or index.get("fingerprint") != json.loads(json.dumps(fingerprint, default=str)):
        raise ValueError(f"{index_path}: fingerprint does not match the dataset/transform")
    offsets = np.asarray(index.get("offsets", []), dtype=np.int64)
    n_bins, dtype = int(index["n_bins"]), str(index["dtype"])
    if index.get("keys") != keys or offsets.shape != (len(keys) + 1,) or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{index_path}: file list or offsets inconsistent")
    mag_path, stats_path = directory / "magnitudes.npy", directory / "stats.npy"
    for path, size_key in ((mag_path, "magnitudes_bytes"), (stats_path, "stats_bytes")):
        if not path.is_file() or path.stat().st_size != int(index[size_key]):
            raise ValueError(f"{path}: missing or wrong size (truncated?)")
    magnitudes = np.load(mag_path, mmap_mode="r")
    stats = np.load(stats_path)
    if magnitudes.shape != (int(offsets[-1]), n_bins) or magnitudes.dtype != np.dtype(dtype):
        raise ValueError(f"{mag_path}: shape {magnitudes.shape} {magnitudes.dtype}, expected "
                         f"({int(offsets[-1])}, {n_bins}) {dtype}")
    _validate_stats(stats_path, stats, len(keys), n_bins)
    _verify_integrity(directory, index, magnitudes, offsets, keys)
    f0 = _load_f0(directory, index, int(offsets[-1])) if "pitch" in fingerprint else None
    return FrameCache(directory, keys, offsets, magnitudes, stats, built=False, f0=f0)


def _load_f0(directory: Path, index: Dict[str, object], n_frames: int) -> np.ndarray:
    """``f0.npy``: ``(n_frames,)`` float32, finite and positive, its recorded size and CRC-32; else ``ValueError``."""
    path = directory / "f0.npy"
    if not path.is_file() or path.stat().st_size != int(index["f0_bytes"]):
        raise ValueError(f"{path}: missing or wrong size (truncated?)")
    if file_checksum(path) != index.get("f0_crc32"):
        raise ValueError(f"{path}: fails its checksum (damaged on disk)")
    f0 = np.load(path)
    if f0.shape != (n_frames,) or f0.dtype != np.float32 or not bool(np.all(f0 > 0) and np.all(np.isfinite(f0))):
        raise ValueError(f"{path}: shape {f0.shape} {f0.dtype}, expected ({n_frames},) float32, finite and > 0")
    return f0


def _npy_header(dtype: str, shape: tuple) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue()


def _build_cache(directory: Path, transform, files: Sequence[AudioFile], fingerprint: Dict[str, object],
                 dtype: str, progress: bool, pitch_tracker=None) -> None:
    """Stream every file's magnitudes into ``magnitudes.npy`` (no second copy in memory or on disk),
    then ``stats.npy`` (and, with ``pitch_tracker``, ``f0.npy``), then ``index.json``; each through a
    temporary file and a rename."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.json").unlink(missing_ok=True)  # invalidate first: the index is the commit marker
    sample_rate = int(transform.sample_rate)
    n_bins = int(transform.n_bins)
    offsets = [0]
    stats = np.zeros((len(files), 2, n_bins), dtype=np.float64)
    store_dtype = getattr(torch, dtype)
    # the header needs the frame count: predict it from the audio headers, patch it at the end
    predicted = sum(num_frames(f.n_samples(sample_rate), int(transform.n_fft), int(transform.hop)) for f in files)
    header = _npy_header(dtype, (predicted, n_bins))
    bad_samples: List[Problem] = []
    f0s: List[np.ndarray] = []

    def write_magnitudes(tmp: str) -> None:
        total_seconds = sum(f.seconds for f in files)
        with open(tmp, "r+b") as out, tqdm(total=round(total_seconds, 1), unit="s audio", disable=not progress,
                                           desc="spectral cache", leave=False) as bar:
            out.write(header)
            for i, f in enumerate(files):
                try:
                    audio = load_audio(f.path, sample_rate)
                except AudioValueError as error:  # keep going: report every such file at once
                    bad_samples.append(Problem(error.path, None, error.reason))
                    continue
                except AudioReadError as error:
                    raise DatasetError([Problem(str(f.path), None, f"unreadable audio: {error.reason}")]) from error
                if bad_samples:
                    continue
                stored = file_magnitudes(transform, audio).to(store_dtype).numpy()
                out.write(stored.tobytes())
                if pitch_tracker is not None:
                    f0s.append(window_f0(transform, pitch_tracker, audio).to(torch.float32).numpy())
                # statistics of exactly what is stored (float16 rounding included), through the
                # model's own contrast so the fitted norm_mean/norm_std can never drift from it;
                # accumulated in float64
                features = contrast(torch.from_numpy(stored).to(torch.float32)).numpy()
                stats[i, 0] = features.sum(axis=0, dtype=np.float64)
                stats[i, 1] = np.einsum("fb,fb->b", features, features, dtype=np.float64)
                offsets.append(offsets[-1] + stored.shape[0])
                bar.update(min(round(f.seconds, 1), bar.total - bar.n))  # rounding must not pass 100%
            if bad_samples:
                raise DatasetError(bad_samples, header="sound files with unusable samples")
            actual = _npy_header(dtype, (offsets[-1], n_bins))
            if len(actual) != len(header):  # only if a resampler's length rounding surprised us
                raise _HeaderMismatch()
            out.seek(0)
            out.write(actual)

    try:
        atomic_write(directory / "magnitudes.npy", write_magnitudes)
    except _HeaderMismatch:  # rare: rebuild with the now known, exact frame count
        header = _npy_header(dtype, (offsets[-1], n_bins))
        offsets[:] = [0]
        f0s.clear()
        atomic_write(directory / "magnitudes.npy", write_magnitudes)

    atomic_save_npy(directory / "stats.npy", stats)
    index = {"fingerprint": fingerprint, "keys": [f.key for f in files], "offsets": offsets,
             "n_bins": n_bins, "dtype": dtype,
             "magnitudes_bytes": (directory / "magnitudes.npy").stat().st_size,
             "stats_bytes": (directory / "stats.npy").stat().st_size}
    index.update(_integrity_record(directory, offsets))
    if pitch_tracker is not None:
        atomic_save_npy(directory / "f0.npy", np.concatenate(f0s) if f0s else np.zeros(0, np.float32))
        index.update(f0_bytes=(directory / "f0.npy").stat().st_size, f0_crc32=file_checksum(directory / "f0.npy"))
    atomic_write_text(directory / "index.json", json.dumps(index, default=str))


def _integrity_record(directory: Path, offsets: List[int]) -> Dict[str, object]:
    """Checksums of what is now on disk (read back, so a bad write is caught on the next open)."""
    magnitudes = np.load(directory / "magnitudes.npy", mmap_mode="r")
    return {"block_crc32": block_checksums(magnitudes, np.asarray(offsets, dtype=np.int64)),
            "stats_crc32": file_checksum(directory / "stats.npy")}


class _HeaderMismatch(Exception):
    """The predicted frame count's .npy header length differs from the real one."""


def load_or_build_cache(transform, files: Sequence[AudioFile], root: Union[str, Path],
                        cache_dir: Optional[Union[str, Path]] = None, dtype: str = "float32",
                        progress: bool = True, pitch_tracker=None) -> FrameCache:
    """The cache of ``files`` (in this order) under ``transform``: reused when its fingerprint
    matches and it passes every check, else (re)built. With ``pitch_tracker`` (a
    :class:`vschaos.dsp.f0.HarmonicF0` reading ``transform.pitch_magnitude``), the cache also holds each
    frame's f0 (:attr:`FrameCache.f0`). Raises :class:`DatasetError` if audio
    cannot be decoded, or if the default cache folder ``ROOT/.vschaos_cache`` (or its ``<hash>`` folder) links
    out of the dataset root (an explicit ``cache_dir`` is the user's choice and may be anywhere)."""
    if dtype not in DTYPES:
        raise ValueError(f"cache dtype must be one of {DTYPES}, got {dtype!r}")
    fingerprint = cache_fingerprint(transform, files, dtype, pitch_tracker)
    base = Path(cache_dir) if cache_dir is not None else Path(root) / CACHE_DIRNAME
    directory = base / fingerprint_hash(fingerprint)
    if cache_dir is None:  # the dataset's own cache folder: a link in it must not lead the cache elsewhere
        entries = sorted(directory.iterdir()) if directory.is_dir() else []
        outside = [p for p in (outside_write_problem(e, root) for e in [directory / "index.json", *entries]) if p]
        if outside:
            raise DatasetError(outside[:1], header="spectral cache")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file named .vschaos_cache, a read-only dataset
        raise DatasetError([Problem(str(directory), None, f"cannot create the spectral cache folder "
                                                          f"({error.strerror or error}): remove what is in the way, "
                                                          f"or set data.cache_dir")], header="spectral cache") from error
    keys = [f.key for f in files]
    if (directory / "index.json").exists():
        try:
            return _load_cache(directory, fingerprint, keys)
        except (ValueError, KeyError, TypeError, OSError) as error:
            warnings.warn(printable(f"spectral cache {directory} is corrupt or partial, rebuilding: {error}"))
    _build_cache(directory, transform, files, fingerprint, dtype, progress, pitch_tracker)
    cache = _load_cache(directory, fingerprint, keys)
    cache.built = True
    return cache
