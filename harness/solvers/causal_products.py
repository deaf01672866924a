"""Masked low-rank products, chunkwise: the causal linear-attention primitive (flash-linear-attention's
chunk form), and its naive twin.

For U (N, Lq, k), V (N, Lk, k) and the causal mask M_jm = [m <= j] (harness.instance.attention_mask):

    causal_product(U, V, Y)    = ((U V^T) . M) Y       Y (N, Lk, c) -> (N, Lq, c)   prefix sums over keys
    causal_product_t(U, V, Y)  = ((U V^T) . M)^T Y     Y (N, Lq, c) -> (N, Lk, c)   suffix sums over queries

Positions are shared by queries and keys and cut into chunks of B: per chunk the state V_C^T Y_C
(k x c), an exclusive cumulative sum of the states across chunks (inter-chunk: U_C times the sum of
the earlier states), and the dense masked B x B tile tril(U_C V_C^T) inside the chunk. O(N L (k c +
B (k + c))) time, no L x L matrix, differentiable by autograd. `dense_causal_product` forms the masked
matrix (O(L^2), obviously correct).
"""

from __future__ import annotations

import torch

CHUNK = 64


def _aligned(x: torch.Tensor, rows: int, P: int) -> torch.Tensor:
    """x cut to `rows` rows, zero-padded to P rows."""
    x = x[:, :rows]
    return torch.cat([x, x.new_zeros(x.shape[0], P - x.shape[1], x.shape[2])], 1) if x.shape[1] < P else x


def _chunks(x: torch.Tensor, B: int) -> torch.Tensor:
    return x.reshape(x.shape[0], x.shape[1] // B, B, x.shape[2])


def _layout(Lq: int, chunk: int) -> tuple[int, int]:
    B = max(1, min(chunk, Lq))
    return B, -(-Lq // B) * B


def causal_product(U: torch.Tensor, V: torch.Tensor, Y: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """((U V^T) . M) Y chunkwise (module docstring); keys m >= Lq are never attended and are dropped."""
    N, Lq, _ = U.shape
    B, P = _layout(Lq, chunk)
    Lkk = min(V.shape[1], Lq)
    u, v, y = (_chunks(_aligned(x, n, P), B) for x, n in ((U, Lq), (V, Lkk), (Y, Lkk)))
    dH = v.transpose(-1, -2) @ y  # (N, n, k, c) per-chunk states
    H = torch.cumsum(dH, dim=1) - dH  # sum of the earlier chunks' states
    tril = torch.ones(B, B, dtype=torch.bool, device=U.device).tril()
    out = u @ H + (u @ v.transpose(-1, -2)).masked_fill(~tril, 0.0) @ y
    return out.reshape(N, P, -1)[:, :Lq]


def causal_product_t(U: torch.Tensor, V: torch.Tensor, Y: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """((U V^T) . M)^T Y chunkwise: key m collects sum_{j >= m} <U_j, V_m> Y_j; (N, Lk, c), zero rows for
    keys m >= Lq."""
    N, Lq, _ = U.shape
    Lk = V.shape[1]
    B, P = _layout(Lq, chunk)
    Lkk = min(Lk, Lq)
    u, v, y = (_chunks(_aligned(x, n, P), B) for x, n in ((U, Lq), (V, Lkk), (Y, Lq)))
    dS = u.transpose(-1, -2) @ y  # (N, n, k, c) per-chunk query states
    S = torch.flip(torch.cumsum(torch.flip(dS, [1]), dim=1), [1]) - dS  # sum of the later chunks' states
    tril = torch.ones(B, B, dtype=torch.bool, device=U.device).tril()
    out = v @ S + (u @ v.transpose(-1, -2)).masked_fill(~tril, 0.0).transpose(-1, -2) @ y
    out = out.reshape(N, P, -1)[:, :Lkk]
    if Lk > Lkk:
        out = torch.cat([out, out.new_zeros(N, Lk - Lkk, out.shape[2])], 1)
    return out


def dense_causal_product(
    U: torch.Tensor, V: torch.Tensor, Y: torch.Tensor, transpose: bool = False
) -> torch.Tensor:
    """Reference: the masked (Lq x Lk) matrix tril(U V^T) formed explicitly, times Y (or its transpose)."""
    A = (U @ V.transpose(-1, -2)).tril()
    return (A.transpose(-1, -2) if transpose else A) @ Y
