"""Export a trained ``SpectralVAE`` to the Neutone plugin (VST3/AU) through the Neutone SDK.

Needs the optional extra: ``pip install -e .[neutone]`` (``neutone-sdk`` 1.5.x). Nothing else in
vschaos imports this module, so the nn~ export never needs the SDK.

The Neutone model wraps the very :class:`~vschaos.export.module.StreamingVAE` the nn~ export
scripts (same front end, encoder, decoder, RTPGHI phase, overlap-add), through its public interface only:

* :mod:`vschaos.export.neutone_wrapper`: :class:`NeutoneSpectralVAE` maps the plugin's mono buffer and knobs
  onto ``StreamingVAE``'s ``forward`` inlets and attributes (the knobs are described there);
* :mod:`vschaos.export.neutone_plugin`: its base :class:`WholeHopsAtDawRates` takes every DAW rate and buffer
  size as native: it resamples to the model's rate and back itself (exact pitch, band-limited) and runs whole
  hops, so the SDK's ``SampleQueueWrapper`` only mixes the DAW's channels; and the plugin's texts
  (:class:`NeutoneTexts`);
* this module: the texts from a run, and the verified export.

Verification on export (:func:`export_neutone`): the SDK's own ``save_neutone_model`` (TorchScript
conversion, metadata schema validation, reload, the methods the plugin calls, offline rendering)
writes the file into a temporary folder; then the loaded file must equal ``StreamingVAE.forward``
shifted by the SDK's buffering delay at two buffer sizes, its delay (measured as our host measures
nn~ models) must match the reported one, and the SDK's speed and latency benchmarks run on it (in a
child process: they set torch's thread counts). Only then is it renamed into place. The directions live in
``vschaos.export.directions``, the checks and benchmarks in ``vschaos.export.neutone_checks``.
"""
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from neutone_sdk.utils import load_neutone_model, save_neutone_model
from torch import nn

from vschaos.io import PathLike, remove_stale_temporaries, temporary_prefix
from vschaos.export.directions import LatentDirections, run_directions
from vschaos.export.export import in_model_dtypes, streaming_module
from vschaos.export.neutone_checks import (BENCH_BUFFERS, CHECK_BUFFERS, RESAMPLED_CHECKS, BufferCheck,
                                           NeutoneExportError, SdkBenchmarks, check_buffer, run_sdk_benchmarks)
from vschaos.export.neutone_plugin import (NAME_LIMIT, MonoAtNativeSizes, NeutoneTexts, WholeHopsAtDawRates,
                                           hop_queue_delay)
from vschaos.export.neutone_wrapper import (DIRECTION_RANGE, LABEL_AUTO_BELOW, MAX_KNOBS, NOTE_RANGE, TEMPERATURE_MAX,
                                            TRANSPOSE_RANGE, NeutoneSpectralVAE, direction_knob_names,
                                            direction_knobs)

__all__ = ["DIRECTION_RANGE", "LABEL_AUTO_BELOW", "MAX_KNOBS", "NAME_LIMIT", "NOTE_RANGE", "TEMPERATURE_MAX",
           "TRANSPOSE_RANGE", "MonoAtNativeSizes", "NeutoneExportError", "NeutoneExportReport", "NeutoneSpectralVAE",
           "NeutoneTexts", "WholeHopsAtDawRates", "check_buffer", "direction_knobs", "export_neutone", "export_run",
           "hop_queue_delay", "load_neutone_model", "make_texts", "streaming_module"]


