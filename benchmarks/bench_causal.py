"""Benchmark of causal attention (issue 16): causal `poly` against causal `streaming`, and what the
mask saves `streaming`. Bounded family (beta = 1/d, gamma = 1), d = 4, adapters q,k,v, N = 1, float64,
one torch thread, process CPU seconds (other users of a shared machine disturb them less than wall time).

    python benchmarks/bench_causal.py [--max-log2 16] [--exact-max-log2 13] [--degree 5] [--eps 1e-6]
                                      [--reps 3] [--out benchmarks/results/causal]   (~2-3 min)

1. poly (causal) at a fixed degree (fixed rank: its time exponent is the algorithm's L-exponent) and at
   eps (the certificate picks the degree), L = 2^10..2^max; streaming (causal), L = 2^10..2^exact-max.
   Log-log exponents of time (and of the deterministic op counts) with `harness.fit.fit_power`, and the
   crossover L* of causal poly against causal streaming (`harness.fit.crossover`, measured sizes).
2. streaming causal / non-causal: the two calls interleaved, side by side in this process, at
   L = 2^11..2^exact-max; ratio of the best-of-reps process times, and of the op counts (deterministic).
3. Each causal result's max-norm error against the masked float64 closed form (L <= 2^ref-max), and poly's
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


def interleaved(fns: dict, reps: int) -> dict:
    """{name: (best process seconds, wall seconds of that run, result)}: one warm-up call each, then
    `reps` rounds calling every fn in turn (side by side, so machine noise hits all alike)."""
    best = {n: (math.inf, math.inf, fn()) for n, fn in fns.items()}
    for _ in range(reps):
        for n, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            out = fn()
            c1, w1 = time.process_time(), time.perf_counter()
            if c1 - c0 < best[n][0]:
                best[n] = (c1 - c0, w1 - w0, out)
    return best


def inst(L: int, d: int, causal: bool):
    return families.bounded(L, d, 2, gamma=1.0, adapt=("q", "k", "v"), seed=0, causal=causal)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = f"{names[0]} ({len(names)} logical CPUs)" if names else cpu
    except OSError:
        pass
    py, tv = platform.python_version(), torch.__version__
    return f"{cpu}, {platform.system()} {platform.release()}, Python {py}, torch {tv}, 1 torch thread"


def run(args) -> dict:
    torch.set_num_threads(1)
    poly, stream, exact = get_solver("poly"), get_solver("streaming"), get_solver("closed-form")
    d = args.d
    rows = {"poly_degree": [], "poly_eps": [], "streaming": []}
    for k in range(args.min_log2, args.max_log2 + 1):
        L = 2**k
        c = inst(L, d, True)
        ref = exact.solve(c) if L <= 2**args.ref_max_log2 else None
        fns = {
            "poly_degree": lambda: poly.solve(c, degree=args.degree),
            "poly_eps": lambda: poly.solve(c, eps=args.eps),
        }
        if k <= args.exact_max_log2:
            fns["streaming"] = lambda: stream.solve(c)
        for name, (sec, wall, res) in interleaved(fns, args.reps).items():
            row = {"L": L, "seconds": sec, "wall": wall, "ops": res.ops}
            if res.certificate:
                cert = res.certificate
                row.update(degree=cert["degree"], rank=cert["rank"], error_bound=cert["error_bound"])
                row["chunk"] = res.info.get("chunk")
            if ref is not None:
                row["max_abs_error"] = res.max_abs_error(ref)
            rows[name].append(row)
        print(
            f"L=2^{k}: "
            + "  ".join(f"{n} {r[-1]['seconds']:.3f}s" for n, r in rows.items() if r and r[-1]["L"] == L),
            flush=True,
        )
    fits = {}
    for name, rs in rows.items():
        big = [r for r in rs if r["L"] >= 2**args.fit_min_log2] or rs
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
    for k in range(max(args.min_log2, 11), args.exact_max_log2 + 1):
        L = 2**k
        a, c = inst(L, d, False), inst(L, d, True)
        bq = stream.solve(c).info["block_q"]  # the causal default strip height
        t = interleaved(
            {
                "noncausal": lambda: stream.solve(a),
                "causal": lambda: stream.solve(c),
                "noncausal_same_tiles": lambda: stream.solve(a, block_q=bq),
            },
            max(2, args.reps),
        )
        oa, oc = t["noncausal"][2].ops, t["causal"][2].ops
        ratio.append(
            {
                "L": L,
                "time_ratio": t["causal"][0] / t["noncausal"][0],
                "time_ratio_same_tiles": t["causal"][0] / t["noncausal_same_tiles"][0],
                "ops_ratio": oc / oa,
                "block_q": bq,
                **{f"{n}_s": v[0] for n, v in t.items()},
            }
        )
        print(
            f"streaming causal/non-causal at L=2^{k}: time {ratio[-1]['time_ratio']:.3f} (same tiles "
            f"{ratio[-1]['time_ratio_same_tiles']:.3f}), ops {oc / oa:.3f}",
            flush=True,
        )
    return {
        "machine": machine(),
        "command": args.command,
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
        "float64, process CPU seconds, best of the repeats, every series at one L measured interleaved in "
        f"one process. Command: `{r['command']}`.",
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
        xs, ob = c["time"]["x_star"], c["time"]["observed"]
        obs = "-" if ob is None else f"{ob:.0f}"
        lines.append(
            f"| {n} | {xs if xs is None else f'{xs:.0f}'} | {obs} | "
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=4)
    ap.add_argument("--min-log2", type=int, default=10)
    ap.add_argument("--max-log2", type=int, default=16)
    ap.add_argument("--exact-max-log2", type=int, default=13)
    ap.add_argument("--ref-max-log2", type=int, default=12, help="error vs the closed form up to this L")
    ap.add_argument("--fit-min-log2", type=int, default=12, help="fit exponents from this L on")
    ap.add_argument("--degree", type=int, default=5)
    ap.add_argument("--eps", type=float, default=1e-6)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/causal")
    args = ap.parse_args(argv)
    args.command = "python benchmarks/bench_causal.py" + ("" if argv is None else " " + " ".join(argv))
    if argv is None:
        import sys

        args.command += "".join(" " + a for a in sys.argv[1:])
    print(f"machine: {machine()}", flush=True)
    r = run(args)
    atomic_write_text(args.out + ".json", json.dumps(r, indent=1, sort_keys=True) + "\n")
    md = markdown(r)
    atomic_write_text(args.out + ".md", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
