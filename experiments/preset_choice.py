"""Does ``preset=auto`` pick the right preset? Renders small datasets of real and synthesised material, runs the
recommender (``vschaos.pitch.recommend.recommend_dataset``, the same call as ``train_model.py --config-name auto``
and ``check_dataset.py``) on each, and compares its pick with the preset the material calls for.

    python -m experiments.preset_choice [--work runs/preset_choice_work] [--threads 1] [--force]

Materials (all from Debian packages or synthesised here; 44.1 kHz WAV trees in ``--work``):
  * tuning set, on which the thresholds of ``vschaos/pitch/recommend.py`` were chosen: TimGM6mb (fluidsynth) single
    notes of 8 GM programs dry and with fluidsynth's reverb (room size 0.8) and chorus (sends CC 91 and 93 up), monophonic melodies
    (0.45 s and 0.15 s notes), chords, a small
    ensemble (melody + bass + chords), single GM drum hits and drum loops (MIDI channel 10); festival
    ``text2wave`` speech (voice kal_diphone), the same speech in noise (pink noise, 5 dB SNR); excerpts of
    wesnoth's music; synthesised harmonic tones with glides and vibrato, white-noise bursts and clicks;
  * held out (never looked at while choosing thresholds): the same MIDI material rendered from
    MuseScore_General_Lite.sf3.
Expected: ``dgt_harmonic`` for one pitched source at a time (notes, melodies, tones), ``dgt_mid`` for the rest
(drums, noise, clicks, chords and mixtures, music, speech). Writes ``experiments/results/preset_choice.{json,md}``.
"""
import argparse
import shutil
import struct
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from bench.common import start_run, write_results
from vschaos.data.sampled import midi_vlq

TUNING_SF = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
HELD_OUT_SF = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
MUSIC_DIR = Path("/usr/share/games/wesnoth/1.16/data/core/music")
RATE = 44100
DEFAULT_WORK = Path("runs/preset_choice_work")
PROGRAMS = (0, 11, 19, 24, 40, 56, 71, 73)  # piano, vibraphone, organ, guitar, violin, trumpet, clarinet, flute
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "She can scoop these things into three red bags, and we will go meet her Wednesday at the train station.",
    "A musician records a voice, a drum loop and a few notes, and wants a model that plays them back.",
    "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow.",
    "Thirty seven thousand, four hundred and twelve.",
)
# GM drum notes: kicks, snares, toms, hi-hats, cymbals, hand percussion
DRUM_NOTES = (35, 36, 38, 40, 41, 42, 43, 45, 46, 47, 49, 50, 51, 54, 56, 57, 60, 62, 64, 69, 70, 75, 76, 81)

Event = Tuple[float, bytes]  # (seconds, MIDI message)


def midi_file(events: Sequence[Event], seconds: float) -> bytes:
    """A format-0 MIDI file at 120 bpm (1 tick = 0.5 ms) holding ``events``, ending at ``seconds``."""
    ticks = 2000  # per second
    body, now = bytearray(midi_vlq(0) + bytes([0xFF, 0x51, 0x03]) + (500000).to_bytes(3, "big")), 0
    for when, message in sorted(events, key=lambda e: e[0]):
        tick = int(round(when * ticks))
        body += midi_vlq(tick - now) + message
        now = tick
    body += midi_vlq(max(0, int(round(seconds * ticks)) - now)) + bytes([0xFF, 0x2F, 0x00])
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 1000) + b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


def note(channel: int, midi: int, start: float, length: float, velocity: int = 100) -> List[Event]:
    return [(start, bytes([0x90 | channel, midi, velocity])), (start + length, bytes([0x80 | channel, midi, 0]))]


def program(channel: int, number: int) -> Event:
    return (0.0, bytes([0xC0 | channel, number]))


