"""The certificate of the polynomial method on an instance: degree, rank, score range, regime,
rigorous gradient-error bound and predicted cost, and the one-line refusal when it cannot run."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.instance import Instance
from harness.theory.bounds import _BoundTerms
from harness.theory.norms import HULL_MAX_D, paper_gammas, row_score_bounds, score_range, score_range_bound
from harness.theory.regimes import regime
from harness.theory.taylor import (
    MAX_DEGREE,
    feature_rank,
    normalised_rel_error,
    row_deltas,
    taylor_degree,
    taylor_rel_error,
)

#: default relative target when a solver is given neither eps nor degree
DEFAULT_EPS = 1e-6

DEFAULT_MAX_RANK = 20000

#: N * Lq * Lk up to which `certify` computes the exact R by default (above it: the O(L d) upper bound)
EXACT_R_ENTRIES = 1 << 24


def poly_op_count(N: int, Lq: int, Lk: int, d: int, g: int, r: int, adapted: tuple[str, ...]) -> int:
    """Deterministic flop count of the `poly` solver (harness/solvers/poly/fused.py), OpCounter convention:
    monomials of degree g+1 for queries and keys (1 op per entry, twice for keys: two key passes),
    the factored products and the feature back-propagation. Linear in L at fixed (d, g)."""
    from harness.measure.opcount import OpCounter

    k, kp = feature_rank(d, g), feature_rank(d, g + 1)
    ops = OpCounter()
    ops.mm(d, r, d, len(adapted))
    ops.mm(Lq, d, d, N), ops.mm(Lk, d, d, 2 * N)  # Q, K, V
    ops.ew(N * Lq * d + N * Lk * d, 1)  # range bound
    need_qk = "q" in adapted or "k" in adapted
    # pass 1 (keys): features, Mk+ = Phi+k^T [V, 1]
    ops.ew(N * Lk * kp, 1), ops.mm(kp, Lk, d + 1, N), ops.ew(N * kp * (d + 1), 1)
    # pass 2 (queries): features, output, residual, r~, loss
    ops.ew(N * Lq * kp, 1), ops.mm(Lq, k, d + 1, N), ops.ew(N * Lq * d, 6)
    if need_qk or "v" in adapted:
        ops.mm(kp, Lq, d + 1, N), ops.ew(N * kp * (d + 1), 1)  # Nq+ = diag(w) M+q^T Zq
    if "q" in adapted:
        ops.mm(kp, d + 1, Lq, N), ops.ew(N * Lq * kp, 4), ops.mm(d, Lq, d, N)
    if "k" in adapted or "v" in adapted:
        ops.ew(N * Lk * kp, 1)  # pass 3 (keys): features again
    if "k" in adapted:
        ops.mm(kp, d + 1, Lk, N), ops.ew(N * Lk * kp, 4), ops.mm(d, Lk, d, N)
    if "v" in adapted:
        ops.mm(Lk, k, d, N), ops.mm(d, Lk, d, N)
    ops.mm(r, d, d, 2 * len(adapted))
    return int(ops)


def _op_count(inst: Instance, g: int) -> int:
    """Predicted flops of `poly` at degree g: the causal chunkwise algorithm for causal instances."""
    if inst.causal:
        from harness.theory.causal import causal_poly_op_count

        return causal_poly_op_count(inst.N, inst.Lq, inst.Lk, inst.d, g, inst.r, inst.adapted)
    return poly_op_count(inst.N, inst.Lq, inst.Lk, inst.d, g, inst.r, inst.adapted)


def _choose_degree(bound_at, eps: float | None, degree: int | None, max_rank: int | None, d: int) -> int:
    if degree is not None:
        g = int(degree)
        if g < 1:
            raise HarnessError(f"degree must be >= 1, got {degree}")
        return g
    if eps is None:
        eps = DEFAULT_EPS
    if not eps > 0:
        raise HarnessError(f"eps must be positive, got {eps}")
    # smallest g with bound(g) <= eps; the rank check (refusal) comes after, so a refusal names the
    # degree the target really needs
    for g in range(1, MAX_DEGREE + 1):
        if bound_at(g) <= eps:
            return g
    return MAX_DEGREE


def certify(
    inst: Instance,
    eps: float | None = None,
    degree: int | None = None,
    max_rank: int | None = None,
    exact_R: bool | None = None,
    R: float | None = None,
) -> dict[str, Any]:
    """Certificate for the polynomial method on `inst` (docs/theory.md §4.1-§4.3; Hu et al.
    (arXiv:2406.03136) Problem 1).

    Keys: "R" (the score range used; exact or the rigorous O(L d) upper bound, see "R_exact"),
    "R_bound" (the O(L d) bound), "R_exact" (bool), "log_L", "regime", "gammas" (paper_gammas),
    "degree" g, "rank" k = C(d+g, g), "eps_rel" (taylor_rel_error(R, g)), "error_bound" (absolute
    max-norm gradient bound, exact arithmetic, with the per-row kernel errors of
    `gradient_error_bound_rows`), "error_bound_uniform" (the same with one eps_rel for every row,
    = gradient_error_bound(inst, eps_rel) >= error_bound), "eps" (the absolute target when given: g is then
    the smallest degree whose error_bound <= eps), "ops" (predicted flops of `poly`), "max_rank",
    "within_rank" (k <= max_rank), "coefficient" (gradient_error_coefficient).
    `exact_R`: None -> exact when N Lq Lk <= 2^24 or d <= HULL_MAX_D (convex-hull reduction), else
    the bound (the solvers pass False: they stay linear time)."""
    if exact_R is None:
        exact_R = inst.N * inst.Lq * inst.Lk <= EXACT_R_ENTRIES or inst.d <= HULL_MAX_D
    Rb = score_range_bound(inst)
    if R is None:
        R = score_range(inst) if exact_R else Rb
    terms = _BoundTerms(inst)
    rows = np.minimum(row_score_bounds(inst), R)

    def bound_at(g: int) -> float:
        return terms.bound(row_deltas(rows, g)) if taylor_rel_error(R, g) < 1 else math.inf

    g = _choose_degree(bound_at, eps, degree, max_rank, inst.d)
    k = feature_rank(inst.d, g)
    e = taylor_rel_error(R, g)
    bound = bound_at(g)
    coef = terms.bound(1.0)
    L = inst.L
    max_rank = DEFAULT_MAX_RANK if max_rank is None else int(max_rank)
    return {
        "R": float(R),
        "R_bound": float(Rb),
        "R_exact": bool(exact_R),
        "log_L": math.log(max(L, 2)),
        "regime": regime(R, L),
        "gammas": paper_gammas(inst),
        "degree": g,
        "rank": k,
        "eps_rel": e,
        "error_bound": bound,
        "coefficient": coef,
        "error_bound_uniform": normalised_rel_error(e) * coef if e < 1 else math.inf,
        "eps": None if eps is None else float(eps),
        "meets_eps": (None if eps is None else bound <= eps),
        "ops": _op_count(inst, g),
        "causal": inst.causal,
        "max_rank": max_rank,
        "within_rank": k <= max_rank,
    }


def refusal_message(solver: str, cert: dict[str, Any]) -> str | None:
    """One line explaining why `solver` refuses an instance (rank too large or no valid certificate),
    or None when it can run."""
    R, lg, g, k = cert["R"], cert["log_L"], cert["degree"], cert["rank"]
    if cert["rank"] > cert["max_rank"]:
        ks = str(k) if k < 10**9 else f"{float(k):.3g}"
        gs = f"g={g}" if g < MAX_DEGREE or cert.get("meets_eps") is not False else f"g>={g}"
        return (
            f"{solver} refuses: instance is in the {cert['regime']} regime (R={R:.3g} vs log L={lg:.3g}): "
            f"degree {gs} needs rank k={ks} > --max-rank {cert['max_rank']}"
        )
    if not cert["eps_rel"] < 1:
        return (
            f"{solver} refuses: degree g={g} has relative error bound {cert['eps_rel']:.3g} >= 1 on "
            f"[-R, R] (R={R:.3g}), the kernel may turn negative; use g >= {taylor_degree(R, 0.5)}"
        )
    return None
