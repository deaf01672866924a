"""AAttLGC -> ALoRAGC by the App. D (arXiv v2) / App. E (ICLR) embedding of Hu et al. (arXiv:2406.03136;
docs/theory.md §6.5), in the cross-attention form and the self-attention form, for C1 (adapters q or q,v)
and C2 (q,k,v).

AAttLGC head dimension r (the LoRA rank), LoRA width d > r. Cross form (d = r + p, p >= 1):
    X_q = [A1 | 0], W*_q = 0, B_q = [I_r; 0], A_q = [(r/alpha) X | 0]   => W_q = [[X, 0], [0, 0]]
    X_k = [A2 | 0], W*_k = I;  X_v = [A3 | 0], W*_v = blockdiag(Y, 0);  Y_target = [E | 0]
    beta = 1/r (AS24's temperature; `fold=True` puts it into X_q = [A1/r | 0] with beta = 1)
Self form (d = 3r + 1, one input X_in = [A1 | A2 | A3 | 0] for q, k and v):
    B_q selects block 1, W*_k maps block 2 -> coordinates 0..r-1, W*_v maps block 3 -> (.) Y.
Other adapters (v in C1, k and v in C2) get B = 0, A = 0: W_m = W*_m, and their gradients vanish.
Then the scores are A1 X A2^T / r, L_LoRA = L_att(X), and
    dL/dA_q = (alpha/r) B_q^T G_Wq = (alpha/r) [dL_att/dX | 0],  so  g = (r/alpha) dA_q[:, :r].
"""

from __future__ import annotations

import numpy as np

from harness.errors import HarnessError
from harness.instance import Instance
from reductions.arrows.base import Arrow
from reductions.problems.attention_gradient import AAttLGCInstance
from reductions.problems.lora import ALoRAGCInstance

SCENARIOS = {"C1": ("q", "v"), "C1-q": ("q",), "C2": ("q", "k", "v")}


def parse_scenario(text: str) -> tuple[str, ...]:
    key = text.strip()
    if key in SCENARIOS:
        return SCENARIOS[key]
    adapt = tuple(m for m in ("q", "k", "v") if m in {x.strip() for x in key.split(",")})
    if "q" not in adapt or len(adapt) != len({x for x in key.split(",") if x.strip()}):
        raise HarnessError(
            f"adapter set {text!r} must include q and use only q, k, v "
            f"(or name a scenario: {', '.join(SCENARIOS)})"
        )
    return adapt


class GradientToLoRA(Arrow):
    name = "AppD"
    source, target = "AAttLGC", "ALoRAGC"
    spec = "docs/theory.md §6.5"
    needs = "lora-gradients"
    gives = "gradient"

    def __init__(
        self,
        form: str = "cross",
        adapt: str | tuple = "q,v",
        alpha: float | None = None,
        pad: int = 1,
        fold: bool = False,
    ):
        if form not in ("cross", "self"):
            raise HarnessError(f"unknown embedding form {form!r}; choose cross or self")
        if pad < 1:
            raise HarnessError(f"the embedding needs d > r: pad must be >= 1, got {pad}")
        self.form = form
        self.needs_square = form == "self"
        self.adapt = parse_scenario(adapt) if isinstance(adapt, str) else tuple(adapt)
        self.alpha, self.pad, self.fold = alpha, int(pad), bool(fold)
        self.name = f"AppD-{form}-{'+'.join(self.adapt)}"

    def reduce(self, src: AAttLGCInstance) -> ALoRAGCInstance:
        r = src.d
        alpha = float(r if self.alpha is None else self.alpha)
        n_q, n_k = src.A1.shape[0], src.A2.shape[0]
        beta, A1 = (1.0, src.A1 / r) if self.fold else (1.0 / r, src.A1)
        if self.form == "cross":
            d = r + self.pad
            pad = lambda M: np.hstack([M, np.zeros((M.shape[0], d - M.shape[1]))])  # noqa: E731
            Xq, Xk, Xv = pad(A1), pad(src.A2), pad(src.A3)
            Wk = np.eye(d)
            Wv = np.zeros((d, d))
            Wv[:r, :r] = src.Y
        else:
            if n_q != n_k:
                raise HarnessError(f"the self-attention form needs as many queries as keys ({n_q} != {n_k})")
            d = 3 * r + 1
            Xq = np.hstack([A1, src.A2, src.A3, np.zeros((n_q, 1))])
            Xk = Xv = Xq
            Wk = np.zeros((d, d))
            Wk[r : 2 * r, :r] = np.eye(r)
            Wv = np.zeros((d, d))
            Wv[2 * r : 3 * r, :r] = src.Y
        Bq = np.zeros((d, r))
        Bq[:r, :r] = np.eye(r)
        Aq = np.zeros((r, d))
        Aq[:, :r] = (r / alpha) * src.X
        arrays = {
            "X_q": Xq,
            "X_k": Xk,
            "X_v": Xv,
            "W_q": np.zeros((d, d)),
            "W_k": Wk,
            "W_v": Wv,
            "A_q": Aq,
            "B_q": Bq,
            "Y": np.hstack([src.E, np.zeros((n_q, d - r))]),
        }
        for m in self.adapt:
            if m != "q":
                arrays[f"A_{m}"] = np.zeros((r, d))
                arrays[f"B_{m}"] = np.zeros((d, r))
        meta = {
            "problem": "ALoRAGC",
            "embedding": self.name,
            "r_att": r,
            **{k: v for k, v in src.meta.items() if isinstance(v, (int, float, str))},
        }
        inst = Instance.from_arrays(arrays, alpha=alpha, beta=beta, meta=meta)
        return ALoRAGCInstance(inst, r, self.form, {"alpha": alpha, "d": d, "adapt": self.adapt}, source=src)

    def decode(self, target: ALoRAGCInstance, grads, oracle=None) -> np.ndarray:
        """g = (r/alpha) dA_q[:, :r] (the first r columns; the rest are zero)."""
        if "dA_q" not in grads:
            raise HarnessError("the LoRA read-out needs dA_q")
        r = target.r
        return (r / target.inst.alpha) * np.asarray(grads["dA_q"], np.float64)[:, :r]

    def required_accuracy(self, target: ALoRAGCInstance) -> float:
        """Same eps as the AAttLGC instance, times alpha/r (a sub-block has no larger max-norm error)."""
        src = target.source
        eps = src.meta.get("eps_needed", float("nan"))
        return eps * target.inst.alpha / target.r

    def accuracy_statement(self) -> str:
        return "eps_LoRA = (alpha/r) eps_AAttLGC (read-out is an exact sub-block)"
