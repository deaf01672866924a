"""Helpers for the reduction-chain tests: random CNFs from a few drawn integers (a Hypothesis strategy)
and the agreement check with python-sat."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from reductions.problems.cnf import CNF


def random_cnf(v: int, m: int, seed: int, min_len: int = 0, max_len: int = 5) -> CNF:
    """m clauses over v variables, lengths min_len..max_len: empty clauses (min_len = 0),
    tautologies and duplicate literals arise by drawing literals with replacement."""
    rng = np.random.default_rng(seed)
    clauses = []
    for _ in range(m):
        k = int(rng.integers(min_len, max_len + 1))
        vars_ = rng.integers(1, v + 1, size=k)
        signs = rng.integers(0, 2, size=k) * 2 - 1
        clauses.append(tuple(int(x) for x in vars_ * signs))
    return CNF.of(v, clauses)


@st.composite
def cnfs(draw, max_v: int = 12, max_m: int = 40):
    v = draw(st.integers(1, max_v))
    m = draw(st.integers(0, max_m))
    min_len = draw(st.sampled_from([0, 1, 2, 2, 3]))  # empty clauses only sometimes
    seed = draw(st.integers(0, 2**31 - 1))
    return random_cnf(v, m, seed, min_len=min_len)


def assert_agrees(cnf: CNF, model) -> None:
    """The decoded answer matches python-sat's, and a decoded model satisfies the formula."""
    truth = cnf.solve()
    assert (model is None) == (truth is None), f"decoded {model is not None}, python-sat {truth is not None}"
    if model is not None:
        assert cnf.satisfies(model)


# a formula the nightly tier drew (24 clauses, five of them empty: score range 111 on the G1 layout)
# on which 2 x 12 fixed Gauss-Legendre nodes miss ||Att||_F^2 by more than the decision allows
WIDE_RANGE = CNF.of(
    5,
    [(-4, -3, -2, 2, 1), (3, 4, 5, -4, 4), (-1, 2, 5, 3), (1,), (), (-1, -2, -3), (), (), ()]
    + [(3, -4, -2, 4), (5, 2, 4, 5), (5, 1), (3, 2, -2, 3, 3), (-4, -3), (-3, -3, 2, -4), (4,), ()]
    + [(), (5, -3), (4,), (), (), (-2, 3, 1, 5), (-4,)],
)
