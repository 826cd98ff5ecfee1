"""Speed of the Neutone export, as the plugin runs it: the SDK's ``benchmark-speed`` 1/RTF per preset.

The target: 1/RTF >= 100 at a 2048-sample DAW buffer, 48 kHz, 1 thread; the SDK's benchmarks run at the buffers
DAW users run, 128 to 2048 (``BUFFERS``). Each preset's model (random init: the
cost does not depend on the weights) goes through the real export (``export_neutone``: SDK validation, our
equality and delay checks at one DAW buffer, then the SDK's benchmarks in a child process, exactly what
``script.py --format neutone`` prints). Beside it, the median time of one ``StreamingVAE.forward`` call at the
most whole hops the wrapper runs at 48 kHz / 2048, so that the model's share and the rest (the wrapper's
resampling, the plugin) can be told apart, and that call's stages (``stage_ms``: ``StreamingVAE``'s own public
stages): the network (encoder, predictors, decoder) and the spectral front and back end (analysis, features,
RTPGHI, synthesis). What the export costs without its network is measured through the SDK with ``--set``
(below), not by subtracting the stages' times from the SDK's figure: the two are timed minutes apart, and on a
machine whose speed drifts that difference means nothing. Last, the exported file's plugin call at 48 kHz / 2048
under ``torch.profiler`` (``profile_plugin``): how many operations it dispatches and the own time of its
heaviest ones, arithmetic that a leaner call would still pay, beside the room that 1/RTF 100 leaves after the
floor; and the operations per call at 128, a mean over the calls that run a frame and the many that only queue.

Beside each model, the plugin's own floor: an identity model with the same native sample rates, buffer sizes and
four knobs, through the same SDK benchmark in the same round. It pays everything the plugin does around a model
(channel mixing, queues, knob handling, and resampling where the plugin resamples) and nothing else, so no model
can beat its 1/RTF on the machine at hand; ``model ms`` is what our model adds per DAW buffer (1/RTF to
milliseconds, floor subtracted; our wrapper's own resampling included), the figure to compare between machines
and versions.

Usage: ``python -m bench.neutone_speed [--presets demo dgt_mid ...] [--set KEY=VALUE ...] [--busy] [--save-dir DIR]
[--name NAME]``. ``--set`` applies config overrides to every preset, e.g. ``model.encoder.nlayers=0
model.decoder.nlayers=0 model.latent_dim=2`` (a network of one small layer each way). ``--busy`` runs one
competing CPU-bound process meanwhile (a musician's laptop is never idle); ``--save-dir`` keeps the exported
files. ``--compare A.nm B.nm ... [--rounds 5] [--buffers 128 256 2048]`` exports nothing and runs the SDK's
benchmark on the given files (each with its floor) in turn, round after round, at each DAW buffer, and reports
each file's median and range, then times their plugin calls interleaved in this process (``plugin_calls``: the
least block mean is the steadiest figure on a loaded machine) with the operations each dispatches, and times a
call that runs hops apart from one that only queues (at a buffer shorter than a hop most calls only queue): the
way to compare two versions of the code on a machine whose speed drifts. Writes ``bench/results/<name>.{json,md}``.
"""
import argparse
import shutil
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from neutone_sdk import ContinuousNeutoneParameter, NeutoneParameter
from neutone_sdk.sqw import SampleQueueWrapper
from neutone_sdk.utils import load_neutone_model, save_neutone_model
from torch import Tensor, nn

from bench.call_profile import (profile_calls, profile_plugin, plugin_calls,  # noqa: F401 (profile_calls: here too)
                                slice_us)
from bench.common import RESULTS_DIR, competing_process, interleaved_medians, start_run, write_results
from vschaos.cli.train import compose_config
from vschaos.export.directions import LatentDirections
from vschaos.export.export import script_model
from vschaos.export.neutone import MAX_KNOBS, NeutoneTexts, WholeHopsAtDawRates, export_neutone
from vschaos.export.neutone_checks import run_sdk_benchmarks
from vschaos.training.run import build_model

