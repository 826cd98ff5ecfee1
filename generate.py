"""Generate with a trained model: `python generate.py reconstruct|trajectories RUN_DIR ...` (see --help)."""
from vschaos.cli.generate import main

if __name__ == "__main__":
    raise SystemExit(main())
