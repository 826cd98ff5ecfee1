"""Quality on real sampled notes, end to end: dataset -> train_model.py (dgt_mid) for a fixed CPU budget ->
metrics on the validation split and on pitches held out of training -> export -> streaming forward.

    python -m experiments.real_quality --soundfont FILE.sf2 [--programs ...] [--notes 36:94:2] [--cpu-minutes 30]
    python -m experiments.real_quality --dataset NOTES_DIR ...   # a make_sampled_dataset.py tree (notes.csv)

Held-out pitches: of the sorted distinct MIDI notes of the dataset, every third (indices 1, 4, 7, ...) is
removed from training entirely (no instrument has them); the others form the training tree, split into
train/validation files by the data module as usual. The budget is the CPU time of the training processes
(all threads, ``vschaos.training.callbacks.CPUTimeBudget``), default 30 CPU minutes = 15 minutes on 2
threads, so that the result does not depend on what else shares the machine. Training runs one epoch first
(kept as ``epoch1.ckpt``), then resumes under the remaining budget.

``--config dgt_pitch_prediction`` (pitch-conditioned, labels predicted from the spectrum) needs the
dataset's ``pitch``/``octave`` labels first: ``python extract_pitch.py NOTES_DIR``.

Per note: the decoder alone (posterior mean, labels completed by the model's predictors if it has any,
magnitude vs the input's, SC and LSD in dB), after offline phase
reconstruction (``pghi+gla``, re-analysed), and through the verified export's streaming ``forward`` in
``vschaos.host`` at B = 2048 (output aligned by the declared delay: SC vs the input, level error = output RMS
over input RMS in dB). Writes ``experiments/results/real_quality[_TAG].{json,md}``; the dataset, runs and
exports go to ``--work`` (default ``runs/real_quality_work``, ignored by git).
"""
import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from bench.common import start_run, write_results

# run as ``python -m`` from the repository root, this checkout's vschaos is the one imported, the same the
# training subprocesses get (PYTHONPATH=REPO) rather than an installed one
REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORK = REPO / "runs" / "real_quality_work"
#: the window at which audio is also re-analysed (dgt_mid's, hop a quarter of it), whatever the model's frames
REFERENCE_N_FFT = 2048


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ensure_dataset(args) -> Path:
    from vschaos.data.sampled import make_sampled_dataset, parse_note_range

    if args.dataset:
        root = Path(args.dataset)
        if not (root / "notes.csv").is_file():
            raise SystemExit(f"--dataset {root}: no notes.csv (make one with data_tools/make_sampled_dataset.py)")
        return root
    if not args.soundfont:
        raise SystemExit("give --dataset DIR or --soundfont FILE")
    root = Path(args.work) / "dataset"
    if (root / "notes.csv").is_file():
        print(f"reusing {root}")
        return root
    notes = parse_note_range(args.notes)
    rendered, silent = make_sampled_dataset(root, args.soundfont, programs=args.programs, notes=notes,
                                            seconds=args.seconds, force=True)
    print(f"rendered {len(rendered)} notes into {root} ({len(silent)} silent skipped)")
    return root


