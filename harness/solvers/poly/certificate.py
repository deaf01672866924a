"""The certified run of `poly` and `poly-chained` (docs/theory.md §4.3): choose the degree from the
pilot estimate of the a posteriori certificate, run, compute the certificate from the run
(`harness.solvers.poly.bound`: truncation, rounding and input perturbation), and keep the promise:
with an explicit eps the degree is raised, float32 moves to float64, or the solver refuses in one
line; `meets_eps` is True only when the whole certified bound is <= eps.
"""

from __future__ import annotations

import math

import torch

from harness import theory
from harness.errors import HarnessError
from harness.instance import Instance
from harness.solvers._common import to_numpy
from harness.solvers.base import Result
from harness.solvers.poly import bound as poly_bound
from harness.solvers.poly import pilot as poly_pilot
from harness.solvers.poly.bound_lead import lead_applies, q_lead
from harness.solvers.poly.fused import preprocess


def _dtname(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def check_target(eps, degree):
    if eps is not None:
        try:
            eps = float(eps)
        except (TypeError, ValueError):
            raise HarnessError(f"eps must be a number, got {eps!r}") from None
        if not (eps > 0 and math.isfinite(eps)):
            raise HarnessError(f"eps must be a positive finite number, got {eps}")
    if degree is not None:
        if isinstance(degree, bool) or not float(degree).is_integer() or int(degree) < 1:
            raise HarnessError(f"degree must be an integer >= 1, got {degree!r}")
        degree = int(degree)
    return eps, degree


def _tf32_enabled(device) -> bool:
    return torch.device(device).type == "cuda" and bool(torch.backends.cuda.matmul.allow_tf32)


class _Run:
    """Inputs of one certified run: the instance in one dtype, its preprocessed kernel inputs and
    the static part of the bound."""

    def __init__(self, inst: Instance, dtype, device):
        self.dtype = dtype
        self.t = inst.as_torch(dtype=dtype, device=device)
        with torch.no_grad():
            self.prep = preprocess(self.t, inst.alpha, inst.beta, inst.r)
            Vc = self.prep["Vc"]
            self.Zk = torch.cat([Vc, torch.ones(*Vc.shape[:-1], 1, dtype=dtype, device=Vc.device)], -1)
            self.ctx = poly_bound.BoundContext(inst, self.t, self.prep, self.Zk, 1, dtype)
            self.pilot = poly_pilot.Pilot(self.ctx)


def _run_bound(run: _Run, g: int, info: dict, Fq=None) -> dict:
    """The a posteriori certificate of one run at degree g from its per-row quantities `info`
    (with `Fq`, the signed query lead)."""
    ctx = run.ctx.at(g)
    moments = info.get("mode") == "moments"
    return poly_bound.bound_from_rows(
        ctx,
        info["rows"],
        ctx.rows_of(None),
        Fv=info["Fv"],
        absXdG=info["absXdG"],
        G=info["G"],
        moments=moments,
        block=info.get("block") if moments else None,
        Fq=Fq,
    )


def _with_q_lead(inst: Instance, run: _Run, g: int, info: dict, b: dict, target) -> dict:
    """The certificate again with the signed first-order query-gradient error (bound_lead.q_lead:
    one more pass over keys and queries) when the query gradient is adapted and the first
    certificate misses a target."""
    if not lead_applies(inst) or "prep" not in info:
        return b
    if target is None or b["valid"] and b["error_bound"] <= target:
        return b
    with torch.no_grad():
        Fq = q_lead(run.t, info["prep"], info["rows"], g)
    return _run_bound(run, g, info, Fq)


def solve_certified(
    solver, inst: Instance, dtype, device, eps=None, degree=None, max_rank=None, gradients=None, rounding=None
) -> Result:
    """Run `gradients(inst, t, g, prep=...)` at a degree chosen by the pilot and attach the a posteriori
    certificate (docs/theory.md §4.3). With an explicit `eps` the promise is strict: the degree is
    raised (up to MAX_DEGREE_TRIES runs) or the run moves to float64 until the whole certified
    bound is <= eps, or the solver refuses in one line. Without `eps` and `degree`, the degree
    aims at theory.DEFAULT_EPS and the certificate says whether it was met (`meets_eps`).
    `rounding(inst, run, g, grads, info)` may replace the rounding part (poly-chained)."""
    eps, degree = check_target(eps, degree)
    explicit = eps is not None
    target = eps if explicit else (theory.DEFAULT_EPS if degree is None else None)
    max_rank = theory.DEFAULT_MAX_RANK if max_rank is None else int(max_rank)
    if max_rank < 1:
        raise HarnessError(f"max_rank must be >= 1, got {max_rank}")
    R, R_exact = theory.certificate_score_range(inst)
    L = inst.L
    exact_ops = theory.exact_op_count(inst.N, inst.Lq, inst.Lk, inst.d, inst.r, inst.adapted)
    requested = dtype
    run = _Run(inst, dtype, device)
    choice = poly_pilot.choose_degree_with_lead(run.pilot, target, max_rank, inst.d, degree, R)
    if explicit and degree is None and dtype == torch.float32:
        e = run.pilot.estimate(choice["degree"])
        if choice.get("rounding_floor") or not e["valid"] or e["parts"]["rounding"] > 0.5 * eps:
            dtype = torch.float64
            run = _Run(inst, dtype, device)
            choice = poly_pilot.choose_degree_with_lead(run.pilot, target, max_rank, inst.d, None, R)
    if explicit and choice.get("rounding_floor"):
        f = choice["rounding_floor"]
        raise HarnessError(
            f"{solver.name} refuses: no degree's certificate meets eps={eps:.3g} in {_dtname(dtype)}: the "
            f"rounding part grows with the degree (best g={f['degree']}: truncation {f['truncation']:.3g} + "
            f"rounding {f['rounding']:.3g}; R={R:.3g})"
        )
    g = choice["degree"]

    def header(gg: int) -> dict:
        k = theory.feature_rank(inst.d, gg)
        a = (inst.N, inst.Lq, inst.Lk, inst.d, gg, inst.r, inst.adapted)
        kernel = getattr(solver, "kernel", "moments")
        ops = theory.causal_poly_op_count(*a) if inst.causal else theory.poly_op_count(*a, kernel=kernel)
        ratio = ops / max(exact_ops, 1)
        label, why = theory.classify(R, L, ratio, k <= max_rank)
        return {
            "R": float(R),
            "R_exact": bool(R_exact),
            "R_centred": True,
            "log_L": math.log(max(L, 2)),
            "regime": label,
            "regime_reason": why,
            "regime_R": theory.regime(R, L),
            "degree": gg,
            "degree_requested": degree is not None,
            "rank": k,
            "eps_rel": theory.taylor_rel_error(R, gg),
            "eps": target,
            "eps_given": explicit,
            "max_rank": max_rank,
            "within_rank": k <= max_rank,
            "ops_poly": ops,
            "exact_ops": exact_ops,
            "cost_ratio": ratio,
            "degree_found": choice["found"],
            "causal": inst.causal,
        }

    cert = header(g)
    msg = theory.refusal_message(solver.name, cert)
    if msg:
        raise HarnessError(msg)
    tries = []
    while True:
        with torch.no_grad():
            grads, loss, info = gradients(inst, run.t, g, prep=run.prep)
        bad = [k for k, v in grads.items() if not bool(torch.isfinite(v).all())]
        if bad:
            raise HarnessError(
                f"{solver.name} refuses: {_dtname(dtype)} overflows evaluating the degree g={g} kernel "
                f"(non-finite {', '.join(bad)}; R={R:.3g}); use float64 or a lower degree"
            )
        b = _run_bound(run, g, info)
        if (
            choice.get("lead")
            or degree is not None
            or theory.feature_rank(inst.d, g + 1) > max_rank
            or (len(tries) + 1 >= theory.MAX_DEGREE_TRIES)
        ):  # the signed query lead, where raising the degree is not the way (it costs one more pass)
            b = _with_q_lead(inst, run, g, info, b, target)
        if rounding is not None:
            b = rounding(inst, run, g, grads, info, b)
        if _tf32_enabled(run.t["X_q"].device):
            b = dict(
                b,
                valid=False,
                error_bound=math.inf,
                reason="TF32 matmuls are enabled (torch.backends.cuda.matmul.allow_tf32): not IEEE float32",
            )
        tries.append(
            {"degree": g, "dtype": _dtname(dtype), "error_bound": b["bound_if_valid"], "valid": b["valid"]}
        )
        if degree is not None or (b["valid"] and b["error_bound"] <= target):
            break
        parts = b.get("parts", {})
        rnd = parts.get("rounding", math.inf)
        if not explicit:
            # default target: raise the degree while the truncation is what misses it, never refuse
            if (
                len(tries) >= theory.MAX_DEGREE_TRIES
                or not b["valid"]
                and "rounding" in (b.get("reason") or "")
                or rnd > 0.5 * target
                or theory.feature_rank(inst.d, g + 1) > max_rank
            ):
                break
            g += 1
            continue
        if len(tries) >= theory.MAX_DEGREE_TRIES:
            raise HarnessError(
                f"{solver.name} refuses: no certificate <= eps={eps:.3g} after {len(tries)} runs "
                f"(last: g={g} {_dtname(dtype)}, bound {b['bound_if_valid']:.3g}"
                f"{'; ' + b['reason'] if b.get('reason') else ''})"
            )
        if (not b["valid"] or rnd > 0.5 * eps) and dtype == torch.float32:
            dtype = torch.float64
            run = _Run(inst, dtype, device)
            continue
        if not b["valid"] and "rounding" in (b.get("reason") or "") or rnd > 0.5 * eps:
            raise HarnessError(
                f"{solver.name} refuses: {_dtname(dtype)} rounding alone bounds the error by "
                f"{rnd:.3g} > eps={eps:.3g} (R={R:.3g}, g={g}){'; ' + b['reason'] if b.get('reason') else ''}"
            )
        # the pilot was optimistic by kappa = (bound's truncation part)/(estimate's): the next degree
        # is the smallest whose estimate, truncation scaled by kappa, meets eps (at least g + 1; at
        # most 4 degrees up)
        est_g = run.pilot.estimate(g)
        t_est = est_g["parts"].get("truncation", 0.0) if est_g["valid"] else 0.0
        kappa = max(1.0, parts.get("truncation", 0.0) / t_est) if t_est > 0 else 1.0
        g_next = g + 1
        while g_next < g + 4:
            e2 = run.pilot.estimate(g_next)
            if e2["valid"] and e2["parts"]["truncation"] * kappa + e2["parts"]["rounding"] <= eps:
                break
            g_next += 1
        g = g_next
        cert = header(g)
        msg = theory.refusal_message(solver.name, cert)
        if msg:
            raise HarnessError(msg)
    cert = header(g)
    cert.update(
        {
            "error_bound": b["error_bound"],
            "valid": b["valid"],
            "bound_parts": b.get("parts", {}),
            "meets_eps": None if target is None else bool(b["valid"] and b["error_bound"] <= target),
            "dtype": _dtname(dtype),
            "dtype_requested": _dtname(requested),
            "unit_roundoff": float(torch.finfo(dtype).eps) / 2,
            "min_rowsum": b.get("min_rowsum"),
            "nonfinite": [k for k, v in grads.items() if not bool(torch.isfinite(v).all())],
            "pilot": {
                "degree": choice["degree"],
                "estimate": choice["estimate"],
                "searched": {str(k): v for k, v in choice["searched"].items()},
            },
            "runs": tries,
            "certificate": "a posteriori (truncation + rounding + input perturbation)",
        }
    )
    if b.get("reason"):
        cert["reason"] = b["reason"]
    warn = []
    if not b["valid"]:
        warn.append(f"certificate not valid: {b['reason']}")
    elif target is not None and not cert["meets_eps"]:
        warn.append(f"certified bound {b['error_bound']:.3g} is above eps={target:.3g}")
    if dtype != requested:
        warn.append(
            f"computed in {_dtname(dtype)} ({_dtname(requested)} rounding could not meet eps={eps:.3g})"
        )
    if warn:
        cert["warning"] = "; ".join(warn)
    cert["ops"] = solver._ops(inst, cert)
    out = to_numpy(grads)
    info = {
        k: v for k, v in info.items() if k in ("min_rowsum", "block", "k", "k_plus", "k1", "k2", "k3", "k4")
    }
    return Result(out, loss, solver.name, ops=cert["ops"], certificate=cert, info=info)
