"""Planted-bug solvers, written the way a third party would: plain callables taking the
interchange-format mapping of torch tensors (X_* and Y as (N, L, d), alpha and beta 0-d) and returning
{dA_m, dB_m}. `lora-harness check --solver tests.planted:NAME` must reject each of them.

    printed_q      q = rows of C3 c^T instead of c C3^T          (docs/theory.md §7.1)
    printed_p2     p2 = f diag(r) instead of diag(r) f             (docs/theory.md §7.2)
    off_by_1e3     exact gradients + 1e-3 while claiming 1e-8
    quadratic      dense O(L^2 d) work plus an extra L x L pass while claiming exponent 1.1;
                   reports its operation count as `ops`
    nan_on_large   softmax without the row-max shift: exp overflows to inf, inf/inf = NaN on
                   large scores (beta S > ~709)
    correct        the same dense code with no bug (a control: the suite must pass it)
"""

from __future__ import annotations

import torch

from harness.losses import effective_weights


def _dense(t, *, printed_q=False, printed_p2=False, stable=True, extra_pass=False):
    """Batched dense gradients of the LoRA loss (docs/theory.md §3.2): q = c V^T, p = f.q - diag(r) f,
    G_Wq = beta X_q^T p K, G_Wk = beta X_k^T p^T Q, G_Wv = X_v^T f^T c; then the LoRA chain rule."""
    alpha, beta = float(t["alpha"]), float(t["beta"])
    adapted = [m for m in "qkv" if f"A_{m}" in t]
    r = t[f"A_{adapted[0]}"].shape[0] if adapted else 1
    W = effective_weights(t, alpha, r)
    Xq, Xk, Xv = t["X_q"], t["X_k"], t["X_v"]
    Q, K, V = Xq @ W["q"], Xk @ W["k"], Xv @ W["v"]
    N, a, d = Q.shape
    b = K.shape[1]
    S = beta * (Q @ K.mT)
    if stable:
        f = torch.softmax(S, dim=-1)
    else:
        e = torch.exp(S)
        f = e / e.sum(dim=-1, keepdim=True)
    c = (f @ V - t["Y"]) / N
    q = V @ c.mT if printed_q else c @ V.mT
    fq = f * q
    rr = fq.sum(dim=-1, keepdim=True)
    p = fq - (f * rr.mT if printed_p2 else rr * f)
    ops = N * (2 * a * b * d * 4 + 8 * a * b)
    if extra_pass:  # a second dense L x L pass (an entropy-like statistic, multiplied by zero)
        p = p + 0.0 * (f * S).sum(dim=-1, keepdim=True)
        ops += N * 3 * a * b
    G = {
        "q": beta * (Xq.mT @ (p @ K)).sum(0),
        "k": beta * (Xk.mT @ (p.mT @ Q)).sum(0),
        "v": (Xv.mT @ (f.mT @ c)).sum(0),
    }
    s = alpha / r
    out = {}
    for m in adapted:
        out[f"dA_{m}"] = s * (t[f"B_{m}"].mT @ G[m])
        out[f"dB_{m}"] = s * (G[m] @ t[f"A_{m}"].mT)
    out["ops"] = ops
    return out


def correct(t):
    """Dense exact gradients, no bug (control)."""
    return _dense(t)


def printed_q(t):
    """The printed q orientation: rows of C3 c^T (wrong, docs/theory.md §7.1)."""
    return _dense(t, printed_q=True)


def printed_p2(t):
    """The printed p2 orientation: f diag(r) (wrong, docs/theory.md §7.2)."""
    return _dense(t, printed_p2=True)


def off_by_1e3(t):
    """Exact gradients plus 1e-3 in every entry."""
    out = _dense(t)
    return {k: (v + 1e-3 if k != "ops" else v) for k, v in out.items()}


def quadratic(t):
    """Quadratic work (dense L x L scores, an extra L x L pass) though claimed almost linear."""
    return _dense(t, extra_pass=True)


def nan_on_large(t):
    """Softmax without the max shift: NaN once exp(beta S) overflows."""
    return _dense(t, stable=False)


PLANTED = ["printed_q", "printed_p2", "off_by_1e3", "quadratic", "nan_on_large"]


def softmax_wrong_axis(q, k, v, *, scale):
    """An attention function with the softmax over the query axis instead of the key axis."""
    return torch.softmax(scale * (q @ k.transpose(-1, -2)), dim=-2) @ v


softmax_wrong_axis.exact = True
