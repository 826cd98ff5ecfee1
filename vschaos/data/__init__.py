"""Dataset tree parsing and validation, metadata readers, spectral frame cache, LightningDataModule.

``SpectralDataModule`` and the cache are imported on first use, so the dataset tools do not pay
for importing lightning.
"""
from vschaos.data.audio import AUDIO_EXTENSIONS, AudioReadError, audio_info, load_audio, save_audio, scan_audio_files
from vschaos.data.dataset import DatasetIndex, DatasetReport, TaskReport, frame_labels, load_index, validate_dataset
from vschaos.data.metadata import DatasetError, FileLabels, Problem

_LAZY = {"SpectralDataModule": "vschaos.data.datamodule", "FrameCache": "vschaos.data.cache",
         "load_or_build_cache": "vschaos.data.cache"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vschaos.data' has no attribute {name!r}")


__all__ = [
    "AUDIO_EXTENSIONS", "AudioReadError", "audio_info", "load_audio", "save_audio", "scan_audio_files",
    "FrameCache", "load_or_build_cache", "SpectralDataModule", "DatasetIndex", "DatasetReport", "TaskReport",
    "frame_labels", "load_index", "validate_dataset", "DatasetError", "FileLabels", "Problem",
]
