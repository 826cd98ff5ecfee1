"""What a player hears with each shipped preset: the delay from input to output in Pd, Max, SuperCollider and the
Neutone plugin at the settings players use, read from real exports and checked by the host.

Every preset is a top-level ``vschaos/configs/*.yaml`` (``base.yaml`` aside), found when the bench runs, so a preset
added later appears in the next run. For each: the preset's model (random init: the delays do not depend on the
weights) goes through the verified nn~ export (``vschaos.export.export_model``) and the ``<method>_delay`` each
method declares is read back from the written file. Whether that is the delay a host meets is measured on a
pass-through double with the preset's own front end (latent = features, the input's phase: an untrained decoder's
output follows nothing, so no measurement can find its delay): the host's verification (``verify_model``) measures
``forward``'s delay, and the host's nn~ timeline (``render_array``, worker thread on) measures the total lag at one
setting, to compare with the table. The Neutone plugin's figure is what the Neutone export of the preset
(``export_neutone``: the SDK's validation and our checks, no speed benchmark), loaded as the plugin loads it,
reports for each DAW rate and buffer (``calc_buffering_delay_samples`` + ``calc_model_delay_samples``, what the
SDK's ``benchmark-latency`` prints); the export's own checks measure that delay on the pass-through double at the
model's rate and at 48 kHz (the Neutone SDK must be installed, else that column says so).

What a player hears in nn~ and nn.ar = the host's buffering (``vschaos.host.engine.host_latency``: B - V without
a worker thread, 2B - V with one; docs/NN_CONTRACT.md section 3) + the declared ``forward`` delay, at the model's
own sample rate. The settings (``NN_SETTINGS``) and the hosts' defaults assumed are written into the result.

Usage: ``python -m bench.latency_table [--presets dgt_mid demo ...]``. Writes
``bench/results/latency_table.{json,md}``.
"""
import argparse
import re
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from bench.common import start_run, write_results
from vschaos.cli.train import compose_config
from vschaos.configs import CONFIG_DIR, preset_names
from vschaos.export import export_model, script_model
from vschaos.export.directions import LatentDirections
from vschaos.export.latent_axes import LatentAxes
from vschaos.host import load_model, measure_delay, render_array, verify_model
from vschaos.host.engine import host_latency
from vschaos.models.contract import PassThroughModel
from vschaos.training.run import build_model
from vschaos.util import next_power_of_two

NOT_PRESETS = ("base",)  # top-level configs that are not presets


@dataclass(frozen=True)
class Setting:
    """One host setting: ``buffer`` B asked (None: the host's default, the model's largest ratio), vector V,
    worker thread on or off."""
    host: str
    buffer: Optional[int]
    vector: int = 64
    threaded: bool = True
    default: bool = False

    @property
    def label(self) -> str:
        size = "B = largest ratio" if self.buffer is None else f"B = {self.buffer}"
        return f"{self.host}, {size}{' (default)' if self.default else ''}"


PD, MAX, SC = "Pd (nn~)", "Max (nn~ 1.6)", "SuperCollider (nn.ar)"
NN_SETTINGS: Tuple[Setting, ...] = (
    Setting(PD, 256), Setting(PD, 512), Setting(PD, 2048), Setting(PD, 4096, default=True),
    Setting(MAX, None, default=True), Setting(MAX, 512), Setting(MAX, 2048),
    Setting(SC, None, default=True), Setting(SC, 2048))
