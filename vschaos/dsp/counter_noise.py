"""Counter-based noise: reproducible randomness for streams.

A stream must give the same output whatever the buffer size, so random values are a pure function of (seed,
frame index, channel), not draws from a stateful generator (counter-based random numbers: Salmon et al.,
"Parallel random numbers: as easy as 1, 2, 3", SC 2011). The mixing function is a 32-bit integer hash
(xorshift-multiply rounds), computed in int64 with values kept below 2^31 (mask 0x7FFFFFFF) and a multiplier
below 2^27 (0x045D9F3B) so that products never overflow. TorchScript-safe.
"""
import math
from typing import Tuple

import torch
from torch import Tensor


def _hash31(x: Tensor) -> Tensor:
    x = x & 0x7FFFFFFF
    x = (((x >> 16) ^ x) * 0x045D9F3B) & 0x7FFFFFFF
    x = (((x >> 16) ^ x) * 0x045D9F3B) & 0x7FFFFFFF
    return (x >> 16) ^ x


def counter_uniform(seed: int, stream: int, n_rows: int, frame_index: Tensor, n_channels: int) -> Tensor:
    """Uniform values in ``(0, 1)``, float32 ``(n_rows, frames, n_channels)``, for batch rows
    ``0..n_rows-1``, frames ``frame_index`` (int64 ``(frames,)``) and channels ``0..n_channels-1``.
    ``stream`` separates independent uses (e.g. latent noise and phase noise) under one ``seed``;
    use streams ``< NORMAL_UNIFORM_BASE`` here (the ones above belong to :func:`counter_normal`)."""
    device = frame_index.device
    row = torch.arange(n_rows, dtype=torch.int64, device=device).reshape(-1, 1, 1)
    channel = torch.arange(n_channels, dtype=torch.int64, device=device).reshape(1, 1, -1)
    frame = frame_index.reshape(1, -1, 1)
    key = _hash31(_hash31(row * 7919 + (seed & 0xFFFFFF) * 104729 + stream * 15485863) + frame)
    key = _hash31(key ^ _hash31(channel + 0x2545F491))
    return (key.to(torch.float32) + 0.5) / 2147483648.0


def normal_uniform_streams(stream: int) -> Tuple[int, int]:
    """The two :func:`counter_uniform` streams that :func:`counter_normal` stream ``stream`` uses:
    ``10 + 2 * stream`` and the next, so that normal and direct uniform draws never share values."""
    first = 10 + 2 * stream  # literal: TorchScript functions cannot read module globals
    return first, first + 1


# Uniform streams below this are free for direct counter_uniform use.
NORMAL_UNIFORM_BASE = normal_uniform_streams(0)[0]


def counter_normal(seed: int, stream: int, n_rows: int, frame_index: Tensor, n_channels: int) -> Tensor:
    """Standard normal values ``(n_rows, frames, n_channels)`` (Box-Muller on two counter uniforms,
    streams :func:`normal_uniform_streams`, disjoint from uniform streams ``< NORMAL_UNIFORM_BASE``)."""
    first, second = normal_uniform_streams(stream)
    u1 = counter_uniform(seed, first, n_rows, frame_index, n_channels)
    u2 = counter_uniform(seed, second, n_rows, frame_index, n_channels)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)