def render(soundfont: Path, events: Sequence[Event], seconds: float, path: Path, room: bool = False) -> None:
    """Render with the fluidsynth command line (reverb, in a large room, and chorus on when ``room``), mono,
    ``seconds`` long."""
    path.parent.mkdir(parents=True, exist_ok=True)
    midi, wav = path.with_suffix(".mid"), path.with_suffix(".render.wav")
    midi.write_bytes(midi_file(events, seconds))
    switch = "1" if room else "0"
    # a large room: fluidsynth's default reverb is a small one, a few dB of short tail
    hall = ["-o", "synth.reverb.room-size=0.8", "-o", "synth.reverb.level=0.8"] if room else []
    subprocess.run(["fluidsynth", "-ni", "-q", "-R", switch, "-C", switch, *hall, "-g", "0.2", "-O", "float", "-T", "wav",
                    "-F", str(wav), "-r", str(RATE), str(soundfont), str(midi)], check=True, capture_output=True)
    data, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    midi.unlink()
    wav.unlink()
    mono = np.zeros(int(seconds * RATE), dtype=np.float32)
    mono[: min(mono.size, len(data))] = data.mean(axis=1)[: mono.size]
    sf.write(str(path), mono, RATE, subtype="FLOAT")


def room_sends(channel: int) -> List[Event]:
    """Reverb (CC 91) and chorus (CC 93) sends: fluidsynth's effects sound only where a channel sends to them."""
    return [(0.0, bytes([0xB0 | channel, 91, 110])), (0.0, bytes([0xB0 | channel, 93, 60]))]


def notes_set(soundfont: Path, out: Path, room: bool) -> None:
    for index, prog in enumerate(PROGRAMS):
        for midi in range(40 + index, 86, 8):
            events = [program(0, prog), *(room_sends(0) if room else []), *note(0, midi, 0.0, 1.5)]
            render(soundfont, events, 3.0 if room else 2.0, out / f"p{prog:03d}" / f"m{midi:03d}.wav", room)


def melodies_set(soundfont: Path, out: Path, note_seconds: float = 0.45) -> None:
    rng = np.random.default_rng(1)
    count = int(round(4.0 / note_seconds))
    for prog in PROGRAMS:
        steps = rng.choice([-5, -3, -2, -1, 1, 2, 3, 4, 5, 7], size=count)
        pitches = np.clip(60 + np.cumsum(steps) - 3, 45, 84)
        events = [program(0, prog)]
        for i, midi in enumerate(pitches):
            events += note(0, int(midi), 0.1 + note_seconds * i, 0.93 * note_seconds)
        render(soundfont, events, 0.8 + note_seconds * count, out / f"melody_p{prog:03d}.wav")


def chords_set(soundfont: Path, out: Path) -> None:
    shapes = ((0, 4, 7), (0, 3, 7, 10), (0, 4, 7, 11), (0, 5, 9), (0, 7, 16))
    for prog in (0, 19, 24, 48, 61, 88):
        for index, shape in enumerate(shapes):
            root = 48 + 3 * index
            events = [program(0, prog)] + [e for step in shape for e in note(0, root + step, 0.0, 1.6, 90)]
            render(soundfont, events, 2.0, out / f"chord_p{prog:03d}_{index}.wav")


def ensemble_set(soundfont: Path, out: Path) -> None:
    rng = np.random.default_rng(2)
    for piece in range(6):
        events = [program(0, 73), program(1, 33), program(2, 0)]
        beat = 0.5
        for bar in range(3):
            root = 48 + int(rng.choice([0, 5, 7, 9]))
            events += note(1, root - 12, bar * 4 * beat, 4 * beat - 0.05)
            events += [e for s in (0, 4, 7) for e in note(2, root + s, bar * 4 * beat, 2 * beat, 70)]
            events += [e for s in (0, 4, 7) for e in note(2, root + s, (bar * 4 + 2) * beat, 2 * beat, 70)]
            for i in range(4):
                events += note(0, root + 12 + int(rng.choice([0, 2, 4, 7, 9])), (bar * 4 + i) * beat, beat - 0.03)
        render(soundfont, events, 6.0, out / f"ensemble_{piece}.wav")


