"""The last step of `poly`'s certificate (docs/theory.md §4.3): the per-adapter error bounds of the
weight gradients pushed through the LoRA chain rule, the underflow allowance and the validity."""

from __future__ import annotations

import math

import numpy as np

from harness.solvers.poly.bound_context import SAFETY, BoundContext, _f64, gamma

__all__ = ["assemble"]


def _assemble(ctx: BoundContext, E: dict, G: dict | None, reasons: list, scales: dict, extra: dict) -> dict:
    """Sum the per-adapter (d, d) error bounds of the weight gradients E[part][m] and push them
    through the LoRA chain rule |d dA| <= (|alpha|/r)(|B|^T |E| + own rounding), likewise dB
    (docs/theory.md §3.2); each part alone too. Adds the underflow allowance and the validity."""
    inst, u, d, g = ctx.inst, ctx.u, ctx.d, ctx.g
    ad = inst.adapted
    conv = ctx.conv
    s = abs(inst.alpha) / inst.r if inst.r else 0.0
    ga = gamma(d + 2, u) + 2 * u + conv
    AB = {
        m: (
            np.abs(np.asarray(inst.arrays[f"A_{m}"], np.float64)),
            np.abs(np.asarray(inst.arrays[f"B_{m}"], np.float64)),
        )
        for m in ad
    }

    def adapters(Es: dict, with_own: bool) -> float:
        best = 0.0
        for m in ad:
            A, B = AB[m]
            Em = Es.get(m)
            Em = np.zeros((d, d)) if Em is None else Em
            eA, eB = (1 + conv) * (B.T @ Em), (1 + conv) * (Em @ A.T)
            if with_own and G is not None:
                Gm = np.abs(_f64(G[m]))
                eA, eB = eA + ga * (B.T @ Gm), eB + ga * (Gm @ A.T)
            for e in (eA, eB):
                v = float(e.max()) * s if e.size else 0.0
                # a NaN term (inf x 0 in a bound that cannot be formed) is an unbounded error: Python's
                # max() would drop it (nan compares False) and certify the rest
                best = math.inf if math.isnan(v) else max(best, v)
        return best

    tot = {m: sum(E[p].get(m, 0) for p in E) for m in ad}
    bound = adapters(tot, with_own=True)
    # underflow allowance: every gradual-underflow error (<= eta_min per product) times the largest
    # factors it can meet on its way to an output
    try:
        under = (
            4
            * ctx.eta_min
            * ctx.N
            * max(ctx.Lq, ctx.Lk)
            * ctx.kp
            * (g + 3)
            * (d + 2) ** 3
            * ctx.mx ** (g + 2)
            * scales["mZ"]
            * ctx.mZK
            * ctx.mX
            * ctx.mAB
            * max(s, 1.0)
            / max(scales["Dmin"], 1e-300)
        )
    except OverflowError:
        under = math.inf
    bound = (bound + under) * SAFETY
    parts = {p: adapters(E[p], False) * SAFETY for p in E}
    parts["underflow"] = under
    reasons = list(reasons)
    if not math.isfinite(bound):
        reasons.append(
            f"rounding cannot be bounded in {str(ctx.dtype).replace('torch.', '')} "
            f"(kernel magnitudes up to P_g(h) = {extra.get('Hk_max', math.nan):.3g})"
        )
    valid = not reasons
    out = {
        "error_bound": float(bound) if valid else math.inf,
        "bound_if_valid": float(bound),
        "parts": parts,
        "valid": valid,
        "reason": "; ".join(reasons) if reasons else None,
        "E": E,
        "reasons": reasons,
        "scales": scales,
    }
    out.update(extra)
    return out


def assemble(*args, **kw) -> dict:
    """`_assemble` with numpy's overflow warnings off (an overflow is an inf bound: not valid)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return _assemble(*args, **kw)
