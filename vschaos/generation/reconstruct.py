"""Reconstruction of sound files through a trained spectral VAE (``generate.py reconstruct``).

Signal path per file: audio at the model's rate -> magnitude -> features -> encoder (posterior
mean, or a sample at ``temperature``) -> decoder -> magnitude (with ``level="follow"``, the default, each frame
at the input frame's energy, as the export's ``forward`` does) -> offline phase reconstruction
(``transform.reconstruct``, PGHI + fast Griffin-Lim by default) -> audio of the input's length,
resampled to the requested rate.
"""
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import torch
import torchaudio.functional as AF
from torch import Tensor

from vschaos.data.audio import AUDIO_EXTENSIONS, AudioReadError, audio_info, load_audio, save_audio
from vschaos.data.problems import printable
from vschaos.dsp.functional import follow_floor, follow_level, log_spectral_distance, spectral_convergence
from vschaos.dsp.phase_methods import DEFAULT_GLA_ITERATIONS, DEFAULT_PHASE
from vschaos.generation.errors import GenerationError
from vschaos.generation.labels import TrainingMetadata, labels_for_frames
from vschaos.generation.outputs import write_failure
from vschaos.io import atomic_write_text
from vschaos.models.components.distributions import sample_latent
from vschaos.models.components.harmonic import transpose_pitch
from vschaos.models.contract import SpectralModel


LEVEL_MODES = ("follow", "model")  # the export's forward has the same two (its ``level`` attribute)
RECONSTRUCTIONS = "reconstructions"  # the folder below OUT that reconstruct writes in
METRICS_NAME = "metrics.csv"
METRICS_COLUMNS = ("input", "output", "seconds", "spectral_convergence", "log_spectral_distance_db",
                   "model_spectral_convergence", "model_log_spectral_distance_db")


@dataclass
class Reconstruction:
    """One sound through the model, at the model's rate.

    ``audio`` ``(time,)``; ``input_magnitude``, ``decoded_magnitude`` (the decoder's output) and
    ``output_magnitude`` (of the reconstructed audio) are ``(frames, bins)`` (``decoded_magnitude`` as
    synthesised: at the input's level frame by frame when the level follows it); ``latents``
    ``(frames, latent_dim)`` is what was decoded.
    """

    audio: Tensor
    input_magnitude: Tensor
    decoded_magnitude: Tensor
    output_magnitude: Tensor
    latents: Tensor

    def metrics(self) -> Dict[str, float]:
        """Spectral convergence and log-spectral distance (dB) against the input magnitude, for the
        reconstructed audio (model and phase reconstruction) and the decoder output (model alone)."""
        return {
            "spectral_convergence": float(spectral_convergence(self.input_magnitude, self.output_magnitude)),
            "log_spectral_distance_db": float(log_spectral_distance(self.input_magnitude, self.output_magnitude)),
            "model_spectral_convergence": float(spectral_convergence(self.input_magnitude, self.decoded_magnitude)),
            "model_log_spectral_distance_db": float(log_spectral_distance(self.input_magnitude,
                                                                          self.decoded_magnitude)),
        }


