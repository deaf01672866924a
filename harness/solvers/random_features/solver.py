"""`random-features`: positive random features (FAVOR+, Choromanski et al. 2021), O(N L m d).

Gradients: torch autograd through the factored forward of `features.rf_loss` (O(N L m d)). This is a
Monte-Carlo estimator: its error falls like m^-1/2 and it does NOT certify 1/poly(L) accuracy. The
certificate says so ("error_bound": None, "meets_poly_criterion": False). `naive.dense_rf_loss` is the
O(L^2) twin of the same estimator.
"""

from __future__ import annotations

import math

import torch

from harness import theory
from harness.instance import Instance
from harness.lora import effective_weights
from harness.measure.opcount import OpCounter
from harness.solvers._common import to_numpy
from harness.solvers.base import SLACK_BYTES, Result, Solver, input_bytes
from harness.solvers.causal_products import CHUNK as CAUSAL_CHUNK
from harness.solvers.options import Option
from harness.solvers.random_features.features import draw_directions, rf_loss


def rf_gradients(
    inst: Instance, m: int, seed: int, orthogonal: bool, dtype, device, loss_fn=rf_loss
) -> tuple[dict, float]:
    """Adapter gradients of `loss_fn` by autograd (docs/theory.md §3.2 chain rule done by torch)."""
    t = inst.as_torch(dtype=dtype, device=device)
    for m_ in inst.adapted:
        for p in ("A", "B"):
            t[f"{p}_{m_}"].requires_grad_(True)
    w = draw_directions(m, inst.d, seed, orthogonal, dtype, device)
    W = effective_weights(t, inst.alpha, inst.r)
    loss = loss_fn(t, W, inst.beta, w, inst.causal)
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
    options = {
        "m": Option(int, 256, min=1, help="number of random features"),
        "seed": Option(int, 0, min=0, help="seed of the feature directions"),
        "orthogonal": Option(bool, False, help="orthogonal blocks of directions"),
    }

    def memory_estimate(self, inst: Instance, itemsize: int, m=256, **options) -> int:
        """4 N (Lq + Lk)(m + d): features, exponents and their gradients (measured 2.7 N (Lq+Lk) m
        at m = 512) + the inputs."""
        feats = 4 * inst.N * (inst.Lq + inst.Lk) * (m + inst.d)
        return feats * itemsize + input_bytes(inst, itemsize) + SLACK_BYTES

    def _solve(self, inst: Instance, dtype, device, m=256, seed=0, orthogonal=False) -> Result:
        grads, loss = rf_gradients(inst, m, int(seed), bool(orthogonal), dtype, device)
        N, Lq, Lk, d = inst.N, inst.Lq, inst.Lk, inst.d
        ops = OpCounter()
        ops.mm(Lq + 2 * Lk, d, d, N)
        ops.mm(Lq + Lk, d, m, N), ops.ew(N * (Lq + Lk) * m, 4)
        if inst.causal:  # chunk states, their cumulative sum, inter products, masked B x B tiles
            B = min(CAUSAL_CHUNK, Lq)
            P = -(-Lq // B) * B
            ops.mm(m, P, d + 1, N), ops.ew(N * (P // B) * m * (d + 1), 2), ops.mm(P, m, d + 1, N)
            ops.mm(P, m, B, N), ops.ew(N * P * B, 1), ops.mm(P, B, d + 1, N)
        else:
            ops.mm(m, Lk, d + 1, N), ops.mm(Lq, m, d + 1, N)
        ops.ew(N * Lq * d, 4)
        fwd = int(ops)
        ops.flops += 2 * fwd  # reverse mode ~ 2x the forward
        R = theory.score_range_bound(inst)
        cert = {
            "method": "positive random features (FAVOR+)",
            "m": m,
            "seed": int(seed),
            "orthogonal": bool(orthogonal),
            "R_bound": R,
            "regime": theory.regime(R, inst.L),
            "log_L": math.log(max(inst.L, 2)),
            "error_bound": None,
            "meets_poly_criterion": False,
            "expected_error_rate": "m^-1/2 (Monte-Carlo)",
            "note": "no deterministic error bound; cannot certify eps = 1/poly(L)",
            "ops": int(ops),
        }
        out = to_numpy(grads)
        return Result(out, loss, self.name, ops=int(ops), certificate=cert)
