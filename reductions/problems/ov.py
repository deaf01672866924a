"""Orthogonal Vectors (docs/theory.md §6.1 target): two lists U, W of N vectors in {0,1}^m; find
(i, j) with <u_i, w_j> = 0, or report that none exists.

The exact solver is the blocked float32 BLAS Gram U W^T (exact: integer entries below 2^24;
docs/theory.md §6.6), O(N^2 m) time, O(block N) memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import HarnessError

BLOCK = 2048


@dataclass(frozen=True, eq=False)
class OVInstance:
    """U (N, m) and W (N, m) with 0/1 entries (uint8). `source` is the instance it came from."""

    U: np.ndarray
    W: np.ndarray
    meta: dict = field(default_factory=dict)
    source: Any = None

    def __post_init__(self):
        if self.U.ndim != 2 or self.W.ndim != 2 or self.U.shape[1] != self.W.shape[1]:
            raise HarnessError(f"OV needs U (N, m) and W (N', m); got {self.U.shape} and {self.W.shape}")

    @property
    def N(self) -> int:
        return self.U.shape[0]

    @property
    def m(self) -> int:
        return self.U.shape[1]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"U": self.U, "W": self.W}


def gram_blocks(U: np.ndarray, W: np.ndarray, block: int = BLOCK):
    """Yield (row offset, block of U W^T) in float32 (exact for m < 2^24)."""
    Wf = W.astype(np.float32)
    for s in range(0, U.shape[0], block):
        yield s, U[s : s + block].astype(np.float32) @ Wf.T


def solve_ov(ov: OVInstance) -> tuple[int, int] | None:
    """Exact OV: the first orthogonal pair (row-major), or None."""
    for s, G in gram_blocks(ov.U, ov.W):
        hit = np.argwhere(G == 0)
        if hit.size:
            return int(hit[0, 0]) + s, int(hit[0, 1])
    return None


def count_orthogonal(ov: OVInstance) -> int:
    return int(sum(int((G == 0).sum()) for _, G in gram_blocks(ov.U, ov.W)))


def yes_rows(ov: OVInstance) -> np.ndarray:
    """Boolean (N,): does u_i have an orthogonal partner (the per-query answer)?"""
    out = np.zeros(ov.N, dtype=bool)
    for s, G in gram_blocks(ov.U, ov.W):
        out[s : s + G.shape[0]] = (G == 0).any(axis=1)
    return out


def partner(ov: OVInstance, i: int) -> int | None:
    """Scan row i: the first j with <u_i, w_j> = 0 (O(N m) work, docs/theory.md §6.3 decode)."""
    ip = ov.W.astype(np.int64) @ ov.U[i].astype(np.int64)
    hit = np.flatnonzero(ip == 0)
    return int(hit[0]) if hit.size else None
