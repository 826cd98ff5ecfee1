"""The per-call cost of the streamed ``forward`` that nn~ and the Neutone plugin run on every buffer.

A streamed call handles a few frames, so what it costs is mostly the number of tensor operations it
dispatches (each costs about the same, whatever its size), not their arithmetic. Timing belongs in
``bench/neutone_speed.py`` (it also counts what the exported file's plugin call dispatches); the operation count
is deterministic, so a test can hold it. The lean paths that keep the count down (one frame without a split,
state kept as views of a call's own tensors) must give the same bits as the general ones.
"""
import importlib.util
import math
import warnings
from typing import List, Tuple

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vschaos.cli.train import compose_config
from vschaos.dsp import functional as dsp
from vschaos.dsp.streaming import RTPGHI, StreamingAnalysis, StreamingSynthesis
from vschaos.export.export import script_model, streaming_module
from vschaos.training.run import build_model

# the demo model at 4 frames, with a little room; each extra frame adds RTPGHI's frame loop only
FORWARD_BUDGET = 144
PER_EXTRA_FRAME = 3
# the source-filter preset (f0 tracker, harmonic decoder), scripted as exported, at one frame: a small DAW buffer's
# call (the f0 tracker's, vschaos/dsp/f0.py, and the voicing follow's, HarmonicDecoder.voicing and .voiced; its
# default phase is the input's, so no RTPGHI)
HARMONIC_ONE_FRAME_BUDGET = 324


