"""The plugin's side of a vschaos Neutone model: its texts, mono in and out at every DAW rate and buffer size, whole
hops.

:class:`WholeHopsAtDawRates` is what every vschaos Neutone model (and ``bench/neutone_speed.py``'s shell around a
bare module) shares with the SDK's ``WaveformToWaveformBase``: it declares every rate and buffer size native,
resamples to the model's own rate and back itself (:mod:`vschaos.dsp.resample`, exact pitch) and hands its
subclass whole hops. What runs on those hops (:meth:`WholeHopsAtDawRates._stream`) is the subclass's.
Needs the Neutone SDK (``pip install -e .[neutone]``).
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List

import torch
from neutone_sdk import WaveformToWaveformBase
from torch import Tensor

from vschaos.dsp.bounds import OUTPUT_LIMIT
from vschaos.dsp.resample import StreamingResampler, resampled_stream_delay

NAME_LIMIT = 30  # the SDK's schema: longer model names are cut


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
    """The plugin contract every vschaos Neutone model shares: the texts of :meth:`set_texts`, mono in and out,
    the native sample rates ``vs_sample_rates`` and buffer sizes ``vs_buffer_sizes`` (an empty list: any). The
    subclass sets all of them before the SDK's constructor runs (it already calls the getters)."""
    vs_sample_rates: List[int]
    vs_buffer_sizes: List[int]
    vs_name: str
    vs_authors: List[str]
    vs_short: str
    vs_long: str
    vs_technical: str
    vs_tags: List[str]
    vs_version: str
    vs_experimental: bool

    def set_texts(self, texts: NeutoneTexts) -> None:
        """Plain attributes that the metadata getters return."""
        self.vs_name, self.vs_authors = texts.name, list(texts.authors)
        self.vs_short, self.vs_long = texts.short_description, texts.long_description
        self.vs_technical, self.vs_tags = texts.technical_description, list(texts.tags)
        self.vs_version, self.vs_experimental = texts.version, bool(texts.is_experimental)

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
        return {}

    def get_citation(self) -> str:
        return ""

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
        # input not yet a whole hop at the model's own rate (resampling, the input resampler keeps it)
        self.register_buffer("vs_pending", torch.zeros(1, 0), persistent=False)
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
            # each call pulls n outputs up and whole hops down: fewer than a hop wait in the input resampler, so
            # at most what a call adds, ceil(n * model rate / DAW rate), plus a hop less one
            self.vs_down.prepare(
                (-(-n_samples * self.vs_sample_rate // sample_rate) + self.vs_hop - 1) // self.vs_hop * self.vs_hop)
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
        # every tensor operation here runs on every call, most of which only queue (no whole hop yet) at a small
        # buffer: slices are narrow (one operation, where TorchScript makes `t[:, a:]` two)
        if self.vs_resampling:
            # the input resampler keeps what it cannot resample yet and resamples nothing until a whole hop can be:
            # a call that only queues pushes there and pulls the output (the same samples as pulling every call)
            self.vs_down.push(x)
            whole = self.vs_down.ready() // self.vs_hop * self.vs_hop
            if whole > 0:
                self.vs_up.push(self._stream(self.vs_down.pull(whole), params))
            # a windowed sinc rings past a step (Gibbs): the outlets' bound holds after it too
            return self.vs_up.pull(n).clamp_(-self.vs_output_limit, self.vs_output_limit)
        pending = torch.cat([self.vs_pending, x], dim=1)
        whole = pending.shape[1] // self.vs_hop * self.vs_hop
        self.vs_pending = pending.narrow(1, whole, pending.shape[1] - whole)
        ready = self.vs_ready
        if whole > 0:
            ready = torch.cat([ready, self._stream(pending.narrow(1, 0, whole), params)], dim=1)
        self.vs_ready = ready.narrow(1, n, ready.shape[1] - n)
        return ready.narrow(1, 0, n)

    def _stream(self, x: Tensor, params: Dict[str, Tensor]) -> Tensor:
        """``(1, whole hops)`` at the model's rate -> ``(1, same)``, ``vs_delay`` samples late."""
        raise NotImplementedError

    def _reset_stream(self) -> None:
        raise NotImplementedError


def hop_queue_delay(buffer: int, hop: int) -> int:
    """Samples the output queue must start with so that calls of ``buffer`` samples, processed in whole hops,
    never run dry: the largest remainder ``k * buffer mod hop``, i.e. ``hop - gcd(buffer, hop)`` (0 when the
    buffer is a multiple of the hop, 255 for 941 samples and a hop of 256)."""
    return hop - math.gcd(buffer, hop)

