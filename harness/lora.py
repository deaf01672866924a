"""The LoRA parametrisation and its chain rule, for numpy arrays and torch tensors alike (Hu et al.
(arXiv:2406.03136) Def. 1.1; docs/theory.md §1, §3.2):

    W_m = W*_m + (alpha/r) B_m A_m                    (`effective_weights`)
    dL/dA_m = (alpha/r) B_m^T G_Wm,  dL/dB_m = (alpha/r) G_Wm A_m^T   (`adapter_gradients`)

where G_Wm = dL/dW_m. No torch import here: families and theory use these on numpy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.instance import ADAPTABLE


def effective_weights(arrays: Mapping[str, Any], alpha: float, r: int) -> dict[str, Any]:
    """W_m = W*_m + (alpha/r) B_m A_m for m in q, k, v (W*_m alone where m is not adapted)."""
    out = {}
    for m in ADAPTABLE:
        W = arrays[f"W_{m}"]
        if f"A_{m}" in arrays:
            W = W + (alpha / r * arrays[f"B_{m}"]) @ arrays[f"A_{m}"]
        out[m] = W
    return out


def adapter_gradients(
    arrays: Mapping[str, Any], G: Mapping[str, Any], alpha: float, r: int
) -> dict[str, Any]:
    """The LoRA chain rule: {dA_m, dB_m} from G[m] = dL/dW_m for each m in G (in G's order)."""
    s = alpha / r if r else 0.0
    out = {}
    for m, Gm in G.items():
        out[f"dA_{m}"] = s * (arrays[f"B_{m}"].T @ Gm)
        out[f"dB_{m}"] = s * (Gm @ arrays[f"A_{m}"].T)
    return out
