"""Argument helpers shared by the subcommands: typed values, the solver arguments, --opt parsing."""

from __future__ import annotations

import argparse
import json
import math
import os

from harness.errors import HarnessError

#: torch.set_num_threads(100000) segfaults; nobody means more threads than this
MAX_THREADS = 1024


def _number(text: str, kind, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    v = _number(text, int, "an integer >= 1")
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def nonneg_int(text: str) -> int:
    """Seeds and degrees: integers >= 0 (numpy's generators refuse negative seeds)."""
    v = _number(text, int, "an integer >= 0")
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def finite_float(text: str) -> float:
    v = _number(text, float, "a number")
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def positive_float(text: str) -> float:
    v = finite_float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return v


def nonneg_float(text: str) -> float:
    v = finite_float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return v


def thread_count(text: str) -> int:
    v = positive_int(text)
    if v > MAX_THREADS:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_THREADS} (this machine has {os.cpu_count()} CPUs), got {v}"
        )
    return v


def nonempty_path(text: str) -> str:
    """An output path: '' would mean the current folder."""
    if text == "":
        raise argparse.ArgumentTypeError("empty path")
    return text


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
    """--threads for `harness.measure.threads.limit_threads` (absent: leave torch's default)."""
    return getattr(args, "threads", None)


def add_max_memory(p: argparse.ArgumentParser) -> None:
    """--max-memory SIZE: the memory guard's limit (harness.memguard)."""
    p.add_argument(
        "--max-memory",
        metavar="SIZE",
        default=os.environ.get("LORA_HARNESS_MAX_MEMORY"),
        help="refuse work estimated to need more memory than this, e.g. 8G, 512M, 2e9 or none "
        "(default: $LORA_HARNESS_MAX_MEMORY, else 80%% of the memory available)",
    )


def memory_limit(args):
    """The MemoryLimit of --max-memory (default: 80% of the memory available now)."""
    from harness.memguard import MemoryLimit

    return MemoryLimit.resolve(getattr(args, "max_memory", None))


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
    p.add_argument("--threads", type=thread_count, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--eps",
        type=positive_float,
        default=None,
        help="target absolute max-norm gradient error (poly, poly-chained)",
    )
    p.add_argument("--degree", type=nonneg_int, default=None, help="polynomial degree (poly, poly-chained)")
    p.add_argument(
        "--max-rank",
        type=positive_int,
        default=None,
        dest="max_rank",
        help="feature-rank budget; poly refuses above it",
    )
    add_max_memory(p)
