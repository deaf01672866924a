"""The Solver interface and its Result.

A solver has a `name`, whether it is `exact`, a claimed `cost`, and
`solve(instance, dtype=..., device=..., **options) -> Result`. Results hold numpy gradients named as
in the interchange format (`dA_m` of shape (r, d), `dB_m` of shape (d, r) for each adapted m), the
loss, a deterministic operation count, and for approximate solvers a certificate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from harness.errors import HarnessError
from harness.instance import Instance

_DTYPES = {
    "float64": torch.float64,
    "double": torch.float64,
    "float32": torch.float32,
    "float": torch.float32,
}


def resolve_dtype(dtype: Any) -> torch.dtype:
    """torch dtype from a torch dtype, numpy dtype or name ('float32', 'float64')."""
    if dtype is None:
        return torch.float64
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise HarnessError(f"unsupported dtype {dtype}; use float32 or float64")
        return dtype
    key = str(np.dtype(dtype)) if not isinstance(dtype, str) else dtype.lower()
    if key not in _DTYPES:
        raise HarnessError(f"unsupported dtype {dtype!r}; use float32 or float64")
    return _DTYPES[key]


def resolve_device(device: Any) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise HarnessError(f"unknown device {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HarnessError("device 'cuda' requested but CUDA is not available on this machine")
    return dev


def gradient_names(inst: Instance) -> list[str]:
    return [f"{p}_{m}" for m in inst.adapted for p in ("dA", "dB")]


@dataclass
class Result:
    """Gradients (numpy, interchange names), loss, deterministic op count, optional certificate."""

    grads: dict[str, np.ndarray]
    loss: float
    solver: str
    ops: int | None = None
    certificate: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def max_abs_error(self, reference: Result) -> float:
        """Problem 1 criterion: max over adapters of the max-norm difference (docs/theory.md §2.2)."""
        errs = [
            float(np.max(np.abs(np.asarray(self.grads[k], np.float64) - reference.grads[k])))
            for k in reference.grads
            if reference.grads[k].size
        ]
        return max(errs, default=0.0)

    def max_rel_error(self, reference: Result) -> float:
        """max-norm error divided by the reference's max-norm (0/0 read as 0)."""
        scale = max((float(np.max(np.abs(g))) for g in reference.grads.values() if g.size), default=0.0)
        err = self.max_abs_error(reference)
        return err / scale if scale > 0 else err


class Solver:
    """Base class. Subclasses set `name`, `exact`, `cost`, `options` and implement `_solve`."""

    name: str = "?"
    exact: bool = True
    cost: str = "?"
    description: str = ""
    options: Mapping[str, Any] = {}

    def solve(self, inst: Instance, *, dtype: Any = None, device: Any = None, **options) -> Result:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            allowed = ", ".join(sorted(self.options)) or "none"
            raise HarnessError(f"solver {self.name!r} has no option {unknown[0]!r} (options: {allowed})")
        opts = {**self.options, **options}
        res = self._solve(inst, resolve_dtype(dtype), resolve_device(device), **opts)
        for k, g in res.grads.items():
            if not np.all(np.isfinite(g)):
                res.info["nonfinite"] = k
        return res

    def _solve(self, inst: Instance, dtype: torch.dtype, device: torch.device, **opts) -> Result:
        raise NotImplementedError

    def forward(self, inst: Instance, *, dtype: Any = None, device: Any = None, **options) -> np.ndarray:
        """Attention output softmax(beta Q K^T) V, shape (N, Lq, d); optional for solvers."""
        raise HarnessError(f"solver {self.name!r} does not compute the attention forward pass")

    def __repr__(self) -> str:
        return f"<solver {self.name} ({'exact' if self.exact else 'approximate'}, {self.cost})>"
