"""Pitch naming convention shared by the pitch tracker, the track files, the demo dataset and the models.

A leaf module (it imports nothing from vschaos), so that every layer can name notes.

Tasks ``pitch`` and ``octave`` (see docs/INTERFACES.md):

- ``midi = round(69 + 12 * log2(f / 440))``
- ``pitch`` id = ``midi % 12`` (C=0 ... B=11), names ``C C# D D# E F F# G G# A A# B``
- ``octave`` id = ``midi // 12`` (0..10), name = ``str(midi // 12 - 1)`` (octaves -1..9)

So A4 = 440 Hz is pitch 9 ``A``, octave id 5 named ``4``; middle C (261.63 Hz) is pitch 0 ``C``,
octave id 5 named ``4``.
"""
from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, List, Tuple, Union

if TYPE_CHECKING:  # not imported at run time: the demo synthesiser and the data tools use these without torch
    import torch

PITCH_CLASS_NAMES: Tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
N_PITCH_CLASSES = 12
N_OCTAVES = 11  # MIDI 0..127 spans octave ids 0..10
MIDI_MIN, MIDI_MAX = 0, 127
MAX_TRANSPOSE_SEMITONES = 48.0  # the widest transposition of a pitch latent (export attribute, generate.py)


def hz_to_midi(frequency: Union[float, torch.Tensor]) -> Union[float, torch.Tensor]:
    """Fractional MIDI note number ``69 + 12 log2(f / 440)``; NaN stays NaN (tensor input)."""
    torch_module = sys.modules.get("torch")  # a tensor exists only once torch is loaded
    if torch_module is not None and isinstance(frequency, torch_module.Tensor):
        return 69.0 + 12.0 * torch_module.log2(frequency / 440.0)
    return 69.0 + 12.0 * math.log2(frequency / 440.0)


def midi_to_hz(midi: Union[float, torch.Tensor]) -> Union[float, torch.Tensor]:
    """Inverse of :func:`hz_to_midi`."""
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def midi_to_pitch_class_octave(midi: int) -> Tuple[int, int]:
    """``(pitch class id, octave id)`` of an integer MIDI note (``midi % 12``, ``midi // 12``).

    Raises ``ValueError`` outside MIDI 0..127 (no octave class exists there).
    """
    midi = int(midi)
    if not MIDI_MIN <= midi <= MIDI_MAX:
        raise ValueError(f"MIDI note {midi} outside {MIDI_MIN}..{MIDI_MAX}")
    return midi % 12, midi // 12


def hz_to_pitch_class_octave(frequency: float) -> Tuple[int, int]:
    """``(pitch class id, octave id)`` of the nearest MIDI note to ``frequency`` Hz."""
    return midi_to_pitch_class_octave(int(round(hz_to_midi(float(frequency)))))


def pitch_class_name(pitch_class: int) -> str:
    """``0 -> 'C'`` ... ``11 -> 'B'``."""
    return PITCH_CLASS_NAMES[pitch_class]


def octave_name(octave_id: int) -> str:
    """Scientific octave number of an octave id: ``5 -> '4'``, ``0 -> '-1'``."""
    return str(octave_id - 1)


def note_name(midi: int) -> str:
    """``69 -> 'A4'``, ``60 -> 'C4'``, ``59 -> 'B3'``."""
    pitch_class, octave_id = midi_to_pitch_class_octave(midi)
    return pitch_class_name(pitch_class) + octave_name(octave_id)


def pitch_classes() -> List[Tuple[int, str]]:
    """``[(0, 'C'), ..., (11, 'B')]``: the lines of ``metadata/pitch/classes.txt``."""
    return list(enumerate(PITCH_CLASS_NAMES))


def octave_classes() -> List[Tuple[int, str]]:
    """``[(0, '-1'), ..., (10, '9')]``: the lines of ``metadata/octave/classes.txt``."""
    return [(octave_id, octave_name(octave_id)) for octave_id in range(N_OCTAVES)]
