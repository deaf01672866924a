"""lora-limits: an executable test and reduction harness for the fine-grained complexity of
attention and LoRA adapter gradients (Alman-Song 2023/2024; Hu et al., ICLR 2025).

Data flows one way: generate -> Instance -> solver -> Result -> check / study / report.

    from harness import Instance, HarnessError, get_solver, families, strategies, certify
    from harness import run_suite, assert_solver_meets, from_attention, Refusal

Everything but `Instance` and `HarnessError` loads on first use, so `import harness` stays cheap
(no torch).
"""

from __future__ import annotations

import importlib

from harness._version import __version__
from harness.errors import HarnessError, Refusal
from harness.instance import Instance

#: name -> (module, attribute or None for the module itself)
_LAZY = {
    "get_solver": ("harness.solvers.registry", "get_solver"),
    "certify": ("harness.theory.certificate", "certify"),
    "run_suite": ("harness.checks.suite", "run_suite"),
    "assert_solver_meets": ("harness.checks.suite", "assert_solver_meets"),
    "from_attention": ("harness.solvers.attention", "from_attention"),
    "families": ("harness.families", None),
    "strategies": ("harness.strategies", None),
}

__all__ = [
    "HarnessError",
    "Instance",
    "Refusal",
    "__version__",
    "assert_solver_meets",
    "certify",
    "families",
    "from_attention",
    "get_solver",
    "run_suite",
    "strategies",
]


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
