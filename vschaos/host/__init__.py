"""vschaos.host: an nn~-compatible streaming host to load, describe, verify, bench and render nn~ models.

See NN_CONTRACT.md for the contract it reproduces; ``python -m vschaos.host --help`` for the CLI.
"""
# names are imported on first use (PEP 562): ``python -m vschaos.host --help`` answers without loading torch
_LAZY = {
    **dict.fromkeys(["BenchReport", "BenchRow", "bench_model", "latency_table"], ".bench"),
    **dict.fromkeys(["EngineStats", "StreamEngine", "batched_to_outlets", "host_latency", "inlets_to_batched"],
                    ".engine"),
    **dict.fromkeys(["AttributeInfo", "AttributeValueError", "LoadedModel", "MethodError", "MethodInfo",
                     "ModelCallError", "ModelDescription", "ModelLoadError", "convert_attribute_values",
                     "describe_model", "load_model", "next_power_of_two"], ".model"),
    "HostError": ".errors",
    **dict.fromkeys(["RenderResult", "render", "render_array"], ".render"),
    **dict.fromkeys(["Check", "VerifyReport", "measure_delay", "verify_model"], ".verify"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'vschaos.host' has no attribute {name!r}")


__all__ = [
    "AttributeInfo", "AttributeValueError", "BenchReport", "BenchRow", "Check", "EngineStats", "HostError",
    "LoadedModel", "MethodError", "MethodInfo", "ModelCallError", "ModelDescription", "ModelLoadError",
    "RenderResult", "StreamEngine", "VerifyReport", "batched_to_outlets", "bench_model", "convert_attribute_values",
    "describe_model", "host_latency", "inlets_to_batched", "latency_table", "load_model", "measure_delay",
    "next_power_of_two", "render", "render_array", "verify_model",
]
