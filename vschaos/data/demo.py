"""A small, musical, fully labelled demo dataset synthesised with numpy (seconds to build).

Four instruments with different spectra and envelopes play seeded melodies over about three and
a half octaves (MIDI 41..84), with rests (silent gaps). The tree follows the vschaos2 format::

    OUT/data/<instrument>/<instrument>_<nn>.wav       16-bit PCM, mono
    OUT/metadata/instrument/{metadata.txt,classes.txt}    single labels (ids)
    OUT/metadata/pitch/{metadata.txt,classes.txt,tracks/*.txt}    pitch class, C=0..B=11
    OUT/metadata/octave/{metadata.txt,classes.txt,tracks/*.txt}   id = midi // 12, name = id - 1

(ids and names from :mod:`vschaos.notes`, as the pitch extractor writes them).

Track lines are ``onset,offset<TAB>value`` in seconds and cover each file end to end, with
``none`` for rests. The same seed gives the same bytes.
"""
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import soundfile as sf

from vschaos.data.metadata import format_classes, format_metadata
from vschaos.io import atomic_write, atomic_write_text
from vschaos.notes import midi_to_hz, midi_to_pitch_class_octave, octave_classes, pitch_classes

INSTRUMENTS: Tuple[str, ...] = ("brass", "clarinet", "bell", "flute")
# MIDI ranges per instrument (inclusive); together they span MIDI 41..84
PITCH_RANGES: Dict[str, Tuple[int, int]] = {
    "brass": (41, 65), "clarinet": (50, 74), "bell": (55, 79), "flute": (60, 84)}
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
DEFAULT_SAMPLE_RATE = 44100
DEFAULT_MINUTES = 8.0  # enough for the demo model to generalise
DEFAULT_FILES_PER_INSTRUMENT = 8
TABLE_SIZE = 4096


