"""The row-independent inputs of `poly`'s a posteriori certificate (docs/theory.md §4.3): Higham's
gamma_n, the absolute-kernel bound P_g(h), the radius on which an odd-degree Taylor kernel stays
positive, and `BoundContext` (norms of the solver's inputs, input-perturbation allowances, rounding
constants) for one instance, dtype and degree. The bound itself: harness.solvers.poly.bound."""

from __future__ import annotations

import math

import numpy as np
import torch

from harness.theory.taylor import feature_rank

SAFETY = 1.0 + 1e-9
F64 = np.float64


def gamma(n: float, u: float) -> float:
    """gamma_n = n u / (1 - n u) (Higham 2002, Lemma 3.1); inf when n u >= 1/2."""
    nu = float(n) * u
    return math.inf if nu >= 0.5 else nu / (1.0 - nu)


def taylor_at(h: np.ndarray, g: int) -> np.ndarray:
    """P_g(h) = sum_{t<=g} h^t/t! for h >= 0 (Horner, float64), rounded up by a relative 4(g+1) u64."""
    out = np.ones_like(h)
    for t in range(g, 0, -1):
        out = 1.0 + out * h / t
    return out * (1.0 + 4 * (g + 1) * 2.0**-53)


def value_error_numerator(c, Oc, sT, tV, N: int):
    """n_j = -sT_j c_j + (tV_j - sT_j O'_j)/N, so that h_j = n_j / D_j^2 is the row weight of the
    signed first-order value error F_v (module harness.solvers.poly.bound). One definition for the
    kernels (torch) and the bound and pilot (numpy): the bound's rounding allowance for h assumes this
    order of operations. Arguments broadcast as given (sT, tV as (..., 1)-shaped against c, Oc)."""
    return -sT * c + (tV - sT * Oc) / N


