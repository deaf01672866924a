"""The SAT chain's sizes are known before anything is built: the memory estimate bounds the measured
peak (tracemalloc traces numpy's data), and impossible sizes are refused in one line, at once."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from harness.errors import HarnessError, MemoryLimitError
from reductions import sat_sources
from reductions.bundle import write_bundle
from reductions.sizes import chain_memory, clause_count, count, predicted_size


@pytest.mark.parametrize("k,v", [(3, 10), (4, 10), (3, 17)])
def test_chain_memory_bounds_the_bundle_peak(tmp_path, k, v):
    cnf = sat_sources.planted(k, v, 1)
    tracemalloc.start()
    try:
        write_bundle(cnf, tmp_path / "b")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    est = chain_memory(cnf.nvars, cnf.m, as23=(1 << ((v + 1) // 2)) <= 256)
    assert peak <= est <= 4 * peak, (peak, est)


def test_clause_counts_match_the_generators():
    for k, v in ((3, 12), (5, 9), (8, 10)):
        assert clause_count(k, v) == sat_sources.planted(k, v, 0).m
    assert predicted_size("unsat", 3, 10) == (10, sat_sources.unsat(3, 10, 0).m)
    assert predicted_size("pigeonhole", 3, 5) == (20, 1)
    assert clause_count(1000, 1000) > 10**300 and count(10**303) == "~10^303"  # ints: no overflow


@pytest.mark.parametrize(
    "kind,k,v,msg",
    [
        ("planted", 1000, 1000, "clauses of width 1000 needs about"),
        ("planted", 3, 40, r"N = 2\^20 OV vectors\) needs about"),
        ("planted", 3, 200, r"N = 2\^100"),
        ("pigeonhole", 3, 60, "v=3540"),
        ("tseitin", 3, 1000, "v=1500"),
        ("coloring", 3, 500, "v=1500"),
        ("tseitin", 3, 2, "even number of graph vertices >= 4"),
        ("tseitin", 3, 7, "even number"),
        ("pigeonhole", 3, 1, "at least 2 pigeons"),
        ("coloring", 3, 0, "at least 1 graph vertex"),
        ("planted", 3, 2, "need at least k=3 variables"),
    ],
)
def test_from_kind_refuses_at_once(kind, k, v, msg):
    t0 = time.process_time()
    with pytest.raises(HarnessError, match=msg):
        sat_sources.from_kind(kind, k, v, 0, max_memory="8G")
    assert time.process_time() - t0 < 5  # no clause loop, no CDCL on PHP(60, 59)


def test_negative_seed_refused():
    with pytest.raises(HarnessError, match="seed must be an integer >= 0"):
        sat_sources.planted(3, 5, -1)


def test_bundle_checks_memory_before_solving(tmp_path):
    cnf = sat_sources.planted(7, 12, 1)  # m = 1053: the AS23 instance alone needs ~9 GB
    with pytest.raises(MemoryLimitError, match="sat-chain bundle of v=12, m=1053"):
        write_bundle(cnf, tmp_path / "b", max_memory="1G")
    assert list(tmp_path.iterdir()) == []


def test_solve_sat_checks_the_reduction_and_the_oracle():
    from reductions.chain import solve_sat
    from reductions.problems.cnf import CNF

    with pytest.raises(MemoryLimitError, match=r"N = 2\^100 OV vectors"):
        solve_sat(CNF.of(200, [(1,)]), "lora", "closed-form")
    # v = 30: the reduction fits 8G, the closed-form oracle on its 2^16-token instance does not
    with pytest.raises(MemoryLimitError, match="solver 'closed-form'"):
        solve_sat(CNF.of(30, [(1,)]), "lora", "closed-form", max_memory="8G")
    with pytest.raises(MemoryLimitError, match="solver 'closed-form'"):
        solve_sat(CNF.of(30, [(1,)]), "attention", "closed-form", max_memory="8G")
