"""Pitch tracking (torchcrepe), pitch-class/octave binning and vschaos2 track metadata writers.

Names are imported on first use (PEP 562): ``vschaos.pitch.notes`` (note names, no torch) loads without the
tracker.
"""
_LAZY = {
    **dict.fromkeys(["ExtractionReport", "extract_dataset", "track_name"], "vschaos.pitch.extract"),
    **dict.fromkeys(["N_OCTAVES", "N_PITCH_CLASSES", "PITCH_CLASS_NAMES", "hz_to_midi", "hz_to_pitch_class_octave",
                     "midi_to_hz", "midi_to_pitch_class_octave", "note_name", "octave_classes", "octave_name",
                     "pitch_class_name", "pitch_classes"], "vschaos.pitch.notes"),
    **dict.fromkeys(["PitchTrack", "load_crepe", "track_pitch"], "vschaos.pitch.tracker"),
    **dict.fromkeys(["frame_labels", "merge_frames", "parse_track"], "vschaos.pitch.tracks"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vschaos.pitch' has no attribute {name!r}")


__all__ = list(_LAZY)
