"""`poly` against the exact solvers (issue 15, item 3): speedups, crossover, degree, breakdown.

    python benchmarks/bench_poly.py [--sizes 12,13,14,15,16,17] [--stream-max 16] [--rounds 2]
        [--small 6,7,8,9,10,11,12] [--out benchmarks/results/poly_speed] [--tiny]

Instance: families.bounded(L, d=4, r=2, gamma=1, adapters q,k,v, seed 0), float64, ONE torch thread,
`poly` at eps = 1e-6 (the certified degree is printed), against `streaming` (main's default settings)
and `sdpa` (CPU, autograd; it refuses in one line where its memory estimate exceeds what is free).
Times are process (CPU) seconds; each round runs poly, streaming, sdpa back to back (interleaved, so
a drifting shared machine hits them alike), and the figure is the minimum over rounds (the median is
also kept). `streaming` above 2^stream_max is NOT run: its time is extrapolated as
t(2^stream_max) x 4^(e - stream_max) and labelled so. The crossover L* is fitted on the small sizes
(harness.measure.fit.crossover) and the first measured L where poly is faster is reported. The
breakdown splits one poly call (at 2^15 and at the largest size) into the certificate's and
the kernel's parts. `--tiny` (fast-tier smoke) runs L = 2^7, 2^8 only. Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

try:  # imported as benchmarks.X (tests) or run as a script from benchmarks/
    from benchmarks._results import cpu_name, write_results
except ImportError:  # pragma: no cover
    from _results import cpu_name, write_results
from harness import families, theory
from harness.errors import HarnessError
from harness.solvers import get_solver

EPS = 1e-6
D = 4


def _cpu(fn):
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def instance(L: int):
    return families.bounded(L, D, 2, gamma=1.0, adapt=("q", "k", "v"), seed=0)


def _try(fn):
    try:
        return _cpu(fn)
    except HarnessError as exc:
        return None, str(exc).splitlines()[0]


def measure(L: int, rounds: int, stream: bool, sdpa: bool) -> dict:
    inst = instance(L)
    poly = get_solver("poly")
    _, res = _cpu(lambda: poly.solve(inst, eps=EPS))
    c = res.certificate
    row = {
        "L": L,
        "degree": c["degree"],
        "rank": c["rank"],
        "error_bound": c["error_bound"],
        "valid": c["valid"],
        "meets_eps": c["meets_eps"],
        "poly": [],
        "streaming": [],
        "sdpa": [],
    }
    solvers = {"poly": lambda: poly.solve(inst, eps=EPS)}
    if stream:
        solvers["streaming"] = lambda: get_solver("streaming").solve(inst)
    if sdpa:
        solvers["sdpa"] = lambda: get_solver("sdpa").solve(inst)
    for name, fn in list(solvers.items())[1:]:  # warm-up / refusal check
        if L <= 2**13:
            t, out = _try(fn)
            if t is None:
                row[f"{name}_refused"] = out
                del solvers[name]
    for _ in range(rounds):
        for name, fn in list(solvers.items()):
            t, out = _try(fn)
            if t is None:
                row[f"{name}_refused"] = out
                del solvers[name]
            else:
                row[name].append(t)
    for name in ("poly", "streaming", "sdpa"):
        row[f"{name}_min"] = min(row[name]) if row[name] else None
        row[f"{name}_median"] = float(np.median(row[name])) if row[name] else None
    return row


def breakdown(L: int) -> dict:
    """One poly call at L split into its parts (process seconds, best of 3): the score range, the
    run set-up (preprocess, BoundContext, pilot sample), the degree search, the gradient kernel and
    the final certificate."""
    from harness.solvers.poly import bound as pb
    from harness.solvers.poly import certificate as pc
    from harness.solvers.poly import pilot as pp
    from harness.solvers.poly.moments import moment_gradients

    inst = instance(L)
    dt = torch.float64

    def best(fn):
        out, ts = None, []
        for _ in range(3):
            t, out = _cpu(fn)
            ts.append(t)
        return min(ts), out

    parts = {}
    parts["score_range"], _ = best(lambda: theory.certificate_score_range(inst))
    parts["setup"], run = best(lambda: pc._Run(inst, dt, "cpu"))
    parts["degree_search"], ch = best(
        lambda: pp.choose_degree(pp.Pilot(run.ctx), EPS, theory.DEFAULT_MAX_RANK, D, None, None)
    )
    g = ch["degree"]
    parts["kernel"], (gr, _, info) = best(
        lambda: moment_gradients(run.t, inst.alpha, inst.beta, inst.r, inst.adapted, g)
    )
    ctx = run.ctx.at(g)
    parts["certificate"], _ = best(
        lambda: pb.bound_from_rows(
            ctx, info["rows"], ctx.rows_of(None), Fv=info["Fv"], G=info["G"], moments=True
        )
    )
    return {"L": L, "degree": g, "seconds": parts, "total": sum(parts.values())}


def run(sizes, small, stream_max: int, rounds: int, sdpa: bool = True) -> dict:
    from harness.measure.fit import crossover

    torch.set_num_threads(1)
    big = []
    for e in sizes:
        L = 2**e
        r = measure(L, rounds if e < 16 else 1, stream=e <= stream_max, sdpa=sdpa)
        if r["streaming_min"] is None and e > stream_max:
            base = next((b for b in big if b["L"] == 2**stream_max and b["streaming_min"]), None)
            if base:
                r["streaming_extrapolated"] = base["streaming_min"] * 4 ** (e - stream_max)
        big.append(r)
        print({k: v for k, v in r.items() if k not in ("poly", "streaming", "sdpa")}, flush=True)
    rows = []
    for e in small:
        L = 2**e
        r = measure(L, max(3, min(25, 2 ** (13 - e))), stream=True, sdpa=False)
        rows.append(r)
        print({k: r[k] for k in ("L", "degree", "poly_median", "streaming_median")}, flush=True)
    x = [r["L"] for r in rows]
    fit = crossover(x, [r["poly_median"] for r in rows], [r["streaming_median"] for r in rows]) if x else {}
    faster = [r["L"] for r in rows if r["poly_median"] < r["streaming_median"]]
    return {
        "large": big,
        "small": rows,
        "crossover_fit": fit.get("x_star"),
        "crossover_ci": fit.get("ci"),
        "first_L_poly_faster": faster[0] if faster else None,
        "breakdown": [breakdown(2**e) for e in sorted({min(15, max(sizes)), max(sizes)})] if sizes else [],
    }


def _f(v, p=3):
    return "—" if v is None else (f"{v:.{p}g}" if isinstance(v, float) else str(v))


def _ci(ci) -> str:
    return "—" if not ci else "[" + ", ".join(_f(float(c), 2) for c in ci) + "]"


def markdown(res: dict) -> str:
    m = res["machine"]
    out = [
        "# poly speed (issue 15, item 3)",
        "",
        "Written by `python benchmarks/bench_poly.py` (raw numbers: `poly_speed.json`).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, one torch thread, float64; "
        f"load average at start {m['load_start']}, at end {m['load_end']}; {m['date']}. "
        "CPU (process) seconds, minimum over interleaved rounds.",
        "",
        f"Instance: families.bounded(L, d={D}, r=2, gamma=1, adapters q,k,v, seed 0); poly at eps={EPS:g}.",
        "",
        "| L | g | rank | certified bound | poly s | streaming s | streaming/poly | sdpa s | sdpa/poly |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["large"]:
        st, note = r["streaming_min"], ""
        if st is None and r.get("streaming_extrapolated"):
            st, note = r["streaming_extrapolated"], " (extrapolated x4 per doubling, not measured)"
        sd = r["sdpa_min"]
        out.append(
            f"| {r['L']} | {r['degree']} | {r['rank']} | {_f(r['error_bound'])} | {_f(r['poly_min'])} | "
            f"{_f(st)}{note} | {_f(st / r['poly_min'] if st else None)}x | "
            f"{_f(sd) if sd else 'refused' if r.get('sdpa_refused') else '—'} | "
            f"{_f(sd / r['poly_min'] if sd else None)}{'x' if sd else ''} |"
        )
    refs = {r["L"]: r["sdpa_refused"] for r in res["large"] if r.get("sdpa_refused")}
    if refs:
        L0 = min(refs)
        out += ["", f"sdpa from L = {L0}: `{refs[L0][:200]}`"]
    out += [
        "",
        "### Crossover (small L, medians of interleaved repeats)",
        "",
        "| L | g | poly s | streaming s | ratio |",
        "|---|---|---|---|---|",
    ]
    for r in res["small"]:
        out.append(
            f"| {r['L']} | {r['degree']} | {_f(r['poly_median'])} | {_f(r['streaming_median'])} | "
            f"{_f(r['streaming_median'] / r['poly_median'])} |"
        )
    out += [
        "",
        f"crossover L* (power laws fitted on these sizes): {_f(res['crossover_fit'])} "
        f"(95% CI {_ci(res['crossover_ci'])}); "
        f"first measured L where poly is faster: {res['first_L_poly_faster']}.",
    ]
    for b in res.get("breakdown") or []:
        out += ["", f"### Where one poly call goes (L = {b['L']}, g = {b['degree']}, best of 3)", ""]
        out += ["| part | CPU s | share |", "|---|---|---|"]
        for k, v in b["seconds"].items():
            out.append(f"| {k} | {v:.4f} | {v / b['total']:.0%} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="12,13,14,15,16,17", help="log2 L of the speedup table")
    ap.add_argument("--small", default="6,7,8,9,10,11,12", help="log2 L of the crossover fit")
    ap.add_argument("--stream-max", type=int, default=16, help="largest log2 L where streaming runs")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-sdpa", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="smoke: L = 2^7, 2^8, one round")
    ap.add_argument("--out", default="benchmarks/results/poly_speed")
    a = ap.parse_args(argv)
    ints = lambda s: [int(v) for v in s.split(",") if v]  # noqa: E731
    sizes, small, rounds = ints(a.sizes), ints(a.small), a.rounds
    if a.tiny:
        sizes, small, rounds = [8], [7, 8], 1
    load0 = os.getloadavg()
    res = run(sizes, small, a.stream_max, rounds, sdpa=not a.no_sdpa)
    res["machine"] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": 1,
        "load_start": tuple(round(v, 2) for v in load0),
        "load_end": tuple(round(v, 2) for v in os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    res["settings"] = {
        "sizes": sizes,
        "small": small,
        "stream_max": a.stream_max,
        "rounds": rounds,
        "eps": EPS,
    }
    write_results(a.out, res, markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
