"""The causal rule on `streaming`'s strips and tiles (docs/theory.md §4.7): which keys a block of
query rows sees, how many score entries the schedule computes, and the in-place mask of the one
corner of a strip or tile that crosses the diagonal."""

from __future__ import annotations

import torch

from harness.solvers._common import blocks


def key_end(qe: int, b: int, causal: bool) -> int:
    """Keys a causal block of queries ending at qe (exclusive) sees: [0, min(b, qe)); all b otherwise."""
    return min(b, qe) if causal else b


def visible_entries(a: int, b: int, bq: int, causal: bool) -> int:
    """Score entries the schedule computes: a b, or for causal blocks of bq query rows the sum over
    blocks of (rows in the block) x min(b, block end)."""
    if not causal:
        return a * b
    return sum((qe - qs) * min(b, qe) for qs, qe in blocks(a, bq))


def mask_corner(S: torch.Tensor, qs: int, ks: int) -> torch.Tensor:
    """S[j, m] = -inf where key ks + m > query qs + j (the causal rule), in place; only the keys >= qs
    can be masked, so only that corner is touched."""
    c0 = max(qs - ks, 0)
    if c0 >= S.shape[1]:
        return S
    rows = torch.arange(qs, qs + S.shape[0], device=S.device)[:, None]
    cols = torch.arange(ks + c0, ks + S.shape[1], device=S.device)[None, :]
    S[:, c0:].masked_fill_(cols > rows, -torch.inf)
    return S
