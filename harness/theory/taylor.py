"""The Taylor polynomial P_g(x) = sum_{t<=g} x^t/t! of exp on [-R, R]: its relative error, the degree a
target needs, and the feature rank C(d+g, g) of its monomial factorisation (docs/theory.md §4.1-§4.2)."""

from __future__ import annotations

import math

import numpy as np

from harness.errors import HarnessError

MAX_DEGREE = 400


def log_taylor_rel_error(R: float, g: int) -> float:
    """log of `taylor_rel_error(R, g)` (no overflow for large R or g)."""
    if R <= 0:
        return -math.inf
    return (g + 1) * math.log(R) + R - math.lgamma(g + 2)


def taylor_rel_error(R: float, g: int) -> float:
    """Rigorous relative error of P_g(x) = sum_{t<=g} x^t/t! against e^x on [-R, R]:

        sup_{|x|<=R} |e^x - P_g(x)| / e^x  <=  R^(g+1) e^R / (g+1)!

    Lagrange: e^x - P_g(x) = e^xi x^(g+1)/(g+1)! with xi between 0 and x. For x >= 0, e^xi <= e^x,
    so the relative error is <= R^(g+1)/(g+1)!; for x < 0, e^xi <= 1 and e^-x <= e^R. This is
    a factor e^R tighter than AS23 (arXiv:2302.13214)'s R^(g+1) e^(2R)/(g+1)! (docs/theory.md §4.1)
    (`taylor_rel_error_paper`)."""
    lv = log_taylor_rel_error(R, g)
    return 0.0 if lv == -math.inf else (math.exp(lv) if lv < 700 else math.inf)


def taylor_rel_error_paper(R: float, g: int) -> float:
    """AS23 (arXiv:2302.13214) as printed (docs/theory.md §4.1): R^(g+1) e^(2R) / (g+1)!."""
    if R <= 0:
        return 0.0
    lv = log_taylor_rel_error(R, g) + R
    return math.exp(lv) if lv < 700 else math.inf


def taylor_degree(R: float, eps_rel: float) -> int:
    """Smallest g >= 1 with taylor_rel_error(R, g) <= eps_rel (docs/theory.md §4.1)."""
    if not eps_rel > 0:
        raise HarnessError(f"eps_rel must be positive, got {eps_rel}")
    le = math.log(eps_rel)
    for g in range(1, 100 * MAX_DEGREE):
        if log_taylor_rel_error(R, g) <= le:
            return g
    raise HarnessError(f"no Taylor degree below {100 * MAX_DEGREE} reaches eps_rel={eps_rel:g} at R={R:g}")


def feature_rank(d: int, g: int) -> int:
    """Number of monomials of degree <= g in d variables: C(d+g, g) (docs/theory.md §4.2)."""
    return math.comb(int(d) + int(g), int(g))


def normalised_rel_error(eps_rel: float) -> float:
    """delta = 2 eps/(1-eps): entrywise relative error of the row-normalised kernel (docs/theory.md §4.3)."""
    if eps_rel >= 1:
        return math.inf
    return 2.0 * eps_rel / (1.0 - eps_rel)


def row_deltas(R_rows: np.ndarray, g: int) -> np.ndarray:
    """delta_j = 2 eps_j/(1 - eps_j), eps_j = taylor_rel_error(R_j, g), vectorised (inf if eps_j >= 1)."""
    R = np.maximum(np.asarray(R_rows, np.float64), 1e-300)
    le = (g + 1) * np.log(R) + R - math.lgamma(g + 2)
    eps = np.exp(np.minimum(le, 700.0))
    with np.errstate(divide="ignore"):
        return np.where(eps < 1, 2 * eps / np.maximum(1 - eps, 1e-300), np.inf)
