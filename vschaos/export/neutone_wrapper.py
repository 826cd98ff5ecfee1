"""The Neutone model around a :class:`~vschaos.export.module.StreamingVAE`: the plugin's knobs mapped onto its
``forward`` inlets and attributes (the texts, mono and whole hops at every DAW rate: the base classes in
:mod:`vschaos.export.neutone_plugin`).

Knobs (the plugin sends values in [0, 1], averaged over each DAW buffer):

* ``temperature``: ``0..TEMPERATURE_MAX`` (default 0 = the posterior mean).
* ``direction 1`` / ``direction 2``: move the latent along the first two principal directions of
  the training latents (computed at export, stored in the file), ``(knob - 0.5) * 2 *
  DIRECTION_RANGE`` standard deviations along each; 0.5 (default) = no change. Directions whose effect on the
  sound was measured (``LatentDirections.names``) are called by it: ``dir 1: louder``, ``dir 2: brighter``.
* for models with a pitch latent (``model=harmonic``), ``transpose``: ``(knob - 0.5) * 2 * TRANSPOSE_RANGE``
  semitones (StreamingVAE's ``transpose`` attribute; 0.5 = none); the directions then leave the pitch out.
* for label-conditioned models, ``note`` (pitch and octave tasks: a fixed MIDI note from
  ``NOTE_RANGE``) or ``<task> class`` (the first decoder task): below ``LABEL_AUTO_BELOW`` = "auto"
  (the label is unknown: the model's own prediction where it has a predictor, else the neutral
  missing-label input).

The wrapper uses nothing of ``StreamingVAE`` but the interface its class docstring lists (rates, hop, delay and
tasks read; attributes, the latent offset and ``forward`` called). Needs the Neutone SDK.
"""
from typing import Dict, List, Tuple, Union

import torch
from neutone_sdk import ContinuousNeutoneParameter, NeutoneParameter
from torch import Tensor

from vschaos.export.directions import LatentDirections
from vschaos.export.module import StreamingVAE
from vschaos.export.neutone_plugin import NeutoneTexts, WholeHopsAtDawRates

TEMPERATURE_MAX = 2.0
DIRECTION_RANGE = 2.0  # knob at 0 or 1 = -2 or +2 std of the training latents along the direction
LABEL_AUTO_BELOW = 0.02  # knob values below this leave the label unknown ("auto")
NOTE_RANGE = (24, 96)  # MIDI C1..C7 across the rest of the note knob
TRANSPOSE_RANGE = 12.0  # semitones at either end of the transpose knob
MAX_KNOBS = 4  # the plugin shows four
NO_LABEL, NOTE_LABELS, CLASS_LABELS = 0, 1, 2


def direction_knobs(transpose_knob: bool, label_knob: bool) -> int:
    """How many direction knobs fit beside temperature, the transpose knob and the label knob: MAX_KNOBS in all."""
    return MAX_KNOBS - 1 - int(transpose_knob) - int(label_knob)


def direction_knob_names(directions: LatentDirections) -> List[str]:
    """``direction 1``, ``direction 2``; with measured effects ``dir 1: louder`` (short: the plugin's knob label)."""
    n = int(directions.vectors.shape[0])
    if len(directions.names) == n:
        return [f"dir {i + 1}: {name}"[:20] for i, name in enumerate(directions.names)]
    return [f"direction {i + 1}" for i in range(n)]


