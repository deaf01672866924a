"""Shared by the causal tests (issue 16): a masked float64 reference written out independently of the
harness (numpy, the mask as an index comparison m <= j), a strategy of causal instances, and attention
functions with a right and two wrong masks for the referee."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from harness import families
from harness.instance import Instance


def masked_reference(inst: Instance) -> tuple[dict, float]:
    """Adapter gradients of the causal loss by the closed form of docs (p-matrix), in numpy float64,
    with the mask written out as an index comparison (m <= j), sharing no code with the solvers."""
    a = {k: np.asarray(v, np.float64) for k, v in inst.arrays.items()}
    x = {k: np.asarray(inst.x3(k), np.float64) for k in ("X_q", "X_k", "X_v", "Y")}
    W = {}
    for m in "qkv":
        W[m] = a[f"W_{m}"] + ((inst.alpha / inst.r) * a[f"B_{m}"] @ a[f"A_{m}"] if f"A_{m}" in a else 0)
    d, N = inst.d, inst.N
    G = {m: np.zeros((d, d)) for m in inst.adapted}
    loss = 0.0
    j = np.arange(inst.Lq)[:, None]
    m_ = np.arange(inst.Lk)[None, :]
    seen = m_ <= j
    for i in range(N):
        Q, K, V = x["X_q"][i] @ W["q"], x["X_k"][i] @ W["k"], x["X_v"][i] @ W["v"]
        S = inst.beta * Q @ K.T
        S = np.where(seen, S, -np.inf)
        f = np.exp(S - S.max(1, keepdims=True))
        f /= f.sum(1, keepdims=True)
        O = f @ V
        loss += float(((O - x["Y"][i]) ** 2).sum()) / (2 * N)
        c = (O - x["Y"][i]) / N
        q = c @ V.T
        p = f * q - (f * q).sum(1, keepdims=True) * f
        if "q" in G:
            G["q"] += inst.beta * x["X_q"][i].T @ p @ K
        if "k" in G:
            G["k"] += inst.beta * x["X_k"][i].T @ p.T @ Q
        if "v" in G:
            G["v"] += x["X_v"][i].T @ f.T @ c
    s = inst.alpha / inst.r if inst.r else 0.0
    grads = {}
    for m in inst.adapted:
        grads[f"dA_{m}"] = s * a[f"B_{m}"].T @ G[m]
        grads[f"dB_{m}"] = s * G[m] @ a[f"A_{m}"].T
    return grads, loss


def max_err(grads: dict, ref: dict) -> tuple[float, float]:
    err = max(float(np.abs(np.asarray(grads[k]) - ref[k]).max()) for k in ref)
    scale = max(float(np.abs(g).max()) for g in ref.values())
    return err, scale


@st.composite
def causal_instances(draw, max_L=12, max_d=4, big_scores=True):
    """Causal gaussian instances: cross-attention shapes (Lq != Lk both ways), N up to 3, any adapter
    set, and large scores (inverse temperature up to 30)."""
    d = draw(st.integers(1, max_d))
    return families.gaussian(
        L=draw(st.integers(1, max_L)),
        Lk=draw(st.integers(1, max_L)),
        d=d,
        r=draw(st.integers(1, d)),
        N=draw(st.integers(1, 3)),
        adapt=draw(st.sampled_from([("q",), ("k",), ("v",), ("q", "v"), ("q", "k", "v")])),
        cross=draw(st.booleans()),
        scale=draw(st.sampled_from([0.3, 1.0, 2.0])),
        beta=draw(st.sampled_from([None, 1.0, 30.0] if big_scores else [None, 1.0])),
        seed=draw(st.integers(0, 2**32 - 1)),
        causal=True,
    )


def sdpa(q, k, v, *, scale, is_causal=False):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale, is_causal=is_causal)


def ignores_mask(q, k, v, *, scale, is_causal=False):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)


def bottom_right(q, k, v, *, scale, is_causal=False):
    """A mask aligned to the bottom-right corner (flash-attn's convention), not SDPA's top-left."""
    m = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril(k.shape[-2] - q.shape[-2])
    return torch.nn.functional.scaled_dot_product_attention(
        q, k, v, scale=scale, attn_mask=m if is_causal else None
    )


def attention_solver(fn, name=None):
    """fn(q, k, v, *, scale, is_causal=False) as a Solver (harness.from_attention, exact)."""
    from harness import from_attention

    return from_attention(fn, exact=True, name=name or fn.__name__)
