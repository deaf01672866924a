"""`poly`: Alman-Song polynomial method for all LoRA adapter gradients, O(N L k d) time, no L x L matrix.

Kernel (MATH.md §2.3 [D] items 2-3): exp(beta S) ~ A~ = P_g(beta Q K^T), P_g(x) = sum_{t<=g} x^t/t!,
factored EXACTLY as A~ = M(x_q) diag(w) M(x_k)^T with the monomial features

    M(x)_a = x^a,  w_a = 1/a!   for every multi-index a in N^d with |a| <= g   (k = C(d+g, g) columns)

(U1 = M(x_q) diag(sqrt w), U2 = M(x_k) diag(sqrt w) is the symmetric split x^a/sqrt(a!) of the spec)
since sum_{|a|=t} x^a y^a / a! = <x, y>^t / t!; x_q = s_q Q, x_k = s_k K with s_q s_k = beta
(s_q = s_k = sqrt(beta) for beta > 0). Each column is an earlier column times one coordinate
(`monomial_plan`), so building Phi costs O(L k).

Gradients: the plug-in formulas of MATH.md §10 with f replaced by the row-normalised approximate
kernel f~ = diag(A~ 1)^-1 A~ (the same gradient the paper's chained construction, `poly-chained`,
computes; MATH.md §5.7):

    c~ = (f~ V - Y)/N,  r~_j = <c~_j, O~_j>,  p~ = A~ . Z  with  Z = diag(1/D~)(c~ V^T - r~ 1^T)
    G_Wq = beta X_q^T p~ K,  G_Wk = beta X_k^T p~^T Q,  G_Wv = X_v^T f~^T c~

Z = Zq Zk^T has rank d+1 (Zq = [c~/D~, -r~/D~], Zk = [V, 1]). The products p~ K and p~^T Q are
gradients of the surrogate s(Q, K) = sum_jm Z_jm P_{g+1}(beta q_j . k_m) with Z held fixed, because
d/dx P_{g+1}(x) = P_g(x): so we build features of degree g+1 (their first C(d+g, g) columns are the
degree-g features) and back-propagate the (L x k+) feature gradient Zq (Phi+_k^T Zk)^T through the
monomial recurrence by hand (`feature_backward`). Features are kept transposed, (k, B) per block, so the
recurrence uses contiguous slices only. Everything is blocked over rows: memory O(B k + k d).

`dense_poly_gradients` (beside it) is the obviously-correct O(L^2) reference: it forms P_g(beta S)
densely and applies the §10 closed form. The error certificate is `harness.theory.certify`.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from harness import theory
from harness.errors import HarnessError
from harness.instance import Instance
from harness.losses import effective_weights
from harness.solvers.base import Result, Solver

BLOCK_ENTRIES = 1 << 20  # entries of one (N, block, k+) feature block


# ------------------------------------------------------------------------------------------- features
@lru_cache(maxsize=32)
def monomial_plan(d: int, g: int) -> dict:
    """Multi-indices a in N^d with |a| <= g (MATH.md §2.3 [D] item 3), graded, and within each degree
    sorted by the largest coordinate used (maxc). Degree t is built from degree t-1 one coordinate l
    at a time: the degree-(t-1) columns with maxc <= l form a PREFIX of that degree (by the sort), so

        M[t, block l] = M[t-1, prefix_l] * x_l

    gives the raw monomials M_a = x^a with one multiplication per entry and contiguous slices only.
    The kernel weights are w_a = 1/a!, so that sum_{|a|=t} w_a x^a y^a = <x, y>^t / t! and
    M(x) diag(w) M(y)^T = P_g(x y^T). The order is prefix-stable: the plan for g is the first
    C(d+g, g) columns of the plan for g+1. `levels[t-1]` lists (dst_start, dst_end, src_start, l)."""
    exps = [(0,) * d]
    maxc = [0]
    starts = [0, 1]
    levels = []
    for t in range(1, g + 1):
        lo, hi = starts[t - 1], starts[t]
        blocks = []
        for l in range(d):
            src = [c for c in range(lo, hi) if maxc[c] <= l]
            assert src == list(range(lo, lo + len(src)))  # a prefix
            ds = len(exps)
            for c in src:
                e = list(exps[c])
                e[l] += 1
                exps.append(tuple(e))
                maxc.append(l)
            blocks.append((ds, len(exps), lo, l))
        levels.append(blocks)
        starts.append(len(exps))
    assert len(exps) == math.comb(d + g, g)
    e = np.array(exps, np.int64).reshape(len(exps), d)
    w = np.exp(-np.array([sum(math.lgamma(int(v) + 1) for v in row) for row in e]))  # 1/a!, no overflow
    return {"exps": e, "weights": w, "levels": levels, "starts": starts, "d": d, "g": g}


class _TorchPlan:
    """monomial_plan with its weights as a torch (k, 1) column on one device/dtype."""

    _cache: dict = {}

    def __new__(cls, d: int, g: int, dtype, device):
        key = (d, g, dtype, str(device))
        if key not in cls._cache:
            p = monomial_plan(d, g)
            obj = super().__new__(cls)
            obj.k = len(p["exps"])
            obj.levels = p["levels"]
            obj.w = torch.as_tensor(p["weights"], dtype=dtype, device=device)[:, None]
            cls._cache[key] = obj
        return cls._cache[key]


def features(x: torch.Tensor, plan: _TorchPlan) -> torch.Tensor:
    """Transposed raw monomials M(x)^T: (..., B, d) -> (..., k, B), M(x)_a = x^a for |a| <= g, so
    M(x) diag(w) M(y)^T = P_g(x y^T), w_a = 1/a! (MATH.md §2.3 [D] item 3). One flop per entry."""
    xt = x.transpose(-1, -2).unsqueeze(-2)                       # (..., d, 1, B)
    phi = x.new_empty(*x.shape[:-2], plan.k, x.shape[-2])
    phi[..., 0, :] = 1.0
    for blocks in plan.levels:
        for ds, de, ss, l in blocks:
            torch.mul(phi[..., ss:ss + de - ds, :], xt[..., l, :, :], out=phi[..., ds:de, :])
    return phi


def feature_backward(gphi: torch.Tensor, phi: torch.Tensor, x: torch.Tensor, plan: _TorchPlan) -> torch.Tensor:
    """Vector-Jacobian product of `features`: d<gphi, M(x)^T>/dx, shape (..., B, d); reverse mode
    through the recurrence, top degree first. `gphi` (..., k, B) is overwritten. 4 flops per entry."""
    xt = x.transpose(-1, -2).unsqueeze(-2)                       # (..., d, 1, B)
    dx = torch.zeros_like(x.transpose(-1, -2))                   # (..., d, B)
    for blocks in reversed(plan.levels):
        for ds, de, ss, l in blocks:
            gc = gphi[..., ds:de, :]
            src = slice(ss, ss + de - ds)
            dx[..., l, :] += (gc * phi[..., src, :]).sum(-2)
            gphi[..., src, :].addcmul_(gc, xt[..., l, :, :])
    return dx.transpose(-1, -2)


def poly_kernel_factors(Q: torch.Tensor, K: torch.Tensor, beta: float, g: int):
    """U1, U2 with U1 U2^T = P_g(beta Q K^T) exactly (MATH.md §2.3 [D] item 3; §13 item 10)."""
    sq, sk = _split(beta)
    plan = _TorchPlan(Q.shape[-1], g, Q.dtype, Q.device)
    U1 = features(sq * Q, plan) * plan.w.sqrt()
    U2 = features(sk * K, plan) * plan.w.sqrt()
    return U1.transpose(-1, -2), U2.transpose(-1, -2)


def _split(beta: float) -> tuple[float, float]:
    return (math.sqrt(beta), math.sqrt(beta)) if beta > 0 else (float(beta), 1.0)


def taylor_poly(x: torch.Tensor, g: int) -> torch.Tensor:
    """P_g(x) = sum_{t<=g} x^t/t! entrywise (Horner)."""
    out = torch.ones_like(x)
    for t in range(g, 0, -1):
        out = 1.0 + out * x / t
    return out


# ------------------------------------------------------------------------------------------- solver core
def _blocks(n: int, size: int):
    for s in range(0, n, size):
        yield s, min(n, s + size)


def adapter_grads(t: dict, G: dict, alpha: float, r: int) -> dict:
    """LoRA chain rule (MATH.md §1 Jacobians, §10): dA_m = (alpha/r) B_m^T G_Wm, dB_m = (alpha/r) G_Wm A_m^T."""
    sc = alpha / r if r else 0.0
    out = {}
    for m, Gm in G.items():
        out[f"dA_{m}"] = sc * (t[f"B_{m}"].T @ Gm)
        out[f"dB_{m}"] = sc * (Gm @ t[f"A_{m}"].T)
    return out


def poly_gradients(t: dict, alpha: float, beta: float, r: int, adapted: tuple[str, ...], g: int,
                   block: int | None = None) -> tuple[dict, float, dict]:
    """All adapter gradients with the degree-g polynomial kernel, O(N L k d) (see module docstring).
    `t` is Instance.as_torch(...). Returns (grads, approximate loss, info)."""
    W = effective_weights(t, alpha, r)
    Xq, Xk, Xv, Y = t["X_q"], t["X_k"], t["X_v"], t["Y"]
    N, Lq, d = Xq.shape
    Lk = Xk.shape[1]
    dtype, device = Xq.dtype, Xq.device
    Q, K, V = Xq @ W["q"], Xk @ W["k"], Xv @ W["v"]
    sq, sk = _split(beta)
    plan = _TorchPlan(d, g + 1, dtype, device)
    k, kp = theory.feature_rank(d, g), plan.k
    B = block or max(1, BLOCK_ENTRIES // (N * kp))
    ones_k = torch.ones(N, Lk, 1, dtype=dtype, device=device)
    Zk = torch.cat([V, ones_k], dim=-1)                           # (N, Lk, d+1)
    G = {m: torch.zeros(d, d, dtype=dtype, device=device) for m in adapted}
    need_q, need_k, need_v = "q" in G, "k" in G, "v" in G
    # pass 1 (keys): Mk = Phi+_k^T [V, 1]
    Mk = torch.zeros(N, kp, d + 1, dtype=dtype, device=device)
    for s, e in _blocks(Lk, B):
        Mk += features(sk * K[:, s:e], plan) @ Zk[:, s:e]
    Mk *= plan.w                                                   # diag(w) M_k^T [V, 1]
    # pass 2 (queries): output, residual, Zq, query gradient, Nq = Phi+_q^T Zq
    Nq = torch.zeros(N, kp, d + 1, dtype=dtype, device=device)
    loss = 0.0
    min_rowsum = math.inf
    for s, e in _blocks(Lq, B):
        xq = sq * Q[:, s:e]
        phq = features(xq, plan)                                   # (N, k+, b)
        num = phq[:, :k].transpose(-1, -2) @ Mk[:, :k]                            # (N, b, d+1): [A~ V, A~ 1]
        D = num[..., d:]
        min_rowsum = min(min_rowsum, float(D.min()))
        O = num[..., :d] / D
        diff = O - Y[:, s:e]
        loss += float(diff.square().sum()) / (2 * N)
        c = diff / N
        rr = (c * O).sum(-1, keepdim=True)
        Zq = torch.cat([c, -rr], dim=-1) / D                      # (N, b, d+1)
        if need_k or need_v:
            Nq += phq @ Zq
        if need_q:
            dQ = sq * feature_backward(Mk @ Zq.transpose(-1, -2), phq, xq, plan)
            G["q"] += torch.einsum("nja,njb->ab", Xq[:, s:e], dQ)
    Nq *= plan.w                                                   # diag(w) M_q^T Zq
    # pass 3 (keys): key and value gradients
    if need_k or need_v:
        for s, e in _blocks(Lk, B):
            xk = sk * K[:, s:e]
            phk = features(xk, plan)
            if need_k:
                dK = sk * feature_backward(Nq @ Zk[:, s:e].transpose(-1, -2), phk, xk, plan)
                G["k"] += torch.einsum("nja,njb->ab", Xk[:, s:e], dK)
            if need_v:
                dV = phk[:, :k].transpose(-1, -2) @ Nq[:, :k, :d]
                G["v"] += torch.einsum("nja,njb->ab", Xv[:, s:e], dV)
    return adapter_grads(t, G, alpha, r), loss, {"min_rowsum": min_rowsum, "block": B, "k": k, "k_plus": kp}


def dense_poly_gradients(t: dict, alpha: float, beta: float, r: int, adapted: tuple[str, ...],
                         g: int, printed_p2: bool = False) -> tuple[dict, float]:
    """Reference (O(L^2), obviously correct): form A~ = P_g(beta Q K^T) densely, f~ = D~^-1 A~, and
    apply the MATH.md §10 closed form (c, q = c V^T, p = f.q - diag(<f,q>) f, G_W, chain rule).
    `printed_p2`: use the paper's printed p2 = f diag(r) instead (WRONG, MATH.md §11 item 2)."""
    W = effective_weights(t, alpha, r)
    N = t["X_q"].shape[0]
    d = t["W_q"].shape[0]
    G = {m: torch.zeros(d, d, dtype=t["X_q"].dtype, device=t["X_q"].device) for m in adapted}
    loss = 0.0
    for i in range(N):
        Q, K, V = t["X_q"][i] @ W["q"], t["X_k"][i] @ W["k"], t["X_v"][i] @ W["v"]
        A = taylor_poly(beta * (Q @ K.T), g)
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
    return adapter_grads(t, G, alpha, r), loss


