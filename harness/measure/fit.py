"""Empirical exponents and crossovers (docs/study.md).

* `fit_power(x, y)`: least squares of log y = a + b log x (the exponent b) with a seeded bootstrap
  95% confidence interval. The bootstrap resamples residuals (with the small-sample inflation
  sqrt(n/(n-2))) and, where per-point repeat samples are given, also resamples the repeats and
  recomputes their median, so both lack-of-fit and timing noise widen the interval. With two
  points the fit is exact and the interval collapses to the point (flagged "exact_fit").
* `fit_segmented(x, y)`: continuous two-segment fit in log-log (grid search over the break between
  data points): separates the overhead-dominated head from the asymptotic tail.
* `crossover(x, ya, yb)`: where solver a's and solver b's time curves cross, L*: the root of the
  straight-line fit of log(ya/yb) against log x (equivalently where the two fitted power laws
  intersect on the common sizes), with a bootstrap CI, plus the observed crossing of the measured
  ratio (log-log interpolation between the two sizes where the ratio changes side of 1).
  "none" when the fitted ratio is flat (no crossover at any L).

The same functions fit operation counts (deterministic, so CI can gate on them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.errors import HarnessError

N_BOOT = 2000
LEVEL = 0.95


def _logs(x: Sequence[float], y: Sequence[float], what: str = "y") -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise HarnessError(f"fit: x and {what} must be 1-d and of equal length, got {x.shape} and {y.shape}")
    if x.size < 2:
        raise HarnessError(f"fit: need at least 2 points, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise HarnessError(f"fit: x and {what} must be finite and positive (log-log fit)")
    if np.unique(x).size < 2:
        raise HarnessError("fit: need at least 2 distinct x values")
    return np.log(x), np.log(y)


def _ols(lx: np.ndarray, ly: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of least squares ly = intercept + slope lx."""
    xm = lx.mean()
    sxx = float(((lx - xm) ** 2).sum())
    slope = float(((lx - xm) * (ly - ly.mean())).sum() / sxx)
    return slope, float(ly.mean() - slope * xm)


