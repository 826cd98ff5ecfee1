"""Small helpers shared by several layers; a leaf module: it imports nothing from vschaos."""
import argparse
from importlib import import_module
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple


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


def lazy_exports(package: str, namespace: Dict[str, Any],
                 exports: Dict[str, str]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose public names are imported on first use (PEP 562), so
    that importing one light submodule (or answering ``--help``) does not load torch through ``__init__``.

    ``exports``: public name -> module defining it (absolute, or relative to ``package``); ``namespace``: the
    package's ``globals()``, where each name is cached once imported."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(exports[name], package), name)
        namespace[name] = value  # later lookups do not come back here
        return value

    def __dir__() -> List[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
