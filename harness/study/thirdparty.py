"""Third-party solvers in the study: `run --solver SPEC` (a registered name, `module:attr` or entry
point, resolved by `harness.solvers.get_solver`) and `run --attention MODULE:FN` (an attention
function `fn(q, k, v, *, scale)`, wrapped into an ordinary Solver by the referee's
`harness.from_attention`, which forms the LoRA loss around it and takes the adapter gradients by
autograd)."""

from __future__ import annotations

from harness.solvers.base import Solver


def resolve_solver(cell: dict) -> Solver:
    """The Solver a cell names: `get_solver(spec)`, or for kind "attention" the wrapped function."""
    from harness.solvers import get_solver

    if cell.get("kind") == "attention":
        from harness.solvers.attention import from_attention
        from harness.solvers.registry import resolve_object

        return from_attention(resolve_object(cell["solver"], what="attention function"), name=cell["solver"])
    return get_solver(cell["solver"])
