"""`poly-chained`: the LoRA paper's own low-rank chain (Hu et al. (arXiv:2406.03136) Lemmas 3.3-3.7,
Thm 3.1, and its K view; V through the low-rank f~; docs/theory.md §4.5), with the CORRECTED conventions of
docs/theory.md §7.1-§7.2.

Per data point, with the degree-g monomial features of `harness.solvers.poly` (M(x)_a = x^a,
w_a = 1/a!) on the solver's preprocessed inputs (`poly.fused.preprocess`: centred keys K' and values
V', Y', the balanced split x_q x_k^T = beta Q K'^T; the exact gradient is unchanged, docs/theory.md §4.3):

    Lemma 3.3  f~ = U1 V1^T,    U1 = diag(1/D~) M(x_q),  V1 = M(x_k) diag(w),  D~ = M(x_q) (V1^T 1)
                                                                       (k1 = C(d+g, g))
    Lemma 3.4  c~ = (U1 (V1^T V) - Y)/N
    Lemma 3.5  q~ = c~ V^T = U2 V2^T,  U2 = [U1/N, -Y/N],  V2 = [V (V^T V1), V]          (k2 = k1 + d)
    Lemma 3.6  p~1 = f~ . q~ = U3 V3^T,  U3 = U1 (row-Kron) U2,  V3 = V1 (row-Kron) V2     (k3 = k1 k2)
    Lemma 3.7  r~_j = (U1)_j (V1^T V2) (U2)_j^T,  p~2 = diag(r~) f~:  U4 = diag(r~) U1, V4 = V1   (k4 = k1)
    Thm 3.1    G_Wq = beta X_q^T (U3 (V3^T K) - U4 (V4^T K))
    K view     G_Wk = beta X_k^T (V3 (U3^T Q) - V4 (U4^T Q))          (p~^T; the K view, variable W_K^T)
    V view     G_Wv = X_v^T V1 (U1^T c~)                                (f~^T c~, f~ never formed)

then dA = (alpha/r) B^T G, dB = (alpha/r) G A^T. `printed_p2=True` builds the orientation the paper
prints, p~2 = f~ diag(r~) (U4 = U1, V4 = diag(r~) V1; only defined when Lq = Lk), which is WRONG
(docs/theory.md §7.2) and kept so a test suite can show it. Cost O(L k3 d) = O(L k1^2 d): the chain is
the paper's construction, far slower than `poly` (same polynomial, same gradients up to rounding).
U3 and V3 are built block by block (memory O(B k3 + k3 d)); no L x L matrix is formed.

Its certificate is `poly`'s truncation and input parts (the same exact-arithmetic gradient) with its
own rounding part: the chain recomputed on absolute values. Centring the values keeps the
cancellations p~1 - p~2 and O~ - Y of size |c| range(V) instead of |c| |V| (the bound-0 hole of a
constant V column).

`harness.solvers.poly.naive.dense_chained_reference` forms f~, q~, p~1, p~2 densely from the same definitions.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from harness import theory
from harness.errors import HarnessError
from harness.instance import Instance
from harness.lora import adapter_gradients
from harness.solvers._common import blocks
from harness.solvers.base import Result
from harness.solvers.poly.features import TorchPlan, features
from harness.solvers.poly.fused import poly_gradients, preprocess
from harness.solvers.poly.solver import PolySolver

BLOCK_ENTRIES = 1 << 21
MAX_K3 = 1 << 22


def row_kron(U1: torch.Tensor, U2: torch.Tensor) -> torch.Tensor:
    """Row-wise Kronecker product (AS24 (arXiv:2402.04497) Fact A.2; docs/theory.md §1):
    (U1 (/) U2)_{i,(l2-1)k1+l1} = U1_{i,l1} U2_{i,l2},
    so (U1 V1^T) . (U2 V2^T) = (U1 (/) U2)(V1 (/) V2)^T."""
    n, k1 = U1.shape[-2], U1.shape[-1]
    return (U2[..., :, :, None] * U1[..., :, None, :]).reshape(*U1.shape[:-2], n, U2.shape[-1] * k1)


def chained_factors(
    xq, xk, Vc, Yc, g: int, N: int, printed_p2: bool = False, absolute: bool = False, D=None
) -> dict:
    """U1, V1, U2, V2, U4, V4 and r~ for one data point (Lemmas 3.3-3.7, corrected unless printed_p2),
    on the solver's preprocessed inputs (`poly.preprocess`: centred keys and values, balanced
    split x_q x_k^T = beta Q K'^T). With `absolute`, the same construction on absolute values
    (every subtraction an addition) and the computed row sums `D`: the shadow that bounds the
    rounding (Higham 2002, §3.1)."""
    plan = TorchPlan(xq.shape[-1], g, xq.dtype, xq.device)
    Mq = features(xq, plan).T  # (Lq, k1)
    V1 = features(xk, plan).T * plan.w.T  # (Lk, k1)
    if absolute:
        Mq, V1, Vc, Yc = Mq.abs(), V1.abs(), Vc.abs(), Yc.abs()
    if D is None:
        D = Mq @ V1.sum(0)  # Lemma 3.3: row sums of A~
    U1 = Mq / D[:, None]
    sgn = 1.0 if absolute else -1.0
    c = (U1 @ (V1.T @ Vc) + sgn * Yc) / N  # Lemma 3.4 (centred values)
    U2 = torch.cat([U1 / N, sgn * Yc / N], dim=1)  # Lemma 3.5
    V2 = torch.cat([Vc @ (Vc.T @ V1), Vc], dim=1)
    rr = ((U1 @ (V1.T @ V2)) * U2).sum(1)  # Lemma 3.7 (I)
    if printed_p2:
        if xq.shape[0] != xk.shape[0]:
            raise HarnessError("the printed p2 = f diag(r) is only defined when Lq == Lk")
        U4, V4 = U1, rr[:, None] * V1  # as printed (WRONG, docs/theory.md §7.2)
    else:
        U4, V4 = rr[:, None] * U1, V1  # corrected: p2 = diag(r) f
    return {
        "U1": U1,
        "V1": V1,
        "U2": U2,
        "V2": V2,
        "U4": U4,
        "V4": V4,
        "r": rr,
        "c": c,
        "D": D,
        "min_rowsum": float(D.min()),
    }


def _chain_products(F: dict, Kc, q, B: int, want: tuple, wq=None):
    """p~ K' and p~^T q^ from the factors (U3 = U1 (/) U2, V3 = V1 (/) V2 built block by block),
    with optional per-query-row weights `wq` (the shadow's rounding weights)."""
    U1, V1, U2, V2, U4, V4 = (F[k] for k in ("U1", "V1", "U2", "V2", "U4", "V4"))
    sub = -1.0 if wq is None else 1.0
    out = {}
    if "q" in want:
        V3K = sum(row_kron(V1[s:e], V2[s:e]).T @ Kc[s:e] for s, e in blocks(Kc.shape[0], B))
        P1K = torch.cat([row_kron(U1[s:e], U2[s:e]) @ V3K for s, e in blocks(U1.shape[0], B)])
        pk = P1K + sub * (U4 @ (V4.T @ Kc))
        out["q"] = pk if wq is None else wq[:, None] * pk
    if "k" in want:
        qw = q if wq is None else wq[:, None] * q
        U3Q = sum(row_kron(U1[s:e], U2[s:e]).T @ qw[s:e] for s, e in blocks(U1.shape[0], B))
        P1Q = torch.cat([row_kron(V1[s:e], V2[s:e]) @ U3Q for s, e in blocks(V1.shape[0], B)])
        out["k"] = P1Q + sub * (V4 @ (U4.T @ qw))
    return out


def chained_gradients(
    t: dict,
    alpha: float,
    beta: float,
    r: int,
    adapted: tuple[str, ...],
    g: int,
    printed_p2: bool = False,
    block: int | None = None,
    shadow_weights=None,
) -> tuple[dict, float, dict]:
    """All adapter gradients by the paper's chain (module docstring); `t` = Instance.as_torch(...).
    `shadow_weights(i, D) -> (N, Lq) tensor` (optional): also compute the rounding shadow, the same
    chain on absolute values with per-query-row weights, returned as info["shadow"][m] (d, d)."""
    P = preprocess(t, alpha, beta, r, centre=not printed_p2)
    N, _, d = t["X_q"].shape
    dtype, device = t["X_q"].dtype, t["X_q"].device
    G = {m: torch.zeros(d, d, dtype=dtype, device=device) for m in adapted}
    Sh = {m: torch.zeros(d, d, dtype=torch.float64, device=device) for m in adapted}
    loss, min_rowsum = 0.0, math.inf
    k1 = theory.feature_rank(d, g)
    k3 = k1 * (k1 + d)
    if k3 > MAX_K3 and ("q" in G or "k" in G):
        raise HarnessError(
            f"poly-chained refuses: rank k3 = k1 (k1 + d) = {k3} > {MAX_K3} "
            f"(k1 = C(d+g, g) = {k1}, g={g}, d={d}); use the solver 'poly'"
        )
    B = block or max(1, BLOCK_ENTRIES // k3)
    want = tuple(m for m in ("q", "k") if m in G)
    for i in range(N):
        Xq, Xk, Xv = t["X_q"][i], t["X_k"][i], t["X_v"][i]
        xq, xk, Vc, Yc = P["xq"][i], P["xk"][i], P["Vc"][i], P["Yc"][i]
        Kc, q = P["Kc"][i], P["q"][i]
        F = chained_factors(xq, xk, Vc, Yc, g, N, printed_p2)
        U1, V1, c = F["U1"], F["V1"], F["c"]
        min_rowsum = min(min_rowsum, F["min_rowsum"])
        loss += float((N * c).square().sum()) / (2 * N)
        if "v" in G:
            G["v"] += Xv.T @ (V1 @ (U1.T @ c))
        prods = _chain_products(F, Kc, q, B, want)
        if "q" in G:
            G["q"] += P["bt"] * (Xq.T @ prods["q"])
        if "k" in G:
            G["k"] += Xk.T @ prods["k"]
        if shadow_weights is not None:
            f64 = torch.float64
            w = shadow_weights(i, F["D"]).to(f64)
            A = chained_factors(
                xq.to(f64),
                xk.to(f64),
                Vc.to(f64),
                Yc.to(f64),
                g,
                N,
                printed_p2,
                absolute=True,
                D=F["D"].to(f64),
            )
            sp = _chain_products(A, Kc.abs().to(f64), q.abs().to(f64), B, want, wq=w)
            if "v" in Sh:
                Sh["v"] += Xv.abs().to(f64).T @ (A["V1"] @ (A["U1"].T @ (w[:, None] * A["c"])))
            if "q" in Sh:
                Sh["q"] += abs(P["bt"]) * (Xq.abs().to(f64).T @ sp["q"])
            if "k" in Sh:
                Sh["k"] += Xk.abs().to(f64).T @ sp["k"]
    info = {
        "min_rowsum": min_rowsum,
        "k1": k1,
        "k2": k1 + d,
        "k3": k3,
        "k4": k1,
        "block": B,
        "G": G,
        "prep": P,
    }
    if shadow_weights is not None:
        info["shadow"] = Sh
    return adapter_gradients(t, G, alpha, r), loss, info


class PolyChainedSolver(PolySolver):
    """Same options, degree choice, truncation certificate and refusals as `poly` (the same
    polynomial and the same exact-arithmetic gradient); its own rounding analysis: the chain
    recomputed on absolute values (the cancellation of p~1 - p~2 and of O~ - Y is in that shadow,
    and small because values are centred), with per-row weights gamma_n + (1+phi_j)^4 - 1 for the
    computed row sums (docs/theory.md §4.5)."""

    name = "poly-chained"
    cost = "O(N L k1^2 d), k1 = C(d+g, g) (the paper's chain; k3 = k1 (k1 + d))"
    description = "LoRA paper Lemmas 3.3-3.7 / Thm 3.1 chain (corrected q, p2), a posteriori certified"

    def _gradients(self, inst: Instance, t: dict, g: int, prep: dict | None = None):
        from harness.solvers.poly import bound_context as poly_ctx

        dtype = t["X_q"].dtype
        u = float(torch.finfo(dtype).eps) / 2
        d, k1 = inst.d, theory.feature_rank(inst.d, g)
        n_ch = 2 * (inst.Lq + inst.Lk) + k1 * (k1 + d) + 4 * g + 40 + inst.N
        gam = poly_ctx.gamma(n_ch, u)
        h = None

        def weights(i, D):
            nonlocal h
            if h is None:
                # row sums of the absolute kernel <= Lk P_g(h_j) (Hoelder), as in poly_bound
                Kc = poly_ctx._f64(self._prep["Kc"])
                qa = np.abs(poly_ctx._f64(self._prep["q"]))
                hh = (qa * np.abs(Kc).max(1, keepdims=True)).sum(-1) * (1 + 1e-12)
                h = poly_ctx.taylor_at(hh, g)
            e_D = poly_ctx.gamma(inst.Lk + k1 + 2 * g + 4, u) * inst.Lk * h[i]
            D64 = poly_ctx._f64(D)
            with np.errstate(divide="ignore", invalid="ignore"):
                phi = np.where(D64 - e_D > 0, e_D / np.maximum(D64 - e_D, 1e-300) + u, np.inf)
            return torch.from_numpy(gam + ((1 + phi) ** 4 - 1))

        self._prep = preprocess(t, inst.alpha, inst.beta, inst.r) if prep is None else prep
        grads, loss, info = chained_gradients(
            t, inst.alpha, inst.beta, inst.r, inst.adapted, g, shadow_weights=weights
        )
        _, _, pinfo = poly_gradients(
            t, inst.alpha, inst.beta, inst.r, inst.adapted, g, grads=False, prep=self._prep
        )
        pinfo["G"] = info["G"]
        pinfo["shadow"] = info["shadow"]
        pinfo["absXdG"] = None
        pinfo.update({k: info[k] for k in ("k1", "k2", "k3", "k4", "block")})
        pinfo["min_rowsum"] = info["min_rowsum"]
        return grads, loss, pinfo

    def _rounding(self, inst, run, g, grads, info, b):
        from harness.solvers.poly import bound as poly_bound
        from harness.solvers.poly import bound_context as poly_ctx

        E = dict(b["E"])
        E["rounding"] = {m: poly_ctx._f64(v) for m, v in info["shadow"].items()}
        return poly_bound.assemble(
            run.ctx.at(g),
            E,
            info["G"],
            b["reasons"],
            b["scales"],
            {k: b[k] for k in ("min_rowsum", "R_rows_max", "Hk_max") if k in b},
        )

    def _solve(self, inst: Instance, dtype, device, eps=None, degree=None, max_rank=None) -> Result:
        from harness.solvers.poly.certificate import solve_certified

        if inst.causal:
            raise HarnessError(
                f"{self.name} refuses: its rounding analysis (the chain's absolute shadow) covers the "
                "unmasked kernel only; causal instances are certified by the solver 'poly'"
            )
        return solve_certified(
            self,
            inst,
            dtype,
            device,
            eps,
            degree,
            max_rank,
            gradients=self._gradients,
            rounding=self._rounding,
        )

    def _ops(self, inst: Instance, cert: dict) -> int:
        return chained_op_count(inst, cert["degree"])

    def forward(self, inst: Instance, **kw) -> np.ndarray:
        raise HarnessError("solver 'poly-chained' does not compute the forward pass; use 'poly'")


def chained_op_count(inst: Instance, g: int) -> int:
    """Flops of `chained_gradients` (OpCounter convention): O(N L k1 k2 d) for the p1 products."""
    from harness.measure.opcount import OpCounter

    N, Lq, Lk, d, r = inst.N, inst.Lq, inst.Lk, inst.d, inst.r
    k1 = theory.feature_rank(d, g)
    k2, k3 = k1 + d, k1 * (k1 + d)
    ops = OpCounter()
    ops.mm(d, r, d, len(inst.adapted))
    ops.mm(Lq, d, d, N), ops.mm(Lk, d, d, 2 * N)
    ops.ew(N * (Lq + Lk) * k1, 2), ops.mm(Lq, k1, 1, N), ops.ew(N * Lq * k1, 1)
    ops.mm(k1, Lk, d, N), ops.mm(Lq, k1, d, N), ops.mm(d, Lk, k1, N), ops.mm(Lk, d, k1, N)
    ops.mm(k1, Lk, k2, N), ops.mm(Lq, k1, k2, N), ops.ew(N * Lq * k2, 2)
    for m in inst.adapted:
        if m == "v":
            ops.mm(k1, Lq, d, N), ops.mm(Lk, k1, d, N), ops.mm(d, Lk, d, N)
        else:
            ops.ew(N * (Lq + Lk) * k3, 1), ops.mm(k3, Lk if m == "q" else Lq, d, N)
            ops.mm(Lq if m == "q" else Lk, k3, d, N), ops.mm(k1, Lk, d, N), ops.mm(Lq, k1, d, N)
            ops.mm(d, Lq, d, N)
    ops.mm(r, d, d, 2 * len(inst.adapted))
    return int(ops)
