"""Playing a model trained on real material: ordered and named latents, and the prior that plays with no input.

    python -m experiments.latent_play [--materials phrases_room drums speech] [--cpu-minutes 6] [--minutes 10]

For each material (``experiments.materials``: melodies of sampled instruments in the synth's room, the GM drum kit,
one speaker's diphone speech; about two minutes each, a musician's few minutes), what a user runs, end to end:
``train_model.py`` (``dgt_mid``, one thread, ``--cpu-minutes`` of CPU), ``train_model.py prior RUN``
(``val_fraction=0.2``: a fifth of the files held out), ``script.py RUN`` (export with ``prior`` and ``generate``,
verified by the host). Then, with the exported file as nn~ loads it (one thread):

* **Ordered latents**: each component's share of the variance and the cumulative share; how many components
  ``--fidelity 0.95`` keeps.
* **Named latents confirmed**: each named component is swept through the export's streaming ``decode`` (RTPGHI
  phase, overlap-add), constant latents held 1 s per point, the audio re-analysed (the run's own transform,
  :func:`~vschaos.export.latent_names.descriptors`, median over the frames after the settling time) and the change
  read with :func:`~vschaos.export.latent_names.sweep_changes`. Confirmed: the same sign as the name states and a
  size within ``CONFIRM_RATIO`` of it (or within a quarter of the descriptor's audible step, ``UNITS``).
* **Prior**: negative log-likelihood per frame of the held-out files' latent sequences, the prior's and an
  i.i.d. diagonal Gaussian's fitted to the training files' latents (nats per frame; the margin is the difference).
* **Generated vs training descriptors**: frame descriptors (loudness dB; centroid and f0 in semitones; flatness
  dB; the colour ones over frames within ``GATE_DB`` of the training set's loudest) of the training files split
  in two halves A and B (a seeded random half of the files each, so that neither half holds whole instruments or
  kits the other lacks by construction), and of ``generate`` (temperature 1, seed 0) for as long as one half.
  Distance ``D(X, Y)``: the mean over the four descriptors of the 1-D Wasserstein distance divided by the training
  set's inter-quartile range. Reported both ways: D(generated, A) against D(B, A), and D(generated, B) against
  D(A, B) (the target: generated no farther from a half than the other half is), and the model's own floor:
  D(forward(B), A), half B through the export's ``forward`` (what the VAE makes of real frames).
* **Long stream**: ``--minutes`` of ``generate`` at model buffers 2048, 512 and 8192 (multiples of the hop: nn~ buffers smaller host blocks) (temperature 1, one seed): the
  SHA-256 of the streams (bit-identical?), non-finite samples, the longest silence (50 ms blocks below
  ``SILENCE_DBFS`` RMS) beside the training files' longest.
* **Cost**: median time of one ``generate`` call against one ``decode`` call at B = 2048 (interleaved, same run),
  idle and beside one competing CPU-bound process; the export's size against its weights' bytes.

Writes ``experiments/results/latent_play.{json,md}``; renders, runs and exports go to ``--work`` (default
``runs/latent_play_work``, ignored by git; reused when present, ``--fresh`` starts over).
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from bench.common import competing_process, interleaved_medians, start_run, write_results
from experiments.materials import render
from experiments.real_quality import REPO, children_cpu, train

DEFAULT_WORK = REPO / "runs" / "latent_play_work"
CONFIRM_RATIO = 0.5      # re-analysed change within +-50% of the stated one
GATE_DB = 50.0           # colour descriptors over frames within this of the training set's loudest (99th pct)
SILENCE_DBFS = -60.0
BLOCK_SECONDS = 0.05
HOLD_SECONDS, SETTLE_SECONDS = 1.0, 0.3
DESCRIPTOR_NAMES = ("loudness", "centroid", "flatness", "f0")


def run_tool(script: str, argv: List[str], threads: int) -> Dict[str, object]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start_cpu, start = children_cpu(), time.perf_counter()
    result = subprocess.run([sys.executable, str(REPO / script)] + argv, env=env, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        print(result.stdout[-4000:])
        raise SystemExit(f"{script} failed ({result.returncode}): {' '.join(argv)}")
    return {"cpu_seconds": children_cpu() - start_cpu, "wall_seconds": time.perf_counter() - start,
            "output": result.stdout}


def prepare(kind: str, work: Path, args) -> Dict[str, object]:
    """Render, train, fit the prior, export (each step skipped when its result exists)."""
    root = render(kind, work / kind / "material")
    version_dir = work / kind / "runs" / kind / "version_0"
    info: Dict[str, object] = {"material": str(root), "files": len(list((root / "data").glob("*.wav")))}
    trained_file = work / kind / "trained.json"  # written once the budget is spent: an interrupted run trains again
    if not trained_file.is_file():
        options = SimpleNamespace(tag=kind, config="dgt_mid", threads=1, seed=0, set=list(args.set),
                                  cpu_minutes=args.cpu_minutes,
                                  max_epochs=100000)
        trained = train(options, root, work / kind)
        trained_file.write_text(json.dumps({k: v for k, v in trained.items() if k != "version_dir"}))
    info["training"] = json.loads(trained_file.read_text())
    if not (version_dir / "prior" / "prior.pt").is_file():
        fitted = run_tool("train_model.py", ["prior", str(version_dir), "val_fraction=0.2",
                                             f"max_epochs={args.prior_epochs}"], 1)
        info["prior_fit"] = {"cpu_seconds": fitted["cpu_seconds"], "report": fitted["output"].strip().splitlines()[-1]}
    export = work / kind / "exports" / f"{kind}.ts"
    if not export.is_file():
        exported = run_tool("script.py", [str(version_dir), "-o", str(export), "--threads", "1"], 1)
        info["export_seconds"] = exported["wall_seconds"]
    info["version_dir"], info["export"] = version_dir, export
    return info


def _magnitude_descriptors(transform, audio: torch.Tensor) -> Dict[str, np.ndarray]:
    from vschaos.export.latent_names import descriptors

    magnitude = transform.magnitude(audio.float()[None])[0]
    values = descriptors(magnitude, int(transform.sample_rate), int(transform.n_fft))
    return {name: value.numpy() for name, value in values.items()}


def _stream(method, inlets: torch.Tensor, step: int) -> torch.Tensor:
    return torch.cat([method(inlets[..., i:i + step]) for i in range(0, inlets.shape[-1], step)], dim=-1)


@torch.no_grad()
def confirm_names(model, axes, transform) -> List[Dict[str, object]]:
    """Re-analyse each named component's sweep through the export's ``decode`` (module docstring)."""
    from vschaos.export.latent_names import SWEEP_POINTS, SWEEP_STD, UNITS, sweep_changes

    hop, rate = int(transform.hop), int(transform.sample_rate)
    inlets = int(model.decode_params[0])
    frames = int(round(HOLD_SECONDS * rate / hop))
    skip = int(round(SETTLE_SECONDS * rate)) + int(transform.n_fft)
    t = torch.linspace(-SWEEP_STD, SWEEP_STD, SWEEP_POINTS, dtype=torch.float64)
    rows = []
    for effect in axes.effects:
        if not effect.descriptor:
            continue
        values: Dict[str, List[float]] = {name: [] for name in DESCRIPTOR_NAMES}
        for position in t.tolist():
            x = torch.zeros(1, inlets, frames)
            x[0, effect.index] = position * float(axes.scales[effect.index])
            model.reset()
            audio = _stream(model.decode, x, 2048 // hop)[0, 0]
            described = _magnitude_descriptors(transform, audio[skip:])
            trim = slice(2, -2)  # frames touching the cut ends see silence in their window
            for name in DESCRIPTOR_NAMES:
                values[name].append(float(np.median(described[name][trim])))
        changes, _, _ = sweep_changes(t, {name: torch.tensor(v, dtype=torch.float64) for name, v in values.items()})
        stated, measured = effect.changes[effect.descriptor], changes[effect.descriptor]
        close = abs(measured - stated) <= max(CONFIRM_RATIO * abs(stated), 0.25 * UNITS[effect.descriptor])
        rows.append({"index": effect.index, "name": effect.name, "descriptor": effect.descriptor,
                     "stated": stated, "measured": measured, "share": effect.share,
                     "confirmed": bool(close and math.copysign(1, measured) == math.copysign(1, stated))})
    return rows


def _wasserstein(x: np.ndarray, y: np.ndarray) -> float:
    q = (np.arange(1000) + 0.5) / 1000
    return float(np.mean(np.abs(np.quantile(x, q) - np.quantile(y, q))))


def frame_descriptors(transform, audios: Sequence[torch.Tensor], gate: Optional[float] = None):
    parts = [_magnitude_descriptors(transform, audio) for audio in audios]
    values = {name: np.concatenate([p[name] for p in parts]) for name in DESCRIPTOR_NAMES}
    for name in ("centroid", "f0"):
        values[name] = 12.0 * np.log2(np.maximum(values[name], 1e-3) / 440.0)
    if gate is None:
        gate = float(np.percentile(values["loudness"], 99)) - GATE_DB
    heard = values["loudness"] > gate
    return {name: (v if name == "loudness" else v[heard]) for name, v in values.items()}, gate


def distance(x: Dict[str, np.ndarray], y: Dict[str, np.ndarray], scale: Dict[str, float]) -> Dict[str, float]:
    per = {name: _wasserstein(x[name], y[name]) / scale[name] for name in DESCRIPTOR_NAMES
           if len(x[name]) and len(y[name])}
    return {**per, "mean": float(np.mean(list(per.values())))}


def longest_silence(audio: np.ndarray, rate: int) -> float:
    block = int(BLOCK_SECONDS * rate)
    n = len(audio) // block
    rms = np.sqrt(np.mean(audio[:n * block].reshape(n, block).astype(np.float64) ** 2, axis=1) + 1e-30)
    silent = 20 * np.log10(rms) < SILENCE_DBFS
    longest = run = 0
    for value in silent:
        run = run + 1 if value else 0
        longest = max(longest, run)
    return longest * BLOCK_SECONDS


@torch.no_grad()
def long_stream(model, samples: int, rate: int, buffer: int, seed: int = 0) -> Dict[str, object]:
    model.reset()
    model.set_seed(seed)
    x = torch.ones(1, 1, buffer)
    digest, non_finite, parts = hashlib.sha256(), 0, []
    start = time.perf_counter()
    for _ in range(samples // buffer):
        y = model.generate(x)
        digest.update(y.numpy().tobytes())
        non_finite += int((~torch.isfinite(y)).sum())
        parts.append(y[0, 0].numpy().copy())
    audio = np.concatenate(parts)
    return {"buffer": buffer, "sha256": digest.hexdigest(), "non_finite": non_finite,
            "longest_silence_s": longest_silence(np.nan_to_num(audio), rate), "seconds": len(audio) / rate,
            "wall_seconds": time.perf_counter() - start, "peak": float(np.abs(np.nan_to_num(audio)).max())}


def call_cost(model, buffer: int = 2048, repeats: int = 200) -> Dict[str, float]:
    inlets = int(model.decode_params[0])
    model.reset()
    latents = model.prior(torch.ones(1, 1, buffer))
    temperature = torch.ones(1, 1, buffer)
    with torch.no_grad():
        timed = interleaved_medians({"decode": lambda: model.decode(latents[:, :inlets]),
                                     "generate": lambda: model.generate(temperature)}, repeats)
    return {"decode_ms": 1e3 * timed["decode"]["seconds"], "generate_ms": 1e3 * timed["generate"]["seconds"],
            "ratio": timed["generate"]["seconds"] / timed["decode"]["seconds"]}


def measure(kind: str, info: Dict[str, object], args) -> Dict[str, object]:
    from vschaos.data.audio import load_audio
    from vschaos.export.latent_axes import fidelity_components, run_latent_axes
    from vschaos.models.prior import iid_gaussian_nll
    from vschaos.training.prior import PRIOR_DEFAULTS, latent_sequences, load_prior, split_files
    from vschaos.training.run import open_run

    run = open_run(info["version_dir"])
    transform, rate, hop = run.vae.transform, int(run.vae.transform.sample_rate), int(run.vae.transform.hop)
    model = torch.jit.load(str(info["export"]))
    model.eval()
    axes, _ = run_latent_axes(run)
    result: Dict[str, object] = {k: v for k, v in info.items() if k not in ("version_dir", "export")}
    cumulative = axes.cumulative_shares()
    result["ordered"] = {"shares": [round(float(s), 4) for s in axes.shares[axes.pitch_dims:]],
                         "cumulative": [round(c, 4) for c in cumulative],
                         "kept_at_0.95": fidelity_components(axes, 0.95) - axes.pitch_dims,
                         "names": [effect.sentence() for effect in axes.effects]}
    print(kind, "ordered:", result["ordered"]["kept_at_0.95"], "components reach 95%")
    names = confirm_names(model, axes, transform)
    result["names"] = {"rows": names, "confirmed": sum(r["confirmed"] for r in names), "named": len(names)}
    print(kind, "names confirmed:", result["names"]["confirmed"], "/", len(names))

    sequences = latent_sequences(run)
    train_seq, held = split_files(sequences, 0.2, int(PRIOR_DEFAULTS["seed"]))
    prior = load_prior(run.version_dir)
    with torch.no_grad():
        prior_nll = float(torch.cat([prior.nll(z[None], ids[None])[0][0] for z, ids in held]).mean())
    iid = iid_gaussian_nll(torch.cat([z for z, _ in train_seq]), torch.cat([z for z, _ in held]))
    result["prior"] = {"held_out_files": len(held), "prior_nll": prior_nll, "iid_nll": iid, "margin": iid - prior_nll}
    print(kind, "prior:", result["prior"])

    files = sorted((Path(info["material"]) / "data").glob("*.wav"))
    audios = [load_audio(path, rate) for path in files]
    both, gate = frame_descriptors(transform, audios)
    order = torch.randperm(len(audios), generator=torch.Generator().manual_seed(0)).tolist()
    first, second = [audios[i] for i in order[:len(order) // 2]], [audios[i] for i in order[len(order) // 2:]]
    half_a, _ = frame_descriptors(transform, first, gate)
    half_b, _ = frame_descriptors(transform, second, gate)
    scale = {name: max(float(np.subtract(*np.percentile(both[name], [75, 25]))), 1e-3) for name in DESCRIPTOR_NAMES}
    half_seconds = sum(a.shape[-1] for a in first) / rate
    model.reset()
    model.set_seed(0)
    with torch.no_grad():
        generated = _stream(model.generate, torch.ones(1, 1, int(half_seconds * rate) // 2048 * 2048), 2048)[0, 0]
    gen, _ = frame_descriptors(transform, [generated], gate)
    with torch.no_grad():  # the model's own floor: half B through the export's forward, as a player would hear it
        delay = int(transform.n_fft) - hop  # forward's declared delay (n_fft - hop)
        rebuilt = []
        for audio in second:
            model.reset()
            usable = audio.shape[-1] // 2048 * 2048
            rebuilt.append(_stream(model.forward, audio[None, None, :usable], 2048)[0, 0, delay:])
    forward_b, _ = frame_descriptors(transform, rebuilt, gate)
    result["descriptors"] = {"forward_B_vs_A": distance(forward_b, half_a, scale),"generated_vs_A": distance(gen, half_a, scale), "B_vs_A": distance(half_b, half_a, scale),
                             "generated_vs_B": distance(gen, half_b, scale), "A_vs_B": distance(half_a, half_b, scale),
                             "scale_iqr": scale, "half_seconds": half_seconds}
    d = result["descriptors"]
    print(kind, "descriptors: gen-A %.3f vs B-A %.3f; gen-B %.3f vs A-B %.3f; forward(B)-A %.3f" % (
        d["generated_vs_A"]["mean"], d["B_vs_A"]["mean"], d["generated_vs_B"]["mean"], d["A_vs_B"]["mean"],
        d["forward_B_vs_A"]["mean"]))

    training_silence = max(longest_silence(a.numpy(), rate) for a in audios)
    samples = int(args.minutes * 60.0 * rate) // max(args.buffers) * max(args.buffers)  # the same length at each
    streams = [long_stream(model, samples, rate, buffer) for buffer in args.buffers]
    result["long_stream"] = {"streams": streams, "training_longest_silence_s": training_silence,
                             "bit_identical": len({s["sha256"] for s in streams}) == 1}
    print(kind, "long stream:", {k: v for k, v in result["long_stream"].items() if k != "streams"},
          [(s["buffer"], s["non_finite"], s["longest_silence_s"]) for s in streams])

    result["cost"] = {"idle": call_cost(model)}
    with competing_process():
        result["cost"]["busy"] = call_cost(model)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    size = os.path.getsize(info["export"])
    result["size"] = {"export_bytes": size, "weights_bytes": weights, "overhead_bytes": size - weights,
                      "within_weights_plus_1MiB": size <= weights + 2 ** 20}
    print(kind, "cost:", result["cost"], "size:", result["size"])
    return result


def format_markdown(results: Dict[str, object]) -> str:
    lines = ["latent_play: ordered and named latents, and the prior, on models of real material", "",
             f"dgt_mid{' with ' + ' '.join(results.get('training_overrides', [])) if results.get('training_overrides') else ''}"
             f", {results['cpu_minutes']:g} CPU-minutes of training on one thread per material; prior "
             f"{results['prior_epochs']} epochs; long streams of {results['minutes']:g} min.", "",
             "| material | 95% share in | names confirmed | prior NLL / iid (margin), nats/frame | D(gen,A) / D(B,A) "
             "| D(gen,B) / D(A,B) | long stream: non-finite, longest silence (training), identical at buffers "
             "| generate / decode cost at 2048, idle / busy | export - weights |",
             "|---|---|---|---|---|---|---|---|---|"]
    for kind, r in results["materials"].items():
        o, n, p, d, s, c, z = (r["ordered"], r["names"], r["prior"], r["descriptors"], r["long_stream"], r["cost"],
                               r["size"])
        lines.append(
            f"| {kind} | {o['kept_at_0.95']} of {len(o['shares'])} | {n['confirmed']}/{n['named']} | "
            f"{p['prior_nll']:.1f} / {p['iid_nll']:.1f} ({p['margin']:+.1f}) | "
            f"{d['generated_vs_A']['mean']:.3f} / {d['B_vs_A']['mean']:.3f} | "
            f"{d['generated_vs_B']['mean']:.3f} / {d['A_vs_B']['mean']:.3f} | "
            f"{sum(x['non_finite'] for x in s['streams'])}, {max(x['longest_silence_s'] for x in s['streams']):.2f} s "
            f"({s['training_longest_silence_s']:.2f} s), {'yes' if s['bit_identical'] else 'NO'} "
            f"({', '.join(str(x['buffer']) for x in s['streams'])}) | "
            f"{c['idle']['ratio']:.2f}x / {c['busy']['ratio']:.2f}x | {z['overhead_bytes'] / 2 ** 20:.2f} MiB |")
    lines += ["", "Names, as the export states them and as re-analysis of the streamed `decode` measures them:", "",
              "| material | latent | name | share | stated | re-analysed | confirmed |", "|---|---|---|---|---|---|---|"]
    for kind, r in results["materials"].items():
        for row in r["names"]["rows"]:
            lines.append(f"| {kind} | {row['index']} | {row['name']} | {100 * (row['share'] or 0):.1f}% | "
                         f"{row['stated']:+.2f} | {row['measured']:+.2f} | {'yes' if row['confirmed'] else 'no'} |")
    lines += ["", "Descriptor distances per descriptor (Wasserstein / training IQR):", "",
              "| material | pair | loudness | centroid | flatness | f0 |", "|---|---|---|---|---|---|"]
    for kind, r in results["materials"].items():
        for pair in ("generated_vs_A", "B_vs_A", "generated_vs_B", "A_vs_B", "forward_B_vs_A"):
            row = r["descriptors"][pair]
            lines.append(f"| {kind} | {pair} | " + " | ".join(f"{row.get(n, float('nan')):.3f}"
                                                            for n in DESCRIPTOR_NAMES) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--materials", nargs="+", default=["phrases_room", "drums", "speech"])
    parser.add_argument("--cpu-minutes", type=float, default=6.0)
    parser.add_argument("--prior-epochs", type=int, default=30)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long generate streams")
    parser.add_argument("--buffers", type=int, nargs="+", default=[2048, 512, 8192])
    parser.add_argument("--work", default=str(DEFAULT_WORK))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="training overrides (e.g. module.loss.beta=0.01; give another --work for them)")
    parser.add_argument("--fresh", action="store_true", help="delete the work folder's runs first")
    parser.add_argument("--name", default="latent_play")
    args = parser.parse_args(argv)
    started = start_run(__file__, competing="one competing process during the busy cost measurement only")
    torch.set_num_threads(1)
    work = Path(args.work)
    if args.fresh and work.exists():
        shutil.rmtree(work)
    results: Dict[str, object] = {"cpu_minutes": args.cpu_minutes, "prior_epochs": args.prior_epochs,
                                  "training_overrides": list(args.set),
                                  "minutes": args.minutes, "materials": {}}
    for kind in args.materials:
        results["materials"][kind] = measure(kind, prepare(kind, work, args), args)
    markdown = format_markdown(results)
    print(markdown)
    out = write_results(args.name, results, markdown, run=started)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