RENDERED = Setting(PD, 2048)  # the setting whose total lag is measured through the host's timeline
NEUTONE_RATES = (44100, 48000)
NEUTONE_BUFFERS = (128, 256, 512)
NEUTONE_CHECK = (48000, 256)  # besides the model's own rate: the DAW setting at which the export measures its delay
ASSUMED = [
    "V = 64 everywhere: Pd's default block, Max's default signal vector size, SuperCollider's default block size.",
    "The worker thread is on (2B - V): the default of nn~ in Pd and Max (not on Windows) and of nn.ar on a "
    "real-time server; the table without it (B - V: Windows, nn~ buffer 0, non-real-time servers) follows.",
    "Default buffers: 4096 in Pd (nn~), the model's largest ratio (its hop) in Max (nn~ 1.6) and nn.ar "
    "(docs/NN_CONTRACT.md section 3).",
    "A buffer below the model's largest ratio is raised to it, as nn~ does (the cell names the buffer used).",
    "nn~ and nn.ar run at the model's own sample rate (they do not resample): the milliseconds are at that rate.",
    "Neutone: the plugin hands the wrapper the DAW's own buffers (every rate and size is native); the wrapper "
    "queues whole hops and resamples itself when the DAW's rate is not the model's; the figure is what the "
    "plugin reports for that DAW rate and buffer.",
]


PassThrough = PassThroughModel  # the front end's pass-through double (vschaos.models.contract)


def shipped_presets(config_dir: Path = CONFIG_DIR) -> List[str]:
    """The presets (top-level ``*.yaml`` of ``config_dir`` but ``base``), sorted."""
    return [name for name in preset_names(config_dir) if name not in NOT_PRESETS]


def host_buffer(setting: Setting, largest_ratio: int) -> int:
    """The buffer B a host runs the model with: the one asked (or the default, the largest ratio), raised to a
    power of two, to the model's largest ratio and to the vector (as nn~ and the host's ``StreamEngine`` do)."""
    asked = largest_ratio if setting.buffer is None else setting.buffer
    return next_power_of_two(max(asked, largest_ratio, setting.vector))


def heard_ms(samples: int, sample_rate: int) -> float:
    return 1000.0 * samples / sample_rate


def nn_rows(forward_delay: int, largest_ratio: int, sample_rate: int) -> List[Dict[str, object]]:
    """One row per ``NN_SETTINGS``: the buffer used, host buffering and the total (samples, ms), with the worker
    thread as set and without it (``sync_*``)."""
    rows = []
    for setting in NN_SETTINGS:
        buffer = host_buffer(setting, largest_ratio)
        host = host_latency(buffer, setting.vector, setting.threaded)
        sync = host_latency(buffer, setting.vector, False)
        rows.append({"host": setting.host, "setting": setting.label, "buffer_asked": setting.buffer,
                     "buffer": buffer, "vector": setting.vector, "threaded": setting.threaded,
                     "default": setting.default, "host_samples": host, "model_samples": forward_delay,
                     "total_samples": host + forward_delay, "ms": heard_ms(host + forward_delay, sample_rate),
                     "sync_total_samples": sync + forward_delay,
                     "sync_ms": heard_ms(sync + forward_delay, sample_rate)})
    return rows


def declared_delays(path: Path) -> Dict[str, Optional[int]]:
    """``{method: declared <method>_delay}`` of an exported file, as the host reads them (None: not declared)."""
    return {info.name: info.delay for info in load_model(str(path)).description.methods}