def drum_hits_set(soundfont: Path, out: Path) -> None:
    for midi in DRUM_NOTES:
        render(soundfont, note(9, midi, 0.0, 0.3, 110), 1.2, out / f"hit_{midi:03d}.wav")


def drum_loops_set(soundfont: Path, out: Path) -> None:
    patterns = {  # 16 steps: kick, snare, hat
        "rock": ("x.......x.x.....", "....x.......x...", "x.x.x.x.x.x.x.x."),
        "funk": ("x..x..x...x.....", "....x..x.x..x..x", "xxxxxxxxxxxxxxxx"),
        "half": ("x...............", "........x.......", "x.x.x.x.x.x.x.x."),
        "latin": ("x..x...x..x..x..", "...x..x...x..x..", "x.xxx.xxx.xxx.xx"),
    }
    for bpm in (96, 124):
        step = 60.0 / bpm / 4
        for name, (kick, snare, hat) in patterns.items():
            events = []
            for bar in range(2):
                for i in range(16):
                    t = (bar * 16 + i) * step
                    for row, midi in ((kick, 36), (snare, 38), (hat, 42)):
                        if row[i] == "x":
                            events += note(9, midi, t, 0.1, 100 if midi != 42 else 70)
            render(soundfont, events, 32 * step + 0.5, out / f"loop_{name}_{bpm}.wav")


def speech_set(out: Path, snr_db: Optional[float] = None) -> None:
    rng = np.random.default_rng(3)
    for index, text in enumerate(SENTENCES):
        out.mkdir(parents=True, exist_ok=True)
        raw = out / f"raw_{index}.wav"
        subprocess.run(["text2wave", "-eval", "(voice_kal_diphone)", "-o", str(raw)], input=text, text=True,
                       check=True, capture_output=True)
        data, rate = sf.read(str(raw), dtype="float32")
        raw.unlink()
        if snr_db is not None:  # pink noise (1/f power) at snr_db below the speech's RMS
            spectrum = np.fft.rfft(rng.normal(size=data.size))
            spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1.0))
            noise = np.fft.irfft(spectrum, data.size)
            noise *= np.sqrt(np.mean(data ** 2) / np.mean(noise ** 2)) * 10 ** (-snr_db / 20)
            data = (data + noise).astype(np.float32)
        sf.write(str(out / f"speech_{index}.wav"), data, rate, subtype="FLOAT")


def music_set(out: Path) -> None:
    tracks = sorted(MUSIC_DIR.glob("*.ogg"))
    picks = [tracks[i] for i in np.linspace(0, len(tracks) - 1, 10).round().astype(int)]
    out.mkdir(parents=True, exist_ok=True)
    for path in picks:
        with sf.SoundFile(str(path)) as f:
            f.seek(int(f.frames * 0.4))
            data = f.read(int(6 * f.samplerate), dtype="float32", always_2d=True).mean(axis=1)
            sf.write(str(out / f"{path.stem}.wav"), data, f.samplerate, subtype="FLOAT")


def tones_set(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(3 * RATE)) / RATE
    cases = {"saw_glide": (150, 600, 0.0, "saw"), "square_vibrato": (220, 220, 0.5, "square"),
             "sine_glide": (300, 900, 0.0, "sine"), "saw_vibrato_low": (98, 98, 0.3, "saw"),
             "bright_saw_glide_vibrato": (200, 500, 0.4, "saw"), "triangle": (440, 440, 0.0, "triangle")}
    for name, (f_start, f_end, vibrato, shape) in cases.items():
        f0 = f_start * (f_end / f_start) ** (t / t[-1]) * 2 ** (vibrato / 12 * np.sin(2 * np.pi * 5.5 * t))
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        harmonics = [(k, 1.0 / k) for k in range(1, 40)] if shape == "saw" else \
            [(k, 1.0 / k) for k in range(1, 40, 2)] if shape == "square" else \
            [(k, 1.0 / k ** 2) for k in range(1, 40, 2)] if shape == "triangle" else [(1, 1.0)]
        audio = sum(a * np.sin(k * phase) * (k * f0 < RATE / 2) for k, a in harmonics)
        audio *= 0.2 / np.max(np.abs(audio)) * np.minimum(1, np.minimum(t, t[-1] - t) / 0.02)
        sf.write(str(out / f"{name}.wav"), audio.astype(np.float32), RATE, subtype="FLOAT")


