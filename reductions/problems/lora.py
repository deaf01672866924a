"""ALoRAGC, the approximate LoRA adapter gradient (Hu et al. (arXiv:2406.03136) Problems 1-3;
docs/theory.md §2.2).

An ALoRAGC instance IS a harness Instance: the general loss
1/(2N) sum_i ||softmax(beta X_q W_q W_k^T X_k^T) X_v W_v - Y||_F^2, W_m = W*_m + (alpha/r) B_m A_m;
a solver must return every adapter gradient within eps in max norm. `ALoRAGCInstance` wraps the
Instance together with what the App. D embedding (reductions.arrows.gradient_to_lora) needs to read
the AAttLGC gradient back: the AAttLGC head dimension r, the LoRA scale, and the source.

`lora_oracle(solver)`: any harness solver as an ALoRAGC oracle (returns `Result.grads`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.instance import Instance
from harness.lora import effective_weights


@dataclass(frozen=True, eq=False)
class ALoRAGCInstance:
    inst: Instance
    r: int
    form: str = "cross"
    meta: dict = field(default_factory=dict)
    source: Any = None

    def bounds(self) -> dict[str, float]:
        """Gamma quantities of Hu et al. Thm 4.1 (docs/theory.md §5.3, §6.5): ||X_k W_k||_inf and
        ||(alpha/r) X_q B_q A_q||_inf (with beta folded in: ||beta X_q W_q||_inf)."""
        a = self.inst.arrays
        Wq = effective_weights(a, self.inst.alpha, self.inst.r)["q"]
        return {
            "Gamma_K": float(np.abs(a["X_k"] @ a["W_k"]).max()),
            "Gamma_Q": float(np.abs(a["X_q"] @ Wq).max()),
            "Gamma_Q_beta": float(np.abs(self.inst.beta * (a["X_q"] @ Wq)).max()),
            "Y_max": float(np.abs(a["Y"]).max()),
        }


def lora_oracle(solver, dtype: str = "float64", device: str = "cpu", **options):
    """An ALoRAGC oracle from a harness solver: the gradients dict of solver.solve(instance)."""
    from harness.solvers import get_solver

    s = get_solver(solver)

    def oracle(x: ALoRAGCInstance) -> dict:
        return dict(s.solve(x.inst, dtype=dtype, device=device, **options).grads)

    oracle.__name__ = f"lora[{s.name},{dtype}]"
    return oracle
