"""Real material for the experiments, rendered from Debian packages into dataset trees (``ROOT/data/*.wav``).

Each kind is what a musician brings, never the soundfont the presets were tuned on alone:

* ``phrases``: melodies of sampled instruments (several GM programs, random pitches and lengths, seeded) from a
  soundfont through ``fluidsynth``, dry (``room=False``: reverb and chorus off) or in the synth's room (on);
* ``drums``: the soundfont's General MIDI kit (MIDI channel 10): seeded patterns of kick, snare, hats, toms,
  cymbals at varying tempo, with the room or dry;
* ``freepats``: the same drum patterns through ``timidity`` and freepats' kit (another synthesiser, other samples);
* ``speech``: sentences spoken by festival's ``text2wave`` with one speaker's recorded diphones (``kal_diphone``,
  package festvox-kallpc16k);
* ``music``: excerpts of produced music (wesnoth-1.16-music, Ogg Vorbis), cut into ``seconds``-long files.

Never FluidR3 (``fluid-soundfont-gm``, also ``default-GM.sf2``) nor hydrogen's kits: independent checks of the
project use them. Every file is mono float WAV at the requested rate, peak-normalised to -6 dBFS per file
(speech and music) or left at the synth's level (sampled instruments and drums: their dynamics are the material).
Renders are cached: a tree whose ``data/`` exists is reused.
"""
import random
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import List, Sequence

import numpy as np
import soundfile as sf

from vschaos.data.sampled import midi_vlq

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
MUSESCORE = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
WESNOTH_MUSIC = Path("/usr/share/games/wesnoth/1.16/data/core/music")
FORBIDDEN = ("FluidR3", "default-GM.sf2", "hydrogen")
# GM programs of distinct families: piano, organ, nylon guitar, strings, trumpet, alto sax, flute, synth lead
PROGRAMS = (0, 19, 24, 48, 56, 65, 73, 81)
# GM percussion keys: kick, snare, closed/open hat, low/high tom, crash, ride, clap
DRUM_KEYS = {"kick": 36, "snare": 38, "hat": 42, "open_hat": 46, "low_tom": 45, "high_tom": 50, "crash": 49,
             "ride": 51, "clap": 39}
TICKS = 480  # per quarter note
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.", "A musician plays the knobs of a model with no input.",
    "Seven silver swans swam silently seaward.", "Please record the sound of rain on the window.",
    "How much wood would a woodchuck chuck?", "The orchestra tuned to a single note before the concert.",
    "Every voice has a colour of its own.", "She sells sea shells by the sea shore.",
    "Turn the dial slowly and listen to the noise become a tone.", "We measured the latency at every buffer size.",
    "Numbers, not guesses, name the latent components.", "The drummer counted four and the band came in.",
    "A quiet room still has an echo.", "Whisper the words, then shout them across the hall.",
    "Bright sounds have energy in the high frequencies.", "One, two, three, four, five, six, seven, eight.",
    "The synthesiser hums at a low pitch.", "Sound travels faster in water than in air.",
    "Can you hear the difference between these two vowels?", "Morning light fell across the piano keys.",
)
#: more sentences, for a speech set of about two minutes (with SENTENCES: 40 files)
MORE_SENTENCES = (
    "The wind carried the bells across the valley.", "Hold the note until the room stops ringing.",
    "A violin and a voice can share the same melody.", "Listen closely to the breath between the words.",
    "Thunder rolled over the hills long after the flash.", "The old radio crackled and then began to sing.",
    "Count the beats and clap on the second and the fourth.", "Low voices rumble; high voices ring.",
    "The train left the station at a quarter past nine.", "Rain drummed softly on the roof all night.",
    "Nobody noticed the clock had stopped at noon.", "Play it again, slower, and let each note breathe.",
    "The choir rehearsed the chorus twenty times.", "Birds were singing before the sun came up.",
    "Every microphone hears the room as well as the singer.", "Give the drummer some space in the mix.",
    "The engine whined as the car climbed the hill.", "A single candle lit the small wooden stage.",
    "Speak clearly, and the machine will follow your voice.", "At the end of the song, everyone was silent.",
)


class MaterialError(RuntimeError):
    """A material cannot be rendered (its package or tool is missing); the message says which."""


def midi_file(events: Sequence[tuple], tempo_bpm: float = 120.0) -> bytes:
    """Format-0 MIDI of ``(tick, status, data1, data2)`` events (``status`` with its channel; program changes
    take ``data2=None``)."""
    microseconds = int(round(60_000_000 / tempo_bpm))
    track = midi_vlq(0) + bytes([0xFF, 0x51, 0x03]) + microseconds.to_bytes(3, "big")
    now = 0
    for tick, status, data1, data2 in sorted(events, key=lambda e: (e[0], e[1] & 0xF0 != 0xC0, e[1] & 0xF0 == 0x90)):
        track += midi_vlq(tick - now) + bytes([status, data1] + ([] if data2 is None else [data2]))
        now = tick
    track += midi_vlq(TICKS) + bytes([0xFF, 0x2F, 0x00])
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS) + b"MTrk" + struct.pack(">I", len(track)) + track


