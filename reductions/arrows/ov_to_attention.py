"""OV -> AAttC (docs/theory.md §6.3): the re-centred layout P1 ( constant margin, the one that
runs), the AS23 Lemma 4.7 layout from Gap-Hamming (astronomically small margin: evaluate in
log space), and the G1 score layout (docs/theory.md §6.4) used by the calculus route.

All layouts put N data keys and N dummy keys side by side, V[:, 0] = indicator of the data keys,
and read the per-query answer from T_i = Att[i, 0], the attention mass on the data keys.
"""

from __future__ import annotations

import math

import numpy as np

from harness.errors import HarnessError
from reductions.arrows.base import Arrow
from reductions.problems.attention import AAttCInstance, AttentionSolution
from reductions.problems.gadgets import GapHammingInstance, hamming_from_gram
from reductions.problems.ov import OVInstance, partner


def temperature(kind: str | float, d: int) -> float:
    """tau for the kernel score Q K^T / tau: '1', 'sqrt-d' or 'd' (docs/theory.md §6 harness rule)."""
    if isinstance(kind, (int, float)):
        return float(kind)
    table = {"1": 1.0, "sqrt-d": math.sqrt(d), "d": float(d)}
    if kind not in table:
        raise HarnessError(f"unknown temperature {kind!r}; choose 1, sqrt-d or d")
    return table[kind]


def _first_yes_row(ov: OVInstance, yes: np.ndarray, what: str):
    """Decode a per-query answer: the first flagged row i and its partner j (O(N m) scan)."""
    rows = np.flatnonzero(yes)
    if rows.size == 0:
        return None
    i = int(rows[0])
    j = partner(ov, i)
    if j is None:
        raise HarnessError(
            f"decode failed: {what} flags row {i} but u_{i} has no orthogonal partner "
            f"(the oracle's output is outside the required accuracy)"
        )
    return i, j


class OVToAttentionP1(Arrow):
    """docs/theory.md §6.3, P1 (re-centred dummies). n = 2N, d = m + 1, beta = 2 ln(cN), s = sqrt(beta):
    Q rows s(-u_i, 1) (rows N..2N-1 repeat them), K rows s(w_j, 0) (data), s(0, -1/2) (dummies).
    Scores: data -beta<u,w>, dummy -beta/2. Yes rows T >= c/(c+1), no rows T <= 1/(cN)."""

    name = "P1"
    source, target = "OV", "AAttC"
    spec = "docs/theory.md §6.3"
    needs = "T"

    def __init__(self, c: float = 4.0, tau: str | float = "1"):
        if c < 2:
            raise HarnessError(f"P1 needs c >= 2, got {c}")
        self.c, self.tau = float(c), tau

    def reduce(self, ov: OVInstance) -> AAttCInstance:
        N, m = ov.N, ov.m
        d = m + 1
        beta = 2.0 * math.log(self.c * N)
        tau = temperature(self.tau, d)
        s = math.sqrt(beta) * math.sqrt(tau)  # sqrt(tau) on Q and K realises the scores under tau
        Qh = np.hstack([-ov.U.astype(np.float64), np.ones((N, 1))]) * s
        Q = np.vstack([Qh, Qh])
        Kd = np.hstack([ov.W.astype(np.float64), np.zeros((N, 1))]) * s
        Kz = np.hstack([np.zeros((N, m)), np.full((N, 1), -0.5)]) * s
        K = np.vstack([Kd, Kz])
        V = np.zeros((2 * N, d))
        V[:N, 0] = 1.0
        meta = {
            "layout": "P1",
            "N": N,
            "m": m,
            "c": self.c,
            "beta": beta,
            "tau": tau,
            "yes_lb": self.c / (self.c + 1),
            "no_ub": 1.0 / (self.c * N),
            "threshold": 0.5,
            "score_range": beta * max(m, 1),
        }
        return AAttCInstance(Q, K, V, tau, meta, source=ov)

    def required_accuracy(self, target: AAttCInstance) -> float:
        return min(target.meta["yes_lb"] - 0.5, 0.5 - target.meta["no_ub"])

    def accuracy_statement(self) -> str:
        return "||T - Att||_inf < min(c/(c+1) - 1/2, 1/2 - 1/(cN)) (= 0.3 for c = 4)"

    def decode(self, target: AAttCInstance, sol: AttentionSolution, oracle=None):
        if sol.T is None:
            raise HarnessError("P1 decoding needs the attention output T, not only ||T||_F^2")
        N = target.meta["N"]
        T0 = np.asarray(sol.T, np.float64)[:N, 0]
        return _first_yes_row(target.source, T0 > 0.5, "P1")


