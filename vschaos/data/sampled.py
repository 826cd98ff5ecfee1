"""A dataset of real sampled instrument notes, rendered one note at a time with the ``fluidsynth``
command-line synthesiser from any General MIDI SoundFont (``.sf2``/``.sf3``).

For every program, MIDI note and velocity a tiny standard MIDI file (program change, note on at 0,
note off after ``hold`` seconds) is written and rendered with::

    fluidsynth -ni -q -R 0 -C 0 -g GAIN -o synth.dynamic-sample-loading=1 -O float -T wav -F out.wav -r SR FONT note.mid

(reverb and chorus off: the dataset holds the dry samples). The stereo render is mixed to mono
(mean of the channels), cut or zero-padded to exactly ``seconds`` (fluidsynth renders a release
tail past the end of the MIDI file) and written as 16-bit PCM. **Nothing is normalised**: the
level is the SoundFont's at fluidsynth's master gain ``GAIN`` (fluidsynth's own default 0.2,
which leaves most GM notes peaking between -40 and -15 dBFS). A render that would clip at 16 bits is
an error (lower ``--gain``); a silent render (the preset does not cover that note) is skipped
and reported. Output tree::

    OUT/data/<instrument>/<instrument>_m<midi>_v<velocity>.wav
    OUT/metadata/instrument/{metadata.txt,classes.txt}   single labels, ids in --programs order
    OUT/metadata/pitch/{metadata.txt,classes.txt}        single labels, C=0..B=11 (vschaos.notes)
    OUT/metadata/octave/{metadata.txt,classes.txt}       single labels, id = midi // 12
    OUT/metadata/midi/metadata.txt                        single int: the MIDI note played
    OUT/notes.csv                                         the truth: file, instrument, program, midi,
                                                          velocity, f0_hz (equal temperament, A4 = 440 Hz),
                                                          peak_dbfs, rms_dbfs

``notes.csv`` lies outside ``metadata/`` so that it is not read as a label task. All files are
written atomically; an existing dataset is refused unless ``force``.
"""
import csv
import io
import math
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf

from vschaos.data.audio import scan_audio_files
from vschaos.data.metadata import format_classes, format_metadata
from vschaos.io import atomic_write, atomic_write_text
from vschaos.notes import midi_to_hz, midi_to_pitch_class_octave, octave_classes, pitch_classes

# General MIDI level 1 program names (program numbers 0..127), used to name instrument folders.
GM_PROGRAM_NAMES: Tuple[str, ...] = (
    "acoustic_grand_piano", "bright_acoustic_piano", "electric_grand_piano", "honky_tonk_piano",
    "electric_piano_1", "electric_piano_2", "harpsichord", "clavinet",
    "celesta", "glockenspiel", "music_box", "vibraphone", "marimba", "xylophone", "tubular_bells", "dulcimer",
    "drawbar_organ", "percussive_organ", "rock_organ", "church_organ", "reed_organ", "accordion", "harmonica",
    "tango_accordion",
    "acoustic_guitar_nylon", "acoustic_guitar_steel", "electric_guitar_jazz", "electric_guitar_clean",
    "electric_guitar_muted", "overdriven_guitar", "distortion_guitar", "guitar_harmonics",
    "acoustic_bass", "electric_bass_finger", "electric_bass_pick", "fretless_bass", "slap_bass_1", "slap_bass_2",
    "synth_bass_1", "synth_bass_2",
    "violin", "viola", "cello", "contrabass", "tremolo_strings", "pizzicato_strings", "orchestral_harp", "timpani",
    "string_ensemble_1", "string_ensemble_2", "synth_strings_1", "synth_strings_2", "choir_aahs", "voice_oohs",
    "synth_voice", "orchestra_hit",
    "trumpet", "trombone", "tuba", "muted_trumpet", "french_horn", "brass_section", "synth_brass_1",
    "synth_brass_2",
    "soprano_sax", "alto_sax", "tenor_sax", "baritone_sax", "oboe", "english_horn", "bassoon", "clarinet",
    "piccolo", "flute", "recorder", "pan_flute", "blown_bottle", "shakuhachi", "whistle", "ocarina",
    "lead_square", "lead_sawtooth", "lead_calliope", "lead_chiff", "lead_charang", "lead_voice", "lead_fifths",
    "lead_bass_lead",
    "pad_new_age", "pad_warm", "pad_polysynth", "pad_choir", "pad_bowed", "pad_metallic", "pad_halo", "pad_sweep",
    "fx_rain", "fx_soundtrack", "fx_crystal", "fx_atmosphere", "fx_brightness", "fx_goblins", "fx_echoes",
    "fx_sci_fi",
    "sitar", "banjo", "shamisen", "koto", "kalimba", "bagpipe", "fiddle", "shanai",
    "tinkle_bell", "agogo", "steel_drums", "woodblock", "taiko_drum", "melodic_tom", "synth_drum", "reverse_cymbal",
    "guitar_fret_noise", "breath_noise", "seashore", "bird_tweet", "telephone_ring", "helicopter", "applause",
    "gunshot",
)