# ------------------------------------------------------------------------------------------- solver
def rounding_rel_estimate(g: int, k: int, R: float, dtype: torch.dtype) -> float:
    """P_g(x) near x = -R sums terms up to e^R to produce e^-R: relative rounding of about
    (g + 2 + log2 k) u e^(2R) (a heuristic, not a bound; see `finish_certificate`)."""
    u = float(torch.finfo(dtype).eps)
    return (g + 2 + math.log2(max(k, 1))) * u * math.exp(min(2 * R, 700.0))


def prepare(name: str, inst: Instance, eps, degree, max_rank, dtype: torch.dtype = torch.float64) -> dict:
    """Certificate for `name` (eps defaults to theory.DEFAULT_EPS when neither eps nor degree is
    given); raises the one-line refusal when the rank exceeds max_rank, eps_rel >= 1, or the score
    range is so large that cancellation in P_g makes the dtype's rounding dominate the kernel
    (which would otherwise come back as NaN/inf or noise)."""
    if eps is None and degree is None:
        eps = theory.DEFAULT_EPS
    cert = theory.certify(inst, eps=eps, degree=degree, max_rank=max_rank, exact_R=False)
    msg = theory.refusal_message(name, cert)
    if msg:
        raise HarnessError(msg)
    rel = rounding_rel_estimate(cert["degree"], cert["rank"], cert["R"], dtype)
    if rel >= 0.5:
        raise HarnessError(
            f"{name} refuses: instance is in the {cert['regime']} regime (R={cert['R']:.3g} vs log "
            f"L={cert['log_L']:.3g}): {str(dtype).replace('torch.', '')} cannot evaluate the degree "
            f"g={cert['degree']} Taylor kernel on [-R, R] (relative rounding ~{rel:.2g})")
    return cert


