"""AAttLGC, the approximate attention-loss gradient (AS24 (arXiv:2402.04497) Def. 1.2/1.4; docs/theory.md
§2.4, §3.1).

L(X) = 1/2 || D(X)^-1 exp(A1 X A2^T / d) A3 Y - E ||_F^2 with d = the head dimension (A1.shape[1]);
a solver must return g with ||g - dL/dX||_inf <= eps. Exact gradient (docs/theory.md §3.1, 1/d
reinstated): dL/dX = (1/d) A1^T p A2 with f = softmax(A1 X A2^T / d), c = f A3 Y - E,
q = c (A3 Y)^T, p = f . q - diag(rowsum(f . q)) f.

`to_instance` realises an AAttLGC instance as a harness Instance with an adapter on q only and
r = d: X_q = A1, W*_q = 0, B_q = I, A_q = X, alpha = r (so W_q = X), X_k = A2, W_k = I, X_v = A3,
W_v = Y, Y_target = E, beta = 1/d, N = 1 (the loss's 1/(2N) is the 1/2). Then dA_q = dL/dX
exactly, and `gradient_oracle(solver)` is an AAttLGC oracle built from any harness solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.instance import Instance


@dataclass(frozen=True, eq=False)
class AAttLGCInstance:
    A1: np.ndarray
    A2: np.ndarray
    A3: np.ndarray
    E: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    meta: dict = field(default_factory=dict)
    source: Any = None

    def __post_init__(self):
        d = self.A1.shape[1]
        if self.X.shape != (d, d) or self.Y.shape != (d, d):
            raise HarnessError(f"AAttLGC needs X, Y of shape ({d}, {d}); got {self.X.shape}, {self.Y.shape}")
        if self.A2.shape[1] != d or self.A3.shape[1] != d or self.E.shape != self.A1.shape:
            raise HarnessError("AAttLGC needs A1, A2, A3, E with one head dimension d and E like A1")
        if self.A2.shape[0] != self.A3.shape[0]:
            raise HarnessError("AAttLGC keys A2 and values A3 must have the same number of rows")

    @property
    def n(self) -> int:
        return self.A1.shape[0]

    @property
    def d(self) -> int:
        return self.A1.shape[1]

    def with_(self, **changes) -> AAttLGCInstance:
        return replace(self, **changes)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("A1", "A2", "A3", "E", "X", "Y")}

    def bounds(self) -> dict[str, float]:
        """B = max(||A1 X||_inf, ||A2||_inf) (AS24 Def. 1.4) and the score range ||A1 X A2^T / d||_inf."""
        A1X = self.A1 @ self.X
        S = A1X @ self.A2.T / self.d
        return {
            "B": float(max(np.abs(A1X).max(initial=0), np.abs(self.A2).max(initial=0))),
            "A3_max": float(np.abs(self.A3).max(initial=0)),
            "E_max": float(np.abs(self.E).max(initial=0)),
            "score_range": float(S.max(initial=0) - S.min(initial=0)),
        }


def softmax_rows(S: np.ndarray) -> np.ndarray:
    S = S - S.max(axis=1, keepdims=True)
    np.exp(S, out=S)
    S /= S.sum(axis=1, keepdims=True)
    return S


def loss_and_gradient(inst: AAttLGCInstance) -> tuple[float, np.ndarray]:
    """Reference (float64 numpy): L(X) and dL/dX = (1/d) A1^T p A2 (AS24 (arXiv:2402.04497) Lemma C.8;
    docs/theory.md §3.1)."""
    d = inst.d
    f = softmax_rows(inst.A1 @ inst.X @ inst.A2.T / d)
    h = inst.A3 @ inst.Y
    c = f @ h - inst.E
    q = c @ h.T
    fq = f * q
    p = fq - fq.sum(axis=1, keepdims=True) * f
    return 0.5 * float(np.square(c).sum()), (inst.A1.T @ p @ inst.A2) / d


def to_instance(inst: AAttLGCInstance, dtype=np.float64) -> Instance:
    """The harness Instance (adapter on q only, r = d) whose dA_q is dL/dX (module docstring)."""
    d = inst.d
    I = np.eye(d, dtype=dtype)
    return Instance.from_arrays(
        {
            "X_q": inst.A1.astype(dtype),
            "X_k": inst.A2.astype(dtype),
            "X_v": inst.A3.astype(dtype),
            "W_q": np.zeros((d, d), dtype=dtype),
            "W_k": I,
            "W_v": inst.Y.astype(dtype),
            "A_q": inst.X.astype(dtype),
            "B_q": I,
            "Y": inst.E.astype(dtype),
        },
        alpha=float(d),
        beta=1.0 / d,
        meta={
            "problem": "AAttLGC",
            **{k: v for k, v in inst.meta.items() if isinstance(v, (int, float, str))},
        },
    )


def gradient_oracle(solver, dtype: str = "float64", device: str = "cpu", **options):
    """An AAttLGC oracle from a harness solver: g = solver.solve(to_instance(inst)).grads['dA_q']."""
    from harness.solvers import get_solver

    s = get_solver(solver)

    def oracle(inst: AAttLGCInstance) -> np.ndarray:
        res = s.solve(to_instance(inst), dtype=dtype, device=device, **options)
        return np.asarray(res.grads["dA_q"], np.float64)

    oracle.__name__ = f"gradient[{s.name},{dtype}]"
    return oracle


def exact_oracle(inst: AAttLGCInstance) -> np.ndarray:
    return loss_and_gradient(inst)[1]
