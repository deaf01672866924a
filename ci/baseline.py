"""Deterministic figures compared with `ci/baseline.json` on every run (docs/ci.md: gate hard only
on deterministic figures).

Figures (name -> value, with a kind and a tolerance):
* `ops/<solver>/L=<L>`       operation count (harness.measure.opcount) on `bounded(L, d=4)`; kind eq
* `ops-exponent/<solver>`    log-log slope of those counts over L = 64..512 (approximate solvers:
                             32..256) (docs/theory.md §3.3, §4.4); abs 0.01
* `loss/<case>`              float64 loss of a fixed instance (autograd); rel 1e-9
* `error/<solver>/<case>`    max relative gradient error of an exact solver vs autograd; le 1e-10
* `certificate/<solver>/<case>`        certified error_bound of an approximate solver; rel 1e-6
* `certificate-ratio/<solver>/<case>`  actual error / certified bound; le 1
* `chain/<label>`            answer decoded from closed-form gradients of a small reduction-chain
                             instance; eq

`python -m ci update-baseline` rewrites the file; `compare` returns a readable table of the figures
that moved (figure, baseline, current, tolerance).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ci import read_section, write_section
from harness.jsonable import jsonable

BASELINE_PATH = Path(__file__).resolve().parent / "baseline.json"
OPS_L = (64, 128, 256, 512)  # exact solvers
OPS_L_APPROX = (32, 64, 128, 256)  # approximate ones (their feature counts make large L slow)
OPS_D = 4
SOLVERS = ("autograd", "closed-form", "streaming", "poly", "poly-chained", "random-features")
REL_LOSS, LE_ERROR, ABS_EXPONENT, REL_CERT = 1e-9, 1e-10, 0.01, 1e-6


def fixed_cases() -> dict:
    from harness import families

    return {
        "bounded-qv": families.bounded(L=32, d=4, r=2, gamma=1.0, seed=10),
        "bounded-qkv-N2": families.bounded(L=24, d=4, r=2, gamma=0.5, adapt=("q", "k", "v"), N=2, seed=11),
        "gaussian-cross": families.gaussian(L=6, Lk=9, d=3, r=2, N=2, adapt=("q", "k", "v"), seed=12),
    }


def _solvers(only=None) -> dict:
    from harness.solvers import get_solver

    return {name: get_solver(name) for name in SOLVERS if only is None or name in only or name == "autograd"}


def _fig(value, kind: str, tol: float = 0.0) -> dict:
    return {"value": value, "kind": kind, "tol": tol}


def solvers_in(figs: dict[str, dict]) -> set[str]:
    return {k.split("/")[1] for k in figs if k.split("/")[0] in ("ops", "error", "certificate")}


def compute(only=None) -> dict[str, dict]:
    """Every figure of this run for the solvers of SOLVERS (or only those in `only`,
    e.g. `solvers_in(load())` when checking). Single-threaded (the figures do not depend on it)."""
    from harness.measure.threads import limit_threads

    with limit_threads(1):
        return _compute(only)


def _compute(only) -> dict[str, dict]:
    from harness import families
    from harness.checks.chain import chain_cases
    from harness.errors import HarnessError
    from harness.solvers import get_solver

    figs: dict[str, dict] = {}
    solvers = _solvers(only)
    for name, s in solvers.items():
        counts = []
        sizes = OPS_L if s.exact else OPS_L_APPROX
        for L in sizes:
            try:
                res = s.solve(families.bounded(L=L, d=OPS_D, r=2, gamma=1.0, seed=L))
            except HarnessError:
                break
            if res.ops is None:
                break
            counts.append(int(res.ops))
            figs[f"ops/{name}/L={L}"] = _fig(int(res.ops), "eq")
        if len(counts) == len(sizes):
            slope = float(np.polyfit(np.log(sizes), np.log(counts), 1)[0])
            figs[f"ops-exponent/{name}"] = _fig(round(slope, 4), "abs", ABS_EXPONENT)
    ref = get_solver("autograd")
    for case, inst in fixed_cases().items():
        r = ref.solve(inst)
        figs[f"loss/{case}"] = _fig(float(r.loss), "rel", REL_LOSS)
        for name, s in solvers.items():
            if name == "autograd":
                continue
            try:
                res = s.solve(inst)
            except HarnessError:
                continue
            err = float(res.max_abs_error(r))
            if s.exact:
                figs[f"error/{name}/{case}"] = _fig(float(res.max_rel_error(r)), "le", LE_ERROR)
            bound = (res.certificate or {}).get("error_bound")
            if bound is not None and math.isfinite(float(bound)):
                figs[f"certificate/{name}/{case}"] = _fig(float(bound), "rel", REL_CERT)
                figs[f"certificate-ratio/{name}/{case}"] = _fig(
                    err / float(bound) if bound else 0.0, "le", 1.0
                )
    cf = get_solver("closed-form")
    for label, inst, decode, _expected in chain_cases():
        figs[f"chain/{label}"] = _fig(jsonable(decode(cf.solve(inst).grads, cf)), "eq")
    return figs


def load() -> dict[str, dict]:
    return read_section(BASELINE_PATH, "figures")


def write(figs: dict[str, dict]) -> None:
    write_section(
        BASELINE_PATH, "figures", "deterministic figures; rewrite with `python -m ci update-baseline`", figs
    )


def _holds(base: dict, cur) -> bool:
    kind, tol, b = base["kind"], base["tol"], base["value"]
    if kind == "eq":
        return cur == b
    if kind == "le":
        return cur <= tol
    if kind == "abs":
        return abs(cur - b) <= tol
    if kind == "rel":
        return abs(cur - b) <= tol * max(abs(b), 1e-300)
    raise ValueError(f"unknown figure kind {kind!r}")


def _tol_text(base: dict) -> str:
    return {
        "eq": "exact",
        "le": f"<= {base['tol']:.3g}",
        "abs": f"+-{base['tol']:.3g}",
        "rel": f"rel {base['tol']:.1g}",
    }[base["kind"]]


def compare(baseline: dict[str, dict], current: dict[str, dict]) -> list[tuple[str, str, str, str, str]]:
    """Rows (figure, baseline, current, tolerance, problem) for every figure that fails. A figure of
    a solver this run did not compute (see `solvers_in`) is not a failure; a new figure is listed as
    'not in baseline'."""
    rows = []
    have = {k.split("/")[1] for k in current if k.count("/") >= 1}
    for name in sorted(set(baseline) | set(current)):
        b, c = baseline.get(name), current.get(name)
        if b is None:
            rows.append((name, "-", _short(c["value"]), _tol_text(c), "not in baseline"))
        elif c is None:
            parts = name.split("/")
            if parts[0] in ("loss", "chain") or (len(parts) > 1 and parts[1] in have):
                rows.append((name, _short(b["value"]), "-", _tol_text(b), "missing"))
        elif not _holds(b, c["value"]):
            rows.append((name, _short(b["value"]), _short(c["value"]), _tol_text(b), "out of tolerance"))
    return rows


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.10g}"
    return str(v)


def format_rows(rows) -> str:
    head = ("figure", "baseline", "current", "tolerance", "problem")
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    return "\n".join("  ".join(f"{str(x):<{w[i]}}" for i, x in enumerate(r)) for r in [head] + rows)


def failures(rows) -> list:
    """Rows that fail the gate: moved or missing figures (new ones are reported, not failed)."""
    return [r for r in rows if r[4] != "not in baseline"]
