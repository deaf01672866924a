"""Theory: score range, regime, Taylor degree/rank and rigorous gradient-error certificates for the
polynomial-method solvers (MATH.md §2.3 [D], §5.7, §6.4-6.5, §10, §11 items 1, 2, 5, 6; §13 items 10-11).

Pure functions of an Instance (nothing is mutated). Used by the `poly` / `poly-chained` solvers, the
scaling study and the model audit. The derivation of `gradient_error_bound` is in docs/fast-solvers.md.

Conventions
-----------
* R := max_i ||beta S_i||_inf, S_i = X_q,i W_q W_k^T X_k,i^T with the *effective* (adapted) weights
  W_m = W*_m + alpha/r B_m A_m (MATH.md §11 item 6: classify by R, keep beta explicit).
* The kernel approximated by `poly` is P_g(beta S), P_g(x) = sum_{t<=g} x^t/t! (MATH.md §2.3 [D] 2(b)).
* eps_rel is the entrywise relative error of P_g(beta S) against exp(beta S) on |x| <= R.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.instance import Instance

#: regime constants (conventions; the theory is asymptotic, MATH.md §2.2, §7.2)
EFFICIENT_C = 0.5
THRESHOLD_C = 2.0
#: default relative target when a solver is given neither eps nor degree
DEFAULT_EPS = 1e-6
DEFAULT_MAX_RANK = 20000
MAX_DEGREE = 400
#: N * Lq * Lk up to which `certify` computes the exact R by default (above it: the O(L d) upper bound)
EXACT_R_ENTRIES = 1 << 24
_BLOCK_ENTRIES = 1 << 22
#: largest d for which score_range reduces the rows to convex-hull vertices first
HULL_MAX_D = 5


# ---------------------------------------------------------------------------------------- norms
def effective_np(inst: Instance) -> dict[str, np.ndarray]:
    """Effective weights W_m = W*_m + (alpha/r) B_m A_m in float64 numpy (MATH.md §4.2 Def. 1.1)."""
    a = inst.arrays
    out = {}
    for m in ("q", "k", "v"):
        W = np.asarray(a[f"W_{m}"], np.float64)
        if f"A_{m}" in a:
            W = W + (inst.alpha / inst.r) * (np.asarray(a[f"B_{m}"], np.float64) @ np.asarray(a[f"A_{m}"], np.float64))
        out[m] = W
    return out


def projections(inst: Instance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q = X_q W_q, K = X_k W_k, V = X_v W_v, each (N, L, d) float64 (effective weights)."""
    W = effective_np(inst)
    return tuple(np.asarray(inst.x3(f"X_{m}"), np.float64) @ W[m] for m in ("q", "k", "v"))  # type: ignore


def _extreme_points(P: np.ndarray) -> np.ndarray:
    """Rows of P that suffice for max_{p in P} <p, x> over every x: the vertices of conv(P) (qhull,
    for 1 <= d <= HULL_MAX_D and more than 64 points); P itself otherwise or when qhull fails."""
    n, d = P.shape
    if n <= 64 or d > HULL_MAX_D:
        return P
    if d == 1:
        return P[[int(P.argmin()), int(P.argmax())]]
    try:
        from scipy.spatial import ConvexHull

        return P[ConvexHull(P).vertices]
    except Exception:  # degenerate (flat) point sets, qhull errors: no reduction
        return P


