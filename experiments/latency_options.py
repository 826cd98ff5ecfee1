"""What limits a low-latency front end: the overlap-add delay and the f0 tracker's reach, per analysis window.

    python -m experiments.latency_options

Every preset synthesises by overlap-adding frames of ``n_fft`` samples, so ``forward`` declares ``n_fft - hop``
samples of delay (``vschaos.dsp.streaming.StreamingSynthesis``); the harmonic presets also read their pitch from
the same frames with :class:`vschaos.dsp.f0.HarmonicF0`. For candidate windows (Gaussian, ``tfr`` 0.25 as the
presets) this prints the delay in ms at 44.1 and 48 kHz beside the share of frames the tracker puts within 50
cents of a harmonic tone (14 partials with 1/k amplitudes, one second, edges dropped), per f0 from the low E of
a guitar to A5. A window short enough for 10 ms cannot read the pitch of low notes: a low-latency harmonic path
needs the synthesis decoupled from the analysis window (or a second, longer analysis for the pitch).
Writes ``experiments/results/latency_options.{json,md}``.
"""
import math
import sys
from typing import Dict, List, Optional, Sequence

import torch

from bench.common import start_run, write_results

CANDIDATES = ((2048, 512), (1024, 256), (1024, 128), (768, 192), (512, 128), (512, 64))
F0S = (82.4, 110.0, 146.8, 220.0, 330.0, 440.0, 660.0, 880.0)
RATES = (44100, 48000)


def tracked_share(n_fft: int, hop: int, f0: float, sample_rate: int) -> float:
    from vschaos.dsp.f0 import HarmonicF0
    from vschaos.dsp.transforms import SpectralTransform

    transform = SpectralTransform(sample_rate=sample_rate, n_fft=n_fft, hop=hop, tfr=0.25)
    tracker = HarmonicF0(n_fft, sample_rate, fmin=30.0, fmax=2000.0)
    t = torch.arange(sample_rate, dtype=torch.float64) / sample_rate
    tone = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 15)) * 0.2
    magnitude = transform.magnitude(tone.float()[None])[0][n_fft // hop: -(n_fft // hop)]
    cents = 1200.0 * torch.log2(tracker(magnitude) / f0).abs()
    return float((cents < 50.0).float().mean())


def main(argv: Optional[Sequence[str]] = None) -> int:
    started = start_run(__file__)
    torch.set_num_threads(1)
    rows: List[Dict[str, object]] = []
    for n_fft, hop in CANDIDATES:
        delay = n_fft - hop
        row = {"n_fft": n_fft, "hop": hop, "delay_samples": delay,
               "delay_ms": {str(rate): 1000.0 * delay / rate for rate in RATES},
               "tracked_within_50_cents": {str(f0): tracked_share(n_fft, hop, f0, 44100) for f0 in F0S}}
        rows.append(row)
        print(row)
    lines = ["latency_options: the overlap-add delay and the f0 tracker's reach per analysis window", "",
             "| n_fft / hop | delay 44.1 kHz | delay 48 kHz | " + " | ".join(f"{f:g} Hz" for f in F0S) + " |",
             "|---|---|---|" + "---|" * len(F0S)]
    for row in rows:
        shares = row["tracked_within_50_cents"]
        lines.append(f"| {row['n_fft']} / {row['hop']} | {row['delay_ms']['44100']:.1f} ms | "
                     f"{row['delay_ms']['48000']:.1f} ms | " + " | ".join(f"{100 * shares[str(f)]:.0f}%" for f in F0S)
                     + " |")
    lines += ["", "Share of frames within 50 cents of a harmonic tone (44.1 kHz). Delay: `n_fft - hop` samples, "
              "the overlap-add's."]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    write_results("latency_options", {"rows": rows}, markdown, run=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
