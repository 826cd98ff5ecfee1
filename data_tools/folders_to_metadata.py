"""Single-label task from the first-level folder names under ROOT/data/.

    python data_tools/folders_to_metadata.py ROOT TASK [--force]
"""
import sys

from vschaos.cli.dataset_tools import folders_to_metadata_main

if __name__ == "__main__":
    sys.exit(folders_to_metadata_main())