def _wavetable(amplitudes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One period ``(TABLE_SIZE,)`` with the given harmonic amplitudes (harmonic k = index k-1)."""
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    phases = rng.uniform(0, 2 * math.pi, len(amplitudes))
    spectrum[1:len(amplitudes) + 1] = amplitudes * np.exp(1j * phases)
    table = np.fft.irfft(spectrum, n=TABLE_SIZE) * (TABLE_SIZE / 2)
    return table / (np.max(np.abs(table)) + 1e-12)


def _harmonic_amplitudes(instrument: str, n_harmonics: int) -> np.ndarray:
    k = np.arange(1, n_harmonics + 1, dtype=np.float64)
    if instrument == "brass":  # saw-like, slightly darkened
        return np.exp(-k / 25.0) / k
    if instrument == "clarinet":  # square-like: odd harmonics dominate
        return np.where(k % 2 == 1, 1.0 / k, 0.03 / k)
    if instrument == "flute":  # few harmonics
        return np.array([1.0, 0.35, 0.12, 0.06, 0.025, 0.01])[:n_harmonics]
    raise ValueError(instrument)


def _envelope(instrument: str, n: int, sample_rate: int) -> np.ndarray:
    """Amplitude envelope ``(n,)`` that ends at zero (the note's release lies inside its interval)."""
    t = np.arange(n) / sample_rate
    duration = n / sample_rate
    attack = {"brass": 0.04, "clarinet": 0.03, "bell": 0.003, "flute": 0.08}[instrument]
    release = min(0.06, duration / 4)
    rise = np.clip(t / attack, 0.0, 1.0)
    fall = np.clip((duration - t) / release, 0.0, 1.0)
    if instrument == "bell":
        body = np.exp(-t / 0.6)
    elif instrument == "brass":
        body = 0.8 + 0.2 * np.exp(-t / 0.1)  # accent then sustain
    else:
        body = np.ones(n)
    return rise * fall * body


def _vibrato_cycles(freq: float, n: int, sample_rate: int, depth_cents: float, rate: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Running phase in cycles ``(n,)`` of a tone at ``freq`` with delayed vibrato."""
    t = np.arange(n) / sample_rate
    onset_fade = np.clip((t - 0.15) / 0.3, 0.0, 1.0)
    cents = depth_cents * onset_fade * np.sin(2 * math.pi * rate * t + rng.uniform(0, 2 * math.pi))
    inst = freq * 2.0 ** (cents / 1200.0)
    return np.cumsum(inst / sample_rate) + rng.uniform(0, 1)


def synthesise_note(instrument: str, midi: int, n: int, sample_rate: int,
                    rng: np.random.Generator) -> np.ndarray:
    """One note of ``n`` samples, float64 ``(n,)``, peak about 1."""
    freq = midi_to_hz(midi)
    envelope = _envelope(instrument, n, sample_rate)
    nyquist_margin = 0.45 * sample_rate
    if instrument == "bell":  # inharmonic partials, higher ones decay faster
        t = np.arange(n) / sample_rate
        out = np.zeros(n)
        for ratio, amp, decay in ((1.0, 1.0, 1.2), (2.0, 0.5, 0.8), (2.41, 0.45, 0.6), (3.01, 0.3, 0.4),
                                  (4.17, 0.25, 0.3), (5.43, 0.15, 0.2), (6.79, 0.1, 0.15)):
            if ratio * freq < nyquist_margin:
                out += amp * np.exp(-t / decay) * np.sin(2 * math.pi * ratio * freq * t + rng.uniform(0, 6.3))
        return envelope * out / (np.max(np.abs(out)) + 1e-12)
    depth = {"brass": 8.0, "clarinet": 5.0, "flute": 18.0}[instrument]
    cycles = _vibrato_cycles(freq, n, sample_rate, depth, rng.uniform(4.5, 6.0), rng)
    max_harmonics = {"brass": 60, "clarinet": 40, "flute": 6}[instrument]
    # band-limit: no partial above ~0.45 sr even at the top of the vibrato
    n_harmonics = max(1, min(max_harmonics, int(nyquist_margin / (freq * 1.02))))
    table = _wavetable(_harmonic_amplitudes(instrument, n_harmonics), rng)
    position = (cycles % 1.0) * TABLE_SIZE
    tone = np.interp(position, np.arange(TABLE_SIZE + 1), np.append(table, table[0]))
    if instrument == "flute":  # breath: noise shaped by the same envelope, a little brighter
        breath = rng.standard_normal(n)
        breath = np.diff(breath, prepend=0.0) * 0.5 + breath * 0.5
        tone = tone + 0.12 * breath
    return envelope * tone


def _melody(instrument: str, seconds: float, rng: np.random.Generator
            ) -> List[Tuple[float, float, int]]:
    """Seeded notes ``(onset, offset, midi)`` in a random major key, with rests, within ``seconds``."""
    low, high = PITCH_RANGES[instrument]
    tonic = int(rng.integers(0, 12))
    scale = [m for m in range(low, high + 1) if (m - tonic) % 12 in MAJOR_STEPS]
    beat = float(rng.uniform(0.3, 0.45))
    position = int(rng.integers(0, len(scale)))
    time = float(rng.uniform(0.2, 0.5))  # leading silence
    notes = []
    while True:
        length = beat * float(rng.choice([1, 1, 2, 2, 3, 4]))
        if instrument == "bell":
            length = max(length, 2 * beat)
        if time + length > seconds - 0.2:
            break
        position = int(np.clip(position + rng.choice([-3, -2, -1, -1, 1, 1, 2, 3, 5, -5]), 0, len(scale) - 1))
        notes.append((time, time + length, scale[position]))
        time += length
        if rng.random() < 0.3:  # a rest
            time += beat * float(rng.choice([1, 2]))
    return notes


def _track_lines(notes: List[Tuple[float, float, int]], duration: float, value) -> str:
    """Track file text covering ``[0, duration]``: note intervals with ``value(midi)``, rests ``none``."""
    lines = []
    cursor = 0.0
    for onset, offset, midi in notes:
        if onset > cursor + 1e-9:
            lines.append(f"{cursor:.6f},{onset:.6f}\tnone")
        lines.append(f"{onset:.6f},{offset:.6f}\t{value(midi)}")
        cursor = offset
    if duration > cursor + 1e-9:
        lines.append(f"{cursor:.6f},{duration:.6f}\tnone")
    return "\n".join(lines) + "\n"


def make_demo_dataset(out_dir: Union[str, Path], seed: int = 0, sample_rate: int = DEFAULT_SAMPLE_RATE,
                      minutes: float = DEFAULT_MINUTES,
                      files_per_instrument: int = DEFAULT_FILES_PER_INSTRUMENT, force: bool = False) -> Path:
    """Synthesise the demo dataset into ``out_dir`` (created; existing demo files are replaced).

    Returns ``out_dir``. The same ``(seed, sample_rate, minutes, files_per_instrument)`` gives
    byte-identical files. A non-empty ``out_dir/metadata/`` may hold a user's own labels: without ``force``
    it is refused (``FileExistsError``) before anything is written.
    """
    out = Path(out_dir)
    metadata_dir = out / "metadata"
    if not force and metadata_dir.is_dir() and any(metadata_dir.iterdir()):
        existing = ", ".join(sorted(p.name for p in metadata_dir.iterdir()))
        raise FileExistsError(f"{metadata_dir} already holds {existing}: the demo would overwrite "
                              f"instrument/pitch/octave there; pass --force to replace them, or choose another folder")
    rng = np.random.default_rng(seed)
    file_seconds = minutes * 60.0 / (len(INSTRUMENTS) * files_per_instrument)
    if file_seconds < 1.0:
        raise ValueError(f"minutes={minutes} is too short for {len(INSTRUMENTS) * files_per_instrument} files")
    n_samples = int(round(file_seconds * sample_rate))
    duration = n_samples / sample_rate
    metadata: Dict[str, Dict[str, Optional[str]]] = {"instrument": {}, "pitch": {}, "octave": {}}
    for instrument_id, instrument in enumerate(INSTRUMENTS):
        for index in range(files_per_instrument):
            stem = f"{instrument}_{index:02d}"
            key = f"data/{instrument}/{stem}.wav"
            notes = _melody(instrument, duration, rng)
            audio = 1e-4 * rng.standard_normal(n_samples)  # faint noise floor in the rests
            for onset, offset, midi in notes:
                start, stop = int(round(onset * sample_rate)), int(round(offset * sample_rate))
                gain = float(rng.uniform(0.35, 0.7))
                audio[start:stop] += gain * synthesise_note(instrument, midi, stop - start, sample_rate, rng)
            audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
            atomic_write(out / key, lambda tmp, a=audio: sf.write(tmp, a, sample_rate, subtype="PCM_16", format="WAV"))
            metadata["instrument"][key] = str(instrument_id)
            # ids as vschaos.notes defines them (and the pitch extractor writes them)
            for task, value in (("pitch", lambda m: midi_to_pitch_class_octave(m)[0]),
                                ("octave", lambda m: midi_to_pitch_class_octave(m)[1])):
                atomic_write_text(out / "metadata" / task / "tracks" / f"{stem}.txt",
                                  _track_lines(notes, duration, value))
                metadata[task][key] = f"tracks/{stem}.txt"
    classes = {"instrument": list(enumerate(INSTRUMENTS)), "pitch": pitch_classes(), "octave": octave_classes()}
    for task, entries in metadata.items():
        # file order (instrument by instrument), as the demo has always been written: same bytes
        atomic_write_text(out / "metadata" / task / "metadata.txt", format_metadata(entries, sort_keys=False))
        atomic_write_text(out / "metadata" / task / "classes.txt", format_classes(classes[task]))
    return out
