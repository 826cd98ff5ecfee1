"""Accuracy and speed of the pitch latent's f0 tracker (``vschaos.dsp.f0.HarmonicF0``), at a preset's resolution.

    python -m experiments.f0_accuracy [--dataset NOTES_DIR] [--sample-rate 44100 --n-fft 2048 --hop 512]

- **Synthetic** (always): pure sines, harmonic tones (8 partials, 1/k) and odd-partial tones (clarinet-like) at
  41-1760 Hz, clean and in white noise at 20, 10 and 5 dB SNR. Reported: the share of frames within 50 cents
  of the true f0, and the median error in cents per frequency of the clean tones.
- **Moving pitch**: the bright sawtooths of ``experiments.live_input`` (a glide 150 -> 600 Hz, a vibrato at 220 Hz).
- **Sampled notes** (``--dataset``, a ``data_tools/make_sampled_dataset.py`` tree whose ``notes.csv`` gives each
  note's f0): the share of frames within 50 cents per instrument, below and above 110 Hz, and the share read
  an octave off (within 50 cents of 2 f0 or f0 / 2). Frames within 30 dB of the note's loudest count.
- **Speed**: median milliseconds per call of the scripted tracker on 1 thread, for 1, 4 and 256 frames
  (a streamed call at hop 512 and 2048 samples is 4 frames; a training batch is 256).

Run it from another checkout's root to compare trackers. Writes ``experiments/results/f0_accuracy.{json,md}``.
"""
import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

import numpy as np
import soundfile as sf
import torch

from vschaos.dsp.f0 import HarmonicF0
from vschaos.dsp.transforms import SpectralTransform

from bench.common import interleaved_medians, start_run, write_results

FREQUENCIES = [41.2, 55.0, 65.4, 82.4, 110.0, 164.8, 220.0, 329.6, 440.0, 659.3, 880.0, 1318.5, 1760.0]
SNRS_DB = [None, 20.0, 10.0, 5.0]
SECONDS = 0.8


def tone(kind: str, frequency: float, sample_rate: int) -> np.ndarray:
    """Unit-RMS ``sine``, ``harmonic`` (8 partials, 1/k) or ``odd`` (partials 1, 3, 5, 7, 9, 1/k)."""
    t = np.arange(int(SECONDS * sample_rate)) / sample_rate
    partials = {"sine": [1], "harmonic": list(range(1, 9)), "odd": [1, 3, 5, 7, 9]}[kind]
    out = sum(np.sin(2 * math.pi * k * frequency * t) / k for k in partials if k * frequency < sample_rate / 2)
    return out / np.sqrt(np.mean(out ** 2))


def cents(estimate: torch.Tensor, truth: float) -> torch.Tensor:
    return 1200.0 * torch.log2(estimate.double() / truth)


def synthetic(transform: SpectralTransform, tracker: HarmonicF0) -> Dict[str, object]:
    rng = np.random.default_rng(0)
    shares: Dict[str, Dict[str, float]] = {}
    clean_cents: Dict[str, List[float]] = {}
    for kind in ("sine", "harmonic", "odd"):
        shares[kind] = {}
        for snr in SNRS_DB:
            hits = total = 0
            for frequency in FREQUENCIES:
                audio = tone(kind, frequency, transform.sample_rate)
                if snr is not None:
                    audio = audio + rng.standard_normal(audio.shape) * 10 ** (-snr / 20)
                frames = transform.magnitude(torch.from_numpy(0.1 * audio).float()[None])[0][6:-6]
                error = cents(tracker(frames), frequency)
                hits += int((error.abs() < 50).sum())
                total += error.numel()
                if snr is None:
                    clean_cents.setdefault(kind, []).append(float(error.median()))
            shares[kind]["clean" if snr is None else f"{snr:g} dB"] = hits / total
    return {"within_50_cents": shares, "clean_median_cents": clean_cents, "frequencies": FREQUENCIES}


def moving(transform: SpectralTransform, tracker: HarmonicF0) -> Dict[str, float]:
    """Share of frames within 50 cents for the bright sawtooths ``experiments.live_input`` plays into a model
    (every harmonic below Nyquist): a glide 150 -> 600 Hz over 4 s and 220 Hz with a 6 Hz vibrato of +-50 cents.
    Frame ``i`` is centred on sample ``i * hop``; the 6 frames at each end are dropped."""
    from experiments.live_input import synth_inputs

    rate, seconds = transform.sample_rate, 4.0
    t = np.arange(int(seconds * rate)) / rate
    truths = {"saw glide 150-600 Hz": 150.0 * 4.0 ** (t / seconds),
              "saw vibrato 220 Hz": 220.0 * 2.0 ** (0.5 / 12 * np.sin(2 * math.pi * 6.0 * t))}
    out = {}
    for name, audio in synth_inputs(rate, seconds).items():
        frames = transform.magnitude(torch.from_numpy(audio)[None])[0]
        truth = truths[name][np.minimum(np.arange(frames.shape[0]) * transform.hop, len(t) - 1)]
        error = 1200.0 * np.log2(tracker(frames).double().numpy() / truth)[6:-6]
        out[name] = float((np.abs(error) < 50).mean())
    return out


