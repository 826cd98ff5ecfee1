"""Offline rendering of a run's latent prior: ``generate.py prior RUN -s SECONDS``.

The latents (and decoder labels) are the export's ``prior`` stream (:func:`vschaos.models.prior.sample_latents`: the same seed and
temperature give the same frames as the exported method after ``reset()``), decoded offline like a trajectory
(:func:`vschaos.generation.synthesis.decode_latent_path`: offline phase reconstruction, so the audio is not the
streamed ``generate``'s sample for sample). The file is written only when every sample is finite.
"""
import math
from pathlib import Path
from typing import Dict, Optional

import torch
from torch import Tensor

from vschaos.data.audio import save_audio
from vschaos.dsp.phase_methods import DEFAULT_GLA_ITERATIONS, DEFAULT_PHASE
from vschaos.dsp.bounds import bounded_latent
from vschaos.generation.errors import GenerationError
from vschaos.generation.outputs import write_failure
from vschaos.generation.reconstruct import resample_exact
from vschaos.generation.synthesis import decode_latent_path, default_decoder_labels
from vschaos.models.contract import SpectralModel
from vschaos.models.prior import LatentPrior, sample_latents

PRIOR_FOLDER = "prior"


def prior_file_name(seed: int, temperature: float) -> str:
    """``prior_seed<S>_t<T>.wav``."""
    return f"prior_seed{seed}_t{temperature:g}.wav"


def render_prior(vae: SpectralModel, prior: LatentPrior, out_dir: Path, *, seconds: float, temperature: float = 1.0,
                 seed: int = 0, sample_rate: Optional[int] = None, fixed_labels: Optional[Dict[str, int]] = None,
                 method: str = DEFAULT_PHASE, n_iter: int = DEFAULT_GLA_ITERATIONS) -> Path:
    """Write ``out_dir/prior/prior_seed<S>_t<T>.wav``: ``seconds`` of audio (at ``sample_rate``, default the
    model's) decoded from the prior's latents; returns its path. Decoder labels: ``fixed_labels`` where given,
    otherwise the prior's own classes (a prior fitted to a conditioned model draws them). Raises
    :class:`GenerationError` for non-finite audio (nothing written) or a file that cannot be written."""
    transform = vae.transform
    model_rate, hop = int(transform.sample_rate), int(transform.hop)
    out_rate = int(sample_rate or model_rate)
    n_frames = max(1, math.ceil(seconds * model_rate / hop))
    z, drawn = sample_latents(prior, n_frames, temperature, seed)
    latents: Tensor = bounded_latent(z[0])
    generator = torch.Generator().manual_seed(int(seed))
    labels = default_decoder_labels(vae, n_frames, dict(fixed_labels or {}), generator)
    for i, task in enumerate(vae.decoder_tasks[:prior.n_labels]):  # the prior's own classes, unless fixed
        if task not in (fixed_labels or {}):
            labels[task] = drawn[0, :, i]
    with torch.no_grad():
        audio = decode_latent_path(vae, latents, labels, method=method, n_iter=n_iter, generator=generator)
    audio = resample_exact(audio, model_rate, out_rate, max(1, int(round(seconds * out_rate))))
    if not bool(torch.isfinite(audio).all()):
        raise GenerationError(f"the prior's audio has {int((~torch.isfinite(audio)).sum())} non-finite samples; "
                              f"nothing written")
    path = Path(out_dir) / PRIOR_FOLDER / prior_file_name(seed, temperature)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_audio(path, audio, out_rate)
    except OSError as error:
        raise write_failure(path, error) from error
    return path
