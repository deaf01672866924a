"""What the suite reports: one `CheckOutcome` per check, gathered in a `SuiteReport` (its table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CheckOutcome:
    """One row of the summary table."""

    check: str
    status: str  # "pass", "FAIL", "skip", "info"
    detail: str
    counterexample: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


@dataclass
class SuiteReport:
    solver: str
    outcomes: list[CheckOutcome]

    @property
    def ok(self) -> bool:
        return not any(o.failed for o in self.outcomes)

    def outcome(self, check: str) -> CheckOutcome:
        for o in self.outcomes:
            if o.check == check:
                return o
        raise KeyError(check)

    def table(self) -> str:
        w = max([len(o.check) for o in self.outcomes] + [5])
        lines = [f"{'check':<{w}}  status  detail"]
        for o in self.outcomes:
            lines.append(f"{o.check:<{w}}  {o.status:<6}  {o.detail}")
            if o.counterexample:
                lines.append(f"{'':<{w}}          counterexample: {o.counterexample}")
        verdict = "all claims hold" if self.ok else "CLAIM FAILED"
        lines.append(f"{self.solver}: {verdict}")
        return "\n".join(lines)
