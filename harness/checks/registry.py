"""The registry of named checks (scikit-learn's estimator checks are the model): each check is a
function `check(ctx: CheckContext) -> CheckOutcome | None` with its own docstring, selectable by name
(`run_suite(..., checks=("accuracy", "ops"))`, `lora-harness check --checks accuracy,ops`;
`--list-checks` prints this table). `default` checks run when none are named."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import MappingProxyType

from harness.checks import chain, forward, properties, scaling
from harness.checks.context import CheckContext
from harness.checks.outcome import CheckOutcome
from harness.errors import HarnessError


@dataclass(frozen=True)
class Check:
    name: str
    fn: Callable[[CheckContext], CheckOutcome | None]
    default: bool = True
    forward: bool = False  # a forward-only check (`--forward-only` runs these, and only these)

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
            Check("forward-finite", forward.forward_finite, forward=True),
            Check("forward-accuracy", forward.forward_accuracy, forward=True),
            Check("equivariance", forward.equivariance, forward=True),
            Check("forward-chain", forward.forward_chain, forward=True),
            Check("forward-scaling", forward.forward_scaling, forward=True),
        )
    }
)
DEFAULT_CHECKS = tuple(name for name, c in CHECKS.items() if c.default and not c.forward)
FORWARD_CHECKS = tuple(name for name, c in CHECKS.items() if c.forward)


def resolve_checks(names: Iterable[str] | str | None, forward_only: bool = False) -> tuple[str, ...]:
    """Check names in registry order from an iterable or a comma list ('accuracy,ops'); the default
    checks for None (the forward checks with `forward_only`). An unknown name is a one-line
    HarnessError, and so is a gradient check named with `forward_only`."""
    if names is None:
        return FORWARD_CHECKS if forward_only else DEFAULT_CHECKS
    if isinstance(names, str):
        names = [s.strip() for s in names.split(",") if s.strip()]
    names = list(names)
    if not names:
        raise HarnessError(f"no check named; choose from {', '.join(CHECKS)}")
    bad = [n for n in names if n not in CHECKS]
    if bad:
        raise HarnessError(f"unknown check {bad[0]!r}; choose from {', '.join(CHECKS)}")
    if forward_only:
        grad = [n for n in names if not CHECKS[n].forward]
        if grad:
            raise HarnessError(
                f"check {grad[0]!r} needs gradients; with --forward-only choose from "
                f"{', '.join(FORWARD_CHECKS)}"
            )
    return tuple(n for n in CHECKS if n in set(names))


def describe_checks() -> str:
    """One line per check: name, whether it runs by default, what it checks."""
    w = max(len(n) for n in CHECKS)

    def kind(c):
        return "forward" if c.forward else "default" if c.default else "opt-in"

    return "\n".join(f"{c.name:<{w}}  {kind(c):<7}  {c.summary}" for c in CHECKS.values())
