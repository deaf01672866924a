"""Solvers: a registry of exact and approximate LoRA adapter-gradient solvers.

`get_solver(spec)` accepts a registered name ("autograd", "closed-form", ...), a `module:attr`
string naming a callable, or a name registered under the `lora_harness.solvers` entry-point group.
"""

from harness.solvers.base import Result, Solver, resolve_dtype
from harness.solvers.registry import get_solver, list_solvers, register

__all__ = ["Result", "Solver", "get_solver", "list_solvers", "register", "resolve_dtype"]