def finish_certificate(cert: dict, dtype: torch.dtype, grads: dict, min_rowsum: float) -> dict:
    """Add the floating-point facts: dtype, unit roundoff u, non-finite gradients, non-positive row
    sums, and a rounding estimate. P_g(x) for x near -R sums terms up to e^R to get e^-R, so its
    computed relative error is about (g + 2 + log2 k) u e^(2R) ("rounding_rel_estimate", a heuristic,
    not a bound); "rounding_error_estimate" propagates it like the truncation error (2 rel * coefficient).
    "valid" is False when the gradients are not finite, a row sum is <= 0 or the relative rounding
    estimate reaches 1/2 (the result is then dominated by rounding, typically float32 or large R)."""
    u = float(torch.finfo(dtype).eps)
    cert = dict(cert)
    cert["dtype"] = str(dtype).replace("torch.", "")
    cert["unit_roundoff"] = u
    cert["min_rowsum"] = min_rowsum
    bad = [k for k, v in grads.items() if not bool(torch.isfinite(v).all())]
    cert["nonfinite"] = bad
    g, k, R = cert["degree"], cert["rank"], cert["R"]
    rel = rounding_rel_estimate(g, k, R, dtype)
    cert["rounding_rel_estimate"] = rel
    cert["rounding_error_estimate"] = 2 * rel * cert["coefficient"]
    cert["valid"] = bool(not bad and min_rowsum > 0 and rel < 0.5)
    warnings = []
    if bad or not min_rowsum > 0 or rel >= 0.5:
        warnings.append(f"{cert['dtype']} rounding breaks the kernel (relative rounding ~ {rel:.2g}, "
                        f"min row sum {min_rowsum:.3g}, non-finite: {', '.join(bad) or 'none'})")
    elif rel > cert["eps_rel"]:
        warnings.append(f"{cert['dtype']} rounding in the kernel (~{rel:.2g} relative) exceeds its truncation "
                        f"error ({cert['eps_rel']:.2g}): error_bound holds in exact arithmetic only")
    if cert.get("eps") is not None and cert["eps"] < 1e3 * u * max(cert["coefficient"], 1e-300):
        warnings.append(f"target eps={cert['eps']:.3g} is near the {cert['dtype']} rounding level; "
                        "the certificate covers exact arithmetic only")
    if warnings:
        cert["warning"] = "; ".join(warnings)
    return cert


