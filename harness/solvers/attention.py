"""Attention functions as solvers: `from_attention(fn)` builds the LoRA loss around
`fn(q, k, v, *, scale) -> (N, Lq, d)` (torch SDPA's own signature) and takes the adapter gradients by
autograd (`loss.backward()`: some libraries' checkpointing refuses `torch.autograd.grad`).

A function declares what it supports by attributes (or `from_attention` keywords, which win):
    exact               bool   softmax attention to rounding (True) or an approximation (False)
    self_attention_only bool   needs Lq == Lk (token i of q and of k is one position)
    supports_float64    bool   False: the harness runs it in float32
and declines one instance by raising `harness.Refusal` (a refusal, never a failure). Causal
attention (issue 16) will be one more declared attribute, `supports_causal`.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from harness.errors import ContractError, HarnessError, Refusal
from harness.instance import Instance
from harness.lora import effective_weights
from harness.solvers.base import Result, Solver


def _signature_problem(fn: Callable) -> str | None:
    """None when fn(q, k, v, scale=...) binds (or the signature cannot be inspected)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins such as torch's C functions
        return None
    try:
        sig.bind(object(), object(), object(), scale=1.0)
    except TypeError as exc:
        return f"cannot be called as fn(q, k, v, *, scale): {exc}"
    return None


class AttentionSolver(Solver):
    """The LoRA adapter gradients through a user's attention function (forward by fn, backward by
    torch autograd through fn)."""

    options: dict = {}

    def __init__(
        self,
        fn: Callable,
        name: str | None = None,
        *,
        exact: bool | None = None,
        self_attention_only: bool | None = None,
        supports_float64: bool | None = None,
    ):
        if not callable(fn):
            raise HarnessError(f"attention function {name or fn!r} is not callable")
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", None) or repr(fn)

        def pick(given, attr, default):
            return bool(given if given is not None else getattr(fn, attr, default))

        self.exact = pick(exact, "exact", False)
        self.self_attention_only = pick(self_attention_only, "self_attention_only", False)
        self.supports_float64 = pick(supports_float64, "supports_float64", True)
        self.cost = str(getattr(fn, "cost", "unknown"))
        doc = (getattr(fn, "__doc__", None) or "attention function").strip().splitlines()
        self.description = doc[0] if doc else "attention function"
        problem = _signature_problem(fn)
        if problem:
            raise ContractError(f"attention function {self.name!r} {problem}")

    # -------------------------------------------------------------- the attention call
    def _declines(self, inst: Instance, dtype: torch.dtype) -> str | None:
        if self.self_attention_only and inst.Lq != inst.Lk:
            return f"self-attention only (Lq={inst.Lq} != Lk={inst.Lk})"
        if dtype == torch.float64 and not self.supports_float64:
            return "float64 not supported"
        return None

    def attend(self, Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, scale: float) -> torch.Tensor:
        """fn(Q, K, V, scale=scale) with the calling convention checked (one-line errors)."""
        try:
            out = self.fn(Q, K, V, scale=scale)
        except HarnessError:
            raise
        except TypeError as exc:
            if "argument" in str(exc) and _signature_problem(self.fn) is None:
                # a builtin whose signature could not be inspected: a binding TypeError is a usage error
                raise ContractError(
                    f"attention function {self.name!r} cannot be called as fn(q, k, v, *, scale): {exc}"
                ) from None
            raise HarnessError(f"attention function {self.name!r} raised TypeError: {exc}") from None
        except Exception as exc:
            raise HarnessError(
                f"attention function {self.name!r} raised {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(out, torch.Tensor):
            raise ContractError(
                f"attention function {self.name!r} returned {type(out).__name__}; "
                f"expected a torch.Tensor of shape (N, Lq, d)"
            )
        want = (Q.shape[0], Q.shape[1], V.shape[2])
        if tuple(out.shape) != want:
            raise ContractError(
                f"attention function {self.name!r} returned shape {tuple(out.shape)}; "
                f"expected (N, Lq, d) = {want}"
            )
        return out

    def _qkv(self, inst: Instance, t: dict):
        W = effective_weights(t, inst.alpha, inst.r)
        return t["X_q"] @ W["q"], t["X_k"] @ W["k"], t["X_v"] @ W["v"]

    def _solve(self, inst: Instance, dtype, device, **opts) -> Result:
        why = self._declines(inst, dtype)
        if why:
            raise Refusal(f"attention function {self.name!r} declines: {why}")
        t = inst.as_torch(dtype=dtype, device=device)
        leaves = [f"{p}_{m}" for m in inst.adapted for p in ("A", "B")]
        for k in leaves:
            t[k] = t[k].clone().requires_grad_(True)
        t0 = time.perf_counter()
        with torch.enable_grad():
            Q, K, V = self._qkv(inst, t)
            out = self.attend(Q, K, V, float(inst.beta))
            loss = ((out - t["Y"]) ** 2).sum() / (2 * inst.N)  # harness.losses.lora_loss
            if leaves:
                if not loss.requires_grad:
                    raise HarnessError(
                        f"attention function {self.name!r} returned an output that is "
                        f"not differentiable (no grad_fn); use --forward-only"
                    )
                try:
                    loss.backward()
                except Exception as exc:
                    raise HarnessError(
                        f"backward through attention function {self.name!r} raised "
                        f"{type(exc).__name__}: {exc}"
                    ) from None
        grads = {}
        for k in leaves:
            g = t[k].grad
            grads["d" + k] = (
                np.zeros(inst.arrays[k].shape) if g is None else g.detach().cpu().double().numpy()
            )
        info = {"seconds": time.perf_counter() - t0}
        return Result(grads, float(loss.detach()), self.name, info=info)

    def forward(self, inst: Instance, *, dtype: Any = None, device: Any = None, **options) -> np.ndarray:
        from harness.solvers.base import resolve_device, resolve_dtype

        dtype, device = resolve_dtype(dtype), resolve_device(device)
        why = self._declines(inst, dtype)
        if why:
            raise Refusal(f"attention function {self.name!r} declines: {why}")
        t = inst.as_torch(dtype=dtype, device=device)
        with torch.no_grad():
            Q, K, V = self._qkv(inst, t)
            out = self.attend(Q, K, V, float(inst.beta))
        return out.detach().cpu().double().numpy()


def from_attention(
    fn: Callable,
    *,
    exact: bool | None = None,
    name: str | None = None,
    self_attention_only: bool | None = None,
    supports_float64: bool | None = None,
) -> AttentionSolver:
    """An ordinary Solver whose gradients come from autograd through `fn(q, k, v, *, scale)`."""
    return AttentionSolver(
        fn, name, exact=exact, self_attention_only=self_attention_only, supports_float64=supports_float64
    )
