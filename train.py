"""``python train.py ...``: the name vschaos2's README uses for the training command; the same as
``python train_model.py ...`` (same arguments, same behaviour: it runs that script)."""
import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).resolve().with_name("train_model.py")), run_name="__main__")
