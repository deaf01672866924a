"""The property checks: each draws instances from its domain (harness.strategies), shrinks a failure
to a minimal counterexample (harness.checks.search) and returns one `CheckOutcome`.

A `*_problem(runner, inst, ...)` function states the property on one instance: None when it holds,
else a one-line description of what went wrong.
"""

from __future__ import annotations

import numpy as np

from harness import theory
from harness.checks.context import CheckContext
from harness.checks.outcome import CheckOutcome
from harness.checks.runner import SolverRunner, one_line
from harness.errors import HarnessError
from harness.strategies import accuracy_instances, stress_instances


def _solve(runner: SolverRunner, inst):
    """(result, None); (None, None) when the solver declined the instance (counted); or (None, a
    one-line description of the exception the call raised)."""
    try:
        return runner.solve(inst), None
    except HarnessError as exc:
        return None, (None if runner.refused(exc) else one_line(exc))
    except Exception as exc:  # a Solver subclass that crashed
        return None, f"raised {one_line(exc)}"


def _grad_scale(grads) -> float:
    return max((float(np.max(np.abs(g))) for g in grads.values() if np.size(g)), default=0.0)


def finite_problem(runner: SolverRunner, inst) -> str | None:
    """None when the output is fine (or a Solver refused in one line); else a one-line description."""
    res, msg = _solve(runner, inst)
    if res is None:
        return msg
    for k, g in res.grads.items():
        g = np.asarray(g)
        if not np.all(np.isfinite(g)):
            bad = "NaN" if np.isnan(g).any() else "inf"
            return f"returned {bad} in {k} ({int((~np.isfinite(g)).sum())} of {g.size} entries)"
    from harness.solvers.base import gradient_names

    for k in gradient_names(inst):
        want = inst.arrays[k[1:]].shape
        if k not in res.grads:
            return f"returned no {k}"
        if np.shape(res.grads[k]) != want:
            return f"returned {k} with shape {np.shape(res.grads[k])}; expected {want}"
    return None


def accuracy_problem(
    runner: SolverRunner, inst, eps: float | None, check_cert: bool, seen: list | None = None
) -> str | None:
    """None when the claim holds on `inst` (Problem-1 criterion, Hu et al. (arXiv:2406.03136) Problem 1;
    docs/theory.md §2.2): max-norm |G - G_ref| <= eps * max(1, |G_ref|_inf), and, with `check_cert`, the
    error is within the Result's certificate bound; else a message. `seen` collects the bounds met
    (certificate check)."""
    res, msg = _solve(runner, inst)
    if res is None:
        return msg
    ref = runner.reference(inst)
    for k in ref.grads:
        if k not in res.grads or np.shape(res.grads[k]) != ref.grads[k].shape:
            return f"wrong or missing {k}"
        if not np.all(np.isfinite(res.grads[k])):
            return f"non-finite {k}"
    err = res.max_abs_error(ref)
    scale = _grad_scale(ref.grads)
    runner.record_error(err, scale)
    if (res.certificate or {}).get("error_bound") is not None:
        runner.tally["certs"] += 1
    if eps is not None and err > eps * max(1.0, scale):
        return (
            f"max-norm error {err:.3e} > claimed {eps:.1e} x max(1, |grad|_inf = {scale:.3g}) "
            f"on {inst.describe()} R={theory.score_range(inst):.3g}"
        )
    bound = (res.certificate or {}).get("error_bound") if check_cert else None
    if bound is not None and seen is not None:
        seen.append(float(bound))
    if bound is not None and not err <= float(bound) * (1 + 1e-9) + 1e-300:
        return f"max-norm error {err:.3e} exceeds the certificate's error_bound {float(bound):.3e}"
    return None


def permuted(inst, seed: int = 0):
    """Jointly permute query rows (X_q with Y) and key/value rows (X_k with X_v): the adapter
    gradients do not change (docs/theory.md §3.5)."""
    rng = np.random.default_rng(seed)
    qp, kp = rng.permutation(inst.Lq), rng.permutation(inst.Lk)
    x = {k: inst.x3(k) for k in ("X_q", "X_k", "X_v", "Y")}
    return inst.replace(X_q=x["X_q"][:, qp], Y=x["Y"][:, qp], X_k=x["X_k"][:, kp], X_v=x["X_v"][:, kp])


def unseen_keys_extended(inst, seed: int = 0, extra: int = 2):
    """(base, extended) for a causal instance: `extended` appends `extra` random keys and values at
    positions m >= Lq, which no query attends under the causal mask, so its adapter gradients and its
    attention output equal `base`'s (docs/theory.md §4.7). When Lk < Lq, `base` is first padded to
    Lk = Lq with copies of its own keys (the comparison is base against extended)."""
    rng = np.random.default_rng(seed)

    def put(src, **x):
        return src.replace(**(x if src.batched else {k: v[0] for k, v in x.items()}))

    if inst.Lk < inst.Lq:
        idx = np.arange(inst.Lq) % inst.Lk
        inst = put(inst, X_k=inst.x3("X_k")[:, idx], X_v=inst.x3("X_v")[:, idx])
    xk, xv = inst.x3("X_k"), inst.x3("X_v")
    scale = max(1.0, float(np.abs(xk).max()))
    new = {
        n: (rng.normal(size=(x.shape[0], extra, x.shape[2])) * scale).astype(x.dtype)
        for n, x in (("k", xk), ("v", xv))
    }
    return inst, put(inst, X_k=np.concatenate([xk, new["k"]], 1), X_v=np.concatenate([xv, new["v"]], 1))