def path_length(L: int, block: int) -> int:
    """The longest chain of additions a term of a blocked sum over L rows meets: <= block - 1 inside
    its block's GEMM (any summation order or tree), then one addition per block into the
    accumulator (the block's product is formed first, then added). The certificate's gamma_n for
    the moments kernel uses this instead of L (rigorous, Higham 2002 §3.1)."""
    b = max(1, min(int(block), int(L)))
    return min(int(L), b + -(-int(L) // b))


def _max1(a: np.ndarray) -> np.ndarray:
    """a.max(1) for (N, L, d): the same values, on a transposed copy (numpy's strided reduction over
    L with a short last axis is ~7x slower)."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1)).max(-1) if a.ndim == 3 else a.max(1)


def _min1(a: np.ndarray) -> np.ndarray:
    """a.min(1) for (N, L, d), as `_max1`."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1)).min(-1) if a.ndim == 3 else a.min(1)


def _sumd(a: np.ndarray) -> np.ndarray:
    """a.sum(-1) over the short last axis, as a matrix-vector product (the same sum in another
    order; the bound's own float64 evaluation is covered by SAFETY)."""
    return a @ np.ones(a.shape[-1])


def _sum1(a: np.ndarray) -> np.ndarray:
    """a.sum(1) for (N, L, d) -> (N, d), as a product with ones."""
    return np.matmul(np.ones((1, a.shape[1])), a)[:, 0, :]


def _tdot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """sum_n A_n^T B_n: (N, L, a), (N, L, b) -> (a, b) (a BLAS matmul, not an einsum loop)."""
    return np.matmul(A.transpose(0, 2, 1), B).sum(0)


def _wsum(w: np.ndarray, B: np.ndarray) -> np.ndarray:
    """sum_j w_nj B_njb: (N, L), (N, L, b) -> (N, b)."""
    return np.matmul(w[:, None, :], B)[:, 0, :]


def _tdotn(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A_n^T B_n per data point: (N, L, a), (N, L, b) -> (N, a, b)."""
    return np.matmul(A.transpose(0, 2, 1), B)


_RADIUS: dict = {}


def positive_radius(g: int) -> float:
    """For odd g, a float r with P_g(-r) > 0 exactly (rational arithmetic) and P_g(-r') <= 0 one
    bisection step beyond: P_g is increasing (P_g' = P_(g-1) > 0), so P_g > 0 on [-r, inf). inf for
    even g (P_g > 0 everywhere)."""
    if g % 2 == 0:
        return math.inf
    if g not in _RADIUS:
        from fractions import Fraction

        def positive(r: float) -> bool:
            x, term, tot = -Fraction(r), Fraction(1), Fraction(1)
            for t in range(1, g + 1):
                term = term * x / t
                tot += term
            return tot > 0

        lo, hi = 0.0, 1.0
        while positive(hi):
            lo, hi = hi, 2 * hi
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if positive(mid) else (lo, mid)
        _RADIUS[g] = lo
    return _RADIUS[g]


def _f64(x) -> np.ndarray:
    """float64 numpy copy of a tensor (exact: float32 and float64 values are float64 values)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, np.float64)


def _conv_u(inst, dtype: torch.dtype) -> float:
    """u when the instance's arrays are wider than the solver's dtype (their conversion rounds)."""
    item = torch.finfo(dtype).bits // 8
    wide = any(np.asarray(a).dtype.itemsize > item for a in inst.arrays.values())
    return float(torch.finfo(dtype).eps) / 2 if wide else 0.0


class BoundContext:
    """Static (row-independent) parts of the bound for one instance, one dtype, one degree g:
    norms of the program's inputs, the input-perturbation allowances and the rounding constants."""

    def __init__(self, inst, t: dict, prep: dict, Zk: torch.Tensor, g: int, dtype: torch.dtype):
        self.inst, self.dtype = inst, dtype
        self.u = float(torch.finfo(dtype).eps) / 2
        self.conv = _conv_u(inst, dtype)
        self.eta_min = float(torch.finfo(dtype).tiny) * float(torch.finfo(dtype).eps)  # subnormal spacing
        d = inst.d
        self.N, self.Lq, self.Lk, self.d = inst.N, inst.Lq, inst.Lk, d
        self.causal = bool(getattr(inst, "causal", False))
        u = self.u
        # program values (exact in float64)
        self.Xq, self.Xk, self.Xv = (_f64(t[n]) for n in ("X_q", "X_k", "X_v"))
        self.q, self.Kc, self.Vc, self.Yc = (_f64(prep[n]) for n in ("q", "Kc", "Vc", "Yc"))
        self.Qh = _f64(prep["Q"])
        self.bt = prep["bt"]
        self.Zk = _f64(Zk)
        # true instance values (float64) and the absolute effective weights
        a = {n: np.asarray(inst.x3(n), np.float64) for n in ("X_q", "X_k", "X_v", "Y")}
        s = abs(inst.alpha) / inst.r if inst.r else 0.0
        Wabs = {}
        for m in ("q", "k", "v"):
            W = np.abs(np.asarray(inst.arrays[f"W_{m}"], np.float64))
            if f"A_{m}" in inst.arrays:
                W = W + s * (
                    np.abs(np.asarray(inst.arrays[f"B_{m}"], np.float64))
                    @ np.abs(np.asarray(inst.arrays[f"A_{m}"], np.float64))
                )
            Wabs[m] = W
        r = inst.r
        conv = self.conv
        kap = (gamma(d + r + 4, u) + 3 * conv) * 1.01
        EQ = kap * (np.abs(a["X_q"]) @ Wabs["q"])
        EK = kap * (np.abs(a["X_k"]) @ Wabs["k"])
        EV = kap * (np.abs(a["X_v"]) @ Wabs["v"])
        beta = abs(inst.beta)
        Kc, Vc = self.Kc, self.Vc
        self.eK = _max1(EK + 1.01 * u * np.abs(Kc))  # (N, d): max_m |K'^ - K'|
        self.ev = _max1(EV + 1.01 * u * np.abs(Vc))  # (N, d)
        self.eY = conv * np.abs(a["Y"]) + 1.01 * u * np.abs(self.Yc)  # (N, Lq, d)
        self.Eq = 1.01 * (u * np.abs(self.q) + beta * EQ + u * beta * (np.abs(self.Qh) + EQ))
        self.Kh = _max1(np.abs(Kc))  # (N, d)
        Kn = np.linalg.norm(Kc, axis=-1).max(1)  # (N,)
        qa = np.abs(self.q)
        self.h = (qa @ self.Kh[:, :, None])[..., 0] * (1 + 4 * d * 2.0**-53)  # (N, Lq)
        self.R = np.minimum(np.linalg.norm(self.q, axis=-1) * Kn[:, None] * (1 + 4 * d * 2.0**-53), self.h)
        self.xi = (
            (self.Eq @ self.Kh[:, :, None])[..., 0] + ((qa + self.Eq) @ self.eK[:, :, None])[..., 0]
        ) * SAFETY
        self.SVabs = _sum1(np.abs(Vc))  # (N, d)
        self.hv = _max1(np.abs(Vc))
        self.vmax, self.vmin = _max1(Vc), _min1(Vc)
        self.w = self.vmax - self.vmin
        self.TK = _tdotn(np.abs(self.Zk), np.abs(Kc))  # (N, d+1, d)
        self.XkZk = _tdotn(np.abs(self.Xk), np.abs(self.Zk))  # (N, d, d+1)
        self.hrXk = 0.5 * (_max1(self.Xk) - _min1(self.Xk))  # (N, d)
        self.hrXv = 0.5 * (_max1(self.Xv) - _min1(self.Xv))
        self.mXk = _max1(np.abs(self.Xk))
        self.mXv = _max1(np.abs(self.Xv))
        self.SXv = _sum1(np.abs(self.Xv))
        # true |X| (for the input-perturbation terms)
        self.Xq_true, self.Xk_true, self.Xv_true = np.abs(a["X_q"]), np.abs(a["X_k"]), np.abs(a["X_v"])
        # magnitudes for the underflow allowance
        mx = max(1.0, float(np.abs(_f64(prep["xq"])).max()), float(np.abs(_f64(prep["xk"])).max()))
        self.mx = mx
        big = lambda *xs: max([1.0] + [float(np.abs(x).max()) for x in xs if x.size])  # noqa: E731
        self.mX = big(self.Xq, self.Xk, self.Xv)
        self.mZK = big(self.Zk) * big(self.Kc, self.q)
        self.mAB = big(*[np.asarray(v, np.float64) for n, v in inst.arrays.items() if n[:2] in ("A_", "B_")])
        self._Hk: dict = {}
        self.at(g)

    def prefix_abs_values(self, n: np.ndarray) -> np.ndarray:
        """(N, s, d): sum of |V'_m| over the first n_j keys of each row (n (N, s), 1 <= n_j <= Lk)."""
        if not hasattr(self, "_SVpre"):
            self._SVpre = np.cumsum(np.abs(self.Vc), axis=1) * (1 + self.Lk * 2.0**-52)
        idx = np.clip(n.astype(np.int64) - 1, 0, self.Vc.shape[1] - 1)
        return np.take_along_axis(self._SVpre, idx[..., None], 1)

    def prefix_key_products(self, W: np.ndarray, n: np.ndarray, A=None, B=None) -> np.ndarray:
        """(N, s, q): row j's W_j (N, s, p) times sum_{m < n_j} |A_m|^T |B_m| over its first n_j keys
        (default A = Zk, B = K': the prefix version of self.TK), one product per distinct n_j."""
        A = self.Zk if A is None else A
        B = self.Kc if B is None else B
        N = W.shape[0]
        out = np.zeros((N, W.shape[1], B.shape[-1]))
        ni = np.clip(n.astype(np.int64), 1, B.shape[1])
        for i in range(N):
            order = np.argsort(ni[i], kind="stable")
            ends, first = np.unique(ni[i][order], return_index=True)
            groups = np.split(order, first[1:])
            acc = np.zeros((A.shape[-1], B.shape[-1]))
            a = 0
            for b, sel in zip(ends, groups):
                acc = acc + np.abs(A[i, a:b]).T @ np.abs(B[i, a:b])
                out[i, sel] = W[i, sel] @ acc
                a = b
        return out * (1 + (B.shape[1] + A.shape[-1]) * 2.0**-52)

    def at(self, g: int) -> BoundContext:
        """Set the degree: rank constants and the absolute-kernel bound Hk_j = P_g(h_j)."""
        self.g = int(g)
        if self.causal:
            # the causal chunk pass (harness.solvers.poly.causal) sums each row's prefix through chunk
            # states: per sum an exclusive cumsum over <= Lq/16 + 1 chunks (chunks are >= 16 long),
            # a carry per group, the subtraction of the inclusive cumsum and the inter + intra
            # addition; its dense masked tiles take 3g + d (Horner) and 2g + 2 + d (powers) roundings,
            # within the feature path's counts below since k >= d + g. So the gamma counts gain
            # 2 (Lq/16 + 1) + 8, and every abs-value sum over a row's keys is bounded with the
            # global-key maxima (sound, only looser)
            extra = 2 * (self.inst.Lq // 16 + 1) + 8
            self.Lq, self.Lk = self.inst.Lq + extra, self.inst.Lk + extra
        self.k = feature_rank(self.d, g)
        self.kp = feature_rank(self.d, g + 1)
        self.kh = self.kp - self.k
        if g not in self._Hk:
            self._Hk[g] = taylor_at(self.h, g)  # >= P_g(|x_q|.|x_k|) for all m
        self.Hk = self._Hk[g]
        return self

    def rows_of(self, idx: np.ndarray | None = None) -> dict:
        """Row-indexed static quantities, all rows or rows `idx` (N, s) of each data point."""
        names = ("Xq", "q", "Yc", "eY", "Eq", "h", "R", "xi", "Hk")
        out = {}
        for n in names:
            v = getattr(self, n)
            if idx is None:
                out[n] = v
            elif v.ndim == 3:
                out[n] = np.take_along_axis(v, idx[..., None], 1)
            else:
                out[n] = np.take_along_axis(v, idx, 1)
        out["Xq_true"] = self.Xq_true if idx is None else np.take_along_axis(self.Xq_true, idx[..., None], 1)
        return out
