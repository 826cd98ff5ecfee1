"""Pitch tracking (torchcrepe), pitch-class/octave binning and vschaos2 track metadata writers.

The names below are imported on first use (``vschaos.util.lazy_exports``); ``defaults`` holds the tracker's
settings without torch, for command-line parsers.
"""
from vschaos.util import lazy_exports

_EXPORTS = {
    "ExtractionReport": ".extract", "extract_dataset": ".extract", "track_name": ".extract",
    **{name: "vschaos.notes" for name in ("N_OCTAVES", "N_PITCH_CLASSES", "PITCH_CLASS_NAMES", "hz_to_midi",
                                          "hz_to_pitch_class_octave", "midi_to_hz", "midi_to_pitch_class_octave",
                                          "note_name", "octave_classes", "octave_name", "pitch_class_name",
                                          "pitch_classes")},
    "PitchTrack": ".tracker", "load_crepe": ".tracker", "track_pitch": ".tracker",
    "pitch_octave_labels": ".tracks", "merge_frames": ".tracks", "parse_track": ".tracks",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
