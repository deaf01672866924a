"""k-CNF formulas (docs/theory.md §6.1 input): record, evaluation, ground truth by python-sat.

A `CNF` has `nvars` variables 1..nvars and clauses given as tuples of non-zero DIMACS literals.
Empty clauses, tautologies, duplicate literals and absent variables are all allowed. A model is a
tuple of `nvars` booleans (index b is variable b+1); the solution of the SAT problem is a model or
None (UNSAT).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import HarnessError

Model = tuple  # tuple[bool, ...] of length nvars


@dataclass(frozen=True)
class CNF:
    """A CNF formula: `nvars` and clauses as tuples of DIMACS literals (docs/theory.md §6.1)."""

    nvars: int
    clauses: tuple
    meta: dict = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, nvars: int, clauses: Iterable[Iterable[int]], meta: dict | None = None) -> CNF:
        nvars = int(nvars)
        if nvars < 0:
            raise HarnessError(f"number of variables must be >= 0, got {nvars}")
        out = []
        for ci, c in enumerate(clauses):
            lits = tuple(int(x) for x in c)
            for x in lits:
                if x == 0 or abs(x) > nvars:
                    raise HarnessError(
                        f"clause {ci + 1} has literal {x}, outside 1..{nvars} (or its negation)"
                    )
            out.append(lits)
        return cls(nvars, tuple(out), dict(meta or {}))

    @property
    def m(self) -> int:
        return len(self.clauses)

    @property
    def k(self) -> int:
        """Longest clause length."""
        return max((len(c) for c in self.clauses), default=0)

    def satisfies(self, model: Sequence[bool] | None) -> bool:
        """Does the assignment (tuple of nvars booleans) satisfy every clause?"""
        if model is None or len(model) != self.nvars:
            return False
        return all(any((x > 0) == bool(model[abs(x) - 1]) for x in c) for c in self.clauses)

    def solve(self, solver_name: str = "cadical153") -> Model | None:
        """Ground truth by python-sat (CDCL): a model, or None when UNSAT."""
        if any(len(c) == 0 for c in self.clauses):
            return None
        from pysat.solvers import Solver

        with Solver(name=solver_name, bootstrap_with=[list(c) for c in self.clauses]) as s:
            if not s.solve():
                return None
            lits = s.get_model() or []
        model = [False] * self.nvars
        for x in lits:
            if 0 < abs(x) <= self.nvars:
                model[abs(x) - 1] = x > 0
        return tuple(model)

    def count_models(self) -> int:
        """Brute force #models (v <= 22): vectorised over all 2^v assignments."""
        if self.nvars > 22:
            raise HarnessError(f"brute-force model count needs v <= 22, got {self.nvars}")
        n = 1 << self.nvars
        idx = np.arange(n, dtype=np.int64)
        bits = ((idx[:, None] >> np.arange(self.nvars)) & 1).astype(bool)
        ok = np.ones(n, dtype=bool)
        for c in self.clauses:
            sat = np.zeros(n, dtype=bool)
            for x in c:
                sat |= bits[:, abs(x) - 1] if x > 0 else ~bits[:, abs(x) - 1]
            ok &= sat
        return int(ok.sum())

    def describe(self) -> str:
        return f"CNF(v={self.nvars}, m={self.m}, k<={self.k})"


def model_to_dimacs(model: Sequence[bool]) -> str:
    """The DIMACS `v ... 0` line of a model."""
    lits = [str(i + 1) if b else str(-(i + 1)) for i, b in enumerate(model)]
    return "v " + " ".join(lits + ["0"])


def literal_matrices(cnf: CNF, variables: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(P, Nn): P[b, c] = 1 iff variable variables[b] occurs positively in clause c, Nn likewise for
    negative occurrences (docs/theory.md §6.1: the per-clause OR, vectorised)."""
    pos = {v: b for b, v in enumerate(variables)}
    P = np.zeros((len(variables), cnf.m), dtype=np.float32)
    Nn = np.zeros((len(variables), cnf.m), dtype=np.float32)
    for c, clause in enumerate(cnf.clauses):
        for x in clause:
            b = pos.get(abs(x))
            if b is not None:
                (P if x > 0 else Nn)[b, c] = 1.0
    return P, Nn


def as_json(cnf: CNF) -> dict[str, Any]:
    return {"nvars": cnf.nvars, "m": cnf.m, "k": cnf.k, **{k: v for k, v in cnf.meta.items()}}
