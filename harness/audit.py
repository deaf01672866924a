"""Audit a pretrained transformer against the theory's regimes (issue 7).

Loads a local Hugging Face model folder offline, runs a text through it, captures every self-attention
layer's input X and its per-head query/key/value maps (weights and biases) with forward hooks, and turns
each head into a harness `Instance`, so the norm quantities of the theory (MATH.md §2.3, §5.7, §6.5,
§11 items 5-6) and the solvers can be evaluated on real attention.

Exact head -> Instance constructions (both reproduce the head's own attention output exactly):

* ``projected`` (default, d = d_head). A head computes Q = X W_q^h + b_q^h, K = X W_k^h + b_k^h,
  V = X W_v^h + b_v^h and softmax(beta Q K^T) V with beta = the module's own scaling (1/sqrt(d_head)).
  With X' = [X, 1] (a constant-1 column carries the bias) and W'_m = [W_m^h; b_m^h] ((D+1) x d_head),
  the instance is the cross-attention form X_q = X' W'_q = Q, X_k = K, X_v = V, W*_q = W*_k = W*_v = I.
  Cost: O(L D d_head) to form it; exact solvers then cost O(L^2 d_head); the polynomial method's
  feature rank is binom(d_head + g, g). A LoRA adapter on the identity, W_q = I + (alpha/r) B A, is the
  rank-r update W'_q (alpha/r) B A of the head's own (D+1) x d_head query map (its left factor lies in
  the column space of W'_q).
* ``padded`` (d = D + 1, self-attention). X_q = X_k = X_v = X' = [X, 1] and W*_m = [W'_m | 0], the head's
  (D+1) x d_head map padded with zero columns to a square (D+1) x (D+1) matrix; the output is the head's
  output followed by D + 1 - d_head zero columns. Cost: exact solvers O(L^2 (D+1) + L (D+1)^2), feature
  rank binom(D + 1 + g, g) - the polynomial method is hopeless at this d, which is itself a finding.

Both give the same score matrix beta Q K^T, hence the same R = ||beta Q K^T||_inf (§2.3 item 1, §11
item 6) and the same Gamma_QK = max(||Q||_inf, ||K||_inf) (§5.7, §6.5); the paper's conditions on the
raw inputs (||X^(K)||_inf, ...) depend on the construction and are reported for it, next to the
hidden states' own max-norm ||X||_inf.

Causal (decoder) heads: the harness loss has no mask, so causal heads are audited for norms only
(R over the unmasked entries j <= i, Gamma, regime, degree, rank); the gradient-error part is skipped.
Saved causal instances are the *unmasked* head (flagged ``causal`` in their metadata).

Supported attention modules (matched by attributes, so subclasses and relatives work):
BERT-style (``query``/``key``/``value`` Linear: BERT, RoBERTa, MiniLM, ELECTRA, ...), GPT-2-style
(``c_attn`` Conv1D) and OPT-style (``q_proj``/``k_proj``/``v_proj`` with ``out_proj``/``o_proj``, no rotary
embeddings, as many key/value heads as query heads).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from harness.errors import HarnessError
from harness.instance import Instance

SAMPLE_TEXT = Path(__file__).resolve().parent / "data" / "sample_text.txt"
CONSTRUCTIONS = ("projected", "padded")
_CAUSAL_TYPES = {"gpt2", "opt", "gpt_neo", "gptj", "bloom", "codegen", "gpt_bigcode", "biogpt", "xglm"}


# ---------------------------------------------------------------------------------------------- loading
def require_transformers():
    """Import transformers offline, or raise a one-line HarnessError naming the missing extra."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise HarnessError("the audit needs the 'models' extra: pip install 'lora-limits[models]' "
                           "(transformers, safetensors)") from None
    return transformers