class PolySolver(Solver):
    name = "poly"
    exact = False
    cost = "O(N L k d), k = C(d+g, g); almost linear when R = o(log L)"
    description = "Alman-Song polynomial method (Taylor, monomial features), certified max-norm error"
    options = {"eps": None, "degree": None, "max_rank": theory.DEFAULT_MAX_RANK}

    def _gradients(self, inst: Instance, t: dict, g: int):
        return poly_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g)

    def _solve(self, inst: Instance, dtype, device, eps=None, degree=None, max_rank=None) -> Result:
        cert = prepare(self.name, inst, eps, degree, max_rank, dtype)
        t = inst.as_torch(dtype=dtype, device=device)
        with torch.no_grad():
            grads, loss, info = self._gradients(inst, t, cert["degree"])
        cert = finish_certificate(cert, dtype, grads, info["min_rowsum"])
        if cert["nonfinite"]:
            raise HarnessError(f"{self.name} failed: non-finite {', '.join(cert['nonfinite'])} at degree "
                               f"g={cert['degree']}, R={cert['R']:.3g} ({cert.get('warning', '')})")
        cert["ops"] = self._ops(inst, cert)
        out = {k: v.cpu().double().numpy() for k, v in grads.items()}
        return Result(out, loss, self.name, ops=cert["ops"], certificate=cert, info=info)

    def _ops(self, inst: Instance, cert: dict) -> int:
        return cert["ops"]

    def forward(self, inst: Instance, *, dtype=None, device=None, eps=None, degree=None,
                max_rank=None) -> np.ndarray:
        from harness.solvers.base import resolve_device, resolve_dtype

        cert = prepare(self.name, inst, eps, degree, max_rank, resolve_dtype(dtype))
        t = inst.as_torch(dtype=resolve_dtype(dtype), device=resolve_device(device))
        W = effective_weights(t, inst.alpha, inst.r)
        with torch.no_grad():
            U1, U2 = poly_kernel_factors(t["X_q"] @ W["q"], t["X_k"] @ W["k"], inst.beta, cert["degree"])
            V = t["X_v"] @ W["v"]
            out = (U1 @ (U2.transpose(-1, -2) @ V)) / (U1 @ U2.sum(-2, keepdim=True).transpose(-1, -2))
        return out.cpu().double().numpy()
