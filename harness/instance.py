"""The Instance: an immutable, validated record of one LoRA attention-gradient problem.

Interchange-format names (README "Interchange format"; docs/theory.md §2.1, §3.2):

    X_q, X_k, X_v   (N, L, d) or (L, d)   query / key / value inputs (self-attention when equal)
    W_q, W_k, W_v   (d, d)                frozen weights W*_m
    A_m, B_m        (r, d), (d, r)        LoRA adapter for m in {q, k, v}; absent pair = not adapted
    Y               like X_q              regression target
    alpha, beta     0-d                   LoRA scale alpha (W_m = W*_m + alpha/r B_m A_m), inverse temperature
    causal          0-d bool (optional)   causal mask: query j attends keys m <= j (top-left alignment, as
                                          torch SDPA's is_causal, also when Lq != Lk); false when absent

Queries and keys may have different lengths (cross-attention): X_q is (N, Lq, d), X_k and X_v are
(N, Lk, d). Validation happens once, here; everything downstream receives a valid Instance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.jsonable import jsonable

ADAPTABLE = ("q", "k", "v")
X_NAMES = ("X_q", "X_k", "X_v")
W_NAMES = ("W_q", "W_k", "W_v")
ADAPTER_NAMES = tuple(f"{p}_{m}" for m in ADAPTABLE for p in ("A", "B"))
ARRAY_NAMES = X_NAMES + W_NAMES + ADAPTER_NAMES + ("Y",)
SCALAR_NAMES = ("alpha", "beta")
FORMAT_VERSION = 1


def check_dtype(name: str, dtype: Any) -> None:
    """float32 / float64 in either byte order, or integers (read as float64); bool, complex,
    float16, long double, strings and objects are refused. alpha/beta: any real number type but bool."""
    dt = np.dtype(dtype)
    if name in SCALAR_NAMES:
        if dt.kind not in "iuf" or (dt.kind == "f" and dt.itemsize > 8):
            raise HarnessError(f"{name!r} must be a real number, got dtype {dt}")
        return
    if dt.kind == "b":
        raise HarnessError(f"array {name!r} has dtype bool; expected float32 or float64 (or integers)")
    if dt.kind not in "iu" and (dt.kind != "f" or dt.itemsize not in (4, 8)):
        raise HarnessError(f"array {name!r} has dtype {dt}; expected float32 or float64")


def _as_float_array(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise HarnessError(f"array {name!r} cannot be read as an array: {exc}") from None
    check_dtype(name, arr.dtype)
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.float64)
    if not arr.dtype.isnative:  # a big-endian file is valid: compute in the native byte order
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not np.all(np.isfinite(arr)):
        raise HarnessError(f"array {name!r} contains NaN or inf")
    return arr


def _as_scalar(name: str, value: Any) -> float:
    arr = np.asarray(value)
    if arr.size != 1:
        raise HarnessError(f"{name!r} must be a scalar (0-d), got shape {arr.shape}")
    check_dtype(name, arr.dtype)
    out = float(arr.reshape(()))
    if not np.isfinite(out):
        raise HarnessError(f"{name!r} is NaN or inf")
    return out


def _as_flag(name: str, value: Any) -> bool:
    """A 0-d boolean flag (numpy or Python bool, or the integers 0 / 1)."""
    arr = np.asarray(value)
    if arr.shape not in ((), (1,)):
        raise HarnessError(f"{name!r} must be a 0-d boolean, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        return bool(arr.reshape(()))
    if arr.dtype.kind in "iu" and int(arr.reshape(())) in (0, 1):
        return bool(int(arr.reshape(())))
    raise HarnessError(
        f"{name!r} must be a boolean (true/false), got {arr.reshape(-1)[0]!r} of dtype {arr.dtype}"
    )


def array_sha256(arrays: Mapping[str, np.ndarray], alpha: float, beta: float, causal: bool = False) -> str:
    """Content hash over names, dtypes, shapes and bytes (sorted by name), the two scalars and, for
    causal instances only, the mask flag (so every non-causal instance keeps its hash)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    h.update(np.array([alpha, beta], dtype=np.float64).tobytes())
    if causal:
        h.update(b"|causal")
    return h.hexdigest()


