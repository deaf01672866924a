"""The scaling checks: the solver timed over geometric L (bounded family, d = 4), single-threaded (work,
not parallelism; OpenMP barriers under a loaded machine make multi-threaded times jump by 0.1-0.4 s),
median of interleaved repeats (harness.measure.timing), log-log least squares with a bootstrap CI
(harness.measure.fit); and the same fit on the solver's deterministic operation counts."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

from harness.checks.budgets import MARGIN, MIN_TIMED_S, OPS_MARGIN, Budget
from harness.checks.context import CheckContext
from harness.checks.outcome import CheckOutcome
from harness.checks.runner import callable_of, one_line, refused
from harness.checks.search import write_counterexample
from harness.errors import HarnessError
from harness.measure.threads import limit_threads
from harness.measure.timing import time_call, time_interleaved


def fit_exponent(
    xs: Iterable[float], samples: Iterable[Iterable[float]], n_boot: int = 400, seed: int = 0
) -> dict:
    """Log-log least-squares slope of median(samples) against xs with a 95% bootstrap CI
    (`harness.measure.fit.fit_power`: resamples residuals and, with several repeats, the repeats)."""
    from harness.measure.fit import fit_power

    xs = np.asarray(list(xs), dtype=float)
    samples = [np.asarray(list(s), dtype=float) for s in samples]
    med = [float(np.median(s)) for s in samples]
    out = fit_power(xs, med, samples=samples if len(samples[0]) > 1 else None, n_boot=n_boot, seed=seed)
    return {"exponent": float(out["exponent"]), "ci_low": float(out["ci"][0]), "ci_high": float(out["ci"][1])}


def scaling_instance(L: int, d: int):
    from harness import families

    return families.bounded(L=L, d=d, r=2, gamma=1.0, adapt=("q", "v"), seed=L)


def _caller(solver, dtype: str, device: str, opts: dict):
    """`call(inst) -> (output, ops)` for the solver: a callable's own mapping, or a Solver's Result."""
    fn = callable_of(solver)
    if fn is None:

        def call(inst):
            res = solver.solve(inst, dtype=dtype, device=device, **opts)
            return res, res.ops

        return call

    import torch

    from harness.solvers.base import resolve_device, resolve_dtype

    dt, dev = resolve_dtype(dtype), resolve_device(device)

    def call(inst):
        t = inst.as_torch(dtype=dt, device=dev)
        with torch.no_grad():
            out = fn(t)
        ops = out.get("ops") if hasattr(out, "get") else None
        return out, (int(ops) if ops is not None else None)

    return call


def measure_scaling(
    solver, budget: Budget, dtype: str = "float64", device: str = "cpu", opts: dict | None = None
) -> dict:
    """Times (interleaved repeats) and op counts over geometric L. Returns
    {"L": [...], "seconds": [[...], ...], "ops": [...] or None}."""
    call = _caller(solver, dtype, device, opts or {})
    timed_device = device if str(device).startswith("cuda") else None
    with limit_threads(1):
        start = time.perf_counter()
        Ls, insts, ops = [], [], []
        for L in budget.scaling_L:
            inst = scaling_instance(L, budget.scaling_d)
            first = time_call(lambda inst=inst: call(inst), warmup=0, repeats=1, device=timed_device)
            Ls.append(L)
            insts.append(inst)
            ops.append(first["last"][1])  # the warm-up call gives the op count (deterministic)
            if (
                first["wall_times"][0] > budget.call_budget_s
                or time.perf_counter() - start > budget.scaling_budget_s / 3
            ):
                break
        seconds = time_interleaved(
            [lambda inst=inst: call(inst) for inst in insts],
            rounds=budget.repeats,
            budget_s=budget.scaling_budget_s - (time.perf_counter() - start),
            device=timed_device,
        )
    return {"L": Ls, "seconds": seconds, "ops": ops if all(o is not None for o in ops) else None}


def _measurement(ctx: CheckContext):
    """The scaling measurement, taken once and shared by `scaling` and `ops`: a dict, or the
    CheckOutcome (status, detail) that explains why there is none."""
    if "scaling" not in ctx.cache:
        solver, r = ctx.solver, ctx.runner
        try:
            m = measure_scaling(solver, ctx.budget, r.dtype, r.device, r.opts)
        except HarnessError as exc:
            if refused(solver, exc):
                m = ("skip", f"solver refused a scaling instance: {one_line(exc)}")
            else:
                m = ("FAIL", f"solver failed on a scaling instance: {one_line(exc)}")
        except Exception as exc:
            m = ("FAIL", f"solver failed on a scaling instance: {one_line(exc)}")
        if isinstance(m, dict) and len(m["L"]) < 3:
            m = (
                "skip",
                f"solver too slow for a fit (one call > {ctx.budget.call_budget_s:g} s at L={m['L'][-1]})",
            )
        ctx.cache["scaling"] = m
    return ctx.cache["scaling"]


def _verdict(
    ctx: CheckContext, check: str, desc: str, value: float, margin: float, figs: dict, L_max: int
) -> CheckOutcome:
    claim = ctx.claim_exponent
    if claim is None:
        return CheckOutcome(check, "info", desc + "; no exponent claimed", figures=figs)
    if value > claim + margin:
        witness = write_counterexample(
            scaling_instance(L_max, ctx.budget.scaling_d), ctx.out_dir, ctx.solver.name, "scaling", desc
        )  # the largest timed instance
        return CheckOutcome(
            check,
            "FAIL",
            f"{desc}: above claimed {claim:g} + {margin:g}",
            counterexample=witness,
            figures=figs,
        )
    return CheckOutcome(check, "pass", f"{desc}; claimed {claim:g}", figures=figs)


def scaling(ctx: CheckContext) -> CheckOutcome | None:
    """Fitted exponent of wall time over geometric L within the claimed exponent (+ MARGIN).

    Bounded family, d = 4, single-threaded, median of interleaved repeats; sizes whose median call
    is under MIN_TIMED_S are overhead and left out of the fit when 3 sizes remain. The exponent claim
    fails when the fit's 95% CI lower end exceeds the claim by MARGIN. With timing disabled by the
    budget only the `ops` fit is reported."""
    m = _measurement(ctx)
    if isinstance(m, tuple):
        return CheckOutcome("scaling", *m)
    if not ctx.budget.repeats:
        if not m["ops"]:
            return CheckOutcome("scaling", "skip", "timing disabled and the solver reports no op counts")
        if "ops" in ctx.selected:
            return None  # timing disabled: the op-count fit is the evidence
        return CheckOutcome(
            "scaling", "skip", "timing disabled at this budget (the `ops` check fits op counts)"
        )
    Ls = m["L"]
    keep = [i for i, s in enumerate(m["seconds"]) if np.median(s) >= MIN_TIMED_S]
    keep = keep if len(keep) >= 3 else list(range(len(Ls)))
    fit = fit_exponent([Ls[i] for i in keep], [m["seconds"][i] for i in keep], n_boot=ctx.budget.n_boot)
    desc = (
        f"time ~ L^{fit['exponent']:.2f} (95% CI {fit['ci_low']:.2f}..{fit['ci_high']:.2f}) "
        f"over L={Ls[keep[0]]}..{Ls[keep[-1]]}"
    )
    figs = {"L": Ls, "median_seconds": [float(np.median(s)) for s in m["seconds"]], **fit}
    return _verdict(ctx, "scaling", desc, fit["ci_low"], MARGIN, figs, Ls[-1])


def ops(ctx: CheckContext) -> CheckOutcome | None:
    """Fitted exponent of the solver's deterministic operation counts within the claim (+ OPS_MARGIN).

    The counts are `Result.ops`, or an `ops` entry in a callable's returned mapping; the same
    geometric L as `scaling`. Nothing to report when the solver gives no counts."""
    m = _measurement(ctx)
    if isinstance(m, tuple):
        return None if "scaling" in ctx.selected else CheckOutcome("ops", *m)
    if not m["ops"]:
        return (
            None
            if "scaling" in ctx.selected
            else CheckOutcome("ops", "skip", "the solver reports no operation counts")
        )
    Ls = m["L"]
    ofit = fit_exponent(Ls, [[o] for o in m["ops"]], n_boot=1)
    desc = f"ops ~ L^{ofit['exponent']:.2f} over L={Ls[0]}..{Ls[-1]} (deterministic)"
    return _verdict(
        ctx,
        "ops",
        desc,
        ofit["exponent"],
        OPS_MARGIN,
        {"L": Ls, "ops": m["ops"], "exponent": ofit["exponent"]},
        Ls[-1],
    )
