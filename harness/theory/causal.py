"""Causal instances in the theory (docs/theory.md §4.7): the score range over the unmasked scores,
per-row prefix quantities of the certificate chain, and the chunk length and op count of the causal
`poly` (harness/solvers/poly/causal.py).

Under the causal mask (query j attends keys m <= j, top-left; harness.instance.attention_mask) the
rows of f and f~ live on the row's prefix of keys. Every step of the certificate chain
(docs/fast-solvers.md "Error bound") is row-wise in j, so every key-side max, range or sum of row j
becomes the one over keys m <= min(j, Lk - 1) (`prefix_rows`): the row score bound R_j, the value
ranges a_jl, w_jl, and the key-side maxima of the weight-gradient sums. Early rows see few keys, so
their bounds are small; no row is empty (key 0 is always seen).
"""

from __future__ import annotations

import math

import numpy as np

from harness.theory.taylor import feature_rank


def prefix_rows(x: np.ndarray, Lq: int, reduce=np.maximum) -> np.ndarray:
    """Row j of the result is `reduce` accumulated over rows 0..min(j, len(x) - 1) of x (keys first):
    the prefix of keys that causal query row j sees. Shape (Lq, ...)."""
    acc = reduce.accumulate(x, axis=0)
    return acc[np.minimum(np.arange(Lq), x.shape[0] - 1)]


def causal_score_range_rows(q: np.ndarray, k: np.ndarray, extreme_points, block: int = 256) -> float:
    """max_{j, m <= j} |q_j . k_m| without an L x L matrix: for query block [s, e) the keys before s
    (their convex-hull vertices, folded in block by block) against the block's own hull vertices, plus
    the block's diagonal tile, masked. Exact up to qhull's tolerance; O(L block d) plus the hulls."""
    import torch

    Lq, Lk = q.shape[0], k.shape[0]
    best = 0.0
    hull, done = k[:0], 0  # keys [0, done) are folded into `hull`
    for s in range(0, Lq, block):
        e = min(Lq, s + block)
        upto = min(s, Lk)
        if upto > done:
            hull, done = extreme_points(np.concatenate([hull, k[done:upto]])), upto
        if hull.shape[0]:
            qb = torch.from_numpy(np.ascontiguousarray(extreme_points(q[s:e])))
            lo, hi = torch.aminmax(qb @ torch.from_numpy(np.ascontiguousarray(hull)).T)
            best = max(best, float(hi), -float(lo))
        if s < Lk:
            S = (
                torch.from_numpy(np.ascontiguousarray(q[s:e]))
                @ torch.from_numpy(np.ascontiguousarray(k[s : min(e, Lk)])).T
            )
            keep = torch.ones(S.shape, dtype=torch.bool).tril()
            best = max(best, float(S.abs().masked_fill(~keep, 0.0).max()))
    return best


def causal_row_score_bounds(Q: np.ndarray, K: np.ndarray, beta: float) -> np.ndarray:
    """(N, Lq) bounds R_j >= max_{m <= j} |beta q_j . k_m|: Cauchy-Schwarz / Hoelder with the prefix
    maxima of the key norms and entries."""
    Lq = Q.shape[1]
    kn = np.stack([prefix_rows(np.sqrt((Ki**2).sum(-1)), Lq) for Ki in K])  # (N, Lq)
    kmax = np.stack([prefix_rows(np.abs(Ki), Lq) for Ki in K])  # (N, Lq, d)
    cs = np.sqrt((Q**2).sum(-1)) * kn
    ho = (np.abs(Q) * kmax).sum(-1)
    return abs(beta) * np.minimum(cs, ho)