def noise_set(out: Path, clicks: bool) -> None:
    rng = np.random.default_rng(4 if clicks else 5)
    out.mkdir(parents=True, exist_ok=True)
    for index in range(6):
        audio = np.zeros(int(3 * RATE), dtype=np.float32)
        for start in np.sort(rng.uniform(0, 2.8, size=8 if clicks else 5)):
            s = int(start * RATE)
            if clicks:
                audio[s: s + 8] += rng.choice([-0.5, 0.5])
            else:
                length = int(rng.uniform(0.05, 0.4) * RATE)
                burst = rng.normal(0, 0.1, length) * np.exp(-np.arange(length) / (0.3 * length))
                audio[s: s + length] += burst[: audio.size - s]
        sf.write(str(out / f"{'clicks' if clicks else 'bursts'}_{index}.wav"), audio, RATE, subtype="FLOAT")


HARMONIC, GENERAL = "dgt_harmonic", "dgt_mid"


def materials() -> List[Tuple[str, str, str, Callable[[Path], None]]]:
    """``(name, set, expected preset, builder(out_dir))``."""
    out = []
    for label, soundfont, which in (("TimGM6mb", TUNING_SF, "tuning"), ("MuseScore", HELD_OUT_SF, "held out")):
        out += [
            (f"notes dry ({label})", which, HARMONIC, lambda o, s=soundfont: notes_set(s, o, room=False)),
            (f"notes in a room ({label})", which, HARMONIC, lambda o, s=soundfont: notes_set(s, o, room=True)),
            (f"melodies ({label})", which, HARMONIC, lambda o, s=soundfont: melodies_set(s, o)),
            (f"fast melodies, 0.15 s notes ({label})", which, HARMONIC,
             lambda o, s=soundfont: melodies_set(s, o, note_seconds=0.15)),
            (f"chords ({label})", which, GENERAL, lambda o, s=soundfont: chords_set(s, o)),
            (f"ensemble: melody, bass, chords ({label})", which, GENERAL, lambda o, s=soundfont: ensemble_set(s, o)),
            (f"drum hits ({label})", which, GENERAL, lambda o, s=soundfont: drum_hits_set(s, o)),
            (f"drum loops ({label})", which, GENERAL, lambda o, s=soundfont: drum_loops_set(s, o)),
        ]
    out += [
        ("speech (festival kal_diphone)", "tuning", GENERAL, lambda o: speech_set(o)),
        ("speech in pink noise, 5 dB SNR", "tuning", GENERAL, lambda o: speech_set(o, snr_db=5.0)),
        ("music (wesnoth excerpts)", "tuning", GENERAL, music_set),
        ("synth tones: glides, vibrato", "tuning", HARMONIC, tones_set),
        ("white-noise bursts", "tuning", GENERAL, lambda o: noise_set(o, clicks=False)),
        ("clicks", "tuning", GENERAL, lambda o: noise_set(o, clicks=True)),
    ]
    return out


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(DEFAULT_WORK), help="where the datasets are rendered (kept)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--force", action="store_true", help="render the datasets again")
    parser.add_argument("--only", nargs="*", default=None, help="materials whose name contains one of these")
    args = parser.parse_args(argv)
    started = start_run(__file__)
    import torch

    torch.set_num_threads(args.threads)
    from vschaos.pitch import recommend as rec

    rows: List[Dict[str, object]] = []
    for name, which, expected, build in materials():
        if args.only and not any(word.lower() in name.lower() for word in args.only):
            continue
        root = Path(args.work) / slug(name)
        if args.force and root.exists():
            shutil.rmtree(root)
        if not (root / "data").is_dir():
            build(root / "data")
        files = sorted((root / "data").rglob("*.wav"))
        seconds = sum(sf.info(str(f)).duration for f in files)
        begin = time.perf_counter()
        result = rec.recommend_dataset(root)
        wall = time.perf_counter() - begin
        rows.append({"material": name, "set": which, "expected": expected, "picked": result.preset,
                     "right": result.preset == expected, "files": len(files), "dataset_seconds": round(seconds, 1),
                     "wall_seconds": round(wall, 2), "reason": result.reason, **result.measures.as_dict()})
        print(f"{'ok ' if rows[-1]['right'] else 'BAD'} {name}: {result.line()} [{wall:.1f} s]", flush=True)
    results = {"thresholds": {"min_voiced_share": rec.MIN_VOICED_SHARE, "min_periodicity": rec.MIN_PERIODICITY,
                              "max_jump_share": rec.MAX_JUMP_SHARE, "max_seconds": rec.DEFAULT_MAX_SECONDS},
               "threads": args.threads, "materials": rows}
    markdown = format_markdown(results)
    print(markdown)
    out = write_results("preset_choice", results, markdown, run=started)
    print(f"wrote {out}/preset_choice.md")
    return 0


