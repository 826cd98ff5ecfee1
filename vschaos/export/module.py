"""The scripted nn~ module: a trained ``SpectralVAE`` wrapped for buffer-by-buffer streaming.

It follows docs/NN_CONTRACT.md (methods with ``<m>_params``, labels, typed attributes) and adds
the declared delays ``<m>_delay`` and ``reset()`` (docs/NN_CONTRACT.md section 6; the delays are
defined in docs/ARCHITECTURE.md section 4). The VAE object itself (its transform, encoder,
decoder, embeddings, predictors) is scripted inside: there is no second implementation of the
front end. Streaming state lives in the submodules' buffers (one row per
batch element) and is re-initialised when the batch size changes.

Methods (``hop`` = the transform's hop, ``L`` = latent size):

* ``encode``: audio [+ encoder label inlets] ``(batch, 1 + n_enc, B)`` -> latent [+ one outlet
  per predicted task] ``(batch, L + n_pred, B // hop)``.
* ``decode``: latent [+ decoder label inlets] ``(batch, L + n_dec, B // hop)`` -> audio ``(batch, 1, B)``.
* ``forward``: audio [+ label inlets of the encoder and decoder tasks, each once, config order]
  ``(batch, 1 + n_tasks, B)`` -> audio ``(batch, 1, B)``.

Label inlets are read once per frame (the last sample of each hop block, as nn~ decimates),
rounded and clamped to ``[0, n_classes - 1]``. A negative value (or NaN) means "unknown": the
model's own prediction for tasks that have a predictor, otherwise the VAE's neutral "missing
label" input (a zero embedding, what it saw for unlabelled training frames). A predictor that
reads the spectrum (``SpectrumNotePredictor``) predicts in ``encode`` and ``forward`` only:
``decode`` has no audio, so there its task is "unknown" (the inlet descriptions say which).

Randomness (``temperature`` > 0, ``phase = random``) comes from counter-based noise, a pure
function of (``seed``, frame index since reset, batch row, channel): any buffer size gives the
same stream, ``reset()`` restarts it, and two loads of the file produce the same output.

Bounded by construction (limits in ``vschaos.dsp.bounds``, listed in docs/EXPORT.md "Limits"): inputs are cast
to the model's dtype (a float64 call cannot change the float32 state), audio inlets read NaN/Inf as 0
and are clamped to ``+-INPUT_LIMIT``, latent inlets and ``encode``'s latent outlets to ``+-LATENT_LIMIT``
(NaN/Inf -> 0), ``temperature`` is at most ``MAX_TEMPERATURE``; the VAE itself clamps its features and its
decoded magnitudes (``SpectralVAE``), RTPGHI keeps its phase finite, and the audio outlets are
soft-clipped (identity within ``+-OUTPUT_KNEE``, never beyond ``+-OUTPUT_LIMIT``). So no input,
attribute value or weights can make a method emit NaN/Inf or an unbounded sample. Weights that are
themselves NaN/Inf are refused when the module is built. An empty batch, an empty buffer, a buffer that
is not a multiple of the hop or a wrong channel count raises a one-line ``ValueError`` naming the method.
"""
from typing import Dict, Final, List, Optional, Tuple

import torch
from torch import Tensor

from vschaos.dsp.bounds import MAX_TEMPERATURE, bounded_audio_input, bounded_latent, soft_clip
from vschaos.dsp.counter_noise import NORMAL_UNIFORM_BASE
from vschaos.export.latent_axes import LatentAxes, LatentRotation
from vschaos.export.streaming_stages import StreamingStages, label_ids
from vschaos.models.contract import SpectralModel, check_model
from vschaos.notes import MAX_TRANSPOSE_SEMITONES
from vschaos.util import is_power_of_two

__all__ = ["LATENT_NOISE_STREAM", "LEVEL_MODES", "PHASE_MODES", "PHASE_NOISE_STREAM", "StreamingVAE", "label_ids"]

