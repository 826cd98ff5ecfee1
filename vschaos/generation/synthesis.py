"""Decoding latent trajectories to sound (``generate.py trajectories``).

Length and trimming: a path of ``steps`` latent frames is decoded to ``steps`` magnitude frames.
The offline DGT of a signal of ``steps * hop`` samples has ``steps + n_fft / hop - 1`` frames
(frame ``t`` centred at sample ``t * hop + hop - n_fft / 2``), so the last decoded frame is held
for the ``n_fft / hop - 1`` frames that overlap the end of the signal, and phase reconstruction
(``transform.reconstruct``) synthesises exactly ``steps * hop`` samples at the model's rate:
no tail is cut off and no fade-out appears. The result is then resampled to the requested rate
(``round(steps * hop * rate / model_rate)`` samples).
"""
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Dict, List, Optional, Sequence, TypeVar

import numpy as np
import torch
from torch import Tensor

from vschaos.generation.errors import GenerationError
from vschaos.generation.outputs import write_failure
from vschaos.generation.plots import plot_latents_and_spectrogram
from vschaos.dsp.phase_methods import DEFAULT_GLA_ITERATIONS, DEFAULT_PHASE
from vschaos.generation.reconstruct import resample_exact
from vschaos.generation.trajectories import (INTERPOLATE, LatentSpread, check_trajectory_names,
                                             interpolate_trajectory, make_trajectory)
from vschaos.data.audio import save_audio
from vschaos.io import atomic_save_npy, atomic_write_text
from vschaos.models.contract import SpectralModel


TRAJECTORIES_FOLDER = "trajectories"  # the folder below OUT that trajectories writes in
MANIFEST_NAME = "manifest.json"
OUTPUT_SUFFIXES = (".wav", ".npy", ".png")
_OUTPUT_NAME = re.compile(r"(.+)_(0|[1-9][0-9]*)(\.wav|\.npy|\.png)")
T = TypeVar("T")


def is_trajectory_output(name: str, types: Collection[str], batches: int) -> bool:
    """Whether ``generate_trajectories(names=types, batches=batches)`` writes a file called ``name``
    (``<type>_<i>.wav|.npy|.png``, ``i < batches``; the manifest aside)."""
    match = _OUTPUT_NAME.fullmatch(name)
    return match is not None and match.group(1) in types and int(match.group(2)) < batches


def _written(path: Path, write: Callable[[], T]) -> T:
    """``write()``, its OSError turned into a GenerationError naming ``path``."""
    try:
        return write()
    except OSError as error:
        raise write_failure(path, error) from error


def path_seed(seed: int, name: str, index: int) -> int:
    """Seed of trajectory ``name`` number ``index``: depends only on these three, so the same
    file comes out whatever other types or batch counts are asked for."""
    return zlib.crc32(f"{seed}:{name}:{index}".encode("utf-8"))


def hold_last_frame(magnitude: Tensor, n_frames: int) -> Tensor:
    """Extend ``(frames, bins)`` to ``(n_frames, bins)`` by repeating the last frame."""
    missing = n_frames - magnitude.shape[0]
    if missing <= 0:
        return magnitude[:n_frames]
    return torch.cat([magnitude, magnitude[-1:].expand(missing, -1)], dim=0)


@torch.no_grad()
def decode_latent_path(vae: SpectralModel, latents: Tensor, labels: Dict[str, Tensor], *,
                       method: str = DEFAULT_PHASE, n_iter: int = DEFAULT_GLA_ITERATIONS,
                       generator: Optional[torch.Generator] = None) -> Tensor:
    """Latent path ``(steps, latent_dim)`` (+ decoder labels ``{task: (steps,)}``) -> audio
    ``(steps * hop,)`` at the model's rate (see the module docstring for the trimming)."""
    transform = vae.transform
    steps = int(latents.shape[0])
    length = steps * int(transform.hop)
    decoder_labels = {task: labels[task] for task in vae.decoder_tasks if task in labels}
    magnitude = transform.from_features(vae.decode(latents.float(), decoder_labels))
    padded = hold_last_frame(magnitude, transform.num_frames(length))
    return transform.reconstruct(padded[None], length, method=method, n_iter=n_iter, generator=generator)[0]


