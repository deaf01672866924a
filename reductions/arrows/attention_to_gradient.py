"""AAttC -> AAttLGC by AS24's calculus route (AS24 (arXiv:2402.04497) App. E, Thm E.5; docs/theory.md §6.4).

Put A1 = Q d/tau (so AS24's 1/d temperature gives the scores Q K^T / tau), A2 = K, A3 = V, Y = I,
E = 0, X = lambda I. Then L(lambda I) = f(lambda)/2 with f(lambda) = ||softmax(lambda S) V||_F^2, and
f'(lambda) = 2 tr(dL/dX at X = lambda I). f(0) is known (uniform attention: n_q ||mean_j V_j||^2), so
f(1) = f(0) + int_0^1 f'(lambda) d lambda is recovered from gradient calls alone.

* `rule="left-riemann"` (as printed, AS24 Lemma E.4): t_M = (1/M) sum_{i<M} f'(i/M), error <= b/M
  with b = max |f''| = O(B'^2 n): with polylog M calls the error is Theta(n). It fails; see
  benchmarks/results/reductions.md for the measured error.
* `rule="gauss-legendre"` (docs/theory.md §6.4, fix A): P panels x Q nodes; f is analytic in lambda,
  so the error falls fast. How many panels a tolerance needs grows with the score range, so by
  default the rule is adaptive: each panel is compared with its two halves, the panel with the
  largest difference is bisected until the differences sum to at most delta/4 (a quarter of the
  source's tolerance; the error estimate of the finer sum, not a proved bound), and the route
  refuses in one line when `max_calls` oracle calls do not get there. Without a known tolerance
  (an AAttC instance that did not come from the G1 layout) it evaluates the fixed P x Q rule.

The output is only the statistic ||Att||_F^2, an `AttentionSolution(frob2=...)`; the per-query
answer needs the G1 layout's binary search on top (reductions.arrows.ov_to_attention).
Required per-call accuracy: a gradient error eps moves f(1) by at most 2 d eps, so
eps <= delta / (4 d) leaves half of the source's tolerance delta for the quadrature.
"""

from __future__ import annotations

import heapq

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
        self,
        rule: str = "gauss-legendre",
        calls: int | None = None,
        panels: int = 8,
        order: int = 16,
        adaptive: bool = True,
        max_calls: int = 1 << 14,
    ):
        self.rule, self.calls, self.panels, self.order = rule, calls, panels, order
        nodes_weights(rule, calls, panels, order)  # validate
        self.adaptive = adaptive and rule == "gauss-legendre"
        self.max_calls = int(max_calls)
        self.name = f"AS24-{rule}"
        self.fails = rule == "left-riemann"  # as printed: error Theta(n) with polylog calls
        fixed = len(nodes_weights(rule, calls, panels, order)[0])
        self.extra_calls = f"adaptive, >= {3 * fixed}" if self.adaptive else str(fixed)

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
        quad = "quadrature refined to an estimated delta/4" if self.adaptive else "plus the quadrature error"
        return f"per call eps <= delta/(4d), delta = tolerance on ||Att||_F^2; {quad}"

    def _sum(self, target: AAttLGCInstance, oracle, xs, ws) -> float:
        """sum_k w_k f'(lambda_k), f'(lambda) = 2 tr(g(lambda))."""
        return sum(w * 2.0 * float(np.trace(oracle(self.at(target, x)))) for x, w in zip(xs, ws))

    def estimate(self, target: AAttLGCInstance, oracle) -> float:
        """f(1) = f(0) + sum_k w_k 2 tr(g(lambda_k)) with the fixed rule."""
        xs, ws = nodes_weights(self.rule, self.calls, self.panels, self.order)
        return target.meta["f0"] + self._sum(target, oracle, xs, ws)

    def estimate_adaptive(self, target: AAttLGCInstance, oracle, tol: float) -> tuple[float, float, int]:
        """f(1) by adaptive composite Gauss-Legendre: (estimate, estimated quadrature error, calls).
        Each panel [a, b] holds its Q-node sum and those of its two halves; the estimate uses the
        halves and |whole - halves| is the panel's error estimate. The panel with the largest one
        is bisected (its halves become panels, 2 x 2Q more calls) until the estimates sum to <= tol."""
        x, w = np.polynomial.legendre.leggauss(self.order)
        calls = 0

        def gl(a: float, b: float) -> float:
            nonlocal calls
            calls += self.order
            return self._sum(target, oracle, a + (b - a) * (x + 1) / 2, w * (b - a) / 2)

        def split(a: float, b: float, whole: float) -> tuple:
            m = 0.5 * (a + b)
            left, right = gl(a, m), gl(m, b)
            return (-abs(whole - (left + right)), a, b, left, right)

        edges = np.linspace(0.0, 1.0, self.panels + 1)
        heap = [split(a, b, gl(a, b)) for a, b in zip(edges[:-1], edges[1:])]
        heapq.heapify(heap)
        while (err := -sum(p[0] for p in heap)) > tol:
            if calls + 4 * self.order > self.max_calls:
                raise HarnessError(
                    f"calculus route: the quadrature's error estimate {err:.3g} is above the tolerance "
                    f"{tol:.3g} after {calls} oracle calls (max_calls={self.max_calls})"
                )
            _, a, b, left, right = heapq.heappop(heap)
            m = 0.5 * (a + b)
            heapq.heappush(heap, split(a, m, left))
            heapq.heappush(heap, split(m, b, right))
        return target.meta["f0"] + sum(p[3] + p[4] for p in heap), err, calls

    def decode(self, target: AAttLGCInstance, solution, oracle=None) -> AttentionSolution:
        if oracle is None:
            raise HarnessError("the calculus route needs the gradient oracle (one call per quadrature node)")
        tol = 0.25 * target.meta.get("delta", float("nan"))
        info = {"rule": self.rule, "adaptive": bool(self.adaptive and np.isfinite(tol) and tol > 0)}
        if info["adaptive"]:
            f1, err, info["calls"] = self.estimate_adaptive(target, oracle, tol)
            info.update(error_estimate=float(err), tol=tol)
        else:
            f1 = self.estimate(target, oracle)
            info["calls"] = len(nodes_weights(self.rule, self.calls, self.panels, self.order)[0])
        return AttentionSolution(frob2=f1, info=info)

    def solve(self, source: AAttCInstance, oracle) -> AttentionSolution:
        return self.decode(self.reduce(source), None, oracle)
