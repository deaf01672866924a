"""Certificate benchmark (issue 14): is the certificate a promise, and how tight is it?

    python benchmarks/bench_certificate.py [--adversarial 1000] [--families] [--label after]
        [--out benchmarks/results/certificate.json] [--md benchmarks/results/certificate.md]

Two case sets, each against a high-precision reference (`harness.highprec`: mpmath at 160 bits on
the small adversarial instances, an extended-precision closed form with its own error bound on
the families):

* adversarial: `families.adversarial` on random parameters (mixed row norms, an outlier token,
  near-collinear keys, rank-deficient / unbalanced / badly scaled W, d = 1, N > 1, Lq != Lk, a
  constant V column, negative / zero beta), a forced degree or an eps target, float32 or float64;
* families: `bounded` (d = 2..8, gamma, beta = 1/d and beta = 1 at score ranges R ~ 1, 2, 3),
  `threshold` and `outliers`, at eps = 1e-6: the degree chosen, the smallest degree whose measured
  error meets eps (the oracle), the smallest degree whose certificate meets eps, refusals.

Figures: measured/certified (median, 99th percentile, max) over valid certificates; violations
(measured > bound with valid = True; meets_eps with measured > eps); refusals and invalid
certificates. `--label before` runs the same cases on an older checkout (put it first on
PYTHONPATH): the adversarial family and the reference are then loaded from this file's tree.
The Markdown report merges every label found in the JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, rel: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def helpers():
    from harness import families

    fam = families if hasattr(families, "adversarial") else _load("_bench_families", "harness/families.py")
    try:
        from harness import highprec
    except ImportError:
        highprec = _load("_bench_highprec", "harness/highprec.py")
    return fam, highprec


def adversarial_params(rng: random.Random) -> dict:
    d = rng.choice([1, 1, 2, 3, 4, 5])
    kw = dict(
        L=rng.randint(1, 12),
        d=d,
        r=rng.randint(1, d),
        seed=rng.randrange(2**31),
        N=rng.choice([1, 1, 2, 3]),
        adapt=rng.choice([("q",), ("k",), ("v",), ("q", "k", "v"), ("q", "v")]),
        gamma=rng.choice([0.1, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0]),
        beta=rng.choice([None, None, 1.0, -0.7, 0.0, 0.3]),
        spread=rng.choice([0, 0, 1, 3, 6]),
        outlier=rng.choice([0, 0, 10, 100]),
        collinear=rng.choice([0, 0, 3, 8]),
        w_mode=rng.choice(["normal", "rank_deficient", "unbalanced", "badly_scaled"]),
        w_scale=rng.choice([10.0, 1e3, 1e6, 1e12]),
        const_v=rng.random() < 0.2,
        dtype=rng.choice(["float64", "float32"]),
    )
    if rng.random() < 0.5:
        kw["Lk"] = rng.randint(1, 12)
    return kw


def _solve(solver, inst, dtype, opts):
    from harness.errors import HarnessError

    t0 = time.perf_counter()
    try:
        res = solver.solve(inst, dtype=dtype, **opts)
    except HarnessError as exc:
        return None, str(exc), time.perf_counter() - t0
    return res, None, time.perf_counter() - t0


def _measured(ref, res) -> tuple[float, float]:
    if hasattr(ref, "max_abs_error"):
        return ref.max_abs_error(res.grads)
    return max(float(np.abs(res.grads[k] - ref.grads[k]).max()) for k in ref.grads), ref.error_bound


def run_adversarial(n: int, seed: int, solvers=("poly", "poly-chained")) -> list[dict]:
    from harness.solvers import get_solver

    fam, hp = helpers()
    rng = random.Random(seed)
    rows = []
    for it in range(n):
        kw = adversarial_params(rng)
        dtype = rng.choice(["float64", "float32"])
        kind = rng.choice(["degree", "eps", "default"])
        opts = (
            {"degree": rng.randint(1, 14)}
            if kind == "degree"
            else {"eps": rng.choice([1e-3, 1e-6, 1e-9])}
            if kind == "eps"
            else {}
        )
        inst = fam.adversarial(**kw)
        ref = hp.reference(inst, "mpmath")
        for name in solvers:
            res, err, sec = _solve(get_solver(name), inst, dtype, opts)
            row = {
                "case": it,
                "solver": name,
                "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()},
                "dtype": dtype,
                "opts": opts,
                "seconds": sec,
            }
            if res is None:
                row.update(refused=True, message=err, one_line="\n" not in err)
            else:
                c = res.certificate
                e, re = _measured(ref, res)
                row.update(
                    refused=False,
                    measured=e,
                    ref_error=re,
                    error_bound=c.get("error_bound"),
                    valid=bool(c.get("valid")),
                    meets_eps=c.get("meets_eps"),
                    eps=c.get("eps"),
                    degree=c.get("degree"),
                    dtype_used=c.get("dtype"),
                    reason=c.get("reason"),
                    warning=c.get("warning"),
                    parts=c.get("bound_parts"),
                )
            rows.append(row)
    return rows


FAMILY_CASES = (
    # (label, family, kwargs)
    [
        (f"bounded d={d} gamma={g} L={L}", "bounded", dict(L=L, d=d, r=2, gamma=g, seed=0))
        for L in (256, 2048)
        for d in (2, 4, 6, 8)
        for g in (0.5, 1.0)
    ]
    + [
        (
            f"bounded beta=1 d={d} gamma={gm} L=256",
            "bounded",
            dict(L=256, d=d, r=2, gamma=gm, beta=1.0, seed=0),
        )
        for d, gm in (
            (4, 1.0),
            (4, 1.4),
            (4, 1.7),
            (6, 0.8),
            (6, 1.2),
            (6, 1.45),
            (8, 0.7),
            (8, 1.0),
            (8, 1.25),
        )
    ]
    + [
        (f"threshold d=4 c={c} L={L}", "threshold", dict(L=L, d=4, r=2, c=c, seed=0))
        for L in (256, 2048)
        for c in (0.5, 1.0, 1.5, 2.0)
    ]
    + [(f"outliers d=4 L={L}", "outliers", dict(L=L, d=4, r=2, gamma=1.0, seed=0)) for L in (256, 2048)]
)


def run_families(eps: float = 1e-6, max_rank: int = 20000, max_degree: int = 24, cases=None) -> list[dict]:
    from harness import families, theory
    from harness.solvers import get_solver

    _, hp = helpers()
    poly = get_solver("poly")
    rows = []
    for label, fam, kw in cases or FAMILY_CASES:
        inst = getattr(families, fam)(**kw)
        ref = hp.reference(inst, "longdouble")
        R_exact = float(theory.score_range(inst))
        res, err, sec = _solve(poly, inst, "float64", {"eps": eps, "max_rank": max_rank})
        row = {"label": label, "family": fam, "params": kw, "R_uncentred_exact": R_exact, "seconds": sec}
        if res is None:
            row.update(refused=True, message=err)
        else:
            c = res.certificate
            e, re = _measured(ref, res)
            row.update(
                refused=False,
                degree=c["degree"],
                rank=c["rank"],
                error_bound=c["error_bound"],
                valid=bool(c.get("valid")),
                measured=e,
                ref_error=re,
                R=c.get("R"),
                regime=c.get("regime"),
            )
        per = []
        oracle = certified = None
        for g in range(1, max_degree + 1):
            if theory.feature_rank(inst.d, g) > 4 * max_rank:
                break
            r2, err2, _ = _solve(poly, inst, "float64", {"degree": g, "max_rank": 10**9})
            if r2 is None:
                per.append({"g": g, "refused": err2})
                continue
            e2, _ = _measured(ref, r2)
            b2 = r2.certificate["error_bound"]
            per.append(
                {"g": g, "measured": e2, "bound": b2, "valid": bool(r2.certificate.get("valid", True))}
            )
            if oracle is None and e2 <= eps:
                oracle = g
            if certified is None and r2.certificate.get("valid", True) and b2 <= eps:
                certified = g
            if oracle is not None and certified is not None:
                break
        row.update(
            per_degree=per,
            oracle_degree=oracle,
            certified_degree=certified,
            oracle_rank=None if oracle is None else theory.feature_rank(inst.d, oracle),
        )
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "per_degree"}), flush=True)
    return rows


def run_speed(
    L: int = 2**15, d: int = 4, eps: float = 1e-6, rounds: int = 2, small=(6, 7, 8, 9, 10, 11, 12, 13)
) -> dict:
    """poly (eps) against streaming, CPU seconds of one thread, interleaved (poly, streaming, poly,
    streaming, ...: a drifting shared machine hits both alike), at L and over small L for the
    crossover (harness.measure.fit.crossover on the same sizes; observed = first measured L where
    poly is faster)."""
    from harness import families
    from harness.measure.fit import crossover
    from harness.solvers import get_solver

    poly, stream = get_solver("poly"), get_solver("streaming")

    def cpu(fn):
        t = time.process_time()
        out = fn()
        return time.process_time() - t, out

    inst = families.bounded(L, d, 2, gamma=1.0, adapt=("q", "k", "v"), seed=0)
    _, res = cpu(lambda: poly.solve(inst, eps=eps))
    tp, ts = [], []
    for _ in range(rounds):
        tp.append(cpu(lambda: poly.solve(inst, eps=eps))[0])
        ts.append(cpu(lambda: stream.solve(inst))[0])
        print(json.dumps({"L": L, "poly_cpu": tp[-1], "stream_cpu": ts[-1]}), flush=True)
    c = res.certificate
    big = {
        "L": L,
        "d": d,
        "eps": eps,
        "degree": c["degree"],
        "rank": c["rank"],
        "error_bound": c["error_bound"],
        "poly_cpu": tp,
        "stream_cpu": ts,
        "ratio_min": min(ts) / min(tp),
        "ratio_median": float(np.median(ts) / np.median(tp)),
    }
    rows = []
    for e in small:
        n = 2**e
        inst = families.bounded(n, d, 2, gamma=1.0, adapt=("q", "k", "v"), seed=0)
        poly.solve(inst, eps=eps), stream.solve(inst)
        reps = max(3, min(30, 2 ** (13 - e)))
        a, b = [], []
        for _ in range(reps):
            a.append(cpu(lambda: poly.solve(inst, eps=eps))[0])
            b.append(cpu(lambda: stream.solve(inst))[0])
        rows.append(
            {
                "L": n,
                "poly_cpu": float(np.median(a)),
                "stream_cpu": float(np.median(b)),
                "degree": poly.solve(inst, eps=eps).certificate["degree"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    x = [r["L"] for r in rows]
    fit_all = crossover(x, [r["poly_cpu"] for r in rows], [r["stream_cpu"] for r in rows])
    big_rows = [r for r in rows if r["L"] >= 2**10]
    fit_big = crossover(
        [r["L"] for r in big_rows], [r["poly_cpu"] for r in big_rows], [r["stream_cpu"] for r in big_rows]
    )
    faster = [r["L"] for r in rows if r["poly_cpu"] < r["stream_cpu"]]
    return {
        "large": big,
        "small": rows,
        "crossover_fit_all": fit_all.get("x_star"),
        "crossover_fit_ge_2^10": fit_big.get("x_star"),
        "first_L_poly_faster": faster[0] if faster else None,
    }


def summarise(adv: list[dict]) -> dict:
    out = {}
    for name in sorted({r["solver"] for r in adv}):
        rs = [r for r in adv if r["solver"] == name]
        ok = [r for r in rs if not r["refused"]]
        valid = [
            r for r in ok if r["valid"] and r["error_bound"] is not None and math.isfinite(r["error_bound"])
        ]
        ratios = np.array(
            [
                r["measured"] / r["error_bound"]
                if r["error_bound"] > 0
                else (math.inf if r["measured"] > r["ref_error"] else 0.0)
                for r in valid
            ]
        )
        viol = [r for r in valid if r["measured"] > r["error_bound"] + r["ref_error"]]
        over = [
            r
            for r in ok
            if r["error_bound"] is not None and r["measured"] > r["error_bound"] + r["ref_error"]
        ]
        meets = [
            r
            for r in ok
            if r.get("meets_eps") and r.get("eps") is not None and r["measured"] > r["eps"] + r["ref_error"]
        ]
        by_dtype = {}
        for dt in ("float32", "float64"):
            sel = np.array(
                [r["measured"] / r["error_bound"] for r in valid if r["dtype"] == dt and r["error_bound"] > 0]
            )
            by_dtype[dt] = _dist(sel)
        out[name] = {
            "cases": len(rs),
            "refused": len(rs) - len(ok),
            "refusals_one_line": sum(1 for r in rs if r["refused"] and r.get("one_line", True)),
            "valid": len(valid),
            "not_valid": len(ok) - len(valid),
            "exceeded_bound": len(over),
            "violations_valid": len(viol),
            "meets_eps_violations": len(meets),
            "ratio": _dist(ratios),
            "ratio_by_dtype": by_dtype,
            "bound_zero_nonzero_error": sum(
                1 for r in ok if r["error_bound"] == 0 and r["measured"] > r["ref_error"]
            ),
            "float64_fallbacks": sum(
                1 for r in ok if r.get("dtype_used") == "float64" and r["dtype"] == "float32"
            ),
        }
    return out


def _worst(adv: list[dict], n: int = 20) -> list[dict]:
    """Every case whose measured error exceeds its bound, then the n largest measured/bound ratios."""
    ok = [r for r in adv if not r["refused"] and r.get("error_bound") not in (None, 0.0)]
    bad = [r for r in ok if r["measured"] > r["error_bound"] + r["ref_error"]]
    top = sorted(ok, key=lambda r: r["measured"] / r["error_bound"], reverse=True)[:n]
    return bad + [r for r in top if r not in bad]


def _dist(x: np.ndarray) -> dict:
    x = x[np.isfinite(x)] if x.size else x
    if not x.size:
        return {"n": 0}
    return {
        "n": int(x.size),
        "median": float(np.median(x)),
        "p99": float(np.percentile(x, 99)),
        "max": float(x.max()),
    }


def machine() -> dict:
    return {
        "cpu": next(
            (l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"
        ),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _fmt(v, p=3):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{p}g}"
    return str(v)


def write_md(data: dict, path: Path) -> None:
    lines = [
        "# Certificates: soundness and tightness (issue 14)",
        "",
        "Written by `python benchmarks/bench_certificate.py` (raw numbers: `certificate.json`). "
        "`before` = the pre-issue-14 code (commit in the JSON), `after` = this tree.",
        "",
    ]
    for label, blob in data.items():
        lines += [
            f"## {label}",
            "",
            f"Machine: {blob['machine']['cpu']}, {blob['machine']['cores']} cores, "
            f"torch {blob['machine']['torch']}, "
            f"load {tuple(round(x, 1) for x in blob['machine']['loadavg'])}; "
            f"commit {blob.get('commit', '?')}.",
            "",
        ]
        s = blob.get("adversarial_summary")
        if s:
            lines += [
                f"### Adversarial generator ({blob.get('adversarial_n')} instances, "
                f"seed {blob.get('adversarial_seed')}, "
                "reference mpmath-160)",
                "",
                "| solver | runs | refused (one line) | valid | not valid | measured > bound | "
                "of them valid=True | meets_eps but measured > eps | bound 0, error > 0 | "
                "measured/bound median | p99 | max |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for name, v in s.items():
                r = v["ratio"]
                lines.append(
                    f"| {name} | {v['cases']} | {v['refused']} ({v['refusals_one_line']}) | {v['valid']} | "
                    f"{v['not_valid']} | {v['exceeded_bound']} | {v['violations_valid']} | "
                    f"{v['meets_eps_violations']} | {v['bound_zero_nonzero_error']} | "
                    f"{_fmt(r.get('median'))} | "
                    f"{_fmt(r.get('p99'))} | {_fmt(r.get('max'))} |"
                )
            lines += [
                "",
                "measured/bound by dtype (valid certificates): "
                + "; ".join(
                    f"{name} {dt}: median {_fmt(d.get('median'))}, p99 {_fmt(d.get('p99'))}, "
                    f"max {_fmt(d.get('max'))} (n={d.get('n')})"
                    for name, v in s.items()
                    for dt, d in v["ratio_by_dtype"].items()
                ),
                "",
            ]
        fam = blob.get("families")
        if fam:
            lines += [
                "### Families at eps = 1e-6 (float64, --max-rank 20000; reference: long double)",
                "",
                "| instance | R (exact, uncentred) | R (cert.) | regime | g chosen | rank | "
                "certified bound | measured | smallest g measured <= eps | smallest g certified <= eps | "
                "refusal |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in fam:
                lines.append(
                    f"| {r['label']} | {_fmt(r['R_uncentred_exact'])} | {_fmt(r.get('R'))} | "
                    f"{r.get('regime', '—')} | "
                    f"{_fmt(r.get('degree'))} | {_fmt(r.get('rank'))} | {_fmt(r.get('error_bound'))} | "
                    f"{_fmt(r.get('measured'))} | {_fmt(r.get('oracle_degree'))} | "
                    f"{_fmt(r.get('certified_degree'))} | "
                    f"{(r.get('message') or '')[:140]} |"
                )
            served = sum(1 for r in fam if not r["refused"])
            lines += [
                "",
                f"served {served} of {len(fam)}; refused {len(fam) - served}; "
                f"oracle-servable within rank 20000: "
                f"{sum(1 for r in fam if r.get('oracle_rank') is not None and r['oracle_rank'] <= 20000)}.",
                "",
            ]
        sp = blob.get("speed")
        if sp:
            b = sp["large"]
            lines += [
                "### Speed (CPU seconds, one thread, interleaved with streaming in the same process)",
                "",
                f"L = {b['L']}, d = {b['d']}, eps = {b['eps']:g}: degree {b['degree']} (rank {b['rank']}), "
                f"poly {min(b['poly_cpu']):.3f} s, streaming {min(b['stream_cpu']):.1f} s: "
                f"**{b['ratio_min']:.0f}x** (median of rounds {b['ratio_median']:.0f}x).",
                "",
                "| L | g | poly CPU s | streaming CPU s | ratio |",
                "|---|---|---|---|---|",
            ]
            for r in sp["small"]:
                lines.append(
                    f"| {r['L']} | {r['degree']} | {r['poly_cpu']:.4f} | {r['stream_cpu']:.4f} | "
                    f"{r['stream_cpu'] / r['poly_cpu']:.2f} |"
                )
            lines += [
                "",
                f"crossover L*: power laws fitted on L >= 2^10: {_fmt(sp['crossover_fit_ge_2^10'])}; "
                f"on all sizes: {_fmt(sp['crossover_fit_all'])}; first measured L where poly is faster: "
                f"{_fmt(sp['first_L_poly_faster'])}.",
                "",
            ]
    path.write_text("\n".join(lines) + "\n")


def _head() -> str | None:
    """This tree's short git HEAD (None outside a git checkout)."""
    import subprocess

    try:
        cmd = ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adversarial", type=int, default=1000, help="number of adversarial instances (0: skip)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--families", action="store_true", help="also run the family cases (slower)")
    ap.add_argument("--speed", action="store_true", help="also time poly against streaming (slowest)")
    ap.add_argument("--label", default="after")
    ap.add_argument("--commit", default=None, help="commit to record (default: this tree's git HEAD)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/certificate.json"))
    ap.add_argument("--md", default=str(ROOT / "benchmarks/results/certificate.md"))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out_path = Path(a.out)
    data = json.loads(out_path.read_text()) if out_path.exists() else {}
    blob = {"machine": machine(), "commit": a.commit or _head()}
    if a.adversarial:
        adv = run_adversarial(a.adversarial, a.seed)
        blob.update(
            adversarial_n=a.adversarial,
            adversarial_seed=a.seed,
            adversarial_summary=summarise(adv),
            adversarial_worst=_worst(adv),
        )
        print(json.dumps(blob["adversarial_summary"], indent=1))
    if a.families:
        blob["families"] = run_families()
    if a.speed:
        blob["speed"] = run_speed()
    old = data.get(a.label, {})
    old.update(blob)
    data[a.label] = old
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(out_path)
    write_md({k: v for k, v in data.items()}, Path(a.md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
