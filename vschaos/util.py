"""Small helpers shared by several layers; a leaf module: it imports nothing from vschaos."""
import argparse
from typing import List, Optional, Sequence


def is_power_of_two(n: int) -> bool:
    """Whether ``n`` is a power of two (1, 2, 4, ...): the buffer and vector sizes nn~ uses."""
    return n > 0 and n & (n - 1) == 0


def next_power_of_two(n: int) -> int:
    """Smallest power of two >= ``n`` (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()



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
