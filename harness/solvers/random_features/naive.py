"""The O(L^2) twin of the random-feature loss: the same estimator with the L x L matrix A^ formed."""

from __future__ import annotations

import torch

from harness.solvers.random_features.features import rf_features, split_beta_signed


def dense_rf_loss(t: dict, W: dict, beta: float, w: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """Reference: the same estimator with the L x L matrix A^ formed explicitly (masked when causal)."""
    sq, sk = split_beta_signed(beta)
    Q, K, V = t["X_q"] @ W["q"], t["X_k"] @ W["k"], t["X_v"] @ W["v"]
    A = rf_features(sq * Q, w, True) @ rf_features(sk * K, w, False).transpose(-1, -2)
    if causal:
        A = A.tril()
    O = (A / A.sum(-1, keepdim=True).clamp_min(torch.finfo(A.dtype).tiny)) @ V
    return ((O - t["Y"]) ** 2).sum() / (2 * O.shape[0])
