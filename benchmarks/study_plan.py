"""Past one machine, on paper: how bigger study grids spread over N single-threaded workers, from the
per-cell costs a measured run stored.

    python benchmarks/study_plan.py --run runs/default    # -> benchmarks/results/study_plan.md/.json

Cost model (every figure from the measured run's cells, process CPU time, one thread):
* per call: each scaling series' median time per call t(L) and extra peak memory m(L), fitted as power
  laws on its three largest measured sizes and extrapolated beyond them;
* per cell, the study's own protocol: one warm-up call (also the memory measurement), then timed
  calls until `repeats` or `budget_s` is reached (a first call longer than the budget is the only
  sample), plus the exact float64 reference when the cell measures errors (closed-form time and its
  L x L memory, 16 L^2 bytes; counted once per cell: a worker's cache is not assumed);
* phase cells: the reference, plus the polynomial method at the rank budget and, where affordable,
  at the needed degree (their measured share at the largest measured L, scaled linearly in L). Past
  L = 2^14 the closed form's L x L buffers (4 GiB) are replaced by the streaming reference (O(L d)
  memory, its fitted time).
* makespan on N workers: longest-processing-time-first list scheduling (what the Dask executor's
  priorities approximate), never below the longest cell; plus 5 s to start a local cluster.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.io import atomic_write_text  # noqa: E402
from harness.study import StudyConfig, load_table, make_grid  # noqa: E402

STARTUP_S = 5.0
GiB = 2.0**30


class PowerLaw:
    def __init__(self, L, y):
        L, y = np.asarray(L, float), np.asarray(y, float)
        ok = y > 0
        L, y = L[ok][-3:], y[ok][-3:]
        if L.size >= 2:
            self.b, self.a = np.polyfit(np.log(L), np.log(y), 1)
        else:
            self.b, self.a = 1.0, math.log(y[0] / L[0]) if L.size else 0.0
        self.L_max = float(L.max()) if L.size else 0.0

        self.y_max = float(y.max()) if y.size else 0.0

    def __call__(self, L: float) -> float:
        v = float(math.exp(self.a + self.b * math.log(L)))
        return max(v, self.y_max) if L >= self.L_max else v  # never below the largest measured


def series_models(records):
    by = defaultdict(list)
    for r in records:
        c = r["cell"]
        if c["group"] == "scaling" and "seconds" in r["result"]:
            by[c["series"]].append(
                (c["L"], r["result"]["seconds"]["median"], r["result"].get("mem_bytes") or 0)
            )
    models = {}
    for s, pts in by.items():
        pts.sort()
        models[s] = (
            PowerLaw([p[0] for p in pts], [p[1] for p in pts]),
            PowerLaw([p[0] for p in pts], [p[2] for p in pts]),
        )
    return models


def cell_cost(cell, models, phase_extra):
    """(seconds, peak bytes) of one cell under the model."""
    L = cell["L"]
    ref_t, ref_m = reference_cost(L, models)
    if cell["group"] == "phase":
        if not cell.get("error", True):
            ref_t, ref_m = 0.0, 0.0
        return ref_t + phase_extra * L, max(ref_m, 400.0 * L)
    key = cell["series"] if cell["series"] in models else cell["solver"]
    if key not in models:  # rank / dim groups: closed-form or poly at their own d (use the scaling fits)
        key = "closed-form" if cell["solver"] == "closed-form" else "poly"
    t_m, m_m = models[key]
    t = t_m(L)
    if cell.get("warmup", 1) >= 1 and t >= cell["budget_s"]:
        calls = 1
    else:
        calls = cell.get("warmup", 1) + min(
            cell["repeats"], max(1, math.ceil(cell["budget_s"] / max(t, 1e-9)))
        )
    sec = calls * t + (ref_t if cell.get("error") else 0.0)
    mem = max(m_m(L), ref_m if cell.get("error") else 0.0)
    return sec, mem


def reference_cost(L, models):
    if L <= 2**14:
        return models["closed-form"][0](L), 16.0 * L * L
    return models["streaming"][0](L), models["streaming"][1](L)


def makespan(costs, n):
    if not costs:
        return 0.0
    loads = [0.0] * n
    heapq.heapify(loads)
    for c in sorted(costs, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + c)
    return max(loads)


def phase_extra_per_L(records, models):
    """The measured phase cells' cost beyond the reference, per unit L (largest L measured)."""
    ph = [r for r in records if r["cell"]["group"] == "phase"]
    if not ph:
        return 0.0
    Lmax = max(r["cell"]["L"] for r in ph)
    top = [r for r in ph if r["cell"]["L"] == Lmax]
    extra = [max(0.0, r.get("cpu_s", r["wall_s"]) - reference_cost(Lmax, models)[0]) for r in top]
    return max(extra) / Lmax


