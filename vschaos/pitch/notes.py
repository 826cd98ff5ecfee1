"""The pitch naming convention, defined in the leaf module :mod:`vschaos.notes` (the data layer's
demo dataset needs it too); re-exported here so that ``vschaos.pitch.notes`` keeps working."""
from vschaos.notes import (MIDI_MAX, MIDI_MIN, N_OCTAVES, N_PITCH_CLASSES, PITCH_CLASS_NAMES, hz_to_midi,
                           hz_to_pitch_class_octave, midi_to_hz, midi_to_pitch_class_octave, note_name,
                           octave_classes, octave_name, pitch_class_name, pitch_classes)

__all__ = ["MIDI_MAX", "MIDI_MIN", "N_OCTAVES", "N_PITCH_CLASSES", "PITCH_CLASS_NAMES", "hz_to_midi",
           "hz_to_pitch_class_octave", "midi_to_hz", "midi_to_pitch_class_octave", "note_name", "octave_classes",
           "octave_name", "pitch_class_name", "pitch_classes"]
