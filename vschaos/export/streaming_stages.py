"""The streaming state of :class:`~vschaos.export.module.StreamingVAE` and the stages its methods are built from.

:class:`StreamingStages` holds one set of streaming state per nn~ method (analysis history, RTPGHI phase,
overlap-add tail, frame counter), so that methods never disturb each other, and the operations they chain.
``forward`` is nothing but its public stages, in this order (``x``: forward's input as checked, float32
``(batch, 1 + n_tasks, B)``)::

    spec = analyse(x)                                    # (batch, frames, bins) complex, the input bounded
    counter = forward_counter(batch, frames)             # (batch,) int64: frames since reset, then advanced
    f0 = pitch_in(x)                                     # (batch * frames,) Hz from the pitch window, or None
    features = features_in(spec)                         # (batch * frames, bins) in the model math's dtype
    decoded = network(features, forward_labels(x), counter, f0)   # encoder, latent knobs, predictors, decoder
    magnitude = features_out(decoded, spec)              # (batch, frames, bins) float32
    audio = synthesise(magnitude, phase_of(magnitude, spec, counter))   # (batch, 1, B), soft-clipped

so that a caller can run or time each stage alone on a stream's tensors (``bench/neutone_speed.py``) and get
exactly what ``forward`` computes (tests/test_export.py holds the chain equal to ``forward``). The stages are
TorchScript methods: ``forward`` calling them dispatches no more tensor operations than one body would
(tests/test_call_cost.py counts them).
"""
import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from vschaos.dsp.bounds import bounded_audio_input, soft_clip
from vschaos.dsp.counter_noise import counter_normal, counter_uniform
from vschaos.dsp.functional import FOLLOW_MAX_GAIN, follow_floor, follow_level
from vschaos.dsp.streaming import RTPGHI, StreamingAnalysis, StreamingSynthesis, in_dtype
from vschaos.models.components.distributions import sample_latent
from vschaos.models.components.harmonic import transpose_pitch
from vschaos.models.contract import SpectralModel


def label_ids(values: Tensor, n_classes: int) -> Tensor:
    """Label inlet values (any float shape) -> int64 class ids: rounded, clamped to
    ``[0, n_classes - 1]``; negative or NaN -> -1 (unknown)."""
    return _class_ids(values, torch.tensor(float(n_classes - 1), dtype=values.dtype, device=values.device))


def _class_ids(values: Tensor, last_class: Tensor) -> Tensor:
    """:func:`label_ids` with the largest class id ``last_class`` (a float tensor broadcast against ``values``,
    e.g. one per inlet): NaN and negative values fail ``>= 0`` and read -1; the others are rounded (half to even)
    and clamped from above."""
    return torch.where(values >= 0, torch.minimum(torch.round(values), last_class), -1.0).to(torch.int64)


