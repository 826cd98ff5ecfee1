"""Ordered latents: the latent space of an export rotated onto the principal axes of the training latents.

:class:`LatentAxes` holds the axes: the training latents' mean ``(L,)`` and an orthonormal basis ``(L, L)``
whose rows are, in inlet order, the pitch coordinate's axes (a model with a pitch latent: never rotated nor
centred, it keeps its meaning) and then the principal directions of the rest (:func:`ordered_components`, the
computation the Neutone direction knobs use), by decreasing share of the variance; ``kept`` of them are inlets.
:class:`LatentRotation` is the fixed linear map the export applies at the latent boundary: ``encode`` outputs
``R_k^T (z - mean)``, ``decode`` maps its ``k`` inlets back with ``z = mean + R_k z'`` (the dropped components
at the mean). One matrix product (``addmm``) per call each.

The axes are computed once per checkpoint and stored in the version folder (``latent_axes.pt``: tensors and
plain data, read with ``torch.load(weights_only=True)``, written atomically), keyed by the checkpoint's SHA-256.
A stored file from another checkpoint is recomputed; a malformed one is ignored with a note (never trusted).
Training data that cannot be read gives identity axes (no order, no shares), said in the notes.
"""
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from vschaos.export.directions import LatentDirections, error_line, ordered_components, training_latents
from vschaos.export.latent_names import NEGLIGIBLE_SHARE, SWEEP_STD, ComponentEffect, measure_effects
from vschaos.io import PathLike, atomic_torch_save, atomic_write_text, file_sha256, load_tensors_only

AXES_FILE = "latent_axes.pt"
AXES_FORMAT = "vschaos latent axes 1"
LATENTS_NOTES = ".latents.md"  # <export name>.latents.md beside the export: exports sharing a folder keep theirs

__all__ = ["AXES_FILE", "LatentAxes", "LatentRotation", "axes_from_latents", "fidelity_components",
           "latents_markdown", "load_axes", "run_latent_axes", "stored_axes"]


@dataclass
class LatentAxes:
    """Rows of ``components (L, L)`` (orthonormal, inlet order), the training latents' ``mean (L,)`` and std
    along each row ``scales (L,)``, each row's share of the (non-pitch) variance ``shares (L,)`` (None: identity
    axes without data; pitch rows 0), the pitch rows ``pitch_dims``, the inlets ``kept`` (the first rows) and
    each kept row's measured effect (``effects``, :mod:`vschaos.export.latent_names`)."""
    mean: Tensor
    components: Tensor
    scales: Tensor
    shares: Optional[Tensor]
    pitch_dims: int
    source: str
    kept: int = -1
    effects: List[ComponentEffect] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kept < 0:
            self.kept = int(self.components.shape[0])

    @staticmethod
    def identity(latent_dim: int, pitch_dims: int, why: str) -> "LatentAxes":
        """The model's own latent axes (no rotation, mean 0, unit std): the fallback without training data."""
        return LatentAxes(torch.zeros(latent_dim), torch.eye(latent_dim), torch.ones(latent_dim), None, pitch_dims,
                          f"the model's own latent axes, unordered ({why})")

    def is_identity(self) -> bool:
        """Whether the map is the identity (every row kept, the model's own axes, mean 0 off the pitch rows):
        the export then skips it."""
        latent_dim = int(self.components.shape[0])
        return (self.kept == latent_dim and torch.equal(self.components, torch.eye(latent_dim))
                and not bool(self.mean[self.pitch_dims:].any()))

    def labels(self) -> List[str]:
        """One short label per kept inlet (``latent 0: louder +12.3 dB, 41%``; ``latent i`` when not measured)."""
        if len(self.effects) == self.kept:
            return [effect.label() for effect in self.effects]
        return [f"latent {i}" for i in range(self.kept)]

    def cumulative_shares(self) -> List[float]:
        """Cumulative share of the variance after each non-pitch row (empty without shares)."""
        if self.shares is None:
            return []
        return torch.cumsum(self.shares[self.pitch_dims:].double(), 0).tolist()

    def directions(self, n: int = 2) -> LatentDirections:
        """The first ``n`` non-pitch components as Neutone knob directions, named where measured."""
        rows = slice(self.pitch_dims, self.pitch_dims + n)
        names = [effect.name for effect in self.effects[rows]] if self.effects else []
        return LatentDirections(self.components[rows], self.scales[rows], self.source, names)


