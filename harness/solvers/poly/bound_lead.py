"""The signed first-order query-gradient error of `poly` (issue 14, tightness; docs/theory.md §4.3).

Row j of one data point (program inputs, exact arithmetic; T = -x^(g+1)/(g+1)!, A~ = P_g(x),
D~ = sum_m A~, Zq = [c~, -r~]/D~, Zk_m = [V'_m, 1], so Z~_jm = D~_j Zq_j . Zk_m):

    (p~ - p)_j K' = F1_j + E_j,   F1_j = Zq_j . Ttop_j + Wq_j . Hrow_j,
    Ttop_j = sum_m T_jm Zk_m (x) K'_m,   Hrow_j = sum_m A~_jm Zk_m (x) K'_m      ((d+1) x d each)
    Wq_j = -(sT_j/D~_j) Zq_j + [dc1_j, -(dc1_j . O~_j + c~_j . dO1_j)]/D~_j,
    dO1 = (tV - sT O~)/D~ (the first-order output error), dc1 = dO1/N:

F1 is the first-order part of the exact identities f~ - f = (Delta A - f~ s)/D and
Z~_m - Z_m = dc.(V'_m - O~) - c.dO with Delta A -> T, D -> D~, f -> f~, c -> c~; the remainder E_j
(first order in the tail r2 = Delta A - T, second order in Delta A) is bounded in `bound.py`.
The signed sum F_q = beta sum_j X_q,j (x) F1_j keeps the cancellations over rows and keys that the
absolute chain |beta| |X_q|^T |(p~ - p) K'| loses (100-300x on the bounded families).

Both contractions are moments, as in `moments.py`: Ttop from the top (degree g+1) key features
against Zk (x) K', Hrow from the degree-g ones (the derivative map of Mk, as the moments kernel's
G_q); so `q_lead` is one pass over the keys and one over the queries, float64, run by the
certificate only when the absolute chain misses the target.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.solvers._common import blocks
from harness.solvers.poly.bound_context import gamma
from harness.solvers.poly.features import TorchPlan, features_t
from harness.theory.taylor import feature_rank

__all__ = ["lead_applies", "lead_count", "lead_weight_errors", "lead_weights", "q_lead"]

#: entries of one (N, k+, block) feature block of the lead's passes
BLOCK_ENTRIES = 1 << 21


def lead_applies(inst) -> bool:
    """The signed query lead exists for adapted query weights on unmasked attention (the causal
    certificate keeps the absolute query chain)."""
    return "q" in inst.adapted and not inst.causal


def lead_weights(D, Oc, c, rr, sT, tV, N: int):
    """Zq (N, L, d+1) and Wq (N, L, d+1) from the run's rows (float64 numpy; D, rr, sT (N, L))."""
    Dn = D[..., None]
    nO = tV - sT[..., None] * Oc
    dO1 = nO / Dn
    dc1 = dO1 / N
    sc = (sT / D)[..., None]
    w0 = (dc1 * Oc).sum(-1) + (c * dO1).sum(-1)
    nW = np.concatenate([dc1 - sc * c, (sc[..., 0] * rr - w0)[..., None]], -1)
    Zq = np.concatenate([c, -rr[..., None]], -1) / Dn
    return Zq, nW / Dn


def lead_weight_errors(D, Oc, c, rr, sT, tV, N, e_D, e_O, e_c, e_r, e_sT, e_tV, u, d):
    """|Wq (computed by `lead_weights` from the rows) - Wq (exact program)| (N, L, d+1), each
    computed row quantity within its error bound e_* of its exact-program value; every float64
    operation of `lead_weights` is one rounding of at most u (the solver's unit roundoff >= u64).
    Products: |a^ b^ - a b| <= e_a (|b^| + e_b) + |a^| e_b; quotients:
    |a^/b^ - a/b| <= e_a/b^ + (|a^| + e_a) e_b/(b^ (b^ - e_b))."""
    Dn, eDn = D[..., None], e_D[..., None]
    Dlo = Dn - eDn

    def quot(a, ea):  # a^/D^ vs a/D, plus the division's rounding
        return ea / Dn + (np.abs(a) + ea) * eDn / (Dn * Dlo) + 2 * u * np.abs(a / Dn)

    nO = tV - sT[..., None] * Oc
    e_nO = (
        e_tV
        + e_sT[..., None] * (np.abs(Oc) + e_O)
        + np.abs(sT)[..., None] * e_O
        + 3 * u * (np.abs(tV) + np.abs(sT[..., None] * Oc))
    )
    dO1 = nO / Dn
    e_dO1 = quot(nO, e_nO)
    dc1 = dO1 / N
    e_dc1 = e_dO1 / N + 2 * u * np.abs(dc1)
    sc = sT / D
    e_sc = (quot(sT[..., None], e_sT[..., None]))[..., 0]
    w0 = (dc1 * Oc).sum(-1) + (c * dO1).sum(-1)
    e_w0 = (
        (e_dc1 * (np.abs(Oc) + e_O) + np.abs(dc1) * e_O).sum(-1)
        + (e_c * (np.abs(dO1) + e_dO1) + np.abs(c) * e_dO1).sum(-1)
        + gamma(2 * d + 2, u) * ((np.abs(dc1) * np.abs(Oc)).sum(-1) + (np.abs(c) * np.abs(dO1)).sum(-1))
    )
    sca, esa = np.abs(sc)[..., None], e_sc[..., None]
    e_n1 = e_dc1 + esa * (np.abs(c) + e_c) + sca * e_c + 3 * u * (np.abs(dc1) + sca * np.abs(c))
    e_n2 = e_sc * (np.abs(rr) + e_r) + np.abs(sc) * e_r + e_w0 + 3 * u * (np.abs(sc * rr) + np.abs(w0))
    nW = np.concatenate([dc1 - sc[..., None] * c, (sc * rr - w0)[..., None]], -1)
    e_nW = np.concatenate([e_n1, e_n2[..., None]], -1)
    return quot(nW, e_nW)


