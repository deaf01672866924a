"""The a posteriori certificate of `poly`: a rigorous max-norm bound on |computed - exact| for every
adapter gradient, truncation AND floating-point rounding included (docs/theory.md §4.3).

The computed gradient Ĝ is compared with the exact one G through two intermediate objects:

    Ĝ  --(rounding: Higham-style, gamma_n |.| on absolute values)-->  G~  (the solver's algorithm
          in exact arithmetic on its own rounded inputs q^ = fl(beta) Q^, K'^, V'^, Y'^, X^)
    G~ --(truncation: row-local chain)-->  G^H (the exact softmax kernel on the same inputs)
    G^H --(input perturbation: |Q^ - Q|, |K'^ - K'|, ...)-->  G   (the exact gradient)

Truncation (row j of one data point; x_jm = q^_j . k'^_m, A = e^x, A~ = P_g(x), D = sum_m A):
    Delta A = A~ - A = T + r2,  T = -x^(g+1)/(g+1)!  (computed exactly from the degree-(g+1)
    features the solver builds anyway),  |r2_m| <= rho2 |x|^(g+2)/(g+2)! (+ the score perturbation),
    rho2 = 1/(1 - R_j/(g+3)) (tail of the exponential series, R_j >= max_m |x_jm|).
    Exact identities (f~ = A~/D~, O~ = f~ V', D = D~ - sum Delta A):
        f~ - f = (Delta A - f~ s)/D,   O~ - O = sum_m Delta A_m (V'_m - O~)/D,
        p~ - p = (f~ - f) . Z~ + f . (Z~ - Z),   Z~_m - Z_m = Delta c.(V'_m - O~) - c.Delta O.
    They give per-row bounds on ||p~_j - p_j||_1 and on |(p~_j - p_j) K'| in which the first-order
    part of Delta O (sum_m T_m (V'_m - O~)) is computed exactly; the value gradient's first-order
    error F_v = X_v^T sum_j [(T_j - f~_j sT_j)/D~_j]^T c~_j + X_v^T f~^T Delta c^(1) is computed
    signed (so its cancellations over rows and keys are kept) and only second-order remainders are
    bounded.

Rounding (unit roundoff u of the solver's dtype, gamma_n = n u/(1 - n u), Higham 2002, Lemma 3.1,
§3.1): every kernel sum is a polynomial in the inputs evaluated with + and x, so its error is at
most gamma_n times the same sum on absolute values; the absolute kernel sum_m P_g(|x_q,j|.|x_k,m|)
is bounded by Lk P_g(h_j), h_j = sum_l |q^_jl| max_m |k'^_ml| (Hoelder). Divisions by the computed
row sums are handled exactly (a/b^ - a/b = ...), and the chain rule products carry gamma_n |.| terms.

Everything is O(N L d^2) given the solver's per-row quantities (`poly_gradients(..., rows=True)`).
The bound's own evaluation in float64 is covered by a relative factor (1 + 1e-9).
"""

from __future__ import annotations

import math

import numpy as np

from harness.solvers.poly.bound_assemble import _assemble, assemble
from harness.solvers.poly.bound_context import (
    SAFETY,
    BoundContext,
    _f64,
    _sumd,
    _tdot,
    _wsum,
    gamma,
    path_length,
    positive_radius,
    value_error_numerator,
)

__all__ = ["BoundContext", "assemble", "bound_from_rows", "gamma"]


