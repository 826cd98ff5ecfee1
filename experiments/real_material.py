"""The real-material benchmark: what a model trained on each kind of sound a musician brings makes of held-out
files of that kind, offline and streamed live, at two dataset sizes.

    python -m experiments.real_material [--materials notes drums speech music] [--sizes small large]
                                        [--cpu-minutes 30] [--jobs 2] [--work runs/real_material_work]

Materials (rendered by ``experiments.materials`` from Debian packages; never the soundfont the presets were tuned
on alone, never FluidR3 nor hydrogen's kits):

* ``notes``: melodies of 8 GM instruments from TimGM6mb in fluidsynth's room. Held out: 8 more melodies of the
  same soundfont, and 8 of MuseScore General Lite, in its room and dry. (Pitches never trained on:
  ``experiments.real_quality``.)
* ``drums``: GM drum patterns of both soundfonts' kits, in the room, half each. Held out: 4 more patterns of each
  kit, and 8 through ``timidity`` and freepats' kit, a whole kit never heard.
* ``speech``: one speaker's sentences (festival, ``kal_diphone``); 8 sentences held out.
* ``music``: 5 s excerpts of produced music (wesnoth-1.16-music); 8 excerpts held out.

Sizes: ``small`` = 24 training files of 5 s (2 minutes: what a musician is likely to bring), ``large`` = 72
(6 minutes). Speech has one size: its 32 training sentences (about 2 minutes) are all there is.

Per material and size: the preset ``train_model.py --config-name auto`` picks
(``vschaos.pitch.recommend.recommend_dataset``), trained by ``train_model.py`` for ``--cpu-minutes`` of CPU on one
thread (``experiments.real_quality.train``), best checkpoint; ``script.py`` exports it, which verifies the export
(a refusal is recorded with its message). On each held-out set (``experiments.real_quality.evaluate_notes``): the
decoder's spectral convergence and log-spectral distance (posterior mean), the same after offline phase
reconstruction, and the export's streamed ``forward`` at B = 2048 with its defaults (SC; level error = output RMS
over input RMS, median and worst file); for a model on other frames than 2048/512 (``--set transform=dgt_live``),
both audio SCs again at 2048/512, so that its rows compare with the others. For ``dgt_harmonic`` models, the timbre transfer of
``experiments.live_input``. Trainings run ``--jobs`` at a time; everything is kept in ``--work`` and reused
(``trained.json`` marks a finished training). Results accumulate: a run updates the rows of the materials and sizes
it measured in ``experiments/results/<--name>.{json,md}`` (default ``real_material``) and keeps the others.
"""
import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Tuple


from bench.common import start_run, write_results
from experiments.latent_play import run_tool
from experiments.materials import (MORE_SENTENCES, MUSESCORE, SENTENCES, TIMGM, link_tree, render_drums,
                                   render_freepats_drums, render_music, render_phrases, render_speech)
from experiments.real_quality import REFERENCE_N_FFT, REPO, evaluate_notes, summarise, train_once

DEFAULT_WORK = REPO / "runs" / "real_material_work"
MATERIALS = ("notes", "drums", "speech", "music")
SIZES = {"small": 24, "large": 72}
HELD_OUT = 8
BUFFER = 2048
#: the issue's targets: decoder SC on held-out files (notes, the rest), streamed level (median, worst file)
SC_TARGET = {"notes": 0.30, "drums": 0.35, "speech": 0.35, "music": 0.35}
LEVEL_MEDIAN_DB, LEVEL_WORST_DB = 1.0, 3.0
REFERENCE_FRAMES = f"{REFERENCE_N_FFT}/{REFERENCE_N_FFT // 4}"  # the frames of dgt_mid and dgt_harmonic


