"""Wall-time gates as ratios measured side by side in one run (wall times between machines are noise;
within one job they compare). Two solvers are timed on the same instance, interleaved (A B A B ...),
single-threaded, and the gate bounds the ratio of medians with a generous factor. These run in the
slow tier only (`python -m ci gates`, tests/ci/test_gates.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RatioGate:
    """median time(numerator) / median time(denominator) <= bound on `bounded(L, d)`."""

    name: str
    numerator: str
    denominator: str
    L: int
    d: int
    bound: float
    repeats: int = 7
    why: str = ""


GATES = (
    RatioGate(
        "streaming/closed-form",
        "streaming",
        "closed-form",
        L=2048,
        d=16,
        bound=4.0,
        why="the O(L d)-memory path may cost at most a small constant factor over the dense one",
    ),
    RatioGate(
        "closed-form/autograd",
        "closed-form",
        "autograd",
        L=2048,
        d=16,
        bound=3.0,
        why="the hand-written closed form is no slower than autograd on the same loss",
    ),
)


def measure_ratio(gate: RatioGate) -> dict:
    from harness import families
    from harness.measure.threads import limit_threads
    from harness.measure.timing import time_interleaved
    from harness.solvers import get_solver

    inst = families.bounded(L=gate.L, d=gate.d, r=4, gamma=1.0, adapt=("q", "k", "v"), seed=gate.L)
    a, b = get_solver(gate.numerator), get_solver(gate.denominator)
    with limit_threads(1):
        a.solve(inst), b.solve(inst)  # warm-up
        ta, tb = time_interleaved([lambda: a.solve(inst), lambda: b.solve(inst)], rounds=gate.repeats)
    ratio = float(np.median(ta) / np.median(tb))
    return {
        "gate": gate.name,
        "ratio": ratio,
        "bound": gate.bound,
        "ok": ratio <= gate.bound,
        "median_numerator_s": float(np.median(ta)),
        "median_denominator_s": float(np.median(tb)),
    }


def run_gates(gates=GATES, print_fn=print) -> bool:
    ok = True
    for g in gates:
        m = measure_ratio(g)  # a solver that crashes fails the gate run with its traceback
        ok &= m["ok"]
        print_fn(
            f"{g.name:<24} ratio {m['ratio']:.2f} (bound {g.bound:g}; "
            f"{m['median_numerator_s']:.3f} s / {m['median_denominator_s']:.3f} s, L={g.L}, d={g.d}) "
            f"{'ok' if m['ok'] else 'FAIL'}"
        )
    return ok
