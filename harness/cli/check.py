"""`lora-harness check`: one instance against the reference (`check inst.npz --solver S`), or the
property suite of named checks on a solver (`check --solver S [--claim-eps E] [--claim-exponent K]
[--checks a,b]`; `--list-checks`; `--attention MODULE:FN`, `--forward-only`). Exit 0 when every claim
was checked and held, 1 when one fails, 4 when none failed but one was not verified (docs/referee.md)."""

from __future__ import annotations

import os
import time

from harness.cli.args import (
    add_solver_args,
    memory_limit,
    nonempty_path,
    nonneg_float,
    positive_float,
    resolve_solver,
    solver_options,
    threads,
)
from harness.errors import ExitCode, HarnessError
from harness.fsio import check_folder
from harness.io import load_instance
from harness.measure.threads import limit_threads


def _cmd_check(args) -> int:
    if args.instance is None:
        return _cmd_check_suite(args)
    from harness.checks import check_instance, instance_tolerance

    limit = memory_limit(args)
    inst = load_instance(args.instance, max_memory=limit)
    solver = resolve_solver(args)
    with limit_threads(threads(args)):
        err, rel, res, ref = check_instance(
            inst, solver, args.reference, args.dtype, args.device, solver_options(args), limit
        )
    tol, why = instance_tolerance(res, args.dtype, args.tol, reference=ref, claim_eps=args.claim_eps)
    ok = err <= tol
    print(f"{solver.name} vs {args.reference} on {inst.describe()}")
    print(
        f"max-norm error {err:.3e} (relative {rel:.3e}); tolerance {tol:.3e} = {why}: "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return ExitCode.OK if ok else ExitCode.CLAIM_FAILED


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
    exit 0 when every claim was checked and held, 1 when one fails (minimal counterexample written and
    its path printed), 4 when none failed but one was not verified."""
    from harness.checks import resolve_checks, run_suite

    name = _suite_budget(args)
    checks = resolve_checks(args.checks, args.forward_only) if args.checks else None
    check_folder(args.out_dir, "counterexample folder")  # before the suite runs, not after
    t0 = time.perf_counter()
    report = run_suite(
        resolve_solver(args),
        claim_eps=args.claim_eps,
        claim_exponent=args.claim_exponent,
        out_dir=args.out_dir,
        dtype=args.dtype,
        device=args.device,
        opts=solver_options(args),
        reference=args.reference or "autograd",
        budget=name,
        checks=checks,
        forward_only=args.forward_only,
        causal=args.causal,
    )
    print(report.table())
    print(f"({name} budget, {time.perf_counter() - t0:.1f} s)")
    for o in report.outcomes:
        if o.failed and o.counterexample:
            print(f"counterexample ({o.check}): {o.counterexample}")
    return report.exit_code


def register(sub) -> None:
    p = sub.add_parser("check", help="max-norm error of a solver against the reference (or the full suite)")
    p.add_argument("instance", nargs="?", help="instance .npz (omit to run the property suite)")
    add_solver_args(p, default=None)
    p.add_argument("--reference", default="autograd")
    p.add_argument(
        "--tol",
        type=nonneg_float,
        default=None,
        help="absolute max-norm tolerance (default: --claim-eps x max(1, |G_ref|_inf), else the "
        "certificate's bound, else 1e-8 / 1e-3 x max(1, |G_ref|_inf))",
    )
    p.add_argument(
        "--claim-eps",
        type=positive_float,
        default=None,
        help="claimed max-norm error, relative to max(1, |G_ref|_inf)",
    )
    p.add_argument(
        "--claim-exponent", type=positive_float, default=None, help="claimed runtime exponent (suite mode)"
    )
    p.add_argument(
        "--causal",
        action="store_true",
        help="suite mode: causal instances (query j attends keys m <= j); attention functions are "
        "called with is_causal=True",
    )
    p.add_argument(
        "--out-dir",
        type=nonempty_path,
        default="lora-harness-counterexamples",
        help="where the suite writes minimal counterexamples",
    )
    p.add_argument(
        "--thorough",
        action="store_true",
        help="suite mode: the nightly budget (2000 examples per property, timing up to L=8192)",
    )
    p.add_argument(
        "--budget",
        choices=["smoke", "quick", "default", "thorough"],
        default=None,
        help="suite mode: how much work (default: $LORA_HARNESS_CHECK_BUDGET or 'default')",
    )
    p.add_argument(
        "--checks",
        default=None,
        metavar="A,B",
        help="suite mode: run only these checks (see --list-checks; default: all default ones)",
    )
    p.add_argument("--list-checks", action="store_true", help="list the suite's named checks and exit")
    p.add_argument(
        "--forward-only",
        action="store_true",
        help="suite mode: check the attention output itself (accuracy against float64, permutation "
        "equivariance, large scores, the SAT chain's attention route, scaling)",
    )
    p.set_defaults(func=_cmd_check_entry)


def _cmd_check_entry(args) -> int:
    if args.list_checks:
        from harness.checks import describe_checks

        print(describe_checks())
        return 0
    if not args.solver and not args.attention:
        raise HarnessError("check needs --solver NAME (or module:attr) or --attention MODULE:FN")
    return _cmd_check(args)
