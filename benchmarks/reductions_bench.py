"""Benchmarks and findings for the SETH chain (results go to benchmarks/results/reductions*.json;
the write-up is benchmarks/results/reductions.md).

    python benchmarks/reductions_bench.py chain --v 24 --kind planted unsat --dtype float32
    python benchmarks/reductions_bench.py calculus --v 16
    python benchmarks/reductions_bench.py as23
    python benchmarks/reductions_bench.py fast --v 12 16 --solvers poly random-features

`chain`: time per arrow (reduce), per oracle call, decode; the margins seen (P1: min T on yes rows,
max T on no rows; G1: the read-out against its threshold); correctness against python-sat.
`calculus`: AS24's left-Riemann route vs Gauss-Legendre, |f(1) error| against the needed accuracy.
`as23`: the AS23 layout's yes-value (log10) by size: where it underflows float64 / float32.
`fast`: the approximate solvers (poly, random-features) as oracles on chain instances: decided
right, decided wrong, decode inconsistent, or refused (HarnessError).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

from harness.errors import HarnessError
from reductions import sat_sources as S
from reductions.arrows.attention_to_gradient import AttentionToGradient
from reductions.arrows.base import Composite
from reductions.arrows.ov_to_attention import GapHammingToAttentionAS23, OVToAttentionG1Layout
from reductions.arrows.ov_to_gadgets import OVToGapHamming
from reductions.arrows.sat_to_ov import SatToOV
from reductions.chain import VIAS, make_oracle, route
from reductions.problems import attention as att
from reductions.problems import attention_gradient as agr
from reductions.problems.ov import yes_rows

HERE = os.path.dirname(os.path.abspath(__file__))


def machine() -> dict:
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }


def formula(kind: str, k: int, v: int, seed: int):
    return S.planted(k, v, seed) if kind == "planted" else S.unsat(k, v, seed)


def run_chain(
    cnf,
    via: str,
    solver: str,
    dtype: str,
    device: str = "cpu",
    options: dict | None = None,
    reference: str | None = None,
) -> dict:
    """One end-to-end run with per-arrow timings and the first oracle output's margins."""
    arrows = route(via)
    base = make_oracle(via, solver, dtype, device, **(options or {}))
    rec = {"calls": 0, "oracle_s": [], "first": None}

    def oracle(x):
        t0 = time.perf_counter()
        out = base(x)
        rec["oracle_s"].append(time.perf_counter() - t0)
        rec["calls"] += 1
        if rec["first"] is None:
            rec["first"] = out
        return out

    row = {"via": via, "solver": solver, "dtype": dtype, "v": cnf.nvars, "m": cnf.m}
    x, targets = cnf, []
    for a in arrows:
        t0 = time.perf_counter()
        x = a.reduce(x)
        row[f"reduce_s[{a.name}]"] = time.perf_counter() - t0
        targets.append(x)
    ov = targets[0]
    row.update(N=ov.N, n=2 * ov.N)
    t0 = time.perf_counter()
    try:
        model = Composite(arrows).decode(x, oracle(x), oracle)
        row["outcome"] = "SAT" if model is not None else "UNSAT"
        if model is not None and not cnf.satisfies(model):
            row["outcome"] = "wrong model"
    except HarnessError as exc:
        row["outcome"] = f"error: {exc}"
        model = None
    total = time.perf_counter() - t0
    row["oracle_calls"] = rec["calls"]
    row["oracle_s_first"] = rec["oracle_s"][0] if rec["oracle_s"] else None
    row["oracle_s_total"] = sum(rec["oracle_s"])
    row["decode_s"] = total - row["oracle_s_total"]
    truth = cnf.solve()
    row["truth"] = "SAT" if truth is not None else "UNSAT"
    row["correct"] = row["outcome"] == row["truth"]
    t = targets[1]
    first = rec["first"]
    if first is not None:
        if via == "attention":
            yes = yes_rows(ov)
            T0 = np.asarray(first.T)[: ov.N, 0]
            row["min_T_yes"] = float(T0[yes].min()) if yes.any() else None
            row["max_T_no"] = float(T0[~yes].max()) if (~yes).any() else None
            row["bounds"] = {"yes_lb": t.meta["yes_lb"], "no_ub": t.meta["no_ub"], "threshold": 0.5}
        else:
            g = arrows[-1].decode(x, first) if via == "lora" else first
            row["readout"] = arrows[1].readout(t, g)
            row["bounds"] = {k: t.meta[k] for k in ("yes_lb", "no_ub", "threshold", "eps_needed", "eps_spec")}
            row["B"] = t.meta["entry"]
            row["d_head"] = t.meta["d"]
        if reference:  # float64 reference oracle on the first instance: max-norm error of the oracle
            ref = make_oracle(via, reference, "float64", device)(x)
            if via == "attention":
                row["max_abs_error"] = float(np.max(np.abs(np.asarray(first.T) - ref.T)))
            else:
                if via == "lora":
                    ref = arrows[-1].decode(x, ref)
                    first = arrows[-1].decode(x, first)
                row["max_abs_error"] = float(np.max(np.abs(np.asarray(first) - ref)))
                row["readout_error"] = abs(arrows[1].readout(t, first) - arrows[1].readout(t, ref))
    return row


def formulas(args):
    """(kind, v, cnf) for every requested size and kind."""
    for v in args.v:
        for kind in args.kind:
            yield kind, v, formula(kind, args.k, v, args.seed)


def emit(rows: list, row: dict) -> None:
    rows.append(row)
    print(json.dumps(row, default=str), flush=True)