def score_range(inst: Instance) -> float:
    """R = max_i ||beta S_i||_inf exactly (MATH.md §11 item 6), without an L x L matrix.

    A bilinear form q^T k over Q x K attains its max and min at vertices of conv(Q) x conv(K), so
    for d <= HULL_MAX_D the rows are first reduced to their convex-hull vertices (qhull; exact up to
    qhull's floating tolerance, ~1e-13 relative) and the max is taken over the vertex pairs. Otherwise
    (or if qhull fails) blocked over query rows: memory O(L d + 2^22), time O(N Lq Lk d)."""
    import torch

    Q, K, _ = projections(inst)
    best = 0.0
    with torch.no_grad():
        for i in range(inst.N):
            q = torch.from_numpy(np.ascontiguousarray(_extreme_points(Q[i])))
            k = torch.from_numpy(np.ascontiguousarray(_extreme_points(K[i])))
            bq = max(1, _BLOCK_ENTRIES // max(1, k.shape[0]))
            for s in range(0, q.shape[0], bq):
                lo, hi = torch.aminmax(q[s:s + bq] @ k.T)
                best = max(best, float(hi), -float(lo))
    return abs(inst.beta) * best


def score_range_bound(inst: Instance) -> float:
    """Rigorous O(N L d) upper bound on R: per query row j the smaller of Cauchy-Schwarz
    ||q_j||_2 max_k ||k_k||_2 and Hoelder sum_l |q_jl| max_k |k_kl|, then the max over rows and data
    points, times |beta|. R <= score_range_bound(inst) always."""
    return float(row_score_bounds(inst).max())


def paper_gammas(inst: Instance) -> dict[str, float]:
    """The LoRA paper's literal Gamma quantities (MATH.md §5.7 Thm 3.1, §6.5 Thm 4.1, §11 item 5):

    * "q_C1W": ||C_Q^(1) W_Q||_inf = ||X_q W_q||_inf  (Q view, the variable times its left constant)
    * "q_C2":  ||C_Q^(2)||_inf   = ||X_k W_k||_inf  (Q view, right constant)
    * "k_C1W": ||C_K^(1) W_K^T||_inf read with the corrected K-view variable W_K^T, i.e. the K view's
               variable-side factor ||X_k W_k||_inf (§11 item 5: the K-view variable is W_K^T)
    * "k_C2":  the K view's constant side ||X_q W_q||_inf
    * "gamma": the max of the four (the Gamma the theorems need, max over data points).
    Effective (adapted) weights throughout; beta is NOT included (the paper sets beta = 1, §11 item 6).
    """
    Q, K, _ = projections(inst)
    nq = float(np.abs(Q).max())
    nk = float(np.abs(K).max())
    out = {"q_C1W": nq, "q_C2": nk, "k_C1W": nk, "k_C2": nq}
    out["gamma"] = max(out.values())
    return out


def regime(R: float, L: int) -> str:
    """'efficient' if R <= 0.5 log L, 'threshold' if R <= 2 log L, else 'hard' (natural log).

    AS23 / MATH.md §2.2, §11 item 6: R = o(log L) is the almost-linear regime, R = Theta(log L) and
    beyond is SETH-hard. The constants 0.5 and 2 are conventions for finite L, not theorems."""
    lg = math.log(max(int(L), 2))
    if R <= EFFICIENT_C * lg:
        return "efficient"
    if R <= THRESHOLD_C * lg:
        return "threshold"
    return "hard"


# ---------------------------------------------------------------------------------------- Taylor
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
    a factor e^R tighter than MATH.md §2.3 [D] item 2's R^(g+1) e^(2R)/(g+1)! (`taylor_rel_error_paper`)."""
    lv = log_taylor_rel_error(R, g)
    return 0.0 if lv == -math.inf else (math.exp(lv) if lv < 700 else math.inf)


def taylor_rel_error_paper(R: float, g: int) -> float:
    """MATH.md §2.3 [D] item 2 as printed: R^(g+1) e^(2R) / (g+1)!."""
    if R <= 0:
        return 0.0
    lv = log_taylor_rel_error(R, g) + R
    return math.exp(lv) if lv < 700 else math.inf


def taylor_degree(R: float, eps_rel: float) -> int:
    """Smallest g >= 1 with taylor_rel_error(R, g) <= eps_rel (MATH.md §2.3 [D] item 2)."""
    if not eps_rel > 0:
        raise HarnessError(f"eps_rel must be positive, got {eps_rel}")
    le = math.log(eps_rel)
    for g in range(1, 100 * MAX_DEGREE):
        if log_taylor_rel_error(R, g) <= le:
            return g
    raise HarnessError(f"no Taylor degree below {100 * MAX_DEGREE} reaches eps_rel={eps_rel:g} at R={R:g}")


def feature_rank(d: int, g: int) -> int:
    """Number of monomials of degree <= g in d variables: C(d+g, g) (MATH.md §2.3 [D] item 3)."""
    return math.comb(int(d) + int(g), int(g))


def normalised_rel_error(eps_rel: float) -> float:
    """delta = 2 eps/(1-eps): entrywise relative error of the row-normalised kernel (§2.3 [D] item 4)."""
    if eps_rel >= 1:
        return math.inf
    return 2.0 * eps_rel / (1.0 - eps_rel)


# ---------------------------------------------------------------------------------------- gradient bound
class _BoundTerms:
    """Precomputed O(N L d) pieces of the gradient-error bound, so that for per-query-row kernel
    errors delta_ij the bound is a few matrix-vector products (see `gradient_error_coefficient`)."""

    def __init__(self, inst: Instance):
        Q, K, V = projections(inst)
        N = inst.N
        self.inst = inst
        self.parts = []
        for i in range(N):
            Vi, Yi = V[i], np.asarray(inst.x3("Y")[i], np.float64)
            a = np.abs(Vi).max(0)
            w = Vi.max(0) - Vi.min(0)
            cbar = (a[None, :] + np.abs(Yi)) / N
            tau = 1.5 * (cbar @ w) + float((w ** 2).sum()) / (2 * N)
            part = {}
            if "q" in inst.adapted:
                part["q"] = (np.abs(np.asarray(inst.x3("X_q")[i], np.float64)) * tau[:, None],
                             np.abs(K[i]).max(0), "left")
            if "k" in inst.adapted:
                part["k"] = (np.abs(Q[i]) * tau[:, None],
                             np.abs(np.asarray(inst.x3("X_k")[i], np.float64)).max(0), "right")
            if "v" in inst.adapted:
                part["v"] = (cbar + w[None, :] / (2 * N),
                             np.abs(np.asarray(inst.x3("X_v")[i], np.float64)).max(0), "right")
            self.parts.append(part)

    def bound(self, delta) -> float:
        """Max-norm adapter-gradient bound for kernel errors delta: a scalar or an (N, Lq) array."""
        inst = self.inst
        if not inst.adapted:
            return 0.0
        d = inst.d
        delta = np.broadcast_to(np.asarray(delta, np.float64), (inst.N, inst.Lq))
        if not np.all(np.isfinite(delta)):
            return math.inf
        Gam = {m: np.zeros((d, d)) for m in inst.adapted}
        for i, part in enumerate(self.parts):
            for m, (rows, vec, side) in part.items():
                sc = abs(inst.beta) if m in ("q", "k") else 1.0
                weighted = rows.T @ delta[i]                       # sum_j delta_j rows_j
                Gam[m] += sc * (np.outer(weighted, vec) if side == "left" else np.outer(vec, weighted))
        s = abs(inst.alpha) / inst.r
        best = 0.0
        for m, G in Gam.items():
            A = np.abs(np.asarray(inst.arrays[f"A_{m}"], np.float64))
            B = np.abs(np.asarray(inst.arrays[f"B_{m}"], np.float64))
            best = max(best, float((s * (B.T @ G)).max()), float((s * (G @ A.T)).max()))
        return best


def gradient_error_coefficient(inst: Instance) -> float:
    """C(inst) such that, for the `poly` solver (row-normalised approximate kernel f~ with entrywise
    |f~ - f| <= delta f, plug-in gradients of MATH.md §10 with f -> f~), the max-norm error of every
    adapter gradient is <= delta * C(inst). O(N L d) work, no L x L matrix. Derivation:
    docs/fast-solvers.md "Error bound". Per data point (V, K, Q with effective weights):

        a_l = max_k |V_kl|, w_l = max_k V_kl - min_k V_kl, cbar_jl = (a_l + |Y_jl|)/N
        tau_j = 1.5 sum_l cbar_jl w_l + sum_l w_l^2/(2N)       (|dp_jk| <= delta f_jk tau_j)
        |dG_q| <= delta |beta| (|X_q|^T tau) (max_k |K_k.|)
        |dG_k| <= delta |beta| (max_k |X_k,k.|) (tau^T |Q|)
        |dG_v| <= delta (max_k |X_v,k.|) sum_j (cbar_j. + w/(2N))
    then |d dA| <= (alpha/r)|B|^T |dG|, |d dB| <= (alpha/r)|dG| |A|^T (MATH.md §10).
    With a different delta_j per query row the same sums carry the weights delta_j (`_BoundTerms`)."""
    return _BoundTerms(inst).bound(1.0)


def row_score_bounds(inst: Instance) -> np.ndarray:
    """(N, Lq) rigorous bounds R_ij >= max_k |beta S_i,jk| (Cauchy-Schwarz / Hoelder per query row,
    O(N L d)); `score_range_bound` is their max."""
    Q, K, _ = projections(inst)
    kn = np.sqrt((K ** 2).sum(-1)).max(-1)
    kmax = np.abs(K).max(-2)
    cs = np.sqrt((Q ** 2).sum(-1)) * kn[:, None]
    ho = (np.abs(Q) * kmax[:, None, :]).sum(-1)
    return abs(inst.beta) * np.minimum(cs, ho)


def row_deltas(R_rows: np.ndarray, g: int) -> np.ndarray:
    """delta_j = 2 eps_j/(1 - eps_j), eps_j = taylor_rel_error(R_j, g), vectorised (inf if eps_j >= 1)."""
    R = np.maximum(np.asarray(R_rows, np.float64), 1e-300)
    le = (g + 1) * np.log(R) + R - math.lgamma(g + 2)
    eps = np.exp(np.minimum(le, 700.0))
    with np.errstate(divide="ignore"):
        return np.where(eps < 1, 2 * eps / np.maximum(1 - eps, 1e-300), np.inf)


def gradient_error_bound_rows(inst: Instance, g: int, R: float | None = None, terms=None) -> float:
    """The same bound with a per-query-row kernel error: row j's polynomial is only evaluated on
    |x| <= R_j (`row_score_bounds`, capped by R when given), so eps_j = taylor_rel_error(R_j, g).
    Never larger than gradient_error_bound(inst, taylor_rel_error(max R_j, g))."""
    rows = row_score_bounds(inst)
    if R is not None:
        rows = np.minimum(rows, R)
    return (terms or _BoundTerms(inst)).bound(row_deltas(rows, g))


def gradient_error_bound(inst: Instance, eps_rel: float) -> float:
    """Rigorous (exact-arithmetic) max-norm bound on the adapter-gradient error of `poly` when the
    kernel exp(beta S) is replaced by an approximation with entrywise relative error <= eps_rel < 1:
    2 eps/(1-eps) * gradient_error_coefficient(inst). inf when eps_rel >= 1."""
    delta = normalised_rel_error(eps_rel)
    if math.isinf(delta):
        return math.inf
    return delta * gradient_error_coefficient(inst)


# ---------------------------------------------------------------------------------------- certificate
def poly_op_count(N: int, Lq: int, Lk: int, d: int, g: int, r: int, adapted: tuple[str, ...]) -> int:
    """Deterministic flop count of the `poly` solver (harness/solvers/poly.py), OpCounter convention:
    monomials of degree g+1 for queries and keys (1 op per entry, twice for keys: two key passes),
    the factored products and the feature back-propagation. Linear in L at fixed (d, g)."""
    from harness.measure.opcount import OpCounter

    k, kp = feature_rank(d, g), feature_rank(d, g + 1)
    ops = OpCounter()
    ops.mm(d, r, d, len(adapted))
    ops.mm(Lq, d, d, N), ops.mm(Lk, d, d, 2 * N)           # Q, K, V
    ops.ew(N * Lq * d + N * Lk * d, 1)                       # range bound
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
        ops.ew(N * Lk * kp, 1)                                # pass 3 (keys): features again
    if "k" in adapted:
        ops.mm(kp, d + 1, Lk, N), ops.ew(N * Lk * kp, 4), ops.mm(d, Lk, d, N)
    if "v" in adapted:
        ops.mm(Lk, k, d, N), ops.mm(d, Lk, d, N)
    ops.mm(r, d, d, 2 * len(adapted))
    return int(ops)


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


def certify(inst: Instance, eps: float | None = None, degree: int | None = None,
            max_rank: int | None = None, exact_R: bool | None = None, R: float | None = None) -> dict[str, Any]:
    """Certificate for the polynomial method on `inst` (MATH.md §2.3 [D], §4.4 Problem 1, §13 item 10).

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
        "R": float(R), "R_bound": float(Rb), "R_exact": bool(exact_R),
        "log_L": math.log(max(L, 2)), "regime": regime(R, L), "gammas": paper_gammas(inst),
        "degree": g, "rank": k, "eps_rel": e, "error_bound": bound, "coefficient": coef,
        "error_bound_uniform": normalised_rel_error(e) * coef if e < 1 else math.inf,
        "eps": None if eps is None else float(eps), "meets_eps": (None if eps is None else bound <= eps),
        "ops": poly_op_count(inst.N, inst.Lq, inst.Lk, inst.d, g, inst.r, inst.adapted),
        "max_rank": max_rank, "within_rank": k <= max_rank,
    }


def refusal_message(solver: str, cert: dict[str, Any]) -> str | None:
    """One line explaining why `solver` refuses an instance (rank too large or no valid certificate),
    or None when it can run."""
    R, lg, g, k = cert["R"], cert["log_L"], cert["degree"], cert["rank"]
    if cert["rank"] > cert["max_rank"]:
        ks = str(k) if k < 10 ** 9 else f"{float(k):.3g}"
        gs = f"g={g}" if g < MAX_DEGREE or cert.get("meets_eps") is not False else f"g>={g}"
        return (f"{solver} refuses: instance is in the {cert['regime']} regime (R={R:.3g} vs log L={lg:.3g}): "
                f"degree {gs} needs rank k={ks} > --max-rank {cert['max_rank']}")
    if not cert["eps_rel"] < 1:
        return (f"{solver} refuses: degree g={g} has relative error bound {cert['eps_rel']:.3g} >= 1 on "
                f"[-R, R] (R={R:.3g}), the kernel may turn negative; use g >= {taylor_degree(R, 0.5)}")
    return None