def plan(records, grids, workers, mem_limit):
    models = series_models(records)
    px = phase_extra_per_L(records, models)
    out = {
        "models": {
            s: {"time_exponent": t.b, "time_at_2^16_s": t(2**16), "mem_exponent": m.b}
            for s, (t, m) in models.items()
        },
        "grids": {},
    }
    for name, cells in grids.items():
        costs = [cell_cost(c, models, px) for c in cells]
        too_big = [i for i, c in enumerate(costs) if c[1] > mem_limit]
        secs = [c[0] for c in costs]
        big = max(range(len(cells)), key=lambda i: secs[i])
        out["grids"][name] = {
            "cells": len(cells),
            "total_s": sum(secs),
            "longest_cell_s": secs[big],
            "longest_cell": f"{cells[big]['group']} {cells[big]['series']} L={cells[big]['L']}",
            "max_cell_mem_GiB": max(c[1] for c in costs) / GiB,
            "cells_over_memory": [f"{cells[i]['series']} L={cells[i]['L']}" for i in too_big],
            "makespan_s": {n: makespan(secs, n) + (STARTUP_S if n > 1 else 0.0) for n in workers},
        }
    # what `hour_workers` workers finish in an hour: per scaling series, the largest L whose cells
    # (this L and every smaller one of the series, full protocol) fit the hour on that many workers
    cfg = StudyConfig.full()
    reach = {}
    for s in models:
        best = None
        for k in range(8, 31):
            t, m = cell_cost(
                {
                    "group": "scaling",
                    "series": s,
                    "solver": s,
                    "L": 2**k,
                    "repeats": cfg.repeats,
                    "warmup": cfg.warmup,
                    "budget_s": cfg.budget_s,
                    "error": False,
                },
                models,
                px,
            )
            if t > 3600 or m > mem_limit or k > 24:
                break
            best = (k, t, m)
        reach[s] = None if best is None else {"log2L": best[0], "cell_s": best[1], "mem_GiB": best[2] / GiB}
    out["hour"] = reach
    out["mem_limit_GiB"] = mem_limit / GiB
    return out


def fmt_s(s):
    return f"{s / 3600:.1f} h" if s >= 5400 else (f"{s / 60:.1f} min" if s >= 120 else f"{s:.0f} s")


def markdown(p, workers, run):
    lines = [
        "# The study past one machine (model from measured cells)",
        "",
        f"From the cells of `{run}` (`python benchmarks/study_plan.py --run {run}`); one thread per "
        "worker; makespan by longest-first list scheduling.",
        "",
        "| grid | cells | total work | longest cell | peak memory of a cell | "
        + " | ".join(f"{n} workers" for n in workers)
        + " |",
        "|" + "---|" * (5 + len(workers)),
    ]
    for name, g in p["grids"].items():
        lines.append(
            f"| {name} | {g['cells']} | {fmt_s(g['total_s'])} | {fmt_s(g['longest_cell_s'])} "
            f"({g['longest_cell']}) | {g['max_cell_mem_GiB']:.1f} GiB | "
            + " | ".join(fmt_s(g["makespan_s"][n]) for n in workers)
            + " |"
        )
    for name, g in p["grids"].items():
        if g["cells_over_memory"]:
            lines.append(
                f"\n{name}: {len(g['cells_over_memory'])} cells need more than "
                f"{p['mem_limit_GiB']:.0f} GiB: {', '.join(g['cells_over_memory'][:6])}"
            )
    lines += [
        "",
        f"Largest L per series (up to 2^24) whose cell (full protocol, no error measurement) runs "
        f"within one hour on one worker with at most {p['mem_limit_GiB']:.0f} GiB: the sizes 64 workers "
        "can cover in an hour, one cell per worker:",
        "",
        "| series | time exponent (fitted) | largest L in 1 h | that cell | its memory |",
        "|---|---|---|---|---|",
    ]
    for s, r in p["hour"].items():
        if r is None:
            cols = ["-", "-", "-"]
        else:
            mem = f"{r['mem_GiB']:.1f} GiB" if r["mem_GiB"] >= 0.05 else "< 0.1 GiB"
            cols = [f"2^{r['log2L']}", fmt_s(r["cell_s"]), mem]
        lines.append(f"| {s} | {p['models'][s]['time_exponent']:.2f} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a finished study folder (its table.json)")
    ap.add_argument("--workers", default="1,2,8,16,64")
    ap.add_argument("--phase-max-log2L", type=int, default=20)
    ap.add_argument("--worker-memory-gib", type=float, default=16.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    records = load_table(args.run)["records"]
    workers = [int(x) for x in args.workers.split(",")]
    full = StudyConfig.full()
    sweep = StudyConfig.full()
    sweep.phase_L = [8, args.phase_max_log2L]
    all_err = make_grid(sweep, groups=["phase"])
    for c in all_err:  # the phase cell measures the budget error at every L (harness/study/cells.py)
        c["error"] = True
    no_err = StudyConfig.full()
    no_err.phase_L = [8, args.phase_max_log2L]
    no_err.ref_max_log2L = 14
    grids = {
        "default": make_grid(StudyConfig.default()),
        "--full": make_grid(full),
        f"phase sweep to 2^{args.phase_max_log2L}, errors at every L (as today)": all_err,
        f"phase sweep to 2^{args.phase_max_log2L}, errors up to 2^14": make_grid(no_err, groups=["phase"]),
    }
    p = plan(records, grids, workers, args.worker_memory_gib * GiB)
    out = Path(args.out)
    atomic_write_text(out / "study_plan.json", json.dumps(p, indent=1, default=str))
    md = markdown(p, workers, args.run)
    atomic_write_text(out / "study_plan.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