def sampled(root: Path, transform: SpectralTransform, tracker: HarmonicF0) -> Dict[str, Dict[str, float]]:
    notes = root / "notes.csv"
    if not notes.is_file():
        raise SystemExit(f"--dataset {root}: no notes.csv (make one with data_tools/make_sampled_dataset.py)")
    groups: Dict[str, List[np.ndarray]] = defaultdict(list)
    with open(notes, newline="") as handle:
        for row in csv.DictReader(handle):
            audio, rate = sf.read(root / row["file"], dtype="float32", always_2d=True)
            if rate != transform.sample_rate:
                raise SystemExit(f"{row['file']}: {rate} Hz, the transform runs at {transform.sample_rate} Hz")
            magnitude = transform.magnitude(torch.from_numpy(audio.mean(axis=1))[None])[0]
            energy = magnitude.pow(2).sum(-1)
            error = cents(tracker(magnitude[energy > energy.max() * 1e-3]), float(row["f0_hz"])).numpy()
            f0 = float(row["f0_hz"])
            for group in (row["instrument"], "below 110 Hz" if f0 < 110 else "110 Hz and above", "all"):
                groups[group].append(error)
    out = {}
    order = sorted(g for g in groups if g not in ("below 110 Hz", "110 Hz and above", "all"))
    for group in order + ["below 110 Hz", "110 Hz and above", "all"]:
        errors = groups[group]
        error = np.concatenate(errors)
        octave = (np.abs(np.abs(error) - 1200) < 50).mean()
        out[group] = {"notes": len(errors), "within_50_cents": float((np.abs(error) < 50).mean()),
                      "octave_off": float(octave)}
    return out


def speed(tracker: HarmonicF0, n_bins: int) -> Dict[str, float]:
    torch.set_num_threads(1)
    scripted = torch.jit.script(tracker)
    inputs = {frames: torch.rand(frames, n_bins, generator=torch.Generator().manual_seed(frames))
              for frames in (1, 4, 256)}
    timed = interleaved_medians({f"{frames} frames": (lambda x=x: scripted(x)) for frames, x in inputs.items()},
                                repeats=30)
    return {name: 1e3 * value["seconds"] for name, value in timed.items()}


def markdown(result: Dict[str, object], args: argparse.Namespace) -> str:
    lines = [f"f0 tracker at {args.sample_rate} Hz, n_fft {args.n_fft} "
             f"({args.sample_rate / args.n_fft:.1f} Hz bins)", "",
             "Synthetic tones: frames within 50 cents", "",
             "| tone | " + " | ".join(result["synthetic"]["within_50_cents"]["sine"]) + " |",
             "|---" * (1 + len(SNRS_DB)) + "|"]
    for kind, shares in result["synthetic"]["within_50_cents"].items():
        lines.append(f"| {kind} | " + " | ".join(f"{100 * v:.1f}%" for v in shares.values()) + " |")
    lines += ["", "Clean tones: median error in cents", "",
              "| tone | " + " | ".join(f"{f:g} Hz" for f in FREQUENCIES) + " |", "|---" * (1 + len(FREQUENCIES)) + "|"]
    for kind, values in result["synthetic"]["clean_median_cents"].items():
        lines.append(f"| {kind} | " + " | ".join(f"{v:+.0f}" for v in values) + " |")
    lines += ["", "Moving pitch, bright sawtooths (every harmonic below Nyquist): frames within 50 cents", "",
              "| tone | within 50 cents |", "|---|---|"]
    lines += [f"| {name} | {100 * share:.1f}% |" for name, share in result["moving"].items()]
    if "sampled" in result:
        lines += ["", f"Sampled notes ({args.dataset}): frames within 50 cents of the note's f0", "",
                  "| group | notes | within 50 cents | an octave off |", "|---|---|---|---|"]
        for group, row in result["sampled"].items():
            lines.append(f"| {group} | {row['notes']} | {100 * row['within_50_cents']:.1f}% | "
                         f"{100 * row['octave_off']:.1f}% |")
    lines += ["", "Speed (scripted, 1 thread): " + ", ".join(f"{name} {ms:.2f} ms"
                                                          for name, ms in result["speed_ms"].items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, help="a make_sampled_dataset.py tree (with notes.csv)")
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--n-fft", type=int, default=2048)
    parser.add_argument("--hop", type=int, default=512)
    parser.add_argument("--name", default="f0_accuracy", help="results file name in experiments/results")
    args = parser.parse_args()
    run = start_run(__file__)
    transform = SpectralTransform(sample_rate=args.sample_rate, n_fft=args.n_fft, hop=args.hop)
    tracker = HarmonicF0(args.n_fft, args.sample_rate)
    result: Dict[str, object] = {"synthetic": synthetic(transform, tracker), "moving": moving(transform, tracker)}
    if args.dataset is not None:
        result["sampled"] = sampled(args.dataset, transform, tracker)
    result["speed_ms"] = speed(tracker, args.n_fft // 2 + 1)
    text = markdown(result, args)
    print(text)
    write_results(args.name, result, text, run=run)


if __name__ == "__main__":
    main()