# Eight contrasting sustained, plucked and struck instruments (GM numbers).
DEFAULT_PROGRAMS: Tuple[int, ...] = (0, 11, 19, 24, 40, 56, 71, 73)
DEFAULT_NOTES = "36:96:3"
DEFAULT_VELOCITIES: Tuple[int, ...] = (100,)
DEFAULT_SECONDS = 3.0
DEFAULT_HOLD = 2.0
DEFAULT_SAMPLE_RATE = 44100
DEFAULT_GAIN = 0.2  # fluidsynth's own default master gain
SILENCE_PEAK = 10.0 ** (-90.0 / 20.0)  # a render below -90 dBFS peak is "the preset has no sample there"
PCM16_MAX = 32767.0 / 32768.0

_TICKS_PER_QUARTER = 1000
_MICROSECONDS_PER_QUARTER = 500000  # 120 bpm: one tick is 0.5 ms


class SampledDatasetError(RuntimeError):
    """The dataset cannot be rendered (fluidsynth missing or failing, bad arguments, clipping...)."""


@dataclass(frozen=True)
class NoteSpec:
    """One note to render: GM ``program`` (0..127), ``midi`` note, ``velocity`` (1..127)."""

    program: int
    midi: int
    velocity: int


@dataclass
class RenderedNote:
    """A note written to the dataset (``key`` is ``data/...``) and its measured level."""

    key: str
    instrument: str
    spec: NoteSpec
    f0_hz: float
    peak_dbfs: float
    rms_dbfs: float


def parse_note_range(text: str) -> List[int]:
    """``"START:STOP:STEP"`` (STOP included, STEP default 1) or a comma list ``"60,64,67"`` -> MIDI notes.

    Raises ``ValueError`` naming the problem for notes outside 0..127 or a malformed range.
    """
    text = str(text).strip()
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 1
            if step <= 0 or stop < start:
                raise ValueError
            notes = list(range(start, stop + 1, step))
        else:
            notes = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"--notes {text!r}: expected START:STOP[:STEP] (STOP included, STEP > 0) "
                         f"or a comma list such as 60,64,67") from None
    if not notes:
        raise ValueError(f"--notes {text!r}: no notes")
    bad = [n for n in notes if not 0 <= n <= 127]
    if bad:
        raise ValueError(f"--notes {text!r}: MIDI notes must lie in 0..127, got {bad[:5]}")
    return notes


def instrument_name(program: int) -> str:
    """Folder/class name of a GM program: ``"p071_clarinet"`` (number first: sorts by program)."""
    if not 0 <= program <= 127:
        raise ValueError(f"program {program} outside 0..127")
    return f"p{program:03d}_{GM_PROGRAM_NAMES[program]}"


