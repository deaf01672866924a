"""`poly`: the Alman-Song polynomial method for all LoRA adapter gradients, O(N L k d) time, no L x L
matrix, with a certified max-norm error bound (features.py, fused.py, certificate.py; the dense twin
is naive.py).
"""

from __future__ import annotations

import numpy as np
import torch

from harness import theory
from harness.errors import HarnessError
from harness.instance import Instance
from harness.lora import effective_weights
from harness.solvers._common import to_numpy
from harness.solvers.base import Result, Solver
from harness.solvers.options import Option
from harness.solvers.poly.certificate import finish_certificate, prepare
from harness.solvers.poly.features import poly_kernel_factors
from harness.solvers.poly.fused import poly_gradients


class PolySolver(Solver):
    name = "poly"
    exact = False
    cost = "O(N L k d), k = C(d+g, g); almost linear when R = o(log L)"
    description = "Alman-Song polynomial method (Taylor, monomial features), certified max-norm error"
    options = {
        "eps": Option(
            float, None, gt=0, auto=True, help=f"target max-norm error (auto: {theory.DEFAULT_EPS:g})"
        ),
        "degree": Option(int, None, min=0, auto=True, help="Taylor degree g (auto: from eps)"),
        "max_rank": Option(int, theory.DEFAULT_MAX_RANK, min=1, help="refuse above this feature rank k"),
    }

    def _gradients(self, inst: Instance, t: dict, g: int):
        return poly_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g)

    def _solve(self, inst: Instance, dtype, device, eps=None, degree=None, max_rank=None) -> Result:
        cert = prepare(self.name, inst, eps, degree, max_rank, dtype)
        t = inst.as_torch(dtype=dtype, device=device)
        with torch.no_grad():
            grads, loss, info = self._gradients(inst, t, cert["degree"])
        cert = finish_certificate(cert, dtype, grads, info["min_rowsum"])
        if cert["nonfinite"]:
            raise HarnessError(
                f"{self.name} failed: non-finite {', '.join(cert['nonfinite'])} at degree "
                f"g={cert['degree']}, R={cert['R']:.3g} ({cert.get('warning', '')})"
            )
        cert["ops"] = self._ops(inst, cert)
        out = to_numpy(grads)
        return Result(out, loss, self.name, ops=cert["ops"], certificate=cert, info=info)

    def _ops(self, inst: Instance, cert: dict) -> int:
        return cert["ops"]

    def forward(
        self, inst: Instance, *, dtype=None, device=None, eps=None, degree=None, max_rank=None
    ) -> np.ndarray:
        from harness.solvers.base import resolve_device, resolve_dtype

        cert = prepare(self.name, inst, eps, degree, max_rank, resolve_dtype(dtype))
        t = inst.as_torch(dtype=resolve_dtype(dtype), device=resolve_device(device))
        W = effective_weights(t, inst.alpha, inst.r)
        with torch.no_grad():
            U1, U2 = poly_kernel_factors(t["X_q"] @ W["q"], t["X_k"] @ W["k"], inst.beta, cert["degree"])
            V = t["X_v"] @ W["v"]
            out = (U1 @ (U2.transpose(-1, -2) @ V)) / (U1 @ U2.sum(-2, keepdim=True).transpose(-1, -2))
        return out.cpu().double().numpy()