def axes_from_latents(latents: Tensor, pitch_dims: int, source: str) -> LatentAxes:
    """:class:`LatentAxes` of training latents ``(frames, L)``: pitch rows first (identity, mean 0), then the
    principal directions of the rest by decreasing variance."""
    latent_dim = latents.shape[1]
    vectors, scales = ordered_components(latents, pitch_dims)
    components = torch.cat([torch.eye(latent_dim)[:pitch_dims], vectors])
    mean = latents.double().mean(0).float()
    pitch_std = latents[:, :pitch_dims].double().std(0).float() if pitch_dims > 0 else torch.zeros(0)
    variance = scales.double() ** 2
    total = float(variance.sum())
    shares = torch.cat([torch.zeros(pitch_dims, dtype=torch.float64),
                        variance / total if total > 0 else torch.full_like(variance, 1.0 / max(len(variance), 1))])
    return LatentAxes(mean, components, torch.cat([pitch_std, scales]), shares.float(), pitch_dims, source)


def fidelity_components(axes: LatentAxes, fidelity: float) -> int:
    """How many rows to keep: the pitch rows and the fewest principal components whose cumulative share reaches
    ``fidelity`` (0 < fidelity <= 1; 1 keeps all). Identity axes (no shares) keep all."""
    if not 0.0 < fidelity <= 1.0:
        raise ValueError(f"fidelity must lie in (0, 1], got {fidelity}")
    total = int(axes.components.shape[0])
    cumulative = axes.cumulative_shares()
    if fidelity >= 1.0 or not cumulative:
        return total
    reached = [i for i, value in enumerate(cumulative) if value >= fidelity - 1e-9]
    return axes.pitch_dims + (reached[0] + 1 if reached else len(cumulative))


