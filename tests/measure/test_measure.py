"""Timer, peak memory and op counts (harness/measure/). No wall-time assertions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.errors import HarnessError
from harness.families import bounded
from harness.measure import measure_solver, peak_memory, time_call
from harness.solvers import get_solver


def test_timer_counts_warmup_and_repeats():
    calls = []
    t = time_call(lambda: calls.append(1) or len(calls), warmup=2, repeats=3)
    assert len(calls) == 5 and t["repeats"] == 3 and len(t["times"]) == 3
    assert t["min"] <= t["median"] <= t["max"] and t["last"] == 5 and t["timer"] == "perf_counter"
    with pytest.raises(HarnessError):
        time_call(lambda: None, repeats=0)


def test_timer_budget_stops_early_but_times_once():
    t = time_call(lambda: None, warmup=0, repeats=50, budget_s=0.0)
    assert t["repeats"] == 1


def test_peak_memory_sees_torch_cpu_allocation():
    """64 MiB touched by torch (invisible to tracemalloc) must show up."""
    n = 8 * 2**20

    def alloc():
        x = torch.ones(n, dtype=torch.float64)
        return float(x[-1])

    m = peak_memory(alloc)
    if m["method"].startswith("ru_maxrss"):
        pytest.skip("no /proc/self/clear_refs: only a lower bound is available")
    assert m["bytes"] >= 0.9 * 8 * n
    small = peak_memory(lambda: 1)
    assert small["bytes"] < m["bytes"] / 4


@pytest.mark.parametrize("solver", ["closed-form", "streaming", "autograd"])
def test_measure_solver_reports_deterministic_ops(solver):
    inst = bounded(48, 3, 1, gamma=1.0, seed=1)
    a = measure_solver(get_solver(solver), inst, repeats=1, warmup=1)
    b = measure_solver(get_solver(solver), inst, repeats=2, warmup=0, memory=False)
    assert a["ops"] == b["ops"] and a["ops"] > 0
    assert b["mem_bytes"] is None and a["mem_method"] != "off"
    assert np.isfinite(a["result"].loss)


def test_process_clock_counts_work_not_waiting(monkeypatch):
    """clock="process" reports process CPU time and keeps wall time beside it. Deterministic: both
    clocks are replaced by counters (wall advances 1.0 per reading, CPU 0.25), no real timing."""
    import itertools

    import harness.measure.timing as measure

    wall, cpu = itertools.count(0.0, 1.0), itertools.count(0.0, 0.25)
    monkeypatch.setattr(measure.time, "perf_counter", lambda: next(wall))
    monkeypatch.setattr(measure.time, "process_time", lambda: next(cpu))
    t = time_call(lambda: None, warmup=0, repeats=2, clock="process")
    assert t["timer"] == "process_time"
    assert t["wall_times"] == [1.0, 1.0] and t["times"] == [0.25, 0.25]
    t = time_call(lambda: None, warmup=0, repeats=1, clock="wall")
    assert t["timer"] == "perf_counter" and t["times"] == t["wall_times"] == [1.0]
    with pytest.raises(HarnessError, match="clock"):
        time_call(lambda: None, clock="sundial")


def test_long_first_call_is_reused_as_the_sample():
    inst = bounded(32, 2, 1, gamma=1.0, seed=0)
    m = measure_solver(get_solver("closed-form"), inst, warmup=1, repeats=3, budget_s=0.0)
    assert m["seconds"]["repeats"] == 1 and m["seconds"].get("reused_warmup") and m["ops"] > 0
    assert m["mem_method"] != "off"
