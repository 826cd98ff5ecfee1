"""The checks that need no delay measurement: contract, attributes, shapes, NaN/Inf, determinism, streaming.

**Streaming equals offline**: the same deterministic signal (audio-rate inlets: a chirp plus
noise; control-rate inlets: slow sines, decimated by the last sample of each ratio block as nn~
does) processed in one call and in consecutive calls of B samples after a state reset must
agree within ``tolerance * max(1, peak |offline output|)``, default :data:`DEFAULT_TOLERANCE` (-60 dB):
a state bug (a forgotten history, swapped axes) errs by the signal's own order, while float32 rounding, which
depends on how many frames one call batches (BLAS picks its kernel by the row count), must pass. A soft clip
magnifies the rounding of a model driven into it by the broadband test signal, so a much tighter tolerance
would refuse sound exports.

Each ``check_*`` function appends its findings to a :class:`VerifyReport`.
"""
from __future__ import annotations

DEFAULT_TOLERANCE = 1e-3

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..description import MethodInfo, convert_attribute_values
from ..errors import AttributeValueError, HostError, ModelCallError
from ..model import LoadedModel
from .report import VerifyReport
from .signals import decimate, test_signal


def call_method(model: LoadedModel, method: str, x: np.ndarray) -> np.ndarray:
    """``model.<method>(x)`` through the host's shape check; numpy in, a numpy copy out."""
    return model.call(method, torch.from_numpy(np.ascontiguousarray(x))).numpy().copy()



def offline_call(model: LoadedModel, method: str, x: np.ndarray) -> np.ndarray:
    """One call on the whole signal, with torch's seed fixed so that noise-sampling models compare."""
    torch.manual_seed(0)  # models that sample noise are compared under the same seed
    return call_method(model, method, x)



def locate_max(error: np.ndarray) -> Tuple[int, int, int]:
    """``(batch, channel, frame)`` of the largest value of a ``(batch, channels, frames)`` array."""
    index = np.unravel_index(int(np.argmax(error)), error.shape)
    return int(index[0]), int(index[1]), int(index[2])


def nonfinite_problem(y: np.ndarray, context: str) -> Optional[str]:
    """A problem line counting the NaN/Inf values of ``y`` and locating the first, or ``None``."""
    bad = ~np.isfinite(y)
    if not bad.any():
        return None
    b, c, s = locate_max(bad.astype(np.float32))
    return f"{context}: {int(bad.sum())} NaN/Inf values (first at batch {b}, channel {c}, frame {s})"


# ---- the checks ---------------------------------------------------------------------------
def check_contract(model: LoadedModel, report: VerifyReport) -> None:
    """Labels, where given, match the declared channel counts."""
    for info in model.description.methods:
        problems = []
        for side, labels, channels in (("input", info.input_labels, info.in_channels),
                                       ("output", info.output_labels, info.out_channels)):
            if labels and len(labels) != channels:
                problems.append(f"{len(labels)} {side} labels for {channels} {side} channels")
        report.add("contract", info.name, problems,
                   f"params [{info.in_channels}, {info.in_ratio}, {info.out_channels}, {info.out_ratio}]"
                   + (", labels ok" if info.input_labels or info.output_labels else ", no labels"))


def changed_value(kind: str, value: object) -> Optional[object]:
    """A different valid value of an attribute of type ``kind`` (``None`` for str: model-specific)."""
    if kind == "bool":
        return not bool(value)
    if kind == "int":
        return int(value) + 1
    if kind == "float":
        return float(value) + 0.5
    return None  # str: valid values are model-specific


def check_attributes(model: LoadedModel, report: VerifyReport) -> None:
    """Declared types, get/set round trips, and the host's rejection of what nn~ would reject."""
    for attribute in model.description.attributes:
        problems: List[str] = []
        name = attribute.name
        if attribute.error:
            report.add("attribute", None, [f"'{name}': {attribute.error}"], f"'{name}'")
            continue
        value = attribute.value or []
        unknown = [t for t in attribute.types if t not in ("bool", "int", "float", "str", "tensor", "buffer")]
        if unknown:
            problems.append(f"'{name}': unknown type codes {unknown}")
        if len(value) != len(attribute.types):
            problems.append(f"'{name}': get_{name}() returned {len(value)} values, '{name}_params' declares "
                            f"{len(attribute.types)}")
        python_types = {"bool": (bool,), "int": (int,), "float": (float, int), "str": (str,)}
        for position, (kind, item) in enumerate(zip(attribute.types, value)):
            allowed = python_types.get(kind)
            if allowed and (not isinstance(item, allowed) or (kind != "bool" and isinstance(item, bool))):
                problems.append(f"'{name}' value {position + 1}: declared {kind}, get returned {item!r}")
        settable = not problems and all(t in python_types for t in attribute.types)
        if settable:
            try:
                model.set_attribute(name, value)
                if model.get_attribute(name) != value:
                    problems.append(f"'{name}': set to its own value {value} then get returned "
                                    f"{model.get_attribute(name)}")
                changed = [changed_value(t, v) for t, v in zip(attribute.types, value)]
                if all(c is not None for c in changed):
                    try:
                        model.set_attribute(name, changed)
                    except AttributeValueError:
                        pass  # a model may refuse values out of its range: not an error
                    else:
                        got = model.get_attribute(name)
                        if not all(same_value(a, b) for a, b in zip(got, changed)):
                            problems.append(f"'{name}': set {changed} accepted (0) but get returned {got}")
                    model.set_attribute(name, value)
            except HostError as error:
                problems.append(f"'{name}': {error}")
            # The host must reject what nn~ would reject, before calling the model.
            for bad, why in ((list(value) + [value[0] if value else 0], "one value too many"),
                             (["not-a-number"] * len(value), "text for numbers")):
                if why == "text for numbers" and all(t == "str" for t in attribute.types):
                    continue
                try:
                    convert_attribute_values(attribute, bad)
                    problems.append(f"'{name}': {why} {bad} was not rejected")
                except AttributeValueError:
                    pass
        report.add("attribute", None, problems,
                   f"'{name}' ({', '.join(attribute.types)}) = {value}" + (", get/set round trip ok" if settable else ""))


