"""What the suite reports: one `CheckOutcome` per check, gathered in a `SuiteReport` (its table, its
verdict and its exit code).

Statuses: "pass" (checked against a claim or a certificate, and held), "FAIL" (a counterexample),
"not verified" (a claim was made but could not be checked), "not claimed" (nothing claimed: the
measured figure is shown, nothing promised), "skip" (not applicable), "info" (a figure, no claim).
Exit codes (docs/referee.md): 0 every claim checked and held, 1 a claim failed, 4 no failure but a
claim not verified; 2 (usage) and 3 (internal) come from the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.errors import ExitCode

STATUSES = ("pass", "FAIL", "not verified", "not claimed", "skip", "info")
EXIT_PASS, EXIT_FAIL, EXIT_NOT_VERIFIED = ExitCode.OK, ExitCode.CLAIM_FAILED, ExitCode.NOT_VERIFIED


@dataclass
class CheckOutcome:
    """One row of the summary table."""

    check: str
    status: str  # one of STATUSES
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
    warnings: list[tuple[int, str]] = field(default_factory=list)  # (times raised, one line): shown once

    @property
    def ok(self) -> bool:
        """No claim failed (some may be unverified: see `verified`)."""
        return not any(o.failed for o in self.outcomes)

    @property
    def unverified(self) -> list[str]:
        return [o.check for o in self.outcomes if o.status == "not verified"]

    @property
    def verified(self) -> bool:
        """Every claim was checked and held."""
        return self.ok and not self.unverified

    @property
    def verdict(self) -> str:
        if not self.ok:
            return "CLAIM FAILED"
        if self.unverified:
            return f"NOT VERIFIED ({', '.join(self.unverified)}); nothing failed"
        unclaimed = [o.check for o in self.outcomes if o.status == "not claimed"]
        if unclaimed:
            return f"no failure; not claimed: {', '.join(unclaimed)}"
        return "all claims hold"

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if not self.ok else EXIT_NOT_VERIFIED if self.unverified else EXIT_PASS

    def outcome(self, check: str) -> CheckOutcome:
        for o in self.outcomes:
            if o.check == check:
                return o
        raise KeyError(check)

    def table(self) -> str:
        w = max([len(o.check) for o in self.outcomes] + [5])
        sw = max([len(o.status) for o in self.outcomes] + [6])
        lines = [f"{'check':<{w}}  {'status':<{sw}}  detail"]
        for o in self.outcomes:
            lines.append(f"{o.check:<{w}}  {o.status:<{sw}}  {o.detail}")
            if o.counterexample:
                lines.append(f"{'':<{w}}  {'':<{sw}}  counterexample: {o.counterexample}")
        for n, msg in self.warnings:
            lines.append(f"warning (raised {n} times, shown once): {msg}")
        lines.append(f"{self.solver}: {self.verdict}")
        return "\n".join(lines)
