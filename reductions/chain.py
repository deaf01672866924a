"""End-to-end routes k-SAT -> ... -> oracle, as used by `lora-harness solve-sat` and the benchmark.

* via "attention":          split-and-list ; P1                 oracle = solver.forward
* via "attention-gradient": split-and-list ; G1 (or G1-E0)      oracle = solver.solve on the q-only,
                                                                  r = d' Instance (dA_q = dL/dX)
* via "lora":               split-and-list ; G1 ; App. D         oracle = solver.solve on the LoRA
                                                                  Instance (d > r), read dA_q[:, :r]

Satisfiability is decided only through oracle calls (one call, plus ceil(log2 N) for G1's decode of
a yes instance) and O(N m) decode work; the decoded model is checked against the formula.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.memguard import MemoryLimit
from reductions.arrows.base import Arrow, Composite, CountingOracle
from reductions.arrows.gradient_to_lora import GradientToLoRA
from reductions.arrows.ov_to_attention import OVToAttentionP1
from reductions.arrows.ov_to_gradient import OVToGradientG1
from reductions.arrows.sat_to_ov import SatToOV
from reductions.problems.attention import forward_oracle
from reductions.problems.attention_gradient import gradient_oracle
from reductions.problems.cnf import CNF
from reductions.problems.lora import lora_oracle
from reductions.sizes import chain_memory

VIAS = ("attention", "attention-gradient", "lora")


def route(
    via: str, *, variant: str = "g1", form: str = "cross", adapt: str = "C1", tau: str = "1"
) -> list[Arrow]:
    """The arrows of one route (see module docstring)."""
    if via not in VIAS:
        raise HarnessError(f"unknown route {via!r}; choose {', '.join(VIAS)}")
    if variant not in ("g1", "g1-e0"):
        raise HarnessError(f"unknown G1 variant {variant!r}; choose g1 or g1-e0")
    if via == "attention":
        return [SatToOV(), OVToAttentionP1(tau=tau)]
    g1 = OVToGradientG1(zero_E=variant == "g1-e0")
    if via == "attention-gradient":
        return [SatToOV(), g1]
    return [SatToOV(), g1, GradientToLoRA(form, adapt)]


def make_oracle(via: str, solver, dtype: str = "float64", device: str = "cpu", **options):
    if via == "attention":
        return forward_oracle(solver, dtype, device, **options)
    if via == "attention-gradient":
        return gradient_oracle(solver, dtype, device, **options)
    return lora_oracle(solver, dtype, device, **options)


@dataclass
class ChainRun:
    model: tuple | None
    calls: int
    seconds: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    margins: dict = field(default_factory=dict)

    @property
    def sat(self) -> bool:
        return self.model is not None


class _TimedOracle(CountingOracle):
    def __init__(self, fn, name=None):
        super().__init__(fn, name)
        self.seconds = 0.0

    def __call__(self, x):
        t0 = time.perf_counter()
        try:
            return super().__call__(x)
        finally:
            self.seconds += time.perf_counter() - t0


def solve_sat(
    cnf: CNF,
    via: str,
    solver: Any,
    dtype: str = "float64",
    device: str = "cpu",
    options: dict | None = None,
    max_memory: Any = None,
    **route_kw,
) -> ChainRun:
    """Decide `cnf` through the named route and solver; returns the model (or None) and statistics.
    A decoded model that does not satisfy the formula is a HarnessError (the oracle was wrong).
    The reduction's memory (2^ceil(v/2) OV vectors, the 2N-token instance) and each oracle call's
    are checked against `max_memory` (harness.memguard) before they are allocated."""
    limit = MemoryLimit.resolve(max_memory)
    limit.check(
        chain_memory(cnf.nvars, cnf.m, as23=False),
        f"the {via} reduction of a formula with v={cnf.nvars} (N = 2^{(cnf.nvars + 1) // 2} OV vectors)",
    )
    arrows = route(via, **route_kw)
    oracle = _TimedOracle(make_oracle(via, solver, dtype, device, **(options or {}), max_memory=limit))
    seconds: dict[str, float] = {}
    # reduce arrow by arrow (timed), then decode back through the composite with the oracle
    x = cnf
    targets = []
    for a in arrows:
        t0 = time.perf_counter()
        x = a.reduce(x)
        seconds[f"reduce {a.name}"] = time.perf_counter() - t0
        targets.append(x)
    comp = Composite(arrows)
    t0 = time.perf_counter()
    sol = oracle(x)
    model = comp.decode(x, sol, oracle)
    total = time.perf_counter() - t0
    seconds["oracle"] = oracle.seconds
    seconds["decode"] = total - oracle.seconds
    if model is not None and not cnf.satisfies(model):
        raise HarnessError("decode produced an assignment that does not satisfy the formula")
    ov = targets[0]
    N = ov.N
    sizes = {"v": cnf.nvars, "m": cnf.m, "N": N, "n": 2 * N, "max_calls": 1 + math.ceil(math.log2(max(N, 1)))}
    tgt = targets[1]
    margins = {
        k: tgt.meta[k]
        for k in ("yes_lb", "no_ub", "threshold", "eps_needed", "beta", "entry")
        if k in tgt.meta
    }
    margins["required_accuracy"] = arrows[-1].required_accuracy(x)
    return ChainRun(model, oracle.calls, seconds, sizes, margins)
