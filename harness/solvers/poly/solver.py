"""`poly`: the Alman-Song polynomial method for all LoRA adapter gradients, O(N L k d) time, no L x L
matrix, with an a posteriori certified max-norm error bound, rounding included (features.py,
fused.py, bound.py, certificate.py; the dense twin is naive.py).
"""

from __future__ import annotations

import numpy as np
import torch

from harness import theory
from harness.errors import HarnessError
from harness.instance import Instance
from harness.solvers.base import Result, Solver
from harness.solvers.options import Option
from harness.solvers.poly.causal import causal_poly_gradients
from harness.solvers.poly.certificate import check_target, solve_certified
from harness.solvers.poly.features import TorchPlan, features
from harness.solvers.poly.fused import poly_gradients, preprocess
from harness.solvers.poly.moments import moment_gradients


class PolySolver(Solver):
    name = "poly"
    exact = False
    cost = "O(N L k d), k = C(d+g, g); almost linear when R = o(log L)"
    description = (
        "Alman-Song polynomial method (Taylor, monomial features), a posteriori certified max-norm error"
    )
    options = {
        "eps": Option(
            float, None, gt=0, auto=True, help=f"target max-norm error (auto: {theory.DEFAULT_EPS:g})"
        ),
        "degree": Option(int, None, min=0, auto=True, help="Taylor degree g (auto: from eps)"),
        "max_rank": Option(int, theory.DEFAULT_MAX_RANK, min=1, help="refuse above this feature rank k"),
    }

    def _gradients(self, inst: Instance, t: dict, g: int, prep: dict | None = None):
        a = (t, inst.alpha, inst.beta, inst.r, inst.adapted, g)
        if inst.causal:  # the chunkwise algorithm of causal linear attention (poly/causal.py)
            return causal_poly_gradients(*a, prep=prep)
        if self.kernel == "moments":
            return moment_gradients(*a, prep=prep)
        return poly_gradients(*a, mode=self.kernel, prep=prep)

    def _solve(self, inst: Instance, dtype, device, eps=None, degree=None, max_rank=None) -> Result:
        return solve_certified(self, inst, dtype, device, eps, degree, max_rank, gradients=self._gradients)

    #: the gradient kernel: "moments" (two passes, moments.py; default), or fused.poly_gradients'
    #: "gemm" / "backward" modes (None: fused.gradient_mode)
    kernel: str | None = "moments"

    def _ops(self, inst: Instance, cert: dict) -> int:
        return cert["ops_poly"]

    def forward(
        self, inst: Instance, *, dtype=None, device=None, eps=None, degree=None, max_rank=None
    ) -> np.ndarray:
        """softmax(beta Q K^T) V with the degree of `theory.certify` (keys centred, as the solver)."""
        from harness.solvers.base import resolve_device, resolve_dtype

        eps, degree = check_target(eps, degree)
        dt = resolve_dtype(dtype)
        cert = theory.certify(inst, eps=eps, degree=degree, max_rank=max_rank)
        msg = theory.refusal_message(self.name, cert)
        if msg:
            raise HarnessError(msg)
        t = inst.as_torch(dtype=dt, device=resolve_device(device))
        if inst.causal:
            with torch.no_grad():
                res = causal_poly_gradients(
                    t, inst.alpha, inst.beta, inst.r, (), cert["degree"], output=True, rows=False
                )
            return res[2]["output"].cpu().double().numpy()
        with torch.no_grad():
            P = preprocess(t, inst.alpha, inst.beta, inst.r)
            plan = TorchPlan(inst.d, cert["degree"], dt, P["q"].device)
            U1 = (features(P["xq"], plan) * plan.w).transpose(-1, -2)
            U2 = features(P["xk"], plan).transpose(-1, -2)
            out = (U1 @ (U2.transpose(-1, -2) @ P["V"])) / (U1 @ U2.sum(-2, keepdim=True).transpose(-1, -2))
        return out.cpu().double().numpy()
