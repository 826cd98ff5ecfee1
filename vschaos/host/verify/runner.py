"""``verify_model``: every check on every method of a model, gathered in one report."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from vschaos.util import is_power_of_two

from ..description import MethodInfo
from ..errors import HostError
from ..model import LoadedModel, ModelSource, load_model
from .checks import DEFAULT_TOLERANCE, check_attributes, check_contract, check_shapes, check_streaming
from .delay_checks import check_delay, check_pair_delay, delay_pair
from .report import VerifyReport

MAX_DEFAULT_BUFFER = 8192


def default_buffers(min_buffer: int) -> List[int]:
    """Powers of two from the model's minimum buffer size to 8192."""
    sizes, size = [], min_buffer
    while size <= MAX_DEFAULT_BUFFER:
        sizes.append(size)
        size *= 2
    return sizes or [min_buffer]


def buffers_for_method(info: MethodInfo, buffers: Sequence[int]) -> List[int]:
    """The buffer sizes nn~ can call this method with: multiples of its largest ratio."""
    return [b for b in buffers if b % info.max_ratio == 0]


def verify_model(source: "ModelSource | LoadedModel", buffers: Optional[List[int]] = None,
                 batch_sizes: Sequence[int] = (1, 4), tolerance: float = DEFAULT_TOLERANCE,
                 methods: Optional[Sequence[str]] = None,
                 attributes: Optional[Dict[str, Sequence[object]]] = None) -> VerifyReport:
    """Run every check on a model given as a path, a ScriptModule or a :class:`LoadedModel`.

    The caller's module is not modified: checks run on fresh copies.

    Args:
        buffers: buffer sizes B to test; default: powers of two from the minimum buffer to 8192.
        batch_sizes: batch sizes for shape and streaming checks.
        tolerance: streaming vs offline, absolute, scaled by ``max(1, peak |output|)``.
        methods: restrict to these methods (default all).
        attributes: ``{name: values}`` set before the checks (e.g. a temperature of 0).
    Raises :class:`HostError` for a model that cannot be loaded or an invalid argument.
    """
    loaded = source if isinstance(source, LoadedModel) else load_model(source)
    model = loaded.fresh()
    for name, values in (attributes or {}).items():
        model.set_attribute(name, list(values))
    # re-serialise with the attributes applied
    model = LoadedModel(model.module, loaded.path, call_timeout=loaded.call_timeout)
    description = model.description
    min_buffer = description.min_buffer_size
    if buffers is None:
        buffers = default_buffers(min_buffer)
    buffers = sorted(set(int(b) for b in buffers))
    for buffer in buffers:
        if not is_power_of_two(buffer):
            raise HostError(f"buffer size {buffer} is not a power of two")
        if buffer < min_buffer:
            raise HostError(f"buffer size {buffer} is below the model's minimum {min_buffer} (largest ratio)")
    selected = [description.method(name) for name in methods] if methods else description.methods
    length = max(2 * buffers[-1], 4096)
    report = VerifyReport(loaded.path, buffers, list(batch_sizes), tolerance, length)
    check_contract(model, report)
    check_attributes(model.fresh(), report)
    pair, pair_note = delay_pair(selected)
    for info in selected:
        method_buffers = buffers_for_method(info, buffers)
        check_shapes(model, info, method_buffers, batch_sizes, report)
        check_streaming(model, info, method_buffers, batch_sizes, length, tolerance, report)
        check_delay(model, info, length, report, pair_note, min_buffer)
    if pair is not None:
        check_pair_delay(model, pair[0], pair[1], length, report, min_buffer)
    return report
