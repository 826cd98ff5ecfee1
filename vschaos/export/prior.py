"""The nn~ export of a run with a latent prior: :class:`StreamingVAE` plus ``prior`` and ``generate``.

Methods added to StreamingVAE's (``hop`` = the transform's hop, ``L`` = latent size):

* ``prior``: temperature ``(batch, 1, B)`` -> latents ``(batch, k, B // hop)``: one frame per hop drawn from the
  :class:`~vschaos.models.prior.LatentPrior`, as ``decode``'s latent inlets read them (with ordered latents, the
  ``k`` kept components; otherwise ``k = L``). For a model conditioned on labels, the prior also draws each decoder task's class per frame: the outlets are
  then ``decode``'s inlets exactly (latents, then the label ids);
* ``generate``: temperature ``(batch, 1, B)`` -> audio ``(batch, 1, B)``: ``decode(prior(temperature))`` with
  its own streaming state (GRU, RTPGHI phase, overlap-add).

The temperature inlet is read once per frame (the last sample of each hop block, as nn~ decimates), NaN and
negative values read as 0 (the prior's most likely path), clamped to ``MAX_TEMPERATURE``. The noise is counter
noise (:func:`vschaos.dsp.counter_noise.counter_normal` and ``counter_uniform`` for the labels' Gumbel-max draw, streams
:data:`~vschaos.models.prior.PRIOR_NOISE_STREAM` and ``PRIOR_LABEL_STREAM``) keyed by (``seed``
attribute, frame index since reset, batch row, latent entry), and the GRU steps one frame at a time whatever the
buffer, so the same seed gives the same latents and labels, bit for bit, at any buffer size; ``reset()`` restarts
the stream. ``generate`` decodes them with at least four rows per product (float32 products of 1-3 rows round
differently), so its magnitudes are the same bits too, and its overlap-add sums each sample frame after frame
(``StreamingSynthesis(frame_order=True)``), so the audio is the same bits at any buffer size. The GRU state is kept per batch row and restarts when the batch size changes.

Neither method declares a delay: their output follows no input signal (the temperature only scales the noise),
so the host's delay checks skip them; its streaming == offline and determinism checks still apply.
"""
import copy
from typing import Dict, List, Optional

import torch
from torch import Tensor

from vschaos.dsp.bounds import bounded_latent, soft_clip
from vschaos.dsp.counter_noise import NORMAL_UNIFORM_BASE, counter_normal, counter_uniform
from vschaos.dsp.streaming import RTPGHI, StreamingSynthesis
from vschaos.export.latent_axes import LatentAxes
from vschaos.export.module import LATENT_NOISE_STREAM, PHASE_NOISE_STREAM, StreamingVAE
from vschaos.models.contract import SpectralModel
from vschaos.models.prior import PRIOR_LABEL_STREAM, PRIOR_NOISE_STREAM, LatentPrior

assert PRIOR_NOISE_STREAM not in (LATENT_NOISE_STREAM, PHASE_NOISE_STREAM)
assert PRIOR_LABEL_STREAM != PHASE_NOISE_STREAM and PRIOR_LABEL_STREAM < NORMAL_UNIFORM_BASE
PRIOR_METHODS = ("prior", "generate")
_MIN_ROWS = 4
_TEMPERATURE_INLET = "(signal) temperature (0: the most likely path, 1: the prior's own spread)"


