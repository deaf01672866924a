"""Core subcommands: generate, solve, solvers, check.

Other command modules may add kinds to `generate` by defining `register_generate(gen_subparsers)`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import resource
import sys
import time

import numpy as np

from harness.errors import HarnessError
from harness.families import FAMILIES, parse_adapt
from harness.io import load_instance, save_gradients, save_instance
from harness.solvers import get_solver, list_solvers


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _solver_options(args) -> dict:
    """--opt key=value pairs plus the named shortcuts --eps, --degree, --max-rank (and --threads,
    applied here)."""
    if getattr(args, "threads", None):
        import torch

        if args.threads < 1:
            raise HarnessError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    out = _parse_options(args.opt)
    for key in ("eps", "degree", "max_rank"):
        if getattr(args, key, None) is not None:
            out[key] = getattr(args, key)
    return out


def _parse_options(items: list[str] | None) -> dict:
    """--opt key=value (value parsed as JSON when it parses, else kept as a string)."""
    out = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise HarnessError(f"--opt expects key=value, got {item!r}")
        try:
            out[key.replace("-", "_")] = json.loads(val)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = val
    return out


def _add_solver_args(p: argparse.ArgumentParser, default: str | None = "closed-form") -> None:
    p.add_argument("--solver", default=default, help="solver name or module:attr")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE",
                   help="solver option, repeatable (e.g. --opt m=1024 for random-features)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--eps", type=float, default=None,
                   help="target absolute max-norm gradient error (poly, poly-chained)")
    p.add_argument("--degree", type=int, default=None, help="polynomial degree (poly, poly-chained)")
    p.add_argument("--max-rank", type=int, default=None, dest="max_rank",
                   help="feature-rank budget; poly refuses above it")


# ---------------------------------------------------------------- generate
def _cmd_generate_family(args) -> int:
    fam = FAMILIES[args.family]
    kw = dict(L=args.L, d=args.d, r=args.r, adapt=parse_adapt(args.adapt), seed=args.seed, N=args.N,
              beta=args.beta, alpha=args.alpha, cross=args.cross, dtype=args.dtype)
    if args.family == "threshold":
        kw["c"] = args.c
    else:
        kw["gamma"] = args.gamma
    inst = fam(**kw)
    sha = save_instance(inst, args.out)
    print(f"wrote {args.out}: {inst.describe()} seed={args.seed} sha256={sha[:16]}")
    return 0


def _register_generate(sub) -> None:
    gen = sub.add_parser("generate", help="generate an instance (families, sat-chain bundles, ...)")
    gsub = gen.add_subparsers(dest="family", metavar="KIND")
    gsub.required = True
    for name, fn in FAMILIES.items():
        p = gsub.add_parser(name, help=(fn.__doc__ or "").strip().splitlines()[0])
        p.add_argument("--L", type=_positive_int, required=True, help="sequence length")
        p.add_argument("--d", type=_positive_int, required=True, help="head dimension")
        p.add_argument("--r", type=_positive_int, default=1, help="LoRA rank (<= d)")
        if name == "threshold":
            p.add_argument("--c", type=float, default=1.0, help="gamma = c sqrt(log L)")
        else:
            p.add_argument("--gamma", type=float, default=1.0,
                           help="max(||X_q W_q||_inf, ||X_k W_k||_inf)")
        p.add_argument("--adapt", default="q,v", help="adapted weights, e.g. q,v or q,k,v")
        p.add_argument("--N", type=_positive_int, default=1, help="data points")
        p.add_argument("--beta", type=float, default=None, help="inverse temperature (default 1/d)")
        p.add_argument("--alpha", type=float, default=None, help="LoRA alpha (default r)")
        p.add_argument("--cross", action="store_true", help="independent X_q, X_k, X_v")
        p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", required=True)
        p.set_defaults(func=_cmd_generate_family)
    import harness.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"harness.commands.{info.name}")
        if hasattr(mod, "register_generate"):
            mod.register_generate(gsub)


# ---------------------------------------------------------------- solve
def _cmd_solve(args) -> int:
    inst = load_instance(args.instance)
    solver = get_solver(args.solver)
    opts = _solver_options(args)
    rss0 = _peak_rss_mib()
    t0 = time.perf_counter()
    res = solver.solve(inst, dtype=args.dtype, device=args.device, **opts)
    elapsed = time.perf_counter() - t0
    peak = _peak_rss_mib()
    if res.info.get("nonfinite"):
        raise HarnessError(f"solver {solver.name!r} returned a non-finite {res.info['nonfinite']}")
    print(f"instance: {inst.describe()}")
    print(f"solver:   {solver.name} ({'exact' if solver.exact else 'approximate'}, {args.dtype}, {args.device})")
    print(f"loss:     {res.loss:.17g}")
    print(f"time:     {elapsed:.4f} s")
    print(f"peak mem: {peak:.1f} MiB (process RSS; +{max(peak - rss0, 0):.1f} MiB during solve)")
    if res.ops is not None:
        print(f"ops:      {res.ops:.4g} flops")
    if res.certificate:
        print("certificate: " + json.dumps(res.certificate, sort_keys=True, default=str))
    if args.out:
        meta = {"solver": solver.name, "instance_sha256": inst.sha256, "seconds": elapsed,
                "ops": res.ops, "certificate": res.certificate, "dtype": args.dtype}
        save_gradients(res.grads, res.loss, args.out, meta=meta)
        print(f"wrote {args.out}")
    return 0


# ---------------------------------------------------------------- solvers
def _cmd_solvers(args) -> int:
    rows = [(s.name, "exact" if s.exact else "approximate", s.cost, s.description) for s in list_solvers()]
    w = [max(len(r[i]) for r in rows + [("name", "kind", "claimed cost", "")]) for i in range(3)]
    print(f"{'name':<{w[0]}}  {'kind':<{w[1]}}  {'claimed cost':<{w[2]}}  description")
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
    return 0


# ---------------------------------------------------------------- check
def _cmd_check(args) -> int:
    if args.instance is None:
        return _cmd_check_suite(args)
    from harness.checks import check_instance, instance_tolerance

    inst = load_instance(args.instance)
    err, rel, res, _ = check_instance(inst, args.solver, args.reference, args.dtype, args.device,
                                      _solver_options(args))
    tol = instance_tolerance(res, args.dtype, args.tol)
    ok = err <= tol
    print(f"{args.solver} vs {args.reference} on {inst.describe()}")
    print(f"max-norm error {err:.3e} (relative {rel:.3e}); tolerance {tol:.3e}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def _suite_budget(args) -> str:
    """--thorough / --budget NAME, else $LORA_HARNESS_CHECK_BUDGET = smoke | quick | default | thorough."""
    from harness.checks import BUDGETS

    name = os.environ.get("LORA_HARNESS_CHECK_BUDGET", "default").strip().lower() or "default"
    if getattr(args, "budget", None):
        name = args.budget
    if getattr(args, "thorough", False):
        name = "thorough"
    if name not in BUDGETS:
        raise HarnessError(f"LORA_HARNESS_CHECK_BUDGET={name!r}; choose from {', '.join(BUDGETS)}")
    return name


def _cmd_check_suite(args) -> int:
    """`lora-harness check --solver S [--claim-eps E] [--claim-exponent K] [--out-dir D] [--checks a,b]`:
    exit 0 with a summary table when all claims hold, 1 when one fails (minimal counterexample
    written and its path printed)."""
    from harness.checks import resolve_checks, run_suite

    name = _suite_budget(args)
    checks = resolve_checks(args.checks)
    t0 = time.perf_counter()
    report = run_suite(args.solver, claim_eps=args.claim_eps, claim_exponent=args.claim_exponent,
                       out_dir=args.out_dir, dtype=args.dtype, device=args.device,
                       opts=_solver_options(args), reference=args.reference or "autograd", budget=name,
                       checks=checks)
    print(report.table())
    print(f"({name} budget, {time.perf_counter() - t0:.1f} s)")
    for o in report.outcomes:
        if o.failed and o.counterexample:
            print(f"counterexample ({o.check}): {o.counterexample}")
    return 0 if report.ok else 1


def register(sub) -> None:
    _register_generate(sub)

    p = sub.add_parser("solve", help="compute adapter gradients of an instance")
    p.add_argument("instance")
    _add_solver_args(p)
    p.add_argument("--out", help="write gradients (.npz: dA_m, dB_m, loss)")
    p.set_defaults(func=_cmd_solve)

    p = sub.add_parser("solvers", help="list solvers: name, exact/approximate, claimed cost")
    p.set_defaults(func=_cmd_solvers)

    p = sub.add_parser("check", help="max-norm error of a solver against the reference (or the full suite)")
    p.add_argument("instance", nargs="?", help="instance .npz (omit to run the property suite)")
    _add_solver_args(p, default=None)
    p.add_argument("--reference", default="autograd")
    p.add_argument("--tol", type=float, default=None,
                   help="max-norm tolerance (default: the certificate's bound, else 1e-8 / 1e-3 in float32)")
    p.add_argument("--claim-eps", type=float, default=None, help="claimed max-norm error (suite mode)")
    p.add_argument("--claim-exponent", type=float, default=None, help="claimed runtime exponent (suite mode)")
    p.add_argument("--out-dir", default="lora-harness-counterexamples",
                   help="where the suite writes minimal counterexamples")
    p.add_argument("--thorough", action="store_true",
                   help="suite mode: the nightly budget (2000 examples per property, timing up to L=8192)")
    p.add_argument("--budget", choices=["smoke", "quick", "default", "thorough"], default=None,
                   help="suite mode: how much work (default: $LORA_HARNESS_CHECK_BUDGET or 'default')")
    p.add_argument("--checks", default=None, metavar="A,B",
                   help="suite mode: run only these checks (see --list-checks; default: all default ones)")
    p.add_argument("--list-checks", action="store_true", help="list the suite's named checks and exit")
    p.set_defaults(func=_cmd_check_entry)


def _cmd_check_entry(args) -> int:
    if args.list_checks:
        from harness.checks import describe_checks

        print(describe_checks())
        return 0
    if not args.solver:
        raise HarnessError("check needs --solver NAME (or module:attr)")
    return _cmd_check(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)
