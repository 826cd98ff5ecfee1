"""Phase reconstruction quality: spectral convergence of magnitude-only resynthesis.

For each synthesised harmonic test sound, the target magnitude S (Gaussian DGT) is given a phase
by each method, resynthesised with the dual window, re-analysed, and scored with
``||S - S^||_F / ||S||_F`` (lower is better; 0 = the magnitude is consistent):

* ``random``: uniform random phase;
* ``rtpghi_stream``: ``vschaos.dsp.streaming.RTPGHI`` (zero look-ahead), fed the true magnitudes
  block by block as the nn~ export does (``--block`` samples per call);
* ``pghi``: offline phase-gradient heap integration (``phase.pghi``);
* ``pghi+gla``: offline PGHI then fast Griffin-Lim (``phase.griffin_lim``).

Usage: ``python -m experiments.phase_quality [--n-fft 2048 --hop 512 --sr 44100 --block 2048 --gla-iter 32]``.
Writes ``experiments/results/phase_quality.{json,md}`` (``--out``: another folder).
"""
import argparse
import math
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from vschaos.dsp import functional as dsp
from vschaos.dsp.phase import griffin_lim, pghi
from vschaos.dsp.streaming import RTPGHI

from bench.common import start_run, write_results



def _partials(freq_hz: np.ndarray, sample_rate: int, n_harmonics: int, rng: np.random.Generator,
              decay: float = 1.0) -> np.ndarray:
    """Sum of harmonics of an instantaneous frequency track ``freq_hz`` (time,), 1/k^decay amplitudes."""
    phase = 2 * math.pi * np.cumsum(freq_hz) / sample_rate
    out = np.zeros_like(phase)
    for k in range(1, n_harmonics + 1):
        alias_free = (k * freq_hz < 0.45 * sample_rate).astype(np.float64)
        out += alias_free * np.sin(k * phase + rng.uniform(0, 2 * math.pi)) / k ** decay
    return out


def test_sounds(sample_rate: int, seconds: float = 2.0) -> Dict[str, np.ndarray]:
    """Harmonic test sounds ``name -> float32 (time,)``, peak 0.5, 10 ms fades."""
    rng = np.random.default_rng(0)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    sounds = {
        "vibrato_tone_220": _partials(220 * (1 + 0.015 * np.sin(2 * math.pi * 5.5 * t)), sample_rate, 12, rng),
        "vibrato_tone_880": _partials(880 * (1 + 0.01 * np.sin(2 * math.pi * 4.0 * t)), sample_rate, 8, rng),
        "chord_c_major": sum(_partials(np.full(n, f), sample_rate, 10, rng) for f in (261.63, 329.63, 392.0)),
        "chirp_100_8000": _partials(100 * (80 ** (t / seconds)), sample_rate, 1, rng),
        "harmonic_chirp_110_880": _partials(110 * (8 ** (t / seconds)), sample_rate, 6, rng),
    }
    # Plucked string: decaying harmonics, higher partials decaying faster, re-plucked twice.
    pluck = np.zeros(n)
    for onset, f0 in ((0.0, 196.0), (0.7, 246.94), (1.3, 293.66)):
        start = int(onset * sample_rate)
        if start >= n:  # a sound shorter than this onset: the pluck is never heard
            continue
        tt = t[: n - start]
        phase0 = 2 * math.pi * f0 * tt
        note = sum(np.exp(-tt * (2.0 + 1.5 * k)) * np.sin(k * phase0 + rng.uniform(0, 2 * math.pi)) / k
                   for k in range(1, 16) if k * f0 < 0.45 * sample_rate)
        pluck[start:] += note
    sounds["plucked_decay"] = pluck
    out = {}
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    for name, sound in sounds.items():
        sound = sound * fade
        out[name] = (0.5 * sound / (np.abs(sound).max() + 1e-9)).astype(np.float32)
    return out


