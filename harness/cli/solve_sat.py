"""`lora-harness solve-sat FORMULA.cnf --via lora|attention|attention-gradient --solver NAME`: decide
satisfiability only through calls to the named solver (plus O(N m) decode work and ceil(log2 N) extra
calls); prints `SAT` and a DIMACS `v ... 0` line, or `UNSAT` (reductions.chain; docs/reductions.md)."""

from __future__ import annotations

import time

from harness.cli.args import (
    add_attention_args,
    add_max_memory,
    memory_limit,
    resolve_solver,
    thread_count,
    threads,
)
from harness.measure.threads import limit_threads


def _cmd_solve_sat(args) -> int:
    from reductions.chain import solve_sat
    from reductions.problems.cnf import model_to_dimacs
    from reductions.sat_sources import read_dimacs

    limit = memory_limit(args)
    cnf = read_dimacs(args.formula, max_memory=limit)
    solver = resolve_solver(args)
    with limit_threads(threads(args)):
        t0 = time.perf_counter()
        run = solve_sat(
            cnf,
            args.via,
            solver,
            dtype=args.dtype,
            device=args.device,
            max_memory=limit,
            variant=args.variant,
            form=args.form,
            adapt=args.adapt,
            tau=args.tau,
        )
        elapsed = time.perf_counter() - t0
    print(
        f"c formula {args.formula}: v={cnf.nvars} m={cnf.m}; OV N={run.sizes['N']}; "
        f"route {args.via} via solver {solver.name} ({args.dtype})"
    )
    print(
        f"c oracle calls {run.calls}; time {elapsed:.3f} s "
        f"(oracle {run.seconds.get('oracle', 0.0):.3f} s); required accuracy "
        f"{run.margins.get('required_accuracy', float('nan')):.3g}"
    )
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
    p.set_defaults(_solver_default="closed-form")
    add_attention_args(p)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument(
        "--variant",
        default="g1",
        choices=["g1", "g1-e0"],
        help="gradient read-out: G1 (E = -e0) or its E = 0 variant",
    )
    p.add_argument("--form", default="cross", choices=["cross", "self"], help="LoRA embedding form")
    p.add_argument("--adapt", default="C1", help="LoRA adapters: C1 (q,v), C1-q (q), C2 (q,k,v)")
    p.add_argument(
        "--tau",
        default="1",
        choices=["1", "sqrt-d", "d"],
        help="attention temperature the P1 layout is realised under",
    )
    p.add_argument("--threads", type=thread_count, default=None, help="torch threads (default: torch's)")
    add_max_memory(p)
    p.set_defaults(func=_cmd_solve_sat)
