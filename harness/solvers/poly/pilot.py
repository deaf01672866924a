"""The pilot of `poly`'s degree choice (docs/theory.md §4.3): the a posteriori certificate's formulas
(`bound.bound_from_rows`) on a sample of query rows against a sample of keys with the kernel formed
densely, and the search for the smallest degree whose estimate meets the target. Only the degree comes
from here; the certificate is always recomputed from the full run."""

from __future__ import annotations

import math

import numpy as np

from harness.solvers.poly.bound import bound_from_rows
from harness.solvers.poly.bound_context import BoundContext, _tdot, value_error_numerator
from harness.solvers.poly.bound_lead import lead_applies, lead_weights
from harness.solvers.poly.moments import block_rows
from harness.theory.taylor import feature_rank

#: the pilot accepts a degree whose estimated certificate is <= PILOT_ACCEPT * eps (its sampling error
#: is typically 10-30% either way); the run's own certificate decides, and the degree is raised when
#: the estimate was optimistic
PILOT_ACCEPT = 1.0

PILOT_ROWS = 64
PILOT_KEYS = 1024
#: in lead mode (the second search of `choose_degree_with_lead`, only where the first would refuse)
#: the pilot takes every query row when N Lq min(Lk, PILOT_KEYS) is at most this: the row sample's
#: weights over-estimate small instances' bounds by ~1.3x, enough to refuse a servable degree; the
#: first search keeps the sample (every row made L = 512 6x slower)
PILOT_ALL_ROWS = 1 << 18


def _order_desc(v: np.ndarray) -> np.ndarray:
    """Indices sorting `v` descending, ties by index (the stable order): numpy's quicksort (5x faster
    than the stable sort at L = 2^15) when no two values tie, since the order is then unique on every
    machine and sort implementation; the stable sort otherwise."""
    order = np.argsort(-v)
    s = v[order]
    if bool((s[1:] == s[:-1]).any()):
        order = np.argsort(-v, kind="stable")
    return order


