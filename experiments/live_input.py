"""What a player hears from ``forward``: held-out recordings and foreign inputs through an export of real material.

    python -m experiments.live_input [--config dgt_harmonic] [--cpu-minutes 30] [--work runs/live_input_work]

One model, trained as a user trains it (``train_model.py``, one thread, ``--cpu-minutes`` of CPU, best checkpoint)
on 16 melodies of 8 sampled instruments in the synth's room (``experiments.materials``: TimGM6mb through
fluidsynth, reverb and chorus on; about 80 s), exported with ``script.py`` (verified by the host). Then, streamed
through the export's ``forward`` by ``vschaos.host`` at B = 2048 (output aligned by the declared delay):

* **Held-out recordings**: the 8 other melodies of the same instruments (never trained on), and 8 melodies of the
  same programs from another soundfont (MuseScore General Lite, in its room): spectral convergence of the streamed
  output against the input, and the level error (output RMS against input RMS, dB), median and worst file, with
  the export's ``level`` attribute (and ``voicing``, for a model with a pitch latent) at ``follow`` (the defaults:
  forward follows the input's level, and keeps at least its voicing in the partials) and at ``model`` (the
  decoder's own level and mix of partials and noise).
* **Timbre transfer**: inputs the model never heard, as a player feeds them: a bright band-limited sawtooth gliding
  150 -> 600 Hz, a sawtooth at 220 Hz with a 6 Hz vibrato of +-50 cents, one speaker's speech (festival
  ``kal_diphone``), an alto sax and a choir melody of the other soundfont, dry. CREPE tracks the f0 of input and
  output (``vschaos.pitch.tracker``); share of the input's voiced frames whose output is voiced and within 50
  cents of the input's f0 (the issue's target: >= 90 %), and the level error.
* **Cost**: one streamed ``forward`` call with the defaults against ``level`` and ``voicing`` at ``model``, idle and
  beside one competing CPU-bound process.

Writes ``experiments/results/<--name>.{json,md}`` (default ``live_input``); renders and runs go to ``--work``
(reused when present: ``trained.json`` marks a finished training).
"""
import argparse
import math
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from bench.common import competing_process, interleaved_medians, start_run, write_results
from experiments.latent_play import run_tool
from experiments.materials import MUSESCORE, link_tree, render_phrases, render_speech
from experiments.real_quality import REPO, level_db, train_once

DEFAULT_WORK = REPO / "runs" / "live_input_work"
TRAIN_FILES = 16            # of the 24 melodies; the other 8 are held out
BUFFER = 2048
CENTS = 50.0
LEVELS = ("follow", "model")
ALTO_SAX, CHOIR = 65, 52    # GM programs of the foreign melodies


def prepare(work: Path, args) -> Dict[str, object]:
    """Render, train (once: ``trained.json``), export (once)."""
    phrases = render_phrases(work / "phrases_room", room=True)
    train_root = link_tree(work / "train", sorted((phrases / "data").glob("*.wav"))[:TRAIN_FILES])
    options = SimpleNamespace(tag=args.config, config=args.config, threads=1, seed=0, set=[],
                              cpu_minutes=args.cpu_minutes, max_epochs=100000)
    training = train_once(options, train_root, work)
    version_dir = work / "runs" / args.config / "version_0"
    export = work / "exports" / f"{args.config}.ts"
    if not export.is_file():
        run_tool("script.py", [str(version_dir), "--checkpoint", "best", "-o", str(export), "--threads", "1"], 1)
    return {"training": training, "export": export, "phrases": phrases}


def synth_inputs(rate: int, seconds: float = 4.0) -> Dict[str, np.ndarray]:
    """The synthesised foreign inputs: band-limited sawtooths (every harmonic below Nyquist), -12 dBFS peak."""
    t = np.arange(int(seconds * rate)) / rate

    def saw(f0: np.ndarray) -> np.ndarray:
        phase = 2 * np.pi * np.cumsum(f0) / rate
        out = np.zeros_like(phase)
        for k in range(1, int(rate / 2 / f0.min()) + 1):
            out += np.where(k * f0 < rate / 2, np.sin(k * phase) / k, 0.0)
        return (0.25 * out / np.abs(out).max()).astype(np.float32)

    glide = 150.0 * 4.0 ** (t / seconds)                                  # 150 -> 600 Hz, two octaves
    vibrato = 220.0 * 2.0 ** (0.5 / 12 * np.sin(2 * np.pi * 6.0 * t))    # +-50 cents at 6 Hz
    return {"saw glide 150-600 Hz": saw(glide), "saw vibrato 220 Hz": saw(vibrato)}


