"""The forward-only checks (`check --forward-only`): the attention output itself, for kernels with no
backward and to tell forward errors from backward ones. Each runs on `solver.forward(instance)`
(an attention function through `harness.from_attention`, or a built-in solver with a forward pass),
draws the same instance domains as the gradient checks and shrinks a failure the same way."""

from __future__ import annotations

import numpy as np

from harness import theory
from harness.checks.context import CheckContext
from harness.checks.outcome import CheckOutcome
from harness.checks.properties import claimed, permuted, unseen_keys_extended
from harness.checks.runner import SolverRunner, one_line
from harness.checks.search import write_counterexample
from harness.errors import HarnessError
from harness.strategies import accuracy_instances, stress_instances


def _forward(runner: SolverRunner, inst):
    """(output, None); (None, None) when declined (counted); or (None, a one-line message)."""
    try:
        return runner.forward(inst), None
    except HarnessError as exc:
        return None, (None if runner.refused(exc) else one_line(exc))
    except Exception as exc:
        return None, f"raised {one_line(exc)}"


def reference_output(inst) -> np.ndarray:
    """softmax(beta Q K^T) V in float64 (harness.losses.attention_output), shape (N, Lq, d)."""
    from harness.losses import attention_output

    t = inst.as_torch()
    return attention_output(t, inst.alpha, inst.beta, inst.r, inst.causal).numpy()


def query_permutation(inst, seed: int = 0) -> np.ndarray:
    """The query-row permutation `permuted(inst, seed)` applies (the same generator, first draw)."""
    return np.random.default_rng(seed).permutation(inst.Lq)


def forward_finite_problem(runner: SolverRunner, inst) -> str | None:
    out, msg = _forward(runner, inst)
    if out is None:
        return msg
    want = (inst.N, inst.Lq, inst.d)
    if out.shape != want:
        return f"returned an attention output of shape {out.shape}; expected {want}"
    if not np.all(np.isfinite(out)):
        bad = "NaN" if np.isnan(out).any() else "inf"
        return (
            f"returned {bad} in the attention output ({int((~np.isfinite(out)).sum())} of {out.size} entries)"
        )
    return None


def forward_accuracy_problem(runner: SolverRunner, inst, eps: float | None) -> str | None:
    """max-norm |O - O_ref| <= eps * max(1, |O_ref|_inf) (the Problem-1 criterion on the output)."""
    out, msg = _forward(runner, inst)
    if out is None:
        return msg
    ref = reference_output(inst)
    if out.shape != ref.shape or not np.all(np.isfinite(out)):
        return f"attention output of shape {out.shape} (expected {ref.shape}) or not finite"
    err = float(np.max(np.abs(out - ref))) if ref.size else 0.0
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    runner.record_error(err, scale)
    if eps is not None and err > eps * max(1.0, scale):
        return (
            f"attention output max-norm error {err:.3e} > claimed {eps:.1e} x max(1, |O|_inf = "
            f"{scale:.3g}) on {inst.describe()} R={theory.score_range(inst):.3g}"
        )
    return None


def equivariance_problem(runner: SolverRunner, inst, tol: float) -> str | None:
    """Permuting query rows permutes the output rows; permuting key/value rows jointly leaves it. On
    causal instances: appending keys that no query may see (positions >= Lq) leaves the output."""
    if inst.causal:
        inst, other = unseen_keys_extended(inst)
        rows, what = slice(None), "appending keys/values no query may see (causal mask)"
    else:
        other, rows, what = permuted(inst), query_permutation(inst), "permuting the tokens"
    a, msg = _forward(runner, inst)
    b, msg = (None, msg) if a is None else _forward(runner, other)
    if b is None:
        return msg
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    diff = float(np.max(np.abs(b - a[:, rows]))) if a.size else 0.0
    if not diff <= 2 * tol * max(1.0, scale):
        return (
            f"{what} changed the attention output by {diff:.3e} > 2 x {tol:.1e} x "
            f"max(1, {scale:.3g}) on {inst.describe()}"
        )
    return None


# ------------------------------------------------------------------ the checks
def forward_finite(ctx: CheckContext) -> CheckOutcome:
    """Finite attention output of shape (N, Lq, d) on large-score instances (beta up to 1e3, outliers)."""
    runner = ctx.runner
    return ctx.search(
        "forward-finite", stress_instances(**ctx.domain), lambda inst: forward_finite_problem(runner, inst)
    )