class NeutoneSpectralVAE(WholeHopsAtDawRates):
    """Neutone ``WaveformToWaveformBase`` around a (not yet scripted) :class:`StreamingVAE`, which runs whole hops
    at the model's rate (:class:`WholeHopsAtDawRates`: every DAW rate and buffer size native). It maps the
    plugin's knobs onto ``StreamingVAE``'s inlets and attributes."""

    # TorchScript reads attribute types from this class's own annotations: the SDK's are repeated here.
    neutone_parameters_metadata: Dict[str, Dict[str, Union[int, float, str, bool, List[str], List[int]]]]
    remapped_params: Dict[str, Tensor]
    neutone_parameter_names: List[str]
    vs_sample_rates: List[int]  # empty: TorchScript cannot infer it (WholeHopsAtDawRates's others it infers)
    vs_buffer_sizes: List[int]
    vs_authors: List[str]
    vs_tags: List[str]
    vs_direction_names: List[str]
    vs_transpose_range: float
    vs_label_mode: int
    vs_label_knob: str
    vs_label_task: str
    vs_pitch_index: int
    vs_octave_index: int
    vs_class_index: int
    vs_temperature_max: float
    vs_auto_below: float
    vs_note_low: int
    vs_note_high: int

    def __init__(self, stream: StreamingVAE, texts: NeutoneTexts, directions: LatentDirections) -> None:
        # Plain attributes first: the SDK's constructor already calls the metadata and knob getters.
        self.set_texts(texts)
        # the hop queue's plan: whole hops at the stream's rate, its forward delay late
        self.set_stream_shape(stream.sample_rate, stream.hop, stream.stream_delay)
        # the knobs' plan: what each knob sets, from the stream's tasks (knob constants as attributes: scripted
        # code cannot read module globals)
        self.vs_transpose_range = TRANSPOSE_RANGE if stream.pitch_dims > 0 else 0.0
        self.vs_temperature_max = TEMPERATURE_MAX
        self.vs_auto_below = LABEL_AUTO_BELOW
        self.vs_note_low, self.vs_note_high = NOTE_RANGE
        self.vs_pitch_index = self.vs_octave_index = self.vs_class_index = -1
        self.vs_label_mode, self.vs_label_knob, self.vs_label_task = NO_LABEL, "", ""
        tasks = list(stream.forward_tasks)
        if "pitch" in tasks and "octave" in tasks and stream.task_dims["pitch"] == 12:
            self.vs_label_mode, self.vs_label_knob = NOTE_LABELS, "note"
            self.vs_pitch_index, self.vs_octave_index = tasks.index("pitch"), tasks.index("octave")
        elif stream.decoder_tasks:
            self.vs_label_task = stream.decoder_tasks[0]
            self.vs_label_mode, self.vs_label_knob = CLASS_LABELS, f"{self.vs_label_task} class"[:20]
            self.vs_class_index = tasks.index(self.vs_label_task)
        room = direction_knobs(self.vs_transpose_range > 0, self.vs_label_mode != NO_LABEL)
        directions = LatentDirections(directions.vectors[:room], directions.scales[:room], directions.source,
                                      list(directions.names[:room]))
        self.vs_direction_names = direction_knob_names(directions)
        super().__init__(stream, use_debug_mode=True)
        self.add_stream_state()
        defaults = [default for _, _, default in self.knobs()]
        defaults += [0.0] * (self._get_max_n_params() - len(defaults))
        self.register_buffer("vs_knob_defaults", torch.tensor(defaults).unsqueeze(1))
        # this buffer's knob samples, kept by aggregate_params for knob_values (streaming state: not saved)
        self.register_buffer("vs_knob_samples", torch.tensor(defaults).unsqueeze(1), persistent=False)
        self.register_buffer("vs_direction_steps",
                             DIRECTION_RANGE * directions.scales.float().unsqueeze(1) * directions.vectors.float())
        # per unit of (knob - 0.5): twice the steps, exactly (a power of two), so a call saves the multiplication
        self.register_buffer("vs_knob_steps", 2.0 * self.vs_direction_steps)

    # ------------------------------------------------------------------ knobs
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
                                f"(0.5 = none, 0/1 = -/+{DIRECTION_RANGE:g} std)"
                          + (f": {name.split(': ', 1)[1]} towards 1" if ": " in name else ""), 0.5))
        if self.vs_transpose_range > 0:
            knobs.append(("transpose", f"semitones: 0.5 = none, 0/1 = -/+{self.vs_transpose_range:g}", 0.5))
        if self.vs_label_mode == NOTE_LABELS:
            low, high = NOTE_RANGE
            knobs.append(("note", f"pitch label: < {LABEL_AUTO_BELOW:g} auto, then MIDI {low}-{high}", 0.0))
        elif self.vs_label_mode == CLASS_LABELS:
            knobs.append((self.vs_label_knob, f"class label: < {LABEL_AUTO_BELOW:g} auto, then classes "
                                              f"0-{self.model.task_dims[self.vs_label_task] - 1}", 0.0))
        return knobs

    # ------------------------------------------------------------------ plugin contract
    def aggregate_params(self, params: Tensor) -> Tensor:
        """The SDK's call for the knobs' values on every buffer: it keeps the buffer's knob samples
        ``(MAX_N_PARAMS, buffer)`` and returns ``agg_params``, whose rows the SDK hands :meth:`_stream` as the
        knobs. Only a call that completes a hop reads them, so :meth:`_stream` averages them then
        (:meth:`knob_values`, into ``agg_params`` in place: the rows see it); a call that only queues (most
        calls at a buffer shorter than a hop) pays no tensor operation for its knobs."""
        self.vs_knob_samples = params
        return self.agg_params

    def knob_values(self) -> Tensor:
        """Each knob's value for this buffer, written into ``agg_params`` ``(MAX_N_PARAMS, 1)`` and returned: the
        SDK's mean over the buffer of its samples, each NaN sample read as the knob's default and each sample
        clamped to [0, 1] (+Inf -> 1, -Inf -> 0) first, so that one bad sample moves the knob by its share of the
        buffer only. Done once for all knobs, since every tensor operation costs microseconds per call."""
        samples = self.vs_knob_samples
        clean = torch.where(torch.isnan(samples), self.vs_knob_defaults, samples).clamp(0.0, 1.0)
        torch.mean(clean, dim=1, keepdim=True, out=self.agg_params)
        return self.agg_params

    def _label_values(self, knob: float) -> Tensor:
        """Label inlet values ``(n_tasks,)``: -1 (unknown) unless the knob picks a note or a class."""
        values = torch.full([len(self.model.forward_tasks)], -1.0)
        if knob >= self.vs_auto_below:
            position = (knob - self.vs_auto_below) / (1.0 - self.vs_auto_below)
            if self.vs_label_mode == 1:
                midi = int(round(self.vs_note_low + position * (self.vs_note_high - self.vs_note_low)))
                values[self.vs_pitch_index] = float(midi % 12)
                values[self.vs_octave_index] = float(midi // 12)
            elif self.vs_label_mode == 2:
                n_classes = self.model.task_dims[self.vs_label_task]
                values[self.vs_class_index] = float(round(position * (n_classes - 1)))
        return values

    def _reset_stream(self) -> None:
        self.model.reset()

    def _stream(self, x: Tensor, params: Dict[str, Tensor]) -> Tensor:
        """``x (1, whole hops)`` -> ``(1, same)`` through ``StreamingVAE.forward`` with the knobs applied (``params``:
        rows of ``agg_params``, which :meth:`knob_values` fills with this buffer's values first)."""
        self.knob_values()
        self.model.set_temperature(self.vs_temperature_max * float(params["temperature"]))
        if len(self.vs_direction_names) > 0:
            amounts = torch.cat([params[name] for name in self.vs_direction_names])
            offset = torch.matmul(amounts - 0.5, self.vs_knob_steps)
            self.model.set_latent_offset(offset)
        if self.vs_transpose_range > 0:
            knob = float(params["transpose"])
            self.model.set_transpose((knob - 0.5) * 2.0 * self.vs_transpose_range)
        n_tasks = len(self.model.forward_tasks)
        if n_tasks == 0:
            return self.model.forward(x.unsqueeze(0))[0]
        inputs = torch.full([1, 1 + n_tasks, x.shape[1]], -1.0)
        inputs[0, 0] = x[0]
        if self.vs_label_mode != 0:
            values = self._label_values(float(params[self.vs_label_knob]))
            inputs[0, 1:] = values.unsqueeze(1)
        return self.model.forward(inputs)[0]

