"""Speed of the Neutone export, as the plugin runs it: the SDK's ``benchmark-speed`` 1/RTF per preset.

Issue 11's target: 1/RTF >= 100 at a 2048-sample DAW buffer, 48 kHz, 1 thread. Each preset's model
(random init: the cost does not depend on the weights) goes through the real export
(``export_neutone``: SDK validation, our equality and delay checks at one DAW buffer, then the SDK's
benchmarks in a child process, exactly what ``script.py --format neutone`` prints). Beside it, the
median time of one ``StreamingVAE.forward`` call at the buffer the plugin uses at 48 kHz / 2048
(the model's native size it picks), so that the plugin's share and the model's share can be told apart.

Usage: ``python bench/neutone_speed.py [--presets demo dgt_mid ...] [--busy] [--save-dir DIR] [--name NAME]``.
``--busy`` runs one competing CPU-bound process during the measurements (a musician's laptop is never
idle); ``--save-dir`` keeps the exported files. ``--compare A.nm B.nm ... [--rounds 5]`` exports nothing and
runs the SDK's benchmark on the given files in turn, round after round, and reports each file's median and
range: the way to compare two versions of the code (export with each, then compare the files) on a machine
whose speed drifts between runs. Writes ``bench/results/<name>.{json,md}``.
"""
import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import torch

from common import RESULTS_DIR, write_results
from vschaos.cli.train import compose_config
from vschaos.export.directions import LatentDirections
from vschaos.export.export import script_model
from vschaos.export.neutone import NeutoneTexts, export_neutone
from vschaos.export.neutone_checks import run_sdk_benchmarks
from vschaos.training.run import build_model

PRESETS = ["demo", "dgt_mid", "dgt_pitch_cond", "dgt_harmonic"]
DAW_RATE = 48000
DAW_BUFFER = 2048
TARGET = 100.0


def model_buffer(sample_rate: int, hop: int, daw_rate: int = DAW_RATE, daw_buffer: int = DAW_BUFFER) -> int:
    """The native buffer the plugin calls the model with: the first multiple of the hop at least as long as a
    DAW buffer resampled to the model's rate (the SDK's ``select_best_model_buffer_size`` on our sizes)."""
    resampled = -(-sample_rate * daw_buffer // daw_rate)
    return -(-resampled // hop) * hop


def forward_ms(vae, buffer: int, calls: int = 200) -> float:
    """Median milliseconds of one scripted ``StreamingVAE.forward`` call at ``buffer`` samples, 1 thread."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = script_model(vae)
    x = 0.1 * torch.randn(1, 1 + len(module.forward_tasks), buffer, generator=torch.Generator().manual_seed(0))
    x[:, 1:] = -1.0
    times: List[float] = []
    with torch.no_grad():
        for i in range(calls + 20):
            start = time.perf_counter()
            module.forward(x)
            if i >= 20:
                times.append(time.perf_counter() - start)
    times.sort()
    return 1e3 * times[len(times) // 2]


def run_preset(preset: str, folder: Path, repeat: int, n_iters: int) -> Dict[str, object]:
    cfg = compose_config(preset, [])
    torch.manual_seed(0)
    vae = build_model(cfg).eval()
    first = int(getattr(vae, "pitch_dims", 0))
    directions = LatentDirections.axes(int(vae.latent_dim), "benchmark", first=first)
    texts = NeutoneTexts(name=preset, short_description="benchmark", long_description="benchmark",
                         technical_description="benchmark", tags=["benchmark"])
    report = export_neutone(vae, folder / f"{preset}.nm", texts, directions, check_buffers=(DAW_BUFFER,),
                            bench_buffers=(512, DAW_BUFFER), bench_repeat=repeat, bench_iters=n_iters,
                            sdk_offline_check=False)
    sample_rate, hop = int(cfg.transform.sample_rate), int(cfg.transform.hop)
    buffer = model_buffer(sample_rate, hop)
    return {"preset": preset, "sample_rate": sample_rate, "n_fft": int(cfg.transform.n_fft), "hop": hop,
            "inverse_rtf_2048": report.benchmarks.inverse_rtf(DAW_RATE, DAW_BUFFER),
            "inverse_rtf_512": report.benchmarks.inverse_rtf(DAW_RATE, 512),
            "model_buffer": buffer, "forward_ms": forward_ms(vae, buffer)}


def compare_files(files: List[Path], rounds: int, repeat: int, n_iters: int) -> List[Dict[str, object]]:
    """SDK 1/RTF at 48 kHz / 2048 of each file, the files interleaved round after round: ``[{file, median,
    low, high}]``."""
    figures: Dict[Path, List[float]] = {path: [] for path in files}
    for _ in range(rounds):
        for path in files:
            result = run_sdk_benchmarks(path, buffers=(DAW_BUFFER,), repeat=repeat, n_iters=n_iters)
            figures[path].append(float(result.inverse_rtf(DAW_RATE, DAW_BUFFER)))
    rows = []
    for path, values in figures.items():
        values = sorted(values)
        rows.append({"file": str(path), "median": values[len(values) // 2], "low": values[0], "high": values[-1],
                     "rounds": len(values)})
    return rows


def format_table(rows: List[Dict[str, object]]) -> str:
    lines = ["| preset | rate / n_fft / hop | 1/RTF at 2048 | 1/RTF at 512 | forward at its buffer (ms) |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['sample_rate']} / {r['n_fft']} / {r['hop']} | {r['inverse_rtf_2048']:.1f} "
                     f"| {r['inverse_rtf_512']:.1f} | {r['forward_ms']:.2f} (B = {r['model_buffer']}) |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> List[Dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--busy", action="store_true", help="run one competing CPU-bound process meanwhile")
    parser.add_argument("--repeat", type=int, default=10, help="SDK benchmark repetitions (default %(default)s)")
    parser.add_argument("--iters", type=int, default=30, help="SDK benchmark calls per repetition (default %(default)s)")
    parser.add_argument("--name", default="neutone_speed", help="results file name (default %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--save-dir", type=Path, help="keep the exported .nm files in this folder")
    parser.add_argument("--compare", type=Path, nargs="+", help="benchmark these .nm files, interleaved")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --compare (default %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load = "one competing CPU-bound process" if args.busy else "idle"
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        if args.compare:
            rows = compare_files(args.compare, args.rounds, args.repeat, args.iters)
        elif args.save_dir is not None:
            args.save_dir.mkdir(parents=True, exist_ok=True)
            rows = [run_preset(preset, args.save_dir, args.repeat, args.iters) for preset in args.presets]
        else:
            with tempfile.TemporaryDirectory() as folder:
                rows = [run_preset(preset, Path(folder), args.repeat, args.iters) for preset in args.presets]
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    header = (f"# Neutone export speed ({load})\n\nSDK benchmark-speed, {DAW_RATE} Hz, stereo DAW, 1 thread; target "
              f"1/RTF >= {TARGET:g} at {DAW_BUFFER}. torch {torch.__version__}.\n\n")
    if args.compare:
        table = "\n".join(["| file | 1/RTF at 2048, median | range | rounds |", "|---|---:|---|---:|"]
                          + [f"| {r['file']} | {r['median']:.1f} | {r['low']:.1f}–{r['high']:.1f} | {r['rounds']} |"
                             for r in rows])
    else:
        table = format_table(rows)
    md = header + table + "\n"
    write_results(args.name, {"load": load, "target": TARGET, "rows": rows}, md, args.out)
    print(md)
    return rows


if __name__ == "__main__":
    main()
