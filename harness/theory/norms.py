"""Norms of an instance: effective weights, projections, the score range R = max_i ||beta S_i||_inf
(exact, and the rigorous O(N L d) row bounds), and the LoRA paper's literal Gamma quantities.

Pure functions of an Instance (nothing is mutated). docs/theory.md §5.1: classify by R, keep beta explicit.
"""

from __future__ import annotations

import numpy as np

from harness.instance import Instance
from harness.lora import effective_weights

_BLOCK_ENTRIES = 1 << 22

#: largest d for which score_range reduces the rows to convex-hull vertices first
HULL_MAX_D = 5


def effective_np(inst: Instance) -> dict[str, np.ndarray]:
    """Effective weights W_m = W*_m + (alpha/r) B_m A_m in float64 numpy (Hu et al. (arXiv:2406.03136) Def.
    1.1; docs/theory.md §1)."""
    weights = {k: np.asarray(v, np.float64) for k, v in inst.arrays.items() if k[0] in "WAB"}
    return effective_weights(weights, inst.alpha, inst.r)


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
    """R = max_i ||beta S_i||_inf exactly (docs/theory.md §5.1), without an L x L matrix.

    A bilinear form q^T k over Q x K attains its max and min at vertices of conv(Q) x conv(K), so
    for d <= HULL_MAX_D the rows are first reduced to their convex-hull vertices (qhull; exact up to
    qhull's floating tolerance, ~1e-13 relative) and the max is taken over the vertex pairs. Otherwise
    (or if qhull fails) blocked over query rows: memory O(L d + 2^22), time O(N Lq Lk d).
    Causal instances: over the unmasked entries (key m <= query j) only
    (`harness.theory.causal.causal_score_range_rows`)."""
    import torch

    Q, K, _ = projections(inst)
    if inst.causal:
        from harness.theory.causal import causal_score_range_rows

        with torch.no_grad():
            return abs(inst.beta) * max(
                causal_score_range_rows(Q[i], K[i], _extreme_points) for i in range(inst.N)
            )
    best = 0.0
    with torch.no_grad():
        for i in range(inst.N):
            q = torch.from_numpy(np.ascontiguousarray(_extreme_points(Q[i])))
            k = torch.from_numpy(np.ascontiguousarray(_extreme_points(K[i])))
            bq = max(1, _BLOCK_ENTRIES // max(1, k.shape[0]))
            for s in range(0, q.shape[0], bq):
                lo, hi = torch.aminmax(q[s : s + bq] @ k.T)
                best = max(best, float(hi), -float(lo))
    return abs(inst.beta) * best


def score_range_bound(inst: Instance) -> float:
    """Rigorous O(N L d) upper bound on R: per query row j the smaller of Cauchy-Schwarz
    ||q_j||_2 max_k ||k_k||_2 and Hoelder sum_l |q_jl| max_k |k_kl|, then the max over rows and data
    points, times |beta|. R <= score_range_bound(inst) always."""
    return float(row_score_bounds(inst).max())


def row_score_bounds(inst: Instance) -> np.ndarray:
    """(N, Lq) rigorous bounds R_ij >= max_k |beta S_i,jk| (Cauchy-Schwarz / Hoelder per query row,
    O(N L d)); `score_range_bound` is their max. Causal: over each row's prefix of keys."""
    Q, K, _ = projections(inst)
    if inst.causal:
        from harness.theory.causal import causal_row_score_bounds

        return causal_row_score_bounds(Q, K, inst.beta)
    kn = np.sqrt((K**2).sum(-1)).max(-1)
    kmax = np.abs(K).max(-2)
    cs = np.sqrt((Q**2).sum(-1)) * kn[:, None]
    ho = (np.abs(Q) * kmax[:, None, :]).sum(-1)
    return abs(inst.beta) * np.minimum(cs, ho)


def _ext1(a: np.ndarray, fn) -> np.ndarray:
    """fn(a, axis=1, keepdims=True) for (N, L, d) on a transposed copy (the same values; numpy's
    strided reduction over L with a short last axis is several times slower)."""
    return fn(np.ascontiguousarray(np.moveaxis(a, 1, -1)), axis=-1)[:, None, :]


def centred_projections(inst: Instance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q, K' = K - mu_K, V with mu_K the keys' mid-range per data point (float64). Softmax is
    invariant to the row shift beta q_j . mu_K, so the polynomial method only needs the centred
    scores beta q_j . k'_m (docs/theory.md §4.3)."""
    Q, K, V = projections(inst)
    return Q, K - 0.5 * (_ext1(K, np.max) + _ext1(K, np.min)), V


def centred_row_bounds(inst: Instance) -> np.ndarray:
    """(N, Lq) rigorous R_j >= max_m |beta q_j . k'_m| (Cauchy-Schwarz / Hoelder on the centred keys,
    O(N L d)), rounded up by a relative 1e-12 for their float64 evaluation."""
    Q, K, _ = centred_projections(inst)
    ones = np.ones(K.shape[-1])
    kn = np.sqrt((K**2) @ ones).max(-1)
    kmax = _ext1(np.abs(K), np.max)[:, 0, :]
    cs = np.sqrt((Q**2) @ ones) * kn[:, None]
    ho = (np.abs(Q) @ kmax[:, :, None])[..., 0]
    return abs(inst.beta) * np.minimum(cs, ho) * (1 + 1e-12)


def score_range_centred(inst: Instance) -> float:
    """The centred score range max |beta q_j . (k_m - mu_K)| exactly, blocked over query rows
    (memory O(L d + 2^22), time O(N Lq Lk d)); causal instances: over the unmasked entries m <= j
    (mu_K stays the mid-range of all keys, as the solver's)."""
    import torch

    Q, K, _ = centred_projections(inst)
    best = 0.0
    with torch.no_grad():
        for i in range(inst.N):
            q, k = torch.from_numpy(np.ascontiguousarray(Q[i])), torch.from_numpy(np.ascontiguousarray(K[i]))
            bq = max(1, _BLOCK_ENTRIES // max(1, k.shape[0]))
            for s in range(0, q.shape[0], bq):
                S = q[s : s + bq] @ k.T
                if inst.causal:  # the unmasked entries only (key m <= query j)
                    rows = torch.arange(s, s + S.shape[0])[:, None]
                    S = S.masked_fill(torch.arange(S.shape[1])[None, :] > rows, 0.0)
                lo, hi = torch.aminmax(S)
                best = max(best, float(hi), -float(lo))
    return abs(inst.beta) * best


#: N * Lq * Lk up to which the certificate's score range is computed exactly (dense, centred keys);
#: above it R is the O(L d) row bound's maximum. One policy for the solvers, `certify`, the study and
#: the audit, so one instance gets one R and one regime.
EXACT_R_ENTRIES = 1 << 18


def certificate_score_range(inst: Instance, exact: bool | None = None) -> tuple[float, bool]:
    """(R, exact): the score range every certificate, the study and the audit report (docs/theory.md
    §4.1, §5.2): the exact range of the centred scores when N Lq Lk <= EXACT_R_ENTRIES (or
    `exact=True`), else the rigorous bound max_j R_j of `centred_row_bounds`."""
    if exact is None:
        exact = inst.N * inst.Lq * inst.Lk <= EXACT_R_ENTRIES
    if exact:
        return score_range_centred(inst), True
    return float(centred_row_bounds(inst).max()), False


def paper_gammas(inst: Instance) -> dict[str, float]:
    """The LoRA paper's literal Gamma quantities (Hu et al. (arXiv:2406.03136) Thm 3.1, Thm 4.1;
    docs/theory.md §5.1, §7.5):

    * "q_C1W": ||C_Q^(1) W_Q||_inf = ||X_q W_q||_inf  (Q view, the variable times its left constant)
    * "q_C2":  ||C_Q^(2)||_inf   = ||X_k W_k||_inf  (Q view, right constant)
    * "k_C1W": ||C_K^(1) W_K^T||_inf read with the corrected K-view variable W_K^T, i.e. the K view's
               variable-side factor ||X_k W_k||_inf (docs/theory.md §7.5: the K-view variable is W_K^T)
    * "k_C2":  the K view's constant side ||X_q W_q||_inf
    * "gamma": the max of the four (the Gamma the theorems need, max over data points).
    Effective (adapted) weights throughout; beta is NOT included (the paper sets beta = 1, docs/theory.md
    §7.6).
    """
    Q, K, _ = projections(inst)
    nq = float(np.abs(Q).max())
    nk = float(np.abs(K).max())
    out = {"q_C1W": nq, "q_C2": nk, "k_C1W": nk, "k_C2": nq}
    out["gamma"] = max(out.values())
    return out
