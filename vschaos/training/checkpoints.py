"""Atomic checkpoint writes for Lightning (temp file + rename, via :mod:`vschaos.io`)."""
from typing import Any, Dict, Optional

from lightning.pytorch.plugins.io import TorchCheckpointIO

from vschaos.io import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """Like Lightning's ``TorchCheckpointIO`` but a crash mid-write never leaves a truncated ``.ckpt``."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO does not take storage_options, got {storage_options!r}")
        atomic_torch_save(checkpoint, path)
