"""vschaos.host: an nn~-compatible streaming host to load, describe, verify, bench and render nn~ models.

See docs/NN_CONTRACT.md for the contract it reproduces; ``python -m vschaos.host --help`` for the CLI.
Names are imported on first use (PEP 562): the command line answers ``--help`` without loading torch.
"""
_LAZY = {
    "next_power_of_two": "vschaos.util",
    **dict.fromkeys(["BenchReport", "BenchRow", "bench_model", "latency_table"], "vschaos.host.bench"),
    **dict.fromkeys(["AttributeInfo", "MethodInfo", "ModelDescription", "convert_attribute_values"],
                    "vschaos.host.description"),
    **dict.fromkeys(["EngineStats", "StreamEngine", "batched_to_outlets", "host_latency", "inlets_to_batched"],
                    "vschaos.host.engine"),
    **dict.fromkeys(["AttributeValueError", "HostError", "MethodError", "ModelCallError", "ModelLoadError"],
                    "vschaos.host.errors"),
    **dict.fromkeys(["LoadedModel", "describe_model", "load_model"], "vschaos.host.model"),
    **dict.fromkeys(["RenderResult", "render", "render_array"], "vschaos.host.render"),
    **dict.fromkeys(["Check", "VerifyReport", "measure_delay", "verify_model"], "vschaos.host.verify"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vschaos.host' has no attribute {name!r}")


__all__ = sorted(_LAZY)
