"""Command-line argument types shared by the vschaos commands (kept free of heavy imports)."""
import argparse
from typing import List, Optional, Sequence


def int_list(text: str) -> List[int]:
    """``"512,2048"`` (or ``"512, 2048"``) -> ``[512, 2048]``; argparse reports a ValueError as a usage error."""
    try:
        return [int(item) for item in text.replace(" ", ",").split(",") if item]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas or spaces, got '{text}'") from None


class IntListAction(argparse.Action):
    """``--buffers 512,2048`` and ``--buffers 512 2048`` (and a mix) give the same list: use with
    ``nargs="+", type=int_list`` (each word is a comma-separated list; the words are joined)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Optional[Sequence[List[int]]], option_string: Optional[str] = None) -> None:
        setattr(namespace, self.dest, [number for word in values or [] for number in word])
