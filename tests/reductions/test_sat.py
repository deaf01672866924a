"""k-CNF, SAT sources, DIMACS, and the split-and-list arrow (docs/theory.md §6.1, §6.6)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from harness.checks.profiles import examples
from harness.errors import HarnessError
from reductions import sat_sources as S
from reductions.arrows.sat_to_ov import SatToOV
from reductions.problems.cnf import CNF, model_to_dimacs
from reductions.problems.ov import count_orthogonal, solve_ov
from tests.reductions.helpers import cnfs


@given(cnfs())
@settings(max_examples=examples(40))
def test_split_and_list_counts_and_decodes(cnf):
    """#orthogonal pairs over real j = #models; decode(exact OV) == python-sat; models satisfy."""
    arrow = SatToOV()
    ov = arrow.reduce(cnf)
    v2 = cnf.nvars // 2
    assert ov.N == 2 ** ((cnf.nvars + 1) // 2) and ov.W.shape == ov.U.shape
    real = ov.W[: 2**v2]
    G = ov.U.astype(np.int64) @ real.T.astype(np.int64)
    assert int((G == 0).sum()) == cnf.count_models()
    truth = cnf.solve()
    model = arrow.decode(ov, solve_ov(ov))
    assert (model is None) == (truth is None)
    if model is not None:
        assert cnf.satisfies(model) and cnf.satisfies(truth)
    # padding rows (odd v) are all ones and never change the yes/no answer
    assert np.all(ov.W[2**v2 :] == 1)


def test_edge_cases():
    arrow = SatToOV()
    empty = CNF.of(3, [(1, 2), ()])
    ov = arrow.reduce(empty)
    assert arrow.decode(ov, solve_ov(ov)) is None
    no_clauses = CNF.of(3, [])
    ov = arrow.reduce(no_clauses)
    assert count_orthogonal(ov) == ov.N * ov.N
    taut = CNF.of(2, [(1, -1), (2, 2, 2)])
    ov = arrow.reduce(taut)
    model = arrow.decode(ov, solve_ov(ov))
    assert taut.satisfies(model) and model[1]
    with pytest.raises(HarnessError):
        CNF.of(2, [(3,)])


@pytest.mark.parametrize("k", [3, 4, 5])
def test_sources_are_seeded_and_correct(k):
    a, b = S.planted(k, 14, seed=3), S.planted(k, 14, seed=3)
    assert a.clauses == b.clauses and a.k == k
    hidden = tuple(c == "1" for c in a.meta["hidden"])
    assert a.satisfies(hidden)
    u = S.unsat(k, 10, seed=1)
    assert u.solve() is None and u.clauses == S.unsat(k, 10, seed=1).clauses
    assert [f.k for f in S.k_ladder(12, seed=0)] == [3, 4, 5]


def test_cnfgen_families():
    assert S.tseitin(8, 3, seed=0).solve() is None  # odd total charge
    assert S.pigeonhole(4, 3).solve() is None
    assert S.pigeonhole(3, 3).solve() is not None
    col = S.coloring(6, 0.5, 3, seed=1)
    model = col.solve()
    assert model is None or col.satisfies(model)
    with pytest.raises(HarnessError):
        S.tseitin(7, 3)


def test_dimacs_round_trip_and_errors(tmp_path):
    f = CNF.of(4, [(1, -2), (), (3, 3, -3), (4,)])
    S.write_dimacs(f, tmp_path / "f.cnf", comments=["hello"])
    assert S.read_dimacs(tmp_path / "f.cnf").clauses == f.clauses
    cases = {
        "p cnf 2 1\n1 x 0\n": ":2:",
        "c c\n1 2 0\n": ":2:",
        "p cnf 2 1\n1 3 0\n": ":2:",
        "p cnf 2\n": ":1:",
        "p cnf 2 1\np cnf 2 1\n": ":2:",
        "p cnf 2 2\n1 0\n": "declares 2",
        "": "no 'p cnf'",
    }
    for text, where in cases.items():
        with pytest.raises(HarnessError, match=where):
            S.parse_dimacs(text)
    with pytest.raises(HarnessError):
        S.read_dimacs(tmp_path / "missing.cnf")
    assert model_to_dimacs((True, False)) == "v 1 -2 0"
