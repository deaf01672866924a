"""Running the solver under test: its calls with the suite's dtype, device and options, the float64
reference (a `ReferenceCache` passed in), and how a solver's errors are told apart (a deliberate
refusal, or a failure)."""

from __future__ import annotations

import re
from collections.abc import Callable

from harness.errors import HarnessError
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
    """True when `exc` is a Solver's deliberate refusal (callables cannot refuse)."""
    return callable_of(solver) is None and is_refusal(exc)


def one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return msg if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {msg}"


class SolverRunner:
    """Runs the solver under test; `reference(inst)` gives the float64 reference from the cache."""

    def __init__(self, solver, reference: ReferenceCache, dtype: str, device: str, opts: dict):
        self.solver = solver
        self.reference = reference
        self.dtype, self.device, self.opts = dtype, device, dict(opts)

    def solve(self, inst):
        return self.solver.solve(inst, dtype=self.dtype, device=self.device, **self.opts)
