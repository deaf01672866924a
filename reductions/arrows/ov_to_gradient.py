"""OV -> AAttLGC by the one-call gradient read-out G1 (docs/theory.md §6.4, fix B) and its E = 0
variant (Hu et al.'s Y = 0).

Head dimension d' = m + 2, n = 2N, s = sqrt(beta d'):
* A1: columns 0..m-1 = -s u_i (rows N..2N-1 repeat rows 0..N-1); column m = 1_R (the read-out
  row; R = all real queries by default); column m+1 = 0.
* A2: columns 0..m-1 = s w_j on the N data keys, 0 on the N dummy keys; column m+1 = indicator of
  the data keys (the read-out column).
* A3: column 0 = indicator of the data keys; Y = I; X = I_m (+) 0_2 (read-out row/column of X are 0,
  so the scores are untouched: data key -beta<u, w>, dummy key 0, hence T_i <= 1/2).
* E = -c e_0 in every row (G1), or E = 0 (variant).

Identity: g := (dL/dX)[m, m+1] = (1/d') sum_{i in R} T_i (T_i + c)(1 - T_i)   (E = -c e_0)
                               = (1/d') sum_{i in R} T_i^2 (1 - T_i)          (E = 0),
T_i = attention mass of query i on the data keys.
Bounds (exact): G1, beta = ln(16 N (N+1)): yes >= c/(2 d'(N+1)), no <= 2N e^-beta (e^-beta + c)/d'.
E = 0, beta = (1/2) ln(16 N (N+1)^2): yes >= 1/(2 d' (N+1)^2), no <= 2N e^(-2 beta)/d'.
Decide at the midpoint: an oracle error eps < (yes - no)/2 (~ 3c/(16 d'(N+1))) decides with one
call; a binary search on R (ceil(log2 N) more calls) finds a yes row, a scan of it finds j.
"""

from __future__ import annotations

import math

import numpy as np

from harness.errors import HarnessError
from reductions.arrows.base import Arrow
from reductions.arrows.ov_to_attention import _first_yes_row
from reductions.problems.attention_gradient import AAttLGCInstance
from reductions.problems.ov import OVInstance


class OVToGradientG1(Arrow):
    name = "G1"
    source, target = "OV", "AAttLGC"
    spec = "docs/theory.md §6.4"
    needs = "gradient"
    extra_calls = "ceil(log2 N) (decode of a yes instance)"

    def __init__(self, c: float = 1.0, zero_E: bool = False):
        self.c, self.zero_E = float(c), bool(zero_E)
        if zero_E:
            self.name = "G1-E0"

    def reduce(self, ov: OVInstance) -> AAttLGCInstance:
        N, m = ov.N, ov.m
        d = m + 2
        if self.zero_E:
            beta = 0.5 * math.log(16 * N * (N + 1) ** 2)
            yes = 1.0 / (2 * d * (N + 1) ** 2)
            no = 2 * N * math.exp(-2 * beta) / d
        else:
            beta = math.log(16 * N * (N + 1))
            yes = self.c / (2 * d * (N + 1))
            no = 2 * N * math.exp(-beta) * (math.exp(-beta) + self.c) / d
        s = math.sqrt(beta * d)
        A1h = np.zeros((N, d))
        A1h[:, :m] = -s * ov.U
        A1 = np.vstack([A1h, A1h])
        A1[:N, m] = 1.0  # read-out row restricted to the real queries R = [0, N)
        A2 = np.zeros((2 * N, d))
        A2[:N, :m] = s * ov.W
        A2[:N, m + 1] = 1.0
        A3 = np.zeros((2 * N, d))
        A3[:N, 0] = 1.0
        E = np.zeros((2 * N, d))
        if not self.zero_E:
            E[:, 0] = -self.c
        X = np.zeros((d, d))
        X[:m, :m] = np.eye(m)
        meta = {
            "layout": self.name,
            "N": N,
            "m": m,
            "d": d,
            "n": 2 * N,
            "beta": beta,
            "c": self.c,
            "entry": s,
            "yes_lb": yes,
            "no_ub": no,
            "threshold": 0.5 * (yes + no),
            "eps_needed": 0.5 * (yes - no),
            "eps_spec": (3 * self.c / (16 * d * (N + 1)) if not self.zero_E else 3 / (16 * d * (N + 1) ** 2)),
            "score_range": beta * max(m, 1),
            "readout": [m, m + 1],
        }
        return AAttLGCInstance(A1, A2, A3, E, X, np.eye(d), meta, source=ov)

    def with_rows(self, target: AAttLGCInstance, lo: int, hi: int) -> AAttLGCInstance:
        """The same instance with the read-out row restricted to R = [lo, hi) (A1 column m = 1_R)."""
        m = target.meta["m"]
        A1 = target.A1.copy()
        A1[:, m] = 0.0
        A1[lo:hi, m] = 1.0
        return target.with_(A1=A1, meta=dict(target.meta, rows=[lo, hi]))

    def required_accuracy(self, target: AAttLGCInstance) -> float:
        return target.meta["eps_needed"]

    def accuracy_statement(self) -> str:
        if self.zero_E:
            return "||g - dL/dX||_inf < (yes - no)/2 ~ 3/(16 d'(N+1)^2)"
        return "||g - dL/dX||_inf < (yes - no)/2 ~ 3c/(16 d'(N+1))"

    def readout(self, target: AAttLGCInstance, g: np.ndarray) -> float:
        i, j = target.meta["readout"]
        return float(np.asarray(g)[i, j])

    def decide(self, target: AAttLGCInstance, g: np.ndarray) -> bool:
        """One call: yes iff the read-out entry exceeds the midpoint threshold."""
        return self.readout(target, g) > target.meta["threshold"]

    def decode(self, target: AAttLGCInstance, g, oracle=None):
        if not self.decide(target, g):
            return None
        if oracle is None:
            raise HarnessError("G1 decoding of a yes instance needs the oracle for its binary search")
        lo, hi = 0, target.meta["N"]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.decide(target, oracle(self.with_rows(target, lo, mid))):
                hi = mid
            else:
                lo = mid
        return _first_yes_row(target.source, np.arange(target.meta["N"]) == lo, f"{self.name} binary search")