def encode_audio(vae: SpectralModel, audio: Tensor, labels: Dict[str, Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """Posterior of every frame: audio ``(time,)`` -> magnitude ``(frames, bins)``, mean and std
    ``(frames, latent_dim)``. ``labels``: ``{task: LongTensor (frames,)}`` for encoder tasks."""
    transform = vae.transform
    magnitude = transform.magnitude(audio[None, :])[0]
    features = transform.to_features(magnitude)
    encoder_labels = {task: labels[task] for task in vae.encoder_tasks if task in labels}
    f0 = vae.audio_f0(audio[None, :])  # None: the model reads its f0 from its own frames
    mean, std = vae.encode(features, encoder_labels, None if f0 is None else f0[0])
    return magnitude, mean, std


def sample_latents(mean: Tensor, std: Tensor, temperature: float, generator: Optional[torch.Generator]) -> Tensor:
    """``mean`` at temperature 0, else ``mean + temperature * std * eps`` (seeded). Same shape."""
    if temperature < 0:
        raise GenerationError(f"--temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return mean
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
    return sample_latent(mean, std, temperature, noise)


@torch.no_grad()
def reconstruct_audio(vae: SpectralModel, audio: Tensor, labels: Dict[str, Tensor], *, temperature: float = 0.0,
                      method: str = DEFAULT_PHASE, n_iter: int = DEFAULT_GLA_ITERATIONS,
                      generator: Optional[torch.Generator] = None, transpose: float = 0.0,
                      level: str = "follow") -> Reconstruction:
    """Reconstruct ``audio`` ``(time,)`` (at the model's rate) through ``vae``.

    ``labels``: ``{task: LongTensor (frames,)}`` (-1 = missing; absent predicted tasks are
    predicted by the model). ``transpose``: semitones added to the measured pitch of a model with a
    pitch latent (``GenerationError`` for another model). ``level``: ``follow`` (each decoded frame at the input
    frame's energy, :func:`~vschaos.dsp.functional.follow_level`, like the export's ``forward``) or ``model`` (the
    decoder's own level). The output has exactly ``time`` samples.
    """
    if level not in LEVEL_MODES:
        raise GenerationError(f"level must be one of {', '.join(LEVEL_MODES)}, got {level!r}")
    transform = vae.transform
    length = int(audio.shape[-1])
    if transpose != 0.0 and int(getattr(vae, "pitch_dims", 0)) == 0:
        raise GenerationError(f"transpose {transpose:g}: this model has no pitch latent to move (train with "
                              f"--config-name dgt_harmonic or model=harmonic)")
    magnitude, mean, std = encode_audio(vae, audio, labels)
    z = sample_latents(mean, std, temperature, generator)
    voicing = energy_floor = None
    if level == "follow" and hasattr(vae, "voicing"):  # as the export's forward: its voicing follows too
        vae.fit_typical_timbre()
        voicing = vae.voicing(magnitude, z)  # at the measured f0, before transpose moves it
        energy_floor = follow_floor(magnitude)
    if transpose != 0.0:
        z = transpose_pitch(z, transpose, float(vae.pitch_coordinate.octaves_per_unit))
    decoder_labels = {task: labels[task] for task in vae.decoder_tasks if task in labels}
    # spectrum predictors (missing labels of their tasks) read the input's frames
    logits = vae.predict(z, transform.to_features(magnitude)) if vae.predicted_tasks else None
    decoded = transform.from_features(vae.decode(z, decoder_labels, logits, voicing, energy_floor)
                                      if voicing is not None
                                      else vae.decode(z, decoder_labels, logits))
    if level == "follow":
        decoded = follow_level(decoded, magnitude)
    output = transform.reconstruct(decoded[None], length, method=method, n_iter=n_iter, generator=generator)[0]
    return Reconstruction(output, magnitude, decoded, transform.magnitude(output[None])[0], z)


def resample_exact(audio: Tensor, source_rate: int, target_rate: int, length: int) -> Tensor:
    """Resample ``(time,)`` with torchaudio, then crop or zero-pad to exactly ``length`` samples
    (resampling rounds the length up by up to one sample)."""
    if source_rate != target_rate:
        audio = AF.resample(audio, int(source_rate), int(target_rate))
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))


@dataclass
class InputFile:
    """A sound to reconstruct and where its output goes, relative to ``OUT/reconstructions``."""

    path: Path
    relative_output: Path


def collect_inputs(paths: Sequence[Path]) -> Tuple[List[InputFile], List[str]]:
    """Expand ``--files``: a folder is walked recursively (sound files by extension, sorted) and
    mirrored relative to itself; a file keeps its name. Outputs are ``.wav``; a name already
    taken (same stem from two inputs) gets ``-2``, ``-3``... Returns the inputs and the problems
    (paths that do not exist, folders without sound files)."""
    inputs: List[InputFile] = []
    problems: List[str] = []
    taken: Set[str] = set()  # output names given so far, lower-cased (a case-insensitive disk has one file)

    def add(path: Path, relative: Path) -> None:
        target, stem, n = relative.with_suffix(".wav"), relative.stem, 1
        while target.as_posix().lower() in taken:  # a renamed x-2.wav may itself clash with an input x-2.wav
            n += 1
            target = relative.with_name(f"{stem}-{n}.wav")
        taken.add(target.as_posix().lower())
        inputs.append(InputFile(path, target))

    for given in paths:
        given = Path(given)
        if given.is_dir():
            found = sorted((p for p in given.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS),
                           key=lambda p: p.relative_to(given).as_posix())
            if not found:
                problems.append(f"{given}: no sound files ({' '.join(AUDIO_EXTENSIONS)}) in this folder")
            for path in found:
                add(path, path.relative_to(given))
        elif given.is_file():
            add(given, Path(given.name))
        else:
            problems.append(f"{given}: no such file or folder")
    return inputs, problems


@dataclass
class ReconstructionReport:
    """What ``reconstruct_files`` did: rows of ``metrics.csv`` and the inputs it skipped (with why)."""

    rows: List[Dict[str, object]] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    non_finite: List[str] = field(default_factory=list)  # outputs with NaN/Inf: not written, the command fails
    metrics_path: Optional[Path] = None

    def format(self) -> str:
        lines = [f"reconstructed {len(self.rows)} file(s)"]
        if self.rows:
            mean_sc = sum(float(r["spectral_convergence"]) for r in self.rows) / len(self.rows)
            mean_lsd = sum(float(r["log_spectral_distance_db"]) for r in self.rows) / len(self.rows)
            lines.append(f"mean spectral convergence {mean_sc:.3f}, log-spectral distance {mean_lsd:.2f} dB "
                         f"(per file: {self.metrics_path})")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} input(s):")
            lines.extend(f"  {reason}" for reason in self.skipped)
        if self.non_finite:
            lines.append(f"NOT WRITTEN, the model output NaN/Inf for {len(self.non_finite)} input(s):")
            lines.extend(f"  {reason}" for reason in self.non_finite)
        return "\n".join(lines)


