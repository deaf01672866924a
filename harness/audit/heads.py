"""Heads -> instances: the scores, probabilities and output of one captured head, its score range, its
norms, and the exact head -> LoRA `Instance` constructions (projected, padded; see harness.audit)."""

from __future__ import annotations

import math

import numpy as np

from harness.audit.capture import CONSTRUCTIONS, LayerCapture
from harness.errors import HarnessError
from harness.instance import Instance


def causal_mask(L: int) -> np.ndarray:
    return np.tril(np.ones((L, L), dtype=bool))


def head_scores(cap: LayerCapture, h: int) -> np.ndarray:
    """beta Q K^T of head h, (L, L); masked entries (causal heads) are NaN."""
    Q, K, _ = cap.qkv(h)
    S = cap.beta * (Q @ K.T)
    if cap.causal:
        S = np.where(causal_mask(cap.L), S, np.nan)
    return S


def head_probs(cap: LayerCapture, h: int) -> np.ndarray:
    """softmax_rows(beta Q K^T) of head h (masked entries 0 for causal heads), float64."""
    S = head_scores(cap, h)
    S = np.where(np.isnan(S), -np.inf, S)
    S = S - S.max(axis=1, keepdims=True)
    P = np.exp(S)
    P /= P.sum(axis=1, keepdims=True)
    return P


def head_forward(cap: LayerCapture, h: int) -> np.ndarray:
    """The head's attention output recomputed in float64 from the captured X and maps (causal mask
    applied for causal heads): softmax_rows(beta Q K^T) V."""
    return head_probs(cap, h) @ cap.qkv(h)[2]


def score_range_masked(cap: LayerCapture, h: int) -> float:
    """R = ||beta Q K^T||_inf over the entries the softmax sees (docs/theory.md §4.1, §5.1)."""
    return float(np.nanmax(np.abs(head_scores(cap, h))))


def head_instance(
    cap: LayerCapture,
    h: int,
    construction: str = "projected",
    r: int | None = 2,
    seed: int = 0,
    lora_scale: float = 0.05,
    perturb: float = 0.01,
    meta: dict | None = None,
) -> Instance:
    """Head h of a captured layer as a LoRA Instance (module doc for the two exact constructions).

    Adapters on q and v of rank r (None or 0: no adapters, the frozen head), seeded, with
    ||(alpha/r) B_m A_m||_F = lora_scale ||W*_m||_F and alpha = r. Target Y = the head's frozen output
    (the model's own, float32, zero-padded to width d) plus perturb * std(output) * N(0, 1)."""
    if construction not in CONSTRUCTIONS:
        raise HarnessError(f"unknown construction {construction!r}; choose from {', '.join(CONSTRUCTIONS)}")
    if construction == "padded" and cap.rotary:
        raise HarnessError(
            f"the padded construction cannot express rotary position embeddings or shared key/value heads "
            f"(layer {cap.name!r}); use --construction projected"
        )
    L, dh = cap.L, cap.d_head
    if construction == "projected":
        Q, K, V = cap.qkv(h)
        eye = np.eye(dh)
        arrays = dict(X_q=Q, X_k=K, X_v=V, W_q=eye, W_k=eye.copy(), W_v=eye.copy())
        d = dh
    else:
        X1 = np.concatenate([cap.X, np.ones((L, 1))], axis=1)
        d = X1.shape[1]
        arrays = dict(X_q=X1)
        for m, M in (("q", cap.Wq[h]), ("k", cap.Wk[h]), ("v", cap.Wv[h])):
            W = np.zeros((d, d))
            W[:, :dh] = M
            arrays[f"W_{m}"] = W
    rng = np.random.default_rng([int(seed), int(cap.index), int(h)])
    Y = np.zeros((L, d))
    Y[:, :dh] = cap.head_output(h)
    std = float(np.std(cap.head_output(h))) or 1.0
    Y = Y + perturb * std * rng.normal(size=(L, d))
    arrays["Y"] = Y
    alpha = 1.0
    if r:
        if r > d:  # a LoRA rank is at most the dimension it adapts; never clamp silently
            raise HarnessError(
                f"LoRA rank r = {r} exceeds the head dimension d = {d} ({construction} construction)"
            )
        r = int(r)
        alpha = float(r)
        for m in ("q", "v"):
            A = rng.normal(size=(r, d)) / math.sqrt(d)
            B = rng.normal(size=(d, r))
            upd = (alpha / r) * (B @ A)
            B *= lora_scale * np.linalg.norm(arrays[f"W_{m}"]) / max(np.linalg.norm(upd), 1e-300)
            arrays[f"A_{m}"], arrays[f"B_{m}"] = A, B
    info = {
        "generator": "audit",
        "layer": cap.index,
        "module": cap.name,
        "head": int(h),
        "construction": construction,
        "causal": bool(cap.causal),
        "d_head": dh,
        "seed": int(seed),
        "lora_scale": lora_scale,
        "perturb": perturb,
    }
    info.update(meta or {})
    return Instance.from_arrays(arrays, alpha=alpha, beta=cap.beta, meta=info, causal=bool(cap.causal))


