"""The third-party property suite behind `lora-harness check --solver S` (no instance file).

A solver is anything `harness.solvers.get_solver` resolves: a built-in name, `module:attr` naming a
callable `f(mapping of interchange-format tensors) -> mapping of gradients`, or a `lora_harness.solvers`
entry point. The suite runs the named checks of `harness.checks.registry` (`finite`, `accuracy`,
`invariance`, `chain`, `scaling`, `ops` by default; `certificate` on request; with `forward_only`
the checks of the attention output, `forward-*` and `equivariance`) and returns a `SuiteReport`
whose table, verdict and exit code the CLI prints (docs/referee.md).

Before any check the solver is called once on a tiny instance (harness.checks.contract): a callable
that breaks the calling convention is a usage error, not a finding. Warnings raised by the solver
are recorded and reported once each, with their count.

Property checks use `hypothesis.find`: a failing example is shrunk to a minimal one, which is
written in the interchange format (harness.io.save_instance) to `out_dir`, and its path reported.
The solver's counterexamples already in `out_dir` (`<solver>-<check>*.npz`) are replayed first,
so a regression found once is checked again on every later run (add your own pins there).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable

from harness.checks.budgets import DEFAULT, DEFAULT_EPS, QUICK, Budget, resolve_budget
from harness.checks.context import CheckContext
from harness.checks.contract import check_contract
from harness.checks.outcome import CheckOutcome, SuiteReport
from harness.checks.registry import CHECKS, resolve_checks
from harness.checks.runner import SolverRunner
from harness.errors import HarnessError
from harness.measure.threads import limit_threads


def _positive(name: str, value: float | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise HarnessError(f"--{name} must be a positive number, got {value}")


def run_suite(
    solver,
    claim_eps: float | None = None,
    claim_exponent: float | None = None,
    out_dir: str | os.PathLike = "lora-harness-counterexamples",
    dtype: str = "float64",
    device: str = "cpu",
    opts: dict | None = None,
    reference: str = "autograd",
    budget: Budget | str = DEFAULT,
    checks: Iterable[str] | str | None = None,
    forward_only: bool = False,
    causal: bool = False,
) -> SuiteReport:
    """Run the property suite on `solver` (name, `module:attr`, Solver or callable).

    `checks` names the checks to run (registry order; see `harness.checks.CHECKS`); the default ones
    when None. `causal`: every check draws causal instances (query j attends keys m <= j; attention
    functions are called with is_causal=True; `invariance` and `equivariance` append keys no query may
    see instead of permuting rows; the SAT chains are skipped). Bad arguments are one-line HarnessErrors
    raised before anything runs."""
    from harness.solvers import get_solver
    from harness.solvers.base import resolve_device
    from harness.solvers.reference import ReferenceCache

    budget = resolve_budget(budget)
    _positive("claim-eps", claim_eps)
    _positive("claim-exponent", claim_exponent)
    if dtype not in DEFAULT_EPS:
        raise HarnessError(f"unsupported dtype {dtype!r}; use float32 or float64")
    resolve_device(device)  # an unavailable device is a usage error
    names = resolve_checks(checks, forward_only)
    solver = get_solver(solver)
    solver.check_options(opts or {})  # an unknown or out-of-range option is a usage error, not a finding
    if not budget.scaling:
        names = tuple(n for n in names if n not in ("scaling", "ops", "forward-scaling"))
    if dtype == "float64" and getattr(solver, "supports_float64", True) is False:
        dtype = "float32"  # a function that declares no float64 support runs in float32
    runner = SolverRunner(solver, ReferenceCache(reference), dtype, device, opts or {})
    exact = bool(getattr(solver, "exact", False))
    eps = claim_eps if claim_eps is not None else (DEFAULT_EPS[dtype] if exact else None)
    ctx = CheckContext(runner, eps, claim_exponent, budget, out_dir, frozenset(names), causal=causal)
    with limit_threads(1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_contract(solver, dtype, device, forward=forward_only, causal=causal)  # usage errors first
        outcomes = [CHECKS[name](ctx) for name in names]
    outcomes += untested_claims(names, claim_eps=claim_eps, claim_exponent=claim_exponent)
    name = solver.name + (" (forward only)" if forward_only else "") + (" (causal)" if causal else "")
    return SuiteReport(name, [o for o in outcomes if o is not None], warnings=once_each(caught))


#: the checks that hold each claim to its figure
CLAIM_CHECKS = {
    "claim-eps": ("accuracy", "forward-accuracy"),
    "claim-exponent": ("scaling", "ops", "forward-scaling"),
}


def untested_claims(names, **claims) -> list[CheckOutcome]:
    """A "not verified" row for each claim made (claim_eps=, claim_exponent=) that none of the checks
    run (`names`) tests: a claim left out of the selection is never reported as holding."""
    rows = []
    for key, value in claims.items():
        flag = key.replace("_", "-")
        testers = CLAIM_CHECKS[flag]
        if value is not None and not set(testers) & set(names):
            rows.append(
                CheckOutcome(
                    flag,
                    "not verified",
                    f"--{flag} {value:g} was claimed, but no check that tests it ran "
                    f"({', '.join(testers)} do; checks run: {', '.join(names) or 'none'})",
                )
            )
    return rows


def once_each(caught) -> list[tuple[int, str]]:
    """Each distinct warning once with how often it was raised. (Hypothesis enters
    `warnings.catch_warnings()` on every draw, which resets Python's once-per-location registry, so
    a library warning would otherwise print once per example.)"""
    counts: dict[str, int] = {}
    for w in caught:
        msg = " ".join(str(w.message).split())
        key = f"{os.path.basename(str(w.filename))}:{w.lineno}: {w.category.__name__}: {msg}"
        counts[key] = counts.get(key, 0) + 1
    return [(n, k) for k, n in counts.items()]


def assert_solver_meets(
    solver,
    eps: float | None = None,
    exponent: float | None = None,
    budget: Budget | str = QUICK,
    out_dir: str | os.PathLike | None = None,
    **kw,
) -> SuiteReport:
    """Run the suite and raise AssertionError (with the table and the counterexample path) when a
    claim fails; for use in a user's own tests (also exported by the pytest plugin). Without an
    exponent claim the timing checks are left out."""
    if out_dir is None:
        import tempfile

        out_dir = tempfile.mkdtemp(prefix="lora-harness-cex-")
    if exponent is None and "checks" not in kw:
        kw["checks"] = tuple(
            n
            for n in resolve_checks(None, kw.get("forward_only", False))
            if n not in ("scaling", "ops", "forward-scaling")
        )
    report = run_suite(solver, claim_eps=eps, claim_exponent=exponent, out_dir=out_dir, budget=budget, **kw)
    if not report.ok:
        raise AssertionError("solver does not meet its claims:\n" + report.table())
    if report.unverified:  # an unverifiable claim never passes
        raise AssertionError("the solver's claims were not verified:\n" + report.table())
    return report
