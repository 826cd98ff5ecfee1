"""The spectral VAE: one ``nn.Module`` used by training, generation and the TorchScript export."""
from typing import Any, Dict, Final, List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from vschaos.dsp.bounds import bounded_decoded_features, bounded_features, bounded_latent, magnitude_ceiling
from vschaos.dsp.f0 import HarmonicF0, window_f0
from vschaos.models.components.decoders import make_decoder
from vschaos.models.components.distributions import normal_parameters, reparameterise
from vschaos.models.components.embeddings import make_embedding
from vschaos.models.components.encoders import SpectralEncoder
from vschaos.models.components.harmonic import HarmonicDecoder, PitchCoordinate
from vschaos.models.components.predictors import MLPPredictor
from vschaos.models.components.spectrum_predictor import SpectrumNotePredictor

VALID_TARGETS = ("encoder", "decoder")
# model.prediction.<task>.type: what a predictor reads
LATENT_PREDICTOR = "MLPEncoder"  # the latent z (vschaos2's)
SPECTRUM_PREDICTOR = "SpectrumNotePredictor"  # the input frame's magnitudes (pitch class or octave)
PREDICTOR_TYPES = (LATENT_PREDICTOR, SPECTRUM_PREDICTOR)
HARMONIC_DECODER = "HarmonicDecoder"  # model.decoder.type of the source-filter decoder (needs model.pitch_latent)
PITCH_LATENT_KEYS = ("centre_hz", "octaves_per_unit", "fmin", "fmax")
#: frames of the pitch window :meth:`SpectralVAE.audio_f0` reads at once (its memory, whatever the sound's length)
AUDIO_F0_BLOCK_FRAMES = 1024


class ConfigurationError(ValueError):
    """A model configuration that cannot work (e.g. predicting a task that conditions the encoder)."""


def _check_conditioning(conditioning: Mapping[str, Any], prediction: Mapping[str, Any]) -> None:
    for task, spec in conditioning.items():
        if "dim" not in spec:
            raise ConfigurationError(f"model.conditioning.{task} needs a 'dim' (number of classes)")
        targets = spec.get("target", ["decoder"])
        targets = [targets] if isinstance(targets, str) else list(targets)
        unknown = [t for t in targets if t not in VALID_TARGETS]
        if unknown or not targets:
            raise ConfigurationError(f"model.conditioning.{task}.target must be a list of {VALID_TARGETS}, got {targets}")
        if "encoder" in targets and task in prediction:
            raise ConfigurationError(
                f"task {task!r} conditions the encoder and is also predicted (model.prediction.{task}): the "
                f"predictor would learn from a latent that already receives the label. Remove "
                f"model.prediction.{task} or condition only the decoder on {task!r}.")
    for task, spec in prediction.items():
        if "dim" not in spec:
            raise ConfigurationError(f"model.prediction.{task} needs a 'dim' (number of classes)")
        kind = spec.get("type", LATENT_PREDICTOR)
        if kind not in PREDICTOR_TYPES:
            raise ConfigurationError(f"model.prediction.{task}.type {kind!r} is not supported: use one of "
                                     f"{', '.join(PREDICTOR_TYPES)}")


