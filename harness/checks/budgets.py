"""How much work the property suite does (`Budget` presets) and the margins its verdicts use."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError

MARGIN = 0.5  # timing exponent: fail when CI low end > claim + MARGIN (cache effects
# alone push a clean O(L^2) solver's fitted time exponent to ~2.2-2.5)
OPS_MARGIN = 0.1  # op-count exponent (deterministic): fail when fit > claim + OPS_MARGIN
DEFAULT_EPS = {"float64": 1e-8, "float32": 1e-3}


@dataclass(frozen=True)
class Budget:
    """How much work the suite does: `SMOKE` (no timing, op counts only; seconds), `QUICK` (test
    suites, ~10 s), `DEFAULT` (~5-20 s for a fast solver; each property check stops drawing after
    `property_budget_s`, so about a minute for a slow one), `THOROUGH` (nightly)."""

    max_examples: int = 60
    max_L: int = 12
    max_d: int = 6
    max_N: int = 3
    scaling_L: tuple[int, ...] = (256, 512, 1024, 2048, 4096)
    scaling_d: int = 4
    repeats: int = 5  # 0: no timing, only the deterministic op-count fit
    call_budget_s: float = 2.0  # stop growing L once one call takes longer than this
    scaling_budget_s: float = 25.0  # and once the scaling part has used this much time
    scaling: bool = True
    n_boot: int = 400
    property_budget_s: float = 15.0  # per property check: stop drawing new examples after this
    # (shrinking a found failure is not cut short)
    max_scaling_L: int = 131072  # grow past scaling_L (doubling) while the predicted next call stays
    # under call_budget_s; 8192 for code whose local time slope is >= 1.5


DEFAULT = Budget(max_examples=300, max_L=16)
QUICK = Budget(
    max_examples=60,
    max_L=8,
    max_d=4,
    max_N=2,
    scaling_L=(256, 512, 1024, 2048, 4096),
    repeats=3,
    scaling_budget_s=15.0,
)
THOROUGH = Budget(
    max_examples=2000,
    max_L=32,
    max_d=8,
    max_N=3,
    property_budget_s=300.0,
    scaling_L=(256, 512, 1024, 2048, 4096, 8192),
    repeats=9,
    scaling_budget_s=120.0,
)
SMOKE = Budget(max_examples=25, max_L=8, max_d=4, max_N=2, scaling_L=(64, 128, 256, 512), repeats=0)
BUDGETS = {"smoke": SMOKE, "quick": QUICK, "default": DEFAULT, "thorough": THOROUGH}


def resolve_budget(budget: Budget | str) -> Budget:
    """A Budget from itself or its name (one-line HarnessError for an unknown name)."""
    if isinstance(budget, Budget):
        return budget
    if budget not in BUDGETS:
        raise HarnessError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    return BUDGETS[budget]
