"""Capture: find the attention modules of a loaded model (BERT-, GPT-2-, OPT- and Llama-style), and run
one sequence through it with forward hooks that record every layer's input X, its per-head query/key/value
maps (bias as a last row) and its merged head output; for rotary or grouped-query layers the rotated
per-head Q, K, V themselves (`harness.audit.rotary`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.audit.rotary import kv_heads, rotary_fn, rotated_heads, uses_rope
from harness.errors import HarnessError

CONSTRUCTIONS = ("projected", "padded")

_CAUSAL_TYPES = {
    "gpt2",
    "opt",
    "gpt_neo",
    "gptj",
    "bloom",
    "codegen",
    "gpt_bigcode",
    "biogpt",
    "xglm",
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "phi3",
    "olmo",
}


@dataclass
class AttentionSpec:
    """How to read one attention module: kind, head count/size, beta, causal, where its output is."""

    name: str
    module: Any
    kind: str  # "bert" | "gpt2" | "proj"
    n_heads: int
    d_head: int
    beta: float
    causal: bool
    out_module: Any = None  # module whose *input* is the merged head output (gpt2: c_proj, proj: out_proj)
    rotary: bool = False  # Llama-style: rotary embeddings arrive as the `position_embeddings` argument
    n_kv_heads: int | None = None  # grouped-query attention: key/value heads (None: as many as n_heads)


@dataclass
class LayerCapture:
    """One attention layer on one sequence: input X (L, D), per-head maps (D+1, d_head) with the bias as
    the last row, and the layer's merged head output (L, n_heads * d_head), all float64."""

    index: int
    name: str
    kind: str
    X: np.ndarray
    Wq: np.ndarray  # (n_heads, D+1, d_head)
    Wk: np.ndarray
    Wv: np.ndarray
    out: np.ndarray  # (L, n_heads * d_head) as the model computed it (float32 -> float64)
    beta: float
    causal: bool
    n_heads: int
    d_head: int
    heads_qkv: np.ndarray | None = None  # (3, n_heads, L, d_head) rotated Q, K, V (rotary / GQA layers)

    @property
    def L(self) -> int:
        return self.X.shape[0]

    @property
    def rotary(self) -> bool:
        return self.heads_qkv is not None

    def head_output(self, h: int) -> np.ndarray:
        return self.out[:, h * self.d_head : (h + 1) * self.d_head]

    def qkv(self, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Q, K, V of head h: X' W'_m with X' = [X, 1] (bias as a constant-1 feature); for rotary or
        grouped-query layers the captured per-head projections."""
        if self.heads_qkv is not None:
            return self.heads_qkv[0, h], self.heads_qkv[1, h], self.heads_qkv[2, h]
        X1 = np.concatenate([self.X, np.ones((self.L, 1))], axis=1)
        return X1 @ self.Wq[h], X1 @ self.Wk[h], X1 @ self.Wv[h]


def _config_value(config, *names, default=None):
    for n in names:
        v = getattr(config, n, None)
        if v is not None:
            return v
    return default


def find_attention(model) -> list[AttentionSpec]:
    """Every recognisable self-attention module, in model order. HarnessError when there is none."""
    import torch.nn as nn

    config = getattr(model, "config", None)
    model_type = str(getattr(config, "model_type", "") or "")
    rope = uses_rope(config)
    pet = str(getattr(config, "position_embedding_type", "absolute") or "absolute")
    default_causal = bool(getattr(config, "is_decoder", False)) or model_type in _CAUSAL_TYPES
    specs = []
    for name, m in model.named_modules():
        causal = getattr(m, "is_causal", None)
        causal = default_causal if causal is None else bool(causal)
        if all(isinstance(getattr(m, a, None), nn.Linear) for a in ("query", "key", "value")) and hasattr(
            m, "num_attention_heads"
        ):
            if rope:
                raise HarnessError(
                    f"architecture {model_type or type(model).__name__!r} uses rotary position embeddings "
                    "in BERT-style attention, which the audit does not read"
                )
            if pet != "absolute":
                raise HarnessError(
                    f"position_embedding_type {pet!r} adds terms to the attention scores; "
                    "only 'absolute' is supported"
                )
            if getattr(m, "query", None) is not None and m.key.in_features != m.query.in_features:
                continue
            dh = int(getattr(m, "attention_head_size", m.query.out_features // m.num_attention_heads))
            beta = float(getattr(m, "scaling", dh**-0.5))
            specs.append(AttentionSpec(name, m, "bert", int(m.num_attention_heads), dh, beta, causal))
        elif (
            hasattr(m, "c_attn")
            and hasattr(m, "c_proj")
            and not hasattr(m, "q_attn")
            and hasattr(m, "num_heads")
        ):
            if rope:
                raise HarnessError(
                    f"architecture {model_type or type(model).__name__!r}: rotary embeddings with "
                    "GPT-2-style attention are not supported by the audit"
                )
            dh = int(getattr(m, "head_dim", m.c_attn.weight.shape[0] // m.num_heads))
            beta = getattr(m, "scaling", None)
            if beta is None:
                beta = dh**-0.5 if getattr(m, "scale_attn_weights", True) else 1.0
                if getattr(m, "scale_attn_by_inverse_layer_idx", False):
                    beta /= float(getattr(m, "layer_idx", 0) + 1)
            specs.append(
                AttentionSpec(name, m, "gpt2", int(m.num_heads), dh, float(beta), causal, out_module=m.c_proj)
            )
        elif all(isinstance(getattr(m, a, None), nn.Linear) for a in ("q_proj", "k_proj", "v_proj")):
            out = getattr(m, "out_proj", None) or getattr(m, "o_proj", None)
            nh = getattr(m, "num_heads", None) or _config_value(config, "num_attention_heads")
            if out is None or nh is None:
                continue
            nkv = kv_heads(m, config, int(nh))
            if hasattr(m, "rotary_emb"):
                raise HarnessError(
                    "attention with its own rotary_emb module (an older transformers layout) is not "
                    "supported by the audit"
                )
            if (rope or nkv != int(nh)) and rotary_fn(m) is None:
                raise HarnessError(
                    f"attention module {type(m).__name__} uses rotary embeddings or shared key/value "
                    "heads but its modeling file has no apply_rotary_pos_emb"
                )
            dh = int(getattr(m, "head_dim", m.q_proj.out_features // int(nh)))
            beta = float(getattr(m, "scaling", dh**-0.5))
            is_cross = bool(getattr(m, "is_cross_attention", False)) or "encoder_attn" in name
            if is_cross:
                continue
            specs.append(
                AttentionSpec(
                    name, m, "proj", int(nh), dh, beta, causal, out_module=out, rotary=rope, n_kv_heads=nkv
                )
            )
    if not specs:
        raise HarnessError(
            f"no recognisable attention modules in {model_type or type(model).__name__!r}; "
            "the audit supports BERT-, GPT-2-, OPT- and Llama-style attention"
        )
    return specs


def _head_maps(spec: AttentionSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-head (n_heads, D+1, d_head) maps in the x -> x W + b convention, bias as the last row."""
    m = spec.module

    def lin(layer):
        W = layer.weight.detach().double().cpu().numpy().T  # (D, out)
        b = layer.bias.detach().double().cpu().numpy() if layer.bias is not None else np.zeros(W.shape[1])
        return np.concatenate([W, b[None]], axis=0)

    if spec.kind == "bert":
        maps = [lin(m.query), lin(m.key), lin(m.value)]
    elif spec.kind == "proj":
        maps = [lin(m.q_proj), lin(m.k_proj), lin(m.v_proj)]
    else:  # GPT-2 Conv1D: y = x @ weight + bias, weight (D, 3D) = [W_q | W_k | W_v]
        W = m.c_attn.weight.detach().double().cpu().numpy()
        b = m.c_attn.bias.detach().double().cpu().numpy()
        full = np.concatenate([W, b[None]], axis=0)
        D = full.shape[1] // 3
        maps = [full[:, :D], full[:, D : 2 * D], full[:, 2 * D :]]
    H, dh = spec.n_heads, spec.d_head
    groups = H // (spec.n_kv_heads or H)  # key/value head of query head h: h // groups

    def head(M, h):
        return M[:, h * dh : (h + 1) * dh]

    q = np.stack([head(maps[0], h) for h in range(H)])
    return (q, *(np.stack([head(M, h // groups) for h in range(H)]) for M in maps[1:]))


def scale_queries(specs: Sequence[AttentionSpec], factor: float, on: str = "q") -> None:
    """The norm-controlled variant: multiply every attention score beta q_i.k_j by `factor`, in place on
    the loaded model. on="q": the query map (weight and bias) times `factor` (||K||_inf unchanged);
    on="qk": query and key maps each times sqrt(factor), so both Gamma conditions of Hu et al.
    (arXiv:2406.03136) Thm 4.1 (docs/theory.md §5.2; ||X_Q W_Q||_inf and ||X_K W_K||_inf) shrink by
    sqrt(factor)."""
    import torch

    if not (factor > 0 and math.isfinite(factor)):
        raise HarnessError(f"--scale must be a positive number, got {factor}")
    if on not in ("q", "qk"):
        raise HarnessError(f"--scale-on must be q or qk, got {on!r}")
    if factor == 1.0:
        return
    parts = [(0, factor)] if on == "q" else [(0, math.sqrt(factor)), (1, math.sqrt(factor))]
    with torch.no_grad():
        for s in specs:
            m = s.module
            for part, f in parts:
                if s.kind == "gpt2":
                    D = m.c_attn.weight.shape[1] // 3
                    m.c_attn.weight[:, part * D : (part + 1) * D] *= f
                    m.c_attn.bias[part * D : (part + 1) * D] *= f
                    continue
                names = ("query", "key") if s.kind == "bert" else ("q_proj", "k_proj")
                lin = getattr(m, names[part])
                lin.weight *= f
                if lin.bias is not None:
                    lin.bias *= f


def capture(
    model,
    input_ids: Sequence[int],
    layers: Iterable[int] | None = None,
    specs: Sequence[AttentionSpec] | None = None,
) -> list[LayerCapture]:
    """Run one unpadded sequence through the model (attention mask all ones) and capture, per attention
    layer, its input hidden states, its per-head maps and its merged head output (forward hooks)."""
    import torch

    specs = list(specs) if specs is not None else find_attention(model)
    wanted = list(range(len(specs))) if layers is None else sorted(set(layers))
    bad = [i for i in wanted if not 0 <= i < len(specs)]
    if bad:
        raise HarnessError(
            f"layer {bad[0]} does not exist; the model has {len(specs)} attention layers "
            f"(0..{len(specs) - 1})"
        )
    store: dict[int, dict] = {i: {} for i in wanted}
    handles = []

    def pre_hook(i):
        def fn(mod, args, kwargs):
            x = args[0] if args else kwargs.get("hidden_states")
            store[i]["X"] = x.detach()
            pe = kwargs.get("position_embeddings", args[1] if len(args) > 1 else None)
            store[i]["pe"] = tuple(t.detach() for t in pe) if isinstance(pe, (tuple, list)) else None

        return fn

    def out_pre_hook(i):
        def fn(mod, args):
            store[i]["out"] = args[0].detach()

        return fn

    def out_hook(i):
        def fn(mod, args, output):
            o = output[0] if isinstance(output, (tuple, list)) else output
            store[i]["out"] = o.detach()

        return fn

    try:
        for i in wanted:
            s = specs[i]
            handles.append(s.module.register_forward_pre_hook(pre_hook(i), with_kwargs=True))
            if s.out_module is not None:
                handles.append(s.out_module.register_forward_pre_hook(out_pre_hook(i)))
            else:
                handles.append(s.module.register_forward_hook(out_hook(i)))
        ids = torch.tensor([list(input_ids)], dtype=torch.long)
        kw = {"attention_mask": torch.ones_like(ids)}
        with torch.no_grad():
            try:
                model(input_ids=ids, use_cache=False, **kw)
            except TypeError:
                model(input_ids=ids, **kw)
    finally:
        for hnd in handles:
            hnd.remove()
    caps = []
    for i in wanted:
        s, got = specs[i], store[i]
        if "X" not in got or "out" not in got:
            raise HarnessError(f"attention layer {s.name!r} was not called in the forward pass")
        X = got["X"][0].double().cpu().numpy()
        out = got["out"][0].double().cpu().numpy()
        Wq, Wk, Wv = _head_maps(s)  # OPT scales q_proj(x) by `scaling` and then uses 1: same beta
        heads = None
        if s.rotary or (s.n_kv_heads or s.n_heads) != s.n_heads:
            dtype = next(s.module.parameters()).dtype
            heads = rotated_heads(s, got["X"].to(dtype), got.get("pe"))
        caps.append(
            LayerCapture(i, s.name, s.kind, X, Wq, Wk, Wv, out, s.beta, s.causal, s.n_heads, s.d_head, heads)
        )
    return caps