def causal_bound_parts(inst, Q: np.ndarray, K: np.ndarray, V: np.ndarray) -> list[dict]:
    """The pieces of `bounds._BoundTerms` for a causal instance: per data point and adapted m a triple
    (rows (Lq, d), per-row key-side vector (Lq, d), side), with every key-side quantity over row j's
    prefix: a_jl = max_{m<=j} |V_ml|, w_jl = max_{m<=j} V_ml - min_{m<=j} V_ml, cbar_jl = (a_jl + |Y_jl|)/N,
    tau_j = 1.5 sum_l cbar_jl w_jl + sum_l w_jl^2/(2N);
        |dG_q| <= |beta| (|X_q| . delta tau)^T kmax_prefix,
        |dG_k| <= |beta| xkmax_prefix^T (|Q| . delta tau),
        |dG_v| <= xvmax_prefix^T (delta . (cbar + w/(2N)))."""
    N, Lq = inst.N, inst.Lq
    parts = []
    for i in range(N):
        Vi, Yi = V[i], np.asarray(inst.x3("Y")[i], np.float64)
        a = prefix_rows(np.abs(Vi), Lq)
        w = prefix_rows(Vi, Lq) - prefix_rows(Vi, Lq, np.minimum)
        cbar = (a + np.abs(Yi)) / N
        tau = 1.5 * (cbar * w).sum(-1) + (w**2).sum(-1) / (2 * N)
        part = {}
        if "q" in inst.adapted:
            xq = np.abs(np.asarray(inst.x3("X_q")[i], np.float64))
            part["q"] = (xq * tau[:, None], prefix_rows(np.abs(K[i]), Lq), "left")
        if "k" in inst.adapted:
            xk = np.abs(np.asarray(inst.x3("X_k")[i], np.float64))
            part["k"] = (np.abs(Q[i]) * tau[:, None], prefix_rows(xk, Lq), "right")
        if "v" in inst.adapted:
            xv = np.abs(np.asarray(inst.x3("X_v")[i], np.float64))
            part["v"] = (cbar + w / (2 * N), prefix_rows(xv, Lq), "right")
        parts.append(part)
    return parts


def causal_chunk(d: int, g: int) -> int:
    """Chunk length B of the causal `poly`: per row the inter-chunk work is ~ 8 k+ (d+1) flops
    (k+ = C(d+g+1, g+1)) and the intra-chunk work ~ B (6 d + 3 g + 8); flops fall with B but batched
    products of tiny tiles run slowly, so B ~ k+ (d+1) / (4 (d + g + 2)), a power of two in 16..256
    (measured at L = 2^15, one thread: within 15% of the fastest B for (d, g) = (4, 5), (4, 3), (2, 8)
    and (8, 3))."""
    b = feature_rank(d, g + 1) * (d + 1) / (4 * (d + g + 2))
    return int(min(256, max(16, 2 ** round(math.log2(max(b, 1.0))))))


def causal_poly_op_count(
    N: int, Lq: int, Lk: int, d: int, g: int, r: int, adapted: tuple[str, ...], chunk: int | None = None
) -> int:
    """Deterministic flop count of the causal `poly` (OpCounter convention). With P = Lq rounded up to
    chunks of B and n = P / B: degree-(g+1) features (k+ columns) per pass, the chunk states
    (k+ x (d+1) each), the inter-chunk products through the features and the dense masked B x B
    intra-chunk tiles (scores, Horner P_g, products). Linear in L at fixed (d, g)."""
    from harness.measure.opcount import OpCounter

    k, kp = feature_rank(d, g), feature_rank(d, g + 1)
    B = chunk or causal_chunk(d, g)
    n = -(-Lq // B)
    P, e1 = n * B, d + 1
    ops = OpCounter()
    ops.mm(d, r, d, len(adapted))
    ops.mm(P, d, d, 3 * N)  # Q, K, V on the padded positions
    ops.ew(N * Lq * d + N * Lk * d, 1)  # range bound

    def chunk_pass():
        ops.ew(N * P * kp, 2)  # query and key features
        ops.mm(kp, B, e1, N * n), ops.ew(N * n * kp * e1, 3)  # chunk states, cumsum, weights
        ops.mm(B, d, B, N * n), ops.ew(N * n * B * B, 3 * g + 1)  # intra scores, Horner, mask

    def grad_side():
        ops.mm(kp, e1, B, N * n), ops.ew(N * P * kp, 4)  # inter part through the features
        ops.mm(B, e1, B, N * n), ops.ew(N * n * B * B, 1), ops.mm(B, B, d, N * n)  # intra part
        ops.mm(d, P, d, N)

    chunk_pass()
    ops.mm(B, k, e1, N * n), ops.mm(B, B, e1, N * n)  # inter + intra numerators
    ops.ew(N * P * d, 8)  # output, residual, loss, Zq
    if "q" in adapted:
        grad_side()
    if "k" in adapted or "v" in adapted:
        chunk_pass()
    if "k" in adapted:
        grad_side()
    if "v" in adapted:
        ops.mm(B, k, d, N * n), ops.mm(B, B, d, N * n), ops.mm(d, P, d, N)
    ops.mm(r, d, d, 2 * len(adapted))
    return int(ops)
