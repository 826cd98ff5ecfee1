"""The per-call cost of the streamed ``forward`` that nn~ and the Neutone plugin run on every buffer.

A streamed call handles a few frames, so what it costs is mostly the number of tensor operations it
dispatches (each costs about the same, whatever its size), not their arithmetic. Timing belongs in
``bench/neutone_speed.py`` (it also counts what the exported file's plugin call dispatches); the operation count
is deterministic, so a test can hold it.
"""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vschaos.cli.train import compose_config
from vschaos.export.export import streaming_module
from vschaos.training.run import build_model

# the demo model at 4 frames, with a little room; each extra frame adds RTPGHI's frame loop only
FORWARD_BUDGET = 160
PER_EXTRA_FRAME = 3


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
