"""vschaos.host: an nn~-compatible streaming host to load, describe, verify, bench and render nn~ models.

See docs/NN_CONTRACT.md for the contract it reproduces; ``python -m vschaos.host --help`` for the CLI.
The names below are imported on first use (``vschaos.util.lazy_exports``): ``--help`` answers without torch.
"""
from vschaos.util import lazy_exports

_EXPORTS = {
    "next_power_of_two": "vschaos.util",
    "BenchReport": ".bench", "BenchRow": ".bench", "bench_model": ".bench", "latency_table": ".bench",
    "AttributeInfo": ".description", "MethodInfo": ".description", "ModelDescription": ".description",
    "convert_attribute_values": ".description",
    "EngineStats": ".engine", "StreamEngine": ".engine", "batched_to_outlets": ".engine", "host_latency": ".engine",
    "inlets_to_batched": ".engine",
    "AttributeValueError": ".errors", "HostError": ".errors", "MethodError": ".errors", "ModelCallError": ".errors",
    "ModelLoadError": ".errors", "ModelTimeoutError": ".errors",
    "CallGuard": ".guard",
    "LoadedModel": ".model", "describe_model": ".model", "load_model": ".model",
    "RenderResult": ".rendering", "render": ".rendering", "render_array": ".rendering",
    "Check": ".verify", "VerifyReport": ".verify", "measure_delay": ".verify", "verify_model": ".verify",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
