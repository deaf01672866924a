"""`streaming`: exact gradients with O(L d) extra memory (docs/theory.md §3.4, FlashAttention-2 form).

Queries are processed in blocks of rows and keys in blocks of columns; the softmax normalisation is
carried online (running row max m and running sum l, rescaled as each key block arrives), so no L x L
matrix exists, only one (block_q x block_k) tile. Pass 1 gives the output O and the row
log-sum-exp; pass 2 recomputes each tile of f = exp(S - lse) and accumulates, with R = (O - Y)/N:

    dV += f^T R,   dS = f . (R V^T - rho 1^T) with rho = rowsum(R . O) = <f_j, q_j>,
    dQ += beta dS K,   dK += beta dS^T Q

which is the p-matrix identity p = f . q - diag(<f_j, q_j>) f of docs/theory.md §3.1 tile by tile
(dS = p, q = R V^T). Then G_Wm = X_m^T dM and the LoRA chain rule of docs/theory.md §3.2.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from harness.instance import Instance
from harness.lora import adapter_gradients, effective_weights
from harness.measure.opcount import OpCounter
from harness.solvers._common import blocks, to_numpy
from harness.solvers.base import SLACK_BYTES, Result, Solver, input_bytes
from harness.solvers.options import Option

TILE_ENTRIES = 1 << 21  # entries in one score tile (16 MiB in float64)
KEY_BLOCK = 4096


def _sizes(a: int, b: int, block_q: int | None, block_k: int | None) -> tuple[int, int]:
    bk = block_k or min(b, KEY_BLOCK)
    bq = block_q or max(1, min(a, TILE_ENTRIES // bk))
    return bq, bk


def streaming_forward(Q, K, V, beta: float, bq: int, bk: int, ops: OpCounter):
    """Pass 1: O = softmax(beta Q K^T) V and lse = row log-sum-exp, online over key blocks."""
    a, d = Q.shape
    b = K.shape[0]
    O = torch.empty(a, V.shape[1], dtype=Q.dtype, device=Q.device)
    lse = torch.empty(a, dtype=Q.dtype, device=Q.device)
    for qs, qe in blocks(a, bq):
        m = torch.full((qe - qs, 1), -math.inf, dtype=Q.dtype, device=Q.device)
        l = torch.zeros(qe - qs, 1, dtype=Q.dtype, device=Q.device)
        acc = torch.zeros(qe - qs, V.shape[1], dtype=Q.dtype, device=Q.device)
        for ks, ke in blocks(b, bk):
            S = beta * (Q[qs:qe] @ K[ks:ke].T)
            m_new = torch.maximum(m, S.amax(dim=-1, keepdim=True))
            scale = torch.exp(m - m_new)
            S.sub_(m_new).exp_()
            l = l * scale + S.sum(dim=-1, keepdim=True)
            acc = acc * scale + S @ V[ks:ke]
            m = m_new
        O[qs:qe] = acc / l
        lse[qs:qe] = (m + torch.log(l)).squeeze(-1)
    ops.mm(a, d, b), ops.ew(a * b, 4), ops.mm(a, b, V.shape[1])
    return O, lse


def streaming_backward(
    Q, K, V, R, O, lse, beta: float, bq: int, bk: int, need_qk: bool, need_v: bool, ops: OpCounter
):
    """Pass 2: dQ, dK, dV of the loss with dL/dO = R, tile by tile (see module docstring)."""
    a, d = Q.shape
    b = K.shape[0]
    dQ = torch.zeros_like(Q)
    dK = torch.zeros_like(K)
    dV = torch.zeros_like(V)
    rho = (R * O).sum(dim=-1, keepdim=True)
    for qs, qe in blocks(a, bq):
        Rb, rb, lb = R[qs:qe], rho[qs:qe], lse[qs:qe, None]
        for ks, ke in blocks(b, bk):
            f = beta * (Q[qs:qe] @ K[ks:ke].T)
            f.sub_(lb).exp_()
            if need_v:
                dV[ks:ke] += f.T @ Rb
            if need_qk:
                dS = Rb @ V[ks:ke].T
                dS.sub_(rb).mul_(f)
                dQ[qs:qe] += beta * (dS @ K[ks:ke])
                dK[ks:ke] += beta * (dS.T @ Q[qs:qe])
    ops.mm(a, d, b), ops.ew(a * b, 2)
    if need_v:
        ops.mm(b, a, V.shape[1])
    if need_qk:
        ops.mm(a, d, b), ops.ew(a * b, 2), ops.mm(a, b, d), ops.mm(b, a, d)
    return dQ, dK, dV


class StreamingSolver(Solver):
    name = "streaming"
    exact = True
    cost = "O(N L^2 d) time, O(L d) extra memory"
    description = "exact, blocked over query rows and key columns with online log-sum-exp"
    options = {
        "block_q": Option(int, None, min=1, auto=True, help="query rows per tile (auto: fill TILE_ENTRIES)"),
        "block_k": Option(int, None, min=1, auto=True, help=f"key columns per tile (auto: {KEY_BLOCK})"),
    }

    def memory_estimate(self, inst: Instance, itemsize: int, block_q=None, block_k=None) -> int:
        """3 (block_q x block_k) tiles + 12 (L x d) + the inputs + 128 MiB: the process RSS grows by
        185 MiB at L = 8192, d = 16 with the default 512 x 4096 tile, 272 MiB at d = 64, 275 MiB with
        block_q = block_k = 4096 (tests/solvers/test_memory.py holds estimate >= measured)."""
        bq, bk = _sizes(inst.Lq, inst.Lk, block_q, block_k)
        tile = min(bq, inst.Lq) * min(bk, inst.Lk)
        work = 3 * tile + 12 * (inst.Lq + inst.Lk) * inst.d
        return work * itemsize + input_bytes(inst, itemsize) + 4 * SLACK_BYTES

    def _solve(self, inst: Instance, dtype, device, block_q=None, block_k=None) -> Result:
        t = inst.as_torch(dtype=dtype, device=device)
        ops = OpCounter()
        r, beta = inst.r, inst.beta
        W = effective_weights(t, inst.alpha, r)
        d, N = inst.d, inst.N
        bq, bk = _sizes(inst.Lq, inst.Lk, block_q, block_k)
        G = {m: torch.zeros(d, d, dtype=dtype, device=device) for m in inst.adapted}
        need_qk = "q" in G or "k" in G
        loss = 0.0
        with torch.no_grad():
            ops.mm(d, r, d, len(inst.adapted))
            for i in range(N):
                Q, K, V = t["X_q"][i] @ W["q"], t["X_k"][i] @ W["k"], t["X_v"][i] @ W["v"]
                ops.mm(inst.Lq, d, d), ops.mm(inst.Lk, d, d, 2)
                O, lse = streaming_forward(Q, K, V, beta, bq, bk, ops)
                diff = O - t["Y"][i]
                loss += float(diff.square().sum()) / (2 * N)
                if not G:
                    continue
                dQ, dK, dV = streaming_backward(
                    Q, K, V, diff / N, O, lse, beta, bq, bk, need_qk, "v" in G, ops
                )
                for m, X, dM in (("q", t["X_q"][i], dQ), ("k", t["X_k"][i], dK), ("v", t["X_v"][i], dV)):
                    if m in G:
                        G[m] += X.T @ dM
                        ops.mm(d, X.shape[0], d)
            grads = to_numpy(adapter_gradients(t, G, inst.alpha, r))
            ops.mm(r, d, d, 2 * len(inst.adapted))
        return Result(grads, loss, self.name, ops=int(ops), info={"block_q": bq, "block_k": bk})

    def forward(self, inst: Instance, *, dtype=None, device=None, block_q=None, block_k=None) -> np.ndarray:
        from harness.solvers.base import resolve_device, resolve_dtype

        dtype, device = resolve_dtype(dtype), resolve_device(device)
        t = inst.as_torch(dtype=dtype, device=device)
        W = effective_weights(t, inst.alpha, inst.r)
        bq, bk = _sizes(inst.Lq, inst.Lk, block_q, block_k)
        outs = []
        with torch.no_grad():
            for i in range(inst.N):
                Q, K, V = t["X_q"][i] @ W["q"], t["X_k"][i] @ W["k"], t["X_v"][i] @ W["v"]
                outs.append(streaming_forward(Q, K, V, inst.beta, bq, bk, OpCounter())[0])
        return torch.stack(outs).cpu().double().numpy()