# ---------------------------------------------------------------------------------------------- texts
def make_texts(name: str, vae: nn.Module, training_data: str, directions: LatentDirections,
               checkpoint: str = "") -> NeutoneTexts:
    """Metadata for the plugin from the model and the run's training data description."""
    transform = vae.transform
    tasks = [str(t) for t in vae.task_dims]
    conditioned = [str(t) for t in vae.decoder_tasks]
    short = f"Timbre transfer through a spectral VAE trained on {training_data}."
    pitch_latent = int(getattr(vae, "pitch_dims", 0)) > 0
    note_knob = "pitch" in tasks and "octave" in tasks
    n_directions = min(int(directions.vectors.shape[0]), direction_knobs(pitch_latent, note_knob or bool(conditioned)))
    knob_text = "Knobs: temperature (latent sampling)"
    if n_directions > 0:
        names = direction_knob_names(directions)[:n_directions]  # named by what they do where measured
        knob_text += (f", {' and '.join(names)} (move through the "
                      f"model's timbre space along the main axes of its training sounds)")
    if pitch_latent:
        knob_text += f", transpose (+-{TRANSPOSE_RANGE:g} semitones; middle = none)"
    if note_knob:
        knob_text += ", note (condition on a fixed note; lowest = auto)"
    elif conditioned:
        knob_text += f", {conditioned[0]} class (lowest = auto)"
    long = (f"Any sound goes in; the model re-synthesises its spectral envelope with what it learned from "
            f"{training_data}. Mono, {int(transform.sample_rate)} Hz, resampled exactly from any DAW rate. "
            f"{knob_text}.")
    technical = (f"vschaos frame-wise spectral VAE: Gaussian-window STFT n_fft {int(transform.n_fft)}, hop "
                 f"{int(transform.hop)} at {int(transform.sample_rate)} Hz, latent {int(vae.latent_dim)}"
                 + (f", conditioned on {', '.join(conditioned)}" if conditioned else "")
                 + ("; the input's phase (real-time phase-gradient heap integration, RTPGHI, while transposed)"
                    if getattr(vae, "decoder_writes_magnitude", False)
                    else "; real-time phase-gradient heap integration (RTPGHI)")
                 + f" and overlap-add; delay "
                   f"{int(transform.n_fft) - int(transform.hop)} samples. Directions: {directions.source}."
                 + (f" Checkpoint {checkpoint}." if checkpoint else ""))
    tags = ["timbre transfer", "spectral", "vae", "vschaos"] + (["pitch"] if "pitch" in tasks else [])
    return NeutoneTexts(name=name, short_description=short, long_description=long,
                        technical_description=technical, tags=tags)


# ---------------------------------------------------------------------------------------------- export
@dataclass
class NeutoneExportReport:
    path: Path
    metadata: Dict[str, object]
    knobs: List[Tuple[str, str, float]]
    directions_source: str
    checks: List[BufferCheck]
    benchmarks: Optional[SdkBenchmarks]
    model_math: str = "float32"  # the dtype of the model math (float64 when float32 failed our checks)
    model_rate: int = 0

    def format(self) -> str:
        meta = self.metadata
        lines = [f"Neutone model {meta['model_name']!r} (SDK {meta['sdk_version']}, experimental: "
                 f"{meta['is_experimental']}): mono, the model's rate {self.model_rate} Hz, any DAW rate resampled "
                 f"inside (exact pitch), any buffer size (whole hops run, the rest kept)",
                 f"  {meta['model_short_description']}",
                 f"  tags: {', '.join(meta['tags'])}",
                 "knobs:"]
        for i, (name, description, default) in enumerate(self.knobs):
            lines.append(f"  {i + 1}. {name} (default {default:g}): {description}")
        lines.append(f"  directions: {self.directions_source}")
        lines.append(f"model math: {self.model_math}")
        lines.append("SDK validation (save_neutone_model: TorchScript, metadata schema, reload, plugin methods, "
                     "offline mode): passed")
        for check in self.checks:
            if check.resampled:
                equals = (f"check at {check.sample_rate / 1000:g} kHz / {check.daw_buffer}: equals StreamingVAE.forward "
                          f"between the wrapper's resamplers run offline")
            else:
                equals = (f"check at DAW buffer {check.daw_buffer} (model buffer {check.model_buffer}): equals "
                          f"StreamingVAE.forward after the queues' delay {check.queue_delay}")
            lines.append(f"{equals} (max error {check.max_error:.2g}); reported delay "
                         f"{check.buffering_delay + check.model_delay} (model {check.model_delay}), "
                         f"{check.delay_summary}: {'PASS' if check.ok else 'FAIL'}")
        if self.benchmarks is not None:
            lines.append(self.benchmarks.format())
        return "\n".join(lines)


