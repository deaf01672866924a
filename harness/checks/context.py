"""`CheckContext`: what every named check receives: the solver runner (solver, dtype, device, options,
the reference cache), the claims, the budget, the counterexample folder and the selected checks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from harness.checks.budgets import Budget
from harness.checks.outcome import CheckOutcome
from harness.checks.runner import SolverRunner
from harness.checks.search import property_check


@dataclass
class CheckContext:
    runner: SolverRunner
    eps: float | None  # the accuracy the checks hold the solver to (claim, or the exact default)
    claim_exponent: float | None
    budget: Budget
    out_dir: str | os.PathLike
    selected: frozenset[str] = frozenset()
    cache: dict[str, Any] = field(default_factory=dict)  # results shared by checks (the scaling measurement)
    causal: bool = False  # draw causal instances (query j attends keys m <= j) in every check

    @property
    def solver(self):
        return self.runner.solver

    @property
    def exact(self) -> bool:
        return bool(getattr(self.solver, "exact", False))

    @property
    def sizes(self) -> dict[str, int]:
        """Instance sizes for the property strategies."""
        b = self.budget
        return dict(max_L=b.max_L, max_d=b.max_d, max_N=b.max_N, causal=self.causal)

    @property
    def self_attention_only(self) -> bool:
        return bool(getattr(self.solver, "self_attention_only", False))

    @property
    def domain(self) -> dict:
        """Strategy keywords: the sizes, and self-attention instances only (Lq = Lk) for a solver
        that declares `self_attention_only`."""
        return dict(self.sizes, cross=False) if self.self_attention_only else self.sizes

    @property
    def domain_name(self) -> str:
        return "general + bounded instances" if self.exact else "bounded-entry regime"

    @property
    def tol(self) -> float:
        """The tolerance of structural properties (invariance, equivariance): the claim, else rounding."""
        from harness.checks.budgets import DEFAULT_EPS

        return self.eps if self.eps is not None else DEFAULT_EPS[self.runner.dtype]

    def search(self, name: str, strategy, problem) -> CheckOutcome:
        """`property_check` of `problem(inst) -> message | None` over `strategy` with this context's
        runner, budget and counterexample folder (saved counterexamples replayed first)."""
        return property_check(name, strategy, problem, self.runner, self.budget, self.out_dir)

    def to_rounding(self, o: CheckOutcome) -> CheckOutcome:
        """Say so in a passing outcome's detail when it was held to rounding (`tol`: no eps claimed)."""
        if o.status == "pass" and self.eps is None:
            o.detail = f"to rounding ({self.tol:.0e}; no eps claimed): {o.detail}"
        return o