class LatentRotation(nn.Module):
    """The fixed map between the model's latent ``z (n, L)`` and the ``k`` exported components ``(n, k)``:
    ``to_inlets(z) = (z - mean) R_k`` and ``from_inlets(c) = mean + c R_k^T`` (``R_k``: the kept rows, transposed;
    ``mean`` without its pitch entries), each one ``addmm``. Buffers in ``dtype`` (the model math's)."""

    def __init__(self, axes: LatentAxes, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        basis = axes.components[:axes.kept].double().T.contiguous()  # (L, k)
        mean = axes.mean.double().clone()
        mean[:axes.pitch_dims] = 0.0  # the pitch inlet is the pitch coordinate itself, not its offset from a mean
        self.register_buffer("basis", basis.to(dtype))
        self.register_buffer("basis_t", basis.T.contiguous().to(dtype))
        self.register_buffer("mean", mean.to(dtype))
        self.register_buffer("inlet_offset", (-(mean @ basis)).to(dtype))

    def to_inlets(self, z: Tensor) -> Tensor:
        return torch.addmm(self.inlet_offset, z, self.basis)

    def from_inlets(self, components: Tensor) -> Tensor:
        return torch.addmm(self.mean, components, self.basis_t)


# ---------------------------------------------------------------------------------------------- storage
def checkpoint_digest(path: PathLike) -> str:
    """SHA-256 of a checkpoint file's bytes: the key of the axes computed from it."""
    return file_sha256(path)


def _stored(axes: LatentAxes, digest: str, frames: int) -> dict:
    return {"format": AXES_FORMAT, "checkpoint_sha256": digest, "frames": int(frames), "pitch_dims": axes.pitch_dims,
            "mean": axes.mean.float(), "components": axes.components.float(), "scales": axes.scales.float(),
            "shares": axes.shares.float()}


def load_axes(path: PathLike, digest: str, latent_dim: int, pitch_dims: int) -> Tuple[Optional[LatentAxes], str]:
    """The axes stored at ``path`` if they are well-formed and were computed from the checkpoint ``digest``:
    ``(axes, "")``; else ``(None, why)`` (``why`` empty when there is no file). Nothing in the file is code or a
    path: tensors of the right shapes, finite, an orthonormal basis, and plain numbers."""
    from vschaos.training.run import CHECKPOINT_LOAD_ERRORS  # what torch.load raises on a corrupt or hostile file

    path = Path(path)
    if path.is_symlink():  # a link may lead out of the version folder: never read (replaced when stored)
        return None, f"{path} is a symbolic link; ignored"
    if not path.is_file():
        return None, ""
    try:
        state = load_tensors_only(path)
    except CHECKPOINT_LOAD_ERRORS as error:  # weights_only refusals and corrupt files: ignored, recomputed
        return None, f"{path} is unreadable ({type(error).__name__}); ignored"
    if not isinstance(state, dict) or state.get("format") != AXES_FORMAT:
        return None, f"{path} is not a vschaos latent-axes file; ignored"
    if state.get("checkpoint_sha256") != digest:
        return None, f"{path} was computed from another checkpoint; recomputing"
    shapes = {"mean": (latent_dim,), "components": (latent_dim, latent_dim), "scales": (latent_dim,),
              "shares": (latent_dim,)}
    for key, shape in shapes.items():
        value = state.get(key)
        if not isinstance(value, Tensor) or tuple(value.shape) != shape or not bool(torch.isfinite(value).all()):
            return None, f"{path}: '{key}' is not a finite tensor of shape {list(shape)}; ignored"
    frames = state.get("frames")
    if state.get("pitch_dims") != pitch_dims or not isinstance(frames, int) or frames < 2:
        return None, f"{path}: 'pitch_dims' or 'frames' does not fit this model; ignored"
    components = state["components"].double()
    if not torch.allclose(components @ components.T, torch.eye(latent_dim, dtype=torch.float64), atol=1e-4):
        return None, f"{path}: 'components' is not an orthonormal basis; ignored"
    shares = state["shares"]
    if bool((shares < 0).any()) or bool((state["scales"] < 0).any()) or abs(float(shares.sum()) - 1.0) > 1e-3:
        return None, f"{path}: 'shares' or 'scales' are not a distribution of the variance; ignored"
    source = f"principal axes of {frames} training frames (stored in {path.name})"
    return LatentAxes(state["mean"].float(), state["components"].float(), state["scales"].float(),
                      shares.float(), pitch_dims, source), ""


def stored_axes(run) -> Tuple[Optional[LatentAxes], str]:
    """The axes stored for a loaded run's checkpoint, never computed (``generate.py`` reads them): ``(axes, "")``,
    ``(None, "")`` when none are stored, ``(None, why)`` for a stale or malformed file."""
    vae = run.vae
    return load_axes(Path(run.version_dir) / AXES_FILE, checkpoint_digest(run.checkpoint_path), int(vae.latent_dim),
                     int(getattr(vae, "pitch_dims", 0)))


def run_latent_axes(run, fidelity: float = 1.0, name: bool = True) -> Tuple[LatentAxes, List[str]]:
    """The ordered axes of a loaded run (:func:`vschaos.training.run.open_run`) with ``fidelity``'s components
    kept and (``name``) each measured, and notes for the user (stored or computed, a stale or malformed file,
    identity axes when the training data cannot be read, the cumulative shares). Stores newly computed axes in
    ``version_dir/latent_axes.pt`` (a folder that cannot be written is a note, not an error)."""
    vae = run.vae
    latent_dim, pitch_dims = int(vae.latent_dim), int(getattr(vae, "pitch_dims", 0))
    path = Path(run.version_dir) / AXES_FILE
    notes: List[str] = []
    digest = checkpoint_digest(run.checkpoint_path)
    axes, why = load_axes(path, digest, latent_dim, pitch_dims)
    if why:
        notes.append(f"warning: {why}")
    if axes is None:
        from hydra.errors import InstantiationException
        from omegaconf.errors import OmegaConfBaseException

        from vschaos.data.metadata import DatasetError

        try:
            latents, description = training_latents(run.cfg, vae)
        except (DatasetError, ValueError, OSError, InstantiationException, OmegaConfBaseException) as error:
            # a config without a usable dataset (no root, a folder gone): the run still exports, unordered
            axes = LatentAxes.identity(latent_dim, pitch_dims, f"training data not readable: {error_line(error)}")
            notes.append(f"warning: latent axes: {axes.source}; the latents stay unordered and unnamed by share")
        else:
            axes = axes_from_latents(latents, pitch_dims,
                                     f"principal axes of {latents.shape[0]} training frames of {description}")
            try:
                atomic_torch_save(_stored(axes, digest, latents.shape[0]), path)
                notes.append(f"latent axes computed from {latents.shape[0]} training frames, stored in {path}")
            except OSError as error:
                notes.append(f"warning: latent axes not stored ({path}: {error.strerror or error}); computed again "
                             f"next time")
    else:
        notes.append(f"latent axes read from {path}")
    axes = replace(axes, kept=fidelity_components(axes, fidelity), effects=[])
    if name:
        axes.effects = measure_effects(vae, axes.mean, axes.components[:axes.kept], axes.scales[:axes.kept],
                                       axes.shares, pitch_dims)
    cumulative = axes.cumulative_shares()
    if cumulative:
        shown = ", ".join(f"{100 * value:.1f}%" for value in cumulative)
        notes.append(f"cumulative share of the variance by component: {shown}")
        notes.append(f"--fidelity {fidelity:g} keeps {axes.kept} of {latent_dim} latents"
                     + (f" (the pitch coordinate and {axes.kept - pitch_dims} components)" if pitch_dims else ""))
    elif fidelity < 1.0:
        notes.append(f"warning: --fidelity {fidelity:g} ignored: the latents have no measured shares")
    return axes, notes


def latents_markdown(axes: LatentAxes, model_name: str) -> str:
    """``latents.md``: each exported latent, what it does to the sound and its share of the variance."""
    order = ("not ordered: no training latents" if axes.shares is None else
             f"from latent {axes.pitch_dims} on, ordered by the share of the training variance each carries")
    lines = [f"# Latents of {model_name}", "",
             f"Axes: {axes.source}; {order}. Each latent was swept from -{SWEEP_STD:g} to +{SWEEP_STD:g} std "
             f"around the training mean (the others at the mean) and the decoded sound measured.", ""]
    if axes.pitch_dims:
        lines += [f"Latent 0{'-' + str(axes.pitch_dims - 1) if axes.pitch_dims > 1 else ''} is the pitch "
                  f"coordinate (not rotated: it keeps its meaning).", ""]
    total = int(axes.components.shape[0])
    if axes.kept < total:
        lines += [f"{axes.kept} of {total} latents exported; the other {total - axes.kept} decode at their "
                  f"training mean.", ""]
    lines += ["| latent | name | share | cumulative | loudness (dB) | centroid (Hz) | flatness (dB) | f0 (st) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    cumulative = axes.cumulative_shares()
    for effect in axes.effects:
        share = "" if effect.share is None else f"{100 * effect.share:.1f}%"
        done = ""
        if cumulative and effect.index >= axes.pitch_dims:
            done = f"{100 * cumulative[effect.index - axes.pitch_dims]:.1f}%"
        changes = effect.changes
        cells = [f"{changes['loudness']:+.1f}" if "loudness" in changes else "",
                 f"{effect.centroid_hz[0]:.0f} -> {effect.centroid_hz[1]:.0f}" if changes else "",
                 f"{changes['flatness']:+.1f}" if "flatness" in changes else "",
                 f"{changes['f0']:+.1f}" if "f0" in changes else ""]
        lines.append(f"| {effect.index} | {effect.name} | {share} | {done} | " + " | ".join(cells) + " |")
    lines += ["", "Negligible: under " + f"{100 * NEGLIGIBLE_SHARE:g}% of the variance (not swept)."]
    return "\n".join(lines) + "\n"


def write_latents_markdown(export_path: PathLike, axes: LatentAxes) -> Path:
    """Write :func:`latents_markdown` to ``<export name>.latents.md`` beside the export (atomically); its path."""
    export_path = Path(export_path)
    path = export_path.parent / f"{export_path.stem}{LATENTS_NOTES}"
    atomic_write_text(path, latents_markdown(axes, export_path.stem))
    return path