def _spread_sample(score: np.ndarray, n: int, n_top: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (N, n) and weights (N, n) of a stratified row sample per data point: the n_top rows
    with the largest `score` (weight 1), then one row per equal-count stratum of the others sorted by
    score (weight = the stratum's size). The certificate's row terms grow steeply with the row's
    score range, so strata in score order estimate their sums far better than rows spaced by index."""
    N, L = score.shape
    if n >= L:
        return np.broadcast_to(np.arange(L), (N, L)).copy(), np.ones((N, L))
    n_top = min(n_top, n)
    m = n - n_top
    idx, wts = [], []
    for i in range(N):
        order = _order_desc(score[i])
        top, rest = order[:n_top], order[n_top:]
        edges = np.round(np.linspace(0, len(rest), m + 1)).astype(int)
        mids = (edges[:-1] + edges[1:]) // 2
        idx.append(np.concatenate([top, rest[np.minimum(mids, len(rest) - 1)]]))
        wts.append(np.concatenate([np.ones(n_top), np.diff(edges).astype(np.float64)]))
    return np.stack(idx), np.stack(wts)


class Pilot:
    """Cheap estimate of the a posteriori certificate at any degree (docs/theory.md §4.3): the same
    formulas (`bound_from_rows`) on a sample of query rows (the rows with the largest score range
    plus evenly spaced ones) against a sample of keys, with the kernel formed densely. Used only to
    choose the degree; the certificate itself is always recomputed from the full run."""

    def __init__(
        self, ctx: BoundContext, n_rows: int = PILOT_ROWS, n_keys: int = PILOT_KEYS, moments: bool = True
    ):
        self.ctx = ctx
        self.moments = moments  # estimate the rounding of the moments kernel (poly's default)
        N = ctx.N
        self._per = {False: max(8, -(-n_rows // N))}
        # lead mode on small instances: every row (the estimate is then the certificate's formula)
        small = N * ctx.inst.Lq * min(ctx.inst.Lk, n_keys) <= PILOT_ALL_ROWS
        self._per[True] = ctx.inst.Lq if small else self._per[False]
        kscore = np.linalg.norm(ctx.Kc, axis=-1)
        self.kidx, self.wkey = _spread_sample(kscore, n_keys, max(1, n_keys // 16))
        if ctx.causal and self.kidx.shape[1] < ctx.inst.Lk:
            # every causal row sees key 0: keep it in the sample (weight 1, taken from its stratum)
            self.wkey = np.where(self.kidx == 0, np.maximum(self.wkey - 1.0, 0.0), self.wkey)
            self.kidx = np.concatenate([np.zeros((N, 1), self.kidx.dtype), self.kidx], 1)
            self.wkey = np.concatenate([np.ones((N, 1)), self.wkey], 1)
        g = lambda v, idx: np.take_along_axis(v, idx[..., None], 1)  # noqa: E731
        self.Vs, self.Ks = g(ctx.Vc, self.kidx), g(ctx.Kc, self.kidx)
        self.Xvs = g(ctx.Xv, self.kidx)
        self.cache: dict = {}
        self._rows: dict = {}
        #: estimate with the signed query lead (bound_lead), which the run then forms: set by
        #: `choose_degree_with_lead` only when the degree without it is over the rank budget
        self.lead = False

    @property
    def lead(self) -> bool:
        return self._lead

    @lead.setter
    def lead(self, on: bool) -> None:
        """Switch the mode and its row sample (built once per mode): idx, wrow, stat_base, x, seen."""
        self._lead = bool(on)
        per = self._per[self._lead]
        if per not in self._rows:
            ctx = self.ctx
            idx, wrow = _spread_sample(ctx.h, per, max(1, per // 4))
            stat = ctx.rows_of(idx)
            x = np.matmul(stat["q"], self.Ks.transpose(0, 2, 1))  # (N, s, ks)
            # causal: a sampled row sees the sampled keys of its prefix only
            seen = (self.kidx[:, None, :] <= idx[:, :, None]) if ctx.causal else None
            self._rows[per] = (idx, wrow, stat, x, seen)
        self.idx, self.wrow, self.stat_base, self.x, self.seen = self._rows[per]

    def _q_lead(self, x, P, top, wk, rows) -> np.ndarray:
        """bound_lead.q_lead's F_q on the sample: beta sum_j w_j X_q,j (x) sum_m w_m
        [-top_jm Zq_j . Zk_m + P_jm Wq_j . Zk_m] K'_m."""
        r = {n: v[..., 0] if v.shape[-1] == 1 and n in ("D", "rr", "sT") else v for n, v in rows.items()}
        Zq, Wq = lead_weights(r["D"], r["Oc"], r["c"], r["rr"], r["sT"], r["tV"], self.ctx.N)
        Zk = np.concatenate([self.Vs, np.ones(self.Vs.shape[:-1] + (1,))], -1).transpose(0, 2, 1)
        coef = wk * (-top * (Zq @ Zk) + P * (Wq @ Zk))
        U = coef @ self.Ks
        return self.ctx.bt * _tdot(self.stat_base["Xq"] * self.wrow[..., None], U)

    def estimate(self, g: int) -> dict:
        """The pilot's certificate at degree g (cached per (g, lead)). On extreme instances the dense
        sample kernel overflows: the estimate is then inf or not valid (never a numpy warning)."""
        key = (g, self.lead)
        if key not in self.cache:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                self.cache[key] = self._estimate(g)
        return self.cache[key]

    def _estimate(self, g: int) -> dict:
        ctx = self.ctx.at(g)
        x, wk, Vs, N = self.x, self.wkey[:, None, :], self.Vs, ctx.N
        if self.seen is not None:
            wk = wk * self.seen
        P = np.ones_like(x)
        term = np.ones_like(x)
        for t in range(1, g + 1):
            term = term * x / t
            P = P + term
        top = term * x / (g + 1)  # x^(g+1)/(g+1)!
        Pw = P * wk
        D = Pw.sum(-1)
        Oc = (Pw @ Vs) / D[..., None]
        c = (Oc - self.stat_base["Yc"]) / N
        rr = (c * Oc).sum(-1)
        sT = -(top * wk).sum(-1)
        tV = -((top * wk) @ Vs)
        rows = {"D": D[..., None], "Oc": Oc, "c": c, "rr": rr[..., None], "sT": sT[..., None], "tV": tV}
        if self.seen is not None:
            rows["n"] = np.minimum(self.idx + 1, ctx.inst.Lk)[..., None].astype(np.float64)
        if g % 2 == 0:
            rows["Sg"] = (term * wk).sum(-1)[..., None]
        hh = value_error_numerator(c, Oc, sT[..., None], tV, N) / (D * D)[..., None]
        # F_v ~ sum_m w_m X_v,m^T sum_j w_j [T_jm c_j/D_j + P_jm h_j]
        Pm, topm = (P, top) if self.seen is None else (P * self.seen, top * self.seen)
        inner = np.matmul((-topm * self.wrow[..., None]).transpose(0, 2, 1), c / D[..., None]) + np.matmul(
            (Pm * self.wrow[..., None]).transpose(0, 2, 1), hh
        )
        Fv = _tdot(self.Xvs * self.wkey[..., None], inner)
        lead = self.lead and lead_applies(ctx.inst)
        Fq = self._q_lead(x, P, top, wk, rows) if lead else None
        stat = dict(self.stat_base)
        stat["Hk"] = np.take_along_axis(ctx.Hk, self.idx, 1)
        if (
            self.moments and not ctx.causal
        ):  # the moments kernel's rounding, with the block it will use at this degree
            B = min(block_rows(N, ctx.kp, 8), max(ctx.Lq, ctx.Lk))
            out = bound_from_rows(ctx, rows, stat, weight=self.wrow, Fv=Fv, moments=True, block=B, Fq=Fq)
        else:
            out = bound_from_rows(ctx, rows, stat, weight=self.wrow, Fv=Fv, Fq=Fq)
        return out


def choose_degree(
    pilot: Pilot,
    target: float | None,
    max_rank: int,
    d: int,
    degree: int | None = None,
    R: float | None = None,
    max_degree: int = 400,
) -> dict:
    """The smallest degree g whose pilot estimate is a valid certificate <= PILOT_ACCEPT * target:
    the smallest degree whose truncation part meets it (doubling, then bisection: it falls with g),
    then up to three degrees more while the (slowly growing) rounding part is added, then one step
    down for the odd/even alternation. Returns
    {"degree", "estimate", "found", "searched": {g: estimate}}. When the degree that the target
    needs has a rank above `max_rank`, the search goes on (up to rank 1e12 or `max_degree`) so a
    refusal can name the degree really needed ("found" False when it stopped first)."""
    searched: dict[int, float] = {}

    def est(g: int) -> dict:
        e = pilot.estimate(g)
        searched[g] = e["bound_if_valid"] if e["valid"] else math.inf
        return e

    if degree is not None:
        g = int(degree)
        e = est(g) if target is not None else None
        return {
            "degree": g,
            "estimate": (e["bound_if_valid"] if e and e["valid"] else (math.inf if e else None)),
            "found": True,
            "searched": searched,
        }
    if target is None:
        raise ValueError("choose_degree needs a target or a degree")
    acc = PILOT_ACCEPT * target

    def ok(g: int) -> bool:
        e = est(g)
        return e["valid"] and e["bound_if_valid"] <= acc

    def truncation_ok(g: int) -> bool:
        """The truncation part meets the target (rounding may not): the estimates' truncation
        falls with g while the rounding part grows slowly, so this is monotone in g."""
        e = est(g)
        rounding_only = all("rounding" in r for r in e.get("reasons", []))
        return (e["valid"] or rounding_only) and e["parts"].get("truncation", math.inf) <= acc

    def too_big(g: int) -> bool:
        return g > max_degree or feature_rank(d, g) > 10**12

    cap = 1
    while not too_big(cap + 1):
        cap = cap + 1 if cap < 64 else min(max_degree, cap * 2)
        if cap >= max_degree:
            break
    # a guess first (fewer pilot estimates, the same answer where truncation_ok is monotone in g):
    # the truncation part at GUESS_FROM, extrapolated by the Taylor tail ratio R/(g+2) per degree
    # (R = the largest row range), then checked at the guess and one below, walking at most
    # GUESS_STEPS degrees; anything else falls back to the doubling and bisection below
    hi = _guessed(pilot, acc, cap, truncation_ok)
    if hi is not None:
        return _finish(hi, cap, ok, searched, pilot)
    # the smallest degree whose truncation meets the target: doubling, then bisection
    lo, hi = 0, 1
    prev = math.inf
    while not truncation_ok(hi):
        e = pilot.estimate(hi)
        trunc = e["parts"].get("truncation", math.inf) if e["valid"] else math.inf
        if hi >= 8 and math.isfinite(trunc) and trunc >= 0.5 * prev:
            # it stopped falling: what is left is the score perturbation of the inputs' rounding
            # (inside the truncation chain) plus the rounding part; no degree can meet the target
            return _not_found(pilot, searched, hi)
        prev = trunc
        lo = hi
        if hi >= cap:
            return {
                "degree": hi,
                "estimate": searched.get(hi, math.inf),
                "found": False,
                "searched": searched,
            }
        hi = min(cap, hi * 2)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if truncation_ok(mid):
            hi = mid
        else:
            lo = mid
    return _finish(hi, cap, ok, searched, pilot)


def choose_degree_with_lead(
    pilot: Pilot, target: float | None, max_rank: int, d: int, degree: int | None = None, R=None
) -> dict:
    """`choose_degree`; when its degree's rank is over `max_rank` (or no degree was found) and the
    query gradient is adapted, the search again with the signed query lead in the estimates
    (bound_lead: one more pass in the run, so only where it avoids a refusal). The choice then has
    "lead": True and the pilot stays in lead mode; its degree is kept over the budget too when it is
    the smaller one (the refusal names the degree really needed)."""
    choice = choose_degree(pilot, target, max_rank, d, degree, R)
    ctx = pilot.ctx
    if degree is not None or target is None or not lead_applies(ctx.inst):
        return choice
    if choice["found"] and feature_rank(d, choice["degree"]) <= max_rank:
        return choice
    pilot.lead = True
    lead = choose_degree(pilot, target, max_rank, d, None, R)
    if lead["found"] and (feature_rank(d, lead["degree"]) <= max_rank or lead["degree"] < choice["degree"]):
        return dict(lead, lead=True)  # within the budget, or (a refusal) naming the smaller degree needed
    pilot.lead = False
    return choice


GUESS_FROM = 4
GUESS_STEPS = 3


def _guessed(pilot: Pilot, acc: float, cap: int, truncation_ok) -> int | None:
    """The smallest g with truncation_ok(g) and not truncation_ok(g - 1), found from an
    extrapolated guess in at most GUESS_STEPS + 2 estimates, or None (then the full search runs)."""
    if cap < GUESS_FROM + 1:
        return None
    truncation_ok(GUESS_FROM)  # recorded in `searched`
    e = pilot.estimate(GUESS_FROM)
    t = e["parts"].get("truncation", math.inf) if e["valid"] else math.inf
    R = float(np.max(pilot.ctx.R)) if pilot.ctx.R.size else 0.0
    if not (math.isfinite(t) and t > 0 and 0 < R):
        return None
    g = GUESS_FROM
    while t > acc and g < min(cap, GUESS_FROM + 40):
        t *= R / (g + 2)
        g += 1
    g = max(1, g)
    if g > 2 * GUESS_FROM:  # high degrees: the full search (truncation_ok is not always monotone there)
        return None
    if truncation_ok(g):
        for _ in range(GUESS_STEPS):
            if g == 1 or not truncation_ok(g - 1):
                return g
            g -= 1
        return None
    for _ in range(GUESS_STEPS):
        if g + 1 > cap:
            return None
        g += 1
        if truncation_ok(g):
            return g
    return None


def _finish(hi: int, cap: int, ok, searched: dict, pilot: Pilot) -> dict:
    """From the smallest degree whose truncation meets the target: the first of the next few
    degrees whose whole estimate meets it, one step down when that holds too."""
    for g in range(hi, min(cap, hi + 3) + 1):
        if ok(g):
            if g > 2 and ok(g - 1):  # odd/even alternation: one more step down when it holds
                g -= 1
            return {"degree": g, "estimate": searched[g], "found": True, "searched": searched}
    return _not_found(pilot, searched, hi)


def _not_found(pilot: Pilot, searched: dict, hi: int) -> dict:
    """No degree's estimate meets the target: the largest degree tried, with the best one's parts."""
    return {
        "degree": hi,
        "estimate": searched.get(hi, math.inf),
        "found": False,
        "searched": searched,
        "rounding_floor": _best(pilot, searched),
    }


def _best(pilot: Pilot, searched: dict) -> dict:
    """The searched degree with the smallest estimate, and its truncation and rounding parts (for
    the refusal when rounding, growing with g, keeps every degree above the target)."""
    g = min(searched, key=lambda k: searched[k])
    p = pilot.estimate(g)["parts"]
    return {
        "degree": g,
        "total": searched[g],
        "truncation": p.get("truncation", math.inf),
        "rounding": p.get("rounding", math.inf) + p.get("input", 0.0),
    }
