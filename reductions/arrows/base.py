"""The Arrow interface shared by every reduction, oracle call counting, and composition.

An arrow maps instances of a source problem to instances of a target problem:

* `reduce(source) -> target`; the target records its `source` so decoding can walk back.
* `decode(target, solution, oracle=None) -> source solution`. `oracle` (a callable on target
  instances) is only used by arrows whose decoder makes extra calls (G1's binary search,
  docs/theory.md §6.4; the quadrature route, §6.4); an arrow never picks a solver itself.
* `required_accuracy(target)`: the max-norm error on the target solution below which decoding is
  guaranteed right (0.0 means the target must be solved exactly).
* `solve(source, oracle)` = decode(reduce(source), oracle(target), oracle); `pullback(oracle)`
  turns an oracle for the target problem into one for the source problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.errors import HarnessError

Oracle = Callable[[Any], Any]


class Arrow:
    name: str = "?"
    source: str = "?"
    target: str = "?"
    spec: str = ""
    # what kind of target solution decode needs, and what kind of source solution it returns
    needs: str = "exact"
    gives: str = "exact"
    extra_calls: str = "0"
    fails: bool = False  # True for the printed constructions the harness shows to fail
    # decoders that query sub-instances with fewer query rows than keys cannot sit above an arrow
    # that needs as many queries as keys (the self-attention embedding)
    restricts_queries: bool = False
    needs_square: bool = False

    def reduce(self, source: Any) -> Any:
        raise NotImplementedError

    def decode(self, target: Any, solution: Any, oracle: Oracle | None = None) -> Any:
        raise NotImplementedError

    def required_accuracy(self, target: Any) -> float:
        return 0.0

    def accuracy_statement(self) -> str:
        return "exact"

    def solve(self, source: Any, oracle: Oracle) -> Any:
        target = self.reduce(source)
        return self.decode(target, oracle(target), oracle)

    def pullback(self, oracle: Oracle) -> Oracle:
        def pulled(source):
            return self.solve(source, oracle)

        pulled.__name__ = f"{getattr(oracle, '__name__', 'oracle')}<-{self.name}"
        return pulled

    def __repr__(self) -> str:
        return f"<arrow {self.name}: {self.source} -> {self.target}>"


class CountingOracle:
    """Wraps an oracle and counts its calls (the CLI and tests report the count)."""

    def __init__(self, fn: Oracle, name: str | None = None):
        self.fn = fn
        self.calls = 0
        self.__name__ = name or getattr(fn, "__name__", "oracle")

    def __call__(self, x):
        self.calls += 1
        return self.fn(x)


class Composite(Arrow):
    """A path of arrows as one reduction (reductions.graph.compose)."""

    def __init__(self, arrows: list[Arrow]):
        if not arrows:
            raise HarnessError("a composed reduction needs at least one arrow")
        for a, b in zip(arrows, arrows[1:]):
            if a.target != b.source:
                raise HarnessError(f"cannot compose {a.name} ({a.target}) with {b.name} ({b.source})")
            if b.gives != a.needs and a.needs != "any":
                raise HarnessError(
                    f"{a.name} needs a {a.needs} {a.target} solution but {b.name} gives {b.gives}"
                )
        for i, a in enumerate(arrows):
            if a.restricts_queries and any(b.needs_square for b in arrows[i + 1 :]):
                raise HarnessError(
                    f"{a.name} queries sub-instances with fewer queries than keys, "
                    f"which a self-attention arrow after it cannot embed"
                )
        self.arrows = list(arrows)
        self.name = " ; ".join(a.name for a in arrows)
        self.source, self.target = arrows[0].source, arrows[-1].target
        self.needs, self.gives = arrows[-1].needs, arrows[0].gives

    def reduce(self, source):
        x = source
        for a in self.arrows:
            x = a.reduce(x)
        return x

    def _oracles(self, oracle: Oracle) -> list[Oracle]:
        out = [oracle]
        for a in reversed(self.arrows[1:]):
            out.append(a.pullback(out[-1]))
        return list(reversed(out))  # out[i] is the oracle for arrows[i].target

    def decode(self, target, solution, oracle: Oracle | None = None):
        chain = [target]
        for _ in self.arrows[1:]:
            chain.append(chain[-1].source)
        chain.reverse()  # chain[i] = target of arrows[i]
        oracles = self._oracles(oracle) if oracle is not None else [None] * len(self.arrows)
        sol = solution
        for i in range(len(self.arrows) - 1, -1, -1):
            sol = self.arrows[i].decode(chain[i], sol, oracles[i])
        return sol

    def solve(self, source, oracle: Oracle):
        return self.arrows[0].solve(source, self._oracles(oracle)[0])

    def required_accuracy(self, target) -> float:
        return self.arrows[-1].required_accuracy(target)

    def accuracy_statement(self) -> str:
        return self.arrows[-1].accuracy_statement()
