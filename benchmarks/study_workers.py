"""Do two single-threaded Dask workers move the study's fitted exponents, and how much wall time do
they save? Runs the same grid in-process and on local Dask clusters of N workers, one after the
other, and writes benchmarks/results/study_workers.md / .json.

    python benchmarks/study_workers.py                      # default grid: in-process, then 2 workers
    python benchmarks/study_workers.py --workers 1,2 --groups scaling

Per run: wall time, CPU time summed over the cells, each series' time exponent with its 95% CI,
and whether it lies inside the in-process run's CI; whether the deterministic report is identical.
Wall times need a quiet machine (the lead re-measures); the exponents use process CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.io import atomic_write_text  # noqa: E402
from harness.measure.threads import limit_threads  # noqa: E402
from harness.study import (  # noqa: E402
    DaskExecutor,
    InProcessExecutor,
    StudyConfig,
    config_dict,
    load_cells,
    make_grid,
    run_study,
)
from harness.study.report import deterministic_view, write_report  # noqa: E402

GROUPS = ("scaling", "phase", "rank", "dim")


def one_run(name: str, executor, cells, cfg, out: Path) -> dict:
    t0 = time.perf_counter()
    with limit_threads(1, blas=True), executor as ex:
        info = run_study(cells, out, executor=ex, progress=False, config=config_dict(cfg))
    wall = time.perf_counter() - t0
    rep = write_report(out, plots=False)
    recs = load_cells(out, cells)
    series = {}
    for s, v in rep["scaling"]["series"].items():
        f = v["time_fit"]
        series[s] = (
            None
            if f is None
            else {"exponent": f["exponent"], "ci": f["ci"], "L": [v["fit_L_min"], v["points"][-1]["L"]]}
        )
    return {
        "name": name,
        "workers": info.get("workers", 1),
        "wall_s": wall,
        "cell_wall_s": sum(r["wall_s"] for r in recs),
        "cell_cpu_s": sum(r.get("cpu_s", 0) for r in recs),
        "series": series,
        "view": deterministic_view(rep),
        "loadavg": os.getloadavg(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="2", help="comma list of Dask worker counts (default 2)")
    ap.add_argument("--groups", default=",".join(GROUPS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--keep", default=None, help="keep the run folders under this folder")
    args = ap.parse_args(argv)
    cfg = StudyConfig.default()
    cells = make_grid(cfg, groups=args.groups.split(","))
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="study_workers_"))
    runs = [one_run("in-process", InProcessExecutor(), cells, cfg, tmp / "in-process")]
    print(f"in-process: {runs[-1]['wall_s']:.0f} s wall", flush=True)
    for n in [int(x) for x in args.workers.split(",") if x]:
        runs.append(one_run(f"dask x{n}", DaskExecutor(workers=n), cells, cfg, tmp / f"dask{n}"))
        print(f"dask x{n}: {runs[-1]['wall_s']:.0f} s wall", flush=True)
    base = runs[0]
    lines = [
        "# The study on 1 and N single-threaded workers",
        "",
        f"`python benchmarks/study_workers.py --workers {args.workers} --groups {args.groups}`; "
        f"{len(cells)} cells, run one after the other on this machine (load averages in the JSON).",
        "",
        "| run | wall s | cell CPU s | wall vs in-process | same deterministic report |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['name']} | {r['wall_s']:.0f} | {r['cell_cpu_s']:.0f} | "
            f"{r['wall_s'] / base['wall_s']:.2f} | {'yes' if r['view'] == base['view'] else 'NO'} |"
        )
    lines += [
        "",
        "Time exponents (process CPU time) [95% CI]; `in` = inside the in-process run's CI.",
        "",
        "| series | " + " | ".join(r["name"] for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for s in base["series"]:
        row = []
        for r in runs:
            f, b = r["series"].get(s), base["series"].get(s)
            if f is None:
                row.append("-")
                continue
            inside = b is not None and b["ci"][0] <= f["exponent"] <= b["ci"][1]
            tag = "" if r is base else (" in" if inside else " **out**")
            row.append(f"{f['exponent']:.2f} [{f['ci'][0]:.2f}, {f['ci'][1]:.2f}]{tag}")
        lines.append(f"| {s} | " + " | ".join(row) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "study_workers.md", "\n".join(lines) + "\n")
    atomic_write_text(
        out / "study_workers.json",
        json.dumps([{k: v for k, v in r.items() if k != "view"} for r in runs], indent=1),
    )
    print("\n".join(lines))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
