"""pytest plugin (entry point `lora_harness`): fixtures and strategies for checking a solver in your
own test suite. Loading it changes nothing: no Hypothesis profile is registered or loaded unless asked.

Options:
    --lora-solver SPEC, --lora-claim-eps, --lora-claim-exponent, --lora-budget   (fixtures below)
    --lora-hypothesis-profile ci|dev|nightly   load one of the harness's Hypothesis profiles
                              (harness.checks.profiles; also $LORA_HARNESS_HYPOTHESIS_PROFILE)

Fixtures (see docs/ci.md for an example):
    lora_reference            session-scoped `ref(instance) -> Result`: float64 autograd gradients, cached
    lora_solver               the Solver named by `--lora-solver SPEC`, or built by harness.from_attention
                              from `--lora-attention MODULE:FN` (test skipped when neither is given)
    lora_assert_solver_meets  `check(solver=None, eps=None, exponent=None, budget=None)`: runs the
                              property suite (harness.checks), counterexamples go to tmp_path;
                              defaults come from --lora-solver / --lora-claim-eps /
                              --lora-claim-exponent / --lora-budget
Importable from here (lazily, so loading the plugin stays cheap): `assert_solver_meets`, `run_suite`,
and the strategies `instances`, `instance_params`, `bounded_instances`, `bounded_params`,
`stress_instances`, `accuracy_instances`.
"""

from __future__ import annotations

import os

import pytest

PROFILE_ENV = "LORA_HARNESS_HYPOTHESIS_PROFILE"

_LAZY = {
    "assert_solver_meets": "harness.checks.suite",
    "run_suite": "harness.checks.suite",
    "stress_instances": "harness.strategies",
    "accuracy_instances": "harness.strategies",
    "instances": "harness.strategies",
    "instance_params": "harness.strategies",
    "bounded_instances": "harness.strategies",
    "bounded_params": "harness.strategies",
}
__all__ = sorted(_LAZY) + ["lora_reference", "lora_solver", "lora_assert_solver_meets"]


def __getattr__(name: str):
    """Lazy re-exports: torch and the solvers load only when a test asks for them."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pytest_addoption(parser):
    group = parser.getgroup("lora-harness", "lora-harness solver checks")
    group.addoption(
        "--lora-solver",
        default=None,
        metavar="SPEC",
        help="solver for the lora_solver / lora_assert_solver_meets fixtures "
        "(registered name, module:attr or entry point)",
    )
    group.addoption(
        "--lora-attention",
        default=None,
        metavar="MODULE:FN",
        help="an attention function fn(q, k, v, *, scale) for the same fixtures "
        "(harness.from_attention; instead of --lora-solver)",
    )
    group.addoption(
        "--lora-forward-only",
        action="store_true",
        default=False,
        help="lora_assert_solver_meets checks the attention output only (--forward-only)",
    )
    group.addoption("--lora-claim-eps", type=float, default=None, help="claimed max-norm gradient error")
    group.addoption("--lora-claim-exponent", type=float, default=None, help="claimed runtime exponent in L")
    group.addoption(
        "--lora-hypothesis-profile",
        default=None,
        choices=["ci", "dev", "nightly"],
        help=f"load this Hypothesis profile of the harness (default: ${PROFILE_ENV}, else none)",
    )
    group.addoption(
        "--lora-budget",
        default="quick",
        choices=["smoke", "quick", "default", "thorough"],
        help="property-suite budget for lora_assert_solver_meets (default quick)",
    )


def pytest_configure(config):
    """Load a harness Hypothesis profile only when asked (option or environment variable)."""
    name = config.getoption("--lora-hypothesis-profile") or os.environ.get(PROFILE_ENV)
    if name:
        from harness.checks.profiles import load_profile

        load_profile(name)


@pytest.fixture(scope="session")
def lora_reference():
    """`ref(instance) -> Result`: float64 autograd gradients on CPU (docs/theory.md §3.5), cached
    by the instance's sha256. Session-scoped, so it is safe inside Hypothesis tests."""
    from harness.solvers.reference import ReferenceCache

    return ReferenceCache("autograd", dtype="float64", device="cpu", maxsize=None)


@pytest.fixture(scope="session")
def lora_solver(request):
    """The Solver given by `--lora-solver`; skips the test when the option is absent."""
    solver = _configured_solver(request.config)
    if solver is None:
        pytest.skip("no --lora-solver or --lora-attention given")
    return solver


def _configured_solver(cfg):
    """The Solver named by --lora-solver or --lora-attention (None when neither; both is an error)."""
    spec, att = cfg.getoption("--lora-solver"), cfg.getoption("--lora-attention")
    if spec and att:
        raise pytest.UsageError("give --lora-solver or --lora-attention, not both")
    if att:
        from harness import from_attention
        from harness.solvers.registry import resolve_object

        return from_attention(resolve_object(att, what="attention function"), name=att)
    if spec:
        from harness.solvers import get_solver

        return get_solver(spec)
    return None


@pytest.fixture
def lora_assert_solver_meets(request, tmp_path):
    """`check(solver=None, eps=None, exponent=None, budget=None, **kw) -> SuiteReport`; raises
    AssertionError with the summary table and the counterexample path when a claim fails."""
    from harness.checks.suite import assert_solver_meets

    cfg = request.config

    def check(solver=None, eps=None, exponent=None, budget=None, **kw):
        solver = solver if solver is not None else _configured_solver(cfg)
        kw.setdefault("forward_only", cfg.getoption("--lora-forward-only"))
        if solver is None:
            pytest.skip("no solver given (pass one, or --lora-solver)")
        eps = eps if eps is not None else cfg.getoption("--lora-claim-eps")
        exponent = exponent if exponent is not None else cfg.getoption("--lora-claim-exponent")
        kw.setdefault("out_dir", tmp_path / "lora-counterexamples")
        return assert_solver_meets(
            solver, eps=eps, exponent=exponent, budget=budget or cfg.getoption("--lora-budget"), **kw
        )

    return check
