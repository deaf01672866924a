"""Speedup of every solver from 1 to 2 torch threads (issue 15, item 4), measured side by side.

    python benchmarks/threads.py [--threads 1,2] [--repeats 5] [--out benchmarks/results/threads]

Each solver runs on its own instance (bounded family, adapters q,k,v, float64; sizes in CASES), a
warm-up call at each thread count, then `repeats` rounds, each timing the solver once per thread
count (interleaved, wall clock: threads are only visible in wall time). The speedup is the median
over rounds of t(1 thread) / t(n threads). On a machine shared with other work, a speedup below the
thread count is partly the other work: re-run on a quiet machine for the recorded figures.
Writes OUT.json and OUT.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

try:  # imported as benchmarks.X (tests) or run as a script from benchmarks/
    from benchmarks._results import cpu_name, write_results
except ImportError:  # pragma: no cover
    from _results import cpu_name, write_results
from harness import families
from harness.errors import HarnessError
from harness.solvers import get_solver

# solver: (L, d, options)
CASES = {
    "autograd": (2048, 16, {}),
    "closed-form": (4096, 16, {}),
    "streaming": (4096, 16, {}),
    "sdpa": (4096, 16, {}),
    "poly": (16384, 4, {"eps": 1e-6}),
    "poly-chained": (4096, 2, {"eps": 1e-3}),
    "random-features": (16384, 4, {"m": 256, "seed": 0}),
}


def measure(name: str, threads: list[int], repeats: int) -> dict:
    L, d, opts = CASES[name]
    solver = get_solver(name)
    inst = families.bounded(L=L, d=d, r=min(2, d), gamma=1.0, adapt=("q", "k", "v"), seed=0)
    row = {"solver": name, "L": L, "d": d, "options": opts, "times": {n: [] for n in threads}}
    try:
        for n in threads:
            torch.set_num_threads(n)
            solver.solve(inst, **opts)
        for _ in range(repeats):
            for n in threads:
                torch.set_num_threads(n)
                t0 = time.perf_counter()
                solver.solve(inst, **opts)
                row["times"][n].append(time.perf_counter() - t0)
    except HarnessError as exc:
        return {**row, "skipped": str(exc)}
    base = threads[0]
    row["median_s"] = {n: statistics.median(ts) for n, ts in row["times"].items()}
    row["speedup"] = {
        n: statistics.median(a / b for a, b in zip(row["times"][base], row["times"][n])) for n in threads
    }
    return row


def render(res: dict) -> str:
    ths = res["threads"]
    lines = [
        "# Thread speedup of each solver (issue 15, item 4)",
        "",
        f"Machine: {res['cpu']}, {res['cores']} cores, torch {res['torch']}; {res['repeats']} interleaved "
        f"rounds, wall clock, medians. Command: `{res['command']}`",
        "",
        "| solver | L | d | "
        + " | ".join(f"{n} thr (s)" for n in ths)
        + " | "
        + " | ".join(f"speedup {ths[0]}->{n}" for n in ths[1:])
        + " |",
        "|---|---|---|" + "---|" * (2 * len(ths) - 1),
    ]
    for r in res["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['solver']} | {r['L']} | {r['d']} | skipped: {r['skipped']} |")
            continue
        lines.append(
            f"| {r['solver']} | {r['L']} | {r['d']} | "
            + " | ".join(f"{r['median_s'][n]:.3f}" for n in ths)
            + " | "
            + " | ".join(f"{r['speedup'][n]:.2f}x" for n in ths[1:])
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--solvers", default=",".join(CASES))
    ap.add_argument("--out", default="benchmarks/results/threads")
    args = ap.parse_args(argv)
    threads = [int(x) for x in args.threads.split(",")]
    names = [s for s in args.solvers.split(",") if s]
    bad = [s for s in names if s not in CASES]
    if bad:
        ap.error(f"no benchmark case for solver {bad[0]!r}; choose from {', '.join(CASES)}")
    before = torch.get_num_threads()
    try:
        rows = []
        for name in names:
            rows.append(measure(name, threads, args.repeats))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "times"}), flush=True)
    finally:
        torch.set_num_threads(before)
    cpu = cpu_name()
    res = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": threads,
        "repeats": args.repeats,
        "rows": rows,
        "command": "python benchmarks/threads.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    write_results(args.out, res, render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
