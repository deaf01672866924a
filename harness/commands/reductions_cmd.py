"""Reduction-chain subcommands (REDUCTIONS.md; docs/reductions.md):

* `lora-harness solve-sat FORMULA.cnf --via lora|attention|attention-gradient --solver NAME`:
  decide satisfiability only through calls to the named solver (plus O(N m) decode work and
  ceil(log2 N) extra calls); prints `SAT` and a DIMACS `v ... 0` line, or `UNSAT`.
* `lora-harness generate sat-chain --k 3 --vars 20 --seed 1 --out DIR`: a hardness bundle (the
  DIMACS file, every intermediate instance, metadata JSON).
* `lora-harness reductions [--png PATH]`: the graph of problems and reductions.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from harness.errors import HarnessError


def _cmd_solve_sat(args) -> int:
    from reductions.chain import solve_sat
    from reductions.problems.cnf import model_to_dimacs
    from reductions.sat_sources import read_dimacs

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cnf = read_dimacs(args.formula)
    t0 = time.perf_counter()
    run = solve_sat(cnf, args.via, args.solver, dtype=args.dtype, device=args.device,
                    variant=args.variant, form=args.form, adapt=args.adapt, tau=args.tau)
    elapsed = time.perf_counter() - t0
    print(f"c formula {args.formula}: v={cnf.nvars} m={cnf.m}; OV N={run.sizes['N']}; "
          f"route {args.via} via solver {args.solver} ({args.dtype})")
    print(f"c oracle calls {run.calls}; time {elapsed:.3f} s "
          f"(oracle {run.seconds.get('oracle', 0.0):.3f} s); required accuracy "
          f"{run.margins.get('required_accuracy', float('nan')):.3g}")
    if run.model is None:
        print("UNSAT")
    else:
        print("SAT")
        print(model_to_dimacs(run.model))
    return 0


def register(sub) -> None:
    p = sub.add_parser("solve-sat", help="decide a DIMACS CNF through the reduction chain and a solver")
    p.add_argument("formula", help="DIMACS .cnf file")
    p.add_argument("--via", default="lora", choices=["lora", "attention", "attention-gradient"])
    p.add_argument("--solver", default="closed-form", help="solver name or module:attr (the oracle)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--variant", default="g1", choices=["g1", "g1-e0"],
                   help="gradient read-out: G1 (E = -e0) or its E = 0 variant")
    p.add_argument("--form", default="cross", choices=["cross", "self"], help="LoRA embedding form")
    p.add_argument("--adapt", default="C1", help="LoRA adapters: C1 (q,v), C1-q (q), C2 (q,k,v)")
    p.add_argument("--tau", default="1", choices=["1", "sqrt-d", "d"],
                   help="attention temperature the P1 layout is realised under")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave the default)")
    p.set_defaults(func=_cmd_solve_sat)

    p = sub.add_parser("reductions", help="show the graph of problems and reductions")
    p.add_argument("--png", help="also write the graph as a PNG")
    p.set_defaults(func=_cmd_reductions)


def _cmd_reductions(args) -> int:
    from reductions.graph import build_graph, describe, draw_png

    G = build_graph()
    print(describe(G))
    if args.png:
        draw_png(G, args.png)
        print(f"wrote {args.png}")
    return 0


# ---------------------------------------------------------------- generate sat-chain
def _source(args):
    from reductions import sat_sources as S

    if args.kind == "planted":
        return S.planted(args.k, args.vars, args.seed)
    if args.kind == "unsat":
        return S.unsat(args.k, args.vars, args.seed)
    if args.kind == "tseitin":  # --vars = number of graph vertices (3-regular: 1.5 x vars variables)
        return S.tseitin(args.vars, 3, args.seed)
    if args.kind == "pigeonhole":  # --vars = pigeons, holes = pigeons - 1
        return S.pigeonhole(args.vars, args.vars - 1)
    if args.kind == "coloring":  # --vars = vertices of G(n, 1/2), 3 colours
        return S.coloring(args.vars, 0.5, 3, args.seed)
    raise HarnessError(f"unknown kind {args.kind!r}")


def write_bundle(cnf, out: str | os.PathLike, dtype: str = "float64", as23: bool | None = None) -> dict:
    """Write the hardness bundle of one formula to folder `out` (created); returns the metadata."""
    import numpy as np

    from harness.io import atomic_write_bytes, atomic_write_text, npz_bytes, save_instance
    from harness.instance import meta_json
    from reductions.arrows.gradient_to_lora import GradientToLoRA
    from reductions.arrows.ov_to_attention import GapHammingToAttentionAS23, OVToAttentionP1
    from reductions.arrows.ov_to_gadgets import OVToGapHamming, OVToMaxIP
    from reductions.arrows.ov_to_gradient import OVToGradientG1
    from reductions.arrows.sat_to_ov import SatToOV
    from reductions.problems import attention as att
    from reductions.problems import attention_gradient as agr
    from reductions.sat_sources import write_dimacs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np_dtype = np.float32 if dtype == "float32" else np.float64
    answer = cnf.solve()
    files: dict[str, dict] = {}
    write_dimacs(cnf, out / "formula.cnf", comments=[f"lora-limits sat-chain {json.dumps(cnf.meta, sort_keys=True)}"])
    files["formula.cnf"] = {"problem": "k-SAT", "v": cnf.nvars, "m": cnf.m}

    ov = SatToOV().reduce(cnf)
    atomic_write_bytes(out / "ov.npz", npz_bytes(ov.arrays()))
    files["ov.npz"] = {"problem": "OV", "N": ov.N, "m": ov.m, "entries": "{0,1}",
                       "orthogonal": answer is not None}
    mip = OVToMaxIP().reduce(ov)
    gh = OVToGapHamming().reduce(ov)
    atomic_write_bytes(out / "maxip.npz", npz_bytes(mip.arrays()))
    atomic_write_bytes(out / "gap_hamming.npz", npz_bytes(gh.arrays()))
    files["maxip.npz"] = {"problem": "Max-IP", "N": ov.N, "D": 3 * ov.m, "target": mip.target}
    files["gap_hamming.npz"] = {"problem": "Gap-Hamming", "N": ov.N, "D": 6 * ov.m, "t": gh.t, "eps": gh.eps}

    p1a = OVToAttentionP1()
    p1 = p1a.reduce(ov)
    save_instance(att.to_instance(p1, np_dtype), out / "attention_p1.npz")
    files["attention_p1.npz"] = {"problem": "AAttC", "layout": "P1", "n": p1.n, "d": p1.d, **p1.bounds(),
                                 "score_range_R": p1.meta["score_range"], "beta": p1.meta["beta"],
                                 "yes_lb": p1.meta["yes_lb"], "no_ub": p1.meta["no_ub"],
                                 "required_accuracy": p1a.required_accuracy(p1)}
    as23 = (ov.N <= 256) if as23 is None else as23  # 2N x 12m floats: keep bundles small
    if as23:
        a23 = GapHammingToAttentionAS23().reduce(gh)
        save_instance(att.to_instance(a23, np.float64), out / "attention_as23.npz")
        files["attention_as23.npz"] = {"problem": "AAttC", "layout": "AS23", "n": a23.n, "d": a23.d,
                                       **a23.bounds(), "log10_yes_value": a23.meta["log10_yes_lb"],
                                       "note": "underflows float64 below 1e-308: evaluate in log space"}
    for variant, zero in (("g1", False), ("g1_e0", True)):
        arrow = OVToGradientG1(zero_E=zero)
        g = arrow.reduce(ov)
        name = f"gradient_{variant}.npz"
        save_instance(agr.to_instance(g, np_dtype), out / name)
        b = g.bounds()
        files[name] = {"problem": "AAttLGC", "layout": arrow.name, "n": g.n, "d": g.d, "B": b["B"],
                       "score_range_R": b["score_range"], "readout": g.meta["readout"],
                       "yes_lb": g.meta["yes_lb"], "no_ub": g.meta["no_ub"], "threshold": g.meta["threshold"],
                       "required_accuracy": g.meta["eps_needed"], "spec_accuracy": g.meta["eps_spec"],
                       "realised_as": "Instance, adapter on q only, r = d (dA_q = dL/dX)"}
        if not zero:
            for form, adapt in (("cross", "C1"), ("cross", "C2"), ("self", "C1"), ("self", "C2")):
                lo = GradientToLoRA(form, adapt)
                x = lo.reduce(g)
                name = f"lora_{form}_{adapt}.npz"
                save_instance(x.inst.replace(**{k: v.astype(np_dtype) for k, v in x.inst.arrays.items()}),
                              out / name)
                files[name] = {"problem": "ALoRAGC", "embedding": lo.name, "L": x.inst.L, "d": x.inst.d,
                               "r": x.inst.r, "adapt": list(x.inst.adapted), "alpha": x.inst.alpha,
                               "beta": x.inst.beta, **x.bounds(), "readout": "dA_q[m, m+1] (r/alpha scale)",
                               "required_accuracy": lo.required_accuracy(x)}
    meta = {"generator": "lora-harness generate sat-chain", "formula": {"v": cnf.nvars, "m": cnf.m, **cnf.meta},
            "answer": "SAT" if answer is not None else "UNSAT", "answer_source": "python-sat (cadical153)",
            "model": None if answer is None else "".join("1" if b else "0" for b in answer),
            "N": ov.N, "n": 2 * ov.N, "log2_N": int(math.log2(ov.N)) if ov.N else 0,
            "dtype": dtype, "files": files}
    atomic_write_text(out / "metadata.json", json.dumps(json.loads(meta_json(meta)), indent=2, sort_keys=True) + "\n")
    return meta


def _cmd_generate_sat_chain(args) -> int:
    cnf = _source(args)
    meta = write_bundle(cnf, args.out, args.dtype)
    print(f"wrote {args.out}: {len(meta['files'])} files; v={cnf.nvars} m={cnf.m} N={meta['N']} "
          f"answer={meta['answer']}")
    return 0


def register_generate(gsub) -> None:
    p = gsub.add_parser("sat-chain", help="hardness bundle: k-CNF and every instance of the SETH chain")
    p.add_argument("--k", type=int, default=3, help="clause width")
    p.add_argument("--vars", type=int, required=True, help="number of variables v (N = 2^ceil(v/2))")
    p.add_argument("--kind", default="planted", choices=["planted", "unsat", "tseitin", "pigeonhole", "coloring"],
                   help="planted / unsat random k-CNF, or a CNFgen family (--vars = its size parameter)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_cmd_generate_sat_chain)