def material_sets(material: str, work: Path, size: int) -> Tuple[List[Path], Dict[str, List[Path]]]:
    """The training files and the held-out sets ``{name: files}`` of ``material`` at ``size`` training files."""
    def wavs(root: Path) -> List[Path]:
        return sorted((root / "data").glob("*.wav"))
    most = max(SIZES.values()) + HELD_OUT  # renders are seeded: the first files are the same whatever the count
    if material == "notes":
        same = wavs(render_phrases(work / "notes_timgm_room", TIMGM, files=most, room=True))
        return same[:size], {"same soundfont, room": same[-HELD_OUT:],
                             "other soundfont, room": wavs(render_phrases(work / "notes_musescore_room", MUSESCORE,
                                                                          files=HELD_OUT, room=True)),
                             "other soundfont, dry": wavs(render_phrases(work / "notes_musescore_dry", MUSESCORE,
                                                                         files=HELD_OUT, room=False))}
    if material == "drums":
        half = most // 2 + HELD_OUT // 2
        kits = [wavs(render_drums(work / f"drums_{name}_room", font, files=half, room=True))
                for name, font in (("timgm", TIMGM), ("musescore", MUSESCORE))]
        train_files = [path for pair in zip(*(kit[:size // 2] for kit in kits)) for path in pair]
        return train_files, {"same kits, room": [p for kit in kits for p in kit[-HELD_OUT // 2:]],
                             "unseen kit (freepats)": wavs(render_freepats_drums(work / "drums_freepats",
                                                                                 files=HELD_OUT))}
    if material == "speech":
        spoken = wavs(render_speech(work / "speech", sentences=SENTENCES + MORE_SENTENCES))
        return spoken[:-HELD_OUT], {"held-out sentences": spoken[-HELD_OUT:]}  # one size: all there is
    if material == "music":
        excerpts = wavs(render_music(work / "music", files=most))
        return excerpts[:size], {"held-out excerpts": excerpts[-HELD_OUT:]}
    raise SystemExit(f"--materials: unknown material {material!r}; one of {', '.join(MATERIALS)}")


def sizes_of(material: str, sizes: Sequence[str]) -> List[str]:
    return ["small"] if material == "speech" else list(sizes)


def prepare(material: str, size: str, work: Path) -> Dict[str, object]:
    """Render the material (a tree is rendered once: call this for one case at a time) and pick the preset."""
    from vschaos.pitch.recommend import recommend_dataset

    train_files, held_out = material_sets(material, work / "material", SIZES[size])
    case = work / f"{material}_{size}"
    picked = recommend_dataset(link_tree(case / "train", train_files))
    return {"material": material, "size": size, "case": case, "preset": picked.preset, "reason": picked.reason,
            "train_files": len(train_files), "train_seconds": sum(_seconds(p) for p in train_files),
            "held_out": held_out}


def train_and_export(case: Dict[str, object], args) -> Dict[str, object]:
    """Train (once: ``trained.json``) and export (once; a refusal is recorded) a prepared case."""
    work, preset = case["case"], case["preset"]
    options = SimpleNamespace(tag=preset, config=preset, threads=1, seed=0, set=list(args.set),
                              cpu_minutes=args.cpu_minutes, max_epochs=100000)
    training = train_once(options, work / "train", work)
    version_dir = work / "runs" / preset / "version_0"
    export = work / "exports" / f"{case['material']}_{case['size']}.ts"
    refusal = work / "exports" / "refused.txt"
    if not export.is_file() and not refusal.is_file():
        try:
            run_tool("script.py", [str(version_dir), "--checkpoint", "best", "-o", str(export), "--threads", "1"], 1)
        except SystemExit as error:
            refusal.parent.mkdir(parents=True, exist_ok=True)
            refusal.write_text(str(error))
    return {**case, "training": training, "version_dir": version_dir,
            "export": export if export.is_file() else None,
            "refused": refusal.read_text() if refusal.is_file() else None}


def _seconds(path: Path) -> float:
    import soundfile as sf
    return float(sf.info(str(path)).duration)


def measure(case: Dict[str, object], work: Path) -> Dict[str, object]:
    import torch
    from vschaos.host.model import load_model
    from vschaos.training.run import open_run

    torch.set_num_threads(1)
    vae = open_run(case["version_dir"], checkpoint="best").vae.eval()
    loaded = load_model(str(case["export"])) if case["export"] is not None else None
    sets = {}
    for name, files in case["held_out"].items():
        # absolute paths: a set may gather files of several trees
        rows = evaluate_notes(vae, [str(p.resolve()) for p in files], Path("/"), loaded, BUFFER)
        # the means, and the streamed level's median and worst file, over the set's files
        summary = summarise(rows, {row["file"]: "held out" for row in rows})["all"]
        sets[name] = {"files": summary.pop("notes"), **summary}
    result = {key: case[key] for key in ("material", "size", "preset", "reason", "train_files", "train_seconds",
                                         "training", "refused")}
    result["held_out"] = sets
    result["frames"] = f"{int(vae.transform.n_fft)}/{int(vae.transform.hop)}"
    if loaded is not None and case["preset"] == "dgt_harmonic":
        from experiments.live_input import timbre_transfer
        result["timbre_transfer"] = timbre_transfer(loaded, int(vae.transform.sample_rate), work / "timbre")
    return result


def format_markdown(rows: Dict[str, Dict[str, object]]) -> str:
    budgets = ", ".join(f"{m:g}" for m in sorted({row["cpu_minutes"] for row in rows.values()}))
    lines = [f"Each model: `train_model.py` for {budgets} CPU-minutes on one thread, best checkpoint.", "",
             "Held-out files: decoder SC and LSD (posterior mean), SC after offline phase reconstruction, and the "
             f"export's streamed `forward` (B = {BUFFER}, its defaults). Targets: decoder SC <= {SC_TARGET['notes']:.2f} "
             f"(notes), <= {SC_TARGET['drums']:.2f} (drums, speech, music); streamed level within "
             f"+-{LEVEL_MEDIAN_DB:g} dB (median), no file beyond +-{LEVEL_WORST_DB:g} dB.", "",
             "| material | size | preset (auto) | training audio | steps | held-out set | decoder SC | LSD (dB) | "
             "offline SC | stream SC | level median | level worst | export |", "|---" * 13 + "|"]
    timbre, other_frames = [], []
    for key in sorted(rows, key=lambda k: (MATERIALS.index(rows[k]["material"]), list(SIZES).index(rows[k]["size"]))):
        row = rows[key]
        export = "verified" if not row["refused"] else "refused: " + row["refused"].splitlines()[-1][:80]
        for name, s in row["held_out"].items():
            streamed = (f"{s['stream_sc']:.3f} | {s['stream_level_db_median']:+.2f} dB | "
                        f"{s['stream_level_db_worst']:+.2f} dB" if "stream_sc" in s else "- | - | -")
            preset = f"`{row['preset']}`" + "".join(f" `{o}`" for o in row.get("overrides", []))
            lines.append(f"| {row['material']} | {row['size']} | {preset} | {row['train_seconds']:.0f} s "
                         f"({row['train_files']} files) | {row['training']['steps']} | {name} ({s['files']}) | "
                         f"{s['sc']:.3f} | {s['lsd']:.2f} | {s['offline_sc']:.3f} | {streamed} | {export} |")
            if row.get("frames", REFERENCE_FRAMES) != REFERENCE_FRAMES and "ref_stream_sc" in s:
                other_frames.append(f"| {row['material']} | {row['size']} | {preset} | {row['frames']} | {name} | "
                                    f"{s['offline_sc']:.3f} / {s['ref_offline_sc']:.3f} | "
                                    f"{s['stream_sc']:.3f} / {s['ref_stream_sc']:.3f} |")
        for name, by_level in row.get("timbre_transfer", {}).items():
            m = by_level["follow"]
            timbre.append(f"| {row['material']} | {row['size']} | {name} | {100 * m['within_50_cents']:.1f}% | "
                          f"{100 * m['output_voiced']:.1f}% | {m['level_db']:+.2f} dB |")
    if other_frames:
        lines += ["", f"Models on other frames than {REFERENCE_FRAMES} (n_fft/hop): an SC read on coarser frames is "
                  f"not the same measure, so their output audio is also re-analysed at {REFERENCE_FRAMES}, the "
                  "resolution of every other row (own frames / 2048-point frames):", "",
                  "| material | size | preset | frames | held-out set | offline SC | stream SC |", "|---" * 7 + "|"]
        lines += other_frames
    if timbre:
        lines += ["", "Timbre transfer through `forward` (defaults; share of the input's voiced frames whose output "
                  "is voiced and within 50 cents, CREPE; target >= 90%, level error <= 3 dB):", "",
                  "| material | size | input | within 50 cents | output voiced | level error |", "|---" * 6 + "|"]
        lines += timbre
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--materials", nargs="+", default=list(MATERIALS), choices=MATERIALS)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--cpu-minutes", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=2, help="trainings at a time (one thread each)")
    parser.add_argument("--work", default=str(DEFAULT_WORK))
    parser.add_argument("--name", default="real_material", help="results file name in experiments/results")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="Hydra overrides for every training (a trial: give it its own --work and --name)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    started = start_run(__file__)
    work = Path(args.work)
    plan = [(material, size) for material in args.materials for size in sizes_of(material, args.sizes)]
    prepared = [prepare(material, size, work) for material, size in plan]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # the trainings are subprocesses of one thread each
        cases = list(pool.map(lambda case: train_and_export(case, args), prepared))
    # a row per material, size and overrides: a trial's rows stand beside the preset's
    measured = {" ".join([f"{case['material']}/{case['size']}"] + case["training"]["overrides"]):
                {**measure(case, work), "cpu_minutes": args.cpu_minutes, "overrides": case["training"]["overrides"]}
                for case in cases}
    # read last: another run may have written its rows meanwhile
    results = REPO / "experiments" / "results" / f"{args.name}.json"
    rows = json.loads(results.read_text())["data"]["rows"] if results.is_file() else {}
    rows.update(measured)
    markdown = format_markdown(rows)
    print(markdown)
    print(f"wrote {write_results(args.name, {'rows': rows}, markdown, run=started)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