def default_decoder_labels(vae: SpectralModel, steps: int, fixed: Dict[str, int],
                           generator: torch.Generator) -> Dict[str, Tensor]:
    """Decoder labels for a generated path ``{task: LongTensor (steps,)}``: ``fixed`` (``--labels``)
    where given; a task predicted from the latent is left to the model's predictor (it follows the
    path); any other decoder task (spectrum predictors included: a latent path has no spectrum to
    read) gets one class drawn uniformly from ``generator`` (constant over the path)."""
    labels: Dict[str, Tensor] = {}
    for task in vae.decoder_tasks:
        if task in fixed:
            labels[task] = torch.full((steps,), int(fixed[task]), dtype=torch.long)
        elif task not in vae.predicted_tasks or task in vae.spectrum_tasks:
            drawn = int(torch.randint(int(vae.task_dims[task]), (1,), generator=generator))
            labels[task] = torch.full((steps,), drawn, dtype=torch.long)
    return labels


def describe_labels(vae: SpectralModel, labels: Dict[str, Tensor], latents: Tensor) -> Dict[str, object]:
    """Labels actually decoded, for the manifest: a constant as its id, a varying one as a list,
    predicted tasks as the predictor's per-frame argmax."""
    described: Dict[str, object] = {}
    completed = vae.complete_labels(latents.float(), dict(labels)) if vae.predicted_tasks else labels
    for task in vae.decoder_tasks:
        if task not in completed:
            continue
        values = completed[task].tolist()
        described[task] = values[0] if len(set(values)) == 1 else values
    return described


def labels_title(described: Dict[str, object], class_names: Optional[Dict[str, Dict[int, str]]] = None) -> str:
    """``pitch=A (9), octave=4 (5)`` for a plot title: a constant label by name (and id), a varying one
    (a predictor following the path) as ``pitch=predicted``."""
    parts = []
    for task, value in described.items():
        if isinstance(value, list):
            parts.append(f"{task}=predicted")
            continue
        name = (class_names or {}).get(task, {}).get(int(value))
        parts.append(f"{task}={name} ({value})" if name is not None and str(name) != str(value) else f"{task}={value}")
    return ", ".join(parts)


def load_manifest(path: Path) -> Dict[str, Dict[str, object]]:
    """The ``files`` entries of an existing ``manifest.json`` (empty if there is none), so that a second
    ``trajectories`` call into the same folder adds to it instead of losing the first call's seeds. A
    manifest written before per-file settings had its settings at the top: they are copied into its entries."""
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GenerationError(f"cannot add to {path}: {error}; move it away or choose another --out") from error
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(entry, dict) for entry in files.values()):
        raise GenerationError(f"cannot add to {path}: not a trajectories manifest (no 'files' mapping); move it "
                              f"away or choose another --out")
    top = {key: value for key, value in manifest.items() if key != "files"}
    return {stem: {**top, **entry} for stem, entry in files.items()}


@dataclass
class TrajectoryReport:
    """Files written by :func:`generate_trajectories` (``{type}_{i}`` stems) and the manifest."""

    stems: List[str] = field(default_factory=list)
    manifest_path: Optional[Path] = None

    def format(self) -> str:
        return f"wrote {len(self.stems)} trajectories (.wav, .npy, .png) and {self.manifest_path}"