def metrics_csv(rows: Sequence[Dict[str, object]]) -> str:
    """``metrics.csv`` text: one line per reconstructed file, columns :data:`METRICS_COLUMNS`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(METRICS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()})
    return buffer.getvalue()


def reconstruct_files(vae: SpectralModel, inputs: Sequence[InputFile], out_dir: Path, *,
                      fixed_labels: Mapping[str, int], metadata: Optional[TrainingMetadata] = None,
                      sample_rate: Optional[int] = None, temperature: float = 0.0, method: str = DEFAULT_PHASE,
                      n_iter: int = DEFAULT_GLA_ITERATIONS, seed: int = 0, transpose: float = 0.0,
                      level: str = "follow", log: Callable[[str], None] = print) -> ReconstructionReport:
    """Write ``out_dir/reconstructions/<relative>.wav`` for each input and ``metrics.csv``.

    Output length: the input's duration at ``sample_rate`` (default the model's rate), i.e. the
    same number of samples as the input when ``sample_rate`` equals the file's rate. Metrics
    compare magnitudes at the model's rate. An input that cannot be read, or that lacks a label
    the model needs, is skipped and listed in the report; the others are still processed. An output
    holding NaN or Inf is not written and is listed in ``report.non_finite``. A file that cannot be written
    (OSError: permissions, a read-only or full disk) stops the work: GenerationError naming it; every file is
    written atomically, so those written before it are complete and no partial file is left.
    """
    transform = vae.transform
    model_rate = int(transform.sample_rate)
    out_rate = int(sample_rate or model_rate)
    target_dir = Path(out_dir) / RECONSTRUCTIONS
    report = ReconstructionReport()
    for index, item in enumerate(inputs):
        try:
            info = audio_info(item.path)
            audio = load_audio(item.path, model_rate)
        except AudioReadError as error:
            report.skipped.append(f"{item.path}: unreadable ({error.reason})")
            continue
        if audio.numel() == 0:
            report.skipped.append(f"{item.path}: no samples")
            continue
        try:
            labels = labels_for_frames(transform.num_frames(audio.shape[0]), transform, fixed=fixed_labels,
                                       encoder_tasks=vae.encoder_tasks, decoder_tasks=vae.decoder_tasks,
                                       predicted_tasks=vae.predicted_tasks, metadata=metadata, path=item.path)
        except GenerationError as error:
            report.skipped.append(f"{item.path}: {error}")
            continue
        # one generator per file, seeded by its position: results do not depend on other inputs' lengths
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
        result = reconstruct_audio(vae, audio, labels, temperature=temperature, method=method, n_iter=n_iter,
                                   generator=generator, transpose=transpose, level=level)
        out_length = int(round(info.frames * out_rate / float(info.samplerate)))
        output = resample_exact(result.audio, model_rate, out_rate, out_length)
        out_path = target_dir / item.relative_output
        bad = int((~torch.isfinite(output)).sum())
        if bad:  # a NaN in a sound file can blow up the next tool in the chain: never written
            report.non_finite.append(f"{printable(str(item.path))}: {bad} of {output.numel()} output samples are NaN/Inf; "
                                     f"{printable(str(out_path))} not written")
            continue
        try:
            save_audio(out_path, output, out_rate)
        except OSError as error:
            raise write_failure(out_path, error) from error
        # names that are not UTF-8 (bytes on POSIX) are shown as \xNN, in the log and in the UTF-8 metrics.csv
        row: Dict[str, object] = {"input": printable(str(item.path)),
                                  "output": printable(item.relative_output.as_posix()),
                                  "seconds": out_length / float(out_rate)}
        row.update(result.metrics())
        report.rows.append(row)
        log(f"[reconstruct] {printable(str(item.path))} -> {printable(str(out_path))} (SC {row['spectral_convergence']:.3f}, "
            f"LSD {row['log_spectral_distance_db']:.2f} dB)")
    if report.rows:
        try:
            report.metrics_path = atomic_write_text(target_dir / METRICS_NAME, metrics_csv(report.rows))
        except OSError as error:
            raise write_failure(target_dir / METRICS_NAME, error) from error
    return report
