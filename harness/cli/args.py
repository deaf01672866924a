"""Argument helpers shared by the subcommands: typed values, the solver arguments, --opt parsing."""

from __future__ import annotations

import argparse
import json

from harness.errors import HarnessError


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def parse_options(items: list[str] | None) -> dict:
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


def solver_options(args) -> dict:
    """--opt key=value pairs plus the named shortcuts --eps, --degree, --max-rank."""
    out = parse_options(args.opt)
    for key in ("eps", "degree", "max_rank"):
        if getattr(args, key, None) is not None:
            out[key] = getattr(args, key)
    return out


def threads(args) -> int | None:
    """--threads for `harness.measure.threads.limit_threads` (absent or 0: leave torch's default)."""
    return getattr(args, "threads", None) or None


def add_attention_args(p: argparse.ArgumentParser) -> None:
    """--attention MODULE:FN and the capabilities it may declare (harness.from_attention)."""
    p.add_argument(
        "--attention",
        default=None,
        metavar="MODULE:FN",
        help="an attention function fn(q, k, v, *, scale) -> (N, Lq, d) instead of --solver, "
        "e.g. torch.nn.functional:scaled_dot_product_attention",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--exact",
        dest="declare_exact",
        action="store_const",
        const=True,
        default=None,
        help="declare the attention function exact (default: its `exact` attribute, else approximate)",
    )
    g.add_argument(
        "--approximate",
        dest="declare_exact",
        action="store_const",
        const=False,
        help="declare the attention function approximate",
    )
    p.add_argument(
        "--self-attention-only",
        action="store_const",
        const=True,
        default=None,
        help="the attention function needs Lq == Lk (other instances are declined)",
    )
    p.add_argument(
        "--float32-only",
        action="store_const",
        const=False,
        default=None,
        dest="supports_float64",
        help="the attention function does not support float64 (the suite runs float32)",
    )


def resolve_solver(args):
    """The Solver named by --solver, or built by harness.from_attention from --attention (not both)."""
    from harness.solvers import get_solver

    att = getattr(args, "attention", None)
    if att:
        if getattr(args, "solver", None) not in (None, getattr(args, "_solver_default", None)):
            raise HarnessError("give either --solver or --attention, not both")
        from harness.solvers.attention import from_attention
        from harness.solvers.registry import resolve_object

        return from_attention(
            resolve_object(att, what="attention function"),
            name=att,
            exact=getattr(args, "declare_exact", None),
            self_attention_only=getattr(args, "self_attention_only", None),
            supports_float64=getattr(args, "supports_float64", None),
        )
    if not getattr(args, "solver", None):
        raise HarnessError("give --solver NAME (or module:attr) or --attention MODULE:FN")
    return get_solver(args.solver)


def add_solver_args(p: argparse.ArgumentParser, default: str | None = "closed-form") -> None:
    p.add_argument("--solver", default=default, help="solver name or module:attr")
    p.set_defaults(_solver_default=default)
    add_attention_args(p)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument(
        "--opt",
        action="append",
        metavar="KEY=VALUE",
        help="solver option, repeatable (e.g. --opt m=1024 for random-features)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--eps", type=float, default=None, help="target absolute max-norm gradient error (poly, poly-chained)"
    )
    p.add_argument("--degree", type=int, default=None, help="polynomial degree (poly, poly-chained)")
    p.add_argument(
        "--max-rank",
        type=int,
        default=None,
        dest="max_rank",
        help="feature-rank budget; poly refuses above it",
    )
