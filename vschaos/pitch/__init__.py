"""Pitch tracking (torchcrepe), pitch-class/octave binning and vschaos2 track metadata writers."""
from vschaos.pitch.extract import ExtractionReport, extract_dataset, track_name
from vschaos.notes import (N_OCTAVES, N_PITCH_CLASSES, PITCH_CLASS_NAMES, hz_to_midi, hz_to_pitch_class_octave,
                           midi_to_hz, midi_to_pitch_class_octave, note_name, octave_classes, octave_name,
                           pitch_class_name, pitch_classes)
from vschaos.pitch.tracker import PitchTrack, load_crepe, track_pitch
from vschaos.pitch.tracks import pitch_octave_labels, merge_frames, parse_track

__all__ = [
    "ExtractionReport", "extract_dataset", "track_name",
    "N_OCTAVES", "N_PITCH_CLASSES", "PITCH_CLASS_NAMES", "hz_to_midi", "hz_to_pitch_class_octave", "midi_to_hz",
    "midi_to_pitch_class_octave", "note_name", "octave_classes", "octave_name", "pitch_class_name", "pitch_classes",
    "PitchTrack", "load_crepe", "track_pitch",
    "pitch_octave_labels", "merge_frames", "parse_track",
]
