"""Run folders, atomic checkpoints, resume and TensorBoard monitors."""
from vschaos.training.run import RunFolderError, build_model, find_checkpoint, find_version_dir, open_run

__all__ = ["RunFolderError", "build_model", "find_checkpoint", "find_version_dir", "open_run"]
