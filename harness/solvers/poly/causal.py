"""`poly` on causal instances (docs/theory.md §4.7): the chunkwise algorithm of causal linear
attention, O(N L k d).

Causal rule (harness.instance.attention_mask): query j attends keys m <= j (top-left; keys m >= Lq
are never seen, queries j >= Lk see all keys). The degree-g kernel A~_jm = P_g(beta q_j . k_m) =
phi(x_q,j)^T diag(w) phi(x_k,m) (monomial features, `harness.solvers.poly`) is summed over each row's
prefix only, so every global sum of the non-causal solver becomes a prefix (or suffix) sum:

    forward      num_j = sum_{m<=j} A~_jm [V_m, 1]              (prefix states H = sum_m phi+(k_m) [V_m, 1]^T)
    dQ           dQ_j  = beta sum_{m<=j} Z_jm P_g(beta q_j . k_m) k_m          (prefix states H)
    dK, dV       dK_m  = beta sum_{j>=m} Z_jm P_g(...) q_j,  dV_m = sum_{j>=m} f~_jm c~_j
                                                                (suffix states N = sum_j phi+(q_j) Zq_j^T)

with Z = Zq Zk^T, Zq = [c~/D~, -r~/D~], Zk = [V, 1] exactly as in `harness.solvers.poly.fused`
(the p-matrix identity p~ = A~ . Z of MATH.md §5.5 restricted to the mask). Positions are cut into
chunks of B; for the chunk C = [s, s+B) (the same positions for queries and keys):

    inter-chunk  the state of all earlier chunks (later chunks for the suffix pass) through the
                 features: num_C += Phi(x_q,C) (w . H_<C),
                 dQ_C += s_q d/dx <(w . H+_<C) Zq_C^T, Phi+(x_q,C)>
    intra-chunk  dense and masked: A_C = tril(P_g(x_q,C x_k,C^T)) (B x B, Horner), num_C += A_C Zk_C,
                 dQ_C += beta (A_C . Zq_C Zk_C^T) K_C, and the transposes for dK, dV

as flash-linear-attention's chunk kernels do (states per chunk, an exclusive cumulative sum across
chunks, dense masked products inside a chunk). The inter part uses features of degree g+1 for the
gradients (d/dx P_{g+1} = P_g, as in `poly`) and the intra part P_g directly: the same numbers in
exact arithmetic. Chunks are processed a group at a time as batched tensors (states by `cumsum` over
the group's chunks, carried between groups), so the Python loop runs L / (group * B) times. Two
passes: ascending (forward, residual, dQ, prefix states) and descending (dK, dV, suffix states);
memory O(group B (k + B) + L d).

The obviously-correct O(L^2) twin is `harness.solvers.poly.naive.dense_poly_gradients(..., causal=True)`
(the dense masked P_g(beta S) and the closed form); `naive.row_prefix_sums` is the twin of `row_stats`.

Row facts for the certificate (`row_stats`): D~_j = sum_{m<=j} A~_jm (row sums over the prefix) and
M_j = sum_{m<=j} |beta q_j . k_m|^(g+1), the a-posteriori Taylor remainder mass of row j (exact from
the top-degree block of the degree-(g+1) features when g+1 is even; for odd g+1 the bound
|x|^(g+1) <= R_j |x|^g uses the degree-g block), both by the same prefix sums.
"""

from __future__ import annotations

import math

import torch

from harness import theory
from harness.lora import adapter_gradients, effective_weights
from harness.solvers.poly.features import TorchPlan, feature_backward, features, split_beta
from harness.solvers.poly.naive import taylor_poly
from harness.theory.causal import causal_chunk

GROUP_ENTRIES = 1 << 20  # entries of one group's (N, chunks, k+, B) feature tensor


def _pad_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """x (N, L, c) padded with zero rows to (N, n, c), or cut to n rows."""
    if x.shape[1] >= n:
        return x[:, :n]
    return torch.cat([x, x.new_zeros(x.shape[0], n - x.shape[1], x.shape[2])], dim=1)


def _exclusive_cumsum(x: torch.Tensor, dim: int, reverse: bool = False) -> torch.Tensor:
    """sum over the chunks before (after, when reverse) each chunk along `dim`."""
    if reverse:
        x = x.flip(dim)
    c = torch.cumsum(x, dim=dim) - x
    return c.flip(dim) if reverse else c


