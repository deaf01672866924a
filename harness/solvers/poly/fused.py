"""`poly`'s gradients: all LoRA adapter gradients of the degree-g polynomial kernel, O(N L k d) time,
no L x L matrix (features: harness.solvers.poly.features), and the per-row quantities of its
a posteriori certificate (harness.solvers.poly.bound; docs/theory.md §4.3).

The plug-in formulas of docs/theory.md §3.2 with f replaced by the row-normalised approximate kernel
f~ = diag(A~ 1)^-1 A~ (the same gradient the paper's chained construction, `poly-chained`, computes;
docs/theory.md §4.4-§4.5), on centred keys and values (`preprocess`):

    c~ = (f~ V' - Y')/N,  r~_j = <c~_j, O~'_j>,  p~ = A~ . Z  with  Z = diag(1/D~)(c~ V'^T - r~ 1^T)
    G_Wq = beta X_q^T p~ K',  G_Wk = X_k^T p~^T q^,  G_Wv = X_v^T f~^T c~

Z = Zq Zk^T has rank d+1 (Zq = [c~/D~, -r~/D~], Zk = [V', 1]). The products p~ K' and p~^T q^ are
gradients of the surrogate s(Q, K) = sum_jm Z_jm P_{g+1}(x_jm) with Z held fixed, because
d/dx P_{g+1}(x) = P_g(x): so we build features of degree g+1 (their first C(d+g, g) columns are the
degree-g features) and back-propagate the (L x k+) feature gradient Zq (Phi+_k^T Zk)^T through the
monomial recurrence by hand (`feature_backward`). The top degree-(g+1) block also gives, at no extra
pass, the leading Taylor remainder T = -x^(g+1)/(g+1)! summed per row, which the certificate uses.
Everything is blocked over rows: memory O(B k + k d).

`harness.solvers.poly.naive.dense_poly_gradients` is the obviously-correct O(L^2) twin.
"""

from __future__ import annotations

import math

import torch

from harness.lora import adapter_gradients, effective_weights
from harness.solvers._common import blocks
from harness.solvers.poly.features import TorchPlan, feature_backward, features
from harness.theory.taylor import feature_rank

BLOCK_ENTRIES = 1 << 20  # entries of one (N, block, k+) feature block


def _pow2(e: torch.Tensor, dtype, device) -> torch.Tensor:
    """2^e for an integer-valued tensor, exactly (built from Python floats)."""
    vals = [2.0 ** int(v) for v in e.reshape(-1).tolist()]
    return torch.tensor(vals, dtype=dtype, device=device).reshape(e.shape)


def _mid(a: torch.Tensor) -> torch.Tensor:
    """The mid-range over rows, 0.5 (max + min) per data point and column, (N, 1, d): on a
    transposed copy (the same values; torch's reduction over L with a short last axis is slower)."""
    lo, hi = torch.aminmax(a.transpose(-1, -2).contiguous(), dim=-1)
    return (0.5 * (hi + lo)).unsqueeze(1)


def preprocess(t: dict, alpha: float, beta: float, r: int, centre: bool = True) -> dict:
    """Inputs of the polynomial kernel, in the solver's dtype (docs/theory.md §4.3):

    * Q = X_q W_q, K = X_k W_k, V = X_v W_v with the effective weights;
    * key centring K' = K - mu_K, mu_K the keys' mid-range per data point. Softmax is invariant to
      the row shift beta q_j . mu_K, and p 1 = 0 (§3.1), so p K = p K' and no gradient changes; the
      polynomial only has to be accurate on |beta q_j . k'_m| <= R_j, up to half of the uncentred
      range when the keys carry a bias;
    * value centring V' = V - mu_V, Y' = Y - mu_V: c = (f V' - Y')/N and
      q - r 1^T = c (V' - O')^T are unchanged, and the low-rank factors no longer carry |mu_V|;
    * q^ = fl(beta) Q, then the balanced split x_q = q^ 2^e, x_k = K' 2^-e with per-coordinate
      powers of two (exact) chosen so that max|x_q,l| ~ max|x_k,l|: the monomials of x_q and x_k
      cannot overflow or underflow one-sidedly when W_q and W_k are scaled unevenly.
    `centre=False` keeps mu_K = mu_V = 0 (for the paper's printed p2 = f diag(r), which, being
    wrong, is not shift invariant)."""
    W = effective_weights(t, alpha, r)
    Q, K, V = t["X_q"] @ W["q"], t["X_k"] @ W["k"], t["X_v"] @ W["v"]
    dtype, device = Q.dtype, Q.device
    muK = _mid(K) if centre else torch.zeros_like(K[:, :1])
    muV = _mid(V) if centre else torch.zeros_like(V[:, :1])
    Kc, Vc, Yc = K - muK, V - muV, t["Y"] - muV
    bt = torch.tensor(beta, dtype=dtype, device=device)
    q = Q * bt
    qh = q.abs().transpose(-1, -2).contiguous().amax(-1).unsqueeze(1)
    kh = Kc.abs().transpose(-1, -2).contiguous().amax(-1).unsqueeze(1)
    ok = (qh > 0) & (kh > 0)
    ratio = torch.where(ok, kh / torch.where(ok, qh, torch.ones_like(qh)), torch.ones_like(qh))
    lim = 100 if dtype == torch.float32 else 900
    e = torch.round(0.5 * torch.log2(ratio)).clamp(-lim, lim)
    sq = _pow2(e, dtype, device)
    sk = _pow2(-e, dtype, device)
    return {
        "Q": Q,
        "K": K,
        "V": V,
        "Kc": Kc,
        "Vc": Vc,
        "Yc": Yc,
        "q": q,
        "xq": q * sq,
        "xk": Kc * sk,
        "sq": sq,
        "sk": sk,
        "bt": float(bt),
        "muK": muK,
        "muV": muV,
    }


