"""The obviously-correct O(L^2) twins of the polynomial-method solvers: P_g(beta S) formed densely,
then the closed form of docs/theory.md §3.2 (`dense_poly_gradients`; `poly` and `poly-chained` must match it).
"""

from __future__ import annotations

import math

import torch

from harness.lora import adapter_gradients, effective_weights


def taylor_poly(x: torch.Tensor, g: int) -> torch.Tensor:
    """P_g(x) = sum_{t<=g} x^t/t! entrywise (Horner)."""
    out = torch.ones_like(x)
    for t in range(g, 0, -1):
        out = 1.0 + out * x / t
    return out


def dense_poly_gradients(
    t: dict,
    alpha: float,
    beta: float,
    r: int,
    adapted: tuple[str, ...],
    g: int,
    printed_p2: bool = False,
    centre: bool | None = None,
    causal: bool = False,
    kernel=None,
) -> tuple[dict, float]:
    """Reference (O(L^2), obviously correct): form A~ = P_g(beta Q K'^T) densely (K' = K minus the
    keys' mid-range when `centre`, as `poly` does; softmax is row-shift invariant), f~ = D~^-1 A~, and
    apply the closed form of docs/theory.md §3.2 (c, q = c V^T, p = f.q - diag(<f,q>) f, G_W, chain rule).
    `printed_p2`: use the paper's printed p2 = f diag(r) instead (WRONG, docs/theory.md §7.2; then
    nothing is centred unless `centre` says so: the printed form is not shift invariant).
    `causal`: A~ is zero above the diagonal (query j sums over keys m <= j only, top-left; twin of
    `harness.solvers.poly.causal`; the keys' mid-range stays the global one, as the solver's).
    `kernel`: an entrywise function replacing P_g (e.g. another degree-g polynomial, for
    benchmarks/approx_floor.py); `g` is then unused."""
    centre = (not printed_p2) if centre is None else centre
    W = effective_weights(t, alpha, r)
    N = t["X_q"].shape[0]
    d = t["W_q"].shape[0]
    G = {m: torch.zeros(d, d, dtype=t["X_q"].dtype, device=t["X_q"].device) for m in adapted}
    loss = 0.0
    for i in range(N):
        Q, K, V = t["X_q"][i] @ W["q"], t["X_k"][i] @ W["k"], t["X_v"][i] @ W["v"]
        Kc = K - 0.5 * (K.amax(0) + K.amin(0)) if centre else K
        x = beta * (Q @ Kc.T)
        A = taylor_poly(x, g) if kernel is None else kernel(x)
        if causal:
            A = A.tril()
        f = A / A.sum(-1, keepdim=True)
        out = f @ V
        loss += float((out - t["Y"][i]).square().sum()) / (2 * N)
        c = (out - t["Y"][i]) / N
        q = c @ V.T
        rr = (f * q).sum(-1)
        p = f * q - (f * rr[None, :] if printed_p2 else rr[:, None] * f)
        if "q" in G:
            G["q"] += beta * t["X_q"][i].T @ p @ K
        if "k" in G:
            G["k"] += beta * t["X_k"][i].T @ p.T @ Q
        if "v" in G:
            G["v"] += t["X_v"][i].T @ f.T @ c
    return adapter_gradients(t, G, alpha, r), loss


def dense_chained_reference(
    t: dict, alpha: float, beta: float, r: int, adapted: tuple[str, ...], g: int, printed_p2: bool = False
) -> dict:
    """Reference, O(L^2): the same objects formed densely from their definitions (docs/theory.md §3.1 and
    §4.5, with f -> f~ = D~^-1 P_g(beta S)): q = c V^T, p1 = f.q, r_j = <f_j, q_j>, p2 = diag(r) f (or the
    printed f diag(r)), p = p1 - p2, G_Wq = beta X_q^T p K, G_Wk = beta X_k^T p^T Q, G_Wv = X_v^T f^T c
    (this is `poly.dense_poly_gradients`)."""
    return dense_poly_gradients(t, alpha, beta, r, adapted, g, printed_p2=printed_p2)[0]


def causal_row_facts(t: dict, alpha: float, beta: float, r: int, g: int) -> dict:
    """Twin of the causal poly's certificate rows, dense and masked, on the solver's centred inputs
    (`harness.solvers.poly.fused.preprocess`), (N, Lq[, d]) each: D~_j = sum_{m<=j} P_g(x_jm),
    sT_j = -sum_{m<=j} x_jm^(g+1)/(g+1)!, tV_j = -sum_{m<=j} x_jm^(g+1)/(g+1)! V'_m and
    Sg_j = sum_{m<=j} x_jm^g/g!, with x = q^ K'^T."""
    from harness.solvers.poly.fused import preprocess

    P = preprocess(t, alpha, beta, r)
    x = P["q"] @ P["Kc"].transpose(-1, -2)
    keep = torch.ones(x.shape[-2], x.shape[-1], dtype=torch.bool, device=x.device).tril()
    A = taylor_poly(x, g).masked_fill(~keep, 0.0)
    T = (-x.pow(g + 1) / math.factorial(g + 1)).masked_fill(~keep, 0.0)
    Sg = (x.pow(g) / math.factorial(g)).masked_fill(~keep, 0.0)
    return {"D": A.sum(-1), "sT": T.sum(-1), "tV": T @ P["Vc"], "Sg": Sg.sum(-1)}
