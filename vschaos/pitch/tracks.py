"""Frame labels -> vschaos2 track files (``onset,offset<TAB>label``); metadata.txt and classes.txt
text is written by :mod:`vschaos.data.metadata`."""
import math
from typing import List, Sequence, Tuple

import torch

from vschaos.notes import MIDI_MAX, MIDI_MIN, hz_to_midi
from vschaos.pitch.tracker import PitchTrack

UNVOICED = "none"
Interval = Tuple[float, float, str]  # onset seconds, offset seconds, label


def pitch_octave_labels(track: PitchTrack) -> Tuple[List[str], List[str]]:
    """Per-frame ``pitch`` and ``octave`` labels (integer ids as text, ``none`` when unvoiced).

    ``midi = round(69 + 12 log2(f0 / 440))``; pitch = midi % 12; octave = midi // 12.
    """
    midi = torch.round(hz_to_midi(track.f0_hz.double()))
    pitch, octave = [], []
    for value in midi.tolist():
        if math.isnan(value) or not MIDI_MIN <= value <= MIDI_MAX:
            pitch.append(UNVOICED)
            octave.append(UNVOICED)
        else:
            pitch.append(str(int(value) % 12))
            octave.append(str(int(value) // 12))
    return pitch, octave


def merge_frames(labels: Sequence[str], times: Sequence[float], end: float) -> List[Interval]:
    """Merge runs of equal consecutive frame labels into ``(onset, offset, label)`` intervals.

    An interval starts at its first frame's time and ends where the next interval starts; the last
    one ends at ``end`` (the signal's duration). Frames at or after ``end`` (CREPE's padded frame
    centred on the very end) are left out, so no interval reaches past the file.
    """
    if len(labels) != len(times):
        raise ValueError(f"{len(labels)} labels for {len(times)} frame times")
    count = sum(1 for time in times if time < end)
    intervals: List[Interval] = []
    start = 0
    for index in range(1, count + 1):
        if index == count or labels[index] != labels[start]:
            offset = times[index] if index < count else end
            intervals.append((float(times[start]), float(offset), labels[start]))
            start = index
    return intervals


def format_seconds(value: float) -> str:
    """Seconds to microsecond precision, trailing zeros dropped (``0.01``, ``1.5``, ``0.0``)."""
    text = f"{value:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def format_track(intervals: Sequence[Interval]) -> str:
    """Track file text: one ``onset,offset<TAB>label`` line per interval."""
    return "".join(f"{format_seconds(on)},{format_seconds(off)}\t{label}\n" for on, off, label in intervals)


def parse_track(text: str) -> List[Interval]:
    """Inverse of :func:`format_track` (for tests and tools)."""
    intervals = []
    for line in text.splitlines():
        if not line.strip():
            continue
        span, label = line.split("\t", 1)
        onset, offset = span.split(",")
        intervals.append((float(onset), float(offset), label.strip()))
    return intervals