def midi_vlq(value: int) -> bytes:
    """``value`` (>= 0) as a MIDI variable-length quantity (delta times in standard MIDI files)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def note_midi_file(spec: NoteSpec, hold: float, seconds: float) -> bytes:
    """A format-0 standard MIDI file: tempo 120 bpm, program change, note on at 0, note off at
    ``hold`` s, end of track at ``seconds`` s (channel 1, never the drum channel)."""
    ticks_per_second = _TICKS_PER_QUARTER * 1_000_000 // _MICROSECONDS_PER_QUARTER
    hold_ticks = int(round(hold * ticks_per_second))
    end_ticks = max(int(round(seconds * ticks_per_second)), hold_ticks)
    events = (midi_vlq(0) + bytes([0xFF, 0x51, 0x03]) + _MICROSECONDS_PER_QUARTER.to_bytes(3, "big")
              + midi_vlq(0) + bytes([0xC0, spec.program])
              + midi_vlq(0) + bytes([0x90, spec.midi, spec.velocity])
              + midi_vlq(hold_ticks) + bytes([0x80, spec.midi, 0])
              + midi_vlq(end_ticks - hold_ticks) + bytes([0xFF, 0x2F, 0x00]))
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, _TICKS_PER_QUARTER)
    return header + b"MTrk" + struct.pack(">I", len(events)) + events


def find_fluidsynth(command: str = "fluidsynth") -> str:
    """Absolute path of the fluidsynth executable, or ``SampledDatasetError`` saying how to get it."""
    found = shutil.which(command)
    if found is None:
        raise SampledDatasetError(
            f"fluidsynth not found ({command!r} is not an executable on PATH): install the command-line "
            f"synthesiser (Debian/Ubuntu: apt install fluidsynth; macOS: brew install fluid-synth) "
            f"or pass --fluidsynth /path/to/fluidsynth")
    return found


def render_note(fluidsynth: str, soundfont: Path, spec: NoteSpec, sample_rate: int, seconds: float,
                hold: float, gain: float, workdir: Path) -> np.ndarray:
    """Render one note; returns mono float64 ``(round(seconds * sample_rate),)`` as fluidsynth wrote it
    (mean of its channels, cut or zero-padded to length). Raises ``SampledDatasetError`` on failure."""
    stem = f"p{spec.program:03d}_m{spec.midi:03d}_v{spec.velocity:03d}"
    midi_path = workdir / f"{stem}.mid"
    wav_path = workdir / f"{stem}.wav"
    midi_path.write_bytes(note_midi_file(spec, hold, seconds))
    command = [fluidsynth, "-ni", "-q", "-R", "0", "-C", "0", "-g", f"{gain:g}",
               "-o", "synth.dynamic-sample-loading=1", "-O", "float", "-T", "wav",
               "-F", str(wav_path), "-r", str(int(sample_rate)), str(soundfont), str(midi_path)]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0 or not wav_path.is_file():
        tail = (result.stderr or result.stdout or "").strip().splitlines()[-3:]
        raise SampledDatasetError(f"fluidsynth failed on program {spec.program} note {spec.midi} velocity "
                                  f"{spec.velocity} (exit {result.returncode}): {' | '.join(tail) or 'no output'}")
    try:
        data, rate = sf.read(str(wav_path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise SampledDatasetError(f"fluidsynth wrote an unreadable file for program {spec.program} note "
                                  f"{spec.midi}: {error}") from error
    finally:
        midi_path.unlink(missing_ok=True)
        wav_path.unlink(missing_ok=True)
    if int(rate) != int(sample_rate):
        raise SampledDatasetError(f"fluidsynth rendered at {rate} Hz instead of the requested {sample_rate} Hz")
    mono = data.mean(axis=1)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n, dtype=np.float64)
    out[:min(n, len(mono))] = mono[:n]
    return out


def _dbfs(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else -math.inf


def _existing_dataset(out: Path) -> List[Path]:
    return [p for p in (out / "data", out / "metadata", out / "notes.csv") if p.exists()]


def make_sampled_dataset(out_dir: Union[str, Path], soundfont: Union[str, Path],
                         programs: Sequence[int] = DEFAULT_PROGRAMS, notes: Sequence[int] = (),
                         velocities: Sequence[int] = DEFAULT_VELOCITIES, seconds: float = DEFAULT_SECONDS,
                         hold: Optional[float] = None, sample_rate: int = DEFAULT_SAMPLE_RATE,
                         gain: float = DEFAULT_GAIN, force: bool = False, fluidsynth: str = "fluidsynth",
                         progress: Optional[Callable[[str], None]] = None,
                         warn: Optional[Callable[[str], None]] = None) -> Tuple[List[RenderedNote], List[NoteSpec]]:
    """Render every (program, note, velocity) into the dataset tree at ``out_dir``.

    ``notes`` defaults to ``parse_note_range(DEFAULT_NOTES)``; ``hold`` (note-on time) defaults to
    ``min(DEFAULT_HOLD, 2/3 of seconds)`` so the release lies inside the file. Returns the notes written
    and the notes skipped as silent; ``progress`` gets a line per note, ``warn`` the warnings (files of an
    earlier dataset left in ``data/``). Raises ``SampledDatasetError`` (or ``FileExistsError`` when
    ``out_dir`` already holds a dataset and not ``force``; ``ValueError`` on bad arguments).
    """
    out = Path(out_dir)
    notes = list(notes) or parse_note_range(DEFAULT_NOTES)
    programs, velocities = [int(p) for p in programs], [int(v) for v in velocities]
    if not programs:
        raise ValueError("--programs: at least one program")
    for program in programs:
        instrument_name(program)  # range check
    if len(set(programs)) != len(programs):
        raise ValueError(f"--programs {programs}: a program is listed twice")
    if not velocities or any(not 1 <= v <= 127 for v in velocities):
        raise ValueError(f"--velocities {velocities}: each must lie in 1..127")
    if len(set(velocities)) != len(velocities) or len(set(notes)) != len(notes):
        raise ValueError("--notes/--velocities: a value is listed twice")
    if not seconds > 0:
        raise ValueError(f"--seconds {seconds}: must be positive")
    hold = min(DEFAULT_HOLD, seconds * 2.0 / 3.0) if hold is None else float(hold)
    if not 0 < hold <= seconds:
        raise ValueError(f"--hold {hold}: must lie in (0, seconds={seconds}]")
    if not 0 < gain < 10:
        raise ValueError(f"--gain {gain}: fluidsynth accepts 0 < gain < 10")
    font = Path(soundfont)
    if not font.is_file():
        raise SampledDatasetError(f"soundfont {font} not found")
    existing = _existing_dataset(out)
    if existing and not force:
        raise FileExistsError(f"{out} already holds a dataset ({', '.join(p.name for p in existing)}); "
                              f"pass --force to write over it")
    executable = find_fluidsynth(fluidsynth)

    rendered: List[RenderedNote] = []
    silent: List[NoteSpec] = []
    with tempfile.TemporaryDirectory(prefix="vschaos_fluidsynth_") as tmp:
        for program in programs:
            instrument = instrument_name(program)
            for midi in notes:
                for velocity in velocities:
                    spec = NoteSpec(program, midi, velocity)
                    audio = render_note(executable, font, spec, sample_rate, seconds, hold, gain, Path(tmp))
                    peak = float(np.max(np.abs(audio)))
                    if not np.all(np.isfinite(audio)):
                        raise SampledDatasetError(f"fluidsynth rendered NaN/Inf for {instrument} note {midi}")
                    if peak < SILENCE_PEAK:
                        silent.append(spec)
                        if progress:
                            progress(f"skipped {instrument} note {midi} velocity {velocity}: silent "
                                     f"(peak {_dbfs(peak):.1f} dBFS; the preset has no sample there)")
                        continue
                    if peak > PCM16_MAX:
                        raise SampledDatasetError(
                            f"{instrument} note {midi} velocity {velocity} peaks at {_dbfs(peak):+.1f} dBFS and "
                            f"would clip at 16 bits: lower --gain (now {gain:g}); nothing is normalised")
                    key = f"data/{instrument}/{instrument}_m{midi:03d}_v{velocity:03d}.wav"
                    atomic_write(out / key, lambda path, a=audio: sf.write(path, a, int(sample_rate),
                                                                           subtype="PCM_16", format="WAV"))
                    rms = float(np.sqrt(np.mean(audio ** 2)))
                    rendered.append(RenderedNote(key, instrument, spec, float(midi_to_hz(midi)),
                                                 _dbfs(peak), _dbfs(rms)))
                    if progress:
                        progress(f"{key}: peak {_dbfs(peak):.1f} dBFS")
    written = {note.key for note in rendered}
    stale = [path for path in scan_audio_files(out / "data") if path.relative_to(out).as_posix() not in written]
    if stale and warn:
        warn(f"warning: {len(stale)} sound files under {out / 'data'} were not written by this run and "
                 f"stay unlabelled (e.g. {stale[0]}); remove them for a clean dataset")
    if not rendered:
        raise SampledDatasetError(f"every note rendered silent: does {font} hold General MIDI presets "
                                  f"for programs {programs} (bank 0)?")
    _write_metadata(out, programs, rendered)
    return rendered, silent


def _write_metadata(out: Path, programs: Sequence[int], rendered: Sequence[RenderedNote]) -> None:
    instruments = [instrument_name(p) for p in programs]
    instrument_ids = {name: i for i, name in enumerate(instruments)}
    tasks: Dict[str, Dict[str, Optional[str]]] = {"instrument": {}, "pitch": {}, "octave": {}, "midi": {}}
    for note in rendered:
        pitch_class, octave = midi_to_pitch_class_octave(note.spec.midi)
        tasks["instrument"][note.key] = str(instrument_ids[note.instrument])
        tasks["pitch"][note.key] = str(pitch_class)
        tasks["octave"][note.key] = str(octave)
        tasks["midi"][note.key] = str(note.spec.midi)
    classes = {"instrument": list(enumerate(instruments)), "pitch": pitch_classes(), "octave": octave_classes()}
    for task, entries in tasks.items():
        atomic_write_text(out / "metadata" / task / "metadata.txt", format_metadata(entries))
        if task in classes:
            atomic_write_text(out / "metadata" / task / "classes.txt", format_classes(classes[task]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "instrument", "program", "midi", "velocity", "f0_hz", "peak_dbfs", "rms_dbfs"])
    for note in sorted(rendered, key=lambda n: n.key):
        writer.writerow([note.key, note.instrument, note.spec.program, note.spec.midi, note.spec.velocity,
                         f"{note.f0_hz:.4f}", f"{note.peak_dbfs:.2f}", f"{note.rms_dbfs:.2f}"])
    atomic_write_text(out / "notes.csv", buffer.getvalue())


def read_notes_csv(root: Union[str, Path]) -> List[Dict[str, object]]:
    """Rows of ``root/notes.csv`` with typed fields (program, midi, velocity: int; f0_hz, dBFS: float)."""
    path = Path(root) / "notes.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    typed: List[Dict[str, object]] = []
    for row in rows:
        typed.append({"file": row["file"], "instrument": row["instrument"], "program": int(row["program"]),
                      "midi": int(row["midi"]), "velocity": int(row["velocity"]), "f0_hz": float(row["f0_hz"]),
                      "peak_dbfs": float(row["peak_dbfs"]), "rms_dbfs": float(row["rms_dbfs"])})
    return typed
