"""AAttC, approximate attention computation (AS23 (arXiv:2302.13214); docs/theory.md §2.4, §6.3).

An `AAttCInstance` holds Q (n, d), K (n', d), V (n', d) and a temperature tau: the exact answer is
Att = softmax_rows(Q K^T / tau) V; a solver must return T with ||T - Att||_inf <= eps_a.
(AS23 use tau = d; the P1 layout of docs/theory.md §6.3 builds its scores for tau = 1 and realises
them under any tau by putting sqrt(tau) on Q and K, the harness rule of docs/theory.md §6.)

A solution is an `AttentionSolution`: the output matrix T, or (for the calculus route of
docs/theory.md §6.4) only the statistic frob2 = ||Att||_F^2.

`forward_oracle(solver)` turns any harness solver with `forward` into an AAttC oracle: it builds the
Instance X_q = Q, X_k = K, X_v = V, W_q = W_k = W_v = I, beta = 1/tau, no adapter, Y = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.instance import Instance


@dataclass(frozen=True, eq=False)
class AAttCInstance:
    Q: np.ndarray
    K: np.ndarray
    V: np.ndarray
    tau: float = 1.0
    meta: dict = field(default_factory=dict)
    source: Any = None

    @property
    def n(self) -> int:
        return self.Q.shape[0]

    @property
    def d(self) -> int:
        return self.Q.shape[1]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"Q": self.Q, "K": self.K, "V": self.V, "tau": np.array(self.tau)}

    def restrict_queries(self, rows: np.ndarray) -> AAttCInstance:
        """The same keys and values with only the given query rows (cross-attention)."""
        return AAttCInstance(
            self.Q[rows], self.K, self.V, self.tau, dict(self.meta, rows=len(rows)), source=self.source
        )

    def scores(self) -> np.ndarray:
        return (self.Q @ self.K.T) / self.tau

    def bounds(self) -> dict[str, float]:
        """Entry bound B = max(||Q||_inf, ||K||_inf) and the score range (docs/theory.md §6)."""
        B = float(max(np.abs(self.Q).max(initial=0), np.abs(self.K).max(initial=0)))
        return {"B": B, "V_max": float(np.abs(self.V).max(initial=0)), "tau": self.tau}


@dataclass
class AttentionSolution:
    T: np.ndarray | None = None
    frob2: float | None = None
    info: dict = field(default_factory=dict)

    def frobenius2(self) -> float:
        if self.frob2 is not None:
            return float(self.frob2)
        if self.T is None:
            raise HarnessError("attention solution has neither T nor ||T||_F^2")
        return float(np.square(np.asarray(self.T, np.float64)).sum())


def exact_attention(inst: AAttCInstance) -> np.ndarray:
    """Reference Att = softmax(Q K^T / tau) V in float64 numpy, row-max stabilised."""
    S = inst.scores()
    S -= S.max(axis=1, keepdims=True)
    np.exp(S, out=S)
    S /= S.sum(axis=1, keepdims=True)
    return S @ inst.V


def log_attention_column(inst: AAttCInstance, col: int = 0) -> np.ndarray:
    """log Att[:, col] for V[:, col] in {0, 1}, by logsumexp over the keys with V[j, col] = 1 minus
    logsumexp over all keys (no underflow; docs/theory.md §6.3: the AS23 layout is evaluated only
    in log space)."""
    S = inst.scores()
    sel = inst.V[:, col] > 0.5
    if not np.all((inst.V[:, col] == 0) | (inst.V[:, col] == 1)):
        raise HarnessError("log-space evaluation needs a 0/1 value column")

    def lse(M):
        if M.shape[1] == 0:
            return np.full(M.shape[0], -np.inf)
        mx = M.max(axis=1, keepdims=True)
        return (mx + np.log(np.exp(M - mx).sum(axis=1, keepdims=True)))[:, 0]

    return lse(S[:, sel]) - lse(S)


def to_instance(inst: AAttCInstance, dtype=np.float64) -> Instance:
    """The harness Instance whose forward pass is Att(Q, K, V): X_q = Q, X_k = K, X_v = V, identity
    weights, beta = 1/tau, no adapter, Y = 0 (the forward pass ignores Y)."""
    d = inst.d
    if inst.K.shape[1] != d or inst.V.shape[1] != d:
        raise HarnessError(f"Q, K, V must share the feature size d={d}")
    I = np.eye(d, dtype=dtype)
    return Instance.from_arrays(
        {
            "X_q": inst.Q.astype(dtype),
            "X_k": inst.K.astype(dtype),
            "X_v": inst.V.astype(dtype),
            "W_q": I,
            "W_k": I,
            "W_v": I,
            "Y": np.zeros_like(inst.Q, dtype=dtype),
        },
        alpha=1.0,
        beta=1.0 / inst.tau,
        meta={"problem": "AAttC", **_json_meta(inst.meta)},
    )


def _json_meta(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if isinstance(v, (int, float, str, bool))}


def forward_oracle(solver, dtype: str = "float64", device: str = "cpu", **options):
    """An AAttC oracle from a harness solver: T = solver.forward(instance)[0]."""
    from harness.solvers import get_solver

    s = get_solver(solver)
    max_memory = options.pop("max_memory", None)

    def oracle(inst: AAttCInstance) -> AttentionSolution:
        x = to_instance(inst)
        s.guard(x, dtype=dtype, device=device, max_memory=max_memory, **options)  # options, memory
        T = s.forward(x, dtype=dtype, device=device, **options)
        return AttentionSolution(T=np.asarray(T)[0])

    oracle.__name__ = f"forward[{s.name},{dtype}]"
    return oracle


def exact_oracle(inst: AAttCInstance) -> AttentionSolution:
    return AttentionSolution(T=exact_attention(inst))
