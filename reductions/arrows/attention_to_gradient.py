"""AAttC -> AAttLGC by AS24's calculus route (AS24 (arXiv:2402.04497) App. E, Thm E.5; docs/theory.md §6.4).

Put A1 = Q d/tau (so AS24's 1/d temperature gives the scores Q K^T / tau), A2 = K, A3 = V, Y = I,
E = 0, X = lambda I. Then L(lambda I) = f(lambda)/2 with f(lambda) = ||softmax(lambda S) V||_F^2, and
f'(lambda) = 2 tr(dL/dX at X = lambda I). f(0) is known (uniform attention: n_q ||mean_j V_j||^2), so
f(1) = f(0) + int_0^1 f'(lambda) d lambda is recovered from gradient calls alone.

* `rule="left-riemann"` (as printed, AS24 Lemma E.4): t_M = (1/M) sum_{i<M} f'(i/M), error <= b/M
  with b = max |f''| = O(B'^2 n): with polylog M calls the error is Theta(n). It fails; see
  benchmarks/results/reductions.md for the measured error.
* `rule="gauss-legendre"` (docs/theory.md §6.4, fix A): P panels x Q nodes; f is analytic in lambda,
  so the error falls fast (empirical call counts only).

The output is only the statistic ||Att||_F^2, an `AttentionSolution(frob2=...)`; the per-query
answer needs the G1 layout's binary search on top (reductions.arrows.ov_to_attention).
Required per-call accuracy: a gradient error eps moves f(1) by at most 2 d eps, so
eps <= delta / (4 d) leaves half of the source's tolerance delta for the quadrature.
"""

from __future__ import annotations

import numpy as np

from harness.errors import HarnessError
from reductions.arrows.base import Arrow
from reductions.problems.attention import AAttCInstance, AttentionSolution
from reductions.problems.attention_gradient import AAttLGCInstance


def nodes_weights(rule: str, calls: int | None = None, panels: int = 32, order: int = 16):
    """Quadrature nodes/weights on [0, 1]."""
    if rule == "left-riemann":
        M = int(calls or 256)
        return np.arange(M) / M, np.full(M, 1.0 / M)
    if rule == "gauss-legendre":
        x, w = np.polynomial.legendre.leggauss(order)
        edges = np.linspace(0.0, 1.0, panels + 1)
        xs, ws = [], []
        for a, b in zip(edges[:-1], edges[1:]):
            xs.append(a + (b - a) * (x + 1) / 2)
            ws.append(w * (b - a) / 2)
        return np.concatenate(xs), np.concatenate(ws)
    raise HarnessError(f"unknown quadrature rule {rule!r}; choose left-riemann or gauss-legendre")


class AttentionToGradient(Arrow):
    name = "AS24-calculus"
    source, target = "AAttC", "AAttLGC"
    spec = "AS24 App. E; docs/theory.md §6.4, §7.8"
    needs = "gradient"
    gives = "frob2"

    def __init__(
        self, rule: str = "gauss-legendre", calls: int | None = None, panels: int = 32, order: int = 16
    ):
        self.rule, self.calls, self.panels, self.order = rule, calls, panels, order
        nodes_weights(rule, calls, panels, order)  # validate
        self.name = f"AS24-{rule}"
        self.fails = rule == "left-riemann"  # as printed: error Theta(n) with polylog calls
        self.extra_calls = str(len(nodes_weights(rule, calls, panels, order)[0]))

    def reduce(self, att: AAttCInstance) -> AAttLGCInstance:
        d = att.d
        n_q = att.Q.shape[0]
        f0 = n_q * float(np.square(att.V.mean(axis=0)).sum())
        meta = {"route": self.name, "f0": f0, "d": d}
        if "yes_lb" in att.meta and "no_ub" in att.meta and att.meta.get("layout") == "G1":
            meta["delta"] = 0.5 * (att.meta["yes_lb"] - att.meta["no_ub"])
        return AAttLGCInstance(
            att.Q * (d / att.tau), att.K, att.V, np.zeros((n_q, d)), np.eye(d), np.eye(d), meta, source=att
        )

    @staticmethod
    def at(target: AAttLGCInstance, lam: float) -> AAttLGCInstance:
        return target.with_(X=lam * np.eye(target.d), meta=dict(target.meta, lam=float(lam)))

    def required_accuracy(self, target: AAttLGCInstance) -> float:
        return target.meta.get("delta", float("nan")) / (4 * target.d)

    def accuracy_statement(self) -> str:
        return "per call eps <= delta/(4d), delta = tolerance on ||Att||_F^2; plus the quadrature error"

    def estimate(self, target: AAttLGCInstance, oracle) -> float:
        """f(1) = f(0) + sum_k w_k 2 tr(g(lambda_k))."""
        xs, ws = nodes_weights(self.rule, self.calls, self.panels, self.order)
        total = target.meta["f0"]
        for x, w in zip(xs, ws):
            total += w * 2.0 * float(np.trace(oracle(self.at(target, x))))
        return total

    def decode(self, target: AAttLGCInstance, solution, oracle=None) -> AttentionSolution:
        if oracle is None:
            raise HarnessError("the calculus route needs the gradient oracle (one call per quadrature node)")
        xs, _ = nodes_weights(self.rule, self.calls, self.panels, self.order)
        return AttentionSolution(
            frob2=self.estimate(target, oracle), info={"calls": len(xs), "rule": self.rule}
        )

    def solve(self, source: AAttCInstance, oracle) -> AttentionSolution:
        return self.decode(self.reduce(source), None, oracle)
