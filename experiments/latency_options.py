"""What limits a low-latency front end: the overlap-add delay and the f0 tracker's reach, per analysis window.

    python -m experiments.latency_options

Every preset synthesises by overlap-adding frames of ``n_fft`` samples, so ``forward`` declares ``n_fft - hop``
samples of delay (``vschaos.dsp.streaming.StreamingSynthesis``); the harmonic presets also read their pitch from
the same frames with :class:`vschaos.dsp.f0.HarmonicF0`. For candidate windows (Gaussian, ``tfr`` 0.25 as the
presets) this prints the delay in ms at 44.1 and 48 kHz beside the share of frames the tracker puts within 50
cents of a harmonic tone (14 partials with 1/k amplitudes, one second, edges dropped), per f0 from the low E of
a guitar to A5. A window short enough for 10 ms cannot read the pitch of low notes: a low-latency harmonic path
needs the synthesis decoupled from the analysis window (or a second, longer analysis for the pitch).

The second table measures that second analysis. A frame of the transform is complete when the samples up to
``(j + 1) * hop`` have arrived, whatever its window (``SpectralTransform``'s frame ``j`` ends there), so a longer
window ending where a short frame ends reads the pitch with no more delay than the short frame, only later in
the sound: its centre lies ``(long - short) / 2`` samples before the short frame's. Per input (a bright sawtooth
glide and vibrato, low harmonic tones, one speaker's speech and an alto sax phrase of another soundfont than the
presets'; truth: the synthesis f0, or CREPE on the input's voiced frames), the share of frames within 50 cents
of the f0 at the centre of the window read, for the tracker on: a 2048-point window (today's ``dgt_harmonic``,
35 ms of delay) and the 512-point window itself (8.7 ms); and of the f0 at the short frame's centre for the
2048-point window ending where the 512-point frame ends (8.7 ms, the pitch read 768 samples late).

    python -m experiments.latency_options [--work runs/latency_options_work]

Writes ``experiments/results/latency_options.{json,md}``.
"""
import argparse
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from bench.common import start_run, write_results

CANDIDATES = ((2048, 512), (1024, 256), (1024, 128), (768, 192), (512, 128), (512, 64))
F0S = (82.4, 110.0, 146.8, 220.0, 330.0, 440.0, 660.0, 880.0)
RATES = (44100, 48000)
SHORT, LONG, CAUSAL_HOP = 512, 2048, 128  # the low-latency candidate, the pitch window, their common hop
DEFAULT_WORK = Path(__file__).resolve().parent.parent / "runs" / "latency_options_work"


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


def pitch_inputs(work: Path, rate: int = 44100) -> Dict[str, Dict[str, object]]:
    """The inputs of the second table: ``{name: {"audio": (time,) float32, "f0": callable seconds -> Hz (NaN:
    unvoiced) }}``: live_input's foreign inputs but the choir (several voices), rendered into ``work`` (once),
    speech and sax read by CREPE; and two low harmonic tones."""
    from experiments.live_input import foreign_inputs
    from vschaos.pitch.tracker import track_pitch

    seconds = 4.0  # synth_inputs' length
    inputs = foreign_inputs(rate, work)
    truths = {"saw glide 150-600 Hz": lambda t: 150.0 * 4.0 ** (t / seconds),
              "saw vibrato 220 Hz": lambda t: 220.0 * 2.0 ** (0.5 / 12 * np.sin(2 * np.pi * 6.0 * t))}
    result = {name: {"audio": inputs[name], "f0": truths[name]} for name in truths}
    t = np.arange(int(rate * 2.0)) / rate
    for f0 in (82.4, 110.0):
        tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 15))
        result[f"harmonic tone {f0:g} Hz"] = {"audio": (0.2 * tone).astype(np.float32),
                                              "f0": lambda x, f0=f0: np.full_like(x, f0)}
    for name in ("speech (kal_diphone)", "alto sax (other soundfont)"):
        track = track_pitch(torch.from_numpy(inputs[name]), rate)
        times, f0 = track.times.numpy(), track.f0_hz.numpy().astype(np.float64)
        # CREPE's frames are 10 ms apart: between two voiced frames the f0 is interpolated, elsewhere unvoiced
        result[name] = {"audio": inputs[name], "f0": lambda x, times=times, f0=f0: np.interp(x, times, f0)}
    return result


def causal_pitch_shares(audio: np.ndarray, truth, rate: int = 44100) -> Dict[str, float]:
    """Share of frames within 50 cents of ``truth`` at the short frame's centre (module docstring), per reading."""
    from vschaos.dsp.f0 import HarmonicF0
    from vschaos.dsp.transforms import SpectralTransform

    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
    tracks = {}
    for n_fft in (SHORT, LONG):
        magnitude = SpectralTransform(sample_rate=rate, n_fft=n_fft, hop=CAUSAL_HOP, tfr=0.25).magnitude(x)[0]
        tracks[n_fft] = HarmonicF0(n_fft, rate).double()(magnitude.double()).numpy()
    n = min(len(tracks[SHORT]), len(tracks[LONG]))
    frames = np.arange(n)
    end = (frames + 1) * CAUSAL_HOP  # where frame j of either window ends (SpectralTransform's framing)
    centre = {n_fft: (end - n_fft // 2) / rate for n_fft in (SHORT, LONG)}
    # frames whose windows lie inside the signal, where the truth is voiced
    inside = (end - LONG >= 0) & (end <= len(audio))
    wanted = truth(centre[SHORT])
    readings = {"centred 2048 (35 ms)": (tracks[LONG], truth(centre[LONG])),
                "512 (8.7 ms)": (tracks[SHORT], wanted),
                "2048 ending with the 512 frame (8.7 ms)": (tracks[LONG], wanted)}
    result = {}
    for name, (estimate, target) in readings.items():
        valid = inside & np.isfinite(target) & (target > 0)
        cents = 1200.0 * np.abs(np.log2(estimate[:n][valid] / target[valid]))
        result[name] = float((cents < 50.0).mean()) if valid.any() else math.nan
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(DEFAULT_WORK), help="renders of the speech and sax inputs")
    args = parser.parse_args(argv)
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
    causal = {name: causal_pitch_shares(item["audio"], item["f0"]) for name, item in pitch_inputs(Path(args.work)).items()}
    readings = list(next(iter(causal.values())))
    lines += ["", f"The pitch of a {SHORT}-point model (hop {CAUSAL_HOP}) read from a longer window that ends where its "
              "frame ends: share of frames within 50 cents of the f0 at the short frame's centre (44.1 kHz; speech "
              "and sax: CREPE's voiced frames of the input).", "",
              "| input | " + " | ".join(readings) + " |", "|---|" + "---:|" * len(readings)]
    for name, shares in causal.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * shares[r]:.1f}%" for r in readings) + " |")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    write_results("latency_options", {"rows": rows, "causal_pitch": causal}, markdown, run=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