def causal_poly_gradients(
    t: dict,
    alpha: float,
    beta: float,
    r: int,
    adapted: tuple[str, ...],
    g: int,
    chunk: int | None = None,
    row_stats: bool = False,
    output: bool = False,
) -> tuple[dict, float, dict]:
    """All adapter gradients of the causal degree-g polynomial kernel, chunkwise (module docstring).
    `t` = Instance.as_torch(...). Returns (grads, approximate loss, info); with `output`, info["output"]
    is the attention output (N, Lq, d). With `row_stats`, info also holds "rowsum" D~ (N, Lq) and
    "power_sum" M (N, Lq) = sum_{m<=j} (beta q_j . k_m)^p for the even power p = info["power"]
    (g+1 when g+1 is even, else g; module docstring)."""
    W = effective_weights(t, alpha, r)
    Xq, Xk, Xv, Y = t["X_q"], t["X_k"], t["X_v"], t["Y"]
    N, Lq, d = Xq.shape
    Lk = Xk.shape[1]
    dtype, device = Xq.dtype, Xq.device
    sq, sk = split_beta(beta)
    plan = TorchPlan(d, g + 1, dtype, device)
    k, kp = theory.feature_rank(d, g), plan.k
    B = chunk or causal_chunk(d, g)
    nchunks = -(-Lq // B)
    P = nchunks * B  # padded positions (queries and keys share them)
    Lkk = min(Lk, Lq)  # keys m >= Lq are never attended
    G = {m: torch.zeros(d, d, dtype=dtype, device=device) for m in adapted}
    need_q, need_k, need_v = "q" in G, "k" in G, "v" in G
    # padded, position-aligned inputs; padded keys carry Zk = 0, padded queries Zq = 0
    Xq_p = _pad_rows(Xq, P)
    Xk_p = _pad_rows(Xk[:, :Lkk], P)
    Xv_p = _pad_rows(Xv[:, :Lkk], P)
    Q, K, V = Xq_p @ W["q"], Xk_p @ W["k"], Xv_p @ W["v"]
    key_ok = (torch.arange(P, device=device) < Lkk).to(dtype)[None, :, None]
    q_ok = (torch.arange(P, device=device) < Lq).to(dtype)[None, :, None]
    Zk = torch.cat([V, torch.ones_like(V[..., :1])], dim=-1) * key_ok  # (N, P, d+1)
    Yp = _pad_rows(Y, P)
    Zq_all = torch.zeros(N, P, d + 1, dtype=dtype, device=device)
    out = torch.zeros(N, P, d, dtype=dtype, device=device)
    tril = torch.ones(B, B, dtype=torch.bool, device=device).tril()
    h2 = g + 1 if (g + 1) % 2 == 0 else g  # even power for row_stats
    top = slice(theory.feature_rank(d, h2 - 1), theory.feature_rank(d, h2))  # the degree-h2 block
    S_group = max(1, min(nchunks, GROUP_ENTRIES // max(1, N * B * max(kp, B))))

    def chunked(x: torch.Tensor, c0: int, c1: int) -> torch.Tensor:
        return x[:, c0 * B : c1 * B].reshape(x.shape[0], c1 - c0, B, x.shape[-1])

    def intra(xq_c: torch.Tensor, xk_c: torch.Tensor) -> torch.Tensor:
        return taylor_poly(xq_c @ xk_c.transpose(-1, -2), g).masked_fill_(~tril, 0.0)  # (N, S, B, B)

    loss, min_rowsum = 0.0, math.inf
    rowsum = torch.zeros(N, P, dtype=dtype, device=device) if row_stats else None
    rmass = torch.zeros(N, P, dtype=dtype, device=device) if row_stats else None
    # ---------------------------------------------------------------- pass 1: ascending
    H = torch.zeros(N, kp, d + 1, dtype=dtype, device=device)  # keys of all earlier groups
    Hm = torch.zeros(N, kp, 1, dtype=dtype, device=device) if row_stats else None
    for c0 in range(0, nchunks, S_group):
        c1 = min(nchunks, c0 + S_group)
        xq, xk = sq * chunked(Q, c0, c1), sk * chunked(K, c0, c1)  # (N, S, B, d)
        zk = chunked(Zk, c0, c1)  # (N, S, B, d+1)
        phq, phk = features(xq, plan), features(xk, plan)  # (N, S, k+, B)
        dH = phk @ zk  # (N, S, k+, d+1)
        Hw = (H[:, None] + _exclusive_cumsum(dH, 1)) * plan.w  # w . H_<C
        H = H + dH.sum(1)
        A = intra(xq, xk)
        num = phq[:, :, :k].transpose(-1, -2) @ Hw[:, :, :k] + A @ zk  # (N, S, B, d+1)
        D = num[..., d:]
        ok = chunked(q_ok.expand(1, P, 1), c0, c1)
        min_rowsum = min(min_rowsum, float(torch.where(ok > 0, D, torch.inf).min()))
        O = num[..., :d] / D
        out[:, c0 * B : c1 * B] = O.reshape(N, -1, d)
        diff = (O - chunked(Yp, c0, c1)) * ok
        loss += float(diff.square().sum()) / (2 * N)
        c = diff / N
        Zq = torch.cat([c, -(c * O).sum(-1, keepdim=True)], dim=-1) / D  # (N, S, B, d+1)
        Zq_all[:, c0 * B : c1 * B] = Zq.reshape(N, -1, d + 1)
        if row_stats:
            rowsum[:, c0 * B : c1 * B] = D.reshape(N, -1)
            ones = zk[..., d:]
            dHm = phk[:, :, top] @ ones  # (N, S, kt, 1)
            Hmw = (Hm[:, None, top] + _exclusive_cumsum(dHm, 1)) * plan.w[top]
            Hm[:, top] = Hm[:, top] + dHm.sum(1)
            s_pow = (xq @ xk.transpose(-1, -2)).pow_(h2).masked_fill_(~tril, 0.0)
            m_inter = (phq[:, :, top].transpose(-1, -2) @ Hmw).squeeze(-1) * math.factorial(h2)
            rmass[:, c0 * B : c1 * B] = (m_inter + (s_pow @ ones).squeeze(-1)).reshape(N, -1)
        if need_q:
            gphi = Hw @ Zq.transpose(-1, -2)  # (N, S, k+, B)
            dQ = sq * feature_backward(gphi, phq, xq, plan)
            dQ = dQ + beta * ((A * (Zq @ zk.transpose(-1, -2))) @ chunked(K, c0, c1))
            G["q"] += torch.einsum("nsja,nsjb->ab", chunked(Xq_p, c0, c1), dQ)
    # ---------------------------------------------------------------- pass 2: descending
    if need_k or need_v:
        Nst = torch.zeros(N, kp, d + 1, dtype=dtype, device=device)  # queries of all later groups
        starts = list(range(0, nchunks, S_group))
        for c0 in reversed(starts):
            c1 = min(nchunks, c0 + S_group)
            Qc = chunked(Q, c0, c1)
            xq, xk = sq * Qc, sk * chunked(K, c0, c1)
            zk, zq = chunked(Zk, c0, c1), chunked(Zq_all, c0, c1)
            phq, phk = features(xq, plan), features(xk, plan)
            dN = phq @ zq  # (N, S, k+, d+1)
            Nw = (Nst[:, None] + _exclusive_cumsum(dN, 1, reverse=True)) * plan.w  # w . N_>C
            Nst = Nst + dN.sum(1)
            A = intra(xq, xk)
            if need_k:
                gphk = Nw @ zk.transpose(-1, -2)
                dK = sk * feature_backward(gphk, phk, xk, plan)
                dK = dK + beta * ((A * (zq @ zk.transpose(-1, -2))).transpose(-1, -2) @ Qc)
                G["k"] += torch.einsum("nsja,nsjb->ab", chunked(Xk_p, c0, c1), dK)
            if need_v:
                dV = phk[:, :, :k].transpose(-1, -2) @ Nw[:, :, :k, :d] + A.transpose(-1, -2) @ zq[..., :d]
                G["v"] += torch.einsum("nsja,nsjb->ab", chunked(Xv_p, c0, c1), dV)
    info = {"min_rowsum": min_rowsum, "chunk": B, "group": S_group, "k": k, "k_plus": kp}
    if output:
        info["output"] = out[:, :Lq]
    if row_stats:
        info.update(rowsum=rowsum[:, :Lq], power_sum=rmass[:, :Lq], power=h2)
    return adapter_gradients(t, G, alpha, r), loss, info
