"""Same-run wall-time ratio gates (ci/gates.py): slow tier only; never an absolute time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ci import gates  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("gate", gates.GATES, ids=lambda g: g.name)
def test_ratio_gate(gate):
    m = gates.measure_ratio(gate)
    assert m["ok"], f"{gate.name}: ratio {m['ratio']:.2f} > {gate.bound} ({gate.why})"


def test_gate_logic_on_a_tiny_instance():
    """The machinery itself (tiny sizes, no bound asserted on time): ratios are positive and finite."""
    g = gates.RatioGate("t", "streaming", "closed-form", L=16, d=4, bound=1e9, repeats=2)
    m = gates.measure_ratio(g)
    assert m["ok"] and 0 < m["ratio"] < float("inf")


def crashing_solver(t):
    """A third-party solver that crashes on every call."""
    raise RuntimeError("kernel exploded")


def test_a_crashing_solver_fails_the_gates_loudly():
    from harness.errors import HarnessError

    g = gates.RatioGate(
        "t", "tests.ci.test_gates:crashing_solver", "closed-form", L=16, d=4, bound=1e9, repeats=1
    )
    with pytest.raises(HarnessError, match="kernel exploded"):
        gates.run_gates([g], print_fn=lambda line: None)
