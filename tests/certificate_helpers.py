"""The certificate's promise as one assertion (issue 14), shared by the unmasked and the causal tests."""

from __future__ import annotations

import math

from harness import highprec
from harness.errors import HarnessError
from harness.solvers import get_solver


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