class GapHammingToAttentionAS23(Arrow):
    """AS23 (arXiv:2302.13214) Lemma 4.7 layout, constants re-derived (docs/theory.md §6.3): n~ = 2N, d~ =
    2D, tau = d~. Q rows sqrt(b)[a_i, 1_D] (rows >= N: sqrt(b)[0, 1_D]); K rows sqrt(b)[b_j, 0] (data),
    sqrt(b)[0, 1_D] (dummies). Data score b(D - h)/(4D), dummy score b/2.
    beta = 4D ln(8N) / (h_no - h_yes) makes yes_lb / no_ub >= 4; decide at their geometric mean."""

    name = "AS23"
    source, target = "Gap-Hamming", "AAttC"
    spec = "AS23 Lemma 4.7; docs/theory.md §6.3"
    needs = "T"

    def reduce(self, gh: GapHammingInstance) -> AAttCInstance:
        A, B = gh.A.astype(np.float64), gh.B.astype(np.float64)
        N, D = A.shape
        if D == 0:
            raise HarnessError("the AS23 layout needs dimension D >= 1 (a formula with m >= 1 clauses)")
        h_yes, h_no = gh.t - 1, math.ceil((1 + gh.eps) * gh.t - 1e-9)
        beta = 4.0 * D * math.log(8 * N) / max(h_no - h_yes, 1)
        s = math.sqrt(beta)
        one = np.ones((N, D))
        Q = s * np.vstack([np.hstack([A, one]), np.hstack([np.zeros((N, D)), one])])
        K = s * np.vstack([np.hstack([B, np.zeros((N, D))]), np.hstack([np.zeros((N, D)), one])])
        V = np.zeros((2 * N, 2 * D))
        V[:N, 0] = 1.0
        s_yes = beta * (D - h_yes) / (4 * D)
        s_no = beta * (D - h_no) / (4 * D)
        log_yes = s_yes - beta / 2 - math.log(2 * N)
        log_no = s_no - beta / 2
        meta = {
            "layout": "AS23",
            "N": N,
            "D": D,
            "beta": beta,
            "tau": 2.0 * D,
            "log_yes_lb": log_yes,
            "log_no_ub": log_no,
            "log_threshold": 0.5 * (log_yes + log_no),
            "log10_yes_lb": log_yes / math.log(10),
            "score_range": beta / 2,
        }
        return AAttCInstance(Q, K, V, 2.0 * D, meta, source=gh)

    def required_accuracy(self, target: AAttCInstance) -> float:
        m = target.meta
        return math.exp(m["log_yes_lb"]) - math.exp(m["log_threshold"])  # 0.0 once it underflows

    def accuracy_statement(self) -> str:
        return "eps_a < yes_lb - sqrt(yes_lb no_ub) = n^(-Theta(1/eps)) (underflows float64 from v ~ 14)"

    def decode(self, target: AAttCInstance, sol: AttentionSolution, oracle=None):
        N = target.meta["N"]
        thr = target.meta["log_threshold"]
        if "log_col0" in sol.info:
            yes = np.asarray(sol.info["log_col0"])[:N] >= thr
        else:
            if sol.T is None:
                raise HarnessError("AS23 decoding needs T (or its log column)")
            if math.exp(thr) == 0.0:
                raise HarnessError(
                    f"AS23 layout underflows float64: the decision threshold is "
                    f"10^{thr / math.log(10):.0f}; evaluate it in log space"
                )
            T0 = np.asarray(sol.T, np.float64)[:N, 0]
            with np.errstate(divide="ignore"):
                yes = np.log(np.maximum(T0, 0.0)) >= thr
        rows = np.flatnonzero(yes)
        if rows.size == 0:
            return None
        gh: GapHammingInstance = target.source
        i = int(rows[0])
        a = gh.A[i : i + 1].astype(np.int64)
        dist = hamming_from_gram(a @ gh.B.T.astype(np.int64), a, gh.B.astype(np.int64))[0]
        hit = np.flatnonzero(dist < gh.t)
        if hit.size == 0:
            raise HarnessError(f"decode failed: AS23 flags query {i} but it has no near neighbour")
        return i, int(hit[0])