class CountOperations(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def operations_per_call(module, frames: int) -> int:
    x = 0.1 * torch.randn(1, 1, frames * module.hop, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        module.forward(x)  # the first call sizes the streaming state
        counter = CountOperations()
        with counter:
            module.forward(x)
    return counter.count


@pytest.fixture(scope="module")
def demo_stream():
    torch.manual_seed(0)
    return streaming_module(build_model(compose_config("demo", [])).eval())


def test_a_streamed_forward_stays_within_its_operation_budget(demo_stream):
    count = operations_per_call(demo_stream, 4)
    assert count <= FORWARD_BUDGET, (
        f"StreamingVAE.forward dispatches {count} tensor operations per 4-frame call (budget {FORWARD_BUDGET}): "
        f"each costs microseconds in the host's audio thread; measure with bench/neutone_speed.py")


def test_each_extra_frame_costs_only_the_phase_loop(demo_stream):
    """Everything but RTPGHI's frame loop (gather, add, wrap) is one operation for all frames of a call."""
    four, eight = operations_per_call(demo_stream, 4), operations_per_call(demo_stream, 8)
    assert eight - four <= 4 * PER_EXTRA_FRAME, f"4 -> 8 frames: {four} -> {eight} operations"


def test_a_one_frame_call_of_the_source_filter_export_stays_within_its_budget():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = script_model(build_model(compose_config("dgt_harmonic", [])).eval())
    count = operations_per_call(scripted, 1)
    assert count <= HARMONIC_ONE_FRAME_BUDGET, (
        f"dgt_harmonic's scripted forward dispatches {count} tensor operations per one-frame call "
        f"(budget {HARMONIC_ONE_FRAME_BUDGET}); measure with bench/neutone_speed.py")


def _magnitudes(frames: int, bins: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, frames, bins, generator=generator) ** 4  # peaky, so that anchors vary


@pytest.mark.parametrize("scripted", [False, True])
def test_rtpghi_gives_the_same_bits_one_frame_per_call_as_in_one_call(scripted):
    """One frame per call (no split into frames, no join) is the same arithmetic as the frame loop."""
    n_fft, hop = 512, 128
    make = lambda: RTPGHI(n_fft, hop, dsp.gaussian_lambda(n_fft))
    whole, single = make(), make()
    if scripted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            whole, single = torch.jit.script(whole), torch.jit.script(single)
    magnitude = _magnitudes(7, n_fft // 2 + 1)
    expected = torch.cat([whole(magnitude[:, :3]), whole(magnitude[:, 3:])], dim=1)
    got = torch.cat([single(magnitude[:, i:i + 1]) for i in range(7)], dim=1)
    assert torch.equal(got.view(torch.int32), expected.view(torch.int32))
    assert got.shape == (2, 7, n_fft // 2 + 1) and float(got.min()) >= -math.pi and float(got.max()) < math.pi


def test_state_kept_as_views_is_not_changed_by_a_caller_writing_into_an_output():
    """Analysis, synthesis and RTPGHI keep views of a call's own new tensors as state: neither the input a caller
    passed nor an output it then writes into may reach the next call."""
    n_fft, hop = 512, 128
    window = dsp.gaussian_window(n_fft)
    dual = dsp.dual_window(window, hop)
    audio = torch.randn(2, 6 * hop, generator=torch.Generator().manual_seed(2))

    def run(vandalise: bool) -> torch.Tensor:
        analysis, synthesis = StreamingAnalysis(window, hop), StreamingSynthesis(dual, hop)
        phase = RTPGHI(n_fft, hop, dsp.gaussian_lambda(n_fft))
        outputs = []
        for start in range(0, audio.shape[1], 2 * hop):
            block = audio[:, start:start + 2 * hop].clone()
            spec = analysis(block)
            magnitude = spec.abs()
            angle = phase(magnitude)
            out = synthesis(torch.polar(magnitude, angle))
            outputs.append(out.clone())
            if vandalise:
                for tensor in (block, spec, magnitude, angle, out):
                    tensor.fill_(float("nan"))
        return torch.cat(outputs, dim=-1)

    assert torch.equal(run(True), run(False))


needs_sdk = pytest.mark.skipif(importlib.util.find_spec("neutone_sdk") is None,
                               reason="the Neutone SDK is not installed: pip install -e .[neutone]")
# the wrapper's call that only queues (no whole hop yet) at the model's own rate: the queue and the SDK's own work
# (its debug checks included: eager, unscripted); averaging the knobs would add 4
QUEUE_ONLY_BUDGET = 10


@needs_sdk
def test_a_plugin_call_that_only_queues_runs_no_model_and_no_knob_operation():
    """At a buffer shorter than a hop most plugin calls complete no hop: they run nothing of the model and leave
    the knobs alone (a call averages its knobs only when it runs hops, over its own buffer: knob samples of a
    call that only queues never reach the sound)."""
    from vschaos.export.directions import LatentDirections
    from vschaos.export.neutone import NeutoneSpectralVAE, NeutoneTexts

    torch.manual_seed(0)
    vae = build_model(compose_config("demo", [])).eval()
    texts = NeutoneTexts("demo", "test", "test", "test", ["test"])
    directions = LatentDirections.axes(int(vae.latent_dim), "test")
    buffer = 64  # a quarter hop at the model's rate: every fourth call completes one
    audio = 0.1 * torch.randn(1, 32 * buffer, generator=torch.Generator().manual_seed(3))

    def play(knob_on_queue_only_calls: float) -> Tuple[torch.Tensor, List[int]]:
        wrapper = NeutoneSpectralVAE(streaming_module(vae), texts, directions)
        wrapper.set_model_sample_rate_and_buffer_size(int(vae.transform.sample_rate), buffer)
        outputs, counts = [], []
        with torch.no_grad():
            for i in range(audio.shape[1] // buffer):
                knobs = torch.full((wrapper._get_max_n_params(), buffer), 0.5)
                knobs[0] = 0.0
                runs_a_hop = i % 4 == 3
                if not runs_a_hop:
                    knobs[1] = knob_on_queue_only_calls  # a direction knob, moved where no hop runs
                counter = CountOperations()
                with counter:
                    outputs.append(wrapper(audio[:, i * buffer:(i + 1) * buffer], knobs))
                counts.append(counter.count)
        return torch.cat(outputs, dim=1), counts

    still, counts = play(0.5)
    moved, _ = play(1.0)
    queue_only = [count for i, count in enumerate(counts) if i % 4 != 3]
    assert max(queue_only) <= QUEUE_ONLY_BUDGET < min(count for i, count in enumerate(counts) if i % 4 == 3)
    assert torch.equal(moved, still) and float(still.abs().max()) > 0.0
