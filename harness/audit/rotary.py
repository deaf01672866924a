"""Llama-style attention in the audit: rotary position embeddings and grouped-query attention.

A rotary head rotates its query and key projections by position-dependent angles before the scores
(`apply_rotary_pos_emb(q, k, cos, sin)` in the module's own modeling file, with cos, sin passed to the
attention module as ``position_embeddings``), so no fixed (D+1) x d_head map gives Q and K. The capture
records the layer's input and its ``position_embeddings`` and recomputes each head's rotated Q, K (and
its V) with the module's own projections and rotation: the head's scores are beta Q K^T of exactly these,
so the ``projected`` construction (X_q = Q, X_k = K, X_v = V, W* = I) stays exact. With grouped-query
attention (n_kv < n_heads key/value heads) head h uses key/value head h // (n_heads / n_kv).
"""

from __future__ import annotations

import sys

import numpy as np

from harness.errors import HarnessError


def rotary_fn(module):
    """The `apply_rotary_pos_emb(q, k, cos, sin)` of the module's own modeling file, or None."""
    return getattr(sys.modules.get(type(module).__module__), "apply_rotary_pos_emb", None)


def uses_rope(config) -> bool:
    """Whether a transformers config declares rotary position embeddings."""
    if config is None:
        return False
    names = ("rope_theta", "rotary_dim", "rotary_pct")
    return (
        any(getattr(config, n, None) is not None for n in names)
        or bool(getattr(config, "rope_scaling", None))
        or bool(getattr(config, "rope_parameters", None))
        or "rope" in str(getattr(config, "position_embedding_type", "") or "")
    )


def kv_heads(module, config, n_heads: int) -> int:
    """Number of key/value heads of a q_proj/k_proj/v_proj module (n_heads without grouping)."""
    nkv = getattr(module, "num_key_value_heads", None) or getattr(config, "num_key_value_heads", None)
    groups = getattr(module, "num_key_value_groups", None)
    if nkv is None and groups is not None:
        nkv = n_heads // int(groups)
    nkv = int(nkv) if nkv is not None else n_heads
    if nkv < 1 or n_heads % nkv:
        raise HarnessError(f"{n_heads} query heads do not split into {nkv} key/value groups")
    return nkv


def rotated_heads(spec, x, position_embeddings) -> np.ndarray:
    """(3, n_heads, L, d_head) float64: each head's Q and K (rotated with the captured cos, sin by the
    module's own apply_rotary_pos_emb when the layer is rotary) and V; key/value head h // groups."""
    import torch

    m, H, dh = spec.module, spec.n_heads, spec.d_head
    nkv = spec.n_kv_heads or H
    L = x.shape[-2]
    with torch.no_grad():
        q = m.q_proj(x).view(1, L, H, dh).transpose(1, 2)
        k = m.k_proj(x).view(1, L, nkv, dh).transpose(1, 2)
        v = m.v_proj(x).view(1, L, nkv, dh).transpose(1, 2)
        if spec.rotary:
            if position_embeddings is None:
                raise HarnessError(
                    f"rotary attention layer {spec.name!r} was called without position_embeddings"
                )
            cos, sin = position_embeddings
            q, k = rotary_fn(m)(q, k, cos, sin)
        k, v = k.repeat_interleave(H // nkv, dim=1), v.repeat_interleave(H // nkv, dim=1)
    return torch.stack([q[0], k[0], v[0]]).double().cpu().numpy()
