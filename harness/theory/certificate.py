"""What the polynomial method needs on an instance without running it (`certify`: degree, rank,
score range, regime, the pilot's estimate of the solver's certificate, a rigorous a priori bound,
predicted cost) and the one-line refusal. The solver's own a posteriori certificate is
harness.solvers.poly.bound (docs/theory.md §4.3)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.instance import Instance
from harness.theory.bounds import _BoundTerms
from harness.theory.norms import centred_row_bounds, certificate_score_range, paper_gammas
from harness.theory.regimes import classify, regime
from harness.theory.taylor import feature_rank, normalised_rel_error, row_deltas, taylor_rel_error

#: default relative target when a solver is given neither eps nor degree
DEFAULT_EPS = 1e-6

DEFAULT_MAX_RANK = 20000

#: runs of one certified solve before it refuses
MAX_DEGREE_TRIES = 4


def poly_op_count(
    N: int, Lq: int, Lk: int, d: int, g: int, r: int, adapted: tuple[str, ...], kernel: str | None = "moments"
) -> int:
    """Deterministic flop count of the `poly` solver with its gradient kernel (`PolySolver.kernel`):
    "moments" (the default, `moments_op_count`) or the fused modes (`fused_op_count`)."""
    if kernel == "moments":
        return moments_op_count(N, Lq, Lk, d, g, r, adapted)
    return fused_op_count(N, Lq, Lk, d, g, r, adapted)


def moments_op_count(
    N: int, Lq: int, Lk: int, d: int, g: int, r: int, adapted: tuple[str, ...], counter: bool = False
):
    """Deterministic flop count of `poly`'s two-pass moments kernel (harness/solvers/poly/moments.py),
    OpCounter convention, step by step as the kernel runs: the effective weights and Q, K, V; the
    centring and balanced split; pass 1 over the keys (degree-(g+1) features, the (d+1) d products
    Zk (x) X_k, one GEMM of the k+ rows against [Zk; X_v] and one of the first k rows against
    Zk (x) X_k); pass 2 over the queries (features, the (2d+3)-column product W^T phi that gives
    outputs, row sums and the certificate's top-degree sums, the residuals, Zq (x) X_q, the value
    error columns, and the same split GEMM); the derivative index maps and the adapter contractions.
    Linear in L at fixed (d, g). `counter`: return the OpCounter (its `gemm` part is what
    tests/solvers/test_poly_moments.py checks against torch's FlopCounterMode on the real kernel)."""
    from harness.measure.opcount import OpCounter

    k, kp = feature_rank(d, g), feature_rank(d, g + 1)
    d1, dd = d + 1, (d + 1) * d
    q_, k_, v_ = "q" in adapted, "k" in adapted, "v" in adapted
    ops = OpCounter()
    ops.mm(d, r, d, len(adapted))
    ops.mm(Lq, d, d, N), ops.mm(Lk, d, d, 2 * N)  # Q, K, V
    ops.ew(N * (Lq + 2 * Lk) * d, 4)  # mid-ranges, centring, scaling and the balanced split
    # pass 1 (keys)
    ops.ew(N * Lk * kp, 1)  # features
    if k_:
        ops.ew(N * Lk * dd, 1)  # Zk (x) X_k
    ops.mm(kp, Lk, d1 + (d if v_ else 0), N)
    if k_:
        ops.mm(k, Lk, dd, N)
    ops.ew(N * kp * d1, 1)  # Mk = diag(w) ...
    # pass 2 (queries)
    nW = 2 * d1 + 1
    ops.ew(N * Lq * kp, 1), ops.mm(nW, kp, Lq, N)  # features, W^T phi
    ops.ew(N * Lq * d, 8)  # O', residual, loss, c, r~, Zq
    if q_:
        ops.ew(N * Lq * dd, 1)  # Zq (x) X_q
    if v_:
        ops.ew(N * Lq * d, 6)  # the value-error columns
    want_n = k_ or v_
    if want_n:
        ops.mm(kp, Lq, d1, N), ops.ew(N * kp * d1, 1)  # Nq = diag(w) Phi+_q^T Zq
    ops.mm(k, Lq, (dd if q_ else 0) + (d if v_ else 0), N)
    # contractions: derivative maps, G_q, G_k, G_v, F_v
    if q_:
        ops.ew(N * k * dd, 1), ops.mm(d, k * d1, d, N)
    if k_:
        ops.ew(N * k * dd, 1), ops.mm(d, k * d1, d, N)
    if v_:
        ops.mm(d, k, d, N), ops.mm(d, k, d, N), ops.mm(d, kp - k, d, N)
    ops.mm(r, d, d, 2 * len(adapted))
    return ops if counter else int(ops)


def fused_op_count(N: int, Lq: int, Lk: int, d: int, g: int, r: int, adapted: tuple[str, ...]) -> int:
    """Deterministic flop count of `poly` with the fused kernel (harness/solvers/poly/fused.py),
    OpCounter convention: monomials of degree g+1 for queries and keys (1 op per entry, twice for
    keys: two key passes),
    the factored products, the feature back-propagation or the gemm mode's moment products
    (`harness.solvers.poly.fused.gradient_mode`), and the per-row quantities of the a
    posteriori certificate (top-degree block products, the value-error columns, |X|^T |dG|).
    Linear in L at fixed (d, g)."""
    from harness.measure.opcount import OpCounter

    k, kp = feature_rank(d, g), feature_rank(d, g + 1)
    ops = OpCounter()
    ops.mm(d, r, d, len(adapted))
    ops.mm(Lq, d, d, N), ops.mm(Lk, d, d, 2 * N)  # Q, K, V
    ops.ew(N * Lq * d + N * Lk * d, 1)  # range bound
    from harness.solvers.poly.fused import gradient_mode

    gemm = gradient_mode(d, g) == "gemm"
    m2 = (d + 1) * d  # the gemm mode's moment columns
    q_, k_, v_ = "q" in adapted, "k" in adapted, "v" in adapted
    # pass 1 (keys): features, Mk+ = Phi+k^T [V, 1] (and H = Phi_k^T ([V, 1] (x) K') in gemm mode)
    ops.ew(N * Lk * kp, 1), ops.mm(kp, Lk, d + 1, N), ops.ew(N * kp * (d + 1), 1)
    if gemm and q_:
        ops.ew(N * Lk * m2, 1), ops.mm(k, Lk, m2, N)
    # pass 2 (queries): features, output, residual, r~, loss
    ops.ew(N * Lq * kp, 1), ops.mm(Lq, k, d + 1, N), ops.ew(N * Lq * d, 6)
    if (k_ and not gemm) or v_:
        ops.mm(kp, Lq, d + 1, N), ops.ew(N * kp * (d + 1), 1)  # Nq+ = diag(w) M+q^T Zq
    if gemm and k_:
        ops.ew(N * Lq * m2, 1), ops.mm(k, Lq, m2, N)  # H' = Phi_q^T (Zq (x) q^)
    if q_:
        if gemm:
            ops.mm(Lq, k, m2, N), ops.ew(N * Lq * m2, 2)
        else:
            ops.mm(kp, d + 1, Lq, N), ops.ew(N * Lq * kp, 4)
        ops.mm(d, Lq, d, N)
    if k_ or v_:
        ops.ew(N * Lk * kp, 1)  # pass 3 (keys): features again
    if k_:
        if gemm:
            ops.mm(Lk, k, m2, N), ops.ew(N * Lk * m2, 2)
        else:
            ops.mm(kp, d + 1, Lk, N), ops.ew(N * Lk * kp, 4)
        ops.mm(d, Lk, d, N)
    if "v" in adapted:
        ops.mm(Lk, k, d, N), ops.mm(d, Lk, d, N)
    # certificate: -[T V', T 1] from the top block, Sg (even g), |X|^T |dG|, the value error F_v
    ops.mm(Lq, kp - k, d + 1, N), ops.ew(N * Lq * (k - feature_rank(d, g - 1)), 2 * (g % 2 == 0))
    ops.mm(d, Lq, d, N * ("q" in adapted)), ops.mm(d, Lk, d, N * (("k" in adapted) + ("v" in adapted)))
    if "v" in adapted:
        ops.ew(N * Lq * d, 8), ops.mm(k, Lq, d, N), ops.mm(Lk, k, d, N), ops.mm(Lk, kp - k, d, N)
        ops.mm(d, Lk, d, N)
    ops.mm(r, d, d, 2 * len(adapted))
    return int(ops)


def _op_count(inst: Instance, g: int) -> int:
    """Predicted flops of `poly` at degree g: the causal chunkwise algorithm for causal instances."""
    if inst.causal:
        from harness.theory.causal import causal_poly_op_count

        return causal_poly_op_count(inst.N, inst.Lq, inst.Lk, inst.d, g, inst.r, inst.adapted)
    return poly_op_count(inst.N, inst.Lq, inst.Lk, inst.d, g, inst.r, inst.adapted)


def exact_op_count(N: int, Lq: int, Lk: int, d: int, r: int, adapted: tuple[str, ...]) -> int:
    """Flops of the quadratic closed form (harness/solvers/exact_closed_form.py, OpCounter
    convention; docs/theory.md §3.3): the cost `poly` is compared with."""
    from harness.measure.opcount import OpCounter

    ops = OpCounter()
    a, b = Lq, Lk
    ops.mm(d, r, d, len(adapted))
    for _ in range(N):
        (
            ops.mm(a, d, d),
            ops.mm(b, d, d, 2),
            ops.mm(a, d, b),
            ops.ew(a * b, 5),
            ops.mm(a, b, d),
            ops.ew(a * d, 4),
        )
        if "v" in adapted:
            ops.mm(b, a, d), ops.mm(d, b, d)
        if "q" in adapted or "k" in adapted:
            ops.mm(a, d, b), ops.ew(a * b, 4)
            if "q" in adapted:
                ops.mm(a, b, d), ops.mm(d, a, d)
            if "k" in adapted:
                ops.mm(b, a, d), ops.mm(d, b, d)
    ops.mm(r, d, d, 2 * len(adapted))
    return int(ops)


def certify(
    inst: Instance,
    eps: float | None = None,
    degree: int | None = None,
    max_rank: int | None = None,
    exact_R: bool | None = None,
    R: float | None = None,
    dtype: str = "float64",
) -> dict[str, Any]:
    """What the polynomial method needs on `inst`, without running it (docs/theory.md §4.1-§4.3,
    §5.2): the same score range (`certificate_score_range`), the same degree choice (the pilot
    estimate of the a posteriori certificate, `harness.solvers.poly.pilot.Pilot`) and the same
    regime rule (`classify`) as the `poly` solver.

    Keys: "R" (centred score range, exact or the O(L d) bound: "R_exact"), "R_bound", "log_L",
    "regime" / "regime_reason" (finite-L rule), "regime_R" (R against log L alone), "gammas",
    "degree" g ("degree_found" False: the search stopped before any degree met the target, and g,
    rank, ops, cost_ratio are lower bounds), "rank" k = C(d+g, g), "eps_rel" (entrywise relative
    kernel error bound taylor_rel_error(R, g)), "error_bound_estimate" (the pilot's estimate of the solver's
    a posteriori certificate at g; the solver's own certificate is the promise),
    "error_bound" (a rigorous a priori bound at g, exact arithmetic: the entrywise chain of
    `gradient_error_bound_rows`, usually 1e3-1e5 x looser), "meets_eps" (error_bound <= eps),
    "meets_eps_predicted" (estimate <= eps), "ops" / "exact_ops" / "cost_ratio" (predicted flops
    of poly and of the exact closed form), "max_rank", "within_rank", "coefficient",
    "error_bound_uniform". With `degree`, that degree; otherwise the smallest degree whose estimate
    is <= harness.solvers.poly.pilot.PILOT_ACCEPT * eps (eps defaults to DEFAULT_EPS)."""
    import torch

    from harness.solvers.base import resolve_dtype
    from harness.solvers.poly import bound as poly_bound
    from harness.solvers.poly import pilot as poly_pilot
    from harness.solvers.poly.fused import preprocess

    if R is None:
        R, R_exact = certificate_score_range(inst, exact_R)
    else:
        R_exact = bool(exact_R)
    rows = centred_row_bounds(inst)
    Rb = float(rows.max())
    rows = np.minimum(rows, R)
    max_rank = DEFAULT_MAX_RANK if max_rank is None else int(max_rank)
    target = (DEFAULT_EPS if degree is None else None) if eps is None else float(eps)
    dt = resolve_dtype(dtype)
    t = inst.as_torch(dtype=dt)
    with torch.no_grad():
        prep = preprocess(t, inst.alpha, inst.beta, inst.r)
        Zk = torch.cat([prep["Vc"], torch.ones(*prep["Vc"].shape[:-1], 1, dtype=dt)], -1)
        ctx = poly_bound.BoundContext(inst, t, prep, Zk, 1, dt)
        choice = poly_pilot.choose_degree_with_lead(
            poly_pilot.Pilot(ctx), target, max_rank, inst.d, degree, R
        )
    g = choice["degree"]
    k = feature_rank(inst.d, g)
    terms = _BoundTerms(inst)

    def bound_at(gg: int) -> float:
        return terms.bound(row_deltas(rows, gg)) if taylor_rel_error(R, gg) < 1 else math.inf

    e = taylor_rel_error(R, g)
    bound = bound_at(g)
    coef = terms.bound(1.0)
    L = inst.L
    ops = _op_count(inst, g)
    exact_ops = exact_op_count(inst.N, inst.Lq, inst.Lk, inst.d, inst.r, inst.adapted)
    ratio = ops / max(exact_ops, 1)
    within = k <= max_rank
    label, why = classify(R, L, ratio, within)
    return {
        "R": float(R),
        "R_bound": Rb,
        "R_exact": bool(R_exact),
        "R_centred": True,
        "log_L": math.log(max(L, 2)),
        "regime": label,
        "regime_reason": why,
        "regime_R": regime(R, L),
        "gammas": paper_gammas(inst),
        "degree": g,
        "degree_requested": degree is not None,
        # False: the search stopped (rank 1e12 or max_degree) before any degree met the target, so
        # g, rank, ops and cost_ratio are lower bounds
        "degree_found": bool(choice["found"]),
        "rank": k,
        "eps_rel": e,
        "error_bound": bound,
        "coefficient": coef,
        "error_bound_estimate": choice["estimate"],
        "degree_search": choice["searched"],
        "error_bound_uniform": normalised_rel_error(e) * coef if e < 1 else math.inf,
        "eps": None if eps is None else float(eps),
        "meets_eps": (None if eps is None else bound <= eps),
        "meets_eps_predicted": (None if target is None else choice["estimate"] <= target),
        "ops": ops,
        "exact_ops": exact_ops,
        "cost_ratio": ratio,
        "causal": inst.causal,
        "max_rank": max_rank,
        "within_rank": within,
    }


def refusal_message(solver: str, cert: dict[str, Any]) -> str | None:
    """One line explaining why `solver` refuses (the rank the target needs is over the budget), or
    None. The regime named is `classify`'s, so a refusal never says "efficient"."""
    R, lg, g, k = cert["R"], cert["log_L"], cert["degree"], cert["rank"]
    if k > cert["max_rank"]:
        ks = str(k) if k < 10**9 else f"{float(k):.3g}"
        head = f"{solver} refuses: instance is in the {cert['regime']} regime (R={R:.3g} vs log L={lg:.3g}): "
        cost = f"(predicted cost {cert.get('cost_ratio', math.nan):.3g}x the exact solver's)"
        if cert.get("degree_requested"):
            return f"{head}the requested degree g={g} has rank k={ks} > --max-rank {cert['max_rank']} {cost}"
        need = "needs" if cert.get("degree_found", True) else "needs at least"
        if cert.get("eps") is None or not cert.get("eps_given", True):
            target = f"eps={cert.get('eps') or DEFAULT_EPS:.3g} (default)"
        else:
            target = f"eps={cert['eps']:.3g}"
        return f"{head}{target} {need} degree g={g}, rank k={ks} > --max-rank {cert['max_rank']} {cost}"
    return None
