"""One cell of the grid, measured: time, peak memory, op count and error of a solver on one instance
("scaling", "rank", "dim" groups), or the phase-transition facts of one (c, L) point ("phase")."""

from __future__ import annotations

import time
from typing import Any

from harness.errors import HarnessError
from harness.jsonable import NULL_NAN, jsonable
from harness.study.config import FORMAT, REFERENCE
from harness.study.grid import cell_id, code_fingerprint, describe_cell
from harness.study.records import seal
from harness.study.thirdparty import resolve_solver


def make_instance(cell: dict):
    from harness import families

    kw = dict(
        L=cell["L"], d=cell["d"], r=cell["r"], seed=cell["seed"], causal=bool(cell.get("causal", False))
    )
    if cell["family"] == "threshold":
        return families.threshold(c=cell["c"], **kw)
    return families.bounded(gamma=cell["gamma"], **kw)


def reference_cache(device: str = "cpu", maxsize: int = 4):
    """The study's reference: exact float64 gradients of the closed form, a few instances kept. On a GPU
    study the reference is computed there, in float64 (a CPU reference at L = 2^15 would need tens of
    GiB and minutes). One cache per run, passed to `run_cell`."""
    from harness.solvers.reference import ReferenceCache

    dev = "cuda" if str(device).startswith("cuda") else "cpu"
    return ReferenceCache(REFERENCE, dtype="float64", device=dev, maxsize=maxsize)


def _errors(res, inst, refs) -> dict:
    ref = refs(inst)
    return {"max_abs_error": res.max_abs_error(ref), "max_rel_error": res.max_rel_error(ref)}


def _measure_cell(cell: dict, inst, refs) -> dict:
    from harness.measure import measure_solver

    solver = resolve_solver(cell)
    m = measure_solver(
        solver,
        inst,
        dtype=cell["dtype"],
        device=cell["device"],
        warmup=cell["warmup"],
        repeats=cell["repeats"],
        budget_s=cell["budget_s"],
        clock=cell["clock"],
        **cell["options"],
    )
    res = m.pop("result")
    if cell["solver"] == REFERENCE and cell["dtype"] == "float64" and cell["device"] == "cpu":
        refs.add(inst, res)
    out = {
        "seconds": m["seconds"],
        "mem_bytes": m["mem_bytes"],
        "mem_method": m["mem_method"],
        "ops": m["ops"],
    }
    if res.certificate:
        c = res.certificate
        out["cert"] = {
            k: c.get(k)
            for k in (
                "R",
                "R_exact",
                "regime",
                "regime_R",
                "degree",
                "rank",
                "eps_rel",
                "error_bound",
                "eps",
                "meets_eps",
                "valid",
                "cost_ratio",
                "dtype",
            )
        }
    if cell["error"]:
        out.update(_errors(res, inst, refs))
    return out


