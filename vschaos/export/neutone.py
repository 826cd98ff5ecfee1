"""Export a trained ``SpectralVAE`` to the Neutone plugin (VST3/AU) through the Neutone SDK.

Needs the optional extra: ``pip install -e .[neutone]`` (``neutone-sdk`` 1.5.x). Nothing else in
vschaos imports this module, so the nn~ export never needs the SDK.

The Neutone model wraps the very :class:`~vschaos.export.module.StreamingVAE` the nn~ export
scripts (same front end, encoder, decoder, RTPGHI phase, overlap-add): :class:`NeutoneSpectralVAE`
maps the plugin's mono buffer and knobs onto its ``forward`` inlets and attributes, and its base
:class:`WholeHopsAtDawRates` takes every DAW rate and buffer size as native: it resamples to the model's
rate and back itself (exact pitch, band-limited) and runs whole hops. The SDK's ``SampleQueueWrapper`` then
only mixes the DAW's channels.

Knobs (the plugin sends values in [0, 1], averaged over each DAW buffer):

* ``temperature``: ``0..TEMPERATURE_MAX`` (default 0 = the posterior mean).
* ``direction 1`` / ``direction 2``: move the latent along the first two principal directions of
  the training latents (computed at export, stored in the file), ``(knob - 0.5) * 2 *
  DIRECTION_RANGE`` standard deviations along each; 0.5 (default) = no change.
* for models with a pitch latent (``model=harmonic``), ``transpose``: ``(knob - 0.5) * 2 * TRANSPOSE_RANGE``
  semitones (StreamingVAE's ``transpose`` attribute; 0.5 = none); the directions then leave the pitch out.
* for label-conditioned models, ``note`` (pitch and octave tasks: a fixed MIDI note from
  ``NOTE_RANGE``) or ``<task> class`` (the first decoder task): below ``LABEL_AUTO_BELOW`` = "auto"
  (the label is unknown: the model's own prediction where it has a predictor, else the neutral
  missing-label input).

Verification on export (:func:`export_neutone`): the SDK's own ``save_neutone_model`` (TorchScript
conversion, metadata schema validation, reload, the methods the plugin calls, offline rendering)
writes the file into a temporary folder; then the loaded file must equal ``StreamingVAE.forward``
shifted by the SDK's buffering delay at two buffer sizes, its delay (measured as our host measures
nn~ models) must match the reported one, and the SDK's speed and latency benchmarks run on it (in a
child process: they set torch's thread counts). Only then is it renamed into place. The directions live in
``vschaos.export.directions``, the checks and benchmarks in ``vschaos.export.neutone_checks``.
"""
import logging
import math
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from neutone_sdk import ContinuousNeutoneParameter, NeutoneParameter, WaveformToWaveformBase
from neutone_sdk.utils import load_neutone_model, save_neutone_model
from torch import Tensor, nn

from vschaos.dsp.bounds import OUTPUT_LIMIT
from vschaos.dsp.resample import StreamingResampler, resampled_stream_delay
from vschaos.io import PathLike, remove_stale_temporaries, temporary_prefix
from vschaos.export.directions import LatentDirections, run_directions
from vschaos.export.export import in_model_dtypes, streaming_module
from vschaos.export.module import StreamingVAE
from vschaos.export.neutone_checks import (BENCH_BUFFERS, CHECK_BUFFERS, RESAMPLED_CHECKS, BufferCheck,
                                           NeutoneExportError, SdkBenchmarks, check_buffer, run_sdk_benchmarks)


TEMPERATURE_MAX = 2.0
DIRECTION_RANGE = 2.0  # knob at 0 or 1 = -2 or +2 std of the training latents along the direction
LABEL_AUTO_BELOW = 0.02  # knob values below this leave the label unknown ("auto")
NOTE_RANGE = (24, 96)  # MIDI C1..C7 across the rest of the note knob
TRANSPOSE_RANGE = 12.0  # semitones at either end of the transpose knob
MAX_KNOBS = 4  # the plugin shows four
NAME_LIMIT = 30  # the SDK's schema: longer model names are cut
NO_LABEL, NOTE_LABELS, CLASS_LABELS = 0, 1, 2
log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- the wrapper
@dataclass
class NeutoneTexts:
    """Metadata shown by the plugin and the Neutone website (the SDK's schema limits are enforced here)."""
    name: str
    short_description: str
    long_description: str
    technical_description: str
    tags: List[str]
    authors: List[str] = field(default_factory=lambda: ["vschaos"])
    version: str = "1.0.0"
    is_experimental: bool = True  # a user-trained research model, not a curated release

    def __post_init__(self):
        self.name = self.name[:NAME_LIMIT]
        self.short_description = _clip(self.short_description, 150)
        self.long_description = _clip(self.long_description, 500)
        self.technical_description = _clip(self.technical_description, 500)
        self.tags = list(dict.fromkeys(t[:15] for t in self.tags))[:7]
        self.authors = list(dict.fromkeys(self.authors))[:5]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