class SpectralVAE(nn.Module):
    """Frame-wise VAE on normalised spectral frames (features of ``transform.to_features``).

    Args (defaults in brackets):
        transform: the ``SpectralTransform`` whose normalisation buffers live in this module (and its checkpoint).
        latent_dim: size of the diagonal-Normal latent [16].
        encoder: kwargs of :class:`SpectralEncoder` (channels, kernel_size, stride, hidden_dims, nlayers).
        decoder: ``type`` (``SpectralDecoder`` [default]: MLP, or ``UpsamplingConvDecoder``: convolutions along
            frequency) and its kwargs (channels, kernel_size, stride, hidden_dims, nlayers).
        conditioning: ``{task: {dim, target: [encoder|decoder], embedding: OneHot|Embedding, embedding_dim}}``,
            used in the order written (config order), never sorted.
        prediction: ``{task: {dim, type, args}}``. ``type: MLPEncoder`` (default) reads the latent (args: nlayers,
            hidden_dims, target_dist: Categorical); ``type: SpectrumNotePredictor`` reads the input frame's
            magnitudes (args: ``fold: pitch_class`` or ``octave``, see ``components/spectrum_predictor.py``).
        min_std: floor added to the posterior std [1e-4].
        pitch_latent: ``None`` [default], or ``{centre_hz: 220, octaves_per_unit: 1, fmin: 30, fmax: 2000}``: the
            latent's first dimension is then the frame's f0 as a :class:`PitchCoordinate` (``log2(f0 / centre_hz)
            / octaves_per_unit``), measured by :class:`vschaos.dsp.f0.HarmonicF0` (``fmin``..``fmax`` Hz) from the
            input instead of learnt: deterministic (std ``min_std``), outside the KL, and what
            ``HarmonicDecoder`` (``decoder.type``) reads to place its partials. ``latent_dim`` counts it.
            With a ``transform.pitch_window``, the tracker reads the transform's longer ``pitch_magnitude``
            frames instead of the model's own, so callers pass their f0 to :meth:`encode` (:meth:`frame_f0`;
            training batches carry it from the cache).

    Bounds (``vschaos.dsp.bounds``, the same in training, generation and export): :meth:`encode` reads
    features within ``+-FEATURE_LIMIT`` (NaN as 0); :meth:`decode` reads latents within ``+-LATENT_LIMIT``
    and returns features whose magnitude lies in ``[0, magnitude_ceiling]``, so that
    ``transform.from_features`` stays finite for any latent and any weights.

    Labels are ``Dict[str, LongTensor (batch,)]`` with -1 = missing. A missing label (or an absent task) embeds
    to zeros, except for decoder tasks that have a predictor: they are replaced by the predictor's argmax (the
    same path at training, generation and export). A latent predictor needs only ``z``, so :meth:`decode`
    completes its task; a spectrum predictor needs the input frame, so only :meth:`forward` (and callers that
    pass :meth:`predict`'s logits from the features) complete its task, and decoding a bare latent leaves it
    missing.
    """

    encoder_tasks: List[str]
    decoder_tasks: List[str]
    predicted_tasks: List[str]
    spectrum_tasks: List[str]
    task_dims: Dict[str, int]
    pitch_dims: int
    pitch_from_window: bool
    decoder_writes_magnitude: Final[bool]  # a constant: scripting compiles the harmonic decoder's calls only for it
    ceiling_contrast: float

    def __init__(self, transform: nn.Module, latent_dim: int = 16, encoder: Optional[Mapping[str, Any]] = None,
                 decoder: Optional[Mapping[str, Any]] = None, conditioning: Optional[Mapping[str, Any]] = None,
                 prediction: Optional[Mapping[str, Any]] = None, min_std: float = 1e-4,
                 pitch_latent: Optional[Mapping[str, Any]] = None):
        super().__init__()
        conditioning = dict(conditioning or {})
        prediction = dict(prediction or {})
        _check_conditioning(conditioning, prediction)
        self.transform = transform
        self.n_bins = int(transform.n_bins)
        self.latent_dim = int(latent_dim)
        self.min_std = float(min_std)
        # contrast of the largest decoded magnitude (the window never changes, so neither does this constant)
        self.ceiling_contrast = float(transform.contrast(magnitude_ceiling(transform.window).double()))

        self.task_dims = {}
        self.encoder_tasks, self.decoder_tasks = [], []
        self.encoder_embeddings = nn.ModuleDict()
        self.decoder_embeddings = nn.ModuleDict()
        for task, spec in conditioning.items():  # dict order = YAML order
            targets = spec.get("target", ["decoder"])
            targets = [targets] if isinstance(targets, str) else list(targets)
            self.task_dims[task] = int(spec["dim"])
            kind, size = spec.get("embedding", "OneHot"), spec.get("embedding_dim")
            if "encoder" in targets:
                self.encoder_tasks.append(task)
                self.encoder_embeddings[task] = make_embedding(kind, int(spec["dim"]), size)
            if "decoder" in targets:
                self.decoder_tasks.append(task)
                self.decoder_embeddings[task] = make_embedding(kind, int(spec["dim"]), size)
        self.predicted_tasks, self.spectrum_tasks = [], []
        self.predictors = nn.ModuleDict()  # on the latent (the name predates spectrum predictors: checkpoints)
        self.spectrum_predictors = nn.ModuleDict()
        for task, spec in prediction.items():
            if task in self.task_dims and self.task_dims[task] != int(spec["dim"]):
                raise ConfigurationError(f"task {task!r}: model.prediction dim {spec['dim']} differs from "
                                         f"model.conditioning dim {self.task_dims[task]}")
            self.task_dims[task] = int(spec["dim"])
            self.predicted_tasks.append(task)
            args = dict(spec.get("args") or {})
            if spec.get("type", LATENT_PREDICTOR) == SPECTRUM_PREDICTOR:
                self.spectrum_tasks.append(task)
                try:
                    self.spectrum_predictors[task] = SpectrumNotePredictor(
                        int(transform.n_fft), int(transform.sample_rate), int(spec["dim"]), **args)
                except (TypeError, ValueError) as error:
                    raise ConfigurationError(f"model.prediction.{task}: {error}") from None
            else:
                self.predictors[task] = MLPPredictor(self.latent_dim, int(spec["dim"]), **args)

        self.pitch_trackers = nn.ModuleList()  # one HarmonicF0 with a pitch latent, else none (scriptable either way)
        self.pitch_coordinate = self._build_pitch_latent(pitch_latent)
        self.pitch_dims = len(self.pitch_trackers)
        self.pitch_from_window = self.pitch_dims > 0 and int(getattr(transform, "pitch_window", 0)) > 0
        encoder_cond = sum(m.out_dim for m in self.encoder_embeddings.values())
        decoder_cond = sum(m.out_dim for m in self.decoder_embeddings.values())
        self.encoder = SpectralEncoder(self.n_bins, 2 * (self.latent_dim - self.pitch_dims), cond_dim=encoder_cond,
                                       **dict(encoder or {}))
        decoder = dict(decoder or {})
        self.decoder_writes_magnitude = decoder.get("type") == HARMONIC_DECODER
        if self.decoder_writes_magnitude:
            if self.pitch_dims == 0:
                raise ConfigurationError("model.decoder.type HarmonicDecoder places its partials at the latent's f0: "
                                         "it needs model.pitch_latent (e.g. model=harmonic)")
            decoder.pop("type")
            try:
                self.decoder = HarmonicDecoder(self.latent_dim + decoder_cond, self.n_bins, int(transform.sample_rate),
                                               int(transform.n_fft), float(transform.tfr), self.pitch_coordinate,
                                               float(transform.full_scale), **decoder)
            except (TypeError, ValueError) as error:
                raise ConfigurationError(f"model.decoder: {error}") from None
        else:
            self.decoder = make_decoder(self.latent_dim + decoder_cond, self.n_bins, **decoder)

    def _build_pitch_latent(self, pitch_latent: Optional[Mapping[str, Any]]) -> PitchCoordinate:
        """The pitch coordinate (defaults when there is no pitch latent) and, with one, its f0 tracker."""
        nyquist = float(self.transform.sample_rate) / 2.0
        if pitch_latent is None:
            return PitchCoordinate(fmax=nyquist)
        if not isinstance(pitch_latent, Mapping):
            raise ConfigurationError(f"model.pitch_latent must be a mapping of {list(PITCH_LATENT_KEYS)} (or null), "
                                     f"got {pitch_latent!r}")
        spec = dict(pitch_latent)
        unknown = sorted(set(spec) - set(PITCH_LATENT_KEYS))
        if unknown:
            raise ConfigurationError(f"model.pitch_latent: unknown key(s) {unknown}; known: {list(PITCH_LATENT_KEYS)}")
        if self.latent_dim < 2:
            raise ConfigurationError(f"model.pitch_latent needs latent_dim >= 2 (the pitch and at least one "
                                     f"learnt dimension), got {self.latent_dim}")
        try:
            coordinate = PitchCoordinate(float(spec.get("centre_hz", 220.0)), float(spec.get("octaves_per_unit", 1.0)),
                                         fmin=20.0, fmax=nyquist)
            # the frames the tracker reads: the transform's longer pitch window where it has one
            window = int(getattr(self.transform, "pitch_window", 0)) or int(self.transform.n_fft)
            self.pitch_trackers.append(HarmonicF0(window, int(self.transform.sample_rate),
                                                  fmin=float(spec.get("fmin", 30.0)),
                                                  fmax=float(spec.get("fmax", 2000.0))))
        except (TypeError, ValueError) as error:
            raise ConfigurationError(f"model.pitch_latent: {error}") from None
        return coordinate

    def _task_labels(self, labels: Dict[str, Tensor], task: str, reference: Tensor) -> Tensor:
        """``labels[task]``, or all -1 (missing) when the task is absent: (batch,) long."""
        if task in labels:
            return labels[task]
        return torch.full((reference.shape[0],), -1, dtype=torch.long, device=reference.device)

    def _encoder_condition(self, labels: Dict[str, Tensor], reference: Tensor) -> Tensor:
        """Encoder embeddings concatenated in config order: (batch, encoder_cond_dim)."""
        parts: List[Tensor] = [reference.narrow(1, 0, 0)]  # one operation (TorchScript makes `[:, :0]` two)
        for task, embedding in self.encoder_embeddings.items():  # ModuleDict keeps config order
            parts.append(embedding(self._task_labels(labels, task, reference)).to(reference.dtype))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def _decoder_input(self, z: Tensor, labels: Dict[str, Tensor]) -> Tensor:
        """The latent and the decoder embeddings in config order: (batch, latent + decoder_cond_dim)."""
        parts: List[Tensor] = [z]
        for task, embedding in self.decoder_embeddings.items():
            parts.append(embedding(self._task_labels(labels, task, z)).to(z.dtype))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else z

    def frame_f0(self, pitch_magnitude: Tensor) -> Tensor:
        """The f0 in Hz ``(batch,)`` a pitch latent reads from frames ``(batch, transform.pitch_bins)`` of
        ``transform.pitch_magnitude`` (a model without a pitch latent: an empty ``(0,)``)."""
        for tracker in self.pitch_trackers:
            with torch.no_grad():
                return tracker(pitch_magnitude)
        return pitch_magnitude.new_zeros(0)

    @torch.jit.unused
    def audio_f0(self, audio: Tensor, block_frames: int = AUDIO_F0_BLOCK_FRAMES) -> Optional[Tensor]:
        """The f0s ``(batch, frames)`` to pass to :meth:`encode` for the frames of ``audio`` ``(batch, time)``
        when the model reads them from a longer window (``pitch_from_window``), else None (it measures its own).
        Read ``block_frames`` frames at a time (memory bounded whatever the length; the same values)."""
        if not self.pitch_from_window:
            return None
        # in blocks of frames: the long window's frames of a whole file at once would take several times the
        # memory of the model's own (which generate.py's memory check counts)
        return torch.stack([window_f0(self.transform, self.pitch_trackers[0], row, block_frames, 1)
                            for row in audio.reshape(-1, audio.shape[-1])]).reshape(
            audio.shape[:-1] + (self.transform.num_frames(audio.shape[-1]),))

    @torch.jit.unused
    def window_pitch_tracker(self) -> Optional[nn.Module]:
        """The tracker whose f0s a data cache must hold for this model (its pitch latent reads a longer window
        than its frames: ``pitch_from_window``), else None."""
        return self.pitch_trackers[0] if self.pitch_from_window else None

    def encode(self, features: Tensor, labels: Dict[str, Tensor], f0_hz: Optional[Tensor] = None
               ) -> Tuple[Tensor, Tensor]:
        """Posterior parameters: features (batch, bins) -> mean, std (batch, latent). ``f0_hz`` ``(batch,)``: the
        frames' f0 (:meth:`frame_f0`), which a pitch latent then reads instead of measuring the frames; required
        when the model reads its f0 from a longer window (``pitch_from_window``), else optional."""
        features = bounded_features(features)
        condition = self._encoder_condition(labels, features)
        mean, std = normal_parameters(self.encoder(features, condition), self.min_std)
        for tracker in self.pitch_trackers:  # the pitch latent: measured, not learnt (no gradient to carry)
            with torch.no_grad():
                if f0_hz is None:
                    if self.pitch_from_window:
                        raise ValueError("encode: this model reads its f0 from the transform's pitch window: pass "
                                         "f0_hz (frame_f0 of transform.pitch_magnitude)")
                    f0_hz = tracker(self.transform.from_features(features))
                pitch = self.pitch_coordinate.coordinate(f0_hz).unsqueeze(-1)
                if pitch.dtype != mean.dtype:  # a conversion to the same dtype would still be an operation
                    pitch = pitch.to(mean.dtype)
            mean = torch.cat([pitch, mean], dim=-1)
            # the pitch's std (min_std) written in front, as a cat of a filled column would: one operation
            std = torch.nn.functional.pad(std, (1, 0), value=self.min_std)
        return mean, std

    def predict(self, z: Tensor, features: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Logits (batch, n_classes) per predicted task: latent predictors read ``z`` (batch, latent), spectrum
        predictors the frames ``features`` (batch, bins) were computed from (their tasks are absent from the
        result when ``features`` is None)."""
        out: Dict[str, Tensor] = {}
        z = bounded_latent(z)  # what decode reads
        for task, predictor in self.predictors.items():
            out[task] = predictor(z)
        if features is not None and len(self.spectrum_tasks) > 0:
            magnitude = self.transform.from_features(bounded_features(features))
            for task, predictor in self.spectrum_predictors.items():
                out[task] = predictor(magnitude)
        return out

    def complete_labels(self, z: Tensor, labels: Dict[str, Tensor],
                        logits: Optional[Dict[str, Tensor]] = None) -> Dict[str, Tensor]:
        """Copy of ``labels`` where -1 (or an absent task) is replaced by the predictor's argmax on ``z``.

        ``logits``: the predictors' output on ``z`` when the caller already has it (``predict(z)`` or
        ``predict(z.detach())``, same argmax), so the predictors do not run twice; ``None`` runs them here.
        """
        out: Dict[str, Tensor] = {}
        for task, value in labels.items():
            out[task] = value
        if logits is None:
            logits = self.predict(z)
        for task, task_logits in logits.items():
            guess = task_logits.argmax(dim=-1)
            if task in out:
                out[task] = torch.where(out[task] >= 0, out[task], guess)
            else:
                out[task] = guess
        return out

    def decode(self, z: Tensor, labels: Dict[str, Tensor], logits: Optional[Dict[str, Tensor]] = None,
               voicing: Optional[Tensor] = None, energy_floor: Optional[Tensor] = None) -> Tensor:
        """Latent (batch, latent) [+ labels] -> normalised features (batch, bins); missing labels completed
        (from ``logits`` when given, see :meth:`complete_labels`). Latents are clamped to ``+-LATENT_LIMIT`` and
        the output to the features of magnitudes ``[0, magnitude_ceiling]`` (see :meth:`bound_decoded`).
        ``voicing`` ``(batch,)`` (:meth:`voicing` of the frames ``z`` was encoded from): the share of each frame's
        energy a source-filter decoder keeps at least in its partials, and ``energy_floor`` ``(batch, 1)`` the
        energy whose share ``voicing`` those partials hold at least (``HarmonicDecoder.voiced``); other decoders
        ignore both."""
        z = bounded_latent(z)
        if len(self.predicted_tasks) > 0:
            labels = self.complete_labels(z, labels, logits)
        h = self._decoder_input(z, labels)
        if self.decoder_writes_magnitude:  # HarmonicDecoder: magnitudes -> the features every caller reads
            decoded = self.decoder(h) if voicing is None else self.decoder.voiced(h, voicing, energy_floor)
            return self.bound_decoded(self.transform.to_features(decoded))
        return self.bound_decoded(self.decoder(h))

    @torch.jit.unused
    def fit_typical_timbre(self) -> None:
        """A source-filter decoder's typical timbre per semitone (``HarmonicDecoder.fit_typical``: its partials at
        the mean latent, the pitch coordinate at each f0, labels unknown), which :meth:`decode` with ``voicing``
        adds partials in; nothing for other decoders. Derived from the weights: call it after loading them."""
        if self.decoder_writes_magnitude:
            f0_hz = self.decoder.typical_f0_hz()
            z = torch.zeros(f0_hz.shape[0], self.latent_dim, dtype=self.transform.norm_mean.dtype)
            z[:, 0] = self.pitch_coordinate.coordinate(f0_hz)
            with torch.no_grad():
                self.decoder.fit_typical(self._decoder_input(z, {}))

    def voicing(self, magnitude: Tensor, z: Tensor) -> Optional[Tensor]:
        """How harmonic the frames ``magnitude`` ``(batch, bins)`` are at the f0 of their latents ``z`` (the pitch
        coordinate as measured, before any transpose), ``(batch,)`` in ``[0, 1]`` (``HarmonicDecoder.voicing``);
        None for a model without a source-filter decoder."""
        if self.decoder_writes_magnitude:
            return self.decoder.voicing(magnitude, self.pitch_coordinate.hz(z.select(1, 0)))
        return None

    def bound_decoded(self, features: Tensor) -> Tensor:
        """Decoded features ``(batch, bins)`` clamped per bin between the features of a zero magnitude and of
        ``magnitude_ceiling(transform.window)``, before the inverse contrast: NaN -> silence, no overflow.
        (``to_features`` is increasing in the magnitude, whatever the contrast.)"""
        mean, std = self.transform.norm_mean, self.transform.norm_std
        floor = torch.neg(mean) / std  # to_features(0): the contrast of a zero magnitude is 0
        ceiling = (self.ceiling_contrast - mean) / std
        if floor.dtype != features.dtype:  # a conversion to the same dtype would still be an operation per call
            floor, ceiling = floor.to(features.dtype), ceiling.to(features.dtype)
        return bounded_decoded_features(features, floor, ceiling)

    def forward(self, features: Tensor, labels: Dict[str, Tensor], sample: bool = True,
                logits: Optional[Dict[str, Tensor]] = None, f0_hz: Optional[Tensor] = None
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encode, sample (or take the mean), decode: (batch, bins) -> decoded (batch, bins), z, mean, std.

        ``logits`` is passed to :meth:`decode` (predictors' output on the sampled ``z`` and on ``features``,
        when already known); None runs the predictors here, spectrum predictors included. ``f0_hz``: as for
        :meth:`encode`."""
        mean, std = self.encode(features, labels, f0_hz)
        z = reparameterise(mean, std) if sample else mean
        if logits is None and len(self.spectrum_tasks) > 0:
            logits = self.predict(z, features)
        return self.decode(z, labels, logits), z, mean, std

    @torch.jit.unused
    def parameter_counts(self) -> Dict[str, int]:
        """Trainable parameters per block (encoder, decoder, embeddings, predictors), for ``+check=1``."""
        blocks = {"encoder": self.encoder, "decoder": self.decoder, "encoder_embeddings": self.encoder_embeddings,
                  "decoder_embeddings": self.decoder_embeddings, "predictors": self.predictors,
                  "spectrum_predictors": self.spectrum_predictors}
        counts = {name: sum(p.numel() for p in block.parameters()) for name, block in blocks.items()}
        counts["total"] = sum(counts.values())
        return counts
