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
from harness.measure.threads import blas_like_torch
from harness.memguard import check as check_memory
from harness.solvers.options import validate_options

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
    """cpu, cuda, cuda:N or auto (cuda when available). Other torch device types (meta, mps, xla,
    ...) are refused: the harness computes real numbers on the CPU or a CUDA device."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise HarnessError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type not in ("cpu", "cuda") or (dev.type == "cpu" and dev.index not in (None, 0)):
        raise HarnessError(f"unsupported device {str(device)!r}; use cpu, cuda, cuda:N or auto")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise HarnessError("device 'cuda' requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise HarnessError(
                f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
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


def input_bytes(inst: Instance, itemsize: int) -> int:
    """Bytes of the instance's arrays as tensors of `itemsize` bytes (what `as_torch` allocates)."""
    return sum(a.size for a in inst.arrays.values()) * itemsize


#: slack added to every solver's estimate: torch's allocator, temporaries of O(d^2), the result
SLACK_BYTES = 32 << 20


class Solver:
    """Base class. Subclasses set `name`, `exact`, `cost`, `options` (name -> `Option`: type,
    default, range; harness.solvers.options) and implement `_solve`; `memory_estimate` when they
    allocate more than their inputs (harness.memguard refuses before allocating)."""

    name: str = "?"
    exact: bool = True
    cost: str = "?"
    description: str = ""
    options: Mapping[str, Any] = {}

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Every option with its default filled in, each given one checked against its type and range
        (one-line HarnessError naming the option)."""
        return validate_options(self.name, self.options, options)

    def memory_estimate(self, inst: Instance, itemsize: int, **options) -> int:
        """Upper bound on the bytes `_solve` allocates on the CPU (default: the inputs as tensors)."""
        return input_bytes(inst, itemsize) + SLACK_BYTES

    def guard(
        self, inst: Instance, *, dtype: Any = None, device: Any = None, max_memory: Any = None, **options
    ) -> tuple[torch.dtype, torch.device, dict[str, Any]]:
        """What is checked before a solver computes anything: it is a concrete solver, the dtype, the
        device, every option, and (on the CPU) its memory estimate against `max_memory` (bytes, a
        size like '8G', a MemoryLimit, or None for the default limit). Returns (dtype, device,
        options with defaults)."""
        if type(self)._solve is Solver._solve:
            raise HarnessError(f"{type(self).__name__} is an abstract solver class (it implements no _solve)")
        opts = self.check_options(options)
        dt, dev = resolve_dtype(dtype), resolve_device(device)
        if dev.type == "cpu":  # a full CUDA device is torch's OutOfMemoryError, one line in the CLI
            need = self.memory_estimate(inst, torch.finfo(dt).bits // 8, **opts)
            check_memory(need, f"solver {self.name!r} on {inst.describe()}", max_memory)
        return dt, dev, opts

    def solve(
        self, inst: Instance, *, dtype: Any = None, device: Any = None, max_memory: Any = None, **options
    ) -> Result:
        """Gradients of `inst`; `guard` runs first, so a bad option or an instance too large for the
        memory limit computes nothing."""
        dt, dev, opts = self.guard(inst, dtype=dtype, device=device, max_memory=max_memory, **options)
        with blas_like_torch():  # numpy's BLAS threads capped at torch's (harness.measure.threads)
            res = self._solve(inst, dt, dev, **opts)
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