def format_markdown(results: Dict[str, object]) -> str:
    t = results["thresholds"]
    rows = results["materials"]
    lines = [f"`preset=auto` on rendered and synthesised material: `dgt_harmonic` when voiced share >= "
             f"{t['min_voiced_share']:.2f}, median periodicity >= {t['min_periodicity']:.2f} and jump share <= "
             f"{t['max_jump_share']:.2f}, else `dgt_mid` (at most {t['max_seconds']:.0f} s sampled per dataset, "
             f"{results['threads']} thread).", "",
             "| material | set | expected | picked | voiced | periodicity (median) | jumps | onsets/s | crest (dB) "
             "| files | audio (s) | time (s) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = "" if r["right"] else " **(wrong)**"
        lines.append(f"| {r['material']} | {r['set']} | {r['expected']} | {r['picked']}{mark} | {r['voiced_share']:.0%} "
                     f"| {r['periodicity_median']:.2f} | {r['jump_share']:.1%} | {r['onsets_per_second']:.1f} "
                     f"| {r['crest_db']:.1f} | {r['files']} | {r['dataset_seconds']:.0f} | {r['wall_seconds']:.1f} |")
    for which in ("tuning", "held out"):
        chosen = [r for r in rows if r["set"] == which]
        if chosen:
            lines.append(f"\n{which}: {sum(r['right'] for r in chosen)} of {len(chosen)} materials picked as "
                         f"expected.")
    lines.append("\nMargins (tuning and held-out sets): for each measure, the weakest value among the materials that "
                 "expect `dgt_harmonic` against the strongest among those that expect `dgt_mid`.\n")
    lines += ["| measure | threshold | worst harmonic material | best dgt_mid material |", "|---|---|---|---|"]
    harmonic = [r for r in rows if r["expected"] == HARMONIC]
    general = [r for r in rows if r["expected"] == GENERAL]
    for key, threshold, low_is_bad in (("voiced_share", t["min_voiced_share"], True),
                                       ("periodicity_median", t["min_periodicity"], True),
                                       ("jump_share", t["max_jump_share"], False)):
        if harmonic and general:
            pick = min if low_is_bad else max
            worst = pick(harmonic, key=lambda r: r[key])
            best = (max if low_is_bad else min)(general, key=lambda r: r[key])
            lines.append(f"| {key} | {threshold:.2f} | {worst[key]:.2f} ({worst['material']}) "
                         f"| {best[key]:.2f} ({best['material']}) |")
    if rows:
        top = max(rows, key=lambda r: r["jump_share"])
        lines.append(f"\nThe largest jump share of all is {top['jump_share']:.1%} ({top['material']}): on these materials the "
                     f"tracker, given several notes at once, loses confidence rather than switching between them, so "
                     f"the voiced share and the periodicity decide; the jump share stays a guard.")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