class MonoAtNativeSizes(WaveformToWaveformBase):
    """The plugin contract every vschaos Neutone model shares: mono in and out, the native sample rates
    ``vs_sample_rates`` and buffer sizes ``vs_buffer_sizes`` (an empty list: any), set by the subclass before the
    SDK's constructor runs."""
    vs_sample_rates: List[int]
    vs_buffer_sizes: List[int]

    @torch.jit.export
    def is_input_mono(self) -> bool:
        return True

    @torch.jit.export
    def is_output_mono(self) -> bool:
        return True

    @torch.jit.export
    def get_native_sample_rates(self) -> List[int]:
        return self.vs_sample_rates

    @torch.jit.export
    def get_native_buffer_sizes(self) -> List[int]:
        return self.vs_buffer_sizes


class WholeHopsAtDawRates(MonoAtNativeSizes):
    """The plugin's side of a model that runs whole hops of ``vs_hop`` samples at its own rate ``vs_sample_rate``
    with a delay of ``vs_delay`` samples (the subclass's :meth:`_stream` and :meth:`_reset_stream`).

    Mono in, mono out. Every sample rate and every buffer size is native (empty lists), so the plugin hands the
    model the DAW's own buffers and neither resamples nor queues. The wrapper:

    * at the model's own rate, runs :meth:`_stream` on the whole hops it has and keeps the rest for
      the next call, with an output queue that starts ``hop - gcd(buffer, hop)`` samples long
      (:func:`hop_queue_delay`), the least that never runs dry; the reported delay is ``vs_delay`` plus that queue;
    * at another rate, resamples the input to the model's rate and the output back with
      :class:`~vschaos.dsp.resample.StreamingResampler`s (windowed sinc, fractional position carried across
      calls: exact pitch at any buffer size, unlike the plugin's per-buffer resampling), the output one
      positioned so that the total delay is the least whole number of DAW samples that never runs dry
      (:func:`resampled_stream_delay`; the input is resampled the input filter's half width late, which keeps
      the hops where they fall at the model's rate: the output does not depend on the buffer size).
    """

    vs_sample_rates: List[int]
    vs_buffer_sizes: List[int]
    vs_sample_rate: int
    vs_rate: int
    vs_resampling: bool
    vs_hop: int
    vs_block: int
    vs_queue_delay: int
    vs_total_delay: int
    vs_down_phase: int
    vs_delay: int
    vs_output_limit: float

    def set_stream_shape(self, sample_rate: int, hop: int, delay: int) -> None:
        """Plain attributes, set before the SDK's constructor runs (it asks for the native rates)."""
        self.vs_sample_rate, self.vs_hop, self.vs_delay = int(sample_rate), int(hop), int(delay)
        self.vs_sample_rates = []  # every rate: resampled here, exactly (the plugin's own resampling plays sharp)
        self.vs_buffer_sizes = []  # every size
        self.vs_output_limit = OUTPUT_LIMIT
        # set_model_sample_rate_and_buffer_size sets these
        self.vs_rate, self.vs_resampling, self.vs_block = self.vs_sample_rate, False, -1
        self.vs_queue_delay, self.vs_total_delay, self.vs_down_phase = 0, self.vs_delay, 0

    def add_stream_state(self) -> None:
        """The resamplers and queues, added after the SDK's constructor (streaming state: not saved)."""
        self.vs_down = StreamingResampler()  # DAW rate -> the model's
        self.vs_up = StreamingResampler()  # and back
        self.register_buffer("vs_pending", torch.zeros(1, 0), persistent=False)  # input not yet a whole hop
        self.register_buffer("vs_ready", torch.zeros(1, 0), persistent=False)  # output not yet played

    @torch.jit.export
    def calc_model_delay_samples(self) -> int:
        return self.vs_total_delay

    def set_model_sample_rate_and_buffer_size(self, sample_rate: int, n_samples: int) -> bool:
        """The plugin's rate and buffer: sizes the output queue or sets up the resamplers (and restarts)."""
        self.vs_rate, self.vs_block = sample_rate, n_samples
        self.vs_resampling = sample_rate != self.vs_sample_rate
        if self.vs_resampling:
            self.vs_down.set_rates(sample_rate, self.vs_sample_rate, 0)
            self.vs_up.set_rates(self.vs_sample_rate, sample_rate, 0)
            self.vs_queue_delay = 0
            self.vs_total_delay, self.vs_down_phase = resampled_stream_delay(
                sample_rate, self.vs_sample_rate, n_samples, self.vs_hop, self.vs_delay, self.vs_down.half_width,
                self.vs_up.half_width)
            self.vs_down.set_rates(sample_rate, self.vs_sample_rate, self.vs_down_phase)
            # output n plays the model's output for DAW time n - total delay (input position + its own delay)
            self.vs_up.set_rates(self.vs_sample_rate, sample_rate, self.vs_delay * sample_rate
                                 - self.vs_total_delay * self.vs_sample_rate - self.vs_down_phase)
            # each call pulls n outputs up and at most ceil(n * model rate / DAW rate) down
            self.vs_down.prepare(-(-n_samples * self.vs_sample_rate // sample_rate))
            self.vs_up.prepare(n_samples)
        else:
            self.vs_down_phase = 0
            self.vs_queue_delay = hop_queue_delay(n_samples, self.vs_hop)
            self.vs_total_delay = self.vs_delay + self.vs_queue_delay
        self.reset_model()
        return True

    def prepare_for_inference(self) -> None:
        """The SDK calls this before scripting and saving: the resamplers' cycles, laid out for the SDK's own
        set-up call, are not saved (the plugin's set-up call lays them out again)."""
        super().prepare_for_inference()
        self.vs_down.drop_cycle()
        self.vs_up.drop_cycle()

    def reset_model(self) -> bool:
        self._reset_stream()
        self.vs_down.reset()
        self.vs_up.reset()
        self.vs_pending = torch.zeros(1, 0)
        self.vs_ready = torch.zeros(1, self.vs_queue_delay)
        return True

    def do_forward_pass(self, x: Tensor, params: Dict[str, Tensor]) -> Tensor:
        return self.whole_hops_forward(x, params)

    def whole_hops_forward(self, x: Tensor, params: Dict[str, Tensor]) -> Tensor:
        """``x (1, B)`` -> ``(1, B)``: the whole hops of the input so far (resampled to the model's rate when
        the DAW's differs) through :meth:`_stream`, the output from the queue or the output resampler (see the
        class docstring)."""
        n = x.shape[1]
        if n != self.vs_block:  # a caller that did not announce its buffer (the SDK always does): re-plan and
            # restart for it; varying sizes without a restart would need the delay of the largest
            self.set_model_sample_rate_and_buffer_size(self.vs_rate, n)
        model_rate_x = self.vs_down(x) if self.vs_resampling else x
        pending = torch.cat([self.vs_pending, model_rate_x], dim=1)
        whole = pending.shape[1] // self.vs_hop * self.vs_hop
        self.vs_pending = pending[:, whole:]
        if self.vs_resampling:
            if whole > 0:
                self.vs_up.push(self._stream(pending[:, :whole], params))
            # a windowed sinc rings past a step by ~10 %: the outlets' bound holds after it too
            return self.vs_up.pull(n).clamp_(-self.vs_output_limit, self.vs_output_limit)
        ready = self.vs_ready
        if whole > 0:
            ready = torch.cat([ready, self._stream(pending[:, :whole], params)], dim=1)
        self.vs_ready = ready[:, n:]
        return ready[:, :n]

    def _stream(self, x: Tensor, params: Dict[str, Tensor]) -> Tensor:
        """``(1, whole hops)`` at the model's rate -> ``(1, same)``, ``vs_delay`` samples late."""
        raise NotImplementedError

    def _reset_stream(self) -> None:
        raise NotImplementedError


class NeutoneSpectralVAE(WholeHopsAtDawRates):
    """Neutone ``WaveformToWaveformBase`` around a (not yet scripted) :class:`StreamingVAE`, which runs whole hops
    at the model's rate (:class:`WholeHopsAtDawRates`: every DAW rate and buffer size native). It maps the
    plugin's knobs onto ``StreamingVAE``'s inlets and attributes."""

    # TorchScript reads attribute types from this class's own annotations: the SDK's are repeated here.
    neutone_parameters_metadata: Dict[str, Dict[str, Union[int, float, str, bool, List[str], List[int]]]]
    remapped_params: Dict[str, Tensor]
    neutone_parameter_names: List[str]
    vs_name: str
    vs_authors: List[str]
    vs_short: str
    vs_long: str
    vs_technical: str
    vs_tags: List[str]
    vs_version: str
    vs_experimental: bool
    vs_links: Dict[str, str]
    vs_sample_rates: List[int]  # empty: TorchScript cannot infer it (WholeHopsAtDawRates's others it infers)
    vs_buffer_sizes: List[int]
    vs_n_tasks: int
    vs_direction_names: List[str]
    vs_transpose_range: float
    vs_label_mode: int
    vs_label_knob: str
    vs_pitch_index: int
    vs_octave_index: int
    vs_class_index: int
    vs_n_classes: int
    vs_temperature_max: float
    vs_auto_below: float
    vs_note_low: int
    vs_note_high: int

    def __init__(self, stream: StreamingVAE, texts: NeutoneTexts, directions: LatentDirections) -> None:
        # Plain attributes first: the SDK's constructor already calls the metadata and knob getters.
        self.vs_name, self.vs_authors = texts.name, list(texts.authors)
        self.vs_short, self.vs_long = texts.short_description, texts.long_description
        self.vs_technical, self.vs_tags = texts.technical_description, list(texts.tags)
        self.vs_version, self.vs_experimental = texts.version, bool(texts.is_experimental)
        self.vs_links = {}
        self.set_stream_shape(int(stream.sample_rate), int(stream.hop), int(stream.delays()[2]))
        self.vs_n_tasks = len(stream.forward_tasks)
        self.vs_transpose_range = TRANSPOSE_RANGE if int(stream.pitch_dims) > 0 else 0.0
        self.vs_temperature_max = TEMPERATURE_MAX
        self.vs_auto_below = LABEL_AUTO_BELOW
        self.vs_note_low, self.vs_note_high = NOTE_RANGE
        self.vs_pitch_index = self.vs_octave_index = self.vs_class_index = -1
        self.vs_n_classes = 0
        tasks, dims = list(stream.forward_tasks), dict(stream.task_dims)
        if "pitch" in tasks and "octave" in tasks and dims["pitch"] == 12:
            self.vs_label_mode, self.vs_label_knob = NOTE_LABELS, "note"
            self.vs_pitch_index, self.vs_octave_index = tasks.index("pitch"), tasks.index("octave")
        elif stream.decoder_tasks:
            task = stream.decoder_tasks[0]
            self.vs_label_mode, self.vs_label_knob = CLASS_LABELS, f"{task} class"[:20]
            self.vs_class_index, self.vs_n_classes = tasks.index(task), int(dims[task])
        else:
            self.vs_label_mode, self.vs_label_knob = NO_LABEL, ""
        room = direction_knobs(self.vs_transpose_range > 0, self.vs_label_mode != NO_LABEL)
        directions = LatentDirections(directions.vectors[:room], directions.scales[:room], directions.source)
        self.vs_direction_names = [f"direction {i + 1}" for i in range(directions.vectors.shape[0])]
        self._directions_source = directions.source
        self._label_task_names = tasks
        super().__init__(stream, use_debug_mode=True)
        self.add_stream_state()
        defaults = [default for _, _, default in self.knobs()]
        defaults += [0.0] * (self._get_max_n_params() - len(defaults))
        self.register_buffer("vs_knob_defaults", torch.tensor(defaults).unsqueeze(1))
        self.register_buffer("vs_direction_steps",
                             DIRECTION_RANGE * directions.scales.float().unsqueeze(1) * directions.vectors.float())

    # ------------------------------------------------------------------ metadata
    def get_model_name(self) -> str:
        return self.vs_name

    def get_model_authors(self) -> List[str]:
        return self.vs_authors

    def get_model_short_description(self) -> str:
        return self.vs_short

    def get_model_long_description(self) -> str:
        return self.vs_long

    def get_technical_description(self) -> str:
        return self.vs_technical

    def get_tags(self) -> List[str]:
        return self.vs_tags

    def get_model_version(self) -> str:
        return self.vs_version

    def is_experimental(self) -> bool:
        return self.vs_experimental

    def get_technical_links(self) -> Dict[str, str]:
        return self.vs_links

    def get_citation(self) -> str:
        return ""

    @torch.jit.unused
    def get_neutone_parameters(self) -> List[NeutoneParameter]:
        return [ContinuousNeutoneParameter(name, description, default)
                for name, description, default in self.knobs()]

    @torch.jit.unused
    def knobs(self) -> List[Tuple[str, str, float]]:
        """``(name, description, default)`` of each knob, in plugin order."""
        knobs = [("temperature", f"latent sampling: 0 = posterior mean, 1 = std x {TEMPERATURE_MAX:g}", 0.0)]
        for i, name in enumerate(self.vs_direction_names):
            knobs.append((name, f"move along principal direction {i + 1} of the training latents "
                                f"(0.5 = none, 0/1 = -/+{DIRECTION_RANGE:g} std)", 0.5))
        if self.vs_transpose_range > 0:
            knobs.append(("transpose", f"semitones: 0.5 = none, 0/1 = -/+{self.vs_transpose_range:g}", 0.5))
        if self.vs_label_mode == NOTE_LABELS:
            low, high = NOTE_RANGE
            knobs.append(("note", f"pitch label: < {LABEL_AUTO_BELOW:g} auto, then MIDI {low}-{high}", 0.0))
        elif self.vs_label_mode == CLASS_LABELS:
            knobs.append((self.vs_label_knob, f"class label: < {LABEL_AUTO_BELOW:g} auto, then classes "
                                              f"0-{self.vs_n_classes - 1}", 0.0))
        return knobs

    # ------------------------------------------------------------------ plugin contract
    def aggregate_params(self, params: Tensor) -> Tensor:
        """Each knob's value for this buffer: the SDK's mean over the buffer of its samples, each NaN sample read
        as the knob's default and each sample clamped to [0, 1] (+Inf -> 1, -Inf -> 0) first, so that one bad
        sample moves the knob by its share of the buffer only. Done here once for all knobs, since every tensor
        operation costs microseconds per call."""
        clean = torch.where(torch.isnan(params), self.vs_knob_defaults, params).clamp(0.0, 1.0)
        torch.mean(clean, dim=1, keepdim=True, out=self.agg_params)
        return self.agg_params

    def _label_values(self, knob: float) -> Tensor:
        """Label inlet values ``(n_tasks,)``: -1 (unknown) unless the knob picks a note or a class."""
        values = torch.full([self.vs_n_tasks], -1.0)
        if knob >= self.vs_auto_below:
            position = (knob - self.vs_auto_below) / (1.0 - self.vs_auto_below)
            if self.vs_label_mode == 1:
                midi = int(round(self.vs_note_low + position * (self.vs_note_high - self.vs_note_low)))
                values[self.vs_pitch_index] = float(midi % 12)
                values[self.vs_octave_index] = float(midi // 12)
            elif self.vs_label_mode == 2:
                values[self.vs_class_index] = float(round(position * (self.vs_n_classes - 1)))
        return values

    def _reset_stream(self) -> None:
        self.model.reset()

    def _stream(self, x: Tensor, params: Dict[str, Tensor]) -> Tensor:
        """``x (1, whole hops)`` -> ``(1, same)`` through ``StreamingVAE.forward`` with the knobs applied."""
        self.model.set_temperature(self.vs_temperature_max * float(params["temperature"]))
        if len(self.vs_direction_names) > 0:
            amounts = torch.cat([params[name] for name in self.vs_direction_names])
            offset = torch.matmul((amounts - 0.5) * 2.0, self.vs_direction_steps)
            self.model.forward_latent_offset.copy_(offset)
        if self.vs_transpose_range > 0:
            knob = float(params["transpose"])
            self.model.set_transpose((knob - 0.5) * 2.0 * self.vs_transpose_range)
        if self.vs_n_tasks == 0:
            return self.model.forward(x.unsqueeze(0))[0]
        inputs = torch.full([1, 1 + self.vs_n_tasks, x.shape[1]], -1.0)
        inputs[0, 0] = x[0]
        if self.vs_label_mode != 0:
            values = self._label_values(float(params[self.vs_label_knob]))
            inputs[0, 1:] = values.unsqueeze(1)
        return self.model.forward(inputs)[0]


def hop_queue_delay(buffer: int, hop: int) -> int:
    """Samples the output queue must start with so that calls of ``buffer`` samples, processed in whole hops,
    never run dry: the largest remainder ``k * buffer mod hop``, i.e. ``hop - gcd(buffer, hop)`` (0 when the
    buffer is a multiple of the hop, 255 for 941 samples and a hop of 256)."""
    return hop - math.gcd(buffer, hop)


def direction_knobs(transpose_knob: bool, label_knob: bool) -> int:
    """How many direction knobs fit beside temperature, the transpose knob and the label knob: MAX_KNOBS in all."""
    return MAX_KNOBS - 1 - int(transpose_knob) - int(label_knob)


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
        knob_text += (f", {' and '.join(f'direction {i + 1}' for i in range(n_directions))} (move through the "
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
                 + f"; real-time phase-gradient heap integration (RTPGHI) and overlap-add; delay "
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