def stream(loaded, audio: np.ndarray, level: str, rate: int) -> np.ndarray:
    from vschaos.host.rendering import render_array

    loaded.module.reset()
    # "follow": forward follows the input's level (and, with a pitch latent, its voicing); "model": neither
    attributes = {name: [level] for name in ("level", "voicing")
                  if name in {a.name for a in loaded.description.attributes}}
    return render_array(loaded, "forward", audio[None], buffer_size=BUFFER, compensate_delay=True, sample_rate=rate,
                        attributes=attributes).output[0]


def spectral_convergence(transform, reference: np.ndarray, estimate: np.ndarray) -> float:
    from vschaos.dsp import functional as F

    def mag(x: np.ndarray) -> torch.Tensor:
        return transform.magnitude(torch.from_numpy(np.ascontiguousarray(x))[None])[0]
    return float(F.spectral_convergence(mag(reference), mag(estimate)))


def held_out(loaded, transform, files: Sequence[Path], rate: int) -> Dict[str, Dict[str, object]]:
    from vschaos.data.audio import load_audio

    result = {}
    for level in LEVELS:
        rows = []
        for path in files:
            audio = load_audio(path, rate).numpy()
            out = stream(loaded, audio, level, rate)
            rows.append({"file": path.name, "sc": spectral_convergence(transform, audio, out),
                         "level_db": level_db(out, audio)})
        levels = np.array([r["level_db"] for r in rows])
        result[level] = {"files": rows, "sc_mean": float(np.mean([r["sc"] for r in rows])),
                         "level_median_db": float(np.median(levels)),
                         "level_worst_db": float(levels[np.argmax(np.abs(levels))])}
    return result


def pitch_following(audio: np.ndarray, out: np.ndarray, rate: int) -> Dict[str, float]:
    from vschaos.pitch.tracker import track_pitch

    source = track_pitch(torch.from_numpy(audio), rate)
    heard = track_pitch(torch.from_numpy(np.ascontiguousarray(out)), rate)
    n = min(len(source.f0_hz), len(heard.f0_hz))
    voiced = source.voiced[:n].numpy()
    f_in, f_out = source.f0_hz[:n].numpy(), heard.f0_hz[:n].numpy()
    with np.errstate(invalid="ignore"):
        cents = 1200.0 * np.abs(np.log2(f_out / f_in))
    followed = voiced & ~np.isnan(f_out) & (cents <= CENTS)
    out_voiced = voiced & ~np.isnan(f_out)
    return {"voiced_frames": int(voiced.sum()),
            "within_50_cents": float(followed.sum() / max(voiced.sum(), 1)),
            "output_voiced": float(out_voiced.sum() / max(voiced.sum(), 1)),
            "median_cents": float(np.nanmedian(np.where(out_voiced, cents, np.nan))) if out_voiced.any() else math.nan,
            "level_db": level_db(out, audio)}


def foreign_inputs(rate: int, work: Path) -> Dict[str, np.ndarray]:
    """The harmonic inputs a model of instruments never heard, ``{name: (time,) float32}``: the synth tones of
    :func:`synth_inputs`, one speaker's speech, an alto sax and a choir phrase of another soundfont (rendered
    into ``work`` once)."""
    from vschaos.data.audio import load_audio

    inputs = synth_inputs(rate)
    speech = sorted((render_speech(work / "speech") / "data").glob("*.wav"))[:4]
    inputs["speech (kal_diphone)"] = np.concatenate([load_audio(p, rate).numpy() for p in speech])
    foreign = render_phrases(work / "foreign_dry", MUSESCORE, files=2, programs=(ALTO_SAX, CHOIR), room=False)
    for path, name in zip(sorted((foreign / "data").glob("*.wav")), ("alto sax (other soundfont)",
                                                                     "choir (other soundfont)")):
        inputs[name] = load_audio(path, rate).numpy()
    return inputs


def timbre_transfer(loaded, rate: int, work: Path) -> Dict[str, Dict[str, object]]:
    return {name: {level: pitch_following(audio, stream(loaded, audio, level, rate), rate) for level in LEVELS}
            for name, audio in foreign_inputs(rate, work).items()}


