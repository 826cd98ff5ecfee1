"""Small helpers shared by several layers; a leaf module: it imports nothing from vschaos."""


def is_power_of_two(n: int) -> bool:
    """Whether ``n`` is a power of two (1, 2, 4, ...): the buffer and vector sizes nn~ uses."""
    return n > 0 and n & (n - 1) == 0


def next_power_of_two(n: int) -> int:
    """Smallest power of two >= ``n`` (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()