PHASE_MODES: Tuple[str, ...] = ("pghi", "random", "keep_input")
LEVEL_MODES: Tuple[str, ...] = ("follow", "model")
# Counter-noise streams: latent noise is counter_normal stream 0 (uniform streams 10 and 11), the
# random phase counter_uniform stream 1; counter_normal never draws uniform streams below 10.
LATENT_NOISE_STREAM = 0
PHASE_NOISE_STREAM = 1
assert PHASE_NOISE_STREAM < NORMAL_UNIFORM_BASE
# nn~ attribute type codes (docs/NN_CONTRACT.md section 1)
_FLOAT, _INT, _STR = 2, 1, 3


class StreamingVAE(StreamingStages):
    """nn~ / nn.ar model around a ``SpectralVAE`` (scripted with ``torch.jit.script``).

    Args:
        vae: the trained ``SpectralVAE`` (used as is: put it in eval mode; it is not copied). Its own dtype is the
            dtype of the model math (``script_model`` exports a float32 copy, or float64); the streaming analysis, RTPGHI,
            synthesis and every inlet and outlet are float32 whatever it is.
        temperature: initial ``temperature`` attribute (0 = posterior mean).
        phase: initial ``phase`` attribute, one of ``pghi``, ``random``, ``keep_input``; None (default): ``keep_input``
            for a source-filter model (its partials sit at the input's f0, where the input's phase fits them), else
            ``pghi``.
        seed: initial ``seed`` attribute of the counter-based noise.
        axes: the ordered latent axes (:mod:`vschaos.export.latent_axes`): ``encode``'s latent outlets and
            ``decode``'s latent inlets are then its ``axes.kept`` components (``R_k^T (z - mean)``; ``decode`` maps
            them back, dropped components at the mean) with its labels; None: the model's own latent axes.
            ``forward`` and :meth:`set_latent_offset` stay in the model's latent space.

    Attributes (nn~ ``set``/``get``): ``temperature`` (float in ``[0, MAX_TEMPERATURE]``:
    z = mean + temperature * std * noise in encode/forward), ``phase`` (str: ``pghi`` real-time phase-gradient integration,
    ``random`` uniform random phase, ``keep_input`` the input's phase, forward only, and only while ``transpose``
    is 0 (moved partials are not where the input's phase fits: ``pghi`` then; decode always uses ``pghi`` then), ``seed`` (int: noise seed), ``level`` (str, forward only: ``follow``, the default, gives
    each output frame the input frame's energy; ``model`` the decoder's own level), and for a model with a pitch latent ``transpose`` (float
    semitones in ``+-MAX_TRANSPOSE_SEMITONES``: ``forward`` moves the measured pitch, so the output plays
    that much higher or lower) and, for a source-filter model, ``voicing`` (str: ``follow``, the default, keeps at least the input frame's
    voicing in forward's partials; ``model`` the decoder's own mix of partials and noise).

    What a wrapper (the Neutone plugin's, a benchmark) may use besides the nn~ methods, its whole interface:
    read-only plain attributes ``sample_rate``, ``hop``, ``n_fft``, ``n_bins``, ``latent_dim``, ``pitch_dims``,
    ``stream_delay`` (forward's delay in samples, as the ``forward_delay`` buffer declares it), ``forward_tasks``
    (forward's label inlets, in order), ``decoder_tasks`` and ``task_dims`` (classes per task), ``latent_inlets``
    (encode's latent outlets and decode's latent inlets: ``latent_dim``, or the kept ordered components) and
    ``latent_axes`` (its :class:`~vschaos.export.latent_axes.LatentRotation`, applied when ``latent_rotated``); the
    attribute setters; :meth:`set_latent_offset`; :meth:`reset`; and forward's stages
    (:mod:`vschaos.export.streaming_stages`, ``forward`` is nothing else). Plain attributes and the buffers stay
    this module's own: a wrapper reads the attributes and never writes either.

    The model math's dtype (``export_model`` tries float32, then float64): RTPGHI's choice of spectral peaks is
    discontinuous in the magnitudes, and float32 matrix products round differently for a call of one frame
    (streaming) and of many (offline; with MKL, calls of a few rows use other kernels than longer ones). A peak
    that flips makes the output depend on the buffer size. The export verifies the float32 file with the host
    (streaming against offline, within its tolerance) and exports in float64 when that fails: there the two
    differ far below float32's resolution, so the float32 magnitudes RTPGHI reads agree. Float32 comes first because it is cheaper per call
    (``python -m bench.export_speed`` times the exported methods).
    """

    sample_rate: int
    hop: int
    n_fft: int
    n_bins: int
    latent_dim: int
    temperature: float
    max_temperature: float
    transpose: float
    max_transpose: float
    pitch_dims: int
    pitch_octaves_per_unit: float
    phase: str
    level: str
    max_level_gain: float
    voicing: str
    source_filter: Final[bool]
    pitch_from_window: Final[bool]
    pitch_bins: int
    seed: int
    latent_noise_stream: int
    phase_noise_stream: int
    encoder_tasks: List[str]
    decoder_tasks: List[str]
    predicted_tasks: List[str]
    forward_tasks: List[str]
    task_dims: Dict[str, int]
    encode_input_labels: List[str]
    encode_output_labels: List[str]
    decode_input_labels: List[str]
    decode_output_labels: List[str]
    forward_input_labels: List[str]
    forward_output_labels: List[str]
    stream_delay: int
    latent_inlets: int
    latent_rotated: bool

    def __init__(self, vae: SpectralModel, temperature: float = 0.0, phase: Optional[str] = None, seed: int = 0,
                 axes: Optional[LatentAxes] = None) -> None:
        check_model(vae, "the nn~ export")
        if phase is not None and phase not in PHASE_MODES:
            raise ValueError(f"phase must be one of {PHASE_MODES}, got {phase!r}")
        if not 0.0 <= temperature <= MAX_TEMPERATURE:
            raise ValueError(f"temperature must be within [0, {MAX_TEMPERATURE:g}], got {temperature}")
        broken = sum(int((~torch.isfinite(p)).sum()) for p in vae.parameters())
        if broken:
            total = sum(p.numel() for p in vae.parameters())
            raise ValueError(f"export refused: {broken} of {total} parameters are NaN/Inf (the training "
                             f"diverged); export an earlier checkpoint")
        transform = vae.transform
        hop = int(transform.hop)
        if not is_power_of_two(hop):
            # nn~ / nn.ar buffers are powers of two and every call needs a multiple of the hop:
            # such a model would raise on every call in the host.
            lower = 1 << (hop.bit_length() - 1) if hop > 0 else 1
            raise ValueError(
                f"cannot export a model with hop {hop}: nn~ and nn.ar call it with power-of-two buffers, "
                f"which are never a multiple of hop {hop}, so every call would fail; train with a "
                f"power-of-two hop (e.g. {lower} or {lower * 2})")
        super().__init__(vae, temperature, phase, seed, LATENT_NOISE_STREAM, PHASE_NOISE_STREAM)
        self.max_temperature = MAX_TEMPERATURE
        self.max_transpose = MAX_TRANSPOSE_SEMITONES

        # ordered latents: encode/decode exchange the kept components (one addmm each way); forward is unchanged
        self.latent_rotated = axes is not None and not axes.is_identity()
        if axes is None:
            axes = LatentAxes.identity(self.latent_dim, self.pitch_dims, "not rotated")
        self.latent_axes = LatentRotation(axes, vae.transform.norm_mean.dtype)
        self.latent_inlets = int(axes.kept)
        latent_labels = [f"(signal) {label}" for label in axes.labels()]
        # decode reads no audio: there, only tasks predicted from the latent are predicted
        latent_predicted = [t for t in self.predicted_tasks if t not in vae.spectrum_tasks]
        self.encode_input_labels = ["(signal) audio input"] + self._label_inlets(self.encoder_tasks, self.predicted_tasks)
        self.encode_output_labels = latent_labels + [
            f"(signal) predicted {t} class 0-{self.task_dims[t] - 1}" for t in self.predicted_tasks]
        self.decode_input_labels = latent_labels + self._label_inlets(self.decoder_tasks, latent_predicted)
        self.decode_output_labels = ["(signal) audio output"]
        self.forward_input_labels = ["(signal) audio input"] + self._label_inlets(self.forward_tasks,
                                                                                    self.predicted_tasks)
        self.forward_output_labels = ["(signal) audio output"]

        n_pred = len(self.predicted_tasks)
        self.register_buffer("encode_params", torch.tensor(
            [1 + len(self.encoder_tasks), 1, self.latent_inlets + n_pred, self.hop], dtype=torch.int64))
        self.register_buffer("decode_params", torch.tensor(
            [self.latent_inlets + len(self.decoder_tasks), self.hop, 1, 1], dtype=torch.int64))
        self.register_buffer("forward_params", torch.tensor(
            [1 + len(self.forward_tasks), 1, 1, 1], dtype=torch.int64))
        # Declared delays (samples), see delays() for their definition.
        encode_delay, decode_delay, forward_delay = self.delays()
        self.register_buffer("encode_delay", torch.tensor([encode_delay], dtype=torch.int64))
        self.register_buffer("decode_delay", torch.tensor([decode_delay], dtype=torch.int64))
        self.register_buffer("forward_delay", torch.tensor([forward_delay], dtype=torch.int64))
        self.stream_delay = int(forward_delay)
        self.register_buffer("temperature_params", torch.tensor([_FLOAT], dtype=torch.int64))
        self.register_buffer("phase_params", torch.tensor([_STR], dtype=torch.int64))
        self.register_buffer("seed_params", torch.tensor([_INT], dtype=torch.int64))
        self.register_buffer("level_params", torch.tensor([_STR], dtype=torch.int64))
        self.register_buffer("voicing_params", torch.tensor([_STR], dtype=torch.int64))
        self.register_buffer("transpose_params", torch.tensor([_FLOAT], dtype=torch.int64))

    @torch.jit.unused
    def _label_inlets(self, tasks: List[str], predicted: List[str]) -> List[str]:
        inlets = []
        for task in tasks:
            unknown = "predicted" if task in predicted else "unknown"
            inlets.append(f"(signal) {task} class 0-{self.task_dims[task] - 1} (<0: {unknown})")
        return inlets

    @torch.jit.unused
    def delays(self) -> Tuple[int, int, int]:
        """``(encode, decode, forward)`` delays in samples, host buffering excluded.

        forward: ``n_fft - hop`` (output sample n is the resynthesis of input sample n - delay:
        analysis emits a frame when its last sample arrives, synthesis completes a sample once all
        overlapping frames arrived). encode: ``n_fft / 2 - hop``, the lag between the start of the
        block where a latent frame is output (and held) and that frame's centre in the input.
        decode: ``n_fft / 2``, the lag between the block a latent frame is read in and the centre
        of the audio frame it produces. encode + decode = forward.
        """
        return self.n_fft // 2 - self.hop, self.n_fft // 2, self.forward_synthesis.delay

    # ------------------------------------------------------------------ nn~ contract
    @torch.jit.export
    def get_methods(self) -> List[str]:
        return ["forward", "encode", "decode"]

    @torch.jit.export
    def get_attributes(self) -> List[str]:
        if self.pitch_dims > 0:
            if self.source_filter:
                return ["temperature", "phase", "seed", "level", "transpose", "voicing"]
            return ["temperature", "phase", "seed", "level", "transpose"]
        return ["temperature", "phase", "seed", "level"]

    @torch.jit.export
    def get_transpose(self) -> Tuple[float]:
        return (self.transpose,)

    @torch.jit.export
    def set_transpose(self, semitones: float) -> int:
        """Transpose ``forward`` by this many semitones (moves the pitch latent): 0 on success; -1 (refused, the
        value is kept) for a model without a pitch latent, NaN, or beyond ``+-max_transpose`` (48)."""
        if self.pitch_dims == 0 or not (abs(semitones) <= self.max_transpose):
            return -1
        self.transpose = float(semitones)
        return 0

    @torch.jit.export
    def get_temperature(self) -> Tuple[float]:
        return (self.temperature,)

    @torch.jit.export
    def set_temperature(self, temperature: float) -> int:
        """0 on success; -1 (refused, the value is kept) outside ``[0, max_temperature]`` (10) or NaN."""
        if not (temperature >= 0.0 and temperature <= self.max_temperature):
            return -1
        self.temperature = float(temperature)
        return 0

    @torch.jit.export
    def get_phase(self) -> Tuple[str]:
        return (self.phase,)

    @torch.jit.export
    def set_phase(self, phase: str) -> int:
        """0 on success (and the phase integrators restart), -1 for an unknown mode."""
        if phase != "pghi" and phase != "random" and phase != "keep_input":
            return -1
        if phase != self.phase:
            self.decode_rtpghi.reset()
            self.forward_rtpghi.reset()
        self.phase = phase
        return 0

    @torch.jit.export
    def get_level(self) -> Tuple[str]:
        return (self.level,)

    @torch.jit.export
    def set_level(self, level: str) -> int:
        """``forward``'s output level: ``follow`` (each output frame at the input frame's energy: the model
        shapes the spectrum, the player keeps the dynamics) or ``model`` (the decoder's own level). 0 on
        success, -1 for another value (the mode is kept)."""
        if level != "follow" and level != "model":
            return -1
        self.level = level
        return 0

    @torch.jit.export
    def get_voicing(self) -> Tuple[str]:
        return (self.voicing,)

    @torch.jit.export
    def set_voicing(self, voicing: str) -> int:
        """A source-filter model (a pitch latent and a ``HarmonicDecoder``): ``forward``'s partials carry at least the input's voicing (``follow``, the
        default: a periodic input stays periodic at its pitch, in the model's timbre, even one unlike the training
        sounds) or only what the decoder gives them (``model``). 0 on success; -1 for another value or another
        model (the mode is kept)."""
        if not self.source_filter or (voicing != "follow" and voicing != "model"):
            return -1
        self.voicing = voicing
        return 0

    @torch.jit.export
    def get_seed(self) -> Tuple[int]:
        return (self.seed,)

    @torch.jit.export
    def set_seed(self, seed: int) -> int:
        self.seed = int(seed)
        return 0

    @torch.jit.export
    def reset(self) -> None:
        """Forget all streaming state (analysis history, overlap-add tails, phase, noise counters)."""
        self.reset_streams()
        self.encode_frames = torch.zeros(0, dtype=torch.int64, device=self.encode_frames.device)
        self.decode_frames = torch.zeros(0, dtype=torch.int64, device=self.decode_frames.device)
        self.forward_frames = torch.zeros(0, dtype=torch.int64, device=self.forward_frames.device)
        self.reset_added_state()

    @torch.jit.export
    def reset_added_state(self) -> None:
        """Forget the streaming state a subclass adds (``export/prior.py``'s ``prior``/``generate``); none here."""
        pass

    @torch.jit.export
    def set_latent_offset(self, offset: Tensor) -> None:
        """Add ``offset`` ``(latent_dim,)`` to every latent frame of ``forward`` from the next call on (before
        ``transpose``); zeros (the initial value) leave it alone. A wrong shape raises a one-line ``ValueError``."""
        if offset.dim() != 1 or offset.shape[0] != self.latent_dim:
            raise ValueError(f"set_latent_offset: expected shape [{self.latent_dim}], got {list(offset.shape)}")
        self.forward_latent_offset.copy_(offset)

    # ------------------------------------------------------------------ methods
    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        """Audio [+ encoder labels] ``(batch, 1 + n_enc, B)`` -> ``(batch, latent_inlets + n_pred, B // hop)``."""
        x = self._checked_input(x, 1 + len(self.encoder_tasks), False, "encode")
        batch = x.shape[0]
        # (batch, frames, bins); encode reads magnitudes only (no move of the phase reference to the centre)
        spec = self.encode_analysis.start_referenced(bounded_audio_input(x.select(1, 0)))
        n_frames = spec.shape[1]
        counter, self.encode_frames = self._frame_counter(self.encode_frames, batch, n_frames)
        features = self._model_dtype(self.vae.transform.to_features(spec.abs())).reshape(batch * n_frames, self.n_bins)
        labels = self._read_labels(x, 1, self.encoder_tasks, True, self.encode_last_class)
        f0: Optional[Tensor] = None
        if self.pitch_from_window:  # a constant: other models never compile the call below
            f0 = self._pitch(self.encode_pitch_analysis, x)
        z = self._latent(features, labels, counter, batch, n_frames, f0)
        outputs = [bounded_latent(self.latent_axes.to_inlets(z) if self.latent_rotated else z)]
        if len(self.predicted_tasks) > 0:
            predictions = self.vae.predict(bounded_latent(z), features)
            for task in self.predicted_tasks:
                outputs.append(predictions[task].argmax(dim=-1).to(z.dtype).unsqueeze(-1))
        out = torch.cat(outputs, dim=-1).reshape(batch, n_frames, -1).to(x.dtype)
        return out.transpose(1, 2).contiguous()

    @torch.jit.export
    def decode(self, x: Tensor) -> Tensor:
        """Latent [+ decoder labels] ``(batch, latent_inlets + n_dec, B // hop)`` -> audio ``(batch, 1, B)``."""
        x = self._checked_input(x, self.latent_inlets + len(self.decoder_tasks), True, "decode")
        batch = x.shape[0]
        n_frames = x.shape[2]
        counter, self.decode_frames = self._frame_counter(self.decode_frames, batch, n_frames)
        z = bounded_latent(x[:, : self.latent_inlets]).transpose(1, 2).reshape(batch * n_frames, self.latent_inlets)
        z = self._model_dtype(z)
        if self.latent_rotated:  # a NaN inlet read as 0 is its component at the training mean
            z = bounded_latent(self.latent_axes.from_inlets(z))
        labels = self._read_labels(x, self.latent_inlets, self.decoder_tasks, False, self.decode_last_class)
        features = self.vae.decode(z, labels)
        magnitude = self.vae.transform.from_features(features).to(x.dtype).reshape(batch, n_frames, self.n_bins)
        if self.phase == "random":
            phase = self._random_phase(magnitude, counter)
        else:  # pghi, and keep_input (no input phase in decode)
            phase = self.decode_rtpghi(magnitude)
        audio = self.decode_synthesis(torch.polar(magnitude, phase))
        return soft_clip(audio).unsqueeze(1)

    def forward(self, x: Tensor) -> Tensor:
        """Audio [+ labels] ``(batch, 1 + n_tasks, B)`` -> audio ``(batch, 1, B)`` (delay ``n_fft - hop``): the
        public stages of :mod:`vschaos.export.streaming_stages`, chained."""
        x = self._checked_input(x, 1 + len(self.forward_tasks), False, "forward")
        spec = self.analyse(x)
        counter = self.forward_counter(x.shape[0], spec.shape[1])
        f0 = self.pitch_in(x)
        features = self.features_in(spec)
        decoded = self.network(features, self.forward_labels(x), counter, f0)
        magnitude = self.features_out(decoded, spec)
        return self.synthesise(magnitude, self.phase_of(magnitude, spec, counter))
