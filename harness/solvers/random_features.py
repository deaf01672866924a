"""`random-features`: positive random features (FAVOR+, Choromanski et al. 2021), O(N L m d).

exp(<x, y>) = E_w[phi_w(x) phi_w(y)] with phi_w(x) = exp(w^T x - |x|^2/2), w ~ N(0, I_d). With m
seeded draws, phi(x) = (phi_{w_1}(x), ..., phi_{w_m}(x))/sqrt(m) and x_q = s_q Q, x_k = s_k K,
s_q s_k = beta (s_q = sign(beta) sqrt|beta|, s_k = sqrt|beta|):

    A^ = phi(x_q) phi(x_k)^T  (never formed),  O^ = diag(A^ 1)^-1 A^ V,  loss = 1/(2N) sum ||O^ - Y||^2

Gradients: torch autograd through this factored forward (O(N L m d)). Optionally `orthogonal`
draws (blocks of d orthogonal directions with chi(d) lengths). For stability each query row is
multiplied by exp(-its max exponent) and all keys by one global exp(-max) (constants that cancel in
the row normalisation, so the estimator is unchanged).

This is a Monte-Carlo estimator: its error falls like m^-1/2 and it does NOT certify 1/poly(L)
accuracy. The certificate says so ("error_bound": None, "meets_poly_criterion": False).
`dense_rf_loss` (beside it) is the O(L^2) reference of the same estimator.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from harness import theory
from harness.errors import HarnessError
from harness.instance import Instance
from harness.losses import effective_weights
from harness.measure.opcount import OpCounter
from harness.solvers.base import Result, Solver


def draw_directions(m: int, d: int, seed: int, orthogonal: bool = False, dtype=torch.float64,
                    device=None) -> torch.Tensor:
    """(m, d) Gaussian directions from a seeded generator (CPU numpy, so every device agrees)."""
    rng = np.random.default_rng([int(seed), m, d])
    if not orthogonal:
        w = rng.normal(size=(m, d))
    else:
        rows = []
        while sum(len(r) for r in rows) < m:
            q, r = np.linalg.qr(rng.normal(size=(d, d)))
            q = q * np.sign(np.diag(r))                            # Haar-distributed rotation
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


def _scales(beta: float) -> tuple[float, float]:
    s = math.sqrt(abs(beta))
    return (math.copysign(s, beta) if beta != 0 else 0.0), s


def rf_loss(t: dict, W: dict, beta: float, w: torch.Tensor) -> torch.Tensor:
    """The random-feature loss (module docstring), factored: O(N L m d)."""
    sq, sk = _scales(beta)
    Q, K, V = t["X_q"] @ W["q"], t["X_k"] @ W["k"], t["X_v"] @ W["v"]
    pq = rf_features(sq * Q, w, per_row=True)
    pk = rf_features(sk * K, w, per_row=False)
    ones = torch.ones(*V.shape[:-1], 1, dtype=V.dtype, device=V.device)
    num = pq @ (pk.transpose(-1, -2) @ torch.cat([V, ones], dim=-1))
    # a row whose estimated normaliser underflowed to 0 gives output 0 (not 0/0 = NaN)
    O = num[..., :-1] / num[..., -1:].clamp_min(torch.finfo(num.dtype).tiny)
    N = O.shape[0]
    return ((O - t["Y"]) ** 2).sum() / (2 * N)


def dense_rf_loss(t: dict, W: dict, beta: float, w: torch.Tensor) -> torch.Tensor:
    """Reference: the same estimator with the L x L matrix A^ formed explicitly."""
    sq, sk = _scales(beta)
    Q, K, V = t["X_q"] @ W["q"], t["X_k"] @ W["k"], t["X_v"] @ W["v"]
    A = rf_features(sq * Q, w, True) @ rf_features(sk * K, w, False).transpose(-1, -2)
    O = (A / A.sum(-1, keepdim=True).clamp_min(torch.finfo(A.dtype).tiny)) @ V
    return ((O - t["Y"]) ** 2).sum() / (2 * O.shape[0])


def rf_gradients(inst: Instance, m: int, seed: int, orthogonal: bool, dtype, device,
                 loss_fn=rf_loss) -> tuple[dict, float]:
    """Adapter gradients of `loss_fn` by autograd (MATH.md §10 chain rule done by torch)."""
    t = inst.as_torch(dtype=dtype, device=device)
    for m_ in inst.adapted:
        for p in ("A", "B"):
            t[f"{p}_{m_}"].requires_grad_(True)
    w = draw_directions(m, inst.d, seed, orthogonal, dtype, device)
    W = effective_weights(t, inst.alpha, inst.r)
    loss = loss_fn(t, W, inst.beta, w)
    grads = {}
    if inst.adapted:
        names = [f"{p}_{m_}" for m_ in inst.adapted for p in ("A", "B")]
        gs = torch.autograd.grad(loss, [t[n] for n in names])
        grads = {f"d{n}": g.detach() for n, g in zip(names, gs)}
    return grads, float(loss.detach())


class RandomFeaturesSolver(Solver):
    name = "random-features"
    exact = False
    cost = "O(N L m d); error ~ m^-1/2 (no 1/poly(L) certificate)"
    description = "positive random features (FAVOR+), autograd through the factored forward"
    options = {"m": 256, "seed": 0, "orthogonal": False}

    def _solve(self, inst: Instance, dtype, device, m=256, seed=0, orthogonal=False) -> Result:
        m = int(m)
        if m < 1:
            raise HarnessError(f"random-features needs m >= 1 features, got {m}")
        grads, loss = rf_gradients(inst, m, int(seed), bool(orthogonal), dtype, device)
        N, Lq, Lk, d = inst.N, inst.Lq, inst.Lk, inst.d
        ops = OpCounter()
        ops.mm(Lq + 2 * Lk, d, d, N)
        ops.mm(Lq + Lk, d, m, N), ops.ew(N * (Lq + Lk) * m, 4)
        ops.mm(m, Lk, d + 1, N), ops.mm(Lq, m, d + 1, N), ops.ew(N * Lq * d, 4)
        fwd = int(ops)
        ops.flops += 2 * fwd                                       # reverse mode ~ 2x the forward
        R = theory.score_range_bound(inst)
        cert = {
            "method": "positive random features (FAVOR+)", "m": m, "seed": int(seed),
            "orthogonal": bool(orthogonal), "R_bound": R, "regime": theory.regime(R, inst.L),
            "log_L": math.log(max(inst.L, 2)), "error_bound": None, "meets_poly_criterion": False,
            "expected_error_rate": "m^-1/2 (Monte-Carlo)",
            "note": "no deterministic error bound; cannot certify eps = 1/poly(L)",
            "ops": int(ops),
        }
        out = {k: v.cpu().double().numpy() for k, v in grads.items()}
        return Result(out, loss, self.name, ops=int(ops), certificate=cert)