def invariance_problem(runner: SolverRunner, inst, eps: float) -> str | None:
    """None when the solver's gradients survive the permutation of docs/theory.md §3.5 within 2 eps; on
    causal instances (where permuting rows changes the mask), appending keys that no query may see."""
    if inst.causal:
        inst, other = unseen_keys_extended(inst)
        what = "appending keys/values at positions >= Lq (never attended under the causal mask)"
    else:
        other = permuted(inst)
        what = "permuting query and key/value rows (docs/theory.md §3.5)"
    a, msg = _solve(runner, inst)
    b, msg = (None, msg) if a is None else _solve(runner, other)
    if b is None:
        return msg
    scale = _grad_scale(a.grads)
    diff = b.max_abs_error(a)
    if not diff <= 2 * eps * max(1.0, scale):
        return (
            f"{what} changed the gradients by "
            f"{diff:.3e} > 2 x {eps:.1e} x max(1, {scale:.3g}) on {inst.describe()}"
        )
    return None


# ------------------------------------------------------------------ the checks
def finite(ctx: CheckContext) -> CheckOutcome:
    """Finite outputs of the right shapes on large-score instances (beta up to 1e3, outlier tokens).

    Gaussian inputs with inverse temperature up to 1e3 and `outliers` instances with magnitude-50
    features give large scores, as in the hardness regime: the solver must return gradients of the
    right shapes, finite, without raising. A deliberate one-line `HarnessError` refusal from a Solver is
    allowed; an exception escaping a callable is not."""
    runner = ctx.runner
    return ctx.search("finite", stress_instances(**ctx.domain), lambda inst: finite_problem(runner, inst))


def accuracy(ctx: CheckContext) -> CheckOutcome:
    """Max-norm error against the float64 reference within the claim (and any certificate).

    The Problem-1 criterion (Hu et al. (arXiv:2406.03136) Problem 1; docs/theory.md §2.2): for every
    drawn instance max-norm |G - G_ref| <= eps * max(1, |G_ref|_inf) against the reference
    (`--reference`, default autograd).
    eps is `--claim-eps`; without a claim, exact solvers are held to 1e-8 (float64) / 1e-3 (float32)
    and approximate ones only to their certificates; with neither, accuracy is "not claimed" (the
    measured error is shown, never a pass). Exact solvers are checked on general instances (cross
    attention, any scale) and on the bounded family; approximate ones (`exact` False, the default for
    callables) only in the bounded-entry regime, where the almost-linear claims live."""
    runner, eps = ctx.runner, ctx.eps
    o = ctx.search(
        "accuracy",
        accuracy_instances(ctx.exact, **ctx.domain),
        lambda inst: accuracy_problem(runner, inst, eps, check_cert=True),
    )
    return claimed(o, eps, ctx.domain_name)


def claimed(o: CheckOutcome, eps: float | None, domain: str) -> CheckOutcome:
    """An accuracy row says what it was held to: the claim, the certificates, or nothing ("not
    claimed", with the largest measured error relative to max(1, |ref|_inf))."""
    if o.status != "pass":
        return o
    if eps is not None:
        o.detail = f"eps {eps:.1e} on {domain}: {o.detail}"
    elif o.figures.get("certs"):
        o.detail = f"certificates (no --claim-eps) on {domain}: {o.detail}"
    else:
        o.status = "not claimed"
        o.detail = (
            f"no --claim-eps and no certificate; measured max-norm error up to "
            f"{o.figures.get('max_rel', 0.0):.2e} x max(1, |ref|_inf) on {domain} ({o.detail})"
        )
    return o


def invariance(ctx: CheckContext) -> CheckOutcome:
    """Jointly permuting query rows and key/value rows leaves the gradients unchanged within 2 eps.

    docs/theory.md §3.5; needs no reference, so it also tests approximate solvers on their whole
    domain. Without an accuracy claim the gradients are held to rounding (1e-8 / 1e-3): a sum over
    tokens does not depend on their order."""
    runner, tol = ctx.runner, ctx.tol
    o = ctx.search(
        "invariance",
        accuracy_instances(ctx.exact, **ctx.domain),
        lambda inst: invariance_problem(runner, inst, tol),
    )
    return ctx.to_rounding(o)


def certificate(ctx: CheckContext) -> CheckOutcome:
    """When a Result carries `certificate["error_bound"]`, the actual max-norm error is below it.

    Only the certificate, no accuracy claim (`accuracy` checks both); skipped when the solver attached
    no bound to any instance it was given."""
    runner, seen = ctx.runner, []
    o = ctx.search(
        "certificate",
        accuracy_instances(ctx.exact, **ctx.domain),
        lambda inst: accuracy_problem(runner, inst, None, check_cert=True, seen=seen),
    )
    if o.status == "pass" and not seen:
        return CheckOutcome("certificate", "skip", "the solver attached no error_bound to its results")
    return o