def cmd_chain(args) -> list[dict]:
    rows: list[dict] = []
    for kind, _, cnf in formulas(args):
        for via in args.via:
            row = run_chain(cnf, via, args.solver, args.dtype, args.device, reference=args.reference)
            row["kind"] = kind
            emit(rows, row)
    return rows


def cmd_calculus(args) -> list[dict]:
    rows = []
    for v in args.v:
        for kind in args.kind:
            cnf = formula(kind, args.k, v, args.seed)
            ov = SatToOV().reduce(cnf)
            layout = OVToAttentionG1Layout()
            a = layout.reduce(ov)
            truth = float(np.square(att.exact_attention(a)).sum())
            need = layout.required_accuracy(a)
            for rule, kw in [("left-riemann", {"calls": c}) for c in args.riemann] + [
                ("gauss-legendre", {"panels": p, "adaptive": False}) for p in args.panels
            ]:
                arrow = AttentionToGradient(rule, **kw)
                t0 = time.perf_counter()
                est = arrow.solve(a, agr.exact_oracle).frob2
                row = {
                    "v": v,
                    "kind": kind,
                    "N": ov.N,
                    "n": 2 * ov.N,
                    "m": ov.m,
                    "rule": rule,
                    "calls": int(arrow.extra_calls),
                    "f1": truth,
                    "abs_error": abs(est - truth),
                    "needed": need,
                    "decides": bool(abs(est - truth) < need),
                    "seconds": time.perf_counter() - t0,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def cmd_as23(args) -> list[dict]:
    rows = []
    for v in args.v:
        cnf = formula("planted", args.k, v, args.seed)
        ov = SatToOV().reduce(cnf)
        N, m = ov.N, ov.m
        D = 6 * m
        # h_no - h_yes = 4 for the Gap-Hamming gadget (docs/theory.md §6.2)
        beta = 4.0 * D * math.log(8 * N) / 4
        log_yes = beta * (D - 2 * m) / (4 * D) - beta / 2 - math.log(2 * N)
        row = {
            "v": v,
            "N": N,
            "n": 2 * N,
            "m": m,
            "d_tilde": 2 * D,
            "beta": beta,
            "entry_B": math.sqrt(beta),
            "log10_yes_value": log_yes / math.log(10),
            "float64": "ok" if log_yes / math.log(10) > -307 else "underflows",
            "float32": "ok" if log_yes / math.log(10) > -37 else "underflows",
        }
        if N <= 64:  # check the formula against the built instance and a float64 forward pass
            gh = OVToGapHamming().reduce(ov)
            t = GapHammingToAttentionAS23().reduce(gh)
            row["log10_yes_built"] = t.meta["log10_yes_lb"]
            T = att.exact_attention(t)[:N, 0]
            row["float64_forward_max_T"] = float(T.max())
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def cmd_fast(args) -> list[dict]:
    rows: list[dict] = []
    for kind, v, cnf in formulas(args):
        for spec in args.solvers:
            solver, opts = parse_solver_spec(spec)
            for via in args.via:
                try:
                    row = run_chain(cnf, via, solver, args.dtype, args.device, opts)
                except Exception as exc:  # a crash is a finding too
                    row = {
                        "via": via,
                        "v": v,
                        "outcome": f"crash: {type(exc).__name__}: {exc}",
                        "correct": False,
                    }
                row["kind"], row["solver"] = kind, spec
                if str(row["outcome"]).startswith("error: poly refuses"):
                    row["outcome"] = "refused" + row["outcome"][len("error: poly refuses") :]
                emit(rows, row)
    return rows


def parse_solver_spec(spec: str) -> tuple[str, dict]:
    """'poly[degree=3,max_rank=1000000]' -> ('poly', {'degree': 3, 'max_rank': 1000000})."""
    if "[" not in spec:
        return spec, {}
    name, _, rest = spec.partition("[")
    opts = {}
    for item in rest.rstrip("]").split(","):
        k, _, v = item.partition("=")
        opts[k.strip()] = json.loads(v)
    return name, opts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    for name in ("chain", "calculus", "as23", "fast"):
        q = sub.add_parser(name)
        q.add_argument("--v", type=int, nargs="+", default=[12])
        q.add_argument("--k", type=int, default=3)
        q.add_argument("--seed", type=int, default=1)
        q.add_argument("--kind", nargs="+", default=["planted", "unsat"])
        q.add_argument("--via", nargs="+", default=list(VIAS))
        q.add_argument("--solver", default="streaming")
        q.add_argument("--solvers", nargs="+", default=["poly", "random-features"])
        q.add_argument("--dtype", default="float32")
        q.add_argument("--device", default="cpu")
        q.add_argument("--riemann", type=int, nargs="+", default=[16, 256, 1024])
        q.add_argument("--panels", type=int, nargs="+", default=[8, 32])
        q.add_argument("--threads", type=int, default=0)
        q.add_argument("--reference", default=None, help="float64 reference solver for the error columns")
        q.add_argument("--out", default=None)
    args = p.parse_args(argv)
    from harness.measure.threads import limit_threads

    with limit_threads(args.threads or None):
        cmd = {"chain": cmd_chain, "calculus": cmd_calculus, "as23": cmd_as23, "fast": cmd_fast}[args.what]
        rows = cmd(args)
    out = args.out or os.path.join(HERE, "results", f"reductions_{args.what}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        json.dump({"machine": machine(), "args": vars(args), "rows": rows}, fh, indent=1, default=str)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
