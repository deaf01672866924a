"""The certificate's promise as one assertion (issue 14), shared by the unmasked and the causal tests."""

from __future__ import annotations

import math

from harness import highprec
from harness.errors import HarnessError
from harness.solvers import get_solver


def assert_within_certificate(inst, res, kind: str = "longdouble") -> tuple[float, float]:
    """|res - exact| <= error_bound, measured against the high-precision reference `kind` plus that
    reference's own error bound (a float64 reference is not enough: its own rounding, ~3e-18 on a
    gradient of 6e-6, exceeded a valid 7.6e-19 certificate the nightly tier drew). Returns (the
    measured error, the reference's own error bound)."""
    err, ref_err = highprec.reference(inst, kind).max_abs_error(res.grads)
    assert err <= res.certificate["error_bound"] + ref_err, (err, res.certificate["error_bound"])
    return err, ref_err


def check_promise(inst, solver: str, dtype: str, opts: dict, kind: str = "mpmath"):
    """Solve; a refusal is one line and never says "efficient regime". Otherwise, against the
    high-precision reference `kind`: valid=True means measured <= error_bound (+ the reference's own
    error) with a finite bound; not valid carries a one-line reason and an inf bound; meets_eps only
    when valid and both the bound and the error are <= eps; an explicit eps is met, never missed
    silently. Returns (certificate, measured error), or None on a refusal."""
    try:
        res = get_solver(solver).solve(inst, dtype=dtype, **opts)
    except HarnessError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.startswith(f"{solver} refuses") and "efficient regime" not in msg, msg
        return None
    c = res.certificate
    err, ref_err = highprec.reference(inst, kind).max_abs_error(res.grads)
    if c["valid"]:
        assert math.isfinite(c["error_bound"])
        assert err <= c["error_bound"] + ref_err, (err, c["error_bound"], c["bound_parts"], inst.describe())
    else:
        assert c["reason"] and "\n" not in c["reason"] and c["error_bound"] == math.inf
        assert not c["meets_eps"]
    if c["meets_eps"]:
        assert c["valid"] and c["error_bound"] <= c["eps"] and err <= c["eps"] + ref_err
    if opts.get("eps") is not None:  # an explicit target is met or refused, never missed silently
        assert c["meets_eps"]
    return c, err
