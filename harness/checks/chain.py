"""The reduction-chain check: small SAT -> OV -> attention gradient -> LoRA instances with known
answers, decoded through the solver under test (docs/theory.md §6; the route
`reductions.chain.route("lora")`)."""

from __future__ import annotations

from harness.checks.context import CheckContext
from harness.checks.outcome import CheckOutcome
from harness.checks.runner import one_line
from harness.checks.search import write_counterexample
from harness.errors import HarnessError

CHAIN_SOURCES = (("planted", 3, 4, 1), ("unsat", 3, 4, 1))  # (sat_sources family, k, v, seed)


def reduced_sources(via: str) -> list:
    """The CHAIN_SOURCES formulas reduced along `reductions.chain.route(via)`:
    (label, CNF, reduced instance, arrows, python-sat's "SAT" / "UNSAT")."""
    from reductions import sat_sources
    from reductions.arrows.base import Composite
    from reductions.chain import route

    out = []
    for family, k, v, seed in CHAIN_SOURCES:
        cnf = getattr(sat_sources, family)(k, v, seed=seed)
        arrows = route(via)
        expected = "SAT" if cnf.solve() is not None else "UNSAT"
        out.append((f"{family}-k{k}-v{v}-s{seed}", cnf, Composite(arrows).reduce(cnf), arrows, expected))
    return out


def chain_cases() -> list:
    """Small SAT -> OV -> attention gradient -> LoRA chain instances (docs/theory.md §6; the route
    `reductions.chain.route("lora")`) with known answers.

    Each case is `(label, Instance, decode, expected)`: `Instance` is the LoRA instance the first
    oracle call sees; `decode(grads, solver)` finishes the chain's decode from that call's gradients
    (calling `solver` for the follow-up queries of a yes instance) and returns "SAT", "UNSAT" or a
    one-line description of a wrong model, and carries `decode.required_accuracy` (the max-norm
    accuracy the chain needs; cases needing less than the claimed eps are skipped); `expected`
    comes from python-sat."""
    from reductions.arrows.base import Composite
    from reductions.problems.lora import lora_oracle

    cases = []
    for label, cnf, x, arrows, expected in reduced_sources("lora"):

        def decode(grads, solver, arrows=arrows, x=x, cnf=cnf, dtype="float64", device="cpu"):
            model = Composite(arrows).decode(x, dict(grads), lora_oracle(solver, dtype, device))
            if model is None:
                return "UNSAT"
            return "SAT" if cnf.satisfies(model) else "a model that does not satisfy the formula"

        decode.required_accuracy = float(arrows[-1].required_accuracy(x))
        cases.append((label, x.inst, decode, expected))
    return cases


def chain(ctx: CheckContext) -> CheckOutcome:
    """Small SAT -> LoRA chain instances decode, through the solver, to python-sat's answer.

    SAT -> OV -> attention gradient -> LoRA instances (reductions.chain, route "lora"): the SAT/UNSAT
    answer decoded through the solver equals python-sat's. Only for claims at least as tight as the
    chain's required accuracy (skipped without an accuracy claim); a solver's deliberate refusal (hard
    regime) is not a failure."""
    runner, eps, out_dir = ctx.runner, ctx.eps, ctx.out_dir
    if ctx.causal:
        return CheckOutcome("chain", "skip", "the reduction chain's instances are not causal")
    cases = chain_cases()
    if eps is None:
        return CheckOutcome("chain", "not claimed", "no accuracy claim to hold the chain to")
    done, n_refused, loose = 0, 0, 0
    for label, inst, decode, expected in cases:
        req = getattr(decode, "required_accuracy", None)
        if req is not None and eps > req:
            loose += 1
            continue
        try:
            res, msg = runner.solve(inst), None
        except HarnessError as exc:
            if runner.refused(exc):
                n_refused += 1
                continue
            res, msg = None, one_line(exc)
        except Exception as exc:
            res, msg = None, one_line(exc)
        if res is not None:
            try:  # a decode error (follow-up oracle calls included) is a finding, never a refusal
                got = decode(res.grads, runner.solver, dtype=runner.dtype, device=runner.device)
                msg = None if got == expected else f"decoded {got}, expected {expected}"
            except Exception as exc:
                msg = one_line(exc)
        if msg:
            path = write_counterexample(inst, out_dir, runner.solver.name, "chain", f"{label}: {msg}")
            return CheckOutcome("chain", "FAIL", f"{label} ({inst.describe()}): {msg}", counterexample=path)
        done += 1
    if not done:
        why = f"{n_refused} refused (hard regime), {loose} need accuracy below the claimed eps"
        return CheckOutcome("chain", "skip", f"no chain instance decoded: {why}")
    extra = (f", {n_refused} refused" if n_refused else "") + (f", {loose} beyond the claim" if loose else "")
    return CheckOutcome("chain", "pass", f"{done} SAT/UNSAT chain instances decoded correctly{extra}")