@dataclass(frozen=True)
class Instance:
    """A validated LoRA attention-gradient instance (docs/theory.md §2.1, §3.2). Build with `from_arrays`."""

    arrays: Mapping[str, np.ndarray]
    alpha: float
    beta: float
    meta: Mapping[str, Any] = field(default_factory=dict)
    causal: bool = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, Any],
        alpha: float | None = None,
        beta: float | None = None,
        meta: Mapping[str, Any] | None = None,
        causal: bool | None = None,
    ) -> Instance:
        """Validate and freeze. `alpha`/`beta` (default 1.0) and `causal` (default False) may also be
        given inside `arrays`.

        X_k and X_v may be omitted: they default to X_q (self-attention)."""
        arrays = dict(arrays)
        if "causal" in arrays:
            flag = arrays.pop("causal")
            causal = flag if causal is None else causal
        causal = False if causal is None else _as_flag("causal", causal)
        for s in SCALAR_NAMES:
            if s in arrays:
                v = arrays.pop(s)
                if (alpha if s == "alpha" else beta) is None:
                    if s == "alpha":
                        alpha = v
                    else:
                        beta = v
        alpha = _as_scalar("alpha", 1.0 if alpha is None else alpha)
        beta = _as_scalar("beta", 1.0 if beta is None else beta)
        unknown = sorted(set(arrays) - set(ARRAY_NAMES))
        if unknown:
            raise HarnessError(
                f"unknown array name {unknown[0]!r}; expected names from "
                f"{', '.join(ARRAY_NAMES + SCALAR_NAMES)}"
            )
        for name in ("X_q", "W_q", "W_k", "W_v", "Y"):
            if name not in arrays:
                raise HarnessError(f"missing array {name!r}")
        arrays.setdefault("X_k", arrays["X_q"])
        arrays.setdefault("X_v", arrays["X_k"])
        clean = {name: _as_float_array(name, arrays[name]) for name in ARRAY_NAMES if name in arrays}
        validate_shapes(clean)
        frozen = {}
        for name, a in clean.items():
            a = np.array(a, copy=True, order="C")
            a.setflags(write=False)
            frozen[name] = a
        meta = dict(meta or {})
        meta.setdefault("format_version", FORMAT_VERSION)
        return cls(MappingProxyType(frozen), alpha, beta, MappingProxyType(meta), causal)

    def replace(
        self,
        *,
        alpha: float | None = None,
        beta: float | None = None,
        meta: Mapping[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        causal: bool | None = None,
        **arrays: Any,
    ) -> Instance:
        """A new validated Instance with some arrays/scalars replaced (or dropped)."""
        new = {k: v for k, v in self.arrays.items() if k not in drop}
        new.update(arrays)
        return Instance.from_arrays(
            new,
            alpha=self.alpha if alpha is None else alpha,
            beta=self.beta if beta is None else beta,
            meta=self.meta if meta is None else meta,
            causal=self.causal if causal is None else causal,
        )

    # ------------------------------------------------------------------ shape facts
    @property
    def batched(self) -> bool:
        return self.arrays["X_q"].ndim == 3

    @property
    def N(self) -> int:
        return self.arrays["X_q"].shape[0] if self.batched else 1

    @property
    def Lq(self) -> int:
        return self.arrays["X_q"].shape[-2]

    @property
    def Lk(self) -> int:
        return self.arrays["X_k"].shape[-2]

    @property
    def L(self) -> int:
        """Sequence length: max(Lq, Lk) (equal for self-attention)."""
        return max(self.Lq, self.Lk)

    @property
    def d(self) -> int:
        return self.arrays["W_q"].shape[0]

    @property
    def adapted(self) -> tuple[str, ...]:
        """Which of q, k, v carry an adapter (in that order)."""
        return tuple(m for m in ADAPTABLE if f"A_{m}" in self.arrays)

    @property
    def r(self) -> int:
        """LoRA rank (0 when nothing is adapted)."""
        a = self.adapted
        return self.arrays[f"A_{a[0]}"].shape[0] if a else 0

    @property
    def self_attention(self) -> bool:
        x = self.arrays
        return x["X_q"] is x["X_k"] or (
            x["X_q"].shape == x["X_k"].shape == x["X_v"].shape
            and np.array_equal(x["X_q"], x["X_k"])
            and np.array_equal(x["X_k"], x["X_v"])
        )

    @property
    def sha256(self) -> str:
        return array_sha256(self.arrays, self.alpha, self.beta, self.causal)

    def mask(self, device=None):
        """The (Lq, Lk) boolean attention mask as a torch tensor (all True unless causal)."""
        return attention_mask(self.Lq, self.Lk, self.causal, device)

    def x3(self, name: str) -> np.ndarray:
        """Array `name` with a leading batch axis (N, L, d) for X_* and Y."""
        a = self.arrays[name]
        return a if a.ndim == 3 or name not in X_NAMES + ("Y",) else a[None]

    def describe(self) -> str:
        ad = ",".join(self.adapted) or "none"
        return (
            f"N={self.N} Lq={self.Lq} Lk={self.Lk} d={self.d} r={self.r} adapt={ad} "
            f"alpha={self.alpha:g} beta={self.beta:g}" + (" causal" if self.causal else "")
        )

    def as_torch(self, dtype=None, device=None) -> dict:
        """The instance as a mapping of interchange-format names to torch tensors (the third-party
        solver convention): X_* and Y batched to (N, L, d); alpha, beta as 0-d tensors; for causal
        instances only, causal as a 0-d bool tensor (solvers written before the mask see the same mapping)."""
        import torch

        dtype = dtype or torch.float64
        out = {}
        for name in self.arrays:
            out[name] = torch.as_tensor(np.array(self.x3(name)), dtype=dtype, device=device)
        out["alpha"] = torch.tensor(self.alpha, dtype=dtype, device=device)
        out["beta"] = torch.tensor(self.beta, dtype=dtype, device=device)
        if self.causal:
            out["causal"] = torch.tensor(True, device=device)
        return out

    def __repr__(self) -> str:
        return f"Instance({self.describe()})"


def attention_mask(Lq: int, Lk: int, causal: bool, device=None):
    """(Lq, Lk) bool torch mask, True where query j may attend key m. Causal: m <= j, top-left aligned
    (row j sees keys 0..j whatever Lq and Lk are), the rule of torch SDPA's is_causal; every row sees
    key 0, so no row is empty (docs/theory.md §2.1)."""
    import torch

    full = torch.ones(Lq, Lk, dtype=torch.bool, device=device)
    return full.tril() if causal else full


def validate_shapes(a: Mapping[str, Any]) -> None:
    """Shapes, ranks and consistency of N, L, d, r (docs/theory.md §2.1). One-line HarnessErrors."""
    W = a["W_q"]
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] < 1:
        raise HarnessError(f"W_q must be a square (d, d) matrix, got shape {W.shape}")
    d = W.shape[0]
    for name in W_NAMES:
        if a[name].shape != (d, d):
            raise HarnessError(f"{name} has shape {a[name].shape}; expected ({d}, {d}) like W_q")
    nd = a["X_q"].ndim
    if nd not in (2, 3):
        raise HarnessError(f"X_q must be (L, d) or (N, L, d), got shape {a['X_q'].shape}")
    for name in X_NAMES + ("Y",):
        x = a[name]
        if x.ndim != nd:
            raise HarnessError(
                f"{name} has {x.ndim} dimensions but X_q has {nd}; use (L, d) or (N, L, d) throughout"
            )
        if x.shape[-1] != d:
            raise HarnessError(f"{name} has feature size {x.shape[-1]}; expected d={d} (from W_q)")
        if x.shape[-2] < 1:
            raise HarnessError(f"{name} has sequence length 0")
        if nd == 3 and x.shape[0] != a["X_q"].shape[0]:
            raise HarnessError(f"{name} has N={x.shape[0]} but X_q has N={a['X_q'].shape[0]}")
        if nd == 3 and x.shape[0] < 1:
            raise HarnessError(f"{name} has N=0 data points")
    if a["X_k"].shape[-2] != a["X_v"].shape[-2]:
        raise HarnessError(
            f"X_k has length {a['X_k'].shape[-2]} but X_v has {a['X_v'].shape[-2]}; "
            "keys and values must match"
        )
    if a["Y"].shape != a["X_q"].shape:
        raise HarnessError(f"Y has shape {a['Y'].shape}; expected {a['X_q'].shape} (like X_q)")
    r = None
    for m in ADAPTABLE:
        has_a, has_b = f"A_{m}" in a, f"B_{m}" in a
        if has_a != has_b:
            raise HarnessError(f"adapter for {m} is incomplete: give both A_{m} and B_{m} or neither")
        if not has_a:
            continue
        A, B = a[f"A_{m}"], a[f"B_{m}"]
        if A.ndim != 2 or A.shape[1] != d:
            raise HarnessError(f"A_{m} has shape {A.shape}; expected (r, {d})")
        if B.ndim != 2 or B.shape != (d, A.shape[0]):
            raise HarnessError(
                f"B_{m} has shape {B.shape}; expected ({d}, {A.shape[0]}) to match A_{m} {A.shape}"
            )
        if A.shape[0] < 1:
            raise HarnessError(f"A_{m} has rank r=0")
        if A.shape[0] > d:
            raise HarnessError(f"LoRA rank r={A.shape[0]} of A_{m} exceeds d={d}")
        if r is not None and A.shape[0] != r:
            raise HarnessError(
                f"A_{m} has rank {A.shape[0]} but another adapter has rank {r}; one r per instance"
            )
        r = A.shape[0]


def meta_json(meta: Mapping[str, Any]) -> str:
    return json.dumps(jsonable(dict(meta)), sort_keys=True)
