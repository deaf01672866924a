"""Benchmark of causal attention (issue 16): causal `poly` against causal `streaming`, and what the
mask saves `streaming`. Bounded family (beta = 1/d, gamma = 1), d = 4, adapters q,k,v, N = 1, float64,
one torch thread, process CPU seconds (other users of a shared machine disturb them less than wall time).

    python benchmarks/bench_causal.py [--max-log2 17] [--exact-max-log2 14] [--degree 5] [--eps 1e-6]
                                      [--reps 3] [--out benchmarks/results/causal]

1. poly (causal) at a fixed degree (fixed rank: its time exponent is the algorithm's L-exponent) and at
   eps (the certificate picks the degree), L = 2^10..2^max; streaming (causal), L = 2^10..2^exact-max.
   Log-log exponents of time (and of the deterministic op counts) with `harness.fit.fit_power`, and the
   crossover L* of causal poly against causal streaming (`harness.fit.crossover`, measured sizes).
2. streaming causal / non-causal: the two calls interleaved, side by side in this process, at
   L = 2^11..2^exact-max; ratio of the best-of-reps process times, and of the op counts (deterministic).
3. Each causal result's max-norm error against the masked float64 closed form (L <= 2^12), and poly's
   certified bound.
Writes <out>.json and <out>.md and prints the figures. Re-measure on a quiet machine for final figures.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

import torch

from harness import families
from harness.io import atomic_write_text
from harness.measure.fit import crossover, fit_power
from harness.solvers import get_solver


def timed(fn, reps: int):
    """(best process seconds, wall seconds of that run, result) over `reps` calls after one warm-up."""
    fn()
    best = (math.inf, math.inf, None)
    for _ in range(reps):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        c1, w1 = time.process_time(), time.perf_counter()
        if c1 - c0 < best[0]:
            best = (c1 - c0, w1 - w0, out)
    return best


def inst(L: int, d: int, causal: bool):
    return families.bounded(L, d, 2, gamma=1.0, adapt=("q", "k", "v"), seed=0, causal=causal)


def run(args) -> dict:
    torch.set_num_threads(1)
    poly, stream, exact = get_solver("poly"), get_solver("streaming"), get_solver("closed-form")
    d = args.d
    rows = {"poly_degree": [], "poly_eps": [], "streaming": []}
    for k in range(10, args.max_log2 + 1):
        L = 2**k
        c = inst(L, d, True)
        ref = exact.solve(c) if L <= 2**12 else None
        for key, opts in (("poly_degree", {"degree": args.degree}), ("poly_eps", {"eps": args.eps})):
            sec, wall, res = timed(lambda: poly.solve(c, **opts), args.reps)
            row = {
                "L": L,
                "seconds": sec,
                "wall": wall,
                "ops": res.ops,
                "degree": res.certificate["degree"],
                "rank": res.certificate["rank"],
                "error_bound": res.certificate["error_bound"],
                "chunk": res.info.get("chunk"),
            }
            if ref is not None:
                row["max_abs_error"] = res.max_abs_error(ref)
            rows[key].append(row)
        if k <= args.exact_max_log2:
            sec, wall, res = timed(lambda: stream.solve(c), max(1, args.reps - 1))
            row = {"L": L, "seconds": sec, "wall": wall, "ops": res.ops}
            if ref is not None:
                row["max_abs_error"] = res.max_abs_error(ref)
            rows["streaming"].append(row)
        print(
            f"L=2^{k}: "
            + "  ".join(f"{n} {r[-1]['seconds']:.3f}s" for n, r in rows.items() if r and r[-1]["L"] == L),
            flush=True,
        )
    fits = {}
    for name, rs in rows.items():
        big = [r for r in rs if r["L"] >= 2**12] or rs
        if len(big) >= 2:
            tf = fit_power([r["L"] for r in big], [r["seconds"] for r in big])
            of = fit_power([r["L"] for r in big], [r["ops"] for r in big])
            fits[name] = {
                "L": [big[0]["L"], big[-1]["L"]],
                "time_exponent": tf["exponent"],
                "ci": tf["ci"],
                "ops_exponent": of["exponent"],
            }
    cross = {}
    sp = {r["L"]: r for r in rows["streaming"]}
    for name in ("poly_degree", "poly_eps"):
        common = [r for r in rows[name] if r["L"] in sp]
        if len(common) >= 2:
            Ls = [r["L"] for r in common]
            c = crossover(Ls, [r["seconds"] for r in common], [sp[L]["seconds"] for L in Ls])
            co = crossover(Ls, [r["ops"] for r in common], [sp[L]["ops"] for L in Ls])
            cross[name] = {
                "time": {k: c.get(k) for k in ("x_star", "ci", "observed", "extrapolated")},
                "ops": {k: co.get(k) for k in ("x_star", "observed")},
                "speedup_at_max_exact_L": sp[Ls[-1]]["seconds"] / common[-1]["seconds"],
            }
    ratio = []
    for k in range(11, args.exact_max_log2 + 1):
        L = 2**k
        a, c = inst(L, d, False), inst(L, d, True)
        bq = stream.solve(c).info["block_q"]  # the causal default tile height
        runs = {"noncausal": (a, {}), "causal": (c, {}), "noncausal_same_tiles": (a, {"block_q": bq})}
        t = {n: [] for n in runs}
        for _ in range(max(2, args.reps)):
            for n, (target, opts) in runs.items():
                t0 = time.process_time()
                stream.solve(target, **opts)
                t[n].append(time.process_time() - t0)
        oa, oc = stream.solve(a).ops, stream.solve(c).ops
        ratio.append(
            {
                "L": L,
                "time_ratio": min(t["causal"]) / min(t["noncausal"]),
                "time_ratio_same_tiles": min(t["causal"]) / min(t["noncausal_same_tiles"]),
                "ops_ratio": oc / oa,
                "block_q": bq,
                **{f"{n}_s": min(v) for n, v in t.items()},
            }
        )
        print(
            f"streaming causal/non-causal at L=2^{k}: time {ratio[-1]['time_ratio']:.3f} (same tiles "
            f"{ratio[-1]['time_ratio_same_tiles']:.3f}), ops {oc / oa:.3f}",
            flush=True,
        )
    return {
        "machine": f"{platform.machine()} {platform.processor()} torch {torch.__version__} (1 thread)",
        "d": d,
        "degree": args.degree,
        "eps": args.eps,
        "rows": rows,
        "fits": fits,
        "crossover": cross,
        "streaming_causal_ratio": ratio,
    }


def markdown(r: dict) -> str:
    lines = [
        "# Causal attention: causal `poly` against causal `streaming` (issue 16)",
        "",
        f"Machine: {r['machine']}. bounded family, d = {r['d']}, gamma = 1, beta = 1/d, adapters q,k,v, "
        "float64, process CPU seconds, best of the repeats. Command: `python benchmarks/bench_causal.py`.",
        "",
        "| series | L fitted | time exponent [95% CI] | ops exponent |",
        "|---|---|---|---|",
    ]
    for n, f in r["fits"].items():
        lines.append(
            f"| {n} | {f['L'][0]}..{f['L'][1]} | {f['time_exponent']:.2f} "
            f"[{f['ci'][0]:.2f}, {f['ci'][1]:.2f}] | {f['ops_exponent']:.2f} |"
        )
    lines += [
        "",
        "| series | crossover L* vs causal streaming (time) | observed | (ops) | speedup at largest L |",
        "|---|---|---|---|---|",
    ]
    for n, c in r["crossover"].items():
        xs = c["time"]["x_star"]
        lines.append(
            f"| {n} | {xs if xs is None else f'{xs:.0f}'} | {c['time']['observed']} | "
            f"{c['ops']['x_star'] if c['ops']['x_star'] is None else round(c['ops']['x_star'])} | "
            f"{c['speedup_at_max_exact_L']:.1f}x |"
        )
    lines += [
        "",
        "streaming, causal / non-causal (interleaved in one process; 'same tiles': the non-causal run "
        "with the causal default block_q, so only the skipped tiles differ):",
        "",
        "| L | time ratio (default tiles) | time ratio (same tiles) | ops ratio | causal block_q |",
        "|---|---|---|---|---|",
    ]
    for x in r["streaming_causal_ratio"]:
        lines.append(
            f"| {x['L']} | {x['time_ratio']:.3f} | {x['time_ratio_same_tiles']:.3f} | "
            f"{x['ops_ratio']:.3f} | {x['block_q']} |"
        )
    lines += [
        "",
        "Per size (seconds, degree, rank, max-norm error vs the masked float64 closed form, bound):",
        "",
        "| series | L | s | degree | rank | error | bound |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, rs in r["rows"].items():
        for x in rs:
            lines.append(
                f"| {n} | {x['L']} | {x['seconds']:.4f} | {x.get('degree', '-')} | {x.get('rank', '-')} | "
                f"{x.get('max_abs_error', float('nan')):.1e} | {x.get('error_bound', float('nan')):.1e} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=4)
    ap.add_argument("--max-log2", type=int, default=17)
    ap.add_argument("--exact-max-log2", type=int, default=14)
    ap.add_argument("--degree", type=int, default=5)
    ap.add_argument("--eps", type=float, default=1e-6)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/causal")
    args = ap.parse_args()
    r = run(args)
    atomic_write_text(args.out + ".json", json.dumps(r, indent=1, sort_keys=True) + "\n")
    md = markdown(r)
    atomic_write_text(args.out + ".md", md)
    print(md)


if __name__ == "__main__":
    main()
