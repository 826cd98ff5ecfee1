"""Synthesise the small labelled demo dataset (instrument, pitch, octave tasks).

    python data_tools/make_demo_dataset.py OUT_DIR [--seed 0] [--sample-rate 44100] [--minutes 8]
"""
import sys

from vschaos.cli.dataset_tools import make_demo_dataset_main

if __name__ == "__main__":
    sys.exit(make_demo_dataset_main())
