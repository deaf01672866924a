"""Benchmark of the three exact solvers: time and peak memory at
L = 2^10..2^15, d = 16, float64 and float32. Each cell runs in a fresh child process so peak RSS is
the cell's own; cells predicted not to fit in memory are skipped and say so.

    python benchmarks/bench_exact.py [--max-log2 15] [--out benchmarks/results/exact_solvers.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, resource, statistics, sys
import torch
torch.set_num_threads(int(sys.argv[5]))
from harness import families
from harness.solvers import get_solver
name, dtype, L, d = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
inst = families.bounded(L=L, d=d, r=4, gamma=1.0, adapt=("q", "v"), seed=0)
small = families.bounded(L=64, d=d, r=4, gamma=1.0, adapt=("q", "v"), seed=0)
s = get_solver(name)
s.solve(small, dtype=dtype)  # warm-up
rss0 = int(open("/proc/self/statm").read().split()[1]) * 4096
from harness.measure.timing import time_call
t = time_call(lambda: s.solve(inst, dtype=dtype), warmup=0, repeats=3 if L <= 4096 else 1, clock="process")
res = t["last"]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(dict(solver=name, dtype=dtype, L=L, d=d, seconds=statistics.median(t["wall_times"]),
                      cpu_seconds=t["median"], threads=torch.get_num_threads(),
                      peak_extra_mib=max(peak - rss0, 0) / 2**20, ops=res.ops)))
"""

# bytes of L x L buffers each solver holds at once (predicted), to skip cells that cannot fit
LL_BUFFERS = {"autograd": 5, "closed-form": 2, "streaming": 0}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-log2", type=int, default=10)
    ap.add_argument("--max-log2", type=int, default=15)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mem-gib", type=float, default=12.0)
    ap.add_argument("--solvers", default="autograd,closed-form,streaming")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--out", default="benchmarks/results/exact_solvers.json")
    args = ap.parse_args()
    rows = []
    for dtype in args.dtypes.split(","):
        size = 8 if dtype == "float64" else 4
        for k in range(args.min_log2, args.max_log2 + 1):
            L = 2**k
            for name in args.solvers.split(","):
                need = LL_BUFFERS[name] * L * L * size / 2**30
                if need > args.mem_gib:
                    rows.append(
                        dict(
                            solver=name,
                            dtype=dtype,
                            L=L,
                            d=args.d,
                            seconds=None,
                            peak_extra_mib=None,
                            skipped=f"needs ~{need:.0f} GiB",
                        )
                    )
                    print(json.dumps(rows[-1]), flush=True)
                    continue
                t0 = time.time()
                proc = subprocess.run(
                    [sys.executable, "-c", CHILD, name, dtype, str(L), str(args.d), str(args.threads)],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONPATH": os.getcwd()},
                )
                if proc.returncode != 0:
                    rows.append(
                        dict(
                            solver=name,
                            dtype=dtype,
                            L=L,
                            d=args.d,
                            seconds=None,
                            peak_extra_mib=None,
                            skipped=proc.stderr.strip().splitlines()[-1:],
                        )
                    )
                else:
                    rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), f"({time.time() - t0:.0f}s wall)", flush=True)
    with open(args.out, "w") as fh:
        json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
