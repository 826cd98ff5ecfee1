"""What a host knows about an nn~ model: its methods, attributes and buffer size (docs/NN_CONTRACT.md,
section 1), how ``dump`` / nn.ar ``describe`` print them, and how ``set`` converts a user's values."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from .errors import AttributeValueError, MethodError

ATTRIBUTE_TYPE_NAMES: Dict[int, str] = {0: "bool", 1: "int", 2: "float", 3: "str", 4: "tensor", 5: "buffer"}


@dataclass
class MethodInfo:
    """One nn~ method: ``(batch, in_channels, B // in_ratio) -> (batch, out_channels, B // out_ratio)``."""

    name: str
    in_channels: int
    in_ratio: int
    out_channels: int
    out_ratio: int
    input_labels: List[str] = field(default_factory=list)
    output_labels: List[str] = field(default_factory=list)
    delay: Optional[int] = None  # declared ``<m>_delay``: samples the output lags the input

    @property
    def max_ratio(self) -> int:
        return max(self.in_ratio, self.out_ratio)


@dataclass
class AttributeInfo:
    """One attribute: type names from ``<a>_params`` (or inferred from the getter's values)."""

    name: str
    types: List[str]
    value: Optional[List[object]]
    types_declared: bool = True
    error: Optional[str] = None


@dataclass
class ModelDescription:
    """What ``dump`` / ``nn.info`` / nn.ar ``describe`` show, plus declared delays and sample rate."""

    path: Optional[str]
    methods: List[MethodInfo]
    attributes: List[AttributeInfo]
    min_buffer_size: int
    sample_rate: Optional[int]
    has_reset: bool
    has_set_sample_rate: bool

    def method(self, name: str) -> MethodInfo:
        for method in self.methods:
            if method.name == name:
                return method
        raise MethodError(f"unknown method '{name}'; the model has: {', '.join(m.name for m in self.methods)}")

    def attribute(self, name: str) -> AttributeInfo:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        known = ", ".join(a.name for a in self.attributes) or "none"
        raise AttributeValueError(f"unknown attribute '{name}'; the model has: {known}")

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def format(self) -> str:
        lines = [f"model: {self.path or '<in-memory module>'}",
                 f"minimum buffer size: {self.min_buffer_size}",
                 f"sample rate: {self.sample_rate if self.sample_rate is not None else 'not exposed'}"
                 + ("  (set_sample_rate available)" if self.has_set_sample_rate else ""),
                 f"reset(): {'exported' if self.has_reset else 'not exported (host reloads to reset state)'}",
                 "methods:"]
        for m in self.methods:
            delay = f", declared delay {m.delay} samples" if m.delay is not None else ", no declared delay"
            lines.append(f"  {m.name}: {m.in_channels} ins (ratio {m.in_ratio}), "
                         f"{m.out_channels} outs (ratio {m.out_ratio}){delay}")
            if m.input_labels:
                lines.append(f"    inlets:  {', '.join(m.input_labels)}")
            if m.output_labels:
                lines.append(f"    outlets: {', '.join(m.output_labels)}")
        lines.append("attributes:" if self.attributes else "attributes: none")
        for a in self.attributes:
            declared = "" if a.types_declared else " (types inferred: no _params buffer)"
            value = a.error if a.error else ", ".join(repr(v) for v in (a.value or []))
            lines.append(f"  {a.name} ({', '.join(a.types)}){declared} = {value}")
        return "\n".join(lines)

    def to_nnar_yaml(self, idx: int = 0) -> str:
        """nn.ar's model description file (``idx``, ``modelPath``, ``minBufferSize``, methods, attributes)."""
        def quote(text: str) -> str:
            return json.dumps(text)  # a JSON string is a valid YAML scalar

        lines = [f"idx: {idx}", f"modelPath: {quote(self.path or '')}", f"minBufferSize: {self.min_buffer_size}",
                 "methods:"]
        for m in self.methods:
            lines += [f"  - name: {m.name}", f"    inDim: {m.in_channels}", f"    inRatio: {m.in_ratio}",
                      f"    outDim: {m.out_channels}", f"    outRatio: {m.out_ratio}"]
        if self.attributes:
            lines.append("attributes:")
            lines += [f"  - {a.name}" for a in self.attributes]
        else:
            lines.append("attributes: []")
        return "\n".join(lines) + "\n"


def infer_attribute_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "tensor"


def convert_attribute_values(attribute: AttributeInfo, values: Sequence[object]) -> List[object]:
    """Convert user values (text as Max/Pd send it, or Python values) to the declared types.

    Bools accept true/false/yes/no and numbers (Pd sends ``0.000000``: zero is false, other numbers
    true); ints accept integral numbers (``3.000000``); floats any number; str anything.
    Raises :class:`AttributeValueError` naming the attribute, the position and the expected type.
    """
    if len(values) != len(attribute.types):
        raise AttributeValueError(f"attribute '{attribute.name}' takes {len(attribute.types)} value(s) "
                                  f"({', '.join(attribute.types)}), got {len(values)}")
    converted: List[object] = []
    for position, (kind, raw) in enumerate(zip(attribute.types, values)):
        where = f"attribute '{attribute.name}' value {position + 1}: expected {kind}, got {raw!r}"
        if kind == "str":
            converted.append(str(raw))
            continue
        if kind in ("tensor", "buffer"):
            raise AttributeValueError(f"attribute '{attribute.name}' value {position + 1} is a {kind}: "
                                      "not settable from a host message")
        number: float
        if isinstance(raw, bool):
            number = float(raw)
        elif isinstance(raw, (int, float)):
            number = float(raw)
        else:
            text = str(raw).strip().lower()
            if kind == "bool" and text in ("true", "yes", "on", "false", "no", "off"):
                converted.append(text in ("true", "yes", "on"))
                continue
            try:
                number = float(text)
            except ValueError:
                raise AttributeValueError(where) from None
        if not math.isfinite(number):
            raise AttributeValueError(where)
        if kind == "bool":
            converted.append(number != 0.0)
        elif kind == "int":
            if number != int(number):
                raise AttributeValueError(where)
            converted.append(int(number))
        elif kind == "float":
            converted.append(float(number))
        else:
            raise AttributeValueError(f"attribute '{attribute.name}': unknown type '{kind}'")
    return converted
