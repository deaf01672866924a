"""Regimes: R against log L (docs/theory.md §5.1-§5.3)."""

from __future__ import annotations

import math

#: regime constants (conventions; the theory is asymptotic, docs/theory.md §5.3)
EFFICIENT_C = 0.5

THRESHOLD_C = 2.0


def regime(R: float, L: int) -> str:
    """'efficient' if R <= 0.5 log L, 'threshold' if R <= 2 log L, else 'hard' (natural log).

    AS23 (arXiv:2302.13214); docs/theory.md §5.1: R = o(log L) is the almost-linear regime, R = Theta(log
    L) and beyond is SETH-hard. The constants 0.5 and 2 are conventions for finite L, not theorems."""
    lg = math.log(max(int(L), 2))
    if R <= EFFICIENT_C * lg:
        return "efficient"
    if R <= THRESHOLD_C * lg:
        return "threshold"
    return "hard"
