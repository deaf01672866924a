"""Solver registry: built-in names, `module:attr` callables and the `lora_harness.solvers`
entry-point group, all called the same way (`get_solver(spec).solve(instance)`).

A third-party solver is any callable taking a mapping of interchange-format names to torch tensors
(X_* and Y batched to (N, L, d), alpha and beta 0-d; see `Instance.as_torch`) and returning a mapping
with `dA_m`, `dB_m` for every adapted m (torch tensors or numpy arrays), optionally `loss`. A Solver
subclass or instance may be named instead. Attributes `exact` and `cost` on the callable are used
when present.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np
import torch

from harness.errors import HarnessError
from harness.instance import Instance
from harness.solvers.base import Result, Solver, gradient_names

ENTRY_POINT_GROUP = "lora_harness.solvers"

BUILTINS: dict[str, str] = {
    "autograd": "harness.solvers.exact.autograd:AutogradSolver",
    "closed-form": "harness.solvers.exact.closed_form:ClosedFormSolver",
    "streaming": "harness.solvers.exact.streaming:StreamingSolver",
    "sdpa": "harness.solvers.exact.sdpa:SdpaSolver",
    "poly": "harness.solvers.poly.solver:PolySolver",
    "poly-chained": "harness.solvers.poly.chained:PolyChainedSolver",
    "random-features": "harness.solvers.random_features.solver:RandomFeaturesSolver",
}

_registered: dict[str, Solver] = {}


def register(solver: Solver) -> Solver:
    """Register a Solver instance under its name (overrides built-ins of the same name)."""
    _registered[solver.name] = solver
    return solver


def resolve_object(spec: str, what: str = "solver") -> Any:
    """The object named by 'module:attr' (attr may be dotted)."""
    if ":" not in spec:
        raise HarnessError(
            f"{what} {spec!r}: expected MODULE:ATTR (e.g. torch.nn.functional:scaled_dot_product_attention)"
        )
    return _import(spec)


def _import(spec: str) -> Any:
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise HarnessError(f"unknown solver {spec!r}: expected a registered name or 'module:attr'")
    mod = import_module_like_python_m(mod_name, spec)
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise HarnessError(f"unknown solver {spec!r}: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _missing(exc: ModuleNotFoundError, mod_name: str) -> bool:
    """The module itself (or a parent package) is missing, not something it imports."""
    return exc.name is not None and (mod_name == exc.name or mod_name.startswith(exc.name + "."))


def import_module_like_python_m(mod_name: str, spec: str):
    """Import `mod_name` as `python -m` would see it: the current directory is searched (first) when
    sys.path does not already hold it. One-line errors say whether the module was not found or
    its own import failed (and with what)."""
    import os
    import sys

    def attempt():
        return importlib.import_module(mod_name)

    try:
        try:
            return attempt()
        except ModuleNotFoundError as exc:
            cwd = os.getcwd()
            if not _missing(exc, mod_name) or cwd in sys.path or "" in sys.path:
                raise
            sys.path.insert(0, cwd)  # the console script starts with bin/ first, not cwd
            return attempt()
    except ModuleNotFoundError as exc:
        if _missing(exc, mod_name):
            raise HarnessError(
                f"unknown solver {spec!r}: cannot import module {mod_name!r}: no module named "
                f"{exc.name!r} (searched the current directory and sys.path)"
            ) from None
        raise HarnessError(
            f"{spec!r}: importing module {mod_name!r} failed: ModuleNotFoundError: {exc}"
        ) from None
    except HarnessError:
        raise
    except BaseException as exc:  # SyntaxError, RuntimeError at import, SystemExit ...
        if isinstance(exc, KeyboardInterrupt):
            raise
        msg = " ".join(str(exc).split())
        raise HarnessError(
            f"{spec!r}: importing module {mod_name!r} failed: {type(exc).__name__}: {msg}"
        ) from None


def _as_solver(obj: Any, name: str) -> Solver:
    if isinstance(obj, Solver):
        return obj
    if isinstance(obj, type) and issubclass(obj, Solver):
        try:
            return obj()
        except TypeError as exc:
            raise HarnessError(
                f"solver {name!r}: cannot make a {obj.__name__} without arguments ({exc})"
            ) from None
    if callable(obj):
        return CallableSolver(obj, name)
    raise HarnessError(f"solver {name!r} is neither a Solver nor a callable")


def _entry_points() -> dict[str, Any]:
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # pragma: no cover - broken metadata
        return {}
    return {ep.name: ep for ep in eps}


def get_solver(spec: str | Solver | Callable) -> Solver:
    """Resolve a solver name, `module:attr` string, Solver or callable."""
    if not isinstance(spec, str):
        return _as_solver(spec, getattr(spec, "__name__", repr(spec)))
    if spec in _registered:
        return _registered[spec]
    if spec in BUILTINS:
        return _as_solver(_import(BUILTINS[spec]), spec)
    eps = _entry_points()
    if spec in eps:
        try:
            obj = eps[spec].load()
        except Exception as exc:
            raise HarnessError(f"solver {spec!r} (entry point) failed to load: {exc}") from None
        return _as_solver(obj, spec)
    if ":" in spec:
        return _as_solver(_import(spec), spec)
    known = ", ".join(sorted(set(BUILTINS) | set(_registered) | set(eps)))
    raise HarnessError(f"unknown solver {spec!r}; known solvers: {known} (or give module:attr)")


def list_solvers() -> list[Solver]:
    """Every solver that can be loaded: built-ins, registered ones, entry points."""
    out: dict[str, Solver] = {}
    for name in list(BUILTINS) + list(_registered) + list(_entry_points()):
        try:
            out[name] = get_solver(name)
        except HarnessError:
            continue
    return list(out.values())


def _signature_problem(fn: Callable) -> str | None:
    """None when fn(mapping) binds (or the signature cannot be inspected)."""
    import inspect

    try:
        inspect.signature(fn).bind(object())
    except ValueError:
        return None
    except TypeError as exc:
        return f"cannot be called as fn(tensors): {exc}"
    return None


class CallableSolver(Solver):
    """Adapts a third-party callable `f(mapping of tensors) -> mapping of gradients` to a Solver."""

    options = {}

    def __init__(self, fn: Callable, name: str):
        self.fn = fn
        self.name = name
        self.exact = bool(getattr(fn, "exact", False))
        self.cost = str(getattr(fn, "cost", "unknown"))
        self.description = (getattr(fn, "__doc__", None) or "third-party solver").strip().splitlines()[0]

    def _solve(self, inst: Instance, dtype, device, **opts) -> Result:
        t = inst.as_torch(dtype=dtype, device=device)
        t0 = time.perf_counter()
        try:
            out = self.fn(t)
        except HarnessError:
            raise
        except TypeError as exc:
            problem = _signature_problem(self.fn)
            if problem:
                from harness.errors import ContractError

                raise ContractError(f"solver {self.name!r} {problem}") from None
            raise HarnessError(f"solver {self.name!r} raised TypeError: {exc}") from None
        except Exception as exc:
            raise HarnessError(f"solver {self.name!r} raised {type(exc).__name__}: {exc}") from None
        elapsed = time.perf_counter() - t0
        from harness.errors import ContractError

        if not hasattr(out, "keys"):
            raise ContractError(
                f"solver {self.name!r} returned {type(out).__name__}; expected a mapping "
                f"with dA_m, dB_m for each adapted m"
            )
        grads = {}
        for k in gradient_names(inst):
            if k not in out:
                got = ", ".join(sorted(map(str, out.keys()))) or "nothing"
                raise ContractError(
                    f"solver {self.name!r} returned no {k!r} (returned: {got}); expected "
                    f"dA_m, dB_m for each adapted m"
                )
            g = out[k]
            g = g.detach().cpu().numpy() if isinstance(g, torch.Tensor) else np.asarray(g)
            want = inst.arrays[k[1:]].shape
            if g.shape != want:
                raise ContractError(
                    f"solver {self.name!r} returned {k} with shape {g.shape}; expected {want}"
                )
            grads[k] = g.astype(np.float64)
        loss = out.get("loss", float("nan"))
        loss = float(loss.detach().cpu()) if isinstance(loss, torch.Tensor) else float(loss)
        ops = out.get("ops")  # optional: a deterministic operation count the solver reports
        ops = int(ops.item() if isinstance(ops, torch.Tensor) else ops) if ops is not None else None
        return Result(grads, loss, self.name, ops=ops, info={"seconds": elapsed})