PRESETS = ["demo", "dgt_mid", "dgt_pitch_cond", "dgt_harmonic"]
DAW_RATE = 48000
DAW_BUFFER = 2048
BUFFERS = (128, 256, 512, DAW_BUFFER)  # what DAW users run, small to large (the SDK's benchmarks at each)
TARGET = 100.0


class _Identity(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


SHELL_TEXTS = NeutoneTexts("vschaos shell", *["a bare module in the plugin (benchmark)"] * 3, tags=["benchmark"],
                           version="1")


class SdkShell(WholeHopsAtDawRates):
    """A bare module in the plugin, with the plugin's four knobs (the SDK handles all four whatever a model names).

    With ``hop=None`` the plugin hands ``inner`` its buffers directly, at the native sample rates and buffer
    sizes given (empty: any): around :class:`_Identity` it is the floor, the plugin's cost around a model. With a
    ``hop``, ``inner`` runs at ``sample_rates[0]`` in whole hops behind our own wrapper (:class:`WholeHopsAtDawRates`:
    every DAW rate and buffer size native, resampled inside), as an exported model does."""
    # TorchScript reads attribute types from this class's own annotations: the SDK's are repeated here.
    neutone_parameters_metadata: Dict[str, Dict[str, Union[int, float, str, bool, List[str], List[int]]]]
    remapped_params: Dict[str, Tensor]
    neutone_parameter_names: List[str]
    vs_sample_rates: List[int]
    vs_buffer_sizes: List[int]  # may be empty (any size), which TorchScript cannot infer
    vs_bypass: bool

    def __init__(self, inner: nn.Module, sample_rates: List[int], buffer_sizes: List[int],
                 hop: Optional[int] = None) -> None:
        self.set_stream_shape(int(sample_rates[0]) if sample_rates else DAW_RATE, 1 if hop is None else int(hop), 0)
        self.vs_bypass = hop is None
        if self.vs_bypass:
            self.vs_sample_rates, self.vs_buffer_sizes = [int(r) for r in sample_rates], [int(b) for b in buffer_sizes]
        self.set_texts(SHELL_TEXTS)
        super().__init__(inner, use_debug_mode=True)
        self.add_stream_state()

    @torch.jit.unused
    def get_neutone_parameters(self) -> List[NeutoneParameter]:
        return [ContinuousNeutoneParameter(f"knob {i + 1}", "unused", 0.5) for i in range(MAX_KNOBS)]

    def do_forward_pass(self, x: Tensor, params: Dict[str, Tensor]) -> Tensor:
        if self.vs_bypass:
            return self.model(x)
        return self.whole_hops_forward(x, params)

    def _stream(self, x: Tensor, params: Dict[str, Tensor]) -> Tensor:
        return self.model(x)

    def _reset_stream(self) -> None:
        pass


def native_sizes(path: Path) -> Tuple[List[int], List[int]]:
    """A Neutone file's native sample rates and buffer sizes."""
    model, _ = load_neutone_model(str(path))
    return [int(r) for r in model.get_native_sample_rates()], [int(b) for b in model.get_native_buffer_sizes()]


def save_shell(inner: nn.Module, path: Path, sample_rates: List[int], buffer_sizes: List[int],
               hop: Optional[int] = None) -> Path:
    """Write :class:`SdkShell` around ``inner`` to ``path`` through the SDK's export (atomically) and return it."""
    staging = Path(tempfile.mkdtemp(prefix=".shell.", dir=path.parent))
    try:
        save_neutone_model(SdkShell(inner, sample_rates, buffer_sizes, hop), staging, dump_samples=False,
                           submission=False, speed_benchmark=False, test_offline_mode=False)
        (staging / "model.nm").replace(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def floor_file(folder: Path, sample_rates: List[int], buffer_sizes: List[int]) -> Path:
    """Write the floor (:class:`SdkShell` around :class:`_Identity`) for these native rates and sizes to
    ``folder/floor_<first rate or "any">_<checksum>.nm`` (once) and return it."""
    key = ",".join(str(r) for r in sample_rates) + "/" + "-".join(str(b) for b in buffer_sizes)
    first = sample_rates[0] if sample_rates else "any"
    path = folder / f"floor_{first}_{zlib.crc32(key.encode()):08x}.nm"  # one per rate and size list
    return path if path.exists() else save_shell(_Identity(), path, sample_rates, buffer_sizes)


def model_ms(inverse_rtf: float, floor_inverse_rtf: float, daw_buffer: int = DAW_BUFFER) -> float:
    """Milliseconds per DAW buffer that a model adds to the plugin's floor."""
    buffer_ms = 1e3 * daw_buffer / DAW_RATE
    return buffer_ms / inverse_rtf - buffer_ms / floor_inverse_rtf


def model_buffer(sample_rate: int, hop: int, daw_rate: int = DAW_RATE, daw_buffer: int = DAW_BUFFER) -> int:
    """The most the model runs in one plugin call at this DAW setting: the DAW buffer resampled to the model's
    rate (the SDK's rounding; our models take any size) rounded up to whole hops."""
    resampled = SampleQueueWrapper.calc_resampled_buffer_size(daw_rate, sample_rate, daw_buffer)
    return -(-resampled // hop) * hop


STAGES = ["analysis", "features in", "network", "features out", "phase (RTPGHI)", "synthesis"]
SPECTRAL_STAGES = [stage for stage in STAGES if stage != "network"]


def forward_stages(module: torch.jit.ScriptModule, x: Tensor
                   ) -> Tuple[Dict[str, Callable[[], object]], Tensor]:
    """The stages (:data:`STAGES`) of a scripted ``StreamingVAE``'s ``forward(x)`` on a fresh stream, each as a
    call that runs it again on this call's tensors (one call into TorchScript), and the audio that the stages
    give chained. The stages are ``StreamingVAE``'s own public ones
    (:mod:`vschaos.export.streaming_stages`), which ``forward`` chains: the output is ``forward(x)``'s (a test
    holds it). ``"network"`` is the encoder, the latent knobs, the predictors and the decoder: the part a smaller
    or faster network would change; the other stages are the spectral front and back end that any model of this
    kind pays. ``x``: forward's input, float32 ``(batch, 1 + n_tasks, B)``."""
    with torch.no_grad():
        spec = module.analyse(x)
        counter = module.forward_counter(x.shape[0], spec.shape[1])
        f0 = module.pitch_in(x)
        features = module.features_in(spec)
        labels = module.forward_labels(x)
        decoded = module.network(features, labels, counter, f0)
        magnitude = module.features_out(decoded, spec)
        phase = module.phase_of(magnitude, spec, counter)
        out = module.synthesise(magnitude, phase)
    stages = {"analysis": lambda: module.analyse(x), "features in": lambda: module.features_in(spec),
              "network": lambda: module.network(features, labels, counter, f0),
              "features out": lambda: module.features_out(decoded, spec),
              "phase (RTPGHI)": lambda: module.phase_of(magnitude, spec, counter),
              "synthesis": lambda: module.synthesise(magnitude, phase)}
    if f0 is not None:  # a model that reads its f0 from a longer window (dgt_live): that analysis
        stages["pitch window"] = lambda: module.pitch_in(x)
    return stages, out


def stage_ms(vae, buffer: int, rounds: int = 20, calls: int = 20) -> Dict[str, float]:
    """Median milliseconds, 1 thread, of one scripted ``StreamingVAE.forward`` call at ``buffer`` samples
    (``"forward"``) and of each of its stages (:func:`forward_stages`) run alone, less the cost of calling into
    TorchScript from Python; ``"the rest"`` is what the whole call spends beyond its stages run alone: what
    ``forward`` does between them (the input check, the frame counter, the label inlets) and running them
    together (the caches). Each is timed as blocks of ``calls`` calls in a row (its own data in the caches: a
    stage timed one call at a time between the others pays for the others' data too), the whole call and each
    stage in turn, ``rounds`` rounds (:func:`interleaved_medians`), so that a machine whose speed drifts moves
    them together."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = script_model(vae)
        stage_module = script_model(vae)
    x = 0.1 * torch.randn(1, 1 + len(module.forward_tasks), buffer, generator=torch.Generator().manual_seed(0))
    x[:, 1:] = -1.0
    stages, _ = forward_stages(stage_module, x)
    nothing = torch.jit.script(_Identity())  # a call into TorchScript that does nothing: what each stage's call costs
    timed = {"forward": lambda: module.forward(x), **stages, "call": lambda: nothing(x)}
    blocks = {name: (lambda run=run: [run() for _ in range(calls)]) for name, run in timed.items()}
    with torch.no_grad():
        times = interleaved_medians(blocks, rounds)
    median = {name: 1e3 * figures["seconds"] / calls for name, figures in times.items()}
    result = {name: median[name] - (0 if name == "forward" else median["call"]) for name in timed if name != "call"}
    result["the rest"] = result["forward"] - sum(result[name] for name in STAGES)
    return result


def run_preset(preset: str, folder: Path, repeat: int, n_iters: int, overrides: Tuple[str, ...] = ()
               ) -> Dict[str, object]:
    cfg = compose_config(preset, list(overrides))
    torch.manual_seed(0)
    vae = build_model(cfg).eval()
    first = int(getattr(vae, "pitch_dims", 0))
    directions = LatentDirections.axes(int(vae.latent_dim), "benchmark", first=first)
    texts = NeutoneTexts(name=preset, short_description="benchmark", long_description="benchmark",
                         technical_description="benchmark", tags=["benchmark"])
    report = export_neutone(vae, folder / f"{preset}.nm", texts, directions, check_buffers=(DAW_BUFFER,),
                            bench_buffers=BUFFERS, bench_repeat=repeat, bench_iters=n_iters, sdk_offline_check=False)
    sample_rate, hop = int(cfg.transform.sample_rate), int(cfg.transform.hop)
    buffer = model_buffer(sample_rate, hop)
    floor_path = floor_file(folder, *native_sizes(report.path))
    floor = run_sdk_benchmarks(floor_path, buffers=BUFFERS, repeat=repeat, n_iters=n_iters)
    stages = stage_ms(vae, buffer)
    profile = profile_plugin(report.path, DAW_RATE, DAW_BUFFER)
    profile["floor_operations"] = profile_plugin(floor_path, DAW_RATE, DAW_BUFFER, calls=5)["operations"]
    # the smallest buffer: most calls only queue, one in a few runs a frame (the mean of both)
    profile[f"operations_{BUFFERS[0]}"] = profile_plugin(report.path, DAW_RATE, BUFFERS[0], calls=64)["operations"]
    row = {"preset": " ".join((preset,) + tuple(overrides)), "sample_rate": sample_rate,
           "n_fft": int(cfg.transform.n_fft), "hop": hop, "model_buffer": buffer, "forward_ms": stages["forward"],
           "stages_ms": stages, "profile": profile}
    for daw_buffer in BUFFERS:
        row[f"inverse_rtf_{daw_buffer}"] = report.benchmarks.inverse_rtf(DAW_RATE, daw_buffer)
        row[f"floor_inverse_rtf_{daw_buffer}"] = floor.inverse_rtf(DAW_RATE, daw_buffer)
    row["model_ms_2048"] = model_ms(row["inverse_rtf_2048"], row["floor_inverse_rtf_2048"])
    return row


def compare_files(files: List[Path], rounds: int, repeat: int, n_iters: int, folder: Path,
                  buffers: Sequence[int] = (DAW_BUFFER,)) -> List[Dict[str, object]]:
    """SDK 1/RTF at 48 kHz and each of ``buffers`` of each file and of the floor at each file's native sizes
    (written to ``folder``), all interleaved round after round: ``[{file, buffer, median, low, high, rounds,
    floor, model_ms}]``, one per file and buffer."""
    sizes = {path: native_sizes(path) for path in files}
    floors = {path: floor_file(folder, *sizes[path]) for path in files}
    floor_rates = {floors[path]: sizes[path][0] for path in files}  # the plugin runs a floor at 48 kHz if it may
    paths = list(files) + sorted(set(floors.values()))
    figures: Dict[Tuple[Path, int], List[float]] = {(path, b): [] for path in paths for b in buffers}
    for _ in range(rounds):
        for path in paths:
            result = run_sdk_benchmarks(path, buffers=tuple(buffers), repeat=repeat, n_iters=n_iters)
            for b in buffers:
                figures[(path, b)].append(float(result.inverse_rtf(DAW_RATE, b)))
    medians = {key: sorted(values)[len(values) // 2] for key, values in figures.items()}
    rows = []
    for (path, b), values in figures.items():
        values = sorted(values)
        floor = floors.get(path)
        rates = floor_rates.get(path, [])
        native = f"{rates[0]} Hz" if rates and DAW_RATE not in rates else "48 kHz"
        label = str(path) if floor else f"floor: identity, native {native}"
        rows.append({"file": label, "buffer": b, "median": medians[(path, b)], "low": values[0],
                     "high": values[-1], "rounds": len(values), "floor": medians[(floor, b)] if floor else None,
                     "model_ms": model_ms(medians[(path, b)], medians[(floor, b)], b) if floor else None})
    return rows


def format_table(rows: List[Dict[str, object]]) -> str:
    lines = ["| preset | rate / n_fft / hop | " + " | ".join(f"1/RTF at {b} (floor)" for b in BUFFERS)
             + " | model ms per 2048 | forward at its buffer (ms) |", "|---|---|" + "---:|" * (len(BUFFERS) + 2)]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['sample_rate']} / {r['n_fft']} / {r['hop']} | "
                     + " | ".join(f"{r[f'inverse_rtf_{b}']:.1f} ({r[f'floor_inverse_rtf_{b}']:.1f})" for b in BUFFERS)
                     + f" | {r['model_ms_2048']:.2f} | {r['forward_ms']:.2f} (B = {r['model_buffer']}) |")
    names = STAGES + ["the rest"]
    lines += ["", "Where one `StreamingVAE.forward` call at that buffer spends its time (ms, medians, 1 thread; "
              "\"network\": encoder, predictors, decoder; the other stages: the spectral front and back end):", "",
              "| preset | forward | " + " | ".join(names) + " | spectral stages together |",
              "|---|" + "---:|" * (len(names) + 2)]
    for r in rows:
        stages = r["stages_ms"]
        spectral = sum(stages[name] for name in SPECTRAL_STAGES)
        lines.append(f"| {r['preset']} | {stages['forward']:.3f} | " + " | ".join(f"{stages[n]:.3f}" for n in names)
                     + f" | {spectral:.3f} |")
    lines += ["", f"The plugin's call at {DAW_RATE} Hz / {DAW_BUFFER} by `torch.profiler`, per call: the operations it "
              "dispatches, and the own time of its heaviest operations (those averaging 5 µs or more each: products, "
              f"convolutions, FFTs, gathers), arithmetic that no saving on dispatch removes; \"room\": what 1/RTF {TARGET:g} leaves a "
              "model after the floor:", "",
              f"| preset | operations dispatched | the floor's | mean at {BUFFERS[0]} | heaviest operations, ms "
              "| room, ms |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        profile = r["profile"]
        lines.append(f"| {r['preset']} | {profile['operations']:.0f} | {profile['floor_operations']:.0f} "
                     f"| {profile[f'operations_{BUFFERS[0]}']:.1f} "
                     f"| {profile['heaviest_ms']:.3f} "
                     f"({len(profile['heaviest'])} operations) | {model_ms(TARGET, r['floor_inverse_rtf_2048']):.3f} |")
    for r in rows:
        lines += ["", f"{r['preset']}, heaviest operations (ms per call, times per call, input shapes):", ""]
        lines += [f"- {e['operation']} {e['ms']:.4f} (x{e['per_call']:g}) {e['shapes']}" for e in r["profile"]["heaviest"]]
    return "\n".join(lines)


def format_comparison(rows: List[Dict[str, object]], per_call: List[Dict[str, object]]) -> str:
    lines = ["| file | DAW buffer | 1/RTF, median | range | rounds | floor (same rate) | model ms per buffer |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        floor = "" if r["floor"] is None else f"{r['floor']:.1f}"
        added = "" if r["model_ms"] is None else f"{r['model_ms']:.3f}"
        lines.append(f"| {r['file']} | {r['buffer']} | {r['median']:.1f} | {r['low']:.1f}–{r['high']:.1f} "
                     f"| {r['rounds']} | {floor} | {added} |")
    lines += ["", f"The same files' plugin calls at {DAW_RATE} Hz timed in one process, interleaved round after round "
              "(µs per call: the least and the median block mean; a buffer shorter than a hop mixes calls that run a "
              "frame with calls that only queue), the operations each dispatches on average, and the median time "
              "of a call that runs hops and of one that only queues, each timed alone:", "",
              "| file | DAW buffer | µs per call, least | median | operations per call | µs, a call that runs hops "
              "| µs, a call that only queues |", "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['file']} | {r['buffer']} | {r['min_us']:.1f} | {r['median_us']:.1f} | {r['operations']:.1f} "
              f"| {_us(r.get('hop_us'))} | {_us(r.get('queue_us'))} |" for r in per_call]
    return "\n".join(lines)


def _us(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.1f}"


def main(argv: Optional[List[str]] = None) -> List[Dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides for every preset")
    parser.add_argument("--busy", action="store_true", help="run one competing CPU-bound process meanwhile")
    parser.add_argument("--repeat", type=int, default=10, help="SDK benchmark repetitions (default %(default)s)")
    parser.add_argument("--iters", type=int, default=30, help="SDK benchmark calls per repetition (default %(default)s)")
    parser.add_argument("--name", default="neutone_speed", help="results file name (default %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--save-dir", type=Path, help="keep the exported .nm files in this folder")
    parser.add_argument("--compare", type=Path, nargs="+", help="benchmark these .nm files, interleaved")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --compare (default %(default)s)")
    parser.add_argument("--buffers", type=int, nargs="+", default=[DAW_BUFFER],
                        help="DAW buffers of --compare (default %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load = "one competing CPU-bound process" if args.busy else "idle"
    started = start_run(__file__, competing=args.busy)
    per_call: List[Dict[str, object]] = []
    with competing_process(args.busy):
        if args.compare:
            with tempfile.TemporaryDirectory() as folder:
                rows = compare_files(args.compare, args.rounds, args.repeat, args.iters, Path(folder),
                                     args.buffers)
            per_call = plugin_calls(args.compare, DAW_RATE, args.buffers, rounds=3 * args.rounds)
        elif args.save_dir is not None:
            args.save_dir.mkdir(parents=True, exist_ok=True)
            rows = [run_preset(preset, args.save_dir, args.repeat, args.iters, tuple(args.set))
                    for preset in args.presets]
        else:
            with tempfile.TemporaryDirectory() as folder:
                rows = [run_preset(preset, Path(folder), args.repeat, args.iters, tuple(args.set))
                        for preset in args.presets]
        slice_cost = slice_us()
    header = (f"# Neutone export speed ({load})\n\nSDK benchmark-speed, {DAW_RATE} Hz, stereo DAW, 1 thread; target "
              f"1/RTF >= {TARGET:g} at {DAW_BUFFER}. Floor: an identity model at the same native sizes (no model "
              f"can beat it here). torch {torch.__version__}. The cheapest operation, a slice, costs "
              f"{slice_cost:.2f} µs in TorchScript here.\n\n")
    table = format_comparison(rows, per_call) if args.compare else format_table(rows)
    md = header + table + "\n"
    write_results(args.name, {"load": load, "target": TARGET, "slice_us": slice_cost, "rows": rows,
                              "per_call": per_call}, md, args.out, run=started)
    print(md)
    return rows


if __name__ == "__main__":
    main()
