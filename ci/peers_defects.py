"""The smallest instances of the defects the referee found in the gallery libraries, measured
(forward max-norm error against the float64 reference, seeded instances). Used by `python -m ci peers`."""

from __future__ import annotations

import math

import numpy as np


def _err(fn, inst, dtype="float64"):
    from harness import from_attention
    from harness.solvers import get_solver

    out = from_attention(fn).forward(inst, dtype=dtype)
    return float(np.abs(out - get_solver("autograd").forward(inst)).max())


def _haar_projection(m, d, gen):
    """Rows of Haar-orthogonal blocks (QR with the sign correction q * sign(diag r)), gaussian norms."""
    import torch

    blocks = []
    for _ in range(math.ceil(m / d)):
        q, r = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=gen))
        blocks.append((q * torch.sign(torch.diagonal(r))).t())
    rows = torch.cat(blocks)[:m]
    return torch.diag(torch.randn(m, d, dtype=torch.float64, generator=gen).norm(dim=1)) @ rows


def performer_bias(ms=(64, 1024, 8192), ds=(1, 4), seeds=3, L=64):
    import torch
    from performer_pytorch import FastAttention

    from harness import families
    from harness.losses import effective_weights
    from harness.solvers import get_solver

    table = {}
    for d in ds:
        inst = families.bounded(L=L, d=d, r=1, gamma=1.0, seed=3)
        ref = get_solver("autograd").forward(inst)
        t = inst.as_torch()
        W = effective_weights(t, inst.alpha, inst.r)
        Q, K, V = t["X_q"] @ W["q"], t["X_k"] @ W["k"], t["X_v"] @ W["v"]
        s = math.sqrt(inst.beta * math.sqrt(d))
        for fixed in (False, True):
            errs = []
            for m in ms:
                e = []
                for seed in range(seeds):
                    torch.manual_seed(seed)
                    fa = FastAttention(dim_heads=d, nb_features=m).double()
                    if fixed:
                        fa.projection_matrix.copy_(
                            _haar_projection(m, d, torch.Generator().manual_seed(seed))
                        )
                    with torch.no_grad():
                        out = fa(Q[:, None] * s, K[:, None] * s, V[:, None])[:, 0].numpy()
                    e.append(float(np.abs(out - ref).max()))
                errs.append(float(np.mean(e)))
            table[f"d={d} {'sign-corrected QR' if fixed else 'library'}"] = dict(zip(map(str, ms), errs))
    return table


def defects(available: list[str]) -> list[dict]:
    from harness import families

    out = []
    if "performer" in available:
        tab = performer_bias()
        figs = "; ".join(
            f"{k}: " + ", ".join(f"m={m} {v:.1e}" for m, v in row.items()) for k, row in tab.items()
        )
        out.append(
            {
                "library": "performer-pytorch",
                "title": "FAVOR+ is biased; at d = 1 every feature is one-sided.",
                "figures": f"Forward max error, L = 64, bounded gamma = 1, mean of 3 seeds: {figs} (the "
                "library's error does not fall with m; corrected projections fall ~ m^-1/2).",
                "cause": "`orthogonal_matrix_chunk` uses Q of `torch.linalg.qr(randn)` without the sign "
                "correction, so rows are not isotropic (LAPACK fixes the signs); a 1x1 Q is +1, so "
                "at d = 1 omega = |g| >= 0 always. The eps = 1e-4 in softmax_kernel is not the cause "
                "(eps = 0 gives the same errors).",
                "table": tab,
            }
        )
    if "nystrom" in available:
        from examples.peers.nystrom import nystrom, nystrom8

        pad = {L: _err(nystrom, families.bounded(L=L, d=2, seed=1)) for L in (1, 2, 255, 256, 257)}
        inst = families.bounded(L=16, d=2, seed=1)
        from harness import from_attention
        from harness.checks.forward import query_permutation
        from harness.checks.properties import permuted

        s = from_attention(nystrom8)
        a, b = s.forward(inst), s.forward(permuted(inst))
        change = float(np.abs(b - a[:, query_permutation(inst)]).max())
        out.append(
            {
                "library": "nystrom-attention",
                "title": "attends to its own padding; depends on token order.",
                "figures": "Forward max error (d = 2, 256 landmarks): "
                + ", ".join(f"L={L} {e:.2e}" for L, e in pad.items())
                + f". With 8 landmarks, permuting 16 tokens changes the output by {change:.2e}.",
                "cause": "`forward` front-pads the sequence with zero tokens to a multiple of num_landmarks "
                "without a mask, so for L < 256 the zero tokens are keys; landmarks are means of "
                "consecutive segments, so the result depends on token order once landmarks < L.",
            }
        )
    if "local" in available:
        from examples.peers.local import local

        errs = {L: _err(local, families.bounded(L=L, d=2, seed=1)) for L in (1, 2, 7, 8, 9, 16)}
        out.append(
            {
                "library": "local-attention",
                "title": "autopad=True attends to the padding.",
                "figures": "Forward max error (window 8): "
                + ", ".join(f"L={L} {e:.2e}" for L, e in errs.items()),
                "cause": "`pad_to_multiple` pads q, k, v with zeros, but only look-around padding is masked "
                "(`bq_k == pad_value`); autopadded keys are masked only when the caller passes `mask`.",
            }
        )
    if "mea" in available:
        from examples.peers.mea import chunked, flash

        e1 = _err(chunked, families.bounded(L=1, d=1, seed=0))
        try:
            import torch

            x = torch.randn(1, 2, 1, dtype=torch.float64)
            flash(x, x, x, scale=1.0)  # the library itself, not through the declared capability
            f64 = "runs in float64"
        except Exception as exc:
            f64 = f"float64 raises: {exc}"
        out.append(
            {
                "library": "memory-efficient-attention-pytorch",
                "title": "memory_efficient_attention is exact only to its denominator's eps; the flash "
                "variant cannot run float64.",
                "figures": f"L = 1 (one token, softmax weight 1): forward error {e1:.2e}; "
                f"FlashAttentionFunction: {f64}.",
                "cause": "`all_values / (all_weights + eps)` with eps = 1e-8 (relative error up to eps on "
                "every row); FlashAttentionFunction allocates row sums and maxima in the default "
                "dtype (`torch.zeros`, `torch.full(..., -finfo(q.dtype).max)`).",
            }
        )
    if "taylor" in available:
        from examples.peers.taylor import taylor

        errs = {
            g: _err(taylor, families.bounded(L=64, d=4, gamma=g, seed=1)) for g in (0.1, 0.5, 1.0, 1.5, 3.0)
        }
        out.append(
            {
                "library": "taylor-series-linear-attention",
                "title": "no defect: error as the Taylor remainder says.",
                "figures": "Forward max error, L = 64, d = 4: "
                + ", ".join(f"gamma={g} {e:.1e}" for g, e in errs.items()),
                "cause": "2nd-order remainder ~ R^3/6 of exp; the referee reports it as 'not claimed'.",
            }
        )
    return out
