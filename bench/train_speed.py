"""Training speed on this CPU: cache build (x real time), training throughput (frames/s, steps/s) for
dgt_low/mid/high at batch 256, and time to validation spectral convergence < 0.35 for the demo preset.

    .venv/bin/python bench/train_speed.py [--threads 2] [--steps 20] [--demo-budget 300] [--skip-demo]

Writes bench/results/train_speed.{json,md}. The configs are the real presets (hydra compose).
"""
import argparse
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from vschaos.cli.train import compose_config
from vschaos.data.audio import save_audio
from vschaos.data.demo import make_demo_dataset
from vschaos.training.fit import build_objects

from common import write_results



def synth_dataset(root: Path, seconds: float, sample_rate: int = 44100, n_files: int = 4) -> Path:
    """Harmonic tones with noise, ``n_files`` files of ``seconds / n_files`` s (no labels)."""
    rng = np.random.default_rng(0)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    n = int(seconds / n_files * sample_rate)
    t = np.arange(n) / sample_rate
    for index in range(n_files):
        f0 = 110.0 * 2 ** (index / 3)
        audio = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8)) * 0.2 + 0.01 * rng.standard_normal(n)
        save_audio(root / "data" / f"tone_{index}.wav", torch.from_numpy(audio.astype(np.float32)), sample_rate)
    return root


def throughput(preset: str, root: Path, steps: int) -> Dict[str, float]:
    cfg = compose_config(preset, [f"data.dataset.root={root}", "data.batch_size=256", "data.val_fraction=0.25"])
    vae, datamodule, module = build_objects(cfg)
    seconds_audio = sum(f.seconds for f in datamodule.files)
    start = time.perf_counter()
    datamodule.setup("fit")
    cache_seconds = time.perf_counter() - start
    mean, std = datamodule.normalisation()
    vae.transform.set_normalisation(mean, std)
    optimiser = module.configure_optimizers()
    batches = list(datamodule.train_dataloader())
    full = [b for b in batches if b["magnitude"].shape[0] == 256] or batches
    for batch in full[:2]:  # warm-up
        module._shared_step(batch, sample=True)["loss"].backward()
    start = time.perf_counter()
    done = frames = 0
    while done < steps:
        for batch in full:
            terms = module._shared_step(batch, sample=True)
            optimiser.zero_grad()
            terms["loss"].backward()
            optimiser.step()
            done += 1
            frames += batch["magnitude"].shape[0]
            if done >= steps:
                break
    elapsed = time.perf_counter() - start
    return {"preset": preset, "n_bins": vae.n_bins, "parameters": vae.parameter_counts()["total"],
            "cache_x_realtime": seconds_audio / cache_seconds, "steps_per_s": done / elapsed,
            "frames_per_s": frames / elapsed}


def time_to_sc(root: Path, budget: float, target: float = 0.35) -> Dict[str, float]:
    cfg = compose_config("demo", [f"data.dataset.root={root}"])
    vae, datamodule, module = build_objects(cfg)
    start = time.perf_counter()
    datamodule.setup("fit")
    mean, std = datamodule.normalisation()
    vae.transform.set_normalisation(mean, std)
    optimiser = module.configure_optimizers()
    val = list(datamodule.val_dataloader())
    epoch, sc, step = 0, 1.0, 0
    while time.perf_counter() - start < budget and epoch < int(cfg.trainer.max_epochs):
        for batch in datamodule.train_dataloader():
            terms = module._shared_step(batch, sample=True)
            optimiser.zero_grad()
            terms["loss"].backward()
            optimiser.step()
            step += 1
        epoch += 1
        num = den = 0.0
        with torch.no_grad():
            for batch in val:
                estimate = module.reconstruct_magnitude(batch["magnitude"])
                num += float(((batch["magnitude"] - estimate) ** 2).sum())
                den += float((batch["magnitude"] ** 2).sum())
        sc = (num / den) ** 0.5
        print(f"  demo epoch {epoch}: val SC {sc:.3f} at {time.perf_counter() - start:.0f} s", flush=True)
        if sc < target:
            break
    return {"epochs": epoch, "steps": step, "val_spectral_convergence": sc,
            "seconds": time.perf_counter() - start, "reached": sc < target}


def markdown(rows: List[Dict[str, float]], demo: Dict[str, float], threads: int) -> str:
    lines = [f"Training speed, CPU, {threads} threads, batch 256", "",
             "| preset | bins | parameters | cache build (x real time) | steps/s | frames/s |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['preset']} | {r['n_bins']} | {r['parameters']:,} | {r['cache_x_realtime']:.0f} | "
              f"{r['steps_per_s']:.2f} | {r['frames_per_s']:.0f} |" for r in rows]
    if demo:
        lines += ["", f"demo preset: val spectral convergence {demo['val_spectral_convergence']:.3f} after "
                      f"{demo['epochs']} epochs / {demo['steps']} steps in {demo['seconds']:.0f} s "
                      f"(target < 0.35: {'reached' if demo['reached'] else 'NOT reached'})"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of synthetic audio per preset")
    parser.add_argument("--demo-budget", type=float, default=300.0)
    parser.add_argument("--demo-minutes", type=float, default=8.0, help="demo dataset length (8 files/instrument)")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = synth_dataset(Path(tmp) / "synth", args.seconds)
        for preset in ("dgt_low", "dgt_mid", "dgt_high"):
            rows.append(throughput(preset, root, args.steps))
            print(rows[-1], flush=True)
        demo = {}
        if not args.skip_demo:
            demo = time_to_sc(make_demo_dataset(Path(tmp) / "demo", minutes=args.demo_minutes,
                                                  files_per_instrument=8), args.demo_budget)
    table = markdown(rows, demo, args.threads)
    print(table)
    write_results("train_speed", {"threads": args.threads, "presets": rows, "demo": demo}, table)


if __name__ == "__main__":
    main()