def same_value(a: object, b: object) -> bool:
    """Attribute values equal (floats within 1e-6: they pass through float32)."""
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)
    return a == b


def check_shapes(model: LoadedModel, info: MethodInfo, buffers: List[int], batch_sizes: Sequence[int],
                  report: VerifyReport) -> None:
    """Output shape, dtype and finiteness for every batch size and buffer size."""
    problems, nonfinite = [], []
    fresh = model.fresh()
    cases = 0
    for batch in batch_sizes:
        for buffer in buffers:
            x = decimate(test_signal(batch, info.in_channels, buffer, info.in_ratio > 1, seed=buffer), info.in_ratio)
            cases += 1
            try:
                y = call_method(fresh, info.name, x)
            except ModelCallError as error:
                problems.append(str(error))
                continue
            problem = nonfinite_problem(y, f"buffer {buffer}, batch {batch}")
            if problem:
                nonfinite.append(problem)
    report.add("shape", info.name, problems,
               f"{cases} calls (batch {list(batch_sizes)} x buffers {buffers[0]}..{buffers[-1]}): "
               f"(batch, {info.out_channels}, B // {info.out_ratio}) float32"
               if not problems else f"{len(problems)} of {cases} calls returned the wrong output")
    report.add("finite", info.name, nonfinite, "no NaN/Inf" if not nonfinite else "NaN/Inf in outputs")


def check_streaming(model: LoadedModel, info: MethodInfo, buffers: List[int], batch_sizes: Sequence[int],
                     length: int, tolerance: float, report: VerifyReport) -> None:
    """Determinism of two fresh runs, and streaming == offline for every buffer and batch size."""
    problems: List[str] = []
    determinism: List[str] = []
    worst = 0.0
    for batch in batch_sizes:
        signal = decimate(test_signal(batch, info.in_channels, length, info.in_ratio > 1, seed=7), info.in_ratio)
        first = model.fresh()
        try:
            offline = offline_call(first, info.name, signal)
            again = offline_call(model.fresh(), info.name, signal)
        except ModelCallError as error:
            problems.append(f"offline call of {length} samples, batch {batch}: {error}")
            continue
        if not np.array_equal(offline, again, equal_nan=True):
            difference = np.nan_to_num(np.abs(offline - again), nan=np.inf)
            b, c, s = locate_max(difference)
            determinism.append(f"batch {batch}: two fresh runs differ by {float(difference.max()):.3g} "
                               f"(batch {b}, channel {c}, frame {s})")
        for buffer in buffers:
            # Bound the work for small buffers: at most 64 calls or 4096 samples, whichever is longer.
            span = min(length, max(64 * buffer, 4096))
            in_span = span // info.in_ratio
            out_span = span // info.out_ratio
            reference = offline[..., :out_span]
            if span < length:
                try:
                    reference = offline_call(model.fresh(), info.name, signal[..., :in_span])
                except ModelCallError as error:
                    problems.append(f"offline call of {span} samples, batch {batch}: {error}")
                    continue
            first.reset_state()
            step = buffer // info.in_ratio
            try:
                torch.manual_seed(0)
                pieces = [call_method(first, info.name, signal[..., start:start + step]) for start in range(0, in_span, step)]
            except ModelCallError as error:
                problems.append(f"streaming: {error}")
                continue
            streamed = np.concatenate(pieces, axis=-1)
            scale = max(1.0, float(np.nanmax(np.abs(reference))) if reference.size else 1.0)
            difference = np.nan_to_num(np.abs(streamed - reference), nan=np.inf)
            error_max = float(difference.max()) if difference.size else 0.0
            worst = max(worst, error_max / scale)
            if error_max > tolerance * scale:
                b, c, s = locate_max(difference)
                problems.append(f"buffer {buffer}, batch {batch}: streaming differs from offline: max error "
                                f"{error_max:.3g} at batch {b}, channel {c}, frame {s} (call {s // (buffer // info.out_ratio)}"
                                f", tolerance {tolerance * scale:.3g})")
    report.add("determinism", info.name, determinism, "two fresh runs identical" if not determinism
               else "two fresh runs differ")
    report.add("streaming", info.name, problems,
               f"streaming == offline for buffers {buffers[0]}..{buffers[-1]}, max relative error {worst:.2g}"
               if not problems else "streaming output differs from offline output")
