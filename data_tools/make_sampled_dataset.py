"""Render single notes from a General MIDI SoundFont with fluidsynth into a vschaos dataset.

    python data_tools/make_sampled_dataset.py OUT --soundfont FILE.sf2 [--programs 0 11 19 24 40 56 71 73]
           [--notes 36:96:3] [--velocities 100] [--seconds 3] [--sample-rate 44100] [--gain 0.2] [--force]
"""
import sys

from vschaos.cli.dataset_tools import make_sampled_dataset_main

if __name__ == "__main__":
    sys.exit(make_sampled_dataset_main())
