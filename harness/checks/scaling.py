"""The scaling checks: the solver timed over geometric L (bounded family, d = 4), single-threaded (work,
not parallelism; OpenMP barriers under a loaded machine make multi-threaded times jump by 0.1-0.4 s),
median of interleaved repeats (harness.measure.timing), log-log least squares with a bootstrap CI
(harness.measure.fit) over the work-dominated sizes only (harness.checks.evidence); and the same fit on
the solver's deterministic operation counts."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

import numpy as np

from harness.checks.budgets import OPS_MARGIN, Budget
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


def _caller(solver, dtype: str, device: str, opts: dict, forward: bool = False):
    """`call(inst) -> (output, ops)` for the solver: a callable's own mapping, a Solver's Result, or
    (forward) the attention output. No `torch.no_grad()`: autograd-based solvers need grad mode."""
    if forward:

        def fcall(inst):
            return solver.forward(inst, dtype=dtype, device=device, **opts), None

        return fcall
    fn = callable_of(solver)
    if fn is None:

        def call(inst):
            res = solver.solve(inst, dtype=dtype, device=device, **opts)
            return res, res.ops

        return call

    from harness.solvers.base import resolve_device, resolve_dtype

    dt, dev = resolve_dtype(dtype), resolve_device(device)

    def call(inst):
        out = fn(inst.as_torch(dtype=dt, device=dev))
        ops = out.get("ops") if hasattr(out, "get") else None
        return out, (int(ops) if ops is not None else None)

    return call


def _grow(Ls: list[int], first: list[float], budget: Budget) -> bool:
    """Double L once more? Only while the call predicted from the local slope stays under the per-call
    budget, and past 8192 only for code whose local slope is below 1.5 (no L x L matrices)."""
    L = Ls[-1]
    if not budget.repeats or 2 * L > budget.max_scaling_L or len(first) < 2:
        return False
    slope = max(1.0, math.log(max(first[-1], 1e-9) / max(first[-2], 1e-9)) / math.log(Ls[-1] / Ls[-2]))
    return first[-1] * 2**slope <= budget.call_budget_s and (slope < 1.5 or 2 * L <= 8192)


def measure_scaling(
    solver,
    budget: Budget,
    dtype: str = "float64",
    device: str = "cpu",
    opts: dict | None = None,
    forward: bool = False,
) -> dict:
    """Op counts and (with repeats) interleaved timings over geometric L, plus the call-overhead floor
    (median time at L = FLOOR_L; harness.checks.evidence). CPU times are this process's CPU time on one
    thread (the work, not the other jobs of a shared machine). Returns {"L", "seconds", "ops" or None,
    "floor_s"}."""
    from harness.checks.evidence import FLOOR_L

    call = _caller(solver, dtype, device, opts or {}, forward)
    cuda = str(device).startswith("cuda")
    timed_device, clock = (device, "wall") if cuda else (None, "process")
    with limit_threads(1):
        start = time.perf_counter()
        floor = 0.0
        if budget.repeats:
            fi = scaling_instance(FLOOR_L, budget.scaling_d)
            t = time_call(
                lambda: call(fi), warmup=1, repeats=max(3, budget.repeats), device=timed_device, clock=clock
            )
            floor = float(np.median(t["times"]))
        Ls, insts, ops, first = [], [], [], []
        sizes = list(budget.scaling_L)
        i = 0
        while i < len(sizes):
            inst = scaling_instance(sizes[i], budget.scaling_d)
            t = time_call(
                lambda inst=inst: call(inst),
                warmup=1 if budget.repeats else 0,
                repeats=1,
                device=timed_device,
                clock=clock,
            )
            Ls.append(sizes[i])
            insts.append(inst)
            ops.append(t["last"][1])  # op counts are deterministic
            first.append(t["times"][0])
            if (
                t["wall_times"][0] > budget.call_budget_s
                or time.perf_counter() - start > budget.scaling_budget_s / 3
            ):
                break
            if i == len(sizes) - 1 and _grow(Ls, first, budget):
                sizes.append(2 * sizes[i])
            i += 1
        seconds = time_interleaved(
            [lambda inst=inst: call(inst) for inst in insts],
            rounds=budget.repeats,
            budget_s=budget.scaling_budget_s - (time.perf_counter() - start),
            device=timed_device,
            clock=clock,
        )
    return {
        "L": Ls,
        "seconds": seconds,
        "ops": ops if all(o is not None for o in ops) else None,
        "floor_s": floor,
    }


def _measurement(ctx: CheckContext, forward: bool = False):
    """The scaling measurement, taken once and shared by `scaling` and `ops`: a dict, or the
    (status, detail) that explains why there is none ("not verified" when an exponent is claimed)."""
    key = "forward-scaling" if forward else "scaling"
    if key not in ctx.cache:
        solver, r = ctx.solver, ctx.runner
        claimed = ctx.claim_exponent is not None
        try:
            m = measure_scaling(solver, ctx.budget, r.dtype, r.device, r.opts, forward=forward)
        except HarnessError as exc:
            if refused(solver, exc):
                m = (
                    "not verified" if claimed else "skip",
                    f"solver refused a scaling instance: {one_line(exc)}",
                )
            else:
                m = ("FAIL", f"solver failed on a scaling instance: {one_line(exc)}")
        except Exception as exc:
            m = ("FAIL", f"solver failed on a scaling instance: {one_line(exc)}")
        if isinstance(m, dict) and len(m["L"]) < 3:
            m = (
                "not verified" if claimed else "skip",
                f"solver too slow for a fit (one call > {ctx.budget.call_budget_s:g} s at L={m['L'][-1]})",
            )
        ctx.cache[key] = m
    return ctx.cache[key]


def _witness(ctx: CheckContext, check: str, L: int, desc: str) -> str:
    """For an exponent claim the witness is the largest timed instance (a reproducer)."""
    return write_counterexample(
        scaling_instance(L, ctx.budget.scaling_d), ctx.out_dir, ctx.solver.name, check, desc
    )


def _ops_verdict(ctx: CheckContext, m: dict) -> CheckOutcome:
    Ls, claim = m["L"], ctx.claim_exponent
    ofit = fit_exponent(Ls, [[o] for o in m["ops"]], n_boot=1)
    desc = f"ops ~ L^{ofit['exponent']:.2f} over L={Ls[0]}..{Ls[-1]} (deterministic)"
    figs = {"L": Ls, "ops": m["ops"], "exponent": ofit["exponent"]}
    if claim is None:
        return CheckOutcome("ops", "info", desc + "; no exponent claimed", figures=figs)
    if ofit["exponent"] > claim + OPS_MARGIN:
        return CheckOutcome(
            "ops",
            "FAIL",
            f"{desc}: above claimed {claim:g} + {OPS_MARGIN:g}",
            counterexample=_witness(ctx, "ops", Ls[-1], desc),
            figures=figs,
        )
    return CheckOutcome("ops", "pass", f"{desc}; claimed {claim:g}", figures=figs)


def timing_outcome(ctx: CheckContext, check: str = "scaling", forward: bool = False) -> CheckOutcome | None:
    """The timing verdict (harness.checks.evidence): only work-dominated sizes count."""
    from harness.checks.evidence import exponent_evidence, exponent_verdict

    m = _measurement(ctx, forward)
    if isinstance(m, tuple):
        return CheckOutcome(check, *m)
    claim = ctx.claim_exponent
    ops_decides = bool(m["ops"]) and claim is not None
    if not ctx.budget.repeats:
        if m["ops"] and "ops" in ctx.selected and not forward:
            return None  # timing disabled: the op-count fit is the evidence
        status = "not verified" if claim is not None and not ops_decides else "skip"
        return CheckOutcome(
            check,
            status,
            "timing disabled at this budget"
            + (" (the `ops` check fits op counts)" if m["ops"] else " and no op counts"),
        )
    ev = exponent_evidence(m["L"], m["seconds"], m["floor_s"], n_boot=ctx.budget.n_boot)
    status, desc = exponent_verdict(claim, ev)
    if status == "not verified" and ops_decides and "ops" in ctx.selected:
        status, desc = "info", desc + " (the claim is decided by the op counts)"
    figs = {
        "L": m["L"],
        "median_seconds": ev["medians"],
        "floor_s": ev["floor_s"],
        "fitted_L": ev["kept"],
        **(ev.get("fit") or {}),
    }
    cex = _witness(ctx, check, m["L"][-1], desc) if status == "FAIL" else None
    return CheckOutcome(check, status, desc, counterexample=cex, figures=figs)


def scaling(ctx: CheckContext) -> CheckOutcome | None:
    """Fitted exponent of time over geometric L, on work-dominated sizes only, within the claim (+ MARGIN).

    Bounded family, d = 4, one thread, process CPU time, median of interleaved repeats; sizes grow by
    doubling while calls stay cheap. Only sizes whose time is >= 10x the call overhead (measured at
    L = 16) are fitted; with fewer than 3 spanning 4x in L, or a CI wider than 1, an exponent claim is
    "not verified" (harness.checks.evidence). FAIL when the CI's low end exceeds claim + MARGIN."""
    return timing_outcome(ctx)


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
    return _ops_verdict(ctx, m)