def load_model(model_dir: str | os.PathLike):
    """(model, tokenizer or None) from a local Hugging Face folder; nothing is fetched from a hub."""
    tf = require_transformers()
    try:
        tf.utils.logging.set_verbosity_error()
        tf.utils.logging.disable_progress_bar()
    except Exception:  # pragma: no cover - old versions
        pass
    path = Path(model_dir)
    if not path.is_dir():
        raise HarnessError(f"model folder {path} does not exist")
    if not (path / "config.json").is_file():
        raise HarnessError(f"{path} is not a Hugging Face model folder (no config.json)")
    weights = [p for p in path.iterdir() if p.suffix in (".safetensors", ".bin") or p.name.endswith(".index.json")]
    if not weights:
        raise HarnessError(f"{path} is not a model folder with weights (no *.safetensors or *.bin)")
    try:
        try:
            model = tf.AutoModel.from_pretrained(str(path), local_files_only=True, attn_implementation="eager")
        except (TypeError, ValueError):
            model = tf.AutoModel.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        msg = " ".join(str(exc).split())[:300]
        raise HarnessError(f"cannot load a model from {path}: {type(exc).__name__}: {msg}") from None
    model = model.float().eval()
    tokenizer = None
    if any((path / n).is_file() for n in ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer_config.json")):
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception:
            tokenizer = None
    return model, tokenizer


def tokenize(text: str, tokenizer, vocab_size: int, max_tokens: int | None) -> tuple[list[int], str]:
    """Token ids for one unpadded sequence, truncated to `max_tokens`. Without a tokenizer (random test
    models) the UTF-8 bytes modulo the vocabulary size are used."""
    if not text.strip():
        raise HarnessError("the text is empty")
    if tokenizer is not None:
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        kind = type(tokenizer).__name__
        if max_tokens and len(ids) > max_tokens:
            # keep a final special token (e.g. [SEP]) when the tokenizer adds one
            last = ids[-1] if ids[-1] in (getattr(tokenizer, "all_special_ids", None) or []) else None
            ids = ids[:max_tokens - 1] + [last] if last is not None and max_tokens > 1 else ids[:max_tokens]
    else:
        ids = [b % vocab_size for b in text.encode("utf-8")]
        kind = "bytes"
        if max_tokens:
            ids = ids[:max_tokens]
    if len(ids) < 2:
        raise HarnessError("the text gives fewer than 2 tokens")
    return list(ids), kind


def read_text(path: str | os.PathLike | None) -> str:
    p = Path(path) if path else SAMPLE_TEXT
    if not p.is_file():
        raise HarnessError(f"text file {p} does not exist")
    return p.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------- capture
@dataclass
class AttentionSpec:
    """How to read one attention module: kind, head count/size, beta, causal, where its output is."""
    name: str
    module: Any
    kind: str          # "bert" | "gpt2" | "proj"
    n_heads: int
    d_head: int
    beta: float
    causal: bool
    out_module: Any = None   # module whose *input* is the merged head output (gpt2: c_proj, proj: out_proj)


@dataclass
class LayerCapture:
    """One attention layer on one sequence: input X (L, D), per-head maps (D+1, d_head) with the bias as
    the last row, and the layer's merged head output (L, n_heads * d_head), all float64."""
    index: int
    name: str
    kind: str
    X: np.ndarray
    Wq: np.ndarray     # (n_heads, D+1, d_head)
    Wk: np.ndarray
    Wv: np.ndarray
    out: np.ndarray    # (L, n_heads * d_head) as the model computed it (float32 -> float64)
    beta: float
    causal: bool
    n_heads: int
    d_head: int

    @property
    def L(self) -> int:
        return self.X.shape[0]

    def head_output(self, h: int) -> np.ndarray:
        return self.out[:, h * self.d_head:(h + 1) * self.d_head]

    def qkv(self, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Q, K, V of head h: X' W'_m with X' = [X, 1] (bias as a constant-1 feature)."""
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
    if config is not None and (_config_value(config, "rope_theta", "rotary_dim", "rotary_pct") is not None
                               or getattr(config, "rope_scaling", None) or "rope" in str(
                                   getattr(config, "position_embedding_type", ""))):
        raise HarnessError(f"architecture {model_type or type(model).__name__!r} uses rotary position "
                           "embeddings; the audit supports BERT-, GPT-2- and OPT-style attention only")
    pet = str(getattr(config, "position_embedding_type", "absolute") or "absolute")
    default_causal = bool(getattr(config, "is_decoder", False)) or model_type in _CAUSAL_TYPES
    specs = []
    for name, m in model.named_modules():
        causal = getattr(m, "is_causal", None)
        causal = default_causal if causal is None else bool(causal)
        if all(isinstance(getattr(m, a, None), nn.Linear) for a in ("query", "key", "value")) \
                and hasattr(m, "num_attention_heads"):
            if pet != "absolute":
                raise HarnessError(f"position_embedding_type {pet!r} adds terms to the attention scores; "
                                   "only 'absolute' is supported")
            if getattr(m, "query", None) is not None and m.key.in_features != m.query.in_features:
                continue
            dh = int(getattr(m, "attention_head_size", m.query.out_features // m.num_attention_heads))
            beta = float(getattr(m, "scaling", dh ** -0.5))
            specs.append(AttentionSpec(name, m, "bert", int(m.num_attention_heads), dh, beta, causal))
        elif hasattr(m, "c_attn") and hasattr(m, "c_proj") and not hasattr(m, "q_attn") \
                and hasattr(m, "num_heads"):
            dh = int(getattr(m, "head_dim", m.c_attn.weight.shape[0] // m.num_heads))
            beta = getattr(m, "scaling", None)
            if beta is None:
                beta = dh ** -0.5 if getattr(m, "scale_attn_weights", True) else 1.0
                if getattr(m, "scale_attn_by_inverse_layer_idx", False):
                    beta /= float(getattr(m, "layer_idx", 0) + 1)
            specs.append(AttentionSpec(name, m, "gpt2", int(m.num_heads), dh, float(beta), causal,
                                       out_module=m.c_proj))
        elif all(isinstance(getattr(m, a, None), nn.Linear) for a in ("q_proj", "k_proj", "v_proj")):
            out = getattr(m, "out_proj", None) or getattr(m, "o_proj", None)
            nh = getattr(m, "num_heads", None) or _config_value(config, "num_attention_heads")
            if out is None or nh is None:
                continue
            nkv = getattr(m, "num_key_value_heads", None) or _config_value(config, "num_key_value_heads")
            if nkv is not None and int(nkv) != int(nh):
                raise HarnessError("grouped-query attention (fewer key/value heads than query heads) "
                                   "is not supported by the audit")
            if hasattr(m, "rotary_emb"):
                raise HarnessError("attention with rotary position embeddings is not supported by the audit")
            dh = int(getattr(m, "head_dim", m.q_proj.out_features // int(nh)))
            beta = float(getattr(m, "scaling", dh ** -0.5))
            is_cross = bool(getattr(m, "is_cross_attention", False)) or "encoder_attn" in name
            if is_cross:
                continue
            specs.append(AttentionSpec(name, m, "proj", int(nh), dh, beta, causal, out_module=out))
    if not specs:
        raise HarnessError(f"no recognisable attention modules in {model_type or type(model).__name__!r}; "
                           "the audit supports BERT-, GPT-2- and OPT-style attention")
    return specs


def _head_maps(spec: AttentionSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-head (n_heads, D+1, d_head) maps in the x -> x W + b convention, bias as the last row."""
    m = spec.module

    def lin(layer):
        W = layer.weight.detach().double().cpu().numpy().T          # (D, out)
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
        maps = [full[:, :D], full[:, D:2 * D], full[:, 2 * D:]]
    H, dh = spec.n_heads, spec.d_head
    return tuple(np.stack([M[:, h * dh:(h + 1) * dh] for h in range(H)]) for M in maps)


def scale_queries(specs: Sequence[AttentionSpec], factor: float, on: str = "q") -> None:
    """The norm-controlled variant: multiply every attention score beta q_i.k_j by `factor`, in place on
    the loaded model. on="q": the query map (weight and bias) times `factor` (||K||_inf unchanged);
    on="qk": query and key maps each times sqrt(factor), so both Gamma conditions of MATH.md §6.5
    (||X_Q W_Q||_inf and ||X_K W_K||_inf) shrink by sqrt(factor)."""
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
                    m.c_attn.weight[:, part * D:(part + 1) * D] *= f
                    m.c_attn.bias[part * D:(part + 1) * D] *= f
                    continue
                names = ("query", "key") if s.kind == "bert" else ("q_proj", "k_proj")
                lin = getattr(m, names[part])
                lin.weight *= f
                if lin.bias is not None:
                    lin.bias *= f


def capture(model, input_ids: Sequence[int], layers: Iterable[int] | None = None,
            specs: Sequence[AttentionSpec] | None = None) -> list[LayerCapture]:
    """Run one unpadded sequence through the model (attention mask all ones) and capture, per attention
    layer, its input hidden states, its per-head maps and its merged head output (forward hooks)."""
    import torch

    specs = list(specs) if specs is not None else find_attention(model)
    wanted = list(range(len(specs))) if layers is None else sorted(set(layers))
    bad = [i for i in wanted if not 0 <= i < len(specs)]
    if bad:
        raise HarnessError(f"layer {bad[0]} does not exist; the model has {len(specs)} attention layers "
                           f"(0..{len(specs) - 1})")
    store: dict[int, dict] = {i: {} for i in wanted}
    handles = []

    def pre_hook(i):
        def fn(mod, args, kwargs):
            x = args[0] if args else kwargs.get("hidden_states")
            store[i]["X"] = x.detach()
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
        caps.append(LayerCapture(i, s.name, s.kind, X, Wq, Wk, Wv, out, s.beta, s.causal, s.n_heads, s.d_head))
    return caps


# ---------------------------------------------------------------------------------------------- heads
def causal_mask(L: int) -> np.ndarray:
    return np.tril(np.ones((L, L), dtype=bool))


def head_scores(cap: LayerCapture, h: int) -> np.ndarray:
    """beta Q K^T of head h, (L, L); masked entries (causal heads) are NaN."""
    Q, K, _ = cap.qkv(h)
    S = cap.beta * (Q @ K.T)
    if cap.causal:
        S = np.where(causal_mask(cap.L), S, np.nan)
    return S


def head_probs(cap: LayerCapture, h: int) -> np.ndarray:
    """softmax_rows(beta Q K^T) of head h (masked entries 0 for causal heads), float64."""
    S = head_scores(cap, h)
    S = np.where(np.isnan(S), -np.inf, S)
    S = S - S.max(axis=1, keepdims=True)
    P = np.exp(S)
    P /= P.sum(axis=1, keepdims=True)
    return P


def head_forward(cap: LayerCapture, h: int) -> np.ndarray:
    """The head's attention output recomputed in float64 from the captured X and maps (causal mask
    applied for causal heads): softmax_rows(beta Q K^T) V."""
    return head_probs(cap, h) @ cap.qkv(h)[2]


def score_range_masked(cap: LayerCapture, h: int) -> float:
    """R = ||beta Q K^T||_inf over the entries the softmax sees (MATH.md §2.3 item 1, §11 item 6)."""
    return float(np.nanmax(np.abs(head_scores(cap, h))))


def head_instance(cap: LayerCapture, h: int, construction: str = "projected", r: int | None = 2,
                  seed: int = 0, lora_scale: float = 0.05, perturb: float = 0.01,
                  meta: dict | None = None) -> Instance:
    """Head h of a captured layer as a LoRA Instance (module doc for the two exact constructions).

    Adapters on q and v of rank r (None or 0: no adapters, the frozen head), seeded, with
    ||(alpha/r) B_m A_m||_F = lora_scale ||W*_m||_F and alpha = r. Target Y = the head's frozen output
    (the model's own, float32, zero-padded to width d) plus perturb * std(output) * N(0, 1)."""
    if construction not in CONSTRUCTIONS:
        raise HarnessError(f"unknown construction {construction!r}; choose from {', '.join(CONSTRUCTIONS)}")
    L, dh = cap.L, cap.d_head
    if construction == "projected":
        Q, K, V = cap.qkv(h)
        eye = np.eye(dh)
        arrays = dict(X_q=Q, X_k=K, X_v=V, W_q=eye, W_k=eye.copy(), W_v=eye.copy())
        d = dh
    else:
        X1 = np.concatenate([cap.X, np.ones((L, 1))], axis=1)
        d = X1.shape[1]
        arrays = dict(X_q=X1)
        for m, M in (("q", cap.Wq[h]), ("k", cap.Wk[h]), ("v", cap.Wv[h])):
            W = np.zeros((d, d))
            W[:, :dh] = M
            arrays[f"W_{m}"] = W
    rng = np.random.default_rng([int(seed), int(cap.index), int(h)])
    Y = np.zeros((L, d))
    Y[:, :dh] = cap.head_output(h)
    std = float(np.std(cap.head_output(h))) or 1.0
    Y = Y + perturb * std * rng.normal(size=(L, d))
    arrays["Y"] = Y
    alpha = 1.0
    if r:
        r = int(min(r, d))
        alpha = float(r)
        for m in ("q", "v"):
            A = rng.normal(size=(r, d)) / math.sqrt(d)
            B = rng.normal(size=(d, r))
            upd = (alpha / r) * (B @ A)
            B *= lora_scale * np.linalg.norm(arrays[f"W_{m}"]) / max(np.linalg.norm(upd), 1e-300)
            arrays[f"A_{m}"], arrays[f"B_{m}"] = A, B
    info = {"generator": "audit", "layer": cap.index, "module": cap.name, "head": int(h),
            "construction": construction, "causal": bool(cap.causal), "d_head": dh, "seed": int(seed),
            "lora_scale": lora_scale, "perturb": perturb}
    info.update(meta or {})
    return Instance.from_arrays(arrays, alpha=alpha, beta=cap.beta, meta=info)


def direct_gammas(cap: LayerCapture, h: int) -> dict[str, float]:
    """Norms read straight off the head (no Instance): ||Q||_inf, ||K||_inf, ||V||_inf,
    Gamma_QK = max(||Q||, ||K||) (the §5.7/§6.5 conditions on X^(Q) W_Q and X^(K) W_K), ||X||_inf of the
    hidden states (and their RMS), the (S4) score range ||Q K^T||_inf without beta (§11 item 6), and
    where the largest |score| sits (diagonal, first key, last key, other) with its sign; R_pos / R_neg,
    the largest positive / negative score; and R_centred = max_i (max_j - min_j of row i of beta Q K^T)/2,
    the half-width of the widest row. Softmax is invariant to a per-row shift, and exp(x - m_i) is a
    polynomial in [q_i, -m_i].[k_j, 1], so a Taylor expansion centred per row (one extra feature) needs
    only |x - m_i| <= R_centred (MATH.md §2.3 [D] item 2 with the interval re-centred). attn_max and
    attn_rowmax_mean: the largest attention weight and the mean over queries of the row maximum
    (how peaked the head is; a weight is at most e^(2 R_centred) / L, so peaked heads need R ~ log L)."""
    Q, K, V = cap.qkv(h)
    S = Q @ K.T
    if cap.causal:
        S = np.where(causal_mask(cap.L), S, 0.0)
    q, k = float(np.abs(Q).max()), float(np.abs(K).max())
    Sb = cap.beta * S
    lo = np.where(causal_mask(cap.L), Sb, np.inf).min(1) if cap.causal else Sb.min(1)
    hi = np.where(causal_mask(cap.L), Sb, -np.inf).max(1) if cap.causal else Sb.max(1)
    P = head_probs(cap, h)
    i, j = np.unravel_index(int(np.argmax(np.abs(S))), S.shape)
    where = "diagonal" if i == j else "first key" if j == 0 else "last key" if j == cap.L - 1 else "other"
    return {"Q_inf": q, "K_inf": k, "V_inf": float(np.abs(V).max()), "gamma_QK": max(q, k),
            "X_inf": float(np.abs(cap.X).max()), "X_rms": float(np.sqrt(np.mean(cap.X ** 2))),
            "S_unscaled_inf": float(np.abs(S).max()), "R_at": [int(i), int(j)], "R_where": where,
            "R_sign": "+" if S[i, j] >= 0 else "-", "R_pos": float(max(hi.max(), 0.0)),
            "R_neg": float(max(-lo.min(), 0.0)), "R_centred": float(((hi - lo) / 2).max()),
            "attn_max": float(P.max()), "attn_rowmax_mean": float(P.max(1).mean())}
