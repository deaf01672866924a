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

with Z = Zq Zk^T, Zq = [c~/D~, -r~/D~], Zk = [V', 1] exactly as in `harness.solvers.poly.fused`
(the p-matrix identity p~ = A~ . Z of docs/theory.md §3.1, §4.4 restricted to the mask). Positions
are cut into chunks of B; for the chunk C = [s, s+B) (the same positions for queries and keys):

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
(the dense masked P_g(beta S) and the closed form, keys centred by the same global mid-range).

Inputs: the centred, balanced x_q, x_k, V', Y' of `harness.solvers.poly.fused.preprocess` (the keys'
and values' GLOBAL mid-ranges: one shift for all rows, so no gradient changes under the mask either,
since every row of p~ sums to 0 over its own prefix).

Row facts for the certificate (`rows`): over each row's prefix, the row sums D~_j, centred outputs
O'_j, residuals c_j, r'_j = <c_j, O'_j>, the leading Taylor remainder sums sT_j = sum_{m<=j} T_jm,
tV_j = sum_{m<=j} T_jm V'_m (T = -x^(g+1)/(g+1)!: the top block of the degree-(g+1) prefix states
plus the masked intra tile) and, for even g, Sg_j = sum_{m<=j} x_jm^g/g!: exactly the quantities
`harness.solvers.poly.bound` reads from the non-causal pass (docs/theory.md §4.7).
"""

from __future__ import annotations

import math

import torch

from harness import theory
from harness.lora import adapter_gradients
from harness.solvers.poly.bound_context import value_error_numerator
from harness.solvers.poly.features import TorchPlan, feature_backward, features
from harness.solvers.poly.fused import preprocess
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
    output: bool = False,
    rows: bool = True,
    prep: dict | None = None,
) -> tuple[dict, float, dict]:
    """All adapter gradients of the causal degree-g polynomial kernel, chunkwise (module docstring),
    on the centred and balanced inputs of `harness.solvers.poly.fused.preprocess` (the global key and
    value mid-ranges: one shift for every row, so still gradient-neutral under the mask). `t` =
    Instance.as_torch(...). Returns (grads, approximate loss, info); with `output`, info["output"] is
    the attention output (N, Lq, d). With `rows`, info holds the per-row quantities of the a
    posteriori certificate over each row's prefix (info["rows"]: D, Oc, c, rr, sT, tV and, for even
    g, Sg, as `poly_gradients` defines them) and info["absXdG"] = |X|^T |dG| per adapter. `prep`:
    `preprocess(t, alpha, beta, r)` when the caller has it already."""
    Pp = preprocess(t, alpha, beta, r) if prep is None else prep
    Xq, Xk, Xv = t["X_q"], t["X_k"], t["X_v"]
    N, Lq, d = Xq.shape
    Lk = Xk.shape[1]
    dtype, device = Xq.dtype, Xq.device
    plan = TorchPlan(d, g + 1, dtype, device)
    k, kp = theory.feature_rank(d, g), plan.k
    kg = theory.feature_rank(d, g - 1)  # first column of degree g
    B = chunk or causal_chunk(d, g)
    nchunks = -(-Lq // B)
    P = nchunks * B  # padded positions (queries and keys share them)
    Lkk = min(Lk, Lq)  # keys m >= Lq are never attended
    G = {m: torch.zeros(d, d, dtype=dtype, device=device) for m in adapted}
    absG = {m: torch.zeros(d, d, dtype=dtype, device=device) for m in ("q", "k", "v")}
    need_q, need_k, need_v = "q" in G, "k" in G, "v" in G
    # padded, position-aligned inputs; padded keys carry Zk = 0, padded queries Zq = 0
    Xq_p = _pad_rows(Xq, P)
    Xk_p = _pad_rows(Xk[:, :Lkk], P)
    Xv_p = _pad_rows(Xv[:, :Lkk], P)
    xq_all, xk_all = _pad_rows(Pp["xq"], P), _pad_rows(Pp["xk"][:, :Lkk], P)
    q_all, Kc_all = _pad_rows(Pp["q"], P), _pad_rows(Pp["Kc"][:, :Lkk], P)
    Vc = _pad_rows(Pp["Vc"][:, :Lkk], P)
    key_ok = (torch.arange(P, device=device) < Lkk).to(dtype)[None, :, None]
    q_ok = (torch.arange(P, device=device) < Lq).to(dtype)[None, :, None]
    Zk = torch.cat([Vc, torch.ones_like(Vc[..., :1])], dim=-1) * key_ok  # (N, P, d+1)
    Yp = _pad_rows(Pp["Yc"], P)
    Zq_all = torch.zeros(N, P, d + 1, dtype=dtype, device=device)
    # the signed first-order value error F_v (rows and V adapted): per query row
    # h_j = (-sT_j c_j + (tV_j - sT_j O'_j)/N)/D_j^2, set in pass 1, used in pass 2
    signed_v = rows and need_v
    hh_all = torch.zeros(N, P, d, dtype=dtype, device=device) if signed_v else None
    Fv = torch.zeros(d, d, dtype=dtype, device=device)
    out = torch.zeros(N, P, d, dtype=dtype, device=device) if output else None
    names = ("D", "Oc", "c", "rr", "sT", "tV") + (("Sg",) if g % 2 == 0 else ())
    keep = {n: [] for n in names} if rows else None
    tril = torch.ones(B, B, dtype=torch.bool, device=device).tril()
    S_group = max(1, min(nchunks, GROUP_ENTRIES // max(1, N * B * max(kp, B))))
    sq_bt = (Pp["sq"] * Pp["bt"])[:, None]  # (N, 1, 1, d)
    sk = Pp["sk"][:, None]

    def chunked(x: torch.Tensor, c0: int, c1: int) -> torch.Tensor:
        return x[:, c0 * B : c1 * B].reshape(x.shape[0], c1 - c0, B, x.shape[-1])

    def intra(xq_c: torch.Tensor, xk_c: torch.Tensor, top: bool = False):
        """The chunk's masked B x B tiles: A = tril(P_g(x)) (Horner) and, with `top`, the masked
        x^(g+1)/(g+1)! and x^g/g! (term by term)."""
        x = xq_c @ xk_c.transpose(-1, -2)  # (N, S, B, B)
        A = taylor_poly(x, g).masked_fill_(~tril, 0.0)
        if not top:
            return A, None, None
        term = torch.ones_like(x)
        for s in range(1, g + 1):
            term = term * x / s
        Tg = term.masked_fill(~tril, 0.0)
        return A, (term * x / (g + 1)).masked_fill_(~tril, 0.0), Tg

    loss, min_rowsum = 0.0, math.inf
    # ---------------------------------------------------------------- pass 1: ascending
    H = torch.zeros(N, kp, d + 1, dtype=dtype, device=device)  # keys of all earlier groups
    for c0 in range(0, nchunks, S_group):
        c1 = min(nchunks, c0 + S_group)
        xq, xk = chunked(xq_all, c0, c1), chunked(xk_all, c0, c1)  # (N, S, B, d)
        zk = chunked(Zk, c0, c1)  # (N, S, B, d+1)
        phq, phk = features(xq, plan), features(xk, plan)  # (N, S, k+, B)
        dH = phk @ zk  # (N, S, k+, d+1)
        Hw = (H[:, None] + _exclusive_cumsum(dH, 1)) * plan.w  # w . H_<C
        H = H + dH.sum(1)
        A, Ttop, Tg = intra(xq, xk, rows)
        num = phq[:, :, :k].transpose(-1, -2) @ Hw[:, :, :k] + A @ zk  # (N, S, B, d+1)
        D = num[..., d:]
        ok = chunked(q_ok.expand(1, P, 1), c0, c1)
        min_rowsum = min(min_rowsum, float(torch.where(ok > 0, D, torch.inf).min()))
        Oc = num[..., :d] / D
        if out is not None:
            out[:, c0 * B : c1 * B] = (Oc + Pp["muV"][:, None]).reshape(N, -1, d)
        diff = (Oc - chunked(Yp, c0, c1)) * ok
        loss += float(diff.square().sum()) / (2 * N)
        c = diff / N
        rr = (c * Oc).sum(-1, keepdim=True)
        Zq = torch.cat([c, -rr], dim=-1) / D  # (N, S, B, d+1)
        Zq_all[:, c0 * B : c1 * B] = Zq.reshape(N, -1, d + 1)
        if rows:
            top = phq[:, :, k:].transpose(-1, -2) @ Hw[:, :, k:] + Ttop @ zk  # [T V', T 1], sign -
            vals = {"D": D, "Oc": Oc, "c": c, "rr": rr, "sT": -top[..., d:], "tV": -top[..., :d]}
            if g % 2 == 0:
                inter = (phq[:, :, kg:k] * Hw[:, :, kg:k, d:]).sum(-2).unsqueeze(-1)
                vals["Sg"] = inter + Tg @ zk[..., d:]
            for n_ in names:
                keep[n_].append(vals[n_].reshape(N, -1, vals[n_].shape[-1]))
            if signed_v:
                sT, tV = vals["sT"], vals["tV"]
                hh = value_error_numerator(c, Oc, sT, tV, N) / (D * D) * ok
                hh_all[:, c0 * B : c1 * B] = hh.reshape(N, -1, d)
        if need_q:
            gphi = Hw @ Zq.transpose(-1, -2)  # (N, S, k+, B)
            dQ = sq_bt * feature_backward(gphi, phq, xq, plan)
            dQ = dQ + Pp["bt"] * ((A * (Zq @ zk.transpose(-1, -2))) @ chunked(Kc_all, c0, c1))
            xc = chunked(Xq_p, c0, c1)
            G["q"] += torch.einsum("nsja,nsjb->ab", xc, dQ)
            if rows:
                absG["q"] += torch.einsum("nsja,nsjb->ab", xc.abs(), dQ.abs())
    # ---------------------------------------------------------------- pass 2: descending
    if need_k or need_v:
        nz = 2 * d + 1 if signed_v else d + 1
        Nst = torch.zeros(N, kp, nz, dtype=dtype, device=device)  # queries of all later groups
        starts = list(range(0, nchunks, S_group))
        for c0 in reversed(starts):
            c1 = min(nchunks, c0 + S_group)
            xq, xk = chunked(xq_all, c0, c1), chunked(xk_all, c0, c1)
            zk, zq = chunked(Zk, c0, c1), chunked(Zq_all, c0, c1)
            if signed_v:  # the query moments of h ride along: columns d+1 .. 2d+1
                hq = chunked(hh_all, c0, c1)
                zq = torch.cat([zq, hq], dim=-1)
            phq, phk = features(xq, plan), features(xk, plan)
            dN = phq @ zq  # (N, S, k+, d+1 [+ d])
            Nw = (Nst[:, None] + _exclusive_cumsum(dN, 1, reverse=True)) * plan.w  # w . N_>C
            Nst = Nst + dN.sum(1)
            A, Ttop, _ = intra(xq, xk, signed_v)
            if signed_v:
                # F_v = sum_m X_v,m (x) sum_(j >= m) [A~_jm h_j + T_jm c_j/D_j], T = -x^(g+1)/(g+1)!:
                # the degree <= g rows of the query moments of h, minus the top block's against c/D
                pk_lo, pk_top = phk[:, :, :k].transpose(-1, -2), phk[:, :, k:].transpose(-1, -2)
                f1 = pk_lo @ Nw[:, :, :k, d + 1 :] + A.transpose(-1, -2) @ hq
                f1 = f1 - (pk_top @ Nw[:, :, k:, :d] + Ttop.transpose(-1, -2) @ zq[..., :d])
                Fv += torch.einsum("nsja,nsjb->ab", chunked(Xv_p, c0, c1), f1)
                zq, Nw = zq[..., : d + 1], Nw[..., : d + 1]
            if need_k:
                gphk = Nw @ zk.transpose(-1, -2)
                dK = sk * feature_backward(gphk, phk, xk, plan)
                dK = dK + (A * (zq @ zk.transpose(-1, -2))).transpose(-1, -2) @ chunked(q_all, c0, c1)
                xc = chunked(Xk_p, c0, c1)
                G["k"] += torch.einsum("nsja,nsjb->ab", xc, dK)
                if rows:
                    absG["k"] += torch.einsum("nsja,nsjb->ab", xc.abs(), dK.abs())
            if need_v:
                dV = phk[:, :, :k].transpose(-1, -2) @ Nw[:, :, :k, :d] + A.transpose(-1, -2) @ zq[..., :d]
                xc = chunked(Xv_p, c0, c1)
                G["v"] += torch.einsum("nsja,nsjb->ab", xc, dV)
                if rows:
                    absG["v"] += torch.einsum("nsja,nsjb->ab", xc.abs(), dV.abs())
    info = {"min_rowsum": min_rowsum, "chunk": B, "group": S_group, "k": k, "k_plus": kp, "prep": Pp}
    if output:
        info["output"] = out[:, :Lq]
    if rows:
        info["rows"] = {n_: torch.cat(v_, dim=1)[:, :Lq] for n_, v_ in keep.items()}
        # keys each row's sums touch (its prefix up to the end of its chunk: the chunk's own keys are
        # in the inclusive cumsum the exclusive one is formed from)
        ends = torch.clamp((torch.arange(Lq, device=device) // B + 1) * B, max=Lkk).to(dtype)
        info["rows"]["n"] = ends[None, :, None].expand(N, Lq, 1)
        info["absXdG"] = absG
        # the signed first-order value error (None without V: nothing to bound)
        info["Fv"] = Fv if signed_v else None
        info["G"] = G
    return adapter_gradients(t, G, alpha, r), loss, info
