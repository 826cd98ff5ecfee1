"""Dataset tree parsing and validation, metadata readers, spectral frame cache, LightningDataModule.

Every name is imported on first use (PEP 562), so that ``import vschaos.data.<module>`` loads only what that
module needs: the dataset tools start without torch or lightning.
"""
_LAZY = {
    "AUDIO_EXTENSIONS": "vschaos.data.audio", "AudioReadError": "vschaos.data.audio", "audio_info": "vschaos.data.audio",
    "load_audio": "vschaos.data.audio", "save_audio": "vschaos.data.audio", "scan_audio_files": "vschaos.data.audio",
    "DatasetIndex": "vschaos.data.dataset", "DatasetReport": "vschaos.data.dataset",
    "TaskReport": "vschaos.data.dataset", "frame_labels": "vschaos.data.dataset", "load_index": "vschaos.data.dataset",
    "validate_dataset": "vschaos.data.dataset",
    "DatasetError": "vschaos.data.metadata", "FileLabels": "vschaos.data.metadata", "Problem": "vschaos.data.metadata",
    "SpectralDataModule": "vschaos.data.datamodule",
    "FrameCache": "vschaos.data.cache", "load_or_build_cache": "vschaos.data.cache",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vschaos.data' has no attribute {name!r}")


__all__ = list(_LAZY)
