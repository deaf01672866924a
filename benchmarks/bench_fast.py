"""Benchmark of the fast solvers: `poly` against the exact `streaming` solver in the bounded
regime (families.bounded, beta = 1/d so R <= gamma^2), float64, adapters q,k,v, N = 1.

    python benchmarks/bench_fast.py scaling  [--d 4] [--gamma 1] [--eps 1e-6] [--max-log2 17]
                                             [--exact-max-log2 15]
    python benchmarks/bench_fast.py table    [--L0 4096]
    python benchmarks/bench_fast.py tightness  (certified bound vs measured error, low degrees)
    python benchmarks/bench_fast.py all      (all three; JSON to benchmarks/results/fast_solvers.json)

`scaling`: poly's time over L = 2^10..2^max, streaming's over 2^10..2^exact-max (plus one run at
2^16 unless --no-exact-16); fitted log-log exponents; poly/streaming ratio at 2^16 (measured when
available, else extrapolated with streaming's fitted exponent, and said so); crossover L* from the
two fitted power laws. `table`: for d in {2,4,6,8} and gamma in {0.5,1,1.5}: R, g, k and the
crossover estimate L* = L0 * t_poly(L0)/t_stream(L0) (poly ~ L, streaming ~ L^2).
Times are process CPU seconds (single thread, torch.set_num_threads(1)) and wall seconds; the fits use
CPU seconds, which the other users of a shared machine disturb less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

from harness import families, theory
from harness.errors import HarnessError
from harness.measure.threads import limit_threads
from harness.measure.timing import time_call
from harness.solvers import get_solver


def timed(fn, reps: int):
    """(best CPU seconds, the wall seconds of that call, fn's result) over `reps` calls."""
    t = time_call(fn, warmup=0, repeats=reps, clock="process")
    i = t["times"].index(t["min"])
    return t["min"], t["wall_times"][i], t["last"]


def inst_for(L, d, gamma, seed=0):
    return families.bounded(L, d, 2 if d >= 2 else 1, gamma=gamma, adapt=("q", "k", "v"), seed=seed)


def fit(Ls, ts):
    return float(np.polyfit(np.log2(Ls), np.log2(ts), 1)[0])


def _reused(reuse, key, match):
    """Streaming timings from an earlier JSON (`--reuse-exact`), matched on `match`."""
    if not reuse:
        return None
    for r in reuse.get(key, {}).get("rows", []):
        if all(r.get(k) == v for k, v in match.items()) and "stream_cpu" in r:
            return r
    return None


def scaling(d=4, gamma=1.0, eps=1e-6, max_log2=17, exact_max_log2=15, exact16=True, reuse=None):
    poly = get_solver("poly")
    stream = get_solver("streaming")
    poly.solve(inst_for(256, d, gamma), eps=eps)
    rows = []
    g_fixed = None
    for e in range(10, max_log2 + 1):
        L = 2**e
        inst = inst_for(L, d, gamma)
        cpu, wall, res = timed(lambda: poly.solve(inst, eps=eps), 3 if e <= 13 else 1)
        g_fixed = g_fixed or res.certificate["degree"]
        cpu_f, _, res_f = timed(lambda: poly.solve(inst, degree=g_fixed), 3 if e <= 13 else 1)
        row = {
            "L": L,
            "poly_cpu": cpu,
            "poly_wall": wall,
            "degree": res.certificate["degree"],
            "rank": res.certificate["rank"],
            "R_bound": res.certificate["R"],
            "error_bound": res.certificate["error_bound"],
            "ops": res.ops,
            "fixed_degree": g_fixed,
            "poly_cpu_fixed_degree": cpu_f,
            "ops_fixed_degree": res_f.ops,
        }
        old = _reused(reuse, "scaling", {"L": L})
        if old is not None:
            row.update(stream_cpu=old["stream_cpu"], stream_wall=old["stream_wall"], stream_reused=True)
            if e <= 13:
                row["measured_error"] = res.max_abs_error(stream.solve(inst))
        elif e <= exact_max_log2 or (exact16 and e == 16):
            c2, w2, ref = timed(lambda: stream.solve(inst), 2 if e <= 12 else 1)
            row.update(stream_cpu=c2, stream_wall=w2, measured_error=res.max_abs_error(ref))
        rows.append(row)
        print(json.dumps(row), flush=True)
    Lp = [r["L"] for r in rows]
    out = {"d": d, "gamma": gamma, "eps": eps, "rows": rows}
    out["poly_exponent_all"] = fit(Lp, [r["poly_cpu"] for r in rows])
    big = [r for r in rows if r["L"] >= 2**12]
    out["poly_exponent_ge_2^12"] = fit([r["L"] for r in big], [r["poly_cpu"] for r in big])
    out["poly_ops_exponent"] = fit(Lp, [r["ops"] for r in rows])
    out["poly_exponent_fixed_degree"] = fit(Lp, [r["poly_cpu_fixed_degree"] for r in rows])
    out["poly_ops_exponent_fixed_degree"] = fit(Lp, [r["ops_fixed_degree"] for r in rows])
    ex = [r for r in rows if "stream_cpu" in r and r["L"] <= 2**exact_max_log2]
    se = fit([r["L"] for r in ex], [r["stream_cpu"] for r in ex])
    out["stream_exponent"] = se
    last = ex[-1]
    for target in (2**16, 2**17):
        r = next((x for x in rows if x["L"] == target), None)
        if r is None:
            continue
        if "stream_cpu" in r:
            out[f"ratio_{target}"] = {"value": r["stream_cpu"] / r["poly_cpu"], "stream": "measured"}
        else:
            st = last["stream_cpu"] * (target / last["L"]) ** se
            out[f"ratio_{target}"] = {
                "value": st / r["poly_cpu"],
                "stream": f"extrapolated, exponent {se:.3f}",
                "stream_cpu_est": st,
            }
    # crossover from the two power laws fitted on the common sizes
    both = [r for r in rows if "stream_cpu" in r]
    a_p, b_p = np.polyfit(np.log2([r["L"] for r in both]), np.log2([r["poly_cpu"] for r in both]), 1)
    a_s, b_s = np.polyfit(np.log2([r["L"] for r in both]), np.log2([r["stream_cpu"] for r in both]), 1)
    out["crossover_L"] = float(2 ** ((b_p - b_s) / (a_s - a_p))) if a_s != a_p else None
    faster = [r["L"] for r in both if r["poly_cpu"] < r["stream_cpu"]]
    out["first_measured_L_poly_faster"] = faster[0] if faster else None
    return out


def table(L0=4096, ds=(2, 4, 6, 8), gammas=(0.5, 1.0, 1.5), eps=1e-6, reuse=None):
    poly, stream = get_solver("poly"), get_solver("streaming")
    rows = []
    for d in ds:
        for gamma in gammas:
            inst = inst_for(L0, d, gamma)
            c = theory.certify(inst, eps=eps, exact_R=True)
            cb = theory.certify(inst, eps=eps, exact_R=False)
            row = {
                "d": d,
                "gamma": gamma,
                "R": c["R"],
                "R_bound": cb["R"],
                "degree": cb["degree"],
                "rank": cb["rank"],
                "degree_if_exact_R": c["degree"],
                "rank_if_exact_R": c["rank"],
            }
            try:
                tp, _, res = timed(lambda: poly.solve(inst, eps=eps), 1)
            except HarnessError as exc:
                row["poly"] = str(exc)
                rows.append(row)
                print(json.dumps(row), flush=True)
                continue
            old = _reused(reuse, "table", {"d": d, "gamma": gamma})
            ref = stream.solve(inst) if old is None else get_solver("closed-form").solve(inst)
            ts = old["stream_cpu"] if old is not None else timed(lambda: stream.solve(inst), 1)[0]
            row.update(
                poly_cpu=tp,
                stream_cpu=ts,
                crossover_L=L0 * tp / ts,
                measured_error=res.max_abs_error(ref),
                error_bound=res.certificate["error_bound"],
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"L0": L0, "eps": eps, "rows": rows}


def tightness(Ls=(256, 1024), d=4, gamma=1.0, degrees=range(1, 8)):
    """Certified bound vs measured max-norm error (float64) at low degrees: the solver's certificate
    (per-row kernel errors from the O(L d) row bounds), the per-row bound capped by the exact R, and
    the uniform bound gradient_error_bound(inst, taylor_rel_error(R, g)) with the exact R."""
    rows = []
    for L in Ls:
        inst = inst_for(L, d, gamma)
        ref = get_solver("closed-form").solve(inst)
        R = theory.score_range(inst)
        scale = max(float(np.abs(v).max()) for v in ref.grads.values())
        for g in degrees:
            res = get_solver("poly").solve(inst, degree=g)
            e_exact = theory.taylor_rel_error(R, g)
            row = {
                "L": L,
                "g": g,
                "R": R,
                "R_bound": res.certificate["R"],
                "grad_scale": scale,
                "error": res.max_abs_error(ref),
                "bound_solver": res.certificate["error_bound"],  # per-row, O(L d) R bounds
                "bound_rows_exact_R": theory.gradient_error_bound_rows(inst, g, R=R),
                "bound_uniform_exact_R": theory.gradient_error_bound(inst, e_exact),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"d": d, "gamma": gamma, "rows": rows}


def machine():
    return {
        "cpu": next(
            (l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"
        ),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["scaling", "table", "tightness", "all"])
    ap.add_argument("--d", type=int, default=4)
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--eps", type=float, default=1e-6)
    ap.add_argument("--max-log2", type=int, default=17)
    ap.add_argument("--exact-max-log2", type=int, default=15)
    ap.add_argument("--no-exact-16", action="store_true")
    ap.add_argument("--L0", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/fast_solvers.json")
    ap.add_argument(
        "--reuse-exact",
        default=None,
        help="take streaming timings from this earlier JSON instead of re-running them",
    )
    a = ap.parse_args(argv)
    with limit_threads(a.threads):
        return _run(a)


def _run(a) -> int:
    out = {"machine": machine()}
    reuse = json.load(open(a.reuse_exact)) if a.reuse_exact else None
    if reuse:
        out["machine"]["stream_timings_from"] = {"file": a.reuse_exact, "machine": reuse.get("machine")}
    if a.what in ("scaling", "all"):
        out["scaling"] = scaling(a.d, a.gamma, a.eps, a.max_log2, a.exact_max_log2, not a.no_exact_16, reuse)
    if a.what in ("table", "all"):
        out["table"] = table(a.L0, eps=a.eps, reuse=reuse)
    if a.what in ("tightness", "all"):
        out["tightness"] = tightness()
    out["machine"]["loadavg_end"] = os.getloadavg()
    if os.path.exists(a.out):
        old = json.load(open(a.out))
        old.update(out)
        out = old
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print(json.dumps({k: v for k, v in out.get("scaling", {}).items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
