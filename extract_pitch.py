"""Write pitch and octave metadata for a dataset: ``python extract_pitch.py my_data``."""
import sys

from vschaos.cli.extract_pitch import main

if __name__ == "__main__":
    sys.exit(main())
