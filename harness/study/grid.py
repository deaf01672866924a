"""The grid: the list of cells of a `StudyConfig`, each a plain dict whose canonical JSON is its
identity (`cell_id`), stamped with the fingerprint of the code that determines its numbers."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from harness.errors import HarnessError
from harness.study.config import EXTRAS, REFERENCE, StudyConfig, pow2

_CODE_FILES = (
    "families.py",
    "instance.py",
    "losses.py",
    "theory",
    "measure/opcount.py",
    "measure/timing.py",
    "measure/memory.py",
    "measure/solver.py",
    "solvers",
)


def code_fingerprint(module: str | None = None) -> str:
    """Hash of the source that determines a cell's numbers (solvers, theory, families, measurement),
    and of a third-party solver's module file when `module` is given. It is part of every cell, so
    `--resume` never mixes results of different code (cells measured with other code get other ids
    and are run again), and a worker running other code refuses the cell (`cells.run_cell_task`)."""
    import harness

    root = Path(harness.__file__).parent
    h = hashlib.sha256()
    for name in _CODE_FILES:
        p = root / name
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            if f.is_file():
                h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    if module:
        h.update(b"module\0" + module.encode() + b"\0" + _module_source(module))
    return h.hexdigest()[:12]


def _module_source(module: str) -> bytes:
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    origin = getattr(spec, "origin", None)
    if not origin or not os.path.isfile(origin):
        return b"?"
    return Path(origin).read_bytes()


def parse_solver_spec(spec: str, kind: str = "solver") -> dict:
    """A user's `--solver SPEC` / `--attention MODULE:FN` as the cell fields naming it: the spec (also
    the series label), its kind ("solver" or "attention") and its module (fingerprinted). Resolving
    it here gives the one-line error before any cell runs."""
    from harness.study.thirdparty import resolve_solver

    if kind == "attention" and ":" not in spec:
        raise HarnessError(f"--attention {spec!r}: expected MODULE:FN")
    resolve_solver({"solver": spec, "kind": kind})
    return {"solver": spec, "kind": kind, "solver_module": spec.split(":", 1)[0] if ":" in spec else None}


def make_grid(
    cfg: StudyConfig,
    groups: Iterable[str] = ("scaling", "phase", "rank", "dim"),
    poly: bool = True,
    extra: Iterable[str] = EXTRAS,
    user: Iterable[dict] = (),
    builtin: bool = True,
) -> list[dict]:
    """The list of cells for `cfg` (deterministic order). `poly=False` leaves out every cell that
    needs the polynomial solver (an exact-solvers-only study); `extra` names the further approximate
    solvers to scale (default both of `EXTRAS`: "poly-chained", "random-features"); `user` are
    third-party solvers (`parse_solver_spec`), scaled over `cfg.user_L` in the scaling group.
    `builtin=False` (a user's own study) keeps only the user series and the exact baseline
    `cfg.baseline` over the same sizes (up to 2^baseline_max_log2L)."""
    extra = set(extra)
    base = {
        "code": code_fingerprint(),
        "device": cfg.device,
        "dtype": cfg.dtype,
        "seed": cfg.seed,
        "repeats": cfg.repeats,
        "warmup": cfg.warmup,
        "budget_s": cfg.budget_s,
        "clock": "wall" if cfg.device.startswith("cuda") else cfg.clock,
    }
    cells: list[dict] = []
    groups = set(groups)

    def add(**kw):
        c = {**base, **kw}
        c["error"] = bool(c["L"] <= 2**cfg.ref_max_log2L)
        cells.append(c)

    inst = {"family": "bounded", "d": cfg.d, "r": cfg.r, "gamma": cfg.gamma}
    for u in user:
        for L in pow2(cfg.user_L):
            add(
                group="scaling",
                series=u["solver"],
                options={},
                L=L,
                **inst,
                **{**u, "code": code_fingerprint(u.get("solver_module"))},
            )
    if not builtin:
        lo, hi = cfg.user_L
        for L in pow2([lo, min(hi, cfg.baseline_max_log2L)]):
            add(group="scaling", series=cfg.baseline, solver=cfg.baseline, options={}, L=L, **inst)
        return cells
    if "scaling" in groups:
        for s, rng in cfg.exact_L.items():
            for L in pow2(rng):
                add(group="scaling", series=s, solver=s, options={}, L=L, **inst)
        if poly:
            for L in pow2(cfg.poly_L):
                add(
                    group="scaling",
                    series="poly",
                    solver="poly",
                    options={"degree": cfg.poly_degree},
                    L=L,
                    **inst,
                )
            for L in pow2(cfg.eps_poly_L):
                add(
                    group="scaling",
                    series="poly@eps=1/L",
                    solver="poly",
                    options={"eps": 1.0 / L},
                    L=L,
                    **inst,
                )
        for name, rng, opts in (
            ("poly-chained", cfg.chained_L, {"degree": cfg.chained_degree}),
            ("random-features", cfg.rf_L, {"m": cfg.rf_m, "seed": cfg.seed}),
        ):
            if name in extra:
                for L in pow2(rng):
                    add(group="scaling", series=name, solver=name, options=opts, L=L, **inst)
    if "phase" in groups and poly:
        for c in cfg.phase_c:
            for L in pow2(cfg.phase_L):
                add(
                    group="phase",
                    series="phase",
                    solver="poly",
                    family="threshold",
                    c=float(c),
                    d=cfg.phase_d,
                    r=cfg.r,
                    L=L,
                    options={"eps": 1.0 / L},
                    budget_rank=cfg.phase_budget_rank,
                    run_rank=cfg.phase_run_rank,
                )
    if "rank" in groups:
        for r in cfg.rank_r:
            if r > cfg.rank_d:
                continue
            inst = {"family": "bounded", "d": cfg.rank_d, "r": r, "gamma": cfg.gamma, "L": 2**cfg.rank_L}
            add(group="rank", series=REFERENCE, solver=REFERENCE, options={}, **inst)
            if poly:
                add(group="rank", series="poly", solver="poly", options={"degree": cfg.rank_degree}, **inst)
    if "dim" in groups:
        for d in cfg.dim_d:
            for L in pow2(cfg.dim_L):
                inst = {"family": "bounded", "d": d, "r": min(cfg.r, d), "gamma": cfg.gamma, "L": L}
                add(group="dim", series=REFERENCE, solver=REFERENCE, options={}, **inst)
                if poly:
                    add(group="dim", series="poly", solver="poly", options={"eps": cfg.dim_eps}, **inst)
    return cells


def cell_id(cell: dict) -> str:
    """Stable identity of a cell: a hash of its canonical JSON."""
    return hashlib.sha256(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:16]


def describe_cell(cell: dict) -> str:
    """A short human name of a cell, for progress lines and error messages."""
    what = f"{cell['group']} {cell['series']} L={cell['L']} d={cell['d']}"
    if "c" in cell:
        what += f" c={cell['c']}"
    if cell["group"] == "rank":
        what += f" r={cell['r']}"
    return what
