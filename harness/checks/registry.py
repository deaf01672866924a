"""The registry of named checks (scikit-learn's estimator checks are the model): each check is a
function `check(ctx: CheckContext) -> CheckOutcome | None` with its own docstring, selectable by name
(`run_suite(..., checks=("accuracy", "ops"))`, `lora-harness check --checks accuracy,ops`;
`--list-checks` prints this table). `default` checks run when none are named."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import MappingProxyType

from harness.checks import chain, properties, scaling
from harness.checks.context import CheckContext
from harness.checks.outcome import CheckOutcome
from harness.errors import HarnessError


@dataclass(frozen=True)
class Check:
    name: str
    fn: Callable[[CheckContext], CheckOutcome | None]
    default: bool = True

    @property
    def summary(self) -> str:
        """The first line of the check's docstring."""
        return (self.fn.__doc__ or "").strip().splitlines()[0]

    def __call__(self, ctx: CheckContext) -> CheckOutcome | None:
        return self.fn(ctx)


CHECKS = MappingProxyType(
    {
        c.name: c
        for c in (
            Check("finite", properties.finite),
            Check("accuracy", properties.accuracy),
            Check("invariance", properties.invariance),
            Check("certificate", properties.certificate, default=False),  # `accuracy` checks certificates too
            Check("chain", chain.chain),
            Check("scaling", scaling.scaling),
            Check("ops", scaling.ops),
        )
    }
)
DEFAULT_CHECKS = tuple(name for name, c in CHECKS.items() if c.default)


def resolve_checks(names: Iterable[str] | str | None) -> tuple[str, ...]:
    """Check names in registry order from an iterable or a comma list ('accuracy,ops'); the default
    checks for None. An unknown name is a one-line HarnessError."""
    if names is None:
        return DEFAULT_CHECKS
    if isinstance(names, str):
        names = [s.strip() for s in names.split(",") if s.strip()]
    names = list(names)
    if not names:
        raise HarnessError(f"no check named; choose from {', '.join(CHECKS)}")
    bad = [n for n in names if n not in CHECKS]
    if bad:
        raise HarnessError(f"unknown check {bad[0]!r}; choose from {', '.join(CHECKS)}")
    return tuple(n for n in CHECKS if n in set(names))


def describe_checks() -> str:
    """One line per check: name, whether it runs by default, what it checks."""
    w = max(len(n) for n in CHECKS)
    return "\n".join(
        f"{c.name:<{w}}  {'default' if c.default else 'opt-in ':<7}  {c.summary}" for c in CHECKS.values()
    )
