"""Train a spectral VAE: ``python train_model.py --config-name dgt_mid name=NAME rundir=DIR +data.dataset.root=DATA``."""
import sys

from vschaos.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