def _ols_batch(lx: np.ndarray, LY: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise least squares for a (B, n) batch of responses on the same lx."""
    xm = lx.mean()
    dx = lx - xm
    slope = (LY - LY.mean(1, keepdims=True)) @ dx / float((dx**2).sum())
    return slope, LY.mean(1) - slope * xm


def _bootstrap_responses(
    lx: np.ndarray, ly: np.ndarray, samples, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_boot, n) bootstrap replicates of log y: resampled repeats (when given) plus resampled,
    inflated residuals of the straight-line fit."""
    n = lx.size
    slope, icpt = _ols(lx, ly)
    fitted = icpt + slope * lx
    resid = ly - fitted
    if n > 2:
        resid = resid * math.sqrt(n / (n - 2))
    base = np.broadcast_to(fitted, (n_boot, n)).copy()
    if samples is not None:
        # replace the point estimate's noise by the noise of a resampled median of repeats
        for j, s in enumerate(samples):
            s = np.asarray(s, np.float64)
            if s.size > 1 and np.all(s > 0):
                idx = rng.integers(0, s.size, size=(n_boot, s.size))
                base[:, j] += np.log(np.median(s[idx], axis=1)) - ly[j]
    base += resid[rng.integers(0, n, size=(n_boot, n))]
    return base


def fit_power(
    x: Sequence[float],
    y: Sequence[float],
    *,
    samples: Sequence[Sequence[float]] | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, Any]:
    """Fit y ~ C x^b by log-log least squares. Returns {"exponent" b, "log_coef" log C, "ci" [lo, hi]
    (bootstrap percentile interval at `level`), "r2", "n", "x_range", "exact_fit" (n == 2 or zero
    residuals)}. `samples[j]` are optional repeat measurements behind y[j] (e.g. the timing repeats)."""
    lx, ly = _logs(x, y)
    b, a = _ols(lx, ly)
    resid = ly - (a + b * lx)
    sst = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / sst if sst > 0 else 1.0
    rng = np.random.default_rng(seed)
    if samples is not None and len(samples) != lx.size:
        raise HarnessError(f"fit: samples has {len(samples)} entries for {lx.size} points")
    LY = _bootstrap_responses(lx, ly, samples, n_boot, rng)
    slopes, _ = _ols_batch(lx, LY)
    q = (1 - level) / 2
    lo, hi = (float(v) for v in np.quantile(slopes, [q, 1 - q]))
    exact = lx.size == 2 or bool(np.allclose(resid, 0, atol=1e-12))
    return {
        "exponent": b,
        "log_coef": a,
        "ci": [min(lo, b), max(hi, b)],
        "r2": r2,
        "n": int(lx.size),
        "x_range": [float(np.exp(lx.min())), float(np.exp(lx.max()))],
        "exact_fit": exact,
        "level": level,
        "n_boot": n_boot,
        "seed": seed,
    }


def predict(fit: dict[str, Any], x: Sequence[float] | float) -> np.ndarray:
    """C x^b of a `fit_power` result."""
    return np.exp(fit["log_coef"] + fit["exponent"] * np.log(np.asarray(x, np.float64)))


def fit_segmented(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Continuous two-segment log-log fit: log y = a + b1 (t - t0) for t <= t0, a + b2 (t - t0) after,
    t = log x, the break t0 searched on a fine grid strictly inside the data range (>= 2 points on each
    side counted by position). Returns {"break_x", "slope_low", "slope_high", "sse", "sse_line"}.
    Needs >= 4 points; with fewer it returns the single line (break_x None)."""
    lx, ly = _logs(x, y)
    order = np.argsort(lx)
    lx, ly = lx[order], ly[order]
    b, a = _ols(lx, ly)
    sse_line = float(((ly - a - b * lx) ** 2).sum())
    out = {"break_x": None, "slope_low": b, "slope_high": b, "sse": sse_line, "sse_line": sse_line}
    if lx.size < 4:
        return out
    best = None
    for t0 in np.linspace(lx[1], lx[-2], 64):
        Xd = np.stack([np.ones_like(lx), np.minimum(lx - t0, 0), np.maximum(lx - t0, 0)], 1)
        coef, *_ = np.linalg.lstsq(Xd, ly, rcond=None)
        sse = float(((Xd @ coef - ly) ** 2).sum())
        if best is None or sse < best[0] - 1e-15:
            best = (sse, t0, coef)
    sse, t0, coef = best
    out.update(break_x=float(np.exp(t0)), slope_low=float(coef[1]), slope_high=float(coef[2]), sse=sse)
    return out


def _observed_crossing(lx: np.ndarray, lr: np.ndarray) -> float | None:
    """First L where the measured log ratio changes sign (log-log interpolation), else None."""
    for j in range(lx.size - 1):
        a, b = lr[j], lr[j + 1]
        if a == 0:
            return float(np.exp(lx[j]))
        if a * b < 0:
            t = lx[j] + (lx[j + 1] - lx[j]) * a / (a - b)
            return float(np.exp(t))
    if lr[-1] == 0:
        return float(np.exp(lx[-1]))
    return None


def crossover(
    x: Sequence[float],
    ya: Sequence[float],
    yb: Sequence[float],
    *,
    samples_a=None,
    samples_b=None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
    flat_tol: float = 1e-9,
) -> dict[str, Any]:
    """Crossover L* of two cost curves measured at the same sizes x (see module doc). Returns
    {"x_star" (None: no crossover), "ci" [lo, hi] or None, "observed" (measured crossing or None),
    "extrapolated" (x_star outside the measured range), "ratio_slope" (exponent of ya/yb),
    "ratio_slope_ci", "faster_above" ("a", "b" or None), "boot_no_cross" (fraction of bootstrap
    replicates with no crossing)}."""
    lx, la = _logs(x, ya, "ya")
    _, lb = _logs(x, yb, "yb")
    order = np.argsort(lx)
    lx, la, lb = lx[order], la[order], lb[order]
    lr = la - lb
    s, c = _ols(lx, lr)
    rng = np.random.default_rng(seed)
    sa = None if samples_a is None else [samples_a[i] for i in order]
    sb = None if samples_b is None else [samples_b[i] for i in order]
    A = _bootstrap_responses(lx, la, sa, n_boot, rng)
    B = _bootstrap_responses(lx, lb, sb, n_boot, rng)
    bs, bc = _ols_batch(lx, A - B)
    q = (1 - level) / 2
    out = {
        "observed": _observed_crossing(lx, lr),
        "ratio_slope": s,
        "ratio_slope_ci": [float(v) for v in np.quantile(bs, [q, 1 - q])],
        "x_range": [float(np.exp(lx[0])), float(np.exp(lx[-1]))],
        "level": level,
        "seed": seed,
    }
    if abs(s) <= flat_tol:
        out.update(x_star=None, ci=None, extrapolated=False, faster_above=None, boot_no_cross=1.0)
        return out
    t_star = -c / s
    ok = np.abs(bs) > flat_tol
    ts = -bc[ok] / bs[ok]
    # replicates whose ratio slope has the other sign describe no crossover in the same direction
    same = np.sign(bs[ok]) == np.sign(s)
    ts = ts[same]
    no_cross = 1.0 - ts.size / n_boot
    ci = None
    if ts.size:
        lo, hi = np.quantile(ts, [q, 1 - q])
        ci = [float(np.exp(min(lo, t_star, 700.0))), float(np.exp(min(max(hi, t_star), 700.0)))]
    x_star = float(np.exp(min(t_star, 700.0)))
    out.update(
        x_star=x_star,
        ci=ci,
        extrapolated=not (lx[0] <= t_star <= lx[-1]),
        faster_above="b" if s > 0 else "a",
        boot_no_cross=float(no_cross),
    )
    return out