def _phase_cell(cell: dict, inst, refs) -> dict:
    """Thm 5.1 / 4.1 cell: needed degree/rank for eps = 1/L, error at the fixed rank budget, time."""
    import torch

    from harness import theory
    from harness.measure import time_call
    from harness.solvers import get_solver
    from harness.solvers._common import to_numpy
    from harness.solvers.base import Result, resolve_device, resolve_dtype
    from harness.solvers.poly.fused import poly_gradients

    eps = cell["options"]["eps"]
    cert = theory.certify(inst, eps=eps, max_rank=10**12)
    out: dict[str, Any] = {
        "cert": {
            k: cert.get(k)
            for k in (
                "R",
                "R_bound",
                "R_exact",
                "log_L",
                "regime",
                "regime_R",
                "regime_reason",
                "degree",
                "rank",
                "eps_rel",
                "error_bound",
                "error_bound_estimate",
                "eps",
                "meets_eps",
                "ops",
                "exact_ops",
                "cost_ratio",
                "coefficient",
            )
        }
    }
    out["gamma"] = cert["gammas"]["gamma"]
    # error of the polynomial method at the largest degree whose rank fits the budget (no refusal:
    # the kernel is used as is, so above the threshold the error shows what the budget buys)
    g_b = 1
    while theory.feature_rank(inst.d, g_b + 1) <= cell["budget_rank"]:
        g_b += 1
    dt, dev = resolve_dtype(cell["dtype"]), resolve_device(cell["device"])
    t = inst.as_torch(dtype=dt, device=dev)

    def run_budget():
        with torch.no_grad():
            return poly_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g_b)

    tb = time_call(
        run_budget,
        warmup=cell["warmup"],
        repeats=cell["repeats"],
        device=dev,
        budget_s=cell["budget_s"],
        clock=cell["clock"],
    )
    grads = to_numpy(tb.pop("last")[0])
    res = Result(grads, float("nan"), "poly-budget")
    out["budget"] = {
        "degree": g_b,
        "rank": theory.feature_rank(inst.d, g_b),
        "seconds": tb,
        "eps_rel": theory.taylor_rel_error(cert["R"], g_b),
        **_errors(res, inst, refs),
    }
    out["exact_ops"] = refs(inst).ops
    # time at the needed degree where affordable (otherwise only the predicted op count)
    if cert["rank"] <= cell["run_rank"]:
        solver = get_solver("poly")
        tn = time_call(
            lambda: solver.solve(
                inst,
                dtype=cell["dtype"],
                device=cell["device"],
                degree=cert["degree"],
                max_rank=cell["run_rank"],
            ),
            warmup=cell["warmup"],
            repeats=cell["repeats"],
            device=dev,
            budget_s=cell["budget_s"],
            clock=cell["clock"],
        )
        res_n = tn.pop("last")
        out["needed"] = {"seconds": tn, "ops": res_n.ops, **_errors(res_n, inst, refs)}
    else:
        out["needed"] = None
    return out


def run_cell(cell: dict, refs=None) -> dict:
    """Measure one cell; returns the sealed record {"format", "id", "cell", "result", "wall_s",
    "cpu_s", "sha256"} (`records.seal`: the checksum is set where the cell was computed). `refs`: the
    `reference_cache` of the process running the cells (a fresh one when None)."""
    t0, c0 = time.perf_counter(), time.process_time()
    inst = make_instance(cell)
    refs = refs if refs is not None else reference_cache(cell["device"])
    if cell["group"] == "phase":
        result = _phase_cell(cell, inst, refs)
    else:
        result = _measure_cell(cell, inst, refs)
    return seal(
        {
            "format": FORMAT,
            "id": cell_id(cell),
            "cell": cell,
            "result": jsonable(result, nonfinite=NULL_NAN),
            "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
        }
    )


def run_cell_task(cell: dict, refs=None, threads: int | None = 1) -> dict:
    """`run_cell` as a task on any executor (module-level, so it travels to Dask workers): torch and
    BLAS pinned to `threads` for the cell (honest one-core timings in a worker process), the harness
    code checked against the cell's fingerprint (a worker running other code must not measure under
    this code's name), and every failure turned into one HarnessError line naming the cell and host.
    `refs`: the executor's reference cache for the process the cell runs in."""
    from harness.measure.threads import limit_threads

    try:
        code = code_fingerprint(cell.get("solver_module"))
        if code != cell["code"]:
            raise HarnessError(f"this worker runs other code (fingerprint {code}, the grid's {cell['code']})")
        with limit_threads(threads, blas=True):
            return run_cell(cell, refs)
    except Exception as exc:  # noqa: BLE001 - the message must name the cell, whatever failed
        import socket

        msg = str(exc).splitlines()[0] if str(exc) else ""
        kind = "" if isinstance(exc, HarnessError) else f"{type(exc).__name__}: "
        raise HarnessError(
            f"cell {cell_id(cell)} ({describe_cell(cell)}) failed on {socket.gethostname()}: {kind}{msg}"
        ) from None