def call_cost(path: Path, buffers: Sequence[int] = (512, 2048), repeats: int = 300) -> Dict[str, Dict[str, float]]:
    """Median µs of one streamed ``forward`` call of the export with its defaults (``follow``) and with ``level``
    and ``voicing`` at ``model`` (what forward cost before they existed), interleaved in one process."""
    result = {}
    for buffer in buffers:
        modules = {}
        for mode in LEVELS:
            module = torch.jit.load(str(path)).eval()
            for name in ("level", "voicing"):
                if name in module.get_attributes():
                    getattr(module, f"set_{name}")(mode)
            modules[mode] = module
        x = 0.1 * torch.randn(1, 1, buffer, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            timed = interleaved_medians({mode: (lambda m=m: m.forward(x)) for mode, m in modules.items()}, repeats)
        result[str(buffer)] = {mode: 1e6 * timed[mode]["seconds"] for mode in LEVELS}
        result[str(buffer)]["ratio"] = result[str(buffer)]["follow"] / result[str(buffer)]["model"]
    return result


def format_markdown(results: Dict[str, object]) -> str:
    lines = [f"`{results['config']}`, {results['cpu_minutes']:g} CPU-minutes on one thread "
             f"({results['training'].get('steps', '?')} steps), best checkpoint; streamed `forward` at B = {BUFFER}.", "",
             "Held-out recordings (level error: output RMS against input RMS):", "",
             "| held-out set | level | SC | level median | level worst |", "|---|---|---|---|---|"]
    for name, by_level in results["held_out"].items():
        for level, r in by_level.items():
            lines.append(f"| {name} | {level} | {r['sc_mean']:.3f} | {r['level_median_db']:+.2f} dB | "
                         f"{r['level_worst_db']:+.2f} dB |")
    lines += ["", f"Timbre transfer (share of the input's voiced frames whose output is voiced and within {CENTS:g} "
                  "cents):", "", "| input | level | within 50 cents | output voiced | median error | level error |",
              "|---|---|---|---|---|---|"]
    for name, by_level in results["timbre_transfer"].items():
        for level, r in by_level.items():
            lines.append(f"| {name} | {level} | {100 * r['within_50_cents']:.1f}% | {100 * r['output_voiced']:.1f}% | "
                         f"{r['median_cents']:.0f} cents | {r['level_db']:+.2f} dB |")
    lines += ["", "Cost of one streamed `forward` call, µs (median, interleaved in one process, one thread):", "",
              "| load | buffer | follow (defaults) | model | ratio |", "|---|---|---|---|---|"]
    for load, by_buffer in results["cost"].items():
        for buffer, r in by_buffer.items():
            lines.append(f"| {load} | {buffer} | {r['follow']:.0f} | {r['model']:.0f} | {r['ratio']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="dgt_harmonic")
    parser.add_argument("--cpu-minutes", type=float, default=30.0)
    parser.add_argument("--work", default=str(DEFAULT_WORK))
    parser.add_argument("--name", default="live_input")
    args = parser.parse_args(argv)
    started = start_run(__file__, competing="one competing process during the cost measurement beside a busy core only")
    torch.set_num_threads(1)
    from vschaos.host.model import load_model
    from vschaos.training.run import open_run

    work = Path(args.work)
    prepared = prepare(work, args)
    transform = open_run(work / "runs" / args.config / "version_0", checkpoint="best").vae.transform
    rate = int(transform.sample_rate)
    loaded = load_model(str(prepared["export"]))
    phrases = sorted((prepared["phrases"] / "data").glob("*.wav"))
    other = render_phrases(work / "phrases_room_musescore", MUSESCORE, files=8, room=True)
    results: Dict[str, object] = {"config": args.config, "cpu_minutes": args.cpu_minutes,
                                  "training": prepared["training"], "held_out": {}}
    results["held_out"]["same soundfont, room (8 melodies)"] = held_out(loaded, transform, phrases[TRAIN_FILES:], rate)
    results["held_out"]["other soundfont, room (8 melodies)"] = held_out(
        loaded, transform, sorted((other / "data").glob("*.wav")), rate)
    results["timbre_transfer"] = timbre_transfer(loaded, rate, work)
    results["cost"] = {"idle": call_cost(prepared["export"])}
    with competing_process():
        results["cost"]["beside a busy core"] = call_cost(prepared["export"])
    markdown = format_markdown(results)
    print(markdown)
    print(f"wrote {write_results(args.name, results, markdown, run=started)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
