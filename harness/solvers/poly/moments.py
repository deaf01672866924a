"""`poly`'s two-pass "moments" kernel (issue 15): the same gradients, loss and per-row certificate
quantities as `fused.poly_gradients`, from one pass over the keys and one over the queries.

Every adapter gradient is a contraction of a key-side and a query-side moment of the features, so no
per-row gradient (dQ, dK, dV) is ever formed and the third pass (keys again) disappears:

* the moments H = diag(w) Phi_k^T ([V', 1] (x) K') of the gemm mode are the partial derivatives of
  the degree-(g+1) key moment Mk = diag(w) Phi+_k^T [V', 1] as polynomials in x_q:
  d/dx_b sum_a Mk_a x^a = sum_i x^i (i_b + 1) Mk_(i+e_b), so H comes from Mk by an index map
  (`derivative_map`), not a GEMM; likewise the query moment Hq from Nq = diag(w) Phi+_q^T Zq;
* G_Wq = beta s_q (.) sum_(i,l) Cq_(i,(l,a)) H_(i,(l,b)) with Cq = Phi_q^T (Zq (x) X_q);
  G_Wk = s_k (.) sum_(i,l) Ck_(i,(l,a)) Hq_(i,(l,b)) with Ck = Phi_k^T ([V', 1] (x) X_k) (pass 1);
  G_Wv = Vx^T Nq[:k, :d] with Vx = Phi_k^T X_v (pass 1); the signed first-order value error
  F_v = Vx^T Nh - Vx_top^T Nq_top.
(s_q, s_k: the balanced split's powers of two, s_q s_k = 1.) In exact arithmetic these are the gemm
mode's numbers; in floating point each gradient is ONE +/x program of the inputs whose terms are the
gemm mode's terms, so its rounding is gamma_n times the same absolute program
(`bound.bound_from_rows(..., moments=True)` counts the longer paths: both length sums and N).
Row blocks hold `BLOCK_ENTRIES` features (measured best at L = 2^15, d = 4: 4096-8192 rows).
The per-row outputs (`rows`) and the returned (grads, loss, info) layout are those of
`fused.poly_gradients` (info["absXdG"] is None).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from harness.lora import adapter_gradients
from harness.solvers._common import blocks
from harness.solvers.poly.bound_context import (
    path_length,  # noqa: F401 (re-exported)
    value_error_numerator,
)
from harness.solvers.poly.features import TorchPlan, features_t, monomial_plan
from harness.solvers.poly.fused import preprocess
from harness.theory.taylor import feature_rank

#: entries of one (N, k+, block) feature block (16 MiB in float64): larger blocks amortise the
#: per-block Python work; smaller ones gained little cache reuse on this machine
BLOCK_ENTRIES = 1 << 21
MIN_BLOCK = 256


@lru_cache(maxsize=32)
def derivative_map(d: int, g: int) -> tuple[np.ndarray, np.ndarray]:
    """For the degree-(g+1) plan: idx (d, k) and fac (d, k), k = C(d+g, g), with
    d/dx_b sum_a c_a x^a = sum_i x^i fac[b, i] c[idx[b, i]] (fac = i_b + 1, idx = the column of
    i + e_b). Exact small integers."""
    p = monomial_plan(d, g + 1)
    exps = [tuple(int(v) for v in row) for row in p["exps"]]
    where = {e: n for n, e in enumerate(exps)}
    k = feature_rank(d, g)
    idx = np.zeros((d, k), np.int64)
    fac = np.zeros((d, k), np.float64)
    for b in range(d):
        for i in range(k):
            e = list(exps[i])
            fac[b, i] = e[b] + 1
            e[b] += 1
            idx[b, i] = where[tuple(e)]
    return idx, fac


def _derive(M: torch.Tensor, d: int, g: int) -> torch.Tensor:
    """(N, k+, d+1) coefficient moments -> (N, k, (d+1) d) derivatives, column l d + b."""
    idx, fac = derivative_map(d, g)
    ix = torch.as_tensor(idx, device=M.device)
    fc = torch.as_tensor(fac, dtype=M.dtype, device=M.device)
    D = M[:, ix, :] * fc[None, :, :, None]  # (N, d, k, d+1)
    return D.permute(0, 2, 3, 1).reshape(M.shape[0], idx.shape[1], M.shape[-1] * d)


def block_rows(N: int, kp: int, itemsize: int, block: int | None = None) -> int:
    if block:
        return block
    return max(MIN_BLOCK, BLOCK_ENTRIES // (N * kp))


def moment_gradients(
    t: dict,
    alpha: float,
    beta: float,
    r: int,
    adapted: tuple[str, ...],
    g: int,
    block: int | None = None,
    rows: bool = True,
    grads: bool = True,
    prep: dict | None = None,
) -> tuple[dict, float, dict]:
    """All adapter gradients with the degree-g polynomial kernel in two passes (module docstring);
    same returns as `fused.poly_gradients(..., rows=rows)`. Per block, each pass is ONE GEMM of the
    (k+ x b) features against the block's stacked right-hand sides (kept transposed, (cols, b), so
    every elementwise step runs along contiguous rows), plus one small GEMM for the row sums.
    `prep`: `fused.preprocess(t, alpha, beta, r)` when the caller has it already."""
    P = preprocess(t, alpha, beta, r) if prep is None else prep
    Xq, Xk, Xv = t["X_q"], t["X_k"], t["X_v"]
    N, Lq, d = Xq.shape
    Lk = Xk.shape[1]
    dtype, device = Xq.dtype, Xq.device
    plan = TorchPlan(d, g + 1, dtype, device)
    k, kp = feature_rank(d, g), plan.k
    kg = feature_rank(d, g - 1)
    B = min(block_rows(N, kp, Xq.element_size(), block), max(Lq, Lk))
    need_q, need_k, need_v = "q" in adapted and grads, "k" in adapted and grads, "v" in adapted
    z = lambda *s: torch.zeros(*s, dtype=dtype, device=device)  # noqa: E731
    T = lambda x: x.transpose(-1, -2).contiguous()  # noqa: E731
    d1, dd = d + 1, (d + 1) * d
    buf = torch.empty(N, kp, B, dtype=dtype, device=device)
    # pass 1 (keys): one GEMM per block against [Zk; X_v; Zk (x) X_k] (rows of the transposed RHS)
    ZkT = torch.cat([T(P["Vc"]), torch.ones(N, 1, Lk, dtype=dtype, device=device)], dim=1)  # (N, d+1, Lk)
    xkT, XkT, XvT = T(P["xk"]), T(Xk), T(Xv)
    c_v = d1
    c_k = c_v + (d if need_v else 0)
    n1 = c_k + (dd if need_k else 0)
    R1 = torch.empty(N, n1, B, dtype=dtype, device=device)
    acc1 = z(N, kp, n1)
    for s, e in blocks(Lk, B):
        b = e - s
        phk = features_t(xkT[..., s:e], plan, out=buf)
        R = R1[..., :b]
        R[:, :d1] = ZkT[..., s:e]
        if need_v:
            R[:, c_v:c_k] = XvT[..., s:e]
        if need_k:
            torch.mul(ZkT[:, :, None, s:e], XkT[:, None, :, s:e], out=R[:, c_k:].view(N, d1, d, b))
        # block sums, then ONE add each (see path_length); Ck needs only the first k feature rows
        acc1[..., :c_k] += torch.bmm(phk, R[:, :c_k].transpose(-1, -2))
        if need_k:
            acc1[:, :k, c_k:] += torch.bmm(phk[:, :k], R[:, c_k:].transpose(-1, -2))
    Mk = acc1[..., :d1] * plan.w  # (N, k+, d+1)
    Vx = acc1[..., c_v:c_k] if need_v else None  # Phi+_k^T X_v
    Ck = acc1[:, :k, c_k:] if need_k else None  # Phi_k^T (Zk (x) X_k)
    # pass 2 (queries): W^T phi gives [A~ V', A~ 1 | -(T V', T 1) | Sg] per row, then one GEMM
    # against [Zq; Zq (x) X_q; h]
    nW = 2 * d1 + 1 if rows else d1
    W = z(N, kp, nW)
    W[:, :k, :d1] = Mk[:, :k]
    if rows:
        W[:, k:, d1 : 2 * d1] = Mk[:, k:]
        if g % 2 == 0:
            W[:, kg:k, 2 * d1] = Mk[:, kg:k, d]
    WT = T(W)  # (N, nW, k+)
    xqT, XqT, YcT = T(P["xq"]), T(Xq), T(P["Yc"])
    want_n = need_k or need_v
    c_q = d1 if want_n else 0
    c_h = c_q + (dd if need_q else 0)
    n2 = c_h + (d if rows and need_v else 0)
    R2 = torch.empty(N, max(n2, 1), B, dtype=dtype, device=device)
    acc2 = z(N, kp, max(n2, 1))
    keep = {n: [] for n in ("D", "Oc", "c", "rr", "sT", "tV", "Sg")} if rows else None
    loss = 0.0
    min_rowsum = math.inf
    for s, e in blocks(Lq, B):
        b = e - s
        phq = features_t(xqT[..., s:e], plan, out=buf)  # (N, k+, b)
        S = WT @ phq  # (N, nW, b)
        D = S[:, d : d + 1]
        min_rowsum = min(min_rowsum, float(D.min()))
        Oc = S[:, :d] / D
        diff = Oc - YcT[..., s:e]
        loss += float(diff.square().sum()) / (2 * N)
        c = diff / N
        rr = (c * Oc).sum(-2, keepdim=True)
        R = R2[..., :b]
        Zq = torch.div(torch.cat([c, -rr], dim=1), D)  # (N, d+1, b)
        if want_n:
            R[:, :d1] = Zq
        if need_q:
            torch.mul(Zq[:, :, None], XqT[:, None, :, s:e], out=R[:, c_q:c_h].view(N, d1, d, b))
        if rows:
            sT, tV = -S[:, 2 * d1 - 1 : 2 * d1], -S[:, d1 : d1 + d]
            for n_, v_ in (("D", D), ("Oc", Oc), ("c", c), ("rr", rr), ("sT", sT), ("tV", tV)):
                keep[n_].append(v_)
            if g % 2 == 0:
                keep["Sg"].append(S[:, 2 * d1 :])
            if need_v:
                R[:, c_h:] = value_error_numerator(c, Oc, sT, tV, N) / (D * D)
        if c_q:  # Nq: all k+ rows; Cq and Nh: the first k (as pass 1)
            acc2[..., :c_q] += torch.bmm(phq, R[:, :c_q].transpose(-1, -2))
        if n2 > c_q:
            acc2[:, :k, c_q:n2] += torch.bmm(phq[:, :k], R[:, c_q:n2].transpose(-1, -2))
    Nq = acc2[..., :d1] * plan.w if want_n else None  # diag(w) Phi+_q^T Zq
    G = {m: z(d, d) for m in adapted}
    if need_q:  # G_q(a, b) = beta s_q,b sum_(i,l) Cq_(i,(l,a)) H_(i,(l,b))
        H = _derive(Mk, d, g).reshape(N, k * d1, d)
        Cq = acc2[:, :k, c_q:c_h].reshape(N, k * d1, d)
        G["q"] += ((Cq.transpose(-1, -2) @ H) * (P["sq"] * P["bt"])).sum(0)
    if need_k:
        Hq = _derive(Nq, d, g).reshape(N, k * d1, d)
        G["k"] += ((Ck.reshape(N, k * d1, d).transpose(-1, -2) @ Hq) * P["sk"]).sum(0)
    if need_v and grads:
        G["v"] += (Vx[:, :k].transpose(-1, -2) @ Nq[:, :k, :d]).sum(0)
    Zk = T(ZkT)
    info = {
        "min_rowsum": min_rowsum,
        "block": B,
        "k": k,
        "k_plus": kp,
        "prep": P,
        "Zk": Zk,
        "mode": "moments",
    }
    if rows:
        Fv = z(d, d)
        if need_v:
            Nh = acc2[:, :k, c_h:] * plan.w[:k]
            Fv += (Vx[:, :k].transpose(-1, -2) @ Nh - Vx[:, k:].transpose(-1, -2) @ Nq[:, k:, :d]).sum(0)
        info["rows"] = {n_: T(torch.cat(v_, dim=-1)) for n_, v_ in keep.items() if v_}
        info["absXdG"] = None
        info["Fv"] = Fv
        info["G"] = G
    return adapter_gradients(t, G, alpha, r), loss, info
