"""Running the solver under test: its calls with the suite's dtype, device and options, the float64
reference (a `ReferenceCache` passed in), how a solver's errors are told apart (a deliberate
refusal, or a failure), and the per-check tallies (instances solved, declined, largest error)."""

from __future__ import annotations

import re
from collections.abc import Callable

from harness.errors import HarnessError, Refusal
from harness.solvers.reference import ReferenceCache

_OWN_ERROR = re.compile(r"^solver '.*' (raised|returned)")


def callable_of(solver) -> Callable | None:
    """The plain callable behind a `module:attr` solver, else None (a Solver)."""
    from harness.solvers.registry import CallableSolver

    return solver.fn if isinstance(solver, CallableSolver) else None


def is_refusal(exc: HarnessError) -> bool:
    """A deliberate one-line HarnessError from a solver (not an exception escaping a callable,
    nor a wrong/missing output, which the registry reports as 'raised ...' / 'returned ...')."""
    return not _OWN_ERROR.match(str(exc))


def refused(solver, exc: HarnessError) -> bool:
    """True when `exc` is a deliberate refusal: `harness.Refusal` from anything, or a one-line
    HarnessError from a built-in style Solver (callables and attention functions refuse only with
    Refusal: their other errors are failures)."""
    from harness.solvers.attention import AttentionSolver

    if isinstance(exc, Refusal):
        return True
    return callable_of(solver) is None and not isinstance(solver, AttentionSolver) and is_refusal(exc)


def one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return msg if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {msg}"


class SolverRunner:
    """Runs the solver under test; `reference(inst)` gives the float64 reference from the cache."""

    def __init__(self, solver, reference: ReferenceCache, dtype: str, device: str, opts: dict):
        self.solver = solver
        self.reference = reference
        self.dtype, self.device, self.opts = dtype, device, dict(opts)
        self.begin()

    def begin(self) -> None:
        """Reset the per-check tallies."""
        self.tally = {"solved": 0, "refused": 0, "why": None, "max_err": 0.0, "max_rel": 0.0, "certs": 0}

    def refused(self, exc: HarnessError) -> bool:
        """`refused(self.solver, exc)`, counted (with the first reason) when true."""
        if refused(self.solver, exc):
            self.tally["refused"] += 1
            self.tally["why"] = self.tally["why"] or one_line(exc)
            return True
        return False

    def record_error(self, err: float, scale: float) -> None:
        self.tally["max_err"] = max(self.tally["max_err"], err)
        self.tally["max_rel"] = max(self.tally["max_rel"], err / max(1.0, scale))

    def solve(self, inst):
        res = self.solver.solve(inst, dtype=self.dtype, device=self.device, **self.opts)
        self.tally["solved"] += 1
        return res

    def forward(self, inst):
        """The solver's attention output (N, Lq, d) as float64 numpy."""
        import numpy as np

        out = self.solver.forward(inst, dtype=self.dtype, device=self.device, **self.opts)
        self.tally["solved"] += 1
        return np.asarray(out, dtype=np.float64)
