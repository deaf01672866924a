"""`streaming`: exact gradients with O(L d) extra memory (docs/theory.md §3.4, FlashAttention-2 blocking).

The LoRA loss is separable over query rows: row j of the output, its residual R_j = (O_j - Y_j)/N and
row j of dS need only row j of the score matrix. So the default schedule ("strip") takes `block_q`
query rows against ALL keys at once, in one strip of block_q x Lk scores (128 rows, at most 2^21
entries: `default_block_q`), and
finishes the forward and the backward of those rows before the next strip; nothing is recomputed
(one exp per score entry) and no L x L matrix exists:

    S = beta Q_b K^T                        (block_q x Lk)
    f = softmax_rows(S)                     (row max and row sum kept inside, as in closed-form)
    O_b = f V,   R_b = (O_b - Y_b) / N
    dV += f^T R_b
    q = R_b V^T,  dS = f . (q - rowsum(f . q))    (the p-matrix of docs/theory.md §3.1)
    dQ_b = beta dS K,   dK += beta dS^T Q_b

then G_Wm = X_m^T dM and the LoRA chain rule of docs/theory.md §3.2. rowsum(f . q) is formed from
the same q entries that dS subtracts it from, so a row whose softmax is exactly one-hot (any score
range beyond ~100 in float32 / ~750 in float64) gets exactly zero dS, as in closed-form and autograd.

`block_k` < Lk selects the "tiled" schedule (block_q x block_k tiles, memory independent of Lk), in
three passes. Pass 1 carries the online row max m and row sum l SEPARATELY (never their log-sum-exp:
m + log l rounds to ulp(m), which at R = 1e8 in float32 is 8, an error of e^8 in every f). Passes 2
and 3 recompute f = exp(S - m) / l and q = R V^T bit for bit: pass 2 sums rho = rowsum(f . q) over
the key tiles, pass 3 forms dS = f . (q - rho). FlashAttention's shortcut
rho = R.O saves pass 2 but is not formed from the same q entries: in a one-hot row q_jk* - R'.O is a
rounding difference, multiplied by beta (up to 1e300) in dQ and dK.

`kernel="reference"` runs the strip schedule with plain out-of-place formulas (the obviously-correct
twin of the fused path; tests compare them).

Causal instances (query j attends keys m <= j, docs/theory.md §4.7): the strip of rows [qs, qe) takes
only the keys [0, min(Lk, qe)) (a contiguous qe-wide view of the buffers), and the tiled schedule stops
its key loop there; scores above the diagonal are never computed (about half the work at Lq = Lk;
the op count counts the computed entries) and only the corner of keys >= qs is masked (-inf, so
f = 0 and dS = 0 there). Key 0 is in every row's first tile, so the running max is finite from then on.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.errors import HarnessError
from harness.instance import Instance
from harness.lora import adapter_gradients, effective_weights
from harness.measure.opcount import OpCounter
from harness.solvers._common import blocks, to_numpy
from harness.solvers.base import SLACK_BYTES, Result, Solver, input_bytes
from harness.solvers.exact.causal_tiles import key_end, mask_corner, visible_entries
from harness.solvers.options import Option

# default strip: STRIP_ROWS query rows, at most STRIP_ENTRIES scores (measured on this machine,
# L = 8192, one thread: 64-128 rows are fastest at d = 4 and d = 64 in both dtypes; 8 rows cost 2.2x at
# d = 64, float64). A GPU takes larger strips: launches, not caches, are its cost.
STRIP_ROWS = {"cpu": 128, "cuda": 1024}
STRIP_ENTRIES = {"cpu": 1 << 21, "cuda": 1 << 26}
TILE_ENTRIES = 1 << 21  # entries of one tile of the tiled schedule (16 MiB in float64)
KERNELS = ("fused", "reference")
__all__ = ["StreamingSolver", "key_end", "mask_corner", "plan", "streaming_gradients", "visible_entries"]


def default_block_q(a: int, b: int, device_type: str = "cpu") -> int:
    """Rows per strip: STRIP_ROWS, fewer when the strip would exceed STRIP_ENTRIES (at least 1)."""
    rows, cap = STRIP_ROWS.get(device_type, 128), STRIP_ENTRIES.get(device_type, 1 << 21)
    return max(1, min(a, rows, cap // b))


def _check_block(name: str, v) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise HarnessError(f"streaming option {name} must be a positive integer, got {v!r}")
    return int(v)


def _fold_beta_safe(Q: torch.Tensor, K: torch.Tensor, beta: float) -> bool:
    """True when beta can be folded into Q without any partial sum of (beta Q) K^T overflowing:
    |beta| max_j ||Q_j||_1 max |K| stays far below the largest finite number of the dtype."""
    if Q.numel() == 0 or K.numel() == 0:
        return True
    bound = abs(beta) * float(Q.abs().sum(-1).max()) * float(K.abs().max())
    return bound < torch.finfo(Q.dtype).max / 16


# ----------------------------------------------------------------------------------- strip schedule
def strip_fused(Q, K, V, Y, beta: float, N: int, bq: int, need_qk: bool, need_v: bool, causal: bool = False):
    """Strip schedule, in place in two preallocated block_q x Lk buffers (module doc). K and V are
    read through contiguous transposes and dK, dV accumulated transposed (d x Lk), the layouts in
    which the thin products run fastest (benchmarks/floor.py). Returns (dQ, dK, dV, O, sum of
    squared residuals as a 0-d tensor)."""
    a, d = Q.shape
    b = K.shape[0]
    cpu = Q.device.type == "cpu"
    fold = cpu and _fold_beta_safe(Q, K, beta)  # (the check reads two scalars: no host sync on a GPU)
    Qs = Q * beta if fold else Q
    Kt, Vt = K.T.contiguous(), V.T.contiguous()
    # flat buffers viewed as (rows x visible keys): contiguous whatever a causal strip's width
    f_buf = torch.empty(min(bq, a) * b, dtype=Q.dtype, device=Q.device)
    q_buf = torch.empty_like(f_buf) if need_qk else None
    # CPU: S -> f and q -> dS in place (checked against the reference); elsewhere a third buffer, since
    # aliasing input and output is not part of the softmax kernels' contract
    s_buf = q_buf if cpu or not need_qk else torch.empty_like(f_buf)
    dQ = torch.empty_like(Q) if need_qk else None
    dKt = torch.zeros_like(Kt) if need_qk else None
    dVt = torch.zeros_like(Vt) if need_v else None
    O = torch.empty(a, V.shape[1], dtype=Q.dtype, device=Q.device)
    sq = torch.zeros((), dtype=Q.dtype, device=Q.device)
    for qs, qe in blocks(a, bq):
        n, e = qe - qs, key_end(qe, b, causal)

        def view(buf, n=n, e=e):
            return buf[: n * e].view(n, e)

        f = view(f_buf)
        S = f if cpu or not need_qk else view(s_buf)  # in place on CPU (checked), apart elsewhere
        torch.mm(Qs[qs:qe], Kt[:, :e], out=S)  # S
        if not fold:
            S.mul_(beta)
        if causal:
            mask_corner(S, qs, 0)
        torch.ops.aten._softmax.out(S, 1, False, out=f)  # f = softmax_rows(S)
        Ob = O[qs:qe]
        torch.mm(f, V[:e], out=Ob)
        Rb = Ob - Y[qs:qe]
        sq += torch.dot(Rb.reshape(-1), Rb.reshape(-1))
        Rb.div_(N)  # R_b = (O_b - Y_b) / N
        if need_v:
            dVt[:, :e].addmm_(Rb.T, f)  # dV^T += R_b^T f
        if need_qk:
            q = view(q_buf)
            torch.mm(Rb, Vt[:, :e], out=q)  # q = R_b V^T
            dS = view(s_buf)
            torch.ops.aten._softmax_backward_data.out(q, f, 1, Q.dtype, grad_input=dS)
            torch.mm(dS, K[:e], out=dQ[qs:qe])  # dQ_b = dS K
            dKt[:, :e].addmm_(Q[qs:qe].T, dS)  # dK^T += Q_b^T dS
    dK = dV = None
    if need_qk:
        dQ.mul_(beta)
        dK = dKt.T.mul_(beta)
    if need_v:
        dV = dVt.T
    return dQ, dK, dV, O, sq


def strip_reference(
    Q, K, V, Y, beta: float, N: int, bq: int, need_qk: bool, need_v: bool, causal: bool = False
):
    """The same strip schedule in plain out-of-place formulas (the twin of `strip_fused`); causal: the
    full strip against all keys with the mask m > j set to -inf."""
    dQ, dK, dV, outs, sq = [], torch.zeros_like(K), torch.zeros_like(V), [], 0.0
    for qs, qe in blocks(Q.shape[0], bq):
        S = beta * (Q[qs:qe] @ K.T)
        if causal:
            hidden = torch.arange(K.shape[0])[None, :] > torch.arange(qs, qe)[:, None]
            S = S.masked_fill(hidden, -torch.inf)
        f = torch.softmax(S, dim=-1)
        Ob = f @ V
        Rb = (Ob - Y[qs:qe]) / N
        sq = sq + ((Ob - Y[qs:qe]) ** 2).sum()
        q = Rb @ V.T
        dS = f * (q - (f * q).sum(dim=-1, keepdim=True))
        dQ.append(beta * (dS @ K))
        dK = dK + beta * (dS.T @ Q[qs:qe])
        dV = dV + f.T @ Rb
        outs.append(Ob)
    return (
        torch.cat(dQ) if need_qk else None,
        dK if need_qk else None,
        dV if need_v else None,
        torch.cat(outs),
        torch.as_tensor(sq, dtype=Q.dtype),
    )


# ----------------------------------------------------------------------------------- tiled schedule
def _scores(Qb, K, ks: int, ke: int, beta: float) -> torch.Tensor:
    """beta Q_b K_blk^T: pass 2 calls this with the same arguments as pass 1 and gets the same bits."""
    return (Qb @ K[ks:ke].T).mul_(beta)


def tiled_forward(Q, K, V, beta: float, bq: int, bk: int, causal: bool = False):
    """Pass 1: O, the row max m and the row sum l (relative to m, kept apart), online over key blocks."""
    a = Q.shape[0]
    O = torch.empty(a, V.shape[1], dtype=Q.dtype, device=Q.device)
    m = torch.empty(a, 1, dtype=Q.dtype, device=Q.device)
    l = torch.empty_like(m)
    for qs, qe in blocks(a, bq):
        mb = torch.full((qe - qs, 1), -torch.inf, dtype=Q.dtype, device=Q.device)
        lb = torch.zeros_like(mb)
        acc = torch.zeros(qe - qs, V.shape[1], dtype=Q.dtype, device=Q.device)
        for ks, ke in blocks(key_end(qe, K.shape[0], causal), bk):
            S = _scores(Q[qs:qe], K, ks, ke, beta)
            if causal:
                mask_corner(S, qs, ks)
            m_new = torch.maximum(mb, S.amax(dim=-1, keepdim=True))
            scale = torch.exp(mb - m_new)
            S.sub_(m_new).exp_()
            lb = lb * scale + S.sum(dim=-1, keepdim=True)
            acc = acc * scale + S @ V[ks:ke]
            mb = m_new
        O[qs:qe], m[qs:qe], l[qs:qe] = acc / lb, mb, lb
    return O, m, l


def tiled_backward(
    Q, K, V, R, m, l, beta: float, bq: int, bk: int, need_qk: bool, need_v: bool, causal: bool = False
):
    """Passes 2 and 3: dQ, dK, dV with dL/dO = R. The tiles of f = exp(S - m) / l and q = R V^T
    are recomputed bit for bit; pass 2 sums rho = rowsum(f . q) from them, pass 3 forms
    dS = f . (q - rho) and accumulates (module doc)."""
    a = Q.shape[0]
    b = K.shape[0]
    dQ = torch.zeros_like(Q)
    dK = torch.zeros_like(K)
    dV = torch.zeros_like(V)

    def tile(qs, qe, ks, ke):
        S = _scores(Q[qs:qe], K, ks, ke, beta)
        if causal:
            mask_corner(S, qs, ks)
        return S.sub_(m[qs:qe]).exp_().div_(l[qs:qe])

    for qs, qe in blocks(a, bq):
        Rb = R[qs:qe]
        e = key_end(qe, b, causal)
        if need_qk:
            rho = torch.zeros_like(m[qs:qe])
            for ks, ke in blocks(e, bk):
                rho += (tile(qs, qe, ks, ke) * (Rb @ V[ks:ke].T)).sum(dim=-1, keepdim=True)
        for ks, ke in blocks(e, bk):
            f = tile(qs, qe, ks, ke)
            if need_v:
                dV[ks:ke] += f.T @ Rb
            if need_qk:
                dS = (Rb @ V[ks:ke].T).sub_(rho).mul_(f)
                dQ[qs:qe] += dS @ K[ks:ke]
                dK[ks:ke] += dS.T @ Q[qs:qe]
    if need_qk:
        dQ.mul_(beta)
        dK.mul_(beta)
    return dQ, dK, dV


# ----------------------------------------------------------------------------------- the solver
def _count(ops: OpCounter, E: int, d: int, need_qk: bool, need_v: bool, tiled: bool) -> None:
    """Flops for E computed score entries (a b, or the causal `visible_entries`): 2 d per entry for
    each (rows x d) by (d x keys) product, as ops.mm(a, d, b) counts."""
    ops.ew(E, 2 * d), ops.ew(E, 4), ops.ew(E, 2 * d)  # scores, softmax, f V
    if tiled:
        ops.ew(E, 2 * d), ops.ew(E, 2)  # recomputed scores and exp
        if need_qk:
            ops.ew(E, 4 * d), ops.ew(E, 4)  # pass 2: scores, exp and q again for rho
    if need_v:
        ops.ew(E, 2 * d)
    if need_qk:
        ops.ew(E, 2 * d), ops.ew(E, 3), ops.ew(E, 2 * d), ops.ew(E, 2 * d)


def streaming_gradients(
    t: dict,
    alpha: float,
    beta: float,
    r: int,
    adapted,
    bq: int,
    bk: int,
    tiled: bool,
    kernel: str = "fused",
    ops: OpCounter | None = None,
    causal: bool = False,
):
    """Adapter gradients {dA_m, dB_m} (tensors on t's device) and the loss (0-d tensor) of the
    batched instance tensors `t` (`Instance.as_torch`), by the strip or the tiled schedule."""
    ops = ops if ops is not None else OpCounter()
    W = effective_weights(t, alpha, r)
    N, a, d = t["X_q"].shape
    b = t["X_k"].shape[1]
    dtype, device = t["X_q"].dtype, t["X_q"].device
    G = {m: torch.zeros(d, d, dtype=dtype, device=device) for m in adapted}
    need_qk, need_v = "q" in G or "k" in G, "v" in G
    strip = strip_fused if kernel == "fused" else strip_reference
    sq = torch.zeros((), dtype=dtype, device=device)
    with torch.no_grad():
        ops.mm(d, r, d, len(adapted))
        for i in range(N):
            Q, K, V = t["X_q"][i] @ W["q"], t["X_k"][i] @ W["k"], t["X_v"][i] @ W["v"]
            ops.mm(a, d, d), ops.mm(b, d, d, 2)
            _count(ops, visible_entries(a, b, bq, causal), d, need_qk, need_v, tiled)
            if tiled:
                O, m, l = tiled_forward(Q, K, V, beta, bq, bk, causal)
                diff = O - t["Y"][i]
                sq += diff.square().sum()
                if not G:
                    continue
                dQ, dK, dV = tiled_backward(Q, K, V, diff / N, m, l, beta, bq, bk, need_qk, need_v, causal)
            else:
                dQ, dK, dV, _, s = strip(Q, K, V, t["Y"][i], beta, N, bq, need_qk, need_v, causal)
                sq += s
            for m_, X, dM in (("q", t["X_q"][i], dQ), ("k", t["X_k"][i], dK), ("v", t["X_v"][i], dV)):
                if m_ in G:
                    G[m_] += X.T @ dM
                    ops.mm(d, X.shape[0], d)
        grads = adapter_gradients(t, G, alpha, r)
        ops.mm(r, d, d, 2 * len(adapted))
    return grads, sq / (2 * N)


def plan(
    Lq: int,
    Lk: int,
    dtype: torch.dtype,
    device: torch.device,
    block_q=None,
    block_k=None,
    kernel: str = "fused",
) -> tuple[int, int, bool]:
    """(block_q, block_k, tiled) after checking the options (one-line HarnessError otherwise)."""
    bq, bk = _check_block("block_q", block_q), _check_block("block_k", block_k)
    if kernel not in KERNELS:
        raise HarnessError(f"streaming option kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    tiled = bk is not None and bk < Lk
    if tiled:
        bq = bq or max(1, min(Lq, TILE_ENTRIES // bk))
    else:
        bk = Lk
        bq = bq or default_block_q(Lq, Lk, torch.device(device).type)
    return min(bq, max(1, Lq)), bk, tiled


class StreamingSolver(Solver):
    name = "streaming"
    exact = True
    cost = "O(N L^2 d) time, O(L d) extra memory"
    description = "exact, query strips against all keys (one exp per score), or key-tiled with block_k"
    options = {
        "block_q": Option(
            int,
            None,
            min=1,
            auto=True,
            help="query rows per strip (auto: 128, at most 2^21 scores; 1024 / 2^26 on CUDA)",
        ),
        "block_k": Option(
            int, None, min=1, auto=True, help="keys per tile: the two-pass tiled schedule (auto: all keys)"
        ),
        "kernel": Option(
            str, "fused", choices=KERNELS, help="fused (in place) or reference (plain formulas)"
        ),
    }

    def memory_estimate(
        self, inst: Instance, itemsize: int, block_q=None, block_k=None, kernel="fused"
    ) -> int:
        """3 score buffers of the plan (strip: block_q x Lk; tiled: block_q x block_k) + 12 (L x d) + the
        inputs + 128 MiB (the process RSS grew by 185 MiB at L = 8192, d = 16 with the old default tile;
        tests/solvers/test_memory.py holds estimate >= measured for both schedules)."""
        bq, bk, _ = plan(inst.Lq, inst.Lk, torch.float64, torch.device("cpu"), block_q, block_k, kernel)
        work = 3 * bq * bk + 12 * (inst.Lq + inst.Lk) * inst.d
        return work * itemsize + input_bytes(inst, itemsize) + 4 * SLACK_BYTES

    def _solve(self, inst: Instance, dtype, device, block_q=None, block_k=None, kernel="fused") -> Result:
        bq, bk, tiled = plan(inst.Lq, inst.Lk, dtype, device, block_q, block_k, kernel)
        t = inst.as_torch(dtype=dtype, device=device)
        ops = OpCounter()
        grads, loss = streaming_gradients(
            t, inst.alpha, inst.beta, inst.r, inst.adapted, bq, bk, tiled, kernel, ops, inst.causal
        )
        out = to_numpy(grads)
        info = {"block_q": bq, "block_k": bk, "schedule": "tiled" if tiled else "strip", "kernel": kernel}
        return Result(out, float(loss), self.name, ops=int(ops), info=info)

    def forward(
        self, inst: Instance, *, dtype=None, device=None, block_q=None, block_k=None, kernel="fused"
    ) -> np.ndarray:
        from harness.solvers.base import resolve_device, resolve_dtype

        dtype, device = resolve_dtype(dtype), resolve_device(device)
        bq, bk, tiled = plan(inst.Lq, inst.Lk, dtype, device, block_q, block_k, kernel)
        t = inst.as_torch(dtype=dtype, device=device)
        W = effective_weights(t, inst.alpha, inst.r)
        outs = []
        with torch.no_grad():
            for i in range(inst.N):
                Q, K, V = t["X_q"][i] @ W["q"], t["X_k"][i] @ W["k"], t["X_v"][i] @ W["v"]
                if tiled:
                    outs.append(tiled_forward(Q, K, V, inst.beta, bq, bk, inst.causal)[0])
                else:
                    outs.append(
                        strip_fused(Q, K, V, t["Y"][i], inst.beta, inst.N, bq, False, False, inst.causal)[3]
                    )
        return torch.stack(outs).cpu().double().numpy()
