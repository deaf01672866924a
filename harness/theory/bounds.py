"""The rigorous (exact-arithmetic) max-norm bound on the adapter-gradient error of `poly` when the
kernel exp(beta S) is replaced by an approximation with entrywise relative error delta (derivation:
docs/fast-solvers.md "Error bound")."""

from __future__ import annotations

import math

import numpy as np

from harness.instance import Instance
from harness.theory.norms import centred_projections, centred_row_bounds
from harness.theory.taylor import normalised_rel_error, row_deltas


class _BoundTerms:
    """Precomputed O(N L d) pieces of the gradient-error bound, so that for per-query-row kernel
    errors delta_ij the bound is a few matrix-vector products (see `gradient_error_coefficient`)."""

    def __init__(self, inst: Instance):
        Q, K, V = centred_projections(inst)  # p 1 = 0, so p K = p K' (docs/theory.md §4.3)
        N = inst.N
        self.inst = inst
        self.parts = []
        if inst.causal:  # key-side quantities over each row's prefix (harness.theory.causal)
            from harness.theory.causal import causal_bound_parts

            self.parts = causal_bound_parts(inst, Q, K, V)
            return
        for i in range(N):
            Vi, Yi = V[i], np.asarray(inst.x3("Y")[i], np.float64)
            a = np.abs(Vi).max(0)
            w = Vi.max(0) - Vi.min(0)
            cbar = (a[None, :] + np.abs(Yi)) / N
            tau = 1.5 * (cbar @ w) + float((w**2).sum()) / (2 * N)
            part = {}
            if "q" in inst.adapted:
                part["q"] = (
                    np.abs(np.asarray(inst.x3("X_q")[i], np.float64)) * tau[:, None],
                    np.abs(K[i]).max(0),
                    "left",
                )
            if "k" in inst.adapted:
                part["k"] = (
                    np.abs(Q[i]) * tau[:, None],
                    np.abs(np.asarray(inst.x3("X_k")[i], np.float64)).max(0),
                    "right",
                )
            if "v" in inst.adapted:
                part["v"] = (
                    cbar + w[None, :] / (2 * N),
                    np.abs(np.asarray(inst.x3("X_v")[i], np.float64)).max(0),
                    "right",
                )
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
                if vec.ndim == 2:  # causal: a key-side vector per row
                    wr = rows * delta[i][:, None]
                    Gam[m] += sc * (wr.T @ vec if side == "left" else vec.T @ wr)
                    continue
                weighted = rows.T @ delta[i]  # sum_j delta_j rows_j
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
    |f~ - f| <= delta f, plug-in gradients of docs/theory.md §3.2 with f -> f~), the max-norm error of every
    adapter gradient is <= delta * C(inst). O(N L d) work, no L x L matrix. Derivation:
    docs/fast-solvers.md "Error bound". Per data point (V, K, Q with effective weights):

        a_l = max_k |V_kl|, w_l = max_k V_kl - min_k V_kl, cbar_jl = (a_l + |Y_jl|)/N
        tau_j = 1.5 sum_l cbar_jl w_l + sum_l w_l^2/(2N)       (|dp_jk| <= delta f_jk tau_j)
        |dG_q| <= delta |beta| (|X_q|^T tau) (max_k |K_k.|)
        |dG_k| <= delta |beta| (max_k |X_k,k.|) (tau^T |Q|)
        |dG_v| <= delta (max_k |X_v,k.|) sum_j (cbar_j. + w/(2N))
    then |d dA| <= (alpha/r)|B|^T |dG|, |d dB| <= (alpha/r)|dG| |A|^T (docs/theory.md §3.2).
    With a different delta_j per query row the same sums carry the weights delta_j (`_BoundTerms`)."""
    return _BoundTerms(inst).bound(1.0)


def gradient_error_bound_rows(inst: Instance, g: int, R: float | None = None, terms=None) -> float:
    """The same bound with a per-query-row kernel error: row j's polynomial is only evaluated on
    |x| <= R_j (`row_score_bounds`, capped by R when given), so eps_j = taylor_rel_error(R_j, g).
    Never larger than gradient_error_bound(inst, taylor_rel_error(max R_j, g))."""
    rows = centred_row_bounds(inst)
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