def bound_from_rows(*args, **kw) -> dict:
    """`_bound_from_rows` with numpy's overflow/invalid warnings off (an overflow gives an inf
    bound, which makes the certificate not valid with its reason)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return _bound_from_rows(*args, **kw)


def _bound_from_rows(
    ctx: BoundContext,
    rows: dict,
    stat: dict,
    weight=None,
    Fv=None,
    absXdG: dict | None = None,
    Fq=None,
    debug: bool = False,
    G: dict | None = None,
    grads_finite: bool = True,
    moments: bool = False,
    block: int | None = None,
) -> dict:
    """The certificate from per-row quantities `rows` (D, Oc, c, rr, sT, tV, Sg as computed by the
    solver, shape (N, s, .)) with static row quantities `stat` (`ctx.rows_of`) and optional row
    weights (the pilot's sampling weights; 1 for the final bound). Returns the bound, its parts
    (truncation / rounding / input, each propagated alone through the chain rule), validity and
    the reason when not valid. `moments`: the gradients came from `moments.moment_gradients`, where
    each adapter gradient is one +/x program over both passes (no per-row gradient, no separate
    assembly): its rounding is gamma_n of the same absolute program with n counting both lengths,
    N, the (d+1) k+ contraction and the feature products; with its `block` (rows per block) the
    path lengths over keys and queries are `moments.path_length` instead of Lk and Lq.
    `Fq`: the signed first-order query-gradient error (`bound_lead.q_lead`, (d, d)); with it the
    query part is also bounded as |Fq| + its rounding + the remainder, and the smaller of the two
    (both rigorous, entrywise) is kept."""
    g, u, N, Lk, d = ctx.g, ctx.u, ctx.N, ctx.Lk, ctx.d
    # summation path lengths over the keys / queries: L, or the moments kernel's blocked length
    pk, pq = (Lk, ctx.Lq) if not (moments and block) else (path_length(Lk, block), path_length(ctx.Lq, block))
    inst = ctx.inst
    D = _f64(rows["D"])[..., 0]
    Oc, c = _f64(rows["Oc"]), _f64(rows["c"])
    rr = _f64(rows["rr"])[..., 0]
    sT, tV = _f64(rows["sT"])[..., 0], _f64(rows["tV"])
    Sg = _f64(rows["Sg"])[..., 0] if "Sg" in rows else None
    om = np.ones_like(D) if weight is None else _f64(weight)
    R, h, Hk, xi = stat["R"], stat["h"], stat["Hk"], stat["xi"]
    reasons = []
    # --- rounding of the row sums, numerators and outputs (computed vs exact program)
    # keys each row's sums touch: all Lk, or (causal pass) rows["n"], the row's prefix up to the end
    # of its chunk; with the abs-value sums over those keys bounded by the global-key maxima
    if "n" in rows:
        Lr = _f64(rows["n"])[..., 0]
        SV = ctx.prefix_abs_values(Lr)
        gam = np.vectorize(lambda n: gamma(n, u), otypes=[np.float64])
        Lx = ctx.Lk - ctx.inst.Lk  # the causal pass's extra rounding steps (BoundContext.at)
        g1 = gam(Lr + Lx + 2 * g + ctx.k + 8)
        gt = gam(Lr + Lx + 2 * g + ctx.kh + 10)
    else:
        Lr, SV = Lk, ctx.SVabs[:, None, :]
        g1 = gamma(pk + 2 * g + ctx.k + 8, u)
        gt = gamma(pk + 2 * g + ctx.kh + 10, u)
    e_D = g1 * Lr * Hk
    Dt_lo = D - e_D
    if not bool((Dt_lo > 0).all()):
        reasons.append(
            f"{str(ctx.dtype).replace('torch.', '')} rounding of a kernel row sum may reach the row sum"
        )
    Dt_lo = np.maximum(Dt_lo, 1e-300)
    e_N = (g1 * Hk)[..., None] * SV
    e_O = (e_N + ctx.hv[:, None, :] * e_D[..., None]) / D[..., None] + u * np.abs(Oc)
    e_c = e_O / N + 2.01 * u * np.abs(c)
    ca = np.abs(c) + e_c
    vr = np.maximum(ctx.vmax[:, None, :] - Oc, Oc - ctx.vmin[:, None, :]) + e_O
    Zmax = _sumd(ca * vr)
    # --- truncation quantities (exact program vs the exact kernel on the same inputs)
    fg1 = math.lgamma(g + 2)
    htop = np.exp((g + 1) * np.log(np.maximum(h, 1e-300)) - fg1)  # h^(g+1)/(g+1)!
    e_sT = gt * Lr * htop
    e_tV = (gt * htop)[..., None] * SV
    if (g + 1) % 2 == 0:
        absT = np.maximum((-sT + e_sT), 0.0)
        S2 = R * absT / (g + 2)
    else:
        hg = np.exp(g * np.log(np.maximum(h, 1e-300)) - math.lgamma(g + 1))
        Sgu = np.maximum((Sg + gt * Lr * hg), 0.0)
        absT = R * Sgu / (g + 1)
        S2 = R * R * Sgu / ((g + 1) * (g + 2))
        # positivity of the odd-degree... (g even here: P_g > 0 everywhere)
    big = R >= g + 3
    rho2 = np.where(big, np.exp(np.minimum(R, 700.0)), 1.0 / (1.0 - np.minimum((R / (g + 3)), 0.999999)))
    if g % 2 == 1:
        # odd g: P_g' = P_(g-1) > 0, so P_g > 0 on [-R_j, inf) iff P_g(-R_j) > 0 (exact test)
        if not bool((R < positive_radius(g)).all()):
            reasons.append(
                f"odd degree g={g} may make the kernel non-positive for |x| <= R_j "
                f"(max R_j={float(R.max()):.3g}); use an even degree"
            )
    if not bool((xi < 0.5).all()):
        reasons.append(f"input rounding perturbs the scores by up to {float(xi.max()):.3g}")
    xi = np.minimum(xi, 0.5)
    sT_lo, sT_hi = sT - e_sT, sT + e_sT
    D_hi = (D + e_D - sT_lo + rho2 * S2) / (2.0 - np.exp(xi))
    r2sum = rho2 * S2 + np.expm1(xi) * D_hi
    D_lo = Dt_lo - sT_hi - r2sum
    if not bool((D_lo > 0).all()):
        reasons.append(f"the degree-{g} remainder may reach a row sum (max R_j={float(R.max()):.3g})")
    D_lo = np.maximum(D_lo, 1e-300)
    s_abs = np.maximum(np.abs(sT_lo), np.abs(sT_hi)) + r2sum
    tOa = (
        np.abs(tV - sT[..., None] * Oc)
        + e_tV
        + e_sT[..., None] * (np.abs(Oc) + e_O)
        + np.abs(sT)[..., None] * e_O
    )
    dO = (tOa + r2sum[..., None] * vr) / D_lo[..., None]
    dc = dO / N
    dZmax = _sumd(dc * vr) + _sumd((ca + dc) * dO)
    Kh = ctx.Kh[:, None, :]
    lead = (absT + r2sum + s_abs) * Zmax / D_lo  # ||(f~ - f) . Z~||_1 bound
    uq = lead[..., None] * Kh + Kh * dZmax[..., None]  # |(p~_j - p_j) K'|
    pl = lead + dZmax  # ||p~_j - p_j||_1
    Xq = np.abs(stat["Xq"]) * om[..., None]
    bta = abs(ctx.bt)
    chain, rnd, inp = {}, {}, {}
    ad = inst.adapted
    if "q" in ad:
        chain["q"] = bta * _tdot(Xq, uq)
    if "k" in ad:
        chain["k"] = np.einsum("na,nb->ab", ctx.hrXk, _wsum(pl * om, np.abs(stat["q"])))
    ddO = r2sum[..., None] * vr / D_lo[..., None] + tOa * (s_abs / (D_lo * Dt_lo))[..., None]
    eta = 2 * (absT + r2sum) / D_lo
    if "v" in ad:
        a1 = 2 * r2sum / D_lo + 2 * absT * s_abs / (D_lo * Dt_lo)
        rem1 = np.einsum("na,nb->ab", ctx.hrXv, _wsum(a1 * om, ca))
        dc1a = tOa / (N * Dt_lo[..., None])
        rem2 = np.einsum("na,nb->ab", ctx.hrXv, _wsum(eta * om, dc1a)) + np.einsum(
            "na,nb->ab", ctx.mXv, _wsum(om, ddO) / N
        )
        # error of the computed F_v against its exact-program value
        nh = value_error_numerator(c, Oc, sT[..., None], tV, N)
        hh = nh / (D * D)[..., None]
        e_n = (
            e_sT[..., None] * ca
            + np.abs(sT)[..., None] * e_c
            + (e_tV + e_sT[..., None] * (np.abs(Oc) + e_O) + np.abs(sT)[..., None] * e_O) / N
        )
        e_h = (
            e_n / (Dt_lo * Dt_lo)[..., None]
            + np.abs(nh) * (e_D * (2 * D + e_D) / (D * D * Dt_lo * Dt_lo))[..., None]
            + 8 * u * np.abs(hh)
        )
        if "n" in rows:
            # causal F_v: per key the sum over its later rows (chunk states: the extras in pq), then
            # one einsum per group over the data points' nonzero key positions (<= N Lk terms; an
            # exact zero term adds no rounding) plus one accumulation per group (<= the extras in pk)
            gF = gamma(pq + N * pk + ctx.kp + 2 * g + 16, u)
        else:
            gF = gamma(pq + pk + ctx.kp + 2 * g + 12 + (N + 4 if moments else 0), u)
        Zc = np.abs(c / D[..., None])
        e_Zc = e_c / D[..., None] + ca * (e_D / (D * Dt_lo))[..., None] + 2 * u * Zc
        eF_rows = htop[..., None] * (e_Zc + gF * Zc) + Hk[..., None] * (e_h + gF * np.abs(hh))
        eF = np.einsum("na,nb->ab", ctx.SXv, _wsum(om, eF_rows))
        if Fv is None:
            # no signed F_v: bound the exact program's first-order value error
            # sum_m X_v,m^T sum_j (A~_jm h_j + T_jm c_j/D_j) in absolute value, row by row, with
            # sum_m A~_jm = D~_j <= D_j + e_D (A~ > 0: even g, or odd g inside its positive radius)
            # and sum_m |T_jm| <= absT_j
            Fr = (D + e_D)[..., None] * (np.abs(hh) + e_h) + absT[..., None] * (Zc + e_Zc)
            chain["v"] = np.einsum("na,nb->ab", ctx.mXv, (Fr * om[..., None]).sum(1)) * SAFETY + rem1 + rem2
        else:
            chain["v"] = np.abs(_f64(Fv)) + eF + rem1 + rem2
    # --- rounding of the backward passes and the gradient assembly
    if moments:
        gb = gamma(pq + pk + N + (d + 1) * ctx.kp + (g + 3) * (d + 4) + 2 * d + 40, u)
    else:
        gb = gamma(max(ctx.Lq, Lk) + ctx.kp + (g + 3) * (d + 4) + 2 * d + 20, u)
    Zq = np.concatenate([c, -rr[..., None]], -1) / D[..., None]
    e_r = _sumd(e_c * np.abs(Oc) + np.abs(c) * e_O + e_c * e_O) + gamma(d + 1, u) * _sumd(
        np.abs(c) * np.abs(Oc)
    )
    ra = np.abs(rr) + e_r
    e_Zq = np.concatenate(
        [
            e_c / D[..., None] + ca * (e_D / (D * Dt_lo))[..., None],
            (e_r / D + ra * e_D / (D * Dt_lo))[..., None],
        ],
        -1,
    ) + 2 * u * np.abs(Zq)
    Wq = gb * np.abs(Zq) + e_Zq
    rq = None
    if "q" in ad and Fq is not None and "n" not in rows:
        cq, rq = _q_lead_chain(ctx, locals())
        chain["q"] = np.minimum(chain["q"], cq)
    gsum = lambda n: gamma(n + 2, u)  # noqa: E731
    if "q" in ad and "n" in rows:  # causal rows: per-row counts and the prefix products of the keys
        gbq = gam(Lr + Lx + ctx.kp + (g + 3) * (d + 4) + 2 * d + 20)
        e_dQ = bta * Hk[..., None] * ctx.prefix_key_products(gbq[..., None] * np.abs(Zq) + e_Zq, Lr)
    elif "q" in ad:
        e_dQ = bta * Hk[..., None] * np.matmul(Wq, ctx.TK)
    if "q" in ad:
        rnd["q"] = _tdot(Xq, e_dQ)
        if not moments:
            aq = _f64(absXdG["q"]) if absXdG else _tdot(Xq, bta * Zmax[..., None] * Kh)
            rnd["q"] = rnd["q"] + gsum(N * ctx.Lq) * aq
    if "k" in ad:
        if "n" in rows:  # causal: key m meets the rows j with m < n_j only
            P = ctx.prefix_key_products(Wq * (Hk * om)[..., None], Lr, ctx.Zk, ctx.Xk)
            rnd["k"] = _tdot(P, np.abs(stat["q"]))
        else:
            UQ = np.matmul((Wq * (Hk * om)[..., None]).transpose(0, 2, 1), np.abs(stat["q"]))
            rnd["k"] = np.matmul(ctx.XkZk, UQ).sum(0)
        if not moments:
            akk = (
                _f64(absXdG["k"])
                if absXdG
                else np.einsum("na,nb->ab", ctx.mXk, _wsum(Zmax * om, np.abs(stat["q"])))
            )
            rnd["k"] = rnd["k"] + gsum(N * Lk) * akk
    if "v" in ad:
        if "n" in rows:  # causal: value m meets the rows j with m < n_j only
            one = np.ones(ctx.Xv.shape[:2] + (1,))
            SXr = ctx.prefix_key_products(np.ones(Lr.shape + (1,)), Lr, one, ctx.Xv)  # sum_{m<n_j} |X_v,m|
            rnd["v"] = _tdot(SXr, Wq[..., :d] * (Hk * om)[..., None])
        else:
            UV = _wsum(Hk * om, Wq[..., :d])
            rnd["v"] = np.einsum("na,nb->ab", ctx.SXv, UV)
        if not moments:
            av = _f64(absXdG["v"]) if absXdG else np.einsum("na,nb->ab", ctx.mXv, _wsum(om, ca))
            rnd["v"] = rnd["v"] + gsum(N * Lk) * av
    # --- input perturbation (the exact kernel on the program's inputs vs the true inputs)
    ev, eK, eY = ctx.ev[:, None, :], ctx.eK[:, None, :], stat["eY"]
    ech = (ev + eY) / N
    cH = ca + dc + ech
    eZH = _sumd(ech * (ctx.w[:, None, :] + 2 * ev)) + _sumd(cH * 2 * ev)
    Zm = Zmax + dZmax
    conv = ctx.conv
    beta = abs(inst.beta)
    if "q" in ad:
        Xt = stat["Xq_true"] * om[..., None]
        inp["q"] = beta * (
            (2 * u + conv) * 1.01 * _tdot(Xq, Zm[..., None] * Kh)
            + _tdot(Xt, eZH[..., None] * Kh + (Zm + eZH)[..., None] * eK)
        )
    if "k" in ad:
        qa = np.abs(stat["q"])
        per = (conv * Zm + eZH)[..., None] * qa + (Zm + eZH)[..., None] * stat["Eq"]
        inp["k"] = np.einsum("na,nb->ab", ctx.mXk * (1 + conv), _wsum(om, per))
    if "v" in ad:
        inp["v"] = np.einsum("na,nb->ab", ctx.mXv * (1 + conv), _wsum(om, conv * cH + ech))
    # --- the LoRA chain rule
    scales = {
        "mZ": max(1.0, float(np.abs(Zq).max()) if Zq.size else 1.0),
        "Dmin": float(D.min()) if D.size else 1.0,
    }
    if not grads_finite:
        reasons.insert(0, "non-finite gradients")
    out = _assemble(
        ctx,
        {"truncation": chain, "rounding": rnd, "input": inp},
        G,
        reasons,
        scales,
        {
            "min_rowsum": float(D.min()) if D.size else math.inf,
            "R_rows_max": float(R.max()) if R.size else 0.0,
            "Hk_max": float(Hk.max()) if Hk.size else 1.0,
        },
    )
    if debug:  # the per-row steps of the chain, for the tests that check them against dense truth
        out["debug"] = {
            "eta": 2 * (absT + r2sum) / D_lo,
            "dO": dO,
            "pl": pl,
            "uq": uq,
            "D_lo": D_lo,
            "Dt_lo": Dt_lo,
            "e_D": e_D,
            "e_O": e_O,
            "absT": absT,
            "r2sum": r2sum,
            "Zmax": Zmax,
            "dZmax": dZmax,
            "ca": ca,
            "vr": vr,
            "s_abs": s_abs,
            "rq": rq,
        }
    return out


def _q_lead_chain(ctx: BoundContext, v: dict) -> tuple[np.ndarray, np.ndarray]:
    """|G~_q - G^H_q| <= |Fq| + |Fq (computed) - F_q (exact)| + |beta| |X_q|^T rq K^ (bound_lead's
    identity (p~ - p)_j K' = F1_j + E_j). The remainder, with Delta A = T + r2, s = sum Delta A,
    sigma2 = s - sT = sum r2, u_m = dc.(V'_m - O~) - c.dO, u1_m its first-order part:
      E_j = sum_m [(r2_m - f~_m sigma2)/D + (T_m - f~_m sT) s/(D D~)] Z~_m K'_m
            + sum_m f~_m (u_m - u1_m) K'_m - sum_m (f~_m - f_m) u_m K'_m,
      u_m - u1_m = (dc - dc1).(V'_m - O~) - c~.(dO - dO1) + dc.dO,
    so |E_j,b| <= K^_b [(2 r2sum + |s| (sum|T| + |sT|)/D~) Zmax/D + eta dZmax
                       + sum_l |dO - dO1|_l (vr_l/N + |c~_l|) + sum_l dc_l dO_l]   (f~ >= 0)."""
    g, u, N, d = ctx.g, ctx.u, ctx.N, ctx.d
    from harness.solvers.poly.bound_lead import lead_count, lead_weight_errors, lead_weights

    D, Oc, c, rr, sT, tV = v["D"], v["Oc"], v["c"], v["rr"], v["sT"], v["tV"]
    D_lo, Dt_lo, s_abs, r2sum = v["D_lo"], v["Dt_lo"], v["s_abs"], v["r2sum"]
    rq = (
        (2 * r2sum + s_abs * (v["absT"] + s_abs) / Dt_lo) * v["Zmax"] / D_lo
        + v["eta"] * v["dZmax"]
        + _sumd(v["ddO"] * (v["vr"] / N + v["ca"]))
        + _sumd(v["dc"] * v["dO"])
    )
    Zq, Wq = lead_weights(D, Oc, c, rr, sT, tV, N)
    e_W = lead_weight_errors(
        D, Oc, c, rr, sT, tV, N, v["e_D"], v["e_O"], v["e_c"], v["e_r"], v["e_sT"], v["e_tV"], u, d
    )
    gq = gamma(lead_count(ctx.Lq, ctx.Lk, N, d, g), u)
    # the computed F_q: the absolute program of its two contractions (top monomials: <= h^(g+1)/(g+1)!,
    # degree <= g: <= P_g(h)) against TK = sum_m |Zk_m| (x) |K'_m|, plus the weights' own errors
    per = np.matmul(
        (gq * np.abs(Zq) + v["e_Zq"]) * v["htop"][..., None] + (gq * np.abs(Wq) + e_W) * v["Hk"][..., None],
        ctx.TK,
    )
    Xq, bta, Kh = v["Xq"], v["bta"], v["Kh"]
    return np.abs(_f64(v["Fq"])) + bta * _tdot(Xq, per + rq[..., None] * Kh) * SAFETY, rq