class StreamingVAEWithPrior(StreamingVAE):
    """:class:`StreamingVAE` of ``vae`` with the methods ``prior`` and ``generate`` of ``prior`` (module
    docstring). ``prior`` is used as is (eval mode, the dtype of ``vae``: :func:`with_prior` makes such a copy);
    the other arguments are StreamingVAE's."""

    prior_latent_dim: int
    prior_noise_stream: int
    prior_label_stream: int
    prior_labels: int
    prior_uniform_channels: int
    min_rows: int
    method_names: List[str]
    prior_input_labels: List[str]
    prior_output_labels: List[str]
    generate_input_labels: List[str]
    generate_output_labels: List[str]

    def __init__(self, vae: SpectralModel, prior: LatentPrior, temperature: float = 0.0, phase: Optional[str] = None,
                 seed: int = 0, axes: Optional[LatentAxes] = None) -> None:
        super().__init__(vae, temperature=temperature, phase=phase, seed=seed, axes=axes)
        if int(prior.latent_dim) != self.latent_dim:
            raise ValueError(f"the prior models {prior.latent_dim} latent entries, the model has {self.latent_dim}")
        label_dims = [self.task_dims[task] for task in self.decoder_tasks]
        if list(prior.label_dims) != label_dims:
            raise ValueError(f"the prior models labels of {list(prior.label_dims)} classes, the model's decoder "
                             f"tasks {self.decoder_tasks} have {label_dims}; fit the prior again")
        broken = sum(int((~torch.isfinite(p)).sum()) for p in prior.parameters())
        if broken:
            raise ValueError(f"export refused: {broken} parameters of the prior are NaN/Inf; fit the prior again")
        self.latent_prior = prior
        self.prior_latent_dim = int(prior.latent_dim)
        self.prior_noise_stream = PRIOR_NOISE_STREAM
        self.prior_label_stream = PRIOR_LABEL_STREAM
        self.prior_labels = len(self.decoder_tasks)
        self.prior_uniform_channels = int(prior.uniform_channels)  # per class and component: Gumbel-max draws
        self.min_rows = _MIN_ROWS  # attributes: scripted code cannot read globals
        self.method_names = list(StreamingVAE.get_methods(self)) + list(PRIOR_METHODS)
        self.prior_input_labels = [_TEMPERATURE_INLET]
        self.prior_output_labels = list(self.decode_input_labels)  # what decode reads: latents, then labels
        self.generate_input_labels = [_TEMPERATURE_INLET]
        self.generate_output_labels = ["(signal) audio output"]
        self.register_buffer("prior_params", torch.tensor([1, 1, self.latent_inlets + len(self.decoder_tasks), self.hop],
                                                         dtype=torch.int64))
        self.register_buffer("generate_params", torch.tensor([1, 1, 1, 1], dtype=torch.int64))
        self.generate_synthesis = StreamingSynthesis(vae.transform.dual.float(), self.hop, frame_order=True)
        self.generate_rtpghi = RTPGHI(self.n_fft, self.hop, float(vae.transform.lam))
        dtype = vae.transform.norm_mean.dtype
        for method in PRIOR_METHODS:  # per method: the previous frame, the GRU state and the frame counter
            self.register_buffer(f"{method}_previous", torch.zeros(0, int(prior.input_size), dtype=dtype))
            self.register_buffer(f"{method}_state", torch.zeros(int(prior.layers), 0, int(prior.hidden), dtype=dtype))
            self.register_buffer(f"{method}_counter", torch.zeros(0, dtype=torch.int64))

    @torch.jit.export
    def get_methods(self) -> List[str]:
        return self.method_names

    @torch.jit.export
    def reset_added_state(self) -> None:
        self.generate_synthesis.reset()
        self.generate_rtpghi.reset()
        self.prior_counter = torch.zeros(0, dtype=torch.int64, device=self.prior_counter.device)
        self.generate_counter = torch.zeros(0, dtype=torch.int64, device=self.generate_counter.device)
        self.prior_previous = self.prior_previous[:0]
        self.generate_previous = self.generate_previous[:0]
        self.prior_state = self.prior_state[:, :0]
        self.generate_state = self.generate_state[:, :0]

    def _draw(self, temperature: Tensor, previous: Tensor, state: Tensor, counter: Tensor):
        """Temperature inlet ``(batch, B)`` -> raw latents ``(batch, B // hop, L)``, decoder label ids ``(batch,
        B // hop, n_dec)`` and the new state."""
        batch = temperature.shape[0]
        values = temperature[:, self.hop - 1::self.hop]
        n_frames = values.shape[1]
        values = torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0).clamp(0.0, self.max_temperature)
        counter, advanced = self._frame_counter(counter, batch, n_frames)
        if previous.shape[0] != batch or state.shape[1] != batch or int(counter[0]) == 0:
            previous, state = self.latent_prior.initial_state(batch)
        frames = self._frame_index(counter, n_frames)
        noise = counter_normal(self.seed, self.prior_noise_stream, batch, frames, self.prior_latent_dim)
        uniform = noise[:, :, :0]  # no labels and one Gaussian: no draw (each operation costs on every call)
        if self.prior_uniform_channels > 0:
            uniform = counter_uniform(self.seed, self.prior_label_stream, batch, frames, self.prior_uniform_channels)
        z, labels, previous, state = self.latent_prior.sample_frames(
            previous, state, values.to(previous.dtype), noise.to(previous.dtype), uniform.to(previous.dtype))
        return bounded_latent(z), labels, previous, state, advanced

    def _at_least_min_rows(self, rows: Tensor) -> Tensor:
        """``rows`` padded with zero rows to ``min_rows``: float32 products of 1-3 rows round differently from
        longer ones, so a call of one frame would not give the bits of the same frame in a longer call."""
        if rows.shape[0] >= self.min_rows:
            return rows
        return torch.cat([rows, rows.new_zeros(self.min_rows - rows.shape[0], rows.shape[1])])

    @torch.jit.export
    def prior(self, x: Tensor) -> Tensor:
        """Temperature ``(batch, 1, B)`` -> latents ``(batch, latent, B // hop)``."""
        x = self._checked_input(x, 1, False, "prior")
        z, labels, self.prior_previous, self.prior_state, self.prior_counter = self._draw(
            x[:, 0], self.prior_previous, self.prior_state, self.prior_counter)
        if self.latent_rotated:
            batch, n_frames = z.shape[0], z.shape[1]
            rows = self._at_least_min_rows(z.reshape(batch * n_frames, self.latent_dim))
            rows = self.latent_axes.to_inlets(rows)[:batch * n_frames]
            z = bounded_latent(rows).reshape(batch, n_frames, self.latent_inlets)
        out = torch.cat([z.to(x.dtype), labels.to(x.dtype)], dim=-1) if self.prior_labels > 0 else z.to(x.dtype)
        return out.transpose(1, 2).contiguous()

    @torch.jit.export
    def generate(self, x: Tensor) -> Tensor:
        """Temperature ``(batch, 1, B)`` -> audio ``(batch, 1, B)``: decode(prior(temperature))."""
        x = self._checked_input(x, 1, False, "generate")
        counter = self.generate_counter
        z, drawn, self.generate_previous, self.generate_state, self.generate_counter = self._draw(
            x[:, 0], self.generate_previous, self.generate_state, counter)
        batch, n_frames = z.shape[0], z.shape[1]
        rows = z.reshape(batch * n_frames, self.latent_dim)
        ids = drawn.reshape(batch * n_frames, self.prior_labels)
        rows, ids = self._at_least_min_rows(rows), self._at_least_min_rows(ids)
        labels: Dict[str, Tensor] = {}
        for i, task in enumerate(self.decoder_tasks):  # the prior's own classes
            labels[task] = ids[:, i]
        features = self.vae.decode(self._model_dtype(rows), labels)[:batch * n_frames]
        magnitude = self.vae.transform.from_features(features).to(x.dtype).reshape(batch, n_frames, self.n_bins)
        if self.phase == "random":
            phase = self._random_phase(magnitude, self.generate_counter - n_frames)
        else:
            phase = self.generate_rtpghi(magnitude)
        return soft_clip(self.generate_synthesis(torch.polar(magnitude, phase))).unsqueeze(1)


def with_prior(vae: SpectralModel, prior: LatentPrior, dtype, temperature: float = 0.0, phase: Optional[str] = None,
               seed: int = 0, axes: Optional[LatentAxes] = None) -> StreamingVAEWithPrior:
    """:class:`StreamingVAEWithPrior` of ``vae`` (used as is: the caller's frozen copy in ``dtype``) and a frozen
    copy of ``prior`` in ``dtype`` (not scripted)."""
    prior = copy.deepcopy(prior).eval().to(dtype)
    for parameter in prior.parameters():
        parameter.requires_grad_(False)
    return StreamingVAEWithPrior(vae, prior, temperature=temperature, phase=phase, seed=seed, axes=axes).eval()


# TorchScript reads attribute types from the scripted class's own annotations only: StreamingVAE's too
StreamingVAEWithPrior.__annotations__ = {**StreamingVAE.__annotations__, **StreamingVAEWithPrior.__annotations__}
