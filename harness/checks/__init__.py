"""Checks: the property suite that referees anyone's solver, as named, selectable checks.

* `registry`    `CHECKS`: name -> Check (finite, accuracy, invariance, certificate, chain, scaling, ops)
* `suite`       `run_suite`, `assert_solver_meets`
* `budgets`     `Budget` presets (smoke, quick, default, thorough) and the verdict margins
* `context`     `CheckContext`, what every check receives
* `runner`      the solver under test, the reference cache, refusals vs failures
* `search`      Hypothesis search, shrinking, counterexample files and their replay
* `properties`  finite, accuracy, invariance, certificate
* `chain`       small SAT -> LoRA chain instances decoded through the solver
* `scaling`     exponents of time (interleaved repeats) and of op counts
* `single`      instance mode: one solver against the reference on one instance
* `profiles`    Hypothesis profiles (loaded only when asked)
"""

from harness.checks.budgets import BUDGETS, DEFAULT, QUICK, SMOKE, THOROUGH, Budget
from harness.checks.outcome import CheckOutcome, SuiteReport
from harness.checks.registry import CHECKS, DEFAULT_CHECKS, Check, describe_checks, resolve_checks
from harness.checks.single import check_instance, instance_tolerance
from harness.checks.suite import assert_solver_meets, run_suite

__all__ = [
    "BUDGETS",
    "CHECKS",
    "DEFAULT",
    "DEFAULT_CHECKS",
    "QUICK",
    "SMOKE",
    "THOROUGH",
    "Budget",
    "Check",
    "CheckOutcome",
    "SuiteReport",
    "assert_solver_meets",
    "check_instance",
    "describe_checks",
    "instance_tolerance",
    "resolve_checks",
    "run_suite",
]
