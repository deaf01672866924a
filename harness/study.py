"""The scaling study: a grid of independent cells, each measured and stored atomically as it finishes
(one JSON file per cell under <out>/cells/, written with `harness.io.atomic_write_text`), so a killed
run resumes without redoing finished cells, and the report is a function of the stored cells only.

Groups (docs/study.md):
* "scaling": time, memory, op count and error of each solver against L on the bounded family
  (gamma fixed, so R = O(1): the almost-linear regime of MATH.md §2.3 / §7.2). `poly` runs at a fixed
  Taylor degree (fixed rank, so its time exponent is the L-exponent of the algorithm) and as
  "poly@eps" with the target eps = 1/L (the 1/poly(L) accuracy of Problem 1, MATH.md §4.4).
* "phase": the threshold family gamma = c sqrt(log L) (MATH.md §7.2, Thm 5.1 / 4.1) on a (c, L) grid;
  per cell `theory.certify` for eps = 1/L gives the degree and rank needed, the measured error of the
  polynomial method at a fixed rank budget, and the time (measured where the rank is affordable,
  predicted op count always).
* "rank": poly against the best exact solver while the LoRA rank r varies.
* "dim": poly and the exact solver against L for several head dimensions d (crossover L* vs d).

A cell is a plain dict (its JSON is its identity, `cell_id`). `run_study(cells, out, executor=...)`
runs the missing ones through any object with `.map(fn, iterable)` (in-process by default; a
`concurrent.futures` executor works, as `run_cell` is a module-level function of picklable args).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from harness.errors import HarnessError
from harness.io import atomic_write_text

EXACT = ("closed-form", "streaming", "autograd")
REFERENCE = "closed-form"
FORMAT = "lora-harness-study/1"


# ------------------------------------------------------------------------------------------ config
@dataclass
class StudyConfig:
    """Sizes of the study grid. `default()` fits in 5 minutes on 2 CPU cores; `full()` is bigger."""

    device: str = "cpu"
    dtype: str = "float64"
    seed: int = 0
    repeats: int = 5
    warmup: int = 1
    budget_s: float = 6.0            # stop a cell's timing repeats once this many seconds are spent
    clock: str = "process"           # CPU: process CPU time (one torch thread); "wall" for wall time
    # scaling
    d: int = 4
    r: int = 2
    gamma: float = 1.0
    exact_L: dict = field(default_factory=lambda: {"closed-form": [8, 13], "autograd": [8, 13],
                                                   "streaming": [8, 15]})
    poly_L: list = field(default_factory=lambda: [8, 19])
    poly_degree: int = 5
    eps_poly_L: list = field(default_factory=lambda: [8, 16])
    chained_L: list = field(default_factory=lambda: [8, 17])   # poly-chained (fixed degree: O(L k^2 d))
    chained_degree: int = 3
    rf_L: list = field(default_factory=lambda: [8, 16])        # random-features, m features
    rf_m: int = 256
    fit_min_series: dict = field(default_factory=lambda: {"streaming": 13})
    #                                  per-series override: streaming keeps all keys in one 4096-key
    #                                  block up to L = 2^12, and its tile shape changes with L below
    #                                  (2048 -> 8192 grew only 2.7-3x per doubling)
    ref_max_log2L: int = 13          # errors are measured against the exact reference up to here
    fit_min_log2L: int = 11          # exact-solver exponents are fitted on L >= 2^this (an L x L
    #                                  float64 matrix outgrows the 32 MiB L3 cache at L = 2^11)
    poly_fit_min_log2L: int = 13     # approximate solvers: L >= 2^this (below, poly's fixed per-call
    #                                  cost, ~3 ms, is a visible part of the time)
    # phase
    phase_c: list = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0, 1.5, 2.0])
    phase_L: list = field(default_factory=lambda: [8, 12])
    phase_d: int = 4
    phase_budget_rank: int = 715     # C(4+9, 9): degree 9 at d = 4
    phase_run_rank: int = 1365       # time the needed degree only up to this rank
    # rank / dimension
    rank_r: list = field(default_factory=lambda: [1, 2, 4, 8])
    rank_d: int = 8
    rank_L: int = 12
    rank_degree: int = 3             # fixed degree in the rank group, so only r varies
    dim_d: list = field(default_factory=lambda: [2, 4, 8])
    dim_L: list = field(default_factory=lambda: [9, 12])
    dim_eps: float = 1e-3

    @classmethod
    def default(cls, device: str = "cpu") -> "StudyConfig":
        if device.startswith("cuda"):
            return cls.full(device)
        return cls()

    @classmethod
    def full(cls, device: str = "cpu") -> "StudyConfig":
        gpu = device.startswith("cuda")
        return cls(device=device, dtype="float32" if gpu else "float64", repeats=5, budget_s=20.0,
                   exact_L={"closed-form": [9, 15 if gpu else 14], "autograd": [9, 14 if gpu else 13],
                            "streaming": [9, 15 if gpu else 13]},
                   poly_L=[9, 20 if gpu else 19], eps_poly_L=[9, 18],
                   chained_L=[9, 19 if gpu else 18], rf_L=[9, 20 if gpu else 18], rf_m=1024, ref_max_log2L=15 if gpu else 14,
                   fit_min_log2L=11, poly_fit_min_log2L=13, fit_min_series={"streaming": 13}, phase_c=[0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0],
                   phase_L=[8, 14 if gpu else 13], rank_r=[1, 2, 4, 8, 16], rank_d=16, rank_L=13,
                   dim_d=[2, 4, 6, 8, 12], dim_L=[9, 14 if gpu else 13])

    @classmethod
    def tiny(cls) -> "StudyConfig":
        """Seconds-long grid for tests."""
        return cls(repeats=1, warmup=0, budget_s=1.0, d=2, r=1,
                   exact_L={"closed-form": [5, 7], "streaming": [5, 6]}, poly_L=[5, 8], poly_degree=2,
                   eps_poly_L=[5, 7], chained_L=[5, 6], chained_degree=2, rf_L=[5, 6], rf_m=16,
                   fit_min_series={}, ref_max_log2L=7, fit_min_log2L=5, poly_fit_min_log2L=5, phase_c=[0.5, 2.0],
                   phase_L=[5, 6], phase_d=2, phase_budget_rank=15, phase_run_rank=28,
                   rank_r=[1, 2], rank_d=2, rank_L=6, rank_degree=2, dim_d=[2, 3], dim_L=[5, 6])


def _pow2(lo_hi: list) -> list[int]:
    lo, hi = lo_hi
    return [2 ** k for k in range(int(lo), int(hi) + 1)]


_CODE_FILES = ("families.py", "instance.py", "losses.py", "theory", "measure/opcount.py",
               "measure/timing.py", "measure/memory.py", "measure/solver.py", "solvers")


def code_fingerprint() -> str:
    """Hash of the source that determines a cell's numbers (solvers, theory, families, measurement).
    It is part of every cell, so `--resume` never mixes results of different code: cells measured
    with other code get other ids and are run again."""
    import harness

    root = Path(harness.__file__).parent
    h = hashlib.sha256()
    for name in _CODE_FILES:
        p = root / name
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            if f.is_file():
                h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def make_grid(cfg: StudyConfig, groups: Iterable[str] = ("scaling", "phase", "rank", "dim"),
              poly: bool = True, extra: Iterable[str] = ()) -> list[dict]:
    """The list of cells for `cfg` (deterministic order). `poly=False` leaves out every cell that
    needs the polynomial solver (used when it is not installed); `extra` names the further
    approximate solvers to scale ("poly-chained", "random-features"; see `available_extras`)."""
    extra = set(extra)
    base = {"code": code_fingerprint(), "device": cfg.device, "dtype": cfg.dtype, "seed": cfg.seed,
            "repeats": cfg.repeats,
            "warmup": cfg.warmup, "budget_s": cfg.budget_s,
            "clock": "wall" if cfg.device.startswith("cuda") else cfg.clock}
    cells: list[dict] = []
    groups = set(groups)

    def add(**kw):
        c = {**base, **kw}
        c["error"] = bool(c["L"] <= 2 ** cfg.ref_max_log2L)
        cells.append(c)

    if "scaling" in groups:
        inst = {"family": "bounded", "d": cfg.d, "r": cfg.r, "gamma": cfg.gamma}
        for s, rng in cfg.exact_L.items():
            for L in _pow2(rng):
                add(group="scaling", series=s, solver=s, options={}, L=L, **inst)
        if poly:
            for L in _pow2(cfg.poly_L):
                add(group="scaling", series="poly", solver="poly", options={"degree": cfg.poly_degree},
                    L=L, **inst)
            for L in _pow2(cfg.eps_poly_L):
                add(group="scaling", series="poly@eps=1/L", solver="poly", options={"eps": 1.0 / L},
                    L=L, **inst)
        for name, rng, opts in (("poly-chained", cfg.chained_L, {"degree": cfg.chained_degree}),
                                ("random-features", cfg.rf_L, {"m": cfg.rf_m, "seed": cfg.seed})):
            if name in extra:
                for L in _pow2(rng):
                    add(group="scaling", series=name, solver=name, options=opts, L=L, **inst)
    if "phase" in groups and poly:
        for c in cfg.phase_c:
            for L in _pow2(cfg.phase_L):
                add(group="phase", series="phase", solver="poly", family="threshold", c=float(c),
                    d=cfg.phase_d, r=cfg.r, L=L, options={"eps": 1.0 / L},
                    budget_rank=cfg.phase_budget_rank, run_rank=cfg.phase_run_rank)
    if "rank" in groups:
        for r in cfg.rank_r:
            if r > cfg.rank_d:
                continue
            inst = {"family": "bounded", "d": cfg.rank_d, "r": r, "gamma": cfg.gamma, "L": 2 ** cfg.rank_L}
            add(group="rank", series=REFERENCE, solver=REFERENCE, options={}, **inst)
            if poly:
                add(group="rank", series="poly", solver="poly", options={"degree": cfg.rank_degree}, **inst)
    if "dim" in groups:
        for d in cfg.dim_d:
            for L in _pow2(cfg.dim_L):
                inst = {"family": "bounded", "d": d, "r": min(cfg.r, d), "gamma": cfg.gamma, "L": L}
                add(group="dim", series=REFERENCE, solver=REFERENCE, options={}, **inst)
                if poly:
                    add(group="dim", series="poly", solver="poly", options={"eps": cfg.dim_eps}, **inst)
    return cells


def cell_id(cell: dict) -> str:
    """Stable identity of a cell: a hash of its canonical JSON."""
    return hashlib.sha256(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:16]


def available_extras() -> tuple[str, ...]:
    """The further approximate solvers that are installed."""
    from harness.solvers import get_solver

    out = []
    for name in ("poly-chained", "random-features"):
        try:
            get_solver(name)
        except HarnessError:
            continue
        out.append(name)
    return tuple(out)


def poly_available() -> bool:
    from harness.solvers import get_solver

    try:
        get_solver("poly")
        from harness import theory  # noqa: F401
    except (HarnessError, ImportError):
        return False
    return True


# ------------------------------------------------------------------------------------------ one cell
def make_instance(cell: dict):
    from harness import families

    kw = dict(L=cell["L"], d=cell["d"], r=cell["r"], seed=cell["seed"])
    if cell["family"] == "threshold":
        return families.threshold(c=cell["c"], **kw)
    return families.bounded(gamma=cell["gamma"], **kw)


_REF_CACHE: dict[str, Any] = {}


def reference(inst, device: str = "cpu") -> Any:
    """Exact float64 gradients of the closed form (cached per instance hash, a few entries). On a GPU
    study the reference is computed there, in float64 (a CPU reference at L = 2^15 would need tens of
    GiB and minutes)."""
    from harness.solvers import get_solver

    key = inst.sha256
    if key not in _REF_CACHE:
        if len(_REF_CACHE) >= 4:
            _REF_CACHE.pop(next(iter(_REF_CACHE)))
        dev = "cuda" if str(device).startswith("cuda") else "cpu"
        _REF_CACHE[key] = get_solver(REFERENCE).solve(inst, dtype="float64", device=dev)
    return _REF_CACHE[key]


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else (None if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


def _errors(res, inst, device: str = "cpu") -> dict:
    ref = reference(inst, device)
    return {"max_abs_error": res.max_abs_error(ref), "max_rel_error": res.max_rel_error(ref)}


def _measure_cell(cell: dict, inst) -> dict:
    from harness.measure import measure_solver
    from harness.solvers import get_solver

    solver = get_solver(cell["solver"])
    m = measure_solver(solver, inst, dtype=cell["dtype"], device=cell["device"], warmup=cell["warmup"],
                       repeats=cell["repeats"], budget_s=cell["budget_s"], clock=cell["clock"],
                       **cell["options"])
    res = m.pop("result")
    if cell["solver"] == REFERENCE and cell["dtype"] == "float64" and cell["device"] == "cpu":
        _REF_CACHE.setdefault(inst.sha256, res)
    out = {"seconds": m["seconds"], "mem_bytes": m["mem_bytes"], "mem_method": m["mem_method"],
           "ops": m["ops"]}
    if res.certificate:
        c = res.certificate
        out["cert"] = {k: c.get(k) for k in ("R", "regime", "degree", "rank", "eps_rel", "error_bound", "eps")}
    if cell["error"]:
        out.update(_errors(res, inst, cell["device"]))
    return out


def _phase_cell(cell: dict, inst) -> dict:
    """Thm 5.1 / 4.1 cell: needed degree/rank for eps = 1/L, error at the fixed rank budget, time."""
    import torch

    from harness import theory
    from harness.measure import time_call
    from harness.solvers import get_solver
    from harness.solvers.base import Result, resolve_device, resolve_dtype
    from harness.solvers.poly.fused import poly_gradients

    eps = cell["options"]["eps"]
    cert = theory.certify(inst, eps=eps, max_rank=10 ** 12)
    out: dict[str, Any] = {"cert": {k: cert.get(k) for k in
                                    ("R", "R_bound", "log_L", "regime", "degree", "rank", "eps_rel",
                                     "error_bound", "eps", "meets_eps", "ops", "coefficient")}}
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

    tb = time_call(run_budget, warmup=cell["warmup"], repeats=cell["repeats"], device=dev,
                   budget_s=cell["budget_s"], clock=cell["clock"])
    grads = {k: v.cpu().double().numpy() for k, v in tb.pop("last")[0].items()}
    res = Result(grads, float("nan"), "poly-budget")
    out["budget"] = {"degree": g_b, "rank": theory.feature_rank(inst.d, g_b), "seconds": tb,
                     "eps_rel": theory.taylor_rel_error(cert["R"], g_b), **_errors(res, inst, cell["device"])}
    out["exact_ops"] = reference(inst, cell["device"]).ops
    # time at the needed degree where affordable (otherwise only the predicted op count)
    if cert["rank"] <= cell["run_rank"]:
        solver = get_solver("poly")
        tn = time_call(lambda: solver.solve(inst, dtype=cell["dtype"], device=cell["device"],
                                            degree=cert["degree"], max_rank=cell["run_rank"]),
                       warmup=cell["warmup"], repeats=cell["repeats"], device=dev, budget_s=cell["budget_s"],
                       clock=cell["clock"])
        res_n = tn.pop("last")
        out["needed"] = {"seconds": tn, "ops": res_n.ops, **_errors(res_n, inst, cell["device"])}
    else:
        out["needed"] = None
    return out


def run_cell(cell: dict) -> dict:
    """Measure one cell; returns the stored record {"id", "cell", "result", "wall_s"}."""
    t0 = time.perf_counter()
    inst = make_instance(cell)
    if cell["group"] == "phase":
        result = _phase_cell(cell, inst)
    else:
        result = _measure_cell(cell, inst)
    return {"format": FORMAT, "id": cell_id(cell), "cell": cell, "result": _jsonable(result),
            "wall_s": time.perf_counter() - t0}


def cells_dir(out: str | os.PathLike) -> Path:
    return Path(out) / "cells"


def run_and_store(out: str, cell: dict) -> dict:
    """`run_cell`, then store the record atomically under <out>/cells/<id>.json."""
    rec = run_cell(cell)
    cells_dir(out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(cells_dir(out) / f"{rec['id']}.json", json.dumps(rec, sort_keys=True))
    return rec


def load_cells(out: str | os.PathLike, cells: list[dict] | None = None) -> list[dict]:
    """Stored records, in grid order when `cells` is given (missing cells skipped), else by id."""
    d = cells_dir(out)
    if not d.is_dir():
        return []
    recs = {}
    for p in sorted(d.glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a torn file cannot exist (atomic writes), but be lenient with strays
        if rec.get("format") == FORMAT:
            recs[rec["id"]] = rec
    if cells is None:
        return [recs[k] for k in sorted(recs)]
    return [recs[cell_id(c)] for c in cells if cell_id(c) in recs]


class InProcessExecutor:
    """The default executor: runs cells one after another in this process."""

    def map(self, fn: Callable, iterable: Iterable) -> Iterable:
        return map(fn, iterable)


class Progress:
    """Plain-stderr progress bar (no dependency): one redrawn line on a terminal, else one line per cell."""

    def __init__(self, total: int, stream=None, enabled: bool = True):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, rec: dict) -> None:
        self.done += 1
        if not self.enabled:
            return
        c = rec["cell"]
        what = f"{c['group']:<7} {c['series']:<13} L={c['L']:<6} d={c['d']}" + (
            f" c={c['c']}" if "c" in c else "") + (f" r={c['r']}" if c["group"] == "rank" else "")
        n = 30
        fill = n * self.done // max(self.total, 1)
        line = (f"[{'#' * fill}{'.' * (n - fill)}] {self.done}/{self.total} "
                f"{time.perf_counter() - self.t0:6.1f}s  {what}")
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(120))
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def run_study(cells: list[dict], out: str | os.PathLike, *, executor: Any = None, resume: bool = False,
              progress: bool = True, stream=None, config: dict | None = None) -> dict:
    """Run the cells of the grid that are not stored yet under `out` (all of them unless `resume`),
    store each as it finishes, then write <out>/table.json (the grid's stored records, in grid
    order). Returns {"ran", "reused", "total", "seconds"}."""
    out = Path(out)
    d = cells_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    if not resume:
        for p in d.glob("*.json"):
            p.unlink()
    have = {r["id"] for r in load_cells(out)} if resume else set()
    todo = [c for c in cells if cell_id(c) not in have]
    ids = [cell_id(c) for c in cells]
    if len(set(ids)) != len(ids):
        raise HarnessError("study grid has duplicate cells")
    atomic_write_text(out / "grid.json", json.dumps({"format": FORMAT, "cells": cells}, sort_keys=True, indent=1))
    bar = Progress(len(cells), stream=stream, enabled=progress)
    bar.done = len(cells) - len(todo)
    t0 = time.perf_counter()
    ex = executor or InProcessExecutor()
    for rec in ex.map(partial(run_and_store, str(out)), todo):
        bar.update(rec)
    seconds = time.perf_counter() - t0
    write_table(out, cells, config)
    return {"ran": len(todo), "reused": len(cells) - len(todo), "total": len(cells), "seconds": seconds}


def write_table(out: str | os.PathLike, cells: list[dict], config: dict | None = None) -> list[dict]:
    """<out>/table.json: the stored table of measurements the report and plots read."""
    recs = load_cells(out, cells)
    missing = len(cells) - len(recs)
    if missing:
        raise HarnessError(f"{missing} of {len(cells)} study cells are not stored in {out}; rerun with --resume")
    atomic_write_text(Path(out) / "table.json", json.dumps(
        {"format": FORMAT, "config": config or {}, "records": recs}, sort_keys=True, indent=1))
    return recs


def load_table(out: str | os.PathLike) -> dict:
    """{"config", "records"} of <out>/table.json."""
    p = Path(out) / "table.json"
    if not p.is_file():
        raise HarnessError(f"no study table at {p}; run `lora-harness run --out {out}` first")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise HarnessError(f"study table {p} is not valid JSON ({exc})") from None
    if data.get("format") != FORMAT:
        raise HarnessError(f"{p} is not a study table (format {data.get('format')!r})")
    return data


def config_dict(cfg: StudyConfig) -> dict:
    return asdict(cfg)
