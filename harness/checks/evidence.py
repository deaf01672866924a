"""When does a timing fit verify an exponent claim? (used by harness.checks.scaling)

A call costs t(L) = c + w(L): c the fixed overhead (Python, dispatch, autograd graph, module
construction), w(L) ~ a L^k the work. The log-log slope of t at L is k w / t, so a fit over sizes where
c is not small against t reads below k (L^0.3-0.7 for quadratic code at d = 4, L <= 4096, measured).

Rule: the overhead floor c_hat is the median time of the same call at a tiny size (L = FLOOR_L).
A size is *work-dominated* when its median time is at least WORK_FACTOR x c_hat: there the overhead
is at most 1/WORK_FACTOR of the time, so the local slope is at least (1 - 1/WORK_FACTOR) k = 0.9 k.
An exponent claim is verified only from a fit on >= MIN_SIZES work-dominated sizes spanning at least
MIN_SPAN in L whose bootstrap CI is narrower than MAX_CI_WIDTH; otherwise it is "not verified".
Verdict on a verified fit (MARGIN absorbs cache effects, which push clean O(L^2) code to ~2.2-2.5):
FAIL when the CI's low end exceeds claim + MARGIN; pass when the point estimate is at most
claim + MARGIN; else "not verified" (inconclusive).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.checks.budgets import MARGIN  # cache effects: clean O(L^2) code reads 2.2-2.5

FLOOR_L = 16
WORK_FACTOR = 10.0
MIN_SIZES = 3
MIN_SPAN = 4.0
MAX_CI_WIDTH = 1.0


def work_dominated(Ls: Sequence[int], medians: Sequence[float], floor: float) -> list[int]:
    """Indices of sizes whose median time is >= WORK_FACTOR x the overhead floor."""
    return [i for i, t in enumerate(medians) if t >= WORK_FACTOR * floor]


def exponent_evidence(Ls, samples, floor: float, n_boot: int = 400) -> dict:
    """{"status": "fit" | "overhead", "reason", "fit" (exponent, ci_low, ci_high), "sizes"}."""
    from harness.measure.fit import fit_power

    med = [float(np.median(s)) for s in samples]
    keep = work_dominated(Ls, med, floor)
    out = {"floor_s": floor, "medians": med, "kept": [Ls[i] for i in keep]}
    if len(keep) < MIN_SIZES or Ls[keep[-1]] / Ls[keep[0]] < MIN_SPAN:
        biggest = max(med) if med else 0.0
        out.update(
            status="overhead",
            reason=(
                f"only {len(keep)} size(s) with time >= {WORK_FACTOR:g} x the call overhead "
                f"({floor * 1e3:.2g} ms at L={FLOOR_L}); largest call {biggest * 1e3:.3g} ms "
                f"at L={Ls[-1] if Ls else 0}: need {MIN_SIZES} spanning {MIN_SPAN:g}x in L"
            ),
        )
        return out
    xs = [Ls[i] for i in keep]
    ss = [samples[i] for i in keep]
    f = fit_power(xs, [med[i] for i in keep], samples=ss if len(ss[0]) > 1 else None, n_boot=n_boot)
    fit = {"exponent": float(f["exponent"]), "ci_low": float(f["ci"][0]), "ci_high": float(f["ci"][1])}
    out.update(status="fit", fit=fit, reason="")
    if fit["ci_high"] - fit["ci_low"] > MAX_CI_WIDTH:
        out.update(
            status="noisy",
            reason=f"95% CI {fit['ci_low']:.2f}..{fit['ci_high']:.2f} is wider than {MAX_CI_WIDTH:g}",
        )
    return out


def exponent_verdict(claim: float | None, ev: dict, margin: float = MARGIN) -> tuple[str, str]:
    """(status, detail) for a timing-based exponent claim."""
    if ev["status"] == "overhead":
        return (
            "not verified" if claim is not None else "info"
        ), f"timing dominated by overhead: {ev['reason']}"
    f = ev["fit"]
    kept = ev["kept"]
    desc = (
        f"time ~ L^{f['exponent']:.2f} (95% CI {f['ci_low']:.2f}..{f['ci_high']:.2f}) over "
        f"L={kept[0]}..{kept[-1]} (work-dominated sizes: >= {WORK_FACTOR:g} x overhead)"
    )
    if claim is None:
        return "info", desc + "; no exponent claimed"
    if f["ci_low"] > claim + margin:
        return "FAIL", f"{desc}: above claimed {claim:g} + {margin:g}"
    if ev["status"] == "noisy":
        return "not verified", f"{desc}: {ev['reason']}"
    if f["exponent"] <= claim + margin:
        return "pass", f"{desc}; claimed {claim:g}"
    return "not verified", f"{desc}: inconclusive against claimed {claim:g} + {margin:g}"