def forward_accuracy(ctx: CheckContext) -> CheckOutcome:
    """Max-norm error of the attention output against the float64 reference within the claim.

    Same domains and defaults as `accuracy`: exact functions are held to 1e-8 / 1e-3 without a claim;
    approximate ones without a claim are "not claimed" (the measured error is reported)."""
    runner, eps = ctx.runner, ctx.eps
    o = ctx.search(
        "forward-accuracy",
        accuracy_instances(ctx.exact, **ctx.domain),
        lambda inst: forward_accuracy_problem(runner, inst, eps),
    )
    return claimed(o, eps, ctx.domain_name)


def equivariance(ctx: CheckContext) -> CheckOutcome:
    """Permuting the tokens permutes the attention output (query rows) or leaves it (key/value rows).

    Within 2 eps, or to rounding (1e-8 / 1e-3) without a claim: softmax attention treats the keys as
    a set, whatever approximation is made of it."""
    runner, tol = ctx.runner, ctx.tol
    o = ctx.search(
        "equivariance",
        accuracy_instances(ctx.exact, **ctx.domain),
        lambda inst: equivariance_problem(runner, inst, tol),
    )
    return ctx.to_rounding(o)


class _Declined(Exception):
    """The solver declined an oracle call inside a chain decode."""


def forward_chain_cases() -> list:
    """SAT -> OV -> attention (route "attention", layout P1) cases with known answers:
    (label, CNF, AAttC instance, arrows, expected)."""
    from harness.checks.chain import reduced_sources

    return reduced_sources("attention")


def forward_chain(ctx: CheckContext) -> CheckOutcome:
    """Small SAT -> OV -> attention instances decode, through the forward pass, to python-sat's answer.

    Only for claims at least as tight as the route's required accuracy; declined calls are refusals."""
    from reductions.arrows.base import Composite
    from reductions.problems.attention import forward_oracle, to_instance

    runner, eps = ctx.runner, ctx.eps
    if ctx.causal:
        return CheckOutcome("forward-chain", "skip", "the reduction chain's instances are not causal")
    if eps is None:
        return CheckOutcome("forward-chain", "not claimed", "no accuracy claim to hold the chain to")
    done, declined, loose = 0, 0, 0
    for label, cnf, x, arrows, expected in forward_chain_cases():
        if eps > float(arrows[-1].required_accuracy(x)):
            loose += 1
            continue
        inner = forward_oracle(runner.solver, runner.dtype, runner.device)

        def oracle(y, inner=inner):
            try:
                return inner(y)
            except HarnessError as exc:
                if runner.refused(exc):
                    raise _Declined() from None
                raise

        try:
            model = Composite(arrows).decode(x, oracle(x), oracle)
            got = "UNSAT" if model is None else ("SAT" if cnf.satisfies(model) else "a non-satisfying model")
            msg = None if got == expected else f"decoded {got}, expected {expected}"
        except _Declined:
            declined += 1
            continue
        except Exception as exc:
            msg = one_line(exc)
        if msg:
            inst = to_instance(x)
            path = write_counterexample(
                inst, ctx.out_dir, runner.solver.name, "forward-chain", f"{label}: {msg}"
            )
            return CheckOutcome(
                "forward-chain", "FAIL", f"{label} ({inst.describe()}): {msg}", counterexample=path
            )
        done += 1
    if not done:
        why = f"{declined} declined, {loose} need accuracy below the claimed eps"
        return CheckOutcome("forward-chain", "skip", f"no chain instance decoded: {why}")
    extra = (f", {declined} declined" if declined else "") + (f", {loose} beyond the claim" if loose else "")
    return CheckOutcome(
        "forward-chain", "pass", f"{done} SAT/UNSAT attention-route instances decoded correctly{extra}"
    )


def forward_scaling(ctx: CheckContext) -> CheckOutcome | None:
    """Fitted time exponent of the forward pass, on work-dominated sizes only (as `scaling`)."""
    from harness.checks.scaling import timing_outcome

    return timing_outcome(ctx, "forward-scaling", forward=True)