def measured_forward(transform: nn.Module, sample_rate: int) -> Dict[str, object]:
    """The host's measurements on the pass-through double with ``transform``: ``verify_model``'s ``forward``
    delay check, and the total lag of ``forward`` rendered through the host's nn~ timeline at ``RENDERED``."""
    # one latent outlet for encode and inlet for decode (a large front end has more bins than nn~ allows
    # channels); forward, the method measured, runs on the whole latent all the same
    axes = replace(LatentAxes.identity(int(transform.n_bins), 0, "pass-through double"), kept=1)
    double = script_model(PassThrough(transform), phase="keep_input", axes=axes)
    hop, n_fft = int(transform.hop), int(transform.n_fft)
    # the longest buffer sets the test signal (twice it), whose half must cover the delay
    report = verify_model(double, buffers=sorted({hop, next_power_of_two(n_fft)}), batch_sizes=(1,),
                          methods=["forward"])
    check = next(c for c in report.checks if c.name == "delay" and c.method == "forward")
    found = re.search(r"measured (\d+) samples", check.summary)
    declared = int(double.forward_delay[0])
    buffer = host_buffer(RENDERED, hop)
    expected = host_latency(buffer, RENDERED.vector, RENDERED.threaded) + declared
    x = (0.3 * np.random.default_rng(0).standard_normal((1, 4 * (expected + buffer)))).astype(np.float32)
    rendered = render_array(load_model(double), "forward", x, buffer, RENDERED.vector, threaded=RENDERED.threaded,
                            sample_rate=sample_rate)
    lag, correlation = measure_delay(x[0].astype(np.float64), rendered.output[0].astype(np.float64), x.shape[1] // 2)
    return {"declared": declared, "verify_passed": check.passed and not check.warning, "verify": check.summary,
            "measured": int(found.group(1)) if found else None, "rendered_setting": RENDERED.label,
            "rendered_buffer": buffer, "rendered_expected": expected, "rendered_lag": int(lag),
            "rendered_correlation": float(correlation)}


def _neutone_export(vae: nn.Module, name: str, path: Path):
    """``export_neutone`` with our equality and delay checks at ``NEUTONE_CHECK`` (at the model's rate and the
    DAW's), the SDK's validation, no SDK speed benchmark; returns the report."""
    from vschaos.export.neutone import NeutoneTexts, export_neutone

    directions = LatentDirections.axes(int(vae.latent_dim), "latency table", first=int(getattr(vae, "pitch_dims", 0)))
    texts = NeutoneTexts(name, "latency table", "latency table", "latency table", ["benchmark"])
    rate, buffer = NEUTONE_CHECK
    return export_neutone(vae, path, texts, directions, check_buffers=(buffer,), resampled_checks=((rate, buffer),),
                          benchmark=False, sdk_offline_check=False)


def neutone_rows(vae: nn.Module, name: str, folder: Path) -> Tuple[List[Dict[str, object]], Dict[str, object]]:
    """What the plugin reports at each ``NEUTONE_RATES`` x ``NEUTONE_BUFFERS`` for ``vae`` exported to ``folder``
    (the file loaded as the plugin and the SDK's ``benchmark-latency`` load it), and the checks: the export's
    own delay checks on ``vae`` and on the pass-through double with its front end, where a delay can be measured
    (``{"note": why}`` without the Neutone SDK)."""
    try:
        from vschaos.export.neutone import NeutoneExportError, load_neutone_model
    except ImportError as error:
        return [], {"note": f"not measured: the Neutone SDK is not installed ({error})"}
    report = _neutone_export(vae, name, folder / f"{name}.nm")
    plugin, _ = load_neutone_model(str(report.path))
    rows = []
    with torch.no_grad():
        for rate in NEUTONE_RATES:
            for buffer in NEUTONE_BUFFERS:
                plugin.set_daw_sample_rate_and_buffer_size(rate, buffer)
                plugin.reset()
                buffering, model = int(plugin.calc_buffering_delay_samples()), int(plugin.calc_model_delay_samples())
                rows.append({"daw_rate": rate, "buffer": buffer, "buffering_samples": buffering,
                             "model_samples": model, "total_samples": buffering + model,
                             "ms": heard_ms(buffering + model, rate)})
    checks: Dict[str, object] = {"note": "", "export": [check.delay_summary for check in report.checks]}
    try:
        double = _neutone_export(PassThrough(vae.transform), f"{name} pass-through", folder / f"{name}.double.nm")
        checks["double_passed"] = all(check.ok for check in double.checks)
        checks["double"] = [_delay_check(check) for check in double.checks]
    except NeutoneExportError as error:  # the export refuses a reported delay its checks do not measure
        checks["double_passed"], checks["double"] = False, [{"summary": str(error), "measured": None}]
    return rows, checks


def _delay_check(check) -> Dict[str, object]:
    """One of the Neutone export's ``BufferCheck``s: DAW rate (0: the model's), buffer, reported and measured
    delay (None: not measurable), its summary."""
    found = re.match(r"measured(?: by envelope)? (\d+) samples", check.delay_summary)
    return {"daw_rate": int(check.sample_rate), "buffer": int(check.daw_buffer),
            "reported": int(check.buffering_delay + check.model_delay),
            "measured": int(found.group(1)) if found else None, "summary": check.delay_summary}


def preset_result(preset: str, folder: Path, config_dir: Path = CONFIG_DIR,
                  overrides: Sequence[str] = ()) -> Dict[str, object]:
    """Every figure of one preset (see the module docstring); the export is written into ``folder``."""
    cfg = compose_config(preset, list(overrides), config_dir=config_dir)
    torch.manual_seed(0)
    vae = build_model(cfg).eval()
    sample_rate, n_fft, hop = int(cfg.transform.sample_rate), int(cfg.transform.n_fft), int(cfg.transform.hop)
    path, report = export_model(vae, folder / f"{preset}.ts", buffers=sorted({hop, next_power_of_two(n_fft)}),
                                batch_sizes=(1,))
    declared = declared_delays(path)
    own = next(c for c in report.checks if c.name == "delay" and c.method == "forward")
    largest_ratio = load_model(str(path)).description.min_buffer_size
    neutone, neutone_checks = neutone_rows(vae, preset, folder)
    return {"preset": preset, "sample_rate": sample_rate, "n_fft": n_fft, "hop": hop,
            "largest_ratio": largest_ratio, "declared": declared, "export_verify_forward_delay": own.summary,
            "measured": measured_forward(vae.transform, sample_rate),
            "nn": nn_rows(int(declared["forward"]), largest_ratio, sample_rate),
            "neutone": neutone, "neutone_checks": neutone_checks}


SUMMARY_HEADER = ("| preset | Pd, B = 512 | Pd, default B = 4096 | Max (nn~ 1.6) and nn.ar, default B (the hop) | "
                  "Neutone, 44.1 kHz, buffer 256 | Neutone, 48 kHz, buffer 256 |")


def _nn_cell(row: Dict[str, object], key: str = "ms") -> str:
    """Milliseconds, with the buffer used where the host chose it or raised the one asked."""
    raised = row["buffer_asked"] is not None and row["buffer"] != row["buffer_asked"]
    return f"{row[key]:.1f} (B {row['buffer']})" if row["buffer_asked"] is None or raised else f"{row[key]:.1f}"


def summary_cells(result: Dict[str, object]) -> List[str]:
    """The README's cells for one preset (``SUMMARY_HEADER``'s columns after the first), in ms; '' where the
    Neutone plugin was not measured."""
    nn_by = {row["setting"]: row for row in result["nn"]}
    neutone = {(row["daw_rate"], row["buffer"]): f"{row['ms']:.1f}" for row in result["neutone"]}
    return [_nn_cell(nn_by[Setting(PD, 512).label]), _nn_cell(nn_by[Setting(PD, 4096, default=True).label]),
            f"{nn_by[Setting(MAX, None, default=True).label]['ms']:.1f}",
            neutone.get((44100, 256), ""), neutone.get((48000, 256), "")]


def _neutone_verdict(check: Dict[str, object]) -> str:
    if "buffer" not in check:  # the export refused
        return str(check["summary"])
    where = f"{check['daw_rate'] / 1000:g} kHz, " if check["daw_rate"] else ""
    measured = "not measurable" if check["measured"] is None else f"measured {check['measured']}"
    return f"{where}{check['buffer']}: reported {check['reported']}, {measured}"


def format_markdown(results: List[Dict[str, object]]) -> str:
    settings = [row["setting"] for row in results[0]["nn"]] if results else []
    lines = ["Summary (the README's table): milliseconds from input to output", "",
             SUMMARY_HEADER, "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| `{r['preset']}` | " + " | ".join(summary_cells(r)) + " |" for r in results]
    for key, title in (("ms", "nn~ and nn.ar with the worker thread (the default): host 2B - V + declared "
                        "`forward` delay, ms"),
                       ("sync_ms", "nn~ and nn.ar without the worker thread (Windows, nn~ buffer 0, "
                        "non-real-time servers): B - V + declared `forward` delay, ms")):
        lines += ["", title, "", "| preset | rate | " + " | ".join(settings) + " |",
                  "|---|---:|" + "---:|" * len(settings)]
        lines += [f"| `{r['preset']}` | {r['sample_rate']} | " + " | ".join(_nn_cell(row, key) for row in r["nn"])
                  + " |" for r in results]
    header = [f"{rate / 1000:g} kHz, {buffer}" for rate in NEUTONE_RATES for buffer in NEUTONE_BUFFERS]
    rate, buffer = NEUTONE_CHECK
    lines += ["", "Neutone plugin: what it reports at each DAW rate and buffer, ms (samples at the DAW rate); the "
              f"export's delay checks on the pass-through double (buffer {buffer} at the model's rate and at "
              f"{rate / 1000:g} kHz; samples at the DAW rate, within the measurement's resolution)", "",
              "| preset | model rate | " + " | ".join(header) + " | checks |",
              "|---|---:|" + "---:|" * len(header) + "---|"]
    for r in results:
        checks = r["neutone_checks"]
        cells = [f"{row['ms']:.1f} ({row['total_samples']})" for row in r["neutone"]]
        verdict = "; ".join(_neutone_verdict(check) for check in checks.get("double", []))
        verdict = verdict if checks.get("double_passed") else f"FAIL: {verdict}"
        cells = cells + [verdict] if cells else [checks["note"]]
        lines.append(f"| `{r['preset']}` | {r['sample_rate']} | " + " | ".join(cells) + " |")
    lines += ["", "Declared delays (samples, read from each preset's nn~ export) and the host's measurements on a "
              "pass-through double with the preset's front end", "",
              "| preset | n_fft / hop | declared forward / encode / decode | verify measures forward | "
              f"total lag rendered at {RENDERED.label}, worker thread: measured / table |",
              "|---|---|---|---|---|"]
    for r in results:
        d, m = r["declared"], r["measured"]
        methods = " / ".join(str(d.get(name)) for name in ("forward", "encode", "decode"))
        extra = ", ".join(f"{name} {delay}" for name, delay in d.items() if name not in ("forward", "encode", "decode"))
        verdict = f"{m['measured']} ({'PASS' if m['verify_passed'] else 'not passed'})"
        lines.append(f"| `{r['preset']}` | {r['n_fft']} / {r['hop']} | {methods}{'; ' + extra if extra else ''} | "
                     f"{verdict} | {m['rendered_lag']} / {m['rendered_expected']} |")
    lines += ["", "Settings assumed:", ""] + [f"- {text}" for text in ASSUMED]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", metavar="PRESET",
                        help="presets to measure (default: every preset in vschaos/configs)")
    args = parser.parse_args(argv)
    available = shipped_presets()
    unknown = [name for name in args.presets or [] if name not in available]
    if unknown:
        print(f"latency_table: --presets: unknown preset {unknown[0]!r} (presets: {', '.join(available)})",
              file=sys.stderr)
        return 2
    run = start_run(__file__)
    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for preset in args.presets or available:
            results.append(preset_result(preset, Path(folder)))
            print(f"{preset}: declared forward delay {results[-1]['declared']['forward']} samples", flush=True)
    problems = [f"{r['preset']}: declared {r['declared']['forward']}, verify {r['measured']['measured']}, rendered "
                f"{r['measured']['rendered_lag']} (table {r['measured']['rendered_expected']})" for r in results
                if not (r["measured"]["verify_passed"] and r["measured"]["measured"] == r["declared"]["forward"]
                        and r["measured"]["rendered_lag"] == r["measured"]["rendered_expected"])]
    problems += [f"{r['preset']}: the Neutone export's delay checks: "
                 f"{'; '.join(check['summary'] for check in r['neutone_checks']['double'])}"
                 for r in results if r["neutone"] and not r["neutone_checks"]["double_passed"]]
    markdown = format_markdown(results)
    print(markdown)
    write_results("latency_table", {"assumed": ASSUMED, "presets": results, "problems": problems}, markdown, run=run)
    for problem in problems:
        print(f"latency_table: the host does not measure what the table says: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
