"""Validate a dataset tree and print the full report; exits 1 if there is any problem.

    python data_tools/check_dataset.py ROOT [--transform dgt_mid] [--sample-rate SR] [--tasks pitch octave]
"""
import sys

from vschaos.cli.dataset_tools import check_dataset_main

if __name__ == "__main__":
    sys.exit(check_dataset_main())