class OVToAttentionG1Layout(Arrow):
    """The G1 score matrix as an attention instance (docs/theory.md §6.4, fix A): n = 2N, d = m + 1,
    data score -beta<u, w>, dummy score 0 (so T_i <= 1/2), beta = (1/2) ln(16 N (N+1)^2).
    Decision statistic f(1) = ||Att||_F^2 = sum_i T_i^2 (rows restricted to R):
    yes >= 1/(N+1)^2 (one yes row suffices), no <= 2N e^(-2 beta) = 1/(8 (N+1)^2).
    Decoding a yes instance: binary search on the query rows, ceil(log2 N) more oracle calls."""

    name = "G1-layout"
    source, target = "OV", "AAttC"
    spec = "docs/theory.md §6.4"
    needs = "frob2"
    extra_calls = "ceil(log2 N)"
    restricts_queries = True

    def reduce(self, ov: OVInstance) -> AAttCInstance:
        N, m = ov.N, ov.m
        beta = 0.5 * math.log(16 * N * (N + 1) ** 2)
        s = math.sqrt(beta)
        Qh = np.hstack([-ov.U.astype(np.float64), np.zeros((N, 1))]) * s
        K = np.vstack([np.hstack([ov.W.astype(np.float64), np.zeros((N, 1))]) * s, np.zeros((N, m + 1))])
        V = np.zeros((2 * N, m + 1))
        V[:N, 0] = 1.0
        yes, no = 1.0 / (N + 1) ** 2, 2 * N * math.exp(-2 * beta)
        meta = {
            "layout": "G1",
            "N": N,
            "m": m,
            "beta": beta,
            "yes_lb": yes,
            "no_ub": no,
            "threshold": 0.5 * (yes + no),
            "score_range": beta * max(m, 1),
        }
        return AAttCInstance(np.vstack([Qh, Qh]), K, V, 1.0, meta, source=ov)

    def required_accuracy(self, target: AAttCInstance) -> float:
        """Accuracy on the statistic f(1) (not on T): (yes_lb - no_ub) / 2."""
        return 0.5 * (target.meta["yes_lb"] - target.meta["no_ub"])

    def accuracy_statement(self) -> str:
        return "|f(1) - ||Att||_F^2| < (1/(N+1)^2 - 2N e^(-2 beta))/2 ~ 7/(16 (N+1)^2)"

    def decode(self, target: AAttCInstance, sol: AttentionSolution, oracle=None):
        thr = target.meta["threshold"]
        if sol.frobenius2() <= thr:
            return None
        N = target.meta["N"]
        if sol.T is not None:  # a full output gives the row at once
            yes = np.asarray(sol.T, np.float64)[:N, 0] >= 1.0 / (N + 1) - 1e-12
            return _first_yes_row(target.source, yes, "G1-layout")
        if oracle is None:
            raise HarnessError("G1-layout decoding of a yes instance needs the oracle for the binary search")
        lo, hi = 0, N
        while hi - lo > 1:
            mid = (lo + hi) // 2
            sub = target.restrict_queries(np.arange(lo, mid))
            if oracle(sub).frobenius2() > thr:
                hi = mid
            else:
                lo = mid
        return _first_yes_row(target.source, np.arange(N) == lo, "G1-layout binary search")