def lead_count(Lq: int, Lk: int, N: int, d: int, g: int) -> int:
    """The longest chain of roundings a term of `q_lead`'s F_q meets: the monomial (<= g+1 products)
    and its weight, the Zk (x) K' / Wq (x) X_q products, the sums over the keys and the queries (any
    blocking: <= L each), the (i, l) contraction (<= (d+1) k+), the derivative factor, s_q, beta,
    the sum over the data points and the final difference."""
    return Lq + Lk + N + (d + 1) * feature_rank(d, g + 1) + 2 * g + 40


def _outer(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """(N, b, p) x (N, b, q) -> (N, b, p q), column l q + b."""
    return (A.unsqueeze(-1) * B.unsqueeze(-2)).reshape(*A.shape[:-1], A.shape[-1] * B.shape[-1])


def q_lead(t: dict, prep: dict, rows: dict, g: int, block: int | None = None) -> np.ndarray:
    """F_q = beta sum_j X_q,j (x) F1_j (module docstring), (d, d) float64, from the run's inputs
    `t`, its `prep` (fused.preprocess) and its per-row quantities `rows` (D, Oc, c, rr, sT, tV)."""
    from harness.solvers.poly.moments import _derive

    f64 = torch.float64
    dev = prep["xq"].device
    cv = lambda x: x.detach().to(f64)  # noqa: E731 (exact: float32 values are float64 values)
    xq, xk, Kc, Vc, Xq = cv(prep["xq"]), cv(prep["xk"]), cv(prep["Kc"]), cv(prep["Vc"]), cv(t["X_q"])
    N, Lq, d = xq.shape
    Lk = xk.shape[1]
    plan = TorchPlan(d, g + 1, f64, dev)
    k, kp = feature_rank(d, g), plan.k
    B = block or max(256, BLOCK_ENTRIES // (N * kp))
    Zk = torch.cat([Vc, torch.ones(N, Lk, 1, dtype=f64, device=dev)], -1)
    T = lambda x: x.transpose(-1, -2).contiguous()  # noqa: E731
    xkT, xqT = T(xk), T(xq)
    Mk = torch.zeros(N, kp, d + 1, dtype=f64, device=dev)
    Ht = torch.zeros(N, kp - k, (d + 1) * d, dtype=f64, device=dev)
    for s, e in blocks(Lk, B):
        phk = features_t(xkT[..., s:e], plan)  # (N, k+, b)
        Mk += phk @ Zk[:, s:e]
        Ht += phk[:, k:] @ _outer(Zk[:, s:e], Kc[:, s:e])
    Mk *= plan.w
    Ht *= plan.w[k:]  # w_i sum_m phi_i(x_k,m) Zk_m (x) K'_m over the degree-(g+1) monomials i
    H = _derive(Mk, d, g)  # (N, k, (d+1) d): sum_m A~-features Zk (x) x_k (times s_q: K')
    r = {n: rows[n].detach().to("cpu", f64).numpy() for n in ("D", "Oc", "c", "rr", "sT", "tV")}
    Zq, Wq = lead_weights(r["D"][..., 0], r["Oc"], r["c"], r["rr"][..., 0], r["sT"][..., 0], r["tV"], N)
    Zq, Wq = torch.from_numpy(Zq).to(dev), torch.from_numpy(Wq).to(dev)
    CA = torch.zeros(N, kp - k, (d + 1) * d, dtype=f64, device=dev)
    CW = torch.zeros(N, k, (d + 1) * d, dtype=f64, device=dev)
    for s, e in blocks(Lq, B):
        phq = features_t(xqT[..., s:e], plan)
        CA += phq[:, k:] @ _outer(Zq[:, s:e], Xq[:, s:e])
        CW += phq[:, :k] @ _outer(Wq[:, s:e], Xq[:, s:e])
    d1 = d + 1
    FA = CA.reshape(N, (kp - k) * d1, d).transpose(-1, -2) @ Ht.reshape(N, (kp - k) * d1, d)
    FW = (CW.reshape(N, k * d1, d).transpose(-1, -2) @ H.reshape(N, k * d1, d)) * cv(prep["sq"])
    return ((FW - FA) * float(prep["bt"])).sum(0).cpu().numpy()
