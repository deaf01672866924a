"""OV -> the gadgets of docs/theory.md §6.2: Max-IP and Gap-Hamming; both exact, gap 1.

(b) per coordinate phi(x) = (1-x, x, 0), psi(y) = (1, 1-y, y): <phi(u), psi(w)> = m - <u, w>,
    |phi| = m, |psi| = 2m. Yes <=> some pair reaches m.
(c) ||phi(u) - psi(w)||_0 = m + 2<u,w>; after balancing z -> (z, 1 - z): D = 6m, every weight 3m,
    distance 2m + 4<u, w>. Gap-Hamming with t = 2m + 1 (strict <), (1+eps) t = 2m + 4,
    eps = 3 / (2m + 1).
Pairs keep their indices, so decoding is the identity on (i, j).
"""

from __future__ import annotations

import numpy as np

from reductions.arrows.base import Arrow
from reductions.problems.gadgets import GapHammingInstance, MaxIPInstance
from reductions.problems.ov import OVInstance


def phi(U: np.ndarray) -> np.ndarray:
    """Coordinate gadget phi(x) = (1 - x, x, 0) (docs/theory.md §6.2)."""
    U = U.astype(np.uint8)
    return np.stack([1 - U, U, np.zeros_like(U)], axis=-1).reshape(U.shape[0], -1)


def psi(W: np.ndarray) -> np.ndarray:
    """Coordinate gadget psi(y) = (1, 1 - y, y) (docs/theory.md §6.2)."""
    W = W.astype(np.uint8)
    return np.stack([np.ones_like(W), 1 - W, W], axis=-1).reshape(W.shape[0], -1)


def balance(Z: np.ndarray) -> np.ndarray:
    """z -> (z, 1 - z): every vector gets weight D/2 and distances double (docs/theory.md §6.2)."""
    return np.hstack([Z, 1 - Z]).astype(np.uint8)


class OVToMaxIP(Arrow):
    name = "maxip-gadget"
    source, target = "OV", "Max-IP"
    spec = "docs/theory.md §6.2"

    def reduce(self, ov: OVInstance) -> MaxIPInstance:
        return MaxIPInstance(phi(ov.U), psi(ov.W), ov.m, {"N": ov.N, "D": 3 * ov.m}, source=ov)

    def decode(self, target, pair, oracle=None):
        return None if pair is None else (int(pair[0]), int(pair[1]))

    def accuracy_statement(self) -> str:
        return "exact (integer gap 1: yes = m, no <= m - 1)"


class OVToGapHamming(Arrow):
    name = "gap-hamming-gadget"
    source, target = "OV", "Gap-Hamming"
    spec = "docs/theory.md §6.2"

    def reduce(self, ov: OVInstance) -> GapHammingInstance:
        m = ov.m
        A, B = balance(phi(ov.U)), balance(psi(ov.W))
        return GapHammingInstance(A, B, 2 * m + 1, 3.0 / (2 * m + 1), {"N": ov.N, "D": 6 * m}, source=ov)

    def decode(self, target, pair, oracle=None):
        return None if pair is None else (int(pair[0]), int(pair[1]))

    def accuracy_statement(self) -> str:
        return "exact (distance 2m + 4<u,w>: t = 2m+1, eps = 3/(2m+1))"