def direct_gammas(cap: LayerCapture, h: int) -> dict[str, float]:
    """Norms read straight off the head (no Instance): ||Q||_inf, ||K||_inf, ||V||_inf,
    Gamma_QK = max(||Q||, ||K||) (the Thm 3.1 / Thm 4.1 conditions on X^(Q) W_Q and X^(K) W_K), ||X||_inf
    of the hidden states (and their RMS), the (S4) score range ||Q K^T||_inf without beta (docs/theory.md
    §7.6), and where the largest |score| sits (diagonal, first key, last key, other) with its sign; R_pos /
    R_neg, the largest positive / negative score; and R_centred = max_i (max_j - min_j of row i of beta Q
    K^T)/2, the half-width of the widest row. Softmax is invariant to a per-row shift, and exp(x - m_i) is a
    polynomial in [q_i, -m_i].[k_j, 1], so a Taylor expansion centred per row (one extra feature) needs
    only |x - m_i| <= R_centred (docs/theory.md §4.1 with the interval re-centred). attn_max and
    attn_rowmax_mean: the largest attention weight and the mean over queries of the row maximum
    (how peaked the head is; a weight is at most e^(2 R_centred) / L, so peaked heads need R ~ log L)."""
    Q, K, V = cap.qkv(h)
    S = Q @ K.T
    if cap.causal:
        S = np.where(causal_mask(cap.L), S, 0.0)
    q, k = float(np.abs(Q).max()), float(np.abs(K).max())
    Sb = cap.beta * S
    lo = np.where(causal_mask(cap.L), Sb, np.inf).min(1) if cap.causal else Sb.min(1)
    hi = np.where(causal_mask(cap.L), Sb, -np.inf).max(1) if cap.causal else Sb.max(1)
    P = head_probs(cap, h)
    i, j = np.unravel_index(int(np.argmax(np.abs(S))), S.shape)
    where = "diagonal" if i == j else "first key" if j == 0 else "last key" if j == cap.L - 1 else "other"
    return {
        "Q_inf": q,
        "K_inf": k,
        "V_inf": float(np.abs(V).max()),
        "gamma_QK": max(q, k),
        "X_inf": float(np.abs(cap.X).max()),
        "X_rms": float(np.sqrt(np.mean(cap.X**2))),
        "S_unscaled_inf": float(np.abs(S).max()),
        "R_at": [int(i), int(j)],
        "R_where": where,
        "R_sign": "+" if S[i, j] >= 0 else "-",
        "R_pos": float(max(hi.max(), 0.0)),
        "R_neg": float(max(-lo.min(), 0.0)),
        "R_centred": float(((hi - lo) / 2).max()),
        "attn_max": float(P.max()),
        "attn_rowmax_mean": float(P.max(1).mean()),
    }
