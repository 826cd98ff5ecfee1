"""Speed of the nn~ export: time per call of encode, decode (each phase mode) and forward.

A dgt_mid-sized model (preset ``dgt_mid``, random init: speed does not depend on the weights) is
exported (``vschaos.export.script_model``), saved and reloaded as nn~ does, then timed with the
host's bench (``vschaos.host.bench_model``) on one thread at B = 2048 (44.1 kHz), batch 1.
Reports the median, p99 and max milliseconds per call and 1/RTF (buffer duration / median time).

Usage: ``python -m bench.export_speed [--preset dgt_mid --buffer 2048 --seconds 2] [--busy]``.
Writes ``bench/results/export_speed[_busy].{json,md}`` (``--name`` another name). Targets: decode with pghi
<= 2.5 ms median, forward <= 4 ms.
"""
import argparse
import io
import tempfile
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import torch

from bench.common import RESULTS_DIR, busy_argument, competing_process, start_run, write_results
from vschaos.cli.train import compose_config
from vschaos.export import script_model
from vschaos.host import bench_model, load_model
from vschaos.training.run import build_model

CASES = [("encode", "pghi"), ("decode", "pghi"), ("decode", "random"), ("forward", "pghi"),
         ("forward", "random"), ("forward", "keep_input")]


def run(preset: str, buffer: int, seconds: float, batch: int, overrides: Optional[List[str]] = None
        ) -> Dict[str, object]:
    cfg = compose_config(preset, list(overrides or []))  # the training CLI's own composition
    torch.manual_seed(0)
    vae = build_model(cfg).eval()
    scripted = script_model(vae)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        data = io.BytesIO()
        torch.jit.save(scripted, data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{preset}.ts"
        path.write_bytes(data.getvalue())
        rows: List[Dict[str, object]] = []
        latency = ""
        for method, phase in CASES:
            model = load_model(str(path), sample_rate=int(cfg.transform.sample_rate))
            model.set_attribute("phase", [phase])
            report = bench_model(model, methods=[method], buffers=[buffer], threads=1, batch=batch,
                                 sample_rate=int(cfg.transform.sample_rate), seconds_per_case=seconds,
                                 max_calls=2000, min_calls=50)
            row = report.rows[0].to_dict() if hasattr(report.rows[0], "to_dict") else dict(vars(report.rows[0]))
            row["phase"] = phase
            rows.append(row)
            latency = report.latency
    settings = {"preset": preset, "overrides": list(overrides or []), "buffer": buffer, "batch": batch, "threads": 1,
                "sample_rate": int(cfg.transform.sample_rate), "n_fft": int(cfg.transform.n_fft),
                "hop": int(cfg.transform.hop), "torch": torch.__version__}
    return {"settings": settings, "rows": rows, "latency": latency}


def format_table(result: Dict[str, object]) -> str:
    lines = ["| method | phase | median ms | p99 ms | max ms | 1/RTF | calls |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        lines.append(f"| {row['method']} | {row['phase']} | {row['median_ms']:.3f} | {row['p99_ms']:.3f} | "
                     f"{row['max_ms']:.3f} | {row['inverse_rtf']:.1f} | {row['calls']} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dgt_mid")
    parser.add_argument("--buffer", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0, help="timing time per case")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. model.decoder.type=...")
    parser.add_argument("--name", help="results file name (default export_speed, or export_speed_busy)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    busy_argument(parser)
    args = parser.parse_args(argv)
    started = start_run(__file__, competing=args.busy)
    with competing_process(args.busy):
        result = run(args.preset, args.buffer, args.seconds, args.batch, args.set)
    s = result["settings"]
    md = (f"Export speed, {s['preset']} {' '.join(s['overrides'])} (n_fft {s['n_fft']}, hop {s['hop']}), B = {s['buffer']} at "
          f"{s['sample_rate']} Hz, batch {s['batch']}, 1 thread, torch {s['torch']}.\n\n"
          + format_table(result) + "\n\n```\n" + str(result["latency"]) + "\n```\n")
    name = args.name or ("export_speed_busy" if args.busy else "export_speed")
    write_results(name, result, md, args.out, run=started)
    print(md)
    return result


if __name__ == "__main__":
    main()