def generate_trajectories(vae: SpectralModel, names: Sequence[str], out_dir: Path, *, batches: int, steps: int,
                          fixed_labels: Dict[str, int], sample_rate: Optional[int] = None, seed: int = 0,
                          method: str = DEFAULT_PHASE, n_iter: int = DEFAULT_GLA_ITERATIONS,
                          spread: Optional[LatentSpread] = None, endpoints: Optional[Sequence[Tensor]] = None,
                          endpoint_stds: Optional[Sequence[Tensor]] = None,
                          log: Callable[[str], None] = print,
                          class_names: Optional[Dict[str, Dict[int, str]]] = None) -> TrajectoryReport:
    """For each type in ``names`` and each batch ``i < batches``, write ``out_dir/trajectories/``
    ``<type>_<i>.wav`` (``steps * hop`` samples at the model's rate, resampled to
    ``sample_rate``), ``<type>_<i>.npy`` (the latent path ``(steps, latent_dim)`` float32) and
    ``<type>_<i>.png`` (titled with the decoded labels, by ``class_names`` where known); plus
    ``manifest.json``: per file its type, batch, labels decoded and the settings that made it (seed, steps,
    rates, phase, spread). Entries of an earlier call into the same folder are kept (a file made again
    replaces its entry). A path whose audio is not finite (NaN/Inf) is not written: GenerationError.
    ``spread`` maps the generator-driven paths (default: the prior N(0, I), see ``trajectories``).

    ``interpolate`` needs ``endpoints``: two latent sequences ``(frames, latent_dim)`` (posterior
    means of two sounds); batch 0 interpolates the means frame by frame, batch ``i > 0`` draws
    each sound's latents from its posterior (``endpoint_stds``) with a seeded generator.
    Everything is deterministic for a given ``seed``. A file that cannot be written (OSError) stops the work:
    GenerationError naming it (every file is written atomically: those before it are complete, none is partial).
    """
    check_trajectory_names(list(names))
    if batches < 1 or steps < 1:
        raise GenerationError(f"-b/--batches and -s/--steps must be >= 1 (got {batches}, {steps})")
    if INTERPOLATE in names and (endpoints is None or len(endpoints) != 2):
        raise GenerationError("the 'interpolate' trajectory needs exactly two sounds: --files A B")
    transform = vae.transform
    model_rate = int(transform.sample_rate)
    out_rate = int(sample_rate or model_rate)
    out_length = int(round(steps * transform.hop * out_rate / float(model_rate)))
    target_dir = Path(out_dir) / TRAJECTORIES_FOLDER
    report = TrajectoryReport()
    manifest_path = target_dir / MANIFEST_NAME
    files = load_manifest(manifest_path)  # before any work: a manifest we cannot extend stops the command
    settings: Dict[str, object] = {"seed": seed, "steps": steps, "hop": int(transform.hop),
                                   "model_sample_rate": model_rate, "sample_rate": out_rate,
                                   "phase": method,
                                   "spread": "prior N(0, I)" if spread is None else
                                   {"mean": spread.mean.tolist(), "std": spread.std.tolist()}}
    for name in dict.fromkeys(names):  # each type once, in the order given
        for index in range(batches):
            generator = torch.Generator().manual_seed(path_seed(seed, name, index))
            if name == INTERPOLATE:
                start, end = endpoints[0], endpoints[1]
                if index > 0 and endpoint_stds is not None:
                    start = start + endpoint_stds[0] * torch.randn(start.shape, generator=generator)
                    end = end + endpoint_stds[1] * torch.randn(end.shape, generator=generator)
                latents = interpolate_trajectory(start, end, steps)
            else:
                latents = make_trajectory(name, steps, int(vae.latent_dim), generator, spread)
            labels = default_decoder_labels(vae, steps, fixed_labels, generator)
            audio = decode_latent_path(vae, latents, labels, method=method, n_iter=n_iter, generator=generator)
            output = resample_exact(audio, model_rate, out_rate, out_length)
            stem = f"{name}_{index}"
            if not bool(torch.isfinite(output).all()):
                if report.stems:  # keep the record of what was written before stopping
                    _written(manifest_path, lambda: atomic_write_text(manifest_path,
                                                                      json.dumps({"files": files}, indent=2) + "\n"))
                raise GenerationError(f"{stem}: the model decoded {int((~torch.isfinite(output)).sum())} non-finite "
                                      f"sample(s) (NaN/Inf); {stem}.wav not written")
            wav, npy, png = (target_dir / f"{stem}{suffix}" for suffix in OUTPUT_SUFFIXES)
            _written(wav, lambda: save_audio(wav, output, out_rate))
            array = latents.detach().cpu().numpy().astype(np.float32)
            _written(npy, lambda: atomic_save_npy(npy, array))
            spectrum = transform.magnitude(audio[None])[0, :steps]
            described = describe_labels(vae, labels, latents)
            title = f"{stem} (seed {seed})"
            if described:
                title += " " + labels_title(described, class_names)
            _written(png, lambda: plot_latents_and_spectrogram(png, latents, spectrum, model_rate, int(transform.hop),
                                                               title=title))
            files[stem] = {"type": name, "batch": index, "labels": described, **settings}
            report.stems.append(stem)
            log(f"[trajectories] {target_dir / stem}.wav ({out_length} samples at {out_rate} Hz)")
    report.manifest_path = _written(manifest_path, lambda: atomic_write_text(
        manifest_path, json.dumps({"files": files}, indent=2) + "\n"))
    return report
