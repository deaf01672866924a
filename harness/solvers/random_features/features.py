"""Positive random features (FAVOR+, Choromanski et al. 2021) and the factored random-feature loss.

exp(<x, y>) = E_w[phi_w(x) phi_w(y)] with phi_w(x) = exp(w^T x - |x|^2/2), w ~ N(0, I_d). With m
seeded draws, phi(x) = (phi_{w_1}(x), ..., phi_{w_m}(x))/sqrt(m) and x_q = s_q Q, x_k = s_k K,
s_q s_k = beta (s_q = sign(beta) sqrt|beta|, s_k = sqrt|beta|):

    A^ = phi(x_q) phi(x_k)^T  (never formed),  O^ = diag(A^ 1)^-1 A^ V,  loss = 1/(2N) sum ||O^ - Y||^2

Optionally `orthogonal` draws (blocks of d orthogonal directions with chi(d) lengths). For stability
each query row is multiplied by exp(-its max exponent) and all keys by one global exp(-max)
(constants that cancel in the row normalisation, so the estimator is unchanged).

Causal instances (query j attends keys m <= j): the sums over keys become prefix sums, computed
chunkwise as causal linear attention (`harness.solvers.causal_products.causal_product`: per-chunk
states phi(k)^T [V, 1], an exclusive cumulative sum across chunks, the dense masked phi(q) phi(k)^T
inside a chunk), still O(N L m d) and differentiable by autograd.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def draw_directions(
    m: int, d: int, seed: int, orthogonal: bool = False, dtype=torch.float64, device=None
) -> torch.Tensor:
    """(m, d) Gaussian directions from a seeded generator (CPU numpy, so every device agrees)."""
    rng = np.random.default_rng([int(seed), m, d])
    if not orthogonal:
        w = rng.normal(size=(m, d))
    else:
        rows = []
        while sum(len(r) for r in rows) < m:
            q, r = np.linalg.qr(rng.normal(size=(d, d)))
            q = q * np.sign(np.diag(r))  # Haar-distributed rotation
            rows.append(q.T * np.sqrt(rng.chisquare(d, size=(d, 1))))
        w = np.concatenate(rows)[:m]
    return torch.as_tensor(w, dtype=dtype, device=device)


def rf_features(x: torch.Tensor, w: torch.Tensor, per_row: bool) -> torch.Tensor:
    """phi(x) = exp(w^T x - |x|^2/2 - stab)/sqrt(m); stab per row (queries) or global (keys), detached."""
    z = x @ w.T - 0.5 * (x * x).sum(-1, keepdim=True)
    # keys: one constant per data point (amax over rows and features), so no batch element's keys
    # underflow because of another's
    stab = z.detach().amax(dim=-1, keepdim=True) if per_row else z.detach().amax(dim=(-2, -1), keepdim=True)
    return torch.exp(z - stab) / math.sqrt(w.shape[0])


def split_beta_signed(beta: float) -> tuple[float, float]:
    s = math.sqrt(abs(beta))
    return (math.copysign(s, beta) if beta != 0 else 0.0), s


def rf_loss(t: dict, W: dict, beta: float, w: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """The random-feature loss (module docstring), factored: O(N L m d); prefix sums when causal."""
    from harness.solvers.causal_products import causal_product

    sq, sk = split_beta_signed(beta)
    Q, K, V = t["X_q"] @ W["q"], t["X_k"] @ W["k"], t["X_v"] @ W["v"]
    pq = rf_features(sq * Q, w, per_row=True)
    pk = rf_features(sk * K, w, per_row=False)
    ones = torch.ones(*V.shape[:-1], 1, dtype=V.dtype, device=V.device)
    Z = torch.cat([V, ones], dim=-1)
    num = causal_product(pq, pk, Z) if causal else pq @ (pk.transpose(-1, -2) @ Z)
    # a row whose estimated normaliser underflowed to 0 gives output 0 (not 0/0 = NaN)
    O = num[..., :-1] / num[..., -1:].clamp_min(torch.finfo(num.dtype).tiny)
    N = O.shape[0]
    return ((O - t["Y"]) ** 2).sum() / (2 * N)
