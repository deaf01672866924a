"""The OV gadgets of docs/theory.md §6.2: Max-IP with constant weights and Gap-Hamming
(the exactly checkable substitute for Rubinstein's Gap-ANN, with additive gap 1).

* `MaxIPInstance(A, B, target)`: is there (i, j) with <a_i, b_j> >= target? (yes: max = target,
  no: every pair <= target - 1.)
* `GapHammingInstance(A, B, t, eps)`: for each query i, is there j with ||a_i - b_j||_0 < t
  (Case 1), or are all distances >= (1 + eps) t (Case 2)? Every vector has weight D/2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BLOCK = 2048


@dataclass(frozen=True, eq=False)
class MaxIPInstance:
    A: np.ndarray
    B: np.ndarray
    target: int
    meta: dict = field(default_factory=dict)
    source: Any = None

    def arrays(self):
        return {"A": self.A, "B": self.B, "target": np.array(self.target)}


@dataclass(frozen=True, eq=False)
class GapHammingInstance:
    A: np.ndarray
    B: np.ndarray
    t: int
    eps: float
    meta: dict = field(default_factory=dict)
    source: Any = None

    def arrays(self):
        return {"A": self.A, "B": self.B, "t": np.array(self.t), "eps": np.array(self.eps)}


def _first(A: np.ndarray, B: np.ndarray, pred) -> tuple[int, int] | None:
    Bf = B.astype(np.float32)
    for s in range(0, A.shape[0], BLOCK):
        G = A[s : s + BLOCK].astype(np.float32) @ Bf.T
        hit = np.argwhere(pred(G, A[s : s + BLOCK], B))
        if hit.size:
            return int(hit[0, 0]) + s, int(hit[0, 1])
    return None


def solve_maxip(inst: MaxIPInstance) -> tuple[int, int] | None:
    """Exact: the first pair reaching the target inner product, or None."""
    return _first(inst.A, inst.B, lambda G, a, b: G >= inst.target)


def hamming_from_gram(G: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """||a - b||_0 = |a| + |b| - 2 <a, b> for 0/1 vectors."""
    return a.sum(1, dtype=np.int64)[:, None] + b.sum(1, dtype=np.int64)[None, :] - 2 * G


def solve_gap_hamming(inst: GapHammingInstance) -> tuple[int, int] | None:
    """Exact: the first pair at distance < t, or None."""
    return _first(inst.A, inst.B, lambda G, a, b: hamming_from_gram(G, a, b) < inst.t)
