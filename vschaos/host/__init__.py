"""vschaos.host: an nn~-compatible streaming host to load, describe, verify, bench and render nn~ models.

See docs/NN_CONTRACT.md for the contract it reproduces; ``python -m vschaos.host --help`` for the CLI.
"""
from vschaos.util import next_power_of_two

from .bench import BenchReport, BenchRow, bench_model, latency_table
from .description import AttributeInfo, MethodInfo, ModelDescription, convert_attribute_values
from .engine import EngineStats, StreamEngine, batched_to_outlets, host_latency, inlets_to_batched
from .errors import AttributeValueError, HostError, MethodError, ModelCallError, ModelLoadError
from .model import LoadedModel, describe_model, load_model
from .render import RenderResult, render, render_array
from .verify import Check, VerifyReport, measure_delay, verify_model

__all__ = [
    "AttributeInfo", "AttributeValueError", "BenchReport", "BenchRow", "Check", "EngineStats", "HostError",
    "LoadedModel", "MethodError", "MethodInfo", "ModelCallError", "ModelDescription", "ModelLoadError",
    "RenderResult", "StreamEngine", "VerifyReport", "batched_to_outlets", "bench_model", "convert_attribute_values",
    "describe_model", "host_latency", "inlets_to_batched", "latency_table", "load_model", "measure_delay",
    "next_power_of_two", "render", "render_array", "verify_model",
]