class StreamingStages(nn.Module):
    """The VAE with its streaming state and the stages of ``encode``, ``decode`` and ``forward``.

    Args:
        vae: the trained model (already checked by :class:`~vschaos.export.module.StreamingVAE`).
        temperature, phase, seed: the initial values of the nn~ attributes of the same names.
        latent_noise_stream, phase_noise_stream: the counter-noise streams of the latent and of the random phase.

    TorchScript reads attribute types from the scripted class's own annotations: the subclass declares them.
    """

    def __init__(self, vae: SpectralModel, temperature: float, phase: Optional[str], seed: int, latent_noise_stream: int,
                 phase_noise_stream: int) -> None:
        super().__init__()
        transform = vae.transform
        self.vae = vae
        # a source-filter decoder (SpectralVAE with a HarmonicDecoder) keeps the input's voicing in forward
        self.source_filter = bool(getattr(vae, "decoder_writes_magnitude", False))
        if self.source_filter:
            vae.fit_typical_timbre()  # the timbre its added partials take (derived from the weights)
        self.sample_rate = int(transform.sample_rate)
        self.hop = int(transform.hop)
        self.n_fft = int(transform.n_fft)
        self.n_bins = int(transform.n_bins)
        self.latent_dim = int(vae.latent_dim)
        self.temperature = float(temperature)
        # a source-filter model's partials sit at the input's f0: the input's own phase fits them (exact pitch, the
        # input's articulation), where RTPGHI rebuilds it from magnitudes (experiments/results/real_material.md)
        self.phase = str(phase) if phase is not None else ("keep_input" if self.source_filter else "pghi")
        self.seed = int(seed)
        # forward's output level: "follow" (each frame at the input frame's energy) or "model" (the decoder's own)
        self.level = "follow"
        self.max_level_gain = FOLLOW_MAX_GAIN  # attributes: scripted code cannot read globals
        # a source-filter model's forward: "follow" keeps at least the input's voicing in the partials, "model" not
        self.voicing = "follow"
        # a pitch latent (z[:, 0] = the measured f0's coordinate) can be transposed in forward
        self.pitch_dims = int(getattr(vae, "pitch_dims", 0))
        self.pitch_octaves_per_unit = float(vae.pitch_coordinate.octaves_per_unit) if self.pitch_dims > 0 else 1.0
        self.transpose = 0.0
        self.latent_noise_stream = latent_noise_stream  # attributes: scripted code cannot read globals
        self.phase_noise_stream = phase_noise_stream

        self.encoder_tasks = [str(t) for t in vae.encoder_tasks]
        self.decoder_tasks = [str(t) for t in vae.decoder_tasks]
        self.predicted_tasks = [str(t) for t in vae.predicted_tasks]
        self.task_dims = {str(k): int(v) for k, v in vae.task_dims.items()}
        forward_tasks: List[str] = []
        for task in self.encoder_tasks + self.decoder_tasks:  # config order, each task once (never a set)
            if task not in forward_tasks:
                forward_tasks.append(task)
        self.forward_tasks = forward_tasks

        # float32 like the host's buffers, whatever the model math's dtype
        window, dual = transform.window.float(), transform.dual.float()
        self.encode_analysis = StreamingAnalysis(window, self.hop)
        self.forward_analysis = StreamingAnalysis(window, self.hop)
        self.decode_synthesis = StreamingSynthesis(dual, self.hop)
        self.forward_synthesis = StreamingSynthesis(dual, self.hop)
        self.decode_rtpghi = RTPGHI(self.n_fft, self.hop, float(transform.lam))
        self.forward_rtpghi = RTPGHI(self.n_fft, self.hop, float(transform.lam))
        # a model that reads its f0 from a longer window than its frames (transform.pitch_window) has a second
        # analysis per method, over that window, ending with the same sample as its frames; others never call it
        self.pitch_from_window = bool(getattr(vae, "pitch_from_window", False))
        pitch_window = transform.pitch_window_fn.float() if self.pitch_from_window else window
        self.pitch_bins = int(pitch_window.shape[0]) // 2 + 1
        self.encode_pitch_analysis = StreamingAnalysis(pitch_window, self.hop)
        self.forward_pitch_analysis = StreamingAnalysis(pitch_window, self.hop)
        for method in ("encode", "decode", "forward"):
            self.register_buffer(f"{method}_frames", torch.zeros(0, dtype=torch.int64))
        # the largest class id of each label inlet, ``(inlets, 1)``, so that all of a method's inlets are read at once
        for method, tasks in (("encode", self.encoder_tasks), ("decode", self.decoder_tasks),
                              ("forward", self.forward_tasks)):
            last = [float(self.task_dims[task] - 1) for task in tasks]
            self.register_buffer(f"{method}_last_class", torch.tensor(last, dtype=torch.float32).reshape(-1, 1),
                                 persistent=False)
        # added to z in forward (zeros: no effect); set_latent_offset writes it
        self.register_buffer("forward_latent_offset", torch.zeros(self.latent_dim))

    # ------------------------------------------------------------------ forward's stages (public)
    def analyse(self, x: Tensor) -> Tensor:
        """Forward's input ``x`` (checked) -> its spectrum ``(batch, frames, bins)`` (complex) through forward's
        analysis state, each frame's phase referenced to its start (``StreamingAnalysis.start_referenced``:
        only ``keep_input`` reads a phase, and :meth:`phase_of` moves it to the frame centre there); the audio
        inlet is bounded first (NaN/Inf -> 0, clamped to ``+-INPUT_LIMIT``)."""
        return self.forward_analysis.start_referenced(bounded_audio_input(x.select(1, 0)))

    def forward_counter(self, batch: int, n_frames: int) -> Tensor:
        """Forward's frame counter ``(batch,)`` at the start of this call (restarted when the batch size
        changes); the stored counter moves on by ``n_frames``."""
        counter, self.forward_frames = self._frame_counter(self.forward_frames, batch, n_frames)
        return counter

    def forward_labels(self, x: Tensor) -> Dict[str, Tensor]:
        """Forward's label inlets ``x[:, 1:]`` -> ``{task: (batch * frames,) int64}`` (-1: unknown)."""
        return self._read_labels(x, 1, self.forward_tasks, True, self.forward_last_class)

    def pitch_in(self, x: Tensor) -> Optional[Tensor]:
        """Forward's input ``x`` (checked) -> the f0 of each frame ``(batch * frames,)`` in Hz, read from the
        transform's pitch window through forward's pitch analysis state, for a model that reads it there
        (``SpectralVAE.pitch_from_window``); None for the others (they measure their own frames)."""
        if self.pitch_from_window:  # a constant: other models never compile the call below
            return self._pitch(self.forward_pitch_analysis, x)
        return None

    def features_in(self, spec: Tensor) -> Tensor:
        """Spectrum ``(batch, frames, bins)`` -> normalised features ``(batch * frames, bins)`` in the model
        math's dtype (the VAE's own front end)."""
        return self._model_dtype(self.vae.transform.to_features(spec.abs())).reshape(-1, self.n_bins)

    def network(self, features: Tensor, labels: Dict[str, Tensor], counter: Tensor, f0: Optional[Tensor] = None
                ) -> Tensor:
        """Features ``(batch * frames, bins)`` -> decoded features, same shape: the encoder (posterior mean plus
        ``temperature * std`` times counter noise), the latent offset and ``transpose``, the predictors (which may
        read ``features``) and the decoder (a source-filter one, with the ``voicing`` attribute at ``follow``, kept
        at least as voiced as the input frames at their measured f0: ``SpectralVAE.voicing``). ``counter``: :meth:`forward_counter`'s result;
        ``f0``: :meth:`pitch_in`'s."""
        batch = counter.shape[0]
        n_frames = features.shape[0] // batch
        z = self._latent(features, self._select(labels, self.encoder_tasks), counter, batch, n_frames, f0)
        voicing: Optional[Tensor] = None
        energy_floor: Optional[Tensor] = None
        if self.source_filter:  # a constant: other models never compile the calls below
            if self.voicing == "follow":  # read at the measured f0, before transpose moves it
                magnitude = self.vae.transform.from_features(features)
                voicing = self.vae.voicing(magnitude, z)
                if self.level == "follow":  # partials that level follow's bounded gain brings to the input's level
                    energy_floor = follow_floor(magnitude, self.max_level_gain)
        z = z + self.forward_latent_offset
        if self.pitch_dims > 0 and self.transpose != 0.0:
            z = transpose_pitch(z, self.transpose, self.pitch_octaves_per_unit)
        logits: Optional[Dict[str, Tensor]] = None
        if len(self.predicted_tasks) > 0:  # spectrum predictors read this input's frames
            logits = self.vae.predict(z, features)
        if self.source_filter:
            return self.vae.decode(z, self._select(labels, self.decoder_tasks), logits, voicing, energy_floor)
        return self.vae.decode(z, self._select(labels, self.decoder_tasks), logits)

    def features_out(self, decoded: Tensor, spec: Tensor) -> Tensor:
        """Decoded features -> magnitudes shaped like ``spec`` ``(batch, frames, bins)``, float32; with the
        ``level`` attribute at ``follow``, each frame at the energy of the same frame of ``spec``
        (:func:`~vschaos.dsp.functional.follow_level`, at most ``FOLLOW_MAX_GAIN`` louder than the decoder's)."""
        magnitude = in_dtype(self.vae.transform.from_features(decoded), self.forward_analysis.window.dtype)
        magnitude = magnitude.reshape(spec.shape)
        if self.level == "follow":
            return follow_level(magnitude, spec, self.max_level_gain)
        return magnitude

    def phase_of(self, magnitude: Tensor, spec: Tensor, counter: Tensor) -> Tensor:
        """The phase ``(batch, frames, bins)`` the ``phase`` attribute asks for: RTPGHI on ``magnitude``
        (forward's phase state), counter-noise uniform phase, or ``spec``'s own (:meth:`analyse`'s, referenced
        to the frame centre like the synthesis's)."""
        if self.phase == "random":
            return self._random_phase(magnitude, counter)
        if self.phase == "keep_input" and self.transpose == 0.0:  # transposed partials: not the input's phase
            return torch.angle(spec * self.forward_analysis.centre_sign)
        return self.forward_rtpghi(magnitude)

    def synthesise(self, magnitude: Tensor, phase: Tensor) -> Tensor:
        """Magnitude and phase ``(batch, frames, bins)`` -> audio ``(batch, 1, frames * hop)`` through forward's
        overlap-add state, soft-clipped (within ``+-OUTPUT_LIMIT``)."""
        return soft_clip(self.forward_synthesis(torch.polar(magnitude, phase))).unsqueeze(1)

    # ------------------------------------------------------------------ helpers of every method
    def reset_streams(self) -> None:
        """Forget the audio state of every method: analysis histories, overlap-add tails, RTPGHI phase."""
        self.encode_analysis.reset()
        self.forward_analysis.reset()
        self.encode_pitch_analysis.reset()
        self.forward_pitch_analysis.reset()
        self.decode_synthesis.reset()
        self.forward_synthesis.reset()
        self.decode_rtpghi.reset()
        self.forward_rtpghi.reset()

    def _frame_counter(self, counter: Tensor, batch: int, n_frames: int) -> Tuple[Tensor, Tensor]:
        """The frame counter ``(batch,)`` at the start of this call (a batch-size change restarts it) and the
        counter advanced by ``n_frames``. The frames' indices (:meth:`_frame_index`) are only built when noise
        needs them: each tensor operation costs time on every call."""
        if counter.shape[0] != batch:
            counter = torch.zeros(batch, dtype=torch.int64, device=counter.device)
        return counter, counter + n_frames

    def _frame_index(self, counter: Tensor, n_frames: int) -> Tensor:
        """Indices ``(n_frames,)`` of this call's frames since the stream started, from :meth:`_frame_counter`'s
        first result."""
        return counter[0] + torch.arange(n_frames, dtype=torch.int64, device=counter.device)

    def _read_labels(self, x: Tensor, first_channel: int, tasks: List[str], decimate: bool, last_class: Tensor
                     ) -> Dict[str, Tensor]:
        """Label inlets ``x[:, first_channel + i]`` -> ``{task: (batch * frames,) int64}`` (:func:`label_ids`;
        ``last_class``: the method's ``<method>_last_class`` buffer). All inlets are read with one set of
        operations: each costs time on every call."""
        labels: Dict[str, Tensor] = {}
        if len(tasks) == 0:
            return labels
        values = x.narrow(1, first_channel, len(tasks))
        if decimate:  # one value per frame, the last of its hop: nn~'s decimation
            values = values.unflatten(2, [values.shape[2] // self.hop, self.hop]).select(3, self.hop - 1)
        ids = _class_ids(values, last_class)  # (batch, inlets, frames)
        for i, task in enumerate(tasks):
            labels[task] = ids.select(1, i).reshape(-1)
        return labels

    def _select(self, labels: Dict[str, Tensor], tasks: List[str]) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        for task in tasks:
            out[task] = labels[task]
        return out

    def _latent(self, features: Tensor, labels: Dict[str, Tensor], counter: Tensor, batch: int, n_frames: int,
                f0: Optional[Tensor] = None) -> Tensor:
        """Features ``(batch * frames, bins)`` -> z ``(batch * frames, latent)``: posterior mean plus
        ``temperature * std`` times counter-based noise (``f0``: the frames' f0s, :meth:`pitch_in`)."""
        mean, std = self.vae.encode(features, labels, f0)
        if self.temperature > 0.0:  # normal stream 0: its uniforms are disjoint from the phase's
            frame_index = self._frame_index(counter, n_frames)
            noise = counter_normal(self.seed, self.latent_noise_stream, batch, frame_index, self.latent_dim)
            return sample_latent(mean, std, self.temperature, noise.reshape(mean.shape))
        return mean

    def _pitch(self, analysis: StreamingAnalysis, x: Tensor) -> Tensor:
        """The f0s ``(batch * frames,)`` of the audio inlet of ``x`` read through ``analysis`` (a pitch analysis)."""
        magnitude = analysis.start_referenced(bounded_audio_input(x.select(1, 0))).abs()
        return self.vae.frame_f0(self._model_dtype(magnitude.reshape(-1, self.pitch_bins)))

    def _random_phase(self, magnitude: Tensor, counter: Tensor) -> Tensor:
        """Uniform phase in ``[-pi, pi)`` for ``(batch, frames, bins)`` (uniform stream 1)."""
        frame_index = self._frame_index(counter, magnitude.shape[1])
        uniform = counter_uniform(self.seed, self.phase_noise_stream, magnitude.shape[0], frame_index, self.n_bins)
        return (2.0 * uniform - 1.0) * math.pi

    def _checked_input(self, x: Tensor, channels: int, ratio_is_hop: bool, method: str) -> Tensor:
        """``x`` ``(batch, channels, time)`` cast to float32 (the streaming state's dtype), or a one-line
        ``ValueError`` naming the method."""
        if x.dim() != 3:
            raise ValueError(f"{method}: expected a (batch, {channels}, time) tensor, got shape {list(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{method}: empty batch (shape {list(x.shape)}), expected at least one row")
        if x.shape[1] != channels:
            raise ValueError(f"{method}: expected {channels} input channels, got {x.shape[1]} (shape {list(x.shape)})")
        if x.shape[2] == 0:
            unit = "latent frames" if ratio_is_hop else f"samples (a multiple of the hop size {self.hop})"
            raise ValueError(f"{method}: empty buffer (0 {unit})")
        if not ratio_is_hop and x.shape[2] % self.hop != 0:
            raise ValueError(f"{method}: buffer of {x.shape[2]} samples is not a multiple of the hop size "
                             f"{self.hop}")
        return in_dtype(x, self.encode_analysis.window.dtype)

    def _model_dtype(self, x: Tensor) -> Tensor:
        """``x`` in the dtype of the model math (see StreamingVAE's docstring)."""
        return in_dtype(x, self.vae.transform.norm_mean.dtype)
