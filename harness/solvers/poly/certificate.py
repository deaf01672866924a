"""The certificate `poly` and `poly-chained` attach: `harness.theory.certify` before solving (with the
one-line refusals), then the floating-point facts of the run (dtype, rounding estimate, validity).
"""

from __future__ import annotations

import math

import torch

from harness import theory
from harness.errors import HarnessError
from harness.instance import Instance


def rounding_rel_estimate(g: int, k: int, R: float, dtype: torch.dtype) -> float:
    """P_g(x) near x = -R sums terms up to e^R to produce e^-R: relative rounding of about
    (g + 2 + log2 k) u e^(2R) (a heuristic, not a bound; see `finish_certificate`)."""
    u = float(torch.finfo(dtype).eps)
    return (g + 2 + math.log2(max(k, 1))) * u * math.exp(min(2 * R, 700.0))


def prepare(name: str, inst: Instance, eps, degree, max_rank, dtype: torch.dtype = torch.float64) -> dict:
    """Certificate for `name` (eps defaults to theory.DEFAULT_EPS when neither eps nor degree is
    given); raises the one-line refusal when the rank exceeds max_rank, eps_rel >= 1, or the score
    range is so large that cancellation in P_g makes the dtype's rounding dominate the kernel
    (which would otherwise come back as NaN/inf or noise)."""
    if eps is None and degree is None:
        eps = theory.DEFAULT_EPS
    cert = theory.certify(inst, eps=eps, degree=degree, max_rank=max_rank, exact_R=False)
    msg = theory.refusal_message(name, cert)
    if msg:
        raise HarnessError(msg)
    rel = rounding_rel_estimate(cert["degree"], cert["rank"], cert["R"], dtype)
    if rel >= 0.5:
        raise HarnessError(
            f"{name} refuses: instance is in the {cert['regime']} regime (R={cert['R']:.3g} vs log "
            f"L={cert['log_L']:.3g}): {str(dtype).replace('torch.', '')} cannot evaluate the degree "
            f"g={cert['degree']} Taylor kernel on [-R, R] (relative rounding ~{rel:.2g})"
        )
    return cert


def finish_certificate(cert: dict, dtype: torch.dtype, grads: dict, min_rowsum: float) -> dict:
    """Add the floating-point facts: dtype, unit roundoff u, non-finite gradients, non-positive row
    sums, and a rounding estimate. P_g(x) for x near -R sums terms up to e^R to get e^-R, so its
    computed relative error is about (g + 2 + log2 k) u e^(2R) ("rounding_rel_estimate", a heuristic,
    not a bound); "rounding_error_estimate" propagates it like the truncation error (2 rel * coefficient).
    "valid" is False when the gradients are not finite, a row sum is <= 0 or the relative rounding
    estimate reaches 1/2 (the result is then dominated by rounding, typically float32 or large R)."""
    u = float(torch.finfo(dtype).eps)
    cert = dict(cert)
    cert["dtype"] = str(dtype).replace("torch.", "")
    cert["unit_roundoff"] = u
    cert["min_rowsum"] = min_rowsum
    bad = [k for k, v in grads.items() if not bool(torch.isfinite(v).all())]
    cert["nonfinite"] = bad
    g, k, R = cert["degree"], cert["rank"], cert["R"]
    rel = rounding_rel_estimate(g, k, R, dtype)
    cert["rounding_rel_estimate"] = rel
    cert["rounding_error_estimate"] = 2 * rel * cert["coefficient"]
    cert["valid"] = bool(not bad and min_rowsum > 0 and rel < 0.5)
    warnings = []
    if bad or not min_rowsum > 0 or rel >= 0.5:
        warnings.append(
            f"{cert['dtype']} rounding breaks the kernel (relative rounding ~ {rel:.2g}, "
            f"min row sum {min_rowsum:.3g}, non-finite: {', '.join(bad) or 'none'})"
        )
    elif rel > cert["eps_rel"]:
        warnings.append(
            f"{cert['dtype']} rounding in the kernel (~{rel:.2g} relative) exceeds its truncation "
            f"error ({cert['eps_rel']:.2g}): error_bound holds in exact arithmetic only"
        )
    if cert.get("eps") is not None and cert["eps"] < 1e3 * u * max(cert["coefficient"], 1e-300):
        warnings.append(
            f"target eps={cert['eps']:.3g} is near the {cert['dtype']} rounding level; "
            "the certificate covers exact arithmetic only"
        )
    if warnings:
        cert["warning"] = "; ".join(warnings)
    return cert
