"""k-SAT -> OV by Williams' split and list (docs/theory.md §6.1).

X1 = variables 1..v1 (v1 = ceil(v/2)), X2 = the other v2 = floor(v/2). Row i of U is the
half-assignment alpha with i = sum_b alpha_b 2^b; u_i[c] = 0 iff alpha makes some literal of clause
c true. W likewise over X2, padded with all-ones rows to N = 2^v1 when v is odd. Then
<u_i, w_j> = #clauses falsified by (alpha, beta), so orthogonal pairs are in bijection with models.
"""

from __future__ import annotations

import numpy as np

from reductions.arrows.base import Arrow
from reductions.problems.cnf import CNF, literal_matrices
from reductions.problems.ov import OVInstance


def half_assignments(nbits: int) -> np.ndarray:
    """The (2^nbits, nbits) 0/1 matrix whose row i is the binary expansion of i (bit b = column b)."""
    idx = np.arange(1 << nbits, dtype=np.int64)
    return ((idx[:, None] >> np.arange(nbits)) & 1).astype(np.float32)


def side_vectors(cnf: CNF, variables: list[int]) -> np.ndarray:
    """(2^len(variables), m) uint8: 1 where no literal of the clause on these variables is true
    (docs/theory.md §6.1, the per-clause OR as one matrix product)."""
    H = half_assignments(len(variables))
    P, Nn = literal_matrices(cnf, variables)
    true_count = H @ P + (1.0 - H) @ Nn
    return (true_count == 0).astype(np.uint8)


class SatToOV(Arrow):
    name = "split-and-list"
    source, target = "k-SAT", "OV"
    spec = "docs/theory.md §6.1"

    def reduce(self, cnf: CNF) -> OVInstance:
        v = cnf.nvars
        v1, v2 = (v + 1) // 2, v // 2
        X1 = list(range(1, v1 + 1))
        X2 = list(range(v1 + 1, v + 1))
        U = side_vectors(cnf, X1)
        W = side_vectors(cnf, X2)
        pad = U.shape[0] - W.shape[0]
        if pad:
            W = np.vstack([W, np.ones((pad, cnf.m), dtype=np.uint8)])
        meta = {"v": v, "v1": v1, "v2": v2, "padding_rows": pad, "N": U.shape[0], "m": cnf.m}
        return OVInstance(U, W, meta, source=cnf)

    def decode(self, ov: OVInstance, pair, oracle=None):
        """(i, j) -> bits(i) || bits(j); a padding j means "any beta" (beta = 0)."""
        if pair is None:
            return None
        i, j = (int(x) for x in pair)
        v1, v2 = ov.meta["v1"], ov.meta["v2"]
        if j >= 1 << v2:
            j = 0
        return tuple(bool((i >> b) & 1) for b in range(v1)) + tuple(bool((j >> b) & 1) for b in range(v2))

    def accuracy_statement(self) -> str:
        return "exact (orthogonal pairs <-> models)"
