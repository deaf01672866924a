"""`ReferenceCache`: the float64 reference gradients of instances, computed once per instance.

One object per job (a check suite run, a study run, a pytest session), passed to whoever needs it, never
a module global. Entries are keyed by the instance's sha256; the oldest one is dropped beyond `maxsize`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from harness.instance import Instance
from harness.solvers.base import Result


class ReferenceCache:
    """`cache(inst) -> Result`: `solver.solve(inst, dtype=dtype, device=device)`, cached by sha256."""

    def __init__(
        self,
        solver: Any = "autograd",
        *,
        dtype: str = "float64",
        device: str = "cpu",
        maxsize: int | None = 256,
    ):
        from harness.solvers.registry import get_solver

        self.solver = get_solver(solver)
        self.dtype, self.device, self.maxsize = dtype, device, maxsize
        self._results: OrderedDict[str, Result] = OrderedDict()

    def __call__(self, inst: Instance) -> Result:
        key = inst.sha256
        if key not in self._results:
            self.add(inst, self.solver.solve(inst, dtype=self.dtype, device=self.device))
        return self._results[key]

    def add(self, inst: Instance, result: Result) -> None:
        """Store a result computed elsewhere (e.g. the reference solver's own measured call)."""
        self._results.setdefault(inst.sha256, result)
        while self.maxsize is not None and len(self._results) > self.maxsize:
            self._results.popitem(last=False)

    def __len__(self) -> int:
        return len(self._results)