def rtpghi_streamed(magnitude: torch.Tensor, n_fft: int, hop: int, lam: float, block: int) -> torch.Tensor:
    """Phase from the streaming RTPGHI module, ``block // hop`` frames per call (scripted, as exported)."""
    module = torch.jit.script(RTPGHI(n_fft, hop, lam))
    frames_per_call = max(1, block // hop)
    parts = [module(magnitude[:, i:i + frames_per_call]) for i in range(0, magnitude.shape[1], frames_per_call)]
    return torch.cat(parts, dim=1)


def evaluate(n_fft: int, hop: int, sample_rate: int, block: int, gla_iter: int,
             seconds: float = 2.0) -> Dict[str, Dict[str, float]]:
    window = dsp.gaussian_window(n_fft)
    dual = dsp.dual_window(window, hop)
    lam = dsp.gaussian_lambda(n_fft)
    generator = torch.Generator().manual_seed(0)
    results: Dict[str, Dict[str, float]] = {}
    for name, sound in test_sounds(sample_rate, seconds).items():
        audio = torch.from_numpy(sound).unsqueeze(0)
        length = audio.shape[-1]
        magnitude = dsp.dgt(audio, window, hop).abs()

        def score(phase: torch.Tensor) -> float:
            resynth = dsp.idgt(torch.polar(magnitude, phase), dual, hop, length)
            return float(dsp.spectral_convergence(magnitude, dsp.dgt(resynth, window, hop).abs()).mean())

        methods: Dict[str, Callable[[], torch.Tensor]] = {
            "random": lambda: (torch.rand(magnitude.shape, generator=generator) * 2 - 1) * math.pi,
            "rtpghi_stream": lambda: rtpghi_streamed(magnitude, n_fft, hop, lam, block),
            "pghi": lambda: pghi(magnitude, lam, hop, n_fft, generator=generator),
        }
        row: Dict[str, float] = {}
        pghi_phase: Optional[torch.Tensor] = None
        for method, make_phase in methods.items():
            start = time.perf_counter()
            phase = make_phase()
            row[method] = score(phase)
            row[method + "_seconds"] = time.perf_counter() - start
            if method == "pghi":
                pghi_phase = phase
        start = time.perf_counter()
        refined = griffin_lim(magnitude, pghi_phase, window, dual, hop, length, n_iter=gla_iter)
        row["pghi+gla"] = score(refined)
        row["pghi+gla_seconds"] = time.perf_counter() - start + row["pghi_seconds"]
        results[name] = row
    return results


METHODS = ("random", "rtpghi_stream", "pghi", "pghi+gla")


def format_table(results: Dict[str, Dict[str, float]]) -> str:
    header = "| sound | " + " | ".join(METHODS) + " |"
    lines = [header, "|" + " --- |" * (len(METHODS) + 1)]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[m]:.4f}" for m in METHODS) + " |")
    means = {m: float(np.mean([row[m] for row in results.values()])) for m in METHODS}
    lines.append("| **mean** | " + " | ".join(f"**{means[m]:.4f}**" for m in METHODS) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-fft", type=int, default=2048)
    parser.add_argument("--hop", type=int, default=512)
    parser.add_argument("--sr", type=int, default=44100)
    parser.add_argument("--block", type=int, default=2048, help="samples per streaming call (RTPGHI)")
    parser.add_argument("--gla-iter", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--out", type=Path, help="results folder (default experiments/results)")
    args = parser.parse_args(argv)
    if not args.seconds > 0.05:
        parser.error(f"--seconds {args.seconds:g}: the test sounds need more than 0.05 s (their 10 ms fades)")
    run = start_run(__file__)
    torch.set_num_threads(1)
    results = evaluate(args.n_fft, args.hop, args.sr, args.block, args.gla_iter, args.seconds)
    table = format_table(results)
    settings = {"n_fft": args.n_fft, "hop": args.hop, "sample_rate": args.sr, "block": args.block,
                "gla_iter": args.gla_iter, "seconds": args.seconds, "tfr": dsp.DEFAULT_TFR}
    means = {m: float(np.mean([row[m] for row in results.values()])) for m in METHODS}
    report = {"metric": "spectral convergence ||S - S^||_F / ||S||_F (lower is better)",
              "settings": settings, "per_sound": results, "mean": means}
    md = (f"Spectral convergence (lower is better), n_fft={args.n_fft}, hop={args.hop}, sr={args.sr}, "
          f"streaming block={args.block} samples, {args.gla_iter} fast Griffin-Lim iterations.\n\n"
          + table + "\n")
    write_results("phase_quality", report, md, args.out, run=run)
    print(md)
    return report


if __name__ == "__main__":
    main()
