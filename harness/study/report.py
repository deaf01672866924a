"""The study report: analysis of the stored table (<out>/table.json, nothing else) into
<out>/report.json and <out>/report.md (Markdown embedding the figures of `harness.plots`).

Fits (harness.measure.fit): time exponents on the median timings of L >= 2^fit_min_log2L with their timing
repeats in the bootstrap; the same fit on the deterministic op counts; crossover L* of poly against
the best exact solver (per L the fastest exact median), and per head dimension d in the "dim" group.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.jsonable import STRINGS, jsonable
from harness.measure.fit import crossover, fit_power, fit_segmented
from harness.study.config import EXACT
from harness.study.markdown import DEFAULT_FIT_MIN, markdown, summary_table
from harness.study.store import load_table

__all__ = ["analyse", "deterministic_view", "load_report", "summary_table", "write_report"]

_DET_KEYS = ("ops", "max_abs_error", "max_rel_error")


def _num(v: Any) -> float:
    if v is None:
        return math.nan
    if v == "inf":
        return math.inf
    return float(v)


def _series(records: list[dict], group: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        if rec["cell"]["group"] == group:
            out[rec["cell"]["series"]].append(rec)
    for v in out.values():
        v.sort(key=lambda r: r["cell"]["L"])
    return dict(out)


def _fit_or_none(x, y, samples=None, seed=0) -> dict | None:
    pts = [(a, b, s) for a, b, s in zip(x, y, samples or [None] * len(x)) if b is not None and b > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    xs, ys, ss = zip(*pts)
    return fit_power(xs, ys, samples=list(ss) if samples else None, seed=seed)


def analyse_scaling(
    records: list[dict], fit_min: int, approx_fit_min: int | None = None, per_series: dict | None = None
) -> dict:
    """Per series: points, time fit, op-count fit, segmented fit; crossover of poly vs best exact."""
    out: dict[str, Any] = {}
    for name, recs in _series(records, "scaling").items():
        pts = []
        for r in recs:
            res = r["result"]
            pts.append(
                {
                    "L": r["cell"]["L"],
                    "median": res["seconds"]["median"],
                    "min": res["seconds"]["min"],
                    "max": res["seconds"]["max"],
                    "times": res["seconds"]["times"],
                    "ops": res["ops"],
                    "mem_bytes": res["mem_bytes"],
                    "max_abs_error": res.get("max_abs_error"),
                    "max_rel_error": res.get("max_rel_error"),
                    "degree": (res.get("cert") or {}).get("degree"),
                    "rank": (res.get("cert") or {}).get("rank"),
                    "error_bound": (res.get("cert") or {}).get("error_bound"),
                    "eps": (res.get("cert") or {}).get("eps"),
                }
            )
        lo = fit_min if name in EXACT or approx_fit_min is None else approx_fit_min
        lo = int((per_series or {}).get(name, lo))
        big = [p for p in pts if p["L"] >= 2**lo] or pts
        user = recs[0]["cell"].get("kind")  # a --solver / --attention series: its own sizes, fitted
        if user and len(big) < 3:  # on those >= 2^lo but on its 3 largest at least
            big = pts[-3:]
        L = [p["L"] for p in big]
        errs = [_num(p["max_abs_error"]) for p in pts if p["max_abs_error"] is not None]
        out[name] = {
            "exact": name in EXACT,
            "points": pts,
            "fit_L_min": min(L),
            "kind": user or "builtin",
            "time_fit": _fit_or_none(L, [p["median"] for p in big], [p["times"] for p in big]),
            "ops_fit": _fit_or_none(L, [p["ops"] for p in big]),
            "segmented": fit_segmented([p["L"] for p in pts], [p["median"] for p in pts])
            if len(pts) >= 2
            else None,
            "max_abs_error": max(errs) if errs else None,
            "max_rel_error": max(
                (_num(p["max_rel_error"]) for p in pts if p["max_rel_error"] is not None), default=None
            ),
        }
    best: dict[int, tuple[float, str, list]] = {}
    for name, s in out.items():
        if s["exact"]:
            for p in s["points"]:
                if p["L"] not in best or p["median"] < best[p["L"]][0]:
                    best[p["L"]] = (p["median"], name, p["times"])
    cross = {}
    for name, s in out.items():
        if s["exact"] or not best:
            continue
        common = [p for p in s["points"] if p["L"] in best]
        if len(common) < 2:
            continue
        x = [p["L"] for p in common]
        c = crossover(
            x,
            [p["median"] for p in common],
            [best[L][0] for L in x],
            samples_a=[p["times"] for p in common],
            samples_b=[best[L][2] for L in x],
        )
        c["against"] = {L: best[L][1] for L in x}
        c["speedup_at_max_L"] = best[x[-1]][0] / common[-1]["median"]
        cross[name] = c
    return {"series": out, "crossover_vs_best_exact": cross}


def analyse_phase(records: list[dict]) -> dict:
    cells = []
    for r in records:
        if r["cell"]["group"] != "phase":
            continue
        res, c = r["result"], r["cell"]
        cert, bud, need = res["cert"], res["budget"], res.get("needed")
        cells.append(
            {
                "c": c["c"],
                "L": c["L"],
                "d": c["d"],
                "gamma": res["gamma"],
                "R": cert["R"],
                "log_L": cert["log_L"],
                "regime": cert["regime"],
                "eps": cert["eps"],
                "degree": cert["degree"],
                "rank": cert["rank"],
                "error_bound": cert["error_bound"],
                "ops_needed": cert["ops"],
                "exact_ops": res["exact_ops"],
                "ops_ratio": cert["ops"] / res["exact_ops"],
                "budget_rank": bud["rank"],
                "budget_degree": bud["degree"],
                "budget_max_abs_error": bud["max_abs_error"],
                "budget_max_rel_error": bud["max_rel_error"],
                "budget_seconds": bud["seconds"]["median"],
                "needed_seconds": need["seconds"]["median"] if need else None,
                "needed_max_abs_error": need["max_abs_error"] if need else None,
            }
        )
    cells.sort(key=lambda p: (p["c"], p["L"]))
    # rank growth exponent per c: log rank against log L (L^o(1) below the threshold)
    growth = {}
    for cval in sorted({p["c"] for p in cells}):
        row = [p for p in cells if p["c"] == cval]
        f = _fit_or_none([p["L"] for p in row], [p["rank"] for p in row])
        growth[str(cval)] = (
            None
            if f is None
            else {
                "rank_exponent": f["exponent"],
                "ci": f["ci"],
                "regimes": sorted({p["regime"] for p in row}),
            }
        )
    return {"cells": cells, "rank_growth": growth}


def analyse_rank_dim(records: list[dict]) -> dict:
    rank = defaultdict(dict)
    dim = defaultdict(lambda: defaultdict(dict))
    for r in records:
        c, res = r["cell"], r["result"]
        if c["group"] == "rank":
            rank[c["r"]][c["series"]] = res
        elif c["group"] == "dim":
            dim[c["d"]][c["series"]][c["L"]] = res
    rank_rows = []
    for rv in sorted(rank):
        e, p = rank[rv].get("closed-form"), rank[rv].get("poly")
        if e and p:
            rank_rows.append(
                {
                    "r": rv,
                    "exact_seconds": e["seconds"]["median"],
                    "poly_seconds": p["seconds"]["median"],
                    "speedup": e["seconds"]["median"] / p["seconds"]["median"],
                    "ops_speedup": e["ops"] / p["ops"],
                    "poly_rank": p["cert"]["rank"],
                    "poly_degree": p["cert"]["degree"],
                    "poly_max_abs_error": p.get("max_abs_error"),
                }
            )
    dim_rows = []
    for dv in sorted(dim):
        e, p = dim[dv].get("closed-form", {}), dim[dv].get("poly", {})
        Ls = sorted(set(e) & set(p))
        if len(Ls) < 2:
            continue
        te = [e[L]["seconds"]["median"] for L in Ls]
        tp = [p[L]["seconds"]["median"] for L in Ls]
        c = crossover(
            Ls,
            tp,
            te,
            samples_a=[p[L]["seconds"]["times"] for L in Ls],
            samples_b=[e[L]["seconds"]["times"] for L in Ls],
        )
        co = crossover(Ls, [p[L]["ops"] for L in Ls], [e[L]["ops"] for L in Ls])
        dim_rows.append(
            {
                "d": dv,
                "L": Ls,
                "exact_seconds": te,
                "poly_seconds": tp,
                "poly_rank": p[Ls[-1]]["cert"]["rank"],
                "poly_degree": p[Ls[-1]]["cert"]["degree"],
                "speedup_at_max_L": te[-1] / tp[-1],
                "ops_speedup_at_max_L": e[Ls[-1]]["ops"] / p[Ls[-1]]["ops"],
                "crossover": c,
                "ops_crossover": co,
            }
        )
    return {"rank": rank_rows, "dim": dim_rows}


def analyse(table: dict) -> dict:
    """The whole report dict from the stored table."""
    records = table["records"]
    cfg = table.get("config") or {}
    fit_min = int(cfg.get("fit_min_log2L", DEFAULT_FIT_MIN))
    rep = {
        "config": cfg,
        "n_cells": len(records),
        "cell_seconds": sum(r["wall_s"] for r in records),
        "scaling": analyse_scaling(
            records, fit_min, cfg.get("poly_fit_min_log2L"), cfg.get("fit_min_series")
        ),
        "phase": analyse_phase(records),
        **analyse_rank_dim(records),
    }
    rep["summary"] = summary_rows(rep)
    return rep


def summary_rows(rep: dict) -> list[dict]:
    rows = []
    cross = rep["scaling"]["crossover_vs_best_exact"]
    for name, s in rep["scaling"]["series"].items():
        tf, of = s["time_fit"], s["ops_fit"]
        c = cross.get(name)
        rows.append(
            {
                "solver": name,
                "L_fit": [s["fit_L_min"], s["points"][-1]["L"]],
                "exponent": tf["exponent"] if tf else None,
                "ci": tf["ci"] if tf else None,
                "ops_exponent": of["exponent"] if of else None,
                "max_abs_error": s["max_abs_error"],
                "crossover": None
                if c is None
                else {k: c[k] for k in ("x_star", "ci", "observed", "extrapolated")},
            }
        )
    return rows


def write_report(out: str | Path, *, plots: bool = True) -> dict:
    """Analyse <out>/table.json, draw the figures (PNG + SVG), write report.json and report.md."""
    out = Path(out)
    rep = analyse(load_table(out))
    figures = {}
    if plots:
        from harness.study.plots import draw_all

        figures = draw_all(rep, out)
    rep["figures"] = figures
    atomic_write_text(
        out / "report.json", json.dumps(jsonable(rep, nonfinite=STRINGS), sort_keys=True, indent=1)
    )
    atomic_write_text(out / "report.md", markdown(rep, figures))
    return rep


def deterministic_view(rep: dict) -> dict:
    """The parts of a report that do not depend on timing (resume-determinism checks)."""
    sc = {
        n: {
            "points": [
                {
                    k: p[k]
                    for k in ("L", "ops", "max_abs_error", "max_rel_error", "degree", "rank", "error_bound")
                }
                for p in s["points"]
            ],
            "ops_fit": s["ops_fit"],
        }
        for n, s in rep["scaling"]["series"].items()
    }
    ph = [{k: v for k, v in p.items() if not k.endswith("seconds")} for p in rep["phase"]["cells"]]
    rk = [{k: v for k, v in x.items() if "seconds" not in k and k != "speedup"} for x in rep["rank"]]
    dm = [{"d": x["d"], "poly_rank": x["poly_rank"], "ops_crossover": x["ops_crossover"]} for x in rep["dim"]]
    return jsonable({"scaling": sc, "phase": ph, "rank": rk, "dim": dm}, nonfinite=STRINGS)


def load_report(out: str | Path) -> dict:
    p = Path(out) / "report.json"
    if not p.is_file():
        raise HarnessError(f"no report at {p}")
    return json.loads(p.read_text())
