"""Helpers the solvers share: blocking over rows or columns, and gradients back to numpy."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np


def blocks(n: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive blocks of at most `size` out of range(n)."""
    for s in range(0, n, size):
        yield s, min(n, s + size)


def to_numpy(grads: Mapping) -> dict[str, np.ndarray]:
    """torch gradients (any device, any float dtype) as float64 numpy arrays, names kept."""
    return {k: v.detach().cpu().double().numpy() for k, v in grads.items()}
