"""Search and replay: a property check draws instances with Hypothesis (`hypothesis.find`), shrinks a
failure to a minimal instance, writes it in the interchange format to the counterexample folder, and
replays the solver's saved counterexamples first on every later run (like Hypothesis's example
database: a fixed bug stays fixed)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.checks.budgets import Budget
from harness.checks.outcome import CheckOutcome
from harness.errors import HarnessError


def hypothesis_settings(budget: Budget):
    from hypothesis import HealthCheck, Phase, settings

    return settings(
        max_examples=budget.max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
        report_multiple_bugs=False,
    )


def find_minimal(strategy, problem: Callable[[Any], str | None], budget: Budget):
    """(minimal failing instance, message, examples tried) or (None, None, examples tried)."""
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    tried, found = [0], [False]
    start = time.perf_counter()

    def fails(inst) -> bool:
        if not found[0] and time.perf_counter() - start > budget.property_budget_s:
            return False  # time budget spent: the remaining draws are not run
        tried[0] += 1
        bad = problem(inst) is not None
        found[0] = found[0] or bad
        return bad

    try:
        inst = find(strategy, fails, settings=hypothesis_settings(budget))
    except NoSuchExample:
        return None, None, tried[0]
    return inst, problem(inst), tried[0]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80] or "solver"


def write_counterexample(inst, out_dir: str | os.PathLike, solver_name: str, check: str, message: str) -> str:
    """Save the minimal failing instance (interchange format) and return its path."""
    from harness.fsio import make_folder
    from harness.io import save_instance

    out = make_folder(out_dir, "counterexample folder")
    path = out / f"{_slug(solver_name)}-{check}.npz"
    meta = dict(inst.meta)
    meta["counterexample"] = {"solver": solver_name, "check": check, "message": message}
    save_instance(inst.replace(meta=meta), path)
    return str(path)


MAX_REPLAY = 50


def replay(name: str, solver_name: str, problem, out_dir) -> tuple[Any, str | None, int]:
    """This solver's saved counterexamples of this check in `out_dir` run first, like Hypothesis's
    example database: a fixed bug stays fixed. (first still-failing instance, message, count)"""
    from harness.io import load_instance

    folder = Path(out_dir)
    if not folder.is_dir():
        return None, None, 0
    n = 0
    for path in sorted(folder.glob(f"{_slug(solver_name)}-{name}*.npz"))[:MAX_REPLAY]:
        try:
            inst = load_instance(path)
        except HarnessError:
            continue
        n += 1
        msg = problem(inst)
        if msg is not None:
            return inst, msg, n
    return None, None, n


def property_check(name: str, strategy, problem, runner, budget, out_dir) -> CheckOutcome:
    """Replay, then search; "pass" carries the runner's tallies as figures, and a check whose every
    instance the solver declined is "not verified" (a refusal is never a pass)."""
    t0 = time.perf_counter()
    runner.begin()
    inst, msg, replayed = replay(name, runner.solver.name, problem, out_dir)
    if inst is not None:
        path = write_counterexample(inst, out_dir, runner.solver.name, name, msg)
        return CheckOutcome(name, "FAIL", f"{msg} (a saved counterexample, replayed)", counterexample=path)
    inst, msg, tried = find_minimal(strategy, problem, budget)
    secs = time.perf_counter() - t0
    if inst is None:
        again = f" + {replayed} saved counterexamples" if replayed else ""
        cut = ", time budget reached" if tried < budget.max_examples else ""
        tl = runner.tally
        if tl["refused"] and not tl["solved"]:
            return CheckOutcome(
                name, "not verified", f"the solver declined all {tl['refused']} instances ({tl['why']})"
            )
        declined = f", {tl['refused']} declined" if tl["refused"] else ""
        return CheckOutcome(
            name,
            "pass",
            f"{tried} instances{again}{declined}, no failure ({secs:.1f} s{cut})",
            figures=dict(tl),
        )
    path = write_counterexample(inst, out_dir, runner.solver.name, name, msg)
    return CheckOutcome(name, "FAIL", msg, counterexample=path)
