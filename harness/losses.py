"""The loss functions, in torch, one per problem kind. The autograd reference differentiates these.

* `lora_loss`: the general LoRA attention loss (Hu et al. (arXiv:2406.03136) loss (1.2), Def. 2.5,
  Def. 4.1; docs/theory.md §2.1):
  1/(2N) sum_i || softmax_rows(beta X_q,i W_q W_k^T X_k,i^T) X_v,i W_v - Y_i ||_F^2,
  W_m = W*_m + (alpha/r) B_m A_m for adapted m. With `causal`, row j's softmax runs over the keys
  m <= j only (top-left alignment, `harness.instance.attention_mask`): masked scores are -inf.
* `attention_loss`: the AS24 loss (AS24 (arXiv:2402.04497) Def. 1.2; docs/theory.md §2.4), with its
  1/d temperature:
  0.5 || D(X)^-1 exp(A1 X A2^T / d) A3 Y - E ||_F^2.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from harness.lora import effective_weights

__all__ = ["attention_loss", "attention_output", "effective_weights", "lora_loss", "masked_scores"]


def masked_scores(S: torch.Tensor, causal: bool) -> torch.Tensor:
    """S with the causally masked entries (key m > query j) set to -inf; S itself when not causal."""
    if not causal:
        return S
    keep = torch.ones(S.shape[-2], S.shape[-1], dtype=torch.bool, device=S.device).tril()
    return S.masked_fill(~keep, -torch.inf)


def attention_output(
    t: Mapping[str, torch.Tensor], alpha: float, beta: float, r: int, causal: bool = False
) -> torch.Tensor:
    """softmax_rows(beta Q K^T) V with Q = X_q W_q, K = X_k W_k, V = X_v W_v; shape (N, Lq, d).
    `causal`: row j attends keys m <= j only."""
    W = effective_weights(t, alpha, r)
    Q = t["X_q"] @ W["q"]
    K = t["X_k"] @ W["k"]
    V = t["X_v"] @ W["v"]
    S = masked_scores(beta * (Q @ K.transpose(-1, -2)), causal)
    return torch.softmax(S, dim=-1) @ V  # torch.softmax subtracts the row max; exp(-inf) = 0


def lora_loss(
    t: Mapping[str, torch.Tensor], alpha: float, beta: float, r: int, causal: bool = False
) -> torch.Tensor:
    """Hu et al. (arXiv:2406.03136) loss (1.2) (docs/theory.md §2.1) for batched tensors (N, L, d); returns
    a 0-d tensor. `causal`: the masked softmax."""
    out = attention_output(t, alpha, beta, r, causal)
    N = out.shape[0]
    return ((out - t["Y"]) ** 2).sum() / (2 * N)


def attention_loss(A1, A2, A3, E, X, Y) -> torch.Tensor:
    """AS24 (arXiv:2402.04497) Def. 1.2 (docs/theory.md §2.4): 0.5 ||softmax(A1 X A2^T / d) A3 Y - E||_F^2,
    d = A1.shape[1]."""
    d = A1.shape[-1]
    S = (A1 @ X @ A2.transpose(-1, -2)) / d
    return 0.5 * ((torch.softmax(S, dim=-1) @ (A3 @ Y) - E) ** 2).sum()
