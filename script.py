"""Export a trained run for nn~ / nn.ar: ``python script.py RUN_DIR [-o OUT] [-v VERSION] [-n CHECKPOINT]``."""
import sys

from vschaos.cli.script import main

if __name__ == "__main__":
    sys.exit(main())
