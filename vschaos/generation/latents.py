"""Latents of sound files: each file's posterior (for interpolation endpoints), and the spread of
all their frames (to map trajectories onto where the training data lies).

Encoder labels come from the fixed ``--labels`` values or from the training tree's metadata
(:mod:`vschaos.generation.labels`); a file without a source raises :class:`GenerationError`.
"""
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from vschaos.data.audio import AudioReadError, load_audio
from vschaos.generation.errors import GenerationError
from vschaos.generation.labels import TrainingMetadata, labels_for_frames
from vschaos.generation.reconstruct import encode_audio
from vschaos.generation.trajectories import LatentSpread
from vschaos.models.contract import SpectralModel


def encode_files(vae: SpectralModel, paths: Sequence[Path], *, fixed_labels: Mapping[str, int],
                 dataset_root: Optional[Path] = None, metadata_callbacks: Optional[dict] = None
                 ) -> Tuple[List[Tensor], List[Tensor]]:
    """Posterior means and stds ``(frames, latent_dim)`` of each sound file in ``paths``, in order.

    ``dataset_root`` and ``metadata_callbacks``: the run's training tree, where files inside it find
    their encoder labels."""
    metadata = TrainingMetadata(dataset_root, vae.encoder_tasks, metadata_callbacks, paths) \
        if vae.encoder_tasks else None
    transform = vae.transform
    means, stds = [], []
    for path in paths:
        try:
            audio = load_audio(path, int(transform.sample_rate))
        except AudioReadError as error:
            raise GenerationError(str(error)) from error
        if audio.numel() == 0:
            raise GenerationError(f"{path}: no samples")
        labels = labels_for_frames(transform.num_frames(audio.shape[0]), transform, fixed=fixed_labels,
                                   encoder_tasks=vae.encoder_tasks, metadata=metadata, path=Path(path))
        with torch.no_grad():
            _, mean, std = encode_audio(vae, audio, labels)
        means.append(mean)
        stds.append(std)
    return means, stds


def latent_spread(vae: SpectralModel, paths: Sequence[Path], *, fixed_labels: Mapping[str, int],
                  dataset_root: Optional[Path] = None, metadata_callbacks: Optional[dict] = None) -> LatentSpread:
    """Per-dimension spread of the posterior means of every frame of the sound files ``paths``."""
    means, _ = encode_files(vae, paths, fixed_labels=fixed_labels, dataset_root=dataset_root,
                            metadata_callbacks=metadata_callbacks)
    frames = torch.cat(means, dim=0)
    if frames.shape[0] < 2:
        raise GenerationError("need at least two frames of audio")
    return LatentSpread.from_latents(frames)
