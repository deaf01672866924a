"""pytest-benchmark benchmarks of every solver at a few sizes (`python -m ci bench`).
All marked benchmark_only: the fast tier skips them. Bounded family, d = 4, r = 2, float64, CPU."""

from __future__ import annotations

import pytest

from harness.families import bounded
from harness.solvers import get_solver

pytestmark = pytest.mark.benchmark_only

EXACT = ["closed-form", "streaming", "autograd"]
APPROX = [
    ("poly", {"degree": 5}),
    ("poly-chained", {"degree": 5}),
    ("random-features", {"m": 256, "seed": 0}),
]


@pytest.mark.parametrize("L", [256, 1024, 2048])
@pytest.mark.parametrize("name", EXACT)
def test_bench_exact(benchmark, name, L):
    solver = get_solver(name)
    inst = bounded(L, 4, 2, gamma=1.0, seed=0)
    res = benchmark(solver.solve, inst)
    benchmark.extra_info.update(ops=res.ops, L=L)
    assert res.ops and res.ops > 0


@pytest.mark.parametrize("L", [1024, 4096, 16384])
@pytest.mark.parametrize("name,opts", APPROX, ids=[a[0] for a in APPROX])
def test_bench_approx(benchmark, name, opts, L):
    solver = get_solver(name)
    inst = bounded(L, 4, 2, gamma=1.0, seed=0)
    res = benchmark(solver.solve, inst, **opts)
    benchmark.extra_info.update(ops=res.ops, L=L)
    assert res.grads