def phrase_events(rng: random.Random, program: int, seconds: float, tempo_bpm: float) -> List[tuple]:
    """A melody on channel 1: random steps around a register that suits ``program``, notes of 1/8 to 1 beat,
    some legato, some with rests, velocities 50-120."""
    ticks_per_second = TICKS * tempo_bpm / 60.0
    low = {0: 48, 19: 48, 24: 45, 48: 50, 56: 55, 65: 52, 73: 62, 81: 48}.get(program, 50)
    pitch = low + rng.randrange(12)
    events = [(0, 0xC0, program, None)]
    tick = 0
    end = int(seconds * ticks_per_second) - TICKS
    while tick < end:
        length = rng.choice((TICKS // 2, TICKS // 2, TICKS, TICKS, 2 * TICKS, TICKS // 4))
        pitch = min(low + 24, max(low, pitch + rng.choice((-5, -3, -2, -1, 1, 2, 3, 4, 7, 0))))
        gate = length if rng.random() < 0.3 else int(length * rng.uniform(0.5, 0.9))
        velocity = rng.randrange(50, 121)
        events += [(tick, 0x90, pitch, velocity), (tick + gate, 0x80, pitch, 0)]
        tick += length + (TICKS // 2 if rng.random() < 0.15 else 0)
    return events


def drum_events(rng: random.Random, seconds: float, tempo_bpm: float) -> List[tuple]:
    """A pattern on the GM drum channel (10, status nibble 9): kick/snare backbeat, hats in eighths or
    sixteenths, fills on toms, a crash at bar starts now and then, velocities varied."""
    ticks_per_second = TICKS * tempo_bpm / 60.0
    end = int(seconds * ticks_per_second) - TICKS
    sixteenth = TICKS // 4
    hats = rng.choice(("hat", "hat", "ride", "open_hat"))
    dense = rng.random() < 0.5
    events = []
    step = 0
    while step * sixteenth < end:
        tick = step * sixteenth
        beat, in_beat = divmod(step, 4)
        bar_step = step % 16
        hits = []
        if in_beat == 0 and beat % 2 == 0 or (bar_step == 10 and rng.random() < 0.5):
            hits.append("kick")
        if in_beat == 0 and beat % 2 == 1:
            hits.append(rng.choice(("snare", "snare", "clap")))
        if dense or in_beat % 2 == 0:
            hits.append(hats)
        if bar_step == 0 and rng.random() < 0.25:
            hits.append("crash")
        if bar_step >= 12 and rng.random() < 0.3:
            hits.append(rng.choice(("low_tom", "high_tom", "snare")))
        for name in hits:
            velocity = min(127, max(30, int(rng.gauss(95 if name in ("kick", "snare") else 70, 15))))
            events += [(tick, 0x99, DRUM_KEYS[name], velocity), (tick + sixteenth // 2, 0x89, DRUM_KEYS[name], 0)]
        step += 1
    return events


def _check_source(path: Path) -> Path:
    if any(word in str(path) for word in FORBIDDEN):
        raise MaterialError(f"{path}: independent checks use it; render from another source")
    if not path.exists():
        raise MaterialError(f"{path} is missing (Debian: timgm6mb-soundfont, musescore-general-soundfont-small, "
                            f"freepats, festvox-kallpc16k, wesnoth-1.16-music)")
    return path


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise MaterialError(f"{name} is not installed (Debian: apt install {name})")
    return found


def _write_mono(path: Path, audio: np.ndarray, sample_rate: int, peak_db: float = None) -> None:
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    audio = np.nan_to_num(audio.astype(np.float64))
    if peak_db is not None and np.abs(audio).max() > 0:
        audio = audio / np.abs(audio).max() * 10 ** (peak_db / 20)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.astype(np.float32), sample_rate, subtype="FLOAT")


def _render_midi(midi: bytes, soundfont: Path, out: Path, sample_rate: int, room: bool, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="vschaos_material_") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi)
        switch = "1" if room else "0"
        subprocess.run([_tool("fluidsynth"), "-ni", "-q", "-R", switch, "-C", switch, "-g", "0.5", "-O", "float",
                        "-T", "wav", "-F", str(wav), "-r", str(sample_rate), str(soundfont), str(mid)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        audio, _ = sf.read(str(wav), dtype="float64", always_2d=True)
    audio = audio.mean(axis=1)[: int(seconds * sample_rate)]
    _write_mono(out, audio, sample_rate)


def _done(root: Path) -> bool:
    return (root / "data").is_dir() and any((root / "data").glob("*.wav"))


def render_phrases(root: Path, soundfont: Path = TIMGM, *, files: int = 24, seconds: float = 5.0,
                   sample_rate: int = 44100, room: bool = False, seed: int = 0,
                   programs: Sequence[int] = PROGRAMS) -> Path:
    """``files`` melodies of ``seconds`` s, programs in turn (module docstring)."""
    _check_source(soundfont)
    if not _done(root):
        rng = random.Random(seed)
        for i in range(files):
            program = programs[i % len(programs)]
            tempo = rng.uniform(80, 150)
            midi = midi_file(phrase_events(rng, program, seconds, tempo), tempo)
            _render_midi(midi, soundfont, root / "data" / f"phrase_{i:03d}_p{program}.wav", sample_rate, room,
                         seconds)
    return root


def render_drums(root: Path, soundfont: Path = TIMGM, *, files: int = 24, seconds: float = 5.0,
                 sample_rate: int = 44100, room: bool = False, seed: int = 1) -> Path:
    """``files`` drum patterns of ``seconds`` s on the soundfont's GM kit (channel 10)."""
    _check_source(soundfont)
    if not _done(root):
        rng = random.Random(seed)
        for i in range(files):
            tempo = rng.uniform(80, 160)
            _render_midi(midi_file(drum_events(rng, seconds, tempo), tempo), soundfont,
                         root / "data" / f"drums_{i:03d}.wav", sample_rate, room, seconds)
    return root


def render_freepats_drums(root: Path, *, files: int = 24, seconds: float = 5.0, sample_rate: int = 44100,
                          seed: int = 2) -> Path:
    """The drum patterns through timidity and freepats (another synthesiser and kit)."""
    _check_source(Path("/usr/share/midi/freepats"))
    timidity = _tool("timidity")
    if not _done(root):
        rng = random.Random(seed)
        with tempfile.TemporaryDirectory(prefix="vschaos_material_") as tmp:
            for i in range(files):
                tempo = rng.uniform(80, 160)
                mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
                mid.write_bytes(midi_file(drum_events(rng, seconds, tempo), tempo))
                subprocess.run([timidity, "-idq", "-Ow", "-s", str(sample_rate), "-o", str(wav), str(mid)],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                audio, _ = sf.read(str(wav), dtype="float64", always_2d=True)
                _write_mono(root / "data" / f"freepats_{i:03d}.wav", audio[: int(seconds * sample_rate)],
                            sample_rate)
    return root


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    if rate == target:
        return audio
    return AF.resample(torch.from_numpy(np.ascontiguousarray(audio)), rate, target).numpy()


def render_speech(root: Path, *, sample_rate: int = 44100, sentences: Sequence[str] = SENTENCES) -> Path:
    """One file per sentence, festival's ``kal_diphone`` voice (16 kHz, resampled), peak -6 dBFS."""
    _check_source(Path("/usr/share/festival/voices/english/kal_diphone"))
    text2wave = _tool("text2wave")
    if not _done(root):
        with tempfile.TemporaryDirectory(prefix="vschaos_material_") as tmp:
            for i, sentence in enumerate(sentences):
                text, wav = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
                text.write_text(sentence + "\n")
                subprocess.run([text2wave, "-eval", "(voice_kal_diphone)", "-o", str(wav), str(text)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                audio, rate = sf.read(str(wav), dtype="float64", always_2d=True)
                _write_mono(root / "data" / f"speech_{i:03d}.wav", _resample(audio.mean(axis=1), rate, sample_rate),
                            sample_rate, peak_db=-6.0)
    return root


def render_music(root: Path, *, files: int = 24, seconds: float = 5.0, sample_rate: int = 44100,
                 seed: int = 3) -> Path:
    """``files`` excerpts of ``seconds`` s from the wesnoth tracks (one per track in turn, random offsets)."""
    _check_source(WESNOTH_MUSIC)
    if not _done(root):
        rng = random.Random(seed)
        tracks = sorted(WESNOTH_MUSIC.glob("*.ogg"))
        for i in range(files):
            track = tracks[(i * 7) % len(tracks)]
            audio, rate = sf.read(str(track), dtype="float64", always_2d=True)
            length = int(seconds * rate)
            start = rng.randrange(max(1, audio.shape[0] - length))
            excerpt = _resample(audio[start:start + length].mean(axis=1), rate, sample_rate)
            _write_mono(root / "data" / f"music_{i:03d}.wav", excerpt, sample_rate, peak_db=-6.0)
    return root


def render(kind: str, root: Path, **options) -> Path:
    """Render material ``kind`` (``phrases``, ``phrases_room``, ``drums``, ``drums_room``, ``freepats``,
    ``speech``, ``music``) into ``root``; options go to the renderer."""
    renderers = {"phrases": lambda: render_phrases(root, **options),
                 "phrases_room": lambda: render_phrases(root, room=True, **options),
                 "drums": lambda: render_drums(root, **options),
                 "drums_room": lambda: render_drums(root, room=True, **options),
                 "freepats": lambda: render_freepats_drums(root, **options),
                 "speech": lambda: render_speech(root, **options),
                 "music": lambda: render_music(root, **options)}
    if kind not in renderers:
        raise MaterialError(f"unknown material {kind!r}; one of {', '.join(renderers)}")
    return renderers[kind]()


def link_tree(root: Path, files: Sequence[Path]) -> Path:
    """A dataset tree ``root/data`` of symbolic links to ``files`` (made once; each link named after its tree and
    file, as two renders may share file names)."""
    if not (root / "data").is_dir():
        (root / "data").mkdir(parents=True)
        for path in files:
            (root / "data" / f"{path.parent.parent.name}_{path.name}").symlink_to(path.resolve())
    return root
