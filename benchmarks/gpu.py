"""One command for a GPU (issue 15, item 5): check every solver on the device against the float64
reference, then time `sdpa` (each backend), `streaming` and `poly`, forward + backward.

    python benchmarks/gpu.py                       # CUDA, L = 2^10..2^17, d = 64 (poly also d = 4)
    python benchmarks/gpu.py --device cpu --tiny   # the same code on CPU at toy sizes (fast test tier)

(a) checks: each built-in solver in float32 and float64 (sdpa: each backend in each dtype it takes,
    bfloat16 included) against `autograd` in float64 on the same device: relative max-norm error
    within 1e-8 (float64), 1e-4 (float32), 5e-2 (bfloat16) for exact solvers; approximate solvers
    pass when their error is within their certificate's error_bound, else "not verified".
(b) times at L = 2^10..2^17 (d = 64; poly at d = 64 and d = 4): device-resident tensors (poly
    through Solver.solve: its certificate and the host copies are included), one
    warm-up call, then a burst of calls between two CUDA events with no synchronisation inside the
    timed loop (the device is synchronised once before the start event and once after the end
    event); the burst is long enough to cover --min-time seconds.
(c) TFLOP/s by the FlashAttention convention: forward 4 N L^2 d, backward 2.5x the forward, so
    14 N L^2 d per gradient (for poly an attention-equivalent rate: same numerator); peak memory
    from torch.cuda.max_memory_allocated after reset_peak_memory_stats (CPU: the VmHWM reading of
    harness.measure.peak_memory), in a separate untimed call.
(d) writes OUT.md and OUT.json (default benchmarks/results/gpu), cells in the order run; cells past
    --budget-s (default 420 s, so the whole run stays under 8 minutes on one H200) or whose memory
    estimate exceeds the free device memory are recorded as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import sys
import time

import torch

# the repo root first: runs as a script from an uninstalled checkout too (the GPU machine has its own
# torch and no pip install), with the checkout's `harness` and `benchmarks` found
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._results import cpu_name, write_results  # noqa: E402
from harness import families
from harness.errors import HarnessError
from harness.measure.memory import peak_memory
from harness.solvers import get_solver
from harness.solvers.exact.sdpa import SUPPORTED, available_bytes, memory_estimate, sdpa_gradients
from harness.solvers.exact.streaming import plan, streaming_gradients
from harness.solvers.registry import BUILTINS

TOL = {torch.float64: 1e-8, torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float16: 5e-2}
DNAME = {
    torch.float64: "float64",
    torch.float32: "float32",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_burst(fn, dev: torch.device, min_time: float, max_reps: int = 50) -> dict:
    """Seconds per call of fn: a warm-up call, a one-call probe, then a burst sized to min_time.
    CUDA: events around the burst, no synchronisation inside it. CPU: perf_counter."""
    fn()
    _sync(dev)

    def burst(n: int) -> float:
        if dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(n):
                fn()
            end.record()
            torch.cuda.synchronize(dev)
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return time.perf_counter() - t0

    one = burst(1)
    reps = max(1, min(max_reps, math.ceil(min_time / max(one, 1e-9))))
    total = burst(reps) if reps > 1 else one
    return {"seconds": total / reps, "reps": reps}


def flash_flops(N: int, L: int, d: int) -> float:
    """FlashAttention convention: forward 4 N L^2 d, backward 2.5x forward."""
    return 3.5 * 4.0 * N * L * L * d


@functools.lru_cache(maxsize=2)
def _instance(L: int, d: int, seed: int = 0):
    return families.bounded(L=L, d=d, r=min(4, d), gamma=1.0, adapt=("q", "k", "v"), seed=seed)


# -------------------------------------------------------------------------------------- (a) checks
def check_all(dev: torch.device, L: int, d: int) -> list[dict]:
    inst = _instance(L, d, seed=1)
    ref = get_solver("autograd").solve(inst, dtype="float64", device=dev)
    scale = max(float(abs(g).max()) for g in ref.grads.values())
    rows = []

    def record(solver, dtype, backend, grads, cert=None, exact=True):
        import numpy as np

        err = max(float(np.max(np.abs(grads[k] - ref.grads[k]))) for k in ref.grads)
        row = {
            "solver": solver,
            "dtype": DNAME[dtype],
            "backend": backend,
            "abs_error": err,
            "rel_error": err / scale,
        }
        if exact:
            row["tolerance"] = TOL[dtype]
            row["verdict"] = "pass" if err / scale <= TOL[dtype] else "FAIL"
        else:
            cert = cert or {}
            bound = cert.get("error_bound")
            row["error_bound"] = bound
            if bound is None or cert.get("valid") is False or cert.get("warning"):
                # no bound, or one the certificate itself says holds in exact arithmetic only
                row["verdict"] = "not verified"
                row["note"] = cert.get("warning", "no error bound")
            else:
                row["verdict"] = "pass" if err <= bound else "FAIL"
        rows.append(row)
        print(json.dumps(row), flush=True)

    for name in BUILTINS:
        if name == "sdpa":
            t64 = inst.as_torch(dtype=torch.float64, device=dev)
            for backend, dtypes in SUPPORTED[dev.type].items():
                for dtype in (torch.float64, torch.float32, torch.bfloat16):
                    if dtypes is not None and dtype not in dtypes:
                        continue
                    t = {k: v.to(dtype) for k, v in t64.items()}
                    try:
                        _, g = sdpa_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, backend)
                    except RuntimeError as exc:
                        rows.append(
                            {
                                "solver": name,
                                "dtype": DNAME[dtype],
                                "backend": backend,
                                "verdict": "error",
                                "error": str(exc).splitlines()[0][:200],
                            }
                        )
                        print(json.dumps(rows[-1]), flush=True)
                        continue
                    record(name, dtype, backend, {k: v.double().cpu().numpy() for k, v in g.items()})
            continue
        solver = get_solver(name)
        for dtype in (torch.float64, torch.float32):
            try:
                res = solver.solve(inst, dtype=dtype, device=dev)
            except (HarnessError, RuntimeError) as exc:
                refused = isinstance(exc, HarnessError)
                rows.append(
                    {
                        "solver": name,
                        "dtype": DNAME[dtype],
                        "backend": None,
                        "verdict": "refused" if refused else "error",
                        "error": str(exc).strip().splitlines()[0][:200]
                        if str(exc).strip()
                        else type(exc).__name__,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
                continue
            record(name, dtype, None, res.grads, res.certificate, solver.exact)
    return rows


# -------------------------------------------------------------------------------------- (b) timing
def cells(Ls, d: int, poly_ds, dev: torch.device):
    """(label, solver, backend, dtype, L, d) in the order run: every solver at each L."""
    sdpa = [
        (b, dt)
        for b, dts in SUPPORTED[dev.type].items()
        for dt in ((torch.bfloat16,) if dts is not None and torch.float32 not in dts else (torch.float32,))
    ]
    if dev.type == "cuda":
        sdpa.append(("efficient", torch.bfloat16))
    for L in Ls:
        for b, dt in sdpa:
            yield (f"sdpa-{b}", "sdpa", b, dt, L, d)
        yield ("streaming", "streaming", None, torch.float32, L, d)
        for pd in poly_ds:
            yield (f"poly-d{pd}", "poly", None, torch.float64, L, pd)


def gradient_fn(solver: str, backend, dtype, inst, dev):
    """A zero-argument callable computing the adapter gradients on device-resident tensors, and the
    estimated bytes it needs (None: no estimate)."""
    if solver == "poly":
        return _poly_fn(inst, dtype, dev)
    t = inst.as_torch(dtype=dtype if dtype != torch.bfloat16 else torch.float32, device=dev)
    t = {k: v.to(dtype) for k, v in t.items()}
    a = (inst.alpha, inst.beta, inst.r, inst.adapted)
    if solver == "sdpa":
        need = memory_estimate(inst.N, inst.Lq, inst.Lk, inst.d, dtype, backend)
        return (lambda: sdpa_gradients(t, *a, backend)), need
    if solver == "streaming":
        bq, bk, tiled = plan(inst.Lq, inst.Lk, dtype, dev)
        itemsize = torch.empty((), dtype=dtype).element_size()
        need = 3 * bq * inst.Lk * itemsize + 16 * inst.N * inst.L * inst.d * itemsize
        return (lambda: streaming_gradients(t, *a, bq, bk, tiled)), need
    raise HarnessError(f"no timing for solver {solver!r}")


def _poly_fn(inst, dtype, dev):
    # poly through its public entry point (certificate included; its kernels are not ours to call)
    solver = get_solver("poly")
    return (lambda: solver.solve(inst, dtype=dtype, device=dev, eps=1e-6)), None


def time_all(dev: torch.device, Ls, d: int, poly_ds, min_time: float, budget_s: float, t_start: float):
    rows = []
    for label, solver, backend, dtype, L, dd in cells(Ls, d, poly_ds, dev):
        row = {"label": label, "solver": solver, "backend": backend, "dtype": DNAME[dtype], "L": L, "d": dd}
        if time.perf_counter() - t_start > budget_s:
            row["skipped"] = f"time budget ({budget_s:.0f} s) spent"
        else:
            try:
                inst = _instance(L, dd)
                fn, need = gradient_fn(solver, backend, dtype, inst, dev)
                have = available_bytes(dev)
                if need is not None and have is not None and need > 0.9 * have:
                    raise HarnessError(f"needs ~{need / 2**30:.1f} GiB, {have / 2**30:.1f} GiB free")
                mem = peak_memory(fn, dev)
                tm = time_burst(fn, dev, min_time)
                row.update(
                    seconds=tm["seconds"],
                    reps=tm["reps"],
                    peak_mib=(mem["bytes"] or 0) / 2**20,
                    mem_method=mem["method"],
                    tflops=flash_flops(inst.N, L, dd) / tm["seconds"] / 1e12,
                )
            except (HarnessError, RuntimeError) as exc:
                row["skipped"] = (
                    str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                )
        fn = None
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


# -------------------------------------------------------------------------------------- (d) report
def render(res: dict) -> str:
    lines = [
        "# Solvers on a GPU (issue 15, item 5)",
        "",
        f"Device: {res['device_name']}; torch {res['torch']}; command `{res['command']}`; "
        f"{res['wall_s']:.0f} s in all.",
        "",
        "## (a) every solver against the float64 reference on the device",
        "",
        "| solver | backend | dtype | rel. error | tolerance / bound | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["checks"]:
        tol = r.get("tolerance", r.get("error_bound"))
        err = f"{r['rel_error']:.2e}" if "rel_error" in r else r.get("error", "")
        lines.append(
            f"| {r['solver']} | {r.get('backend') or ''} | {r['dtype']} | {err} | "
            f"{'' if tol is None else f'{tol:.2g}'} | {r['verdict']} |"
        )
    lines += [
        "",
        "## (b, c) forward + backward: seconds, TFLOP/s (FlashAttention convention: "
        "14 N L^2 d per gradient), peak memory",
        "",
        "| solver | dtype | d | L | seconds | TFLOP/s | peak MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["timings"]:
        if "skipped" in r:
            lines.append(
                f"| {r['label']} | {r['dtype']} | {r['d']} | {r['L']} | skipped: {r['skipped']} | | |"
            )
        else:
            lines.append(
                f"| {r['label']} | {r['dtype']} | {r['d']} | {r['L']} | {r['seconds']:.4g} | "
                f"{r['tflops']:.3g} | {r['peak_mib']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="check and time every solver on a GPU (issue 15, item 5)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="toy sizes (L = 2^6..2^7, d = 8): the fast-tier run")
    ap.add_argument("--min-log2", type=int, default=10)
    ap.add_argument("--max-log2", type=int, default=17)
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds each timed burst covers")
    ap.add_argument("--budget-s", type=float, default=420.0)
    ap.add_argument("--out", default="benchmarks/results/gpu")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        dev = torch.device(args.device)
    except RuntimeError:
        ap.error(f"unknown device {args.device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(
            "gpu.py: error: CUDA is not available on this machine (use --device cpu --tiny)", file=sys.stderr
        )
        return 2
    if dev.type not in ("cuda", "cpu"):
        ap.error(f"device must be cuda or cpu, got {args.device!r}")
    if args.tiny:
        Ls, d, poly_ds, check_L, check_d, min_time = [64, 128], 8, (4,), 48, 4, 0.0
    else:
        Ls = [2**k for k in range(args.min_log2, args.max_log2 + 1)]
        d, poly_ds, check_L, check_d, min_time = 64, (64, 4), 512, 16, args.min_time
    checks = check_all(dev, check_L, check_d)
    timings = time_all(dev, Ls, d, poly_ds, min_time, args.budget_s, t0)
    res = {
        "device": str(dev),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name(),
        "command": "python benchmarks/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "checks": checks,
        "timings": timings,
        "wall_s": time.perf_counter() - t0,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    write_results(args.out, res, render(res))
    failed = [r for r in checks if r["verdict"] == "FAIL"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