def export_neutone(vae: nn.Module, path: PathLike, texts: NeutoneTexts, directions: LatentDirections,
                   check_buffers: Sequence[int] = CHECK_BUFFERS,
                   resampled_checks: Sequence[Tuple[int, int]] = RESAMPLED_CHECKS, benchmark: bool = True,
                   bench_buffers: Sequence[int] = BENCH_BUFFERS, bench_repeat: int = 10, bench_iters: int = 30,
                   threads: int = 1, sdk_offline_check: bool = True) -> NeutoneExportReport:
    """Write ``vae`` as a Neutone model to ``path`` only if the SDK's validation, our equality and delay
    checks and the SDK's benchmarks all pass; raises :class:`NeutoneExportError` otherwise (nothing written).

    ``benchmark=False`` skips the SDK's benchmarks and ``sdk_offline_check=False`` the SDK's offline rendering
    of its bundled 17 s sample (tests use both to stay fast; the command line always runs them)."""
    with warnings.catch_warnings():  # torch.jit.script/save/load deprecation notices: TorchScript is what Neutone loads
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..*deprecated", category=FutureWarning)
        return _export_neutone(vae, path, texts, directions, check_buffers, resampled_checks, benchmark,
                               bench_buffers, bench_repeat, bench_iters, threads, sdk_offline_check)


class _ChecksFailed(NeutoneExportError):
    """Our equality or delay checks failed (not the SDK's validation): the float64 retry's cue."""

    def __init__(self, path: Path, problems: List[str]):
        self.problems = problems
        super().__init__(f"export refused, {path} not written:\n  " + "\n  ".join(problems))


def _export_neutone(vae, path, texts, directions, check_buffers, resampled_checks, benchmark, bench_buffers,
                    bench_repeat, bench_iters, threads, sdk_offline_check) -> NeutoneExportReport:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)  # what an export killed by SIGKILL or a power loss left beside it

    def attempt(dtype: torch.dtype) -> NeutoneExportReport:
        wrapper = NeutoneSpectralVAE(streaming_module(vae, dtype=dtype), texts, directions)
        folder = Path(tempfile.mkdtemp(prefix=temporary_prefix(path), dir=path.parent))
        try:
            try:
                save_neutone_model(wrapper, folder, dump_samples=False, submission=False, speed_benchmark=False,
                                   test_offline_mode=sdk_offline_check)
                model, metadata = load_neutone_model(str(folder / "model.nm"))
            except Exception as error:  # the SDK reports failed checks as AssertionError, schema or TorchScript errors
                message = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise NeutoneExportError(f"export refused, {path} not written: the Neutone SDK's validation failed: "
                                         f"{type(error).__name__}: {message}") from error
            checks = [check_buffer(model, int(buffer)) for buffer in check_buffers]
            checks += [check_buffer(model, int(buffer), daw_rate=int(rate)) for rate, buffer in resampled_checks]
            problems = [problem for check in checks for problem in check.problems]
            if problems:
                raise _ChecksFailed(path, problems)
            benchmarks = None
            if benchmark:
                benchmarks = run_sdk_benchmarks(folder / "model.nm", buffers=bench_buffers, repeat=bench_repeat,
                                                n_iters=bench_iters, threads=threads)
            os.replace(folder / "model.nm", path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return NeutoneExportReport(path, metadata, wrapper.knobs(), directions.source, checks, benchmarks,
                                   model_rate=int(wrapper.vs_sample_rate))

    report, model_math = in_model_dtypes(attempt, _ChecksFailed, lambda error: error.problems[0])
    report.model_math = model_math
    return report


def export_run(run, path: PathLike, name: str, data_text: Optional[str] = None, **options) -> NeutoneExportReport:
    """Export a loaded run (:func:`vschaos.training.run.open_run`): directions and training data description
    from its dataset (the prior's axes when it cannot be read), metadata from the run."""
    directions, description = run_directions(run.cfg, run.vae)
    texts = make_texts(name, run.vae, data_text or description, directions,
                       checkpoint=f"{run.version_dir.name}/{run.checkpoint_path.name}")
    return export_neutone(run.vae, path, texts, directions, **options)
