"""Constructors for the paper's reduced problems; each returns a general `Instance`.

* `c1_reduced(C1, C2, C3, Y, W_star, A_Q, B_Q)`: loss (3.3) (Hu et al. (arXiv:2406.03136);
  docs/theory.md §2.3)
  1/2 || softmax(C1 (W* + B_Q A_Q) C2^T) C3 - Y ||_F^2, only (A_Q, B_Q) adapted.
* `c1_from_original(inst)`: the (S2)/(3.2) substitution (docs/theory.md §2.3) applied to a general instance
  whose query adapter is the one studied: C1 = (alpha/r) X_q, C2 = X_k W_k, C3 = X_v W_v (current
  weights, held fixed), W* <- (r/alpha) W*_q. The reduced instance has the same loss and the same
  (A_q, B_q) gradients (tests/test_problems.py).
* `c2_reduced(X_q, X_k, C3, Y, W_Q_star, W_K_star, A_Q, B_Q, A_K, B_K)`: loss (4.2) (Hu et al.
  (arXiv:2406.03136); docs/theory.md §2.3).
* `c2_from_original(inst)`: (4.1) with W_v fixed: adapters on q and k kept, v folded into C3.

The AS24a attention loss (AAttLGC, AS24 (arXiv:2402.04497) Def. 1.2; docs/theory.md §2.4) is
`reductions.problems.attention_gradient` (`AAttLGCInstance`, with `to_instance()`); its loss in torch is
`harness.losses.attention_loss`. The reduced forms set beta = 1 as in the paper's (S4) unless `beta` is
given (the score range R, not Γ, decides the regime: docs/theory.md §5.1).
"""

from __future__ import annotations

import numpy as np

from harness.errors import HarnessError
from harness.instance import Instance
from harness.lora import effective_weights


def _eye(d: int) -> np.ndarray:
    return np.eye(d)


def c1_reduced(C1, C2, C3, Y, W_star, A_Q, B_Q, beta: float = 1.0, meta=None) -> Instance:
    """Loss (3.3): X_q = C1, W_q = W* (already rescaled by r/alpha), X_k = C2, W_k = I, X_v = C3,
    W_v = I, alpha = r (so W_q = W* + B_Q A_Q), adapter on q only."""
    A_Q = np.asarray(A_Q)
    r, d = A_Q.shape
    arrays = dict(X_q=C1, X_k=C2, X_v=C3, Y=Y, W_q=W_star, W_k=_eye(d), W_v=_eye(d), A_q=A_Q, B_q=B_Q)
    return Instance.from_arrays(
        arrays, alpha=float(r), beta=beta, meta={"generator": "c1_reduced", **(meta or {})}
    )


def c1_from_original(inst: Instance) -> Instance:
    """(3.2) substitution on a general instance with a query adapter (docs/theory.md §2.3, simplification
    (S2))."""
    if "q" not in inst.adapted:
        raise HarnessError("c1_from_original needs an instance with a query adapter (A_q, B_q)")
    a, r, alpha = inst.arrays, inst.r, inst.alpha
    if alpha == 0:
        raise HarnessError("c1_from_original needs alpha != 0 (C1 = alpha/r X_q)")
    W = effective_weights(a, alpha, r)
    W_k, W_v = W["k"], W["v"]
    return c1_reduced(
        (alpha / r) * a["X_q"],
        a["X_k"] @ W_k,
        a["X_v"] @ W_v,
        a["Y"],
        (r / alpha) * a["W_q"],
        a["A_q"],
        a["B_q"],
        beta=inst.beta,
        meta={"source_sha256": inst.sha256},
    )


def c2_reduced(
    X_q, X_k, C3, Y, W_Q_star, W_K_star, A_Q, B_Q, A_K, B_K, beta: float = 1.0, meta=None
) -> Instance:
    """Loss (4.2): adapters on q and k (alpha/r = 1), values folded into C3 (W_v = I)."""
    r, d = np.asarray(A_Q).shape
    arrays = dict(
        X_q=X_q,
        X_k=X_k,
        X_v=C3,
        Y=Y,
        W_q=W_Q_star,
        W_k=W_K_star,
        W_v=_eye(d),
        A_q=A_Q,
        B_q=B_Q,
        A_k=A_K,
        B_k=B_K,
    )
    return Instance.from_arrays(
        arrays, alpha=float(r), beta=beta, meta={"generator": "c2_reduced", **(meta or {})}
    )


def c2_from_original(inst: Instance) -> Instance:
    """(4.1) on a general instance with q and k adapters (docs/theory.md §2.3): W_v fixed into
    C3 = X_v W_v, and alpha/r folded into B_m (B'_m = (alpha/r) B_m with alpha'/r = 1), so every
    W_m is unchanged, dL/dA_m is unchanged and dL/dB'_m = (r/alpha) dL/dB_m."""
    if not {"q", "k"} <= set(inst.adapted):
        raise HarnessError("c2_from_original needs adapters on both q and k")
    a, r, alpha = inst.arrays, inst.r, inst.alpha
    W_v = effective_weights(a, alpha, r)["v"]
    s = alpha / r
    return c2_reduced(
        a["X_q"],
        a["X_k"],
        a["X_v"] @ W_v,
        a["Y"],
        a["W_q"],
        a["W_k"],
        a["A_q"],
        s * a["B_q"],
        a["A_k"],
        s * a["B_k"],
        beta=inst.beta,
        meta={"source_sha256": inst.sha256},
    )
