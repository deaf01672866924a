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


def classify(R: float, L: int, cost_ratio: float | None = None, within_rank: bool = True) -> tuple[str, str]:
    """(regime, reason) at finite L (docs/theory.md §5.2): 'hard' when R > THRESHOLD_C log L;
    'efficient' only when R <= EFFICIENT_C log L AND the polynomial method is predicted to be cheaper
    than the exact quadratic solver at this L (cost_ratio < 1) within its rank budget; 'threshold'
    otherwise. `regime(R, L)` is the label of R alone. A refusal (over the rank budget) is therefore
    never 'efficient'."""
    lg = math.log(max(int(L), 2))
    if R > THRESHOLD_C * lg:
        return "hard", f"R={R:.3g} > {THRESHOLD_C:g} log L={THRESHOLD_C * lg:.3g}"
    if R > EFFICIENT_C * lg:
        return "threshold", f"R={R:.3g} > {EFFICIENT_C:g} log L={EFFICIENT_C * lg:.3g}"
    if not within_rank:
        return "threshold", "the degree needed is over the rank budget"
    if cost_ratio is not None and not cost_ratio < 1:
        return "threshold", f"poly's predicted cost is {cost_ratio:.3g}x the exact solver's at L={L}"
    why = f"R={R:.3g} <= {EFFICIENT_C:g} log L"
    return "efficient", why if cost_ratio is None else f"{why}, predicted cost {cost_ratio:.2g}x exact"