def gradient_mode(d: int, g: int) -> str:
    """'gemm' when its (d+1) d moment columns cost less than ~5x the back-propagation's flops
    ((d+5) per degree-(g+1) feature), else 'backward' (large d)."""
    k, kp = feature_rank(d, g), feature_rank(d, g + 1)
    return "gemm" if d * (d + 1) * k <= 5 * (d + 5) * kp else "backward"


def _outer(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Row-wise outer product (N, b, p) x (N, b, q) -> (N, b, p q), p-major."""
    return (A.unsqueeze(-1) * B.unsqueeze(-2)).reshape(*A.shape[:-1], A.shape[-1] * B.shape[-1])


def poly_gradients(
    t: dict,
    alpha: float,
    beta: float,
    r: int,
    adapted: tuple[str, ...],
    g: int,
    block: int | None = None,
    rows: bool = True,
    grads: bool = True,
    mode: str | None = None,
    prep: dict | None = None,
) -> tuple[dict, float, dict]:
    """All adapter gradients with the degree-g polynomial kernel, O(N L k d) (see module docstring).
    `t` is Instance.as_torch(...). Returns (grads, approximate loss, info). With `rows`, info also
    holds the per-row quantities of the a posteriori certificate (`harness.solvers.poly_bound`):
    the row sums D, centred outputs O', residuals c, r' = <c, O'>, the top-degree sums
    sT_j = sum_m T_jm and tV_j = sum_m T_jm V'_m of the Taylor remainder's leading term
    T = -x^(g+1)/(g+1)! (from the degree-(g+1) features the solver builds anyway), for even g
    the degree-g sums Sg_j = sum_m x_jm^g/g!, and the signed first-order value-gradient error F_v.
    `mode` ("gemm" or "backward"; default `gradient_mode(d, g)`) picks how p~ K' and p~^T q^ are
    formed: by the surrogate's feature back-propagation, or as GEMMs against the moments
    H = diag(w) Phi_k^T ([V', 1] (x) K') and H' = diag(w) Phi_q^T (Zq (x) q^), (d+1) d columns each
    (p~_j K' = sum_l Zq_jl (phi_q,j H)_l, p~^T q^ likewise): more flops, but dense GEMMs instead of
    memory-bound elementwise passes, faster for small d. `prep`: `preprocess(t, alpha, beta, r)` when
    the caller has it already."""
    P = preprocess(t, alpha, beta, r) if prep is None else prep
    Xq, Xk, Xv = t["X_q"], t["X_k"], t["X_v"]
    N, Lq, d = Xq.shape
    Lk = Xk.shape[1]
    dtype, device = Xq.dtype, Xq.device
    plan = TorchPlan(d, g + 1, dtype, device)
    k, kp = feature_rank(d, g), plan.k
    kg = feature_rank(d, g - 1)  # first column of degree g
    mode = mode or gradient_mode(d, g)
    if mode not in ("gemm", "backward"):
        raise ValueError(f"unknown gradient mode {mode!r}")
    gemm = mode == "gemm"
    B = block or max(1, BLOCK_ENTRIES // (N * kp))
    Zk = torch.cat([P["Vc"], torch.ones(N, Lk, 1, dtype=dtype, device=device)], dim=-1)  # (N, Lk, d+1)
    G = {m: torch.zeros(d, d, dtype=dtype, device=device) for m in adapted}
    need_q, need_k, need_v = "q" in G and grads, "k" in G and grads, "v" in G
    # pass 1 (keys): Mk = diag(w) Phi+_k^T [V', 1] (and H for the gemm mode)
    Mk = torch.zeros(N, kp, d + 1, dtype=dtype, device=device)
    H = torch.zeros(N, k, (d + 1) * d, dtype=dtype, device=device) if need_q and gemm else None
    for s, e in blocks(Lk, B):
        phk = features(P["xk"][:, s:e], plan)
        Mk += phk @ Zk[:, s:e]
        if H is not None:
            H += phk[:, :k] @ _outer(Zk[:, s:e], P["Kc"][:, s:e])
    Mk *= plan.w
    if H is not None:
        H *= plan.w[:k]
    # pass 2 (queries)
    Nq = torch.zeros(N, kp, d + 1, dtype=dtype, device=device)
    Hq = torch.zeros(N, k, (d + 1) * d, dtype=dtype, device=device) if need_k and gemm else None
    Nh = torch.zeros(N, k, d, dtype=dtype, device=device) if rows and need_v else None
    keep = {n: [] for n in ("D", "Oc", "c", "rr", "sT", "tV", "Sg")} if rows else None
    absXdQ = torch.zeros(d, d, dtype=dtype, device=device)
    loss = 0.0
    min_rowsum = math.inf
    sq_bt = P["sq"] * P["bt"]
    for s, e in blocks(Lq, B):
        xq = P["xq"][:, s:e]
        phq = features(xq, plan)  # (N, k+, b)
        num = phq[:, :k].transpose(-1, -2) @ Mk[:, :k]  # (N, b, d+1): [A~ V', A~ 1]
        D = num[..., d:]
        min_rowsum = min(min_rowsum, float(D.min()))
        Oc = num[..., :d] / D
        diff = Oc - P["Yc"][:, s:e]
        loss += float(diff.square().sum()) / (2 * N)
        c = diff / N
        rr = (c * Oc).sum(-1, keepdim=True)
        Zq = torch.cat([c, -rr], dim=-1) / D  # (N, b, d+1)
        if (need_k and not gemm) or need_v:
            Nq += phq @ Zq
        if Hq is not None:
            Hq += phq[:, :k] @ _outer(Zq, P["q"][:, s:e])
        if need_q:
            if gemm:
                Yq = (phq[:, :k].transpose(-1, -2) @ H).reshape(N, e - s, d + 1, d)
                dQ = P["bt"] * (Zq.unsqueeze(-1) * Yq).sum(-2)
            else:
                dQ = sq_bt * feature_backward(Mk @ Zq.transpose(-1, -2), phq, xq, plan)
            G["q"] += torch.einsum("nja,njb->ab", Xq[:, s:e], dQ)
            if rows:
                absXdQ += torch.einsum("nja,njb->ab", Xq[:, s:e].abs(), dQ.abs())
        if rows:
            top = phq[:, k:].transpose(-1, -2) @ Mk[:, k:]  # (N, b, d+1): -[T V', T 1]
            sT, tV = -top[..., d:], -top[..., :d]
            for n_, v_ in (("D", D), ("Oc", Oc), ("c", c), ("rr", rr), ("sT", sT), ("tV", tV)):
                keep[n_].append(v_)
            if g % 2 == 0:
                keep["Sg"].append((phq[:, kg:k] * Mk[:, kg:k, d:]).sum(-2).unsqueeze(-1))
            if Nh is not None:
                h = (-sT * c + (tV - sT * Oc) / N) / (D * D)
                Nh += phq[:, :k] @ h
    Nq *= plan.w
    if Hq is not None:
        Hq *= plan.w[:k]
    info = {"min_rowsum": min_rowsum, "block": B, "k": k, "k_plus": kp, "prep": P, "Zk": Zk, "mode": mode}
    if Nh is not None:
        Nh *= plan.w[:k]
    # pass 3 (keys): key and value gradients, and the signed first-order value error F_v
    absXdK = torch.zeros(d, d, dtype=dtype, device=device)
    absXdV = torch.zeros(d, d, dtype=dtype, device=device)
    Fv = torch.zeros(d, d, dtype=dtype, device=device)
    if need_k or need_v:
        for s, e in blocks(Lk, B):
            xk = P["xk"][:, s:e]
            phk = features(xk, plan)
            if need_k:
                if gemm:
                    Yk = (phk[:, :k].transpose(-1, -2) @ Hq).reshape(N, e - s, d + 1, d)
                    dK = (Zk[:, s:e].unsqueeze(-1) * Yk).sum(-2)
                else:
                    dK = P["sk"] * feature_backward(Nq @ Zk[:, s:e].transpose(-1, -2), phk, xk, plan)
                G["k"] += torch.einsum("nja,njb->ab", Xk[:, s:e], dK)
                if rows:
                    absXdK += torch.einsum("nja,njb->ab", Xk[:, s:e].abs(), dK.abs())
            if need_v:
                phkT = phk[:, :k].transpose(-1, -2)
                if grads:
                    dV = phkT @ Nq[:, :k, :d]
                    G["v"] += torch.einsum("nja,njb->ab", Xv[:, s:e], dV)
                if rows and grads:
                    absXdV += torch.einsum("nja,njb->ab", Xv[:, s:e].abs(), dV.abs())
                if rows:
                    dF = phkT @ Nh - phk[:, k:].transpose(-1, -2) @ Nq[:, k:, :d]
                    Fv += torch.einsum("nja,njb->ab", Xv[:, s:e], dF)
    if rows:
        info["rows"] = {n_: torch.cat(v_, dim=1) for n_, v_ in keep.items() if v_}
        info["absXdG"] = {"q": absXdQ, "k": absXdK, "v": absXdV}
        info["Fv"] = Fv
        info["G"] = G
    return adapter_gradients(t, G, alpha, r), loss, info
