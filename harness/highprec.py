"""High-precision reference gradients, for checking certificates whose errors are near float64
rounding (docs/theory.md §3.1-§3.2: the closed form f, c, p = f . (cV^T - r 1^T), G_W, chain rule).

Two references of the same closed form:

* `reference(inst, "longdouble")`: numpy's extended precision (80-bit on x86: unit roundoff
  u = 2^-64), dense O(N L^2 d), with a rigorous-style bound on its own error (`error_bound`):
  every quantity carries a first-order Higham bound gamma_n |.| computed on absolute values
  (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §3.1, Lemma 3.1, eq. (3.4)),
  assuming `np.exp` on long doubles is accurate to 2 ulp (checked against mpmath in the tests).
* `reference(inst, "mpmath")`: mpmath at `prec` bits (default 160), exact to ~2^-150 relative for
  all practical purposes; pure Python, for tiny instances only (L <= 32).

Causal instances (`inst.causal`): the softmax of row j runs over keys m <= j only (top-left).

Both return gradients in float64 numpy arrays *and* the long-double/mpmath values' rounding to
float64 is part of the returned `error_bound` (one float64 ulp of each entry).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.errors import HarnessError
from harness.instance import Instance

_LD = np.longdouble


@dataclass
class Reference:
    grads: dict  # name -> float64 array (the high-precision value rounded once)
    error_bound: float  # max over entries of |grads - exact|, rigorous up to the assumptions above
    kind: str
    grads_hp: dict = None  # name -> np.longdouble array (before rounding to float64)
    error_bound_hp: float = 0.0  # max over entries of |grads_hp - exact|

    def max_abs_error(self, grads: dict) -> tuple[float, float]:
        """(max-norm of grads - reference computed in long double, this reference's own error
        bound on that figure): |grads - exact| <= first + second."""
        e = max(
            (
                float(np.max(np.abs(np.asarray(grads[k]).astype(_LD) - self.grads_hp[k])))
                for k in self.grads_hp
                if self.grads_hp[k].size
            ),
            default=0.0,
        )
        return e, self.error_bound_hp


def _eff(inst: Instance, dt):
    a = inst.arrays
    s = dt(inst.alpha) / dt(inst.r) if inst.r else dt(0)
    out, absw = {}, {}
    for m in ("q", "k", "v"):
        W = np.asarray(a[f"W_{m}"]).astype(dt)
        Wa = np.abs(W)
        if f"A_{m}" in a:
            B, A = np.asarray(a[f"B_{m}"]).astype(dt), np.asarray(a[f"A_{m}"]).astype(dt)
            W = W + s * (B @ A)
            Wa = Wa + abs(s) * (np.abs(B) @ np.abs(A))
        out[m], absw[m] = W, Wa
    return out, absw, s


def _gamma(n: int, u: float) -> float:
    nu = n * u
    if nu >= 0.5:
        return math.inf
    return nu / (1 - nu)


def longdouble_reference(inst: Instance) -> Reference:
    """Closed form in np.longdouble with a first-order rigorous bound on its own error."""
    u = float(np.finfo(_LD).eps) / 2
    if u > 1e-18:
        raise HarnessError("np.longdouble is not an extended type on this platform; use the mpmath reference")
    W, Wa, s = _eff(inst, _LD)
    N, d, r = inst.N, inst.d, inst.r
    x = {n: np.asarray(inst.x3(n)).astype(_LD) for n in ("X_q", "X_k", "X_v", "Y")}
    beta = _LD(inst.beta)
    G = {m: np.zeros((d, d), _LD) for m in inst.adapted}
    Gerr = {m: np.zeros((d, d), _LD) for m in inst.adapted}
    Gabs = {m: np.zeros((d, d), _LD) for m in inst.adapted}
    gW = _gamma(d + r + 4, u)
    for i in range(N):
        Xq, Xk, Xv, Y = x["X_q"][i], x["X_k"][i], x["X_v"][i], x["Y"][i]
        Lk = Xk.shape[0]
        Q, K, V = Xq @ W["q"], Xk @ W["k"], Xv @ W["v"]
        eQ, eK, eV = (gW * (np.abs(X) @ Wa[m]) for X, m in ((Xq, "q"), (Xk, "k"), (Xv, "v")))
        S = beta * (Q @ K.T)
        eS = abs(beta) * (eQ @ np.abs(K).T + np.abs(Q) @ eK.T + _gamma(d + 2, u) * (np.abs(Q) @ np.abs(K).T))
        seen = np.arange(Lk)[None, :] <= np.arange(Xq.shape[0])[:, None] if inst.causal else True
        Mx = np.where(seen, S, -np.inf).max(1, keepdims=True)
        E = np.where(seen, np.exp(np.where(seen, S - Mx, 0)), 0)  # causal: keys m <= j only
        D = E.sum(1, keepdims=True)
        f = E / D
        # relative error of each f entry: score error (both in the entry and through the row sum),
        # the subtraction of the max, exp (2 ulp), the sum and the division
        th = (
            np.where(seen, eS, 0).max(1, keepdims=True)
            + u * np.abs(np.where(seen, S - Mx, 0)).max(1, keepdims=True)
            + 3 * u
        )
        phi = np.expm1(2 * th) + 2.1 * _gamma(Lk + 2, u) * (1 + np.expm1(2 * th))
        O = f @ V
        eO = (phi + _gamma(Lk, u) * (1 + phi)) * (f @ np.abs(V)) + f @ eV
        c = (O - Y) / N
        ec = (eO + u * np.abs(O - Y)) / N + u * np.abs(c)
        Zp = c @ V.T - (c * O).sum(1, keepdims=True)  # c_j . (V_m - O_j)
        Za = np.abs(c) @ np.abs(V).T + (np.abs(c) * np.abs(O)).sum(1, keepdims=True)
        eZ = (
            ec @ np.abs(V).T
            + (ec * np.abs(O)).sum(1, keepdims=True)
            + np.abs(c) @ eV.T
            + (np.abs(c) * eO).sum(1, keepdims=True)
            + _gamma(2 * d + 2, u) * Za
        )
        p = f * Zp
        ep = f * (phi * np.abs(Zp) + eZ * (1 + phi))
        pa = f * Za
        n_sum = max(Xq.shape[0], Lk) + d + 4
        gs = _gamma(n_sum, u)
        if "q" in G:
            G["q"] += beta * (Xq.T @ p @ K)
            Gerr["q"] += abs(beta) * (np.abs(Xq).T @ (ep @ np.abs(K) + np.abs(p) @ eK))
            Gabs["q"] += abs(beta) * (np.abs(Xq).T @ (np.abs(p) @ np.abs(K))) * (1 + gs)
        if "k" in G:
            G["k"] += beta * (Xk.T @ p.T @ Q)
            Gerr["k"] += abs(beta) * (np.abs(Xk).T @ (ep.T @ np.abs(Q) + np.abs(p).T @ eQ))
            Gabs["k"] += abs(beta) * (np.abs(Xk).T @ (np.abs(p).T @ np.abs(Q))) * (1 + gs)
        if "v" in G:
            G["v"] += Xv.T @ f.T @ c
            Gerr["v"] += np.abs(Xv).T @ ((phi * f).T @ np.abs(c) + f.T @ ec)
            Gabs["v"] += (np.abs(Xv).T @ (f.T @ np.abs(c))) * (1 + gs)
        del pa
    out, err, hp, err_hp = {}, 0.0, {}, 0.0
    for m in inst.adapted:
        A = np.asarray(inst.arrays[f"A_{m}"]).astype(_LD)
        B = np.asarray(inst.arrays[f"B_{m}"]).astype(_LD)
        eG = Gerr[m] + _gamma(max(inst.Lq, inst.Lk) * N + d + 4, u) * Gabs[m]
        for name, val, bnd in (
            (f"dA_{m}", s * (B.T @ G[m]), abs(s) * (np.abs(B).T @ (eG + np.abs(G[m]) * _gamma(r + 3, u)))),
            (f"dB_{m}", s * (G[m] @ A.T), abs(s) * ((eG + np.abs(G[m]) * _gamma(r + 3, u)) @ np.abs(A).T)),
        ):
            v64 = val.astype(np.float64)
            out[name], hp[name] = v64, val
            err = max(err, float((bnd + np.abs(val - v64.astype(_LD))).max()))
            err_hp = max(err_hp, float(bnd.max()))
    return Reference(out, err, "longdouble", hp, err_hp * (1 + 1e-6))


def mpmath_reference(inst: Instance, prec: int = 160) -> Reference:
    """The closed form in mpmath at `prec` bits (tiny instances; pure Python)."""
    import mpmath

    if inst.N * inst.Lq * inst.Lk * inst.d > 200_000:
        raise HarnessError("the mpmath reference is for tiny instances (N Lq Lk d <= 2e5)")
    with mpmath.workprec(prec):
        M = mpmath.mpf

        def mat(a):
            a = np.asarray(a, np.float64)
            return [[M(float(v)) for v in row] for row in a]

        def mm(A, B):
            return [
                [mpmath.fsum(A[i][t] * B[t][j] for t in range(len(B))) for j in range(len(B[0]))]
                for i in range(len(A))
            ]

        def T(A):
            return [list(r) for r in zip(*A)]

        def add(A, B, s=1):
            return [[a + s * b for a, b in zip(ra, rb)] for ra, rb in zip(A, B)]

        def scale(A, s):
            return [[s * a for a in r] for r in A]

        d, N = inst.d, inst.N
        s = M(inst.alpha) / M(inst.r) if inst.r else M(0)
        a = inst.arrays
        W = {}
        for m in ("q", "k", "v"):
            Wm = mat(a[f"W_{m}"])
            if f"A_{m}" in a:
                Wm = add(Wm, scale(mm(mat(a[f"B_{m}"]), mat(a[f"A_{m}"])), s))
            W[m] = Wm
        beta = M(inst.beta)
        G = {m: [[M(0)] * d for _ in range(d)] for m in inst.adapted}
        for i in range(N):
            Xq, Xk, Xv, Y = (mat(inst.x3(n)[i]) for n in ("X_q", "X_k", "X_v", "Y"))
            Q, K, V = mm(Xq, W["q"]), mm(Xk, W["k"]), mm(Xv, W["v"])
            S = scale(mm(Q, T(K)), beta)
            f = []
            for j, row in enumerate(S):
                n_seen = j + 1 if inst.causal else len(row)  # causal: keys m <= j only
                mx = max(row[:n_seen])
                e = [mpmath.exp(v - mx) if m_ < n_seen else M(0) for m_, v in enumerate(row)]
                z = mpmath.fsum(e)
                f.append([v / z for v in e])
            O = mm(f, V)
            c = [[(o - y) / N for o, y in zip(ro, ry)] for ro, ry in zip(O, Y)]
            p = [
                [
                    f[j][m_] * mpmath.fsum(c[j][l] * (V[m_][l] - O[j][l]) for l in range(d))
                    for m_ in range(len(V))
                ]
                for j in range(len(f))
            ]
            if "q" in G:
                G["q"] = add(G["q"], scale(mm(mm(T(Xq), p), K), beta))
            if "k" in G:
                G["k"] = add(G["k"], scale(mm(mm(T(Xk), T(p)), Q), beta))
            if "v" in G:
                G["v"] = add(G["v"], mm(mm(T(Xv), T(f)), c))
        out, err, hp = {}, 0.0, {}
        err_hp = 0.0
        for m in inst.adapted:
            dA = scale(mm(T(mat(a[f"B_{m}"])), G[m]), s)
            dB = scale(mm(G[m], T(mat(a[f"A_{m}"]))), s)
            for name, val in ((f"dA_{m}", dA), (f"dB_{m}", dB)):
                arr = np.array([[float(v) for v in r] for r in val], np.float64)
                out[name] = arr
                hp[name] = np.array(
                    [[_LD(mpmath.nstr(v, 40, strip_zeros=False)) for v in r] for r in val], _LD
                )
                big = float(np.max(np.abs(arr))) if arr.size else 0.0
                err_hp = max(err_hp, big * 2.0**-62 + float(np.finfo(_LD).tiny))
                # rounding to float64 (half an ulp) plus the mpmath working precision
                err = max(
                    err,
                    float(np.max(np.spacing(np.abs(arr)))) / 2
                    + float(np.max(np.abs(arr))) * 2.0 ** (-prec + 20),
                )
        return Reference(out, err, f"mpmath-{prec}", hp, err_hp)


def reference(inst: Instance, kind: str = "longdouble", **kw) -> Reference:
    if kind == "longdouble":
        return longdouble_reference(inst)
    if kind == "mpmath":
        return mpmath_reference(inst, **kw)
    raise HarnessError(f"unknown reference kind {kind!r}; use 'longdouble' or 'mpmath'")
