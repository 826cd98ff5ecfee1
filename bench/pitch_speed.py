"""Pitch labelling speed and accuracy on synthesised harmonic notes of known pitch.

    python -m bench.pitch_speed [--threads 2 1] [--models tiny full] [--reference] [--busy]

Each note is one "file" (44.1 kHz, resampled inside ``track_pitch`` as in extract_pitch), MIDI
40..84, detuned by up to +-25 cents, 3..10 harmonics. Reported per configuration:
- ``x_realtime``: audio seconds labelled per wall-clock second (model already loaded);
- ``within_50c``: fraction of frames inside the notes (30 ms away from the edges) whose f0 is
  within 50 cents of the truth (an unvoiced frame counts as a miss);
- ``pitch_class_acc`` / ``octave_acc``: fraction of those frames with the right label;
- ``voiced``: fraction of those frames labelled voiced.
``--reference`` adds vschaos2's setting (full model, 5.8 ms hop) on the first notes only.
Writes ``bench/results/pitch_speed[_busy].{json,md}``.
"""
import argparse
import math
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

from vschaos.pitch import hz_to_midi, midi_to_hz, track_pitch
from vschaos.pitch.tracks import pitch_octave_labels

from bench.common import RESULTS_DIR, busy_argument, competing_process, start_run, write_results

SAMPLE_RATE = 44100
EDGE_SECONDS = 0.03


def harmonic_note(frequency: float, seconds: float, n_harmonics: int, rng: np.random.Generator) -> np.ndarray:
    """Harmonic tone with random partial phases and 1/k amplitudes, 10 ms fades, peak 0.5."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    out = np.zeros_like(t)
    for k in range(1, n_harmonics + 1):
        if k * frequency < SAMPLE_RATE / 2:
            out += np.sin(2 * math.pi * k * frequency * t + rng.uniform(0, 2 * math.pi)) / k
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    return (0.5 * out / np.abs(out).max() * fade).astype(np.float32)


def make_notes(step: int, seconds: float, seed: int = 0) -> List[Tuple[float, np.ndarray]]:
    rng = np.random.default_rng(seed)
    notes = []
    for midi in range(40, 85, step):
        frequency = float(midi_to_hz(midi + rng.uniform(-0.25, 0.25)))
        notes.append((frequency, harmonic_note(frequency, seconds, int(rng.integers(3, 11)), rng)))
    return notes


def evaluate(notes, model: str, hop_seconds: float) -> Dict[str, float]:
    track_pitch(torch.from_numpy(notes[0][1][:SAMPLE_RATE // 4]), SAMPLE_RATE, model=model)  # load + warm up
    frames = within = right_pitch = right_octave = voiced = 0
    elapsed = cpu = audio_seconds = 0.0
    for frequency, audio in notes:
        start, cpu_start = time.perf_counter(), time.process_time()
        track = track_pitch(torch.from_numpy(audio), SAMPLE_RATE, model=model, hop_seconds=hop_seconds)
        pitch, octave = pitch_octave_labels(track)
        elapsed += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
        audio_seconds += len(audio) / SAMPLE_RATE
        inside = (track.times >= EDGE_SECONDS) & (track.times <= track.duration - EDGE_SECONDS)
        true_midi = int(round(hz_to_midi(frequency)))
        cents = 1200 * torch.log2(track.f0_hz.double() / frequency)
        frames += int(inside.sum())
        voiced += int((inside & track.voiced).sum())
        within += int((inside & (cents.abs() <= 50)).sum())
        for index in torch.nonzero(inside).flatten().tolist():
            right_pitch += pitch[index] == str(true_midi % 12)
            right_octave += octave[index] == str(true_midi // 12)
    return {"model": model, "hop_ms": round(hop_seconds * 1000, 3), "audio_s": round(audio_seconds, 2),
            "wall_s": round(elapsed, 3), "x_realtime": round(audio_seconds / elapsed, 2),
            "cpu_s": round(cpu, 3), "x_realtime_per_cpu_second": round(audio_seconds / cpu, 2),
            "within_50c": round(within / frames, 4), "pitch_class_acc": round(right_pitch / frames, 4),
            "octave_acc": round(right_octave / frames, 4), "voiced": round(voiced / frames, 4), "frames": frames}


def markdown(rows: List[Dict[str, float]]) -> str:
    lines = ["Pitch labelling on synthesised harmonic notes (MIDI 40-84).", "",
             "`x real time` = audio seconds / wall seconds; `x RT per CPU s` = audio seconds / process CPU "
             "seconds (all threads): with 1 thread, the speed of one fully busy core even on a loaded machine "
             "(with more threads, waiting threads spin and inflate it).", "",
             "| model | threads | hop (ms) | audio (s) | x real time | x RT per CPU s | within 50 cents | pitch class acc "
             "| octave acc | voiced |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['threads']} | {row['hop_ms']} | {row['audio_s']} | "
                     f"{row['x_realtime']} | {row['x_realtime_per_cpu_second']} | "
                     f"{row['within_50c']:.2%} | {row['pitch_class_acc']:.2%} | {row['octave_acc']:.2%} | "
                     f"{row['voiced']:.2%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1],
                        help="torch thread counts to time, each for every model (default 2 1)")
    parser.add_argument("--models", nargs="+", default=["tiny", "full"], choices=["tiny", "full"])
    parser.add_argument("--hop", type=float, default=0.01, help="hop in seconds (default 0.01)")
    parser.add_argument("--note-seconds", type=float, default=2.0)
    parser.add_argument("--step", type=int, default=4, help="semitones between test notes (default 4)")
    parser.add_argument("--reference", action="store_true",
                        help="also time vschaos2's setting (full, 5.8 ms hop) on the first 3 notes")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    busy_argument(parser)
    args = parser.parse_args()
    run = start_run(__file__, competing=args.busy)
    notes = make_notes(args.step, args.note_seconds)
    rows = []
    with competing_process(args.busy):
        for threads in args.threads:
            torch.set_num_threads(threads)
            for model in args.models:
                rows.append({**evaluate(notes, model, args.hop), "threads": threads})
                print(rows[-1], flush=True)
        if args.reference:
            torch.set_num_threads(args.threads[0])
            rows.append({**evaluate(notes[:3], "full", 0.0058), "model": "full (vschaos2 setting)",
                         "threads": args.threads[0]})
            print(rows[-1], flush=True)
    table = markdown(rows)
    print(table)
    write_results("pitch_speed_busy" if args.busy else "pitch_speed", {"rows": rows}, table, args.out, run=run)


if __name__ == "__main__":
    main()