def split_by_pitch(root: Path, work: Path) -> Dict[str, object]:
    """Training tree (hard links) without the held-out pitches; returns rows and the split."""
    from vschaos.data.metadata import format_metadata, parse_metadata
    from vschaos.data.sampled import read_notes_csv
    from vschaos.io import atomic_write_text

    rows = read_notes_csv(root)
    pitches = sorted({int(r["midi"]) for r in rows})
    held = set(pitches[1::3])
    train_root = work / "train_data"
    if train_root.exists():
        shutil.rmtree(train_root)
    keep = [r for r in rows if int(r["midi"]) not in held]
    for row in keep:
        target = train_root / row["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(root / row["file"], target)
        except OSError:
            shutil.copy2(root / row["file"], target)
    keys = {r["file"] for r in keep}
    for task_dir in sorted((root / "metadata").iterdir()):
        if not (task_dir / "metadata.txt").is_file():
            continue
        entries = {k: v for k, v in parse_metadata((task_dir / "metadata.txt").read_text()).items() if k in keys}
        atomic_write_text(train_root / "metadata" / task_dir.name / "metadata.txt", format_metadata(entries))
        if (task_dir / "classes.txt").is_file():
            shutil.copy2(task_dir / "classes.txt", train_root / "metadata" / task_dir.name / "classes.txt")
        if (task_dir / "tracks").is_dir():  # time-varying labels (extract_pitch.py): metadata.txt points into it
            shutil.copytree(task_dir / "tracks", train_root / "metadata" / task_dir.name / "tracks")
    return {"rows": rows, "held_out_pitches": sorted(held), "train_pitches": [p for p in pitches if p not in held],
            "train_root": train_root}


def run_cli(argv: List[str], threads: int) -> Dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start_cpu, start = children_cpu(), time.perf_counter()
    result = subprocess.run([sys.executable, str(REPO / "train_model.py")] + argv, env=env, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        print(result.stdout[-4000:])
        raise SystemExit(f"train_model.py failed ({result.returncode}): {' '.join(argv)}")
    return {"cpu_seconds": children_cpu() - start_cpu, "wall_seconds": time.perf_counter() - start}


def train(args, train_root: Path, work: Path) -> Dict[str, object]:
    rundir = work / "runs"
    run_dir = rundir / args.tag
    if run_dir.exists():
        shutil.rmtree(run_dir)
    base = [f"name={args.tag}", f"rundir={rundir}", f"data.dataset.root={train_root}", f"threads={args.threads}",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "callbacks.progress=null",
            f"seed={args.seed}"] + list(args.set)
    first = run_cli(["--config-name", args.config] + base + ["trainer.max_epochs=1"], args.threads)
    version_dir = run_dir / "version_0"
    shutil.copy2(version_dir / "checkpoints" / "last.ckpt", version_dir / "checkpoints" / "epoch1.ckpt")
    remaining = max(args.cpu_minutes * 60.0 - first["cpu_seconds"], 1.0)
    second = run_cli(["resume", str(version_dir), f"trainer.max_epochs={args.max_epochs}", f"threads={args.threads}",
                      "callbacks.budget._target_=vschaos.training.callbacks.CPUTimeBudget",
                      f"callbacks.budget.seconds={remaining:.1f}"], args.threads)
    last = torch.load(version_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    steps, epochs = int(last["global_step"]), int(last["epoch"]) + 1
    cpu = first["cpu_seconds"] + second["cpu_seconds"]
    wall = first["wall_seconds"] + second["wall_seconds"]
    return {"version_dir": version_dir, "steps": steps, "epochs": epochs, "cpu_seconds": cpu, "wall_seconds": wall,
            "steps_per_cpu_second": steps / cpu, "steps_per_second_wall": steps / wall}


def train_once(args, train_root: Path, work: Path) -> Dict[str, object]:
    """:func:`train` unless ``work/trained.json`` records an earlier one (an interrupted experiment goes on from
    its trained models); the record, without the version folder, with the overrides it was trained with
    (``"overrides"``: ``args.set``). An earlier training with other overrides is refused (SystemExit naming
    both): its model would be reported as trained with these."""
    marker = work / "trained.json"
    if not marker.is_file():
        trained = train(args, train_root, work)
        record = {k: v for k, v in trained.items() if k != "version_dir"}
        marker.write_text(json.dumps({**record, "overrides": list(args.set)}))
    record = json.loads(marker.read_text())
    record.setdefault("overrides", [])  # a record from before they were kept: none were used then
    if record["overrides"] != list(args.set):
        raise SystemExit(f"{marker}: trained with overrides {record['overrides']}, asked for {list(args.set)}: "
                         "give this experiment another --work")
    return record


def level_db(output: np.ndarray, reference: np.ndarray) -> float:
    return 20.0 * math.log10((np.sqrt(np.mean(output ** 2)) + 1e-12) / (np.sqrt(np.mean(reference ** 2)) + 1e-12))


@torch.no_grad()
def evaluate_notes(vae, keys: Sequence[str], root: Path, loaded_export, buffer_size: int) -> List[Dict[str, float]]:
    from vschaos.data.audio import load_audio
    from vschaos.dsp import functional as F
    from vschaos.dsp.transforms import SpectralTransform
    from vschaos.host.rendering import render_array

    transform = vae.transform
    # audio SCs are also read at dgt_mid's resolution, so that models of other frame sizes compare (dgt_live);
    # a model on those very frames reuses its own analyses
    reference = SpectralTransform(int(transform.sample_rate), REFERENCE_N_FFT, REFERENCE_N_FFT // 4)
    own_frames = reference.cache_key() == transform.cache_key()

    def at_reference(magnitude: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return magnitude if own_frames else reference.magnitude(audio[None])[0]
    out = []
    for key in keys:
        audio = load_audio(root / key, transform.sample_rate)
        mag = transform.magnitude(audio[None])[0]
        ref_mag = at_reference(mag, audio)
        f0 = vae.audio_f0(audio[None])  # a model that reads its f0 from a longer window than its frames (dgt_live)
        # posterior mean through the whole model: a preset with predictors completes its labels here, as in forward
        estimate = transform.from_features(vae(transform.to_features(mag), {}, sample=False,
                                               f0_hz=None if f0 is None else f0[0])[0])
        row = {"file": key, "sc": float(F.spectral_convergence(mag, estimate)),
               "lsd": float(F.log_spectral_distance(mag, estimate))}
        audio_out = transform.reconstruct(estimate, audio.shape[-1], method="pghi+gla")
        mag_out = transform.magnitude(audio_out[None])[0]
        row["offline_sc"] = float(F.spectral_convergence(mag, mag_out))
        row["offline_lsd"] = float(F.log_spectral_distance(mag, mag_out))
        row["ref_offline_sc"] = float(F.spectral_convergence(ref_mag, at_reference(mag_out, audio_out)))
        if loaded_export is not None:
            loaded_export.module.reset()
            # label inlets (conditioned presets) at -1 = "unknown": the model's own prediction (a host fills
            # inlets it is not given with 0, which is a class)
            labels = loaded_export.description.method("forward").in_channels - 1
            inlets = np.concatenate([audio.numpy()[None], -np.ones((labels, audio.shape[-1]), dtype=np.float32)])
            streamed = render_array(loaded_export, "forward", inlets, buffer_size=buffer_size,
                                    compensate_delay=True, sample_rate=transform.sample_rate).output[0]
            streamed_audio = torch.from_numpy(np.ascontiguousarray(streamed))
            mag_stream = transform.magnitude(streamed_audio[None])[0]
            row["stream_sc"] = float(F.spectral_convergence(mag, mag_stream))
            row["ref_stream_sc"] = float(F.spectral_convergence(ref_mag, at_reference(mag_stream, streamed_audio)))
            row["stream_level_db"] = level_db(streamed, audio.numpy())
        out.append(row)
    return out


def summarise(rows: List[Dict[str, float]], instrument_of: Dict[str, str]) -> Dict[str, Dict[str, float]]:
    groups: Dict[str, List[Dict[str, float]]] = {"all": rows}
    for row in rows:
        groups.setdefault(instrument_of[row["file"]], []).append(row)
    summary = {}
    for name, members in groups.items():
        entry = {"notes": len(members)}
        for metric in ("sc", "lsd", "offline_sc", "offline_lsd", "stream_sc", "stream_level_db", "ref_offline_sc",
                       "ref_stream_sc"):
            values = [m[metric] for m in members if metric in m]
            if values:
                entry[metric] = float(np.mean(values))
                if metric == "stream_level_db":
                    entry["stream_level_db_median"] = float(np.median(values))
                    entry["stream_level_db_worst"] = float(max(values, key=abs))
        summary[name] = entry
    return summary


def spread(keys: List[str], n: int) -> List[str]:
    if len(keys) <= n:
        return keys
    picks = np.linspace(0, len(keys) - 1, n).round().astype(int)
    return [keys[i] for i in sorted(set(picks.tolist()))]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="a make_sampled_dataset.py tree (with notes.csv)")
    parser.add_argument("--soundfont", help="render the dataset from this SoundFont (into WORK/dataset)")
    parser.add_argument("--programs", type=int, nargs="+", default=[0, 11, 19, 24, 40, 56, 71, 73])
    parser.add_argument("--notes", default="36:94:2", help="MIDI notes to render (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--work", default=str(DEFAULT_WORK), help="working folder (dataset, runs, exports)")
    parser.add_argument("--config", default="dgt_mid")
    parser.add_argument("--set", nargs="*", default=[], help="extra train_model.py overrides (key=value)")
    parser.add_argument("--tag", default="dgt_mid", help="run name and results suffix")
    parser.add_argument("--cpu-minutes", type=float, default=30.0,
                        help="training budget in CPU minutes of the training processes (default 30 = 15 min x 2 "
                             "threads)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-eval-notes", type=int, default=24, help="notes evaluated per split (spread evenly)")
    parser.add_argument("--buffer-size", type=int, default=2048)
    parser.add_argument("--no-export", action="store_true", help="skip export, verify and streaming")
    parser.add_argument("--skip-train", action="store_true", help="evaluate the run trained by an earlier call")
    args = parser.parse_args(argv)
    started = start_run(__file__)
    torch.set_num_threads(args.threads)

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from vschaos.export.export import ExportVerificationError, export_model
    from vschaos.data.sampled import read_notes_csv
    from vschaos.host.model import load_model
    from vschaos.io import atomic_write_text
    from vschaos.training.run import open_run

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    root = ensure_dataset(args)
    training_file = work / args.tag / "training.json"
    if args.skip_train:  # evaluate the run a previous call trained (same --work and --tag)
        split = {**json.loads((work / args.tag / "split.json").read_text()), "rows": read_notes_csv(root)}
        split["train_root"] = Path(split["train_root"])
        training = json.loads(training_file.read_text())
        training["version_dir"] = Path(training["version_dir"])
    else:
        split = split_by_pitch(root, work / args.tag)
        atomic_write_text(work / args.tag / "split.json", json.dumps(
            {k: (str(v) if k == "train_root" else v) for k, v in split.items() if k != "rows"}))
        training = train(args, split["train_root"], work / args.tag)
        atomic_write_text(training_file, json.dumps({k: str(v) if k == "version_dir" else v
                                                     for k, v in training.items()}))
    version_dir = training["version_dir"]
    instrument_of = {r["file"]: r["instrument"] for r in split["rows"]}
    held_keys = spread(sorted(r["file"] for r in split["rows"] if r["midi"] in split["held_out_pitches"]),
                       args.max_eval_notes)

    results: Dict[str, object] = {"dataset": str(root), "tag": args.tag, "overrides": list(args.set),
                                  "held_out_pitches": split["held_out_pitches"],
                                  "training": {k: v for k, v in training.items() if k != "version_dir"},
                                  "checkpoints": {}}
    for name in ("epoch1", "best", "last"):
        run = open_run(version_dir, checkpoint=name)
        entry: Dict[str, object] = {}
        loaded = None
        if not args.no_export:
            path = work / args.tag / "exports" / f"{args.tag}_{name}.ts"
            try:
                _, report = export_model(run.vae, path)
                entry["verify"] = "pass"
                loaded = load_model(str(path))
            except ExportVerificationError as error:
                entry["verify"] = f"FAIL: {str(error).splitlines()[0][:200]}"
        if name == "best":
            dataset = OmegaConf.to_container(run.cfg.data.dataset, resolve=True)
            dataset["tasks"] = []  # the split only: no labels needed
            dm = instantiate(run.cfg.data, transform=run.vae.transform, dataset=dataset)
            files = dm.files  # reads the index, which also draws the train/validation split
            val_keys = spread(sorted(files[i].key for i in dm.val_files), args.max_eval_notes)
            for split_name, keys, where in (("validation", val_keys, split["train_root"]),
                                            ("held_out", held_keys, root)):
                rows = evaluate_notes(run.vae, keys, where, loaded, args.buffer_size)
                entry[split_name] = {"summary": summarise(rows, instrument_of), "notes": rows}
        results["checkpoints"][name] = entry
        print(name, json.dumps({k: v for k, v in entry.items() if k in ("verify",)}))

    markdown = format_markdown(results)
    print(markdown)
    out = write_results(f"real_quality_{args.tag}", results, markdown, run=started)
    print(f"wrote {out}/real_quality_{args.tag}.md")
    return 0


def format_markdown(results: Dict[str, object]) -> str:
    training = results["training"]
    lines = [f"real_quality: {results['tag']}", "",
             f"dataset `{results['dataset']}`, overrides `{' '.join(results['overrides']) or '-'}`; held-out pitches "
             f"(MIDI) {results['held_out_pitches']}", "",
             f"training: {training['steps']} steps, {training['epochs']} epochs, {training['cpu_seconds']:.0f} CPU s "
             f"({training['wall_seconds']:.0f} s wall): {training['steps_per_cpu_second']:.2f} steps per CPU s, "
             f"{training['steps_per_second_wall']:.2f} steps/s wall", "",
             "export verification: " + ", ".join(f"{name} {entry.get('verify', 'not run')}"
                                                 for name, entry in results["checkpoints"].items()), "",
             "best checkpoint; means over notes (level error: mean / median / worst):", "",
             "| split | instrument | notes | SC | LSD dB | offline SC | offline LSD dB | stream SC | stream level dB |",
             "|---|---|---|---|---|---|---|---|---|"]
    best = results["checkpoints"]["best"]
    for split_name in ("validation", "held_out"):
        summary = best[split_name]["summary"]
        for name in ["all"] + sorted(k for k in summary if k != "all"):
            s = summary[name]
            stream = (f"{s['stream_sc']:.3f} | {s['stream_level_db']:+.2f} / {s['stream_level_db_median']:+.2f} / "
                      f"{s['stream_level_db_worst']:+.2f}" if "stream_sc" in s else "- | -")
            label = f"**{name}**" if name == "all" else name
            lines.append(f"| {split_name} | {label} | {s['notes']} | {s['sc']:.3f} | {s['lsd']:.1f} | "
                         f"{s['offline_sc']:.3f} | {s['offline_lsd']:.1f} | {stream} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
