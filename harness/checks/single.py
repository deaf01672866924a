"""Instance mode (`lora-harness check inst.npz --solver S`): the max-norm error of one solver against
the float64 reference on one instance, and the tolerance it is held to."""

from __future__ import annotations

import numpy as np

from harness.checks.budgets import DEFAULT_EPS


def check_instance(
    inst,
    solver_spec,
    reference: str = "autograd",
    dtype: str = "float64",
    device: str = "cpu",
    opts: dict | None = None,
    max_memory=None,
):
    """Max-norm error of a solver against the reference on one instance: (abs, rel, result, ref).
    Both runs are checked against the memory limit before either starts."""
    from harness.memguard import MemoryLimit
    from harness.solvers import get_solver

    solver, refs = get_solver(solver_spec), get_solver(reference)
    limit = MemoryLimit.resolve(max_memory)
    refs.guard(inst, dtype="float64", device="cpu", max_memory=limit)
    res = solver.solve(inst, dtype=dtype, device=device, max_memory=limit, **(opts or {}))
    ref = refs.solve(inst, dtype="float64", device="cpu", max_memory=limit)
    for g in res.grads.values():
        if not np.all(np.isfinite(g)):
            return float("inf"), float("inf"), res, ref
    return res.max_abs_error(ref), res.max_rel_error(ref), res, ref


def instance_tolerance(
    result, dtype: str, tol: float | None = None, reference=None, claim_eps: float | None = None
) -> tuple[float, str]:
    """The tolerance of instance mode and where it comes from: `tol` (absolute) when given; else the
    suite's relative criterion claim_eps * max(1, |G_ref|_inf); else the certificate's error_bound;
    else the dtype's default eps (1e-8 / 1e-3) * max(1, |G_ref|_inf)."""
    scale = 0.0
    if reference is not None:
        scale = max((float(np.max(np.abs(g))) for g in reference.grads.values() if np.size(g)), default=0.0)
    if tol is not None:
        return float(tol), "--tol (absolute)"
    if claim_eps is not None:
        return claim_eps * max(1.0, scale), f"claimed {claim_eps:.1e} x max(1, |G_ref|_inf = {scale:.3g})"
    bound = (result.certificate or {}).get("error_bound")
    if bound is not None:
        return float(bound), "the certificate's error_bound"
    e = DEFAULT_EPS[dtype]
    return e * max(1.0, scale), f"default {e:.0e} ({dtype}) x max(1, |G_ref|_inf = {scale:.3g})"
