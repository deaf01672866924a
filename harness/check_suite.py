"""The third-party property suite behind `lora-harness check --solver S` (no instance file).

A solver is anything `harness.solvers.get_solver` resolves: a built-in name, `module:attr` naming a
callable `f(mapping of interchange-format tensors) -> mapping of gradients`, or a `lora_harness.solvers`
entry point. The suite runs these checks and prints a table:

* `finite`    - on stress instances (gaussian inputs, inverse temperature up to 1e3, outlier tokens:
                large scores, as in the hardness regime) the solver returns gradients of the right
                shapes, finite, without raising. A deliberate one-line `HarnessError` refusal from a
                Solver is allowed; an exception escaping a callable is not.
* `accuracy`  - the Problem-1 criterion (MATH.md §4.4, §13 oracle (c)): for every drawn instance
                max-norm |G - G_ref| <= eps * max(1, |G_ref|_inf) against the float64 reference
                (`--reference`, default autograd). eps is `--claim-eps`; without a claim, exact
                solvers are held to 1e-8 (float64) / 1e-3 (float32) and approximate ones only to
                their certificates. Exact solvers are checked on general instances (cross attention,
                any scale) and on the bounded family; approximate ones (`exact` False, the default for
                callables) only in the bounded-entry regime (`families.bounded`, gamma <= 1.5,
                beta = 1/d, so R = ||beta S||_inf <= 2.25), where the almost-linear claims live.
* `invariance` - jointly permuting query rows and key/value rows leaves the solver's own gradients
                unchanged within 2 eps (MATH.md §13 item 6); needs no reference, so it also tests
                approximate solvers on their whole domain.
* `certificate` - when a Result carries `certificate["error_bound"]`, the actual error is below it.
* `chain`     - small SAT -> OV -> attention gradient -> LoRA chain instances (reductions.chain,
                route "lora"): the SAT/UNSAT answer decoded through the solver equals python-sat's
                (skipped without an accuracy claim; refusals allowed).
* `scaling`   - times the solver over geometric L (bounded family, d = 4), single-threaded (work,
                not parallelism; OpenMP barriers under a loaded machine make multi-threaded times
                jump by 0.1-0.4 s), median of interleaved repeats, log-log least squares with a bootstrap CI (harness.measure.fit). The
                exponent claim fails when the CI's lower end exceeds the claim by `MARGIN`.
* `ops`       - the same fit on the solver's deterministic operation counts (Result.ops, or an
                `ops` entry in a callable's returned mapping); fails when above claim + `OPS_MARGIN`.

Property checks use `hypothesis.find`: a failing example is shrunk to a minimal one, which is
written in the interchange format (harness.io.save_instance) to `--out-dir`, and its path printed.
The solver's counterexamples already in `--out-dir` (`<solver>-<check>*.npz`) are replayed first,
so a regression found once is checked again on every later run (add your own pins there).
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from harness import theory
from harness.errors import HarnessError

MARGIN = 0.5         # timing exponent: fail when CI low end > claim + MARGIN (cache effects
                     # alone push a clean O(L^2) solver's fitted time exponent to ~2.2-2.5)
OPS_MARGIN = 0.1     # op-count exponent (deterministic): fail when fit > claim + OPS_MARGIN
DEFAULT_EPS = {"float64": 1e-8, "float32": 1e-3}
MIN_TIMED_S = 2e-3   # sizes whose median call is faster than this are overhead, not work: left out
                     # of the timing fit when at least 3 sizes remain


@dataclass(frozen=True)
class Budget:
    """How much work the suite does: `SMOKE` (no timing, op counts only; seconds), `QUICK` (test
    suites, ~10 s), `DEFAULT` (~5-20 s for a fast solver; each property check stops drawing after
    `property_budget_s`, so about a minute for a slow one), `THOROUGH` (nightly)."""

    max_examples: int = 60
    max_L: int = 12
    max_d: int = 6
    max_N: int = 3
    scaling_L: tuple[int, ...] = (256, 512, 1024, 2048, 4096)
    scaling_d: int = 4
    repeats: int = 5               # 0: no timing, only the deterministic op-count fit
    call_budget_s: float = 2.0     # stop growing L once one call takes longer than this
    scaling_budget_s: float = 25.0  # and once the scaling part has used this much time
    scaling: bool = True
    n_boot: int = 400
    property_budget_s: float = 15.0  # per property check: stop drawing new examples after this
                                     # (shrinking a found failure is not cut short)


DEFAULT = Budget(max_examples=300, max_L=16)
QUICK = Budget(max_examples=60, max_L=8, max_d=4, max_N=2, scaling_L=(256, 512, 1024, 2048, 4096),
               repeats=3, scaling_budget_s=15.0)
THOROUGH = Budget(max_examples=2000, max_L=32, max_d=8, max_N=3, property_budget_s=300.0,
                  scaling_L=(256, 512, 1024, 2048, 4096, 8192), repeats=9, scaling_budget_s=120.0)
SMOKE = Budget(max_examples=25, max_L=8, max_d=4, max_N=2, scaling_L=(64, 128, 256, 512), repeats=0)
BUDGETS = {"smoke": SMOKE, "quick": QUICK, "default": DEFAULT, "thorough": THOROUGH}


@dataclass
class CheckOutcome:
    """One row of the summary table."""

    check: str
    status: str            # "pass", "FAIL", "skip", "info"
    detail: str
    counterexample: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


@dataclass
class SuiteReport:
    solver: str
    outcomes: list[CheckOutcome]

    @property
    def ok(self) -> bool:
        return not any(o.failed for o in self.outcomes)

    def outcome(self, check: str) -> CheckOutcome:
        for o in self.outcomes:
            if o.check == check:
                return o
        raise KeyError(check)

    def table(self) -> str:
        w = max([len(o.check) for o in self.outcomes] + [5])
        lines = [f"{'check':<{w}}  status  detail"]
        for o in self.outcomes:
            lines.append(f"{o.check:<{w}}  {o.status:<6}  {o.detail}")
            if o.counterexample:
                lines.append(f"{'':<{w}}          counterexample: {o.counterexample}")
        verdict = "all claims hold" if self.ok else "CLAIM FAILED"
        lines.append(f"{self.solver}: {verdict}")
        return "\n".join(lines)


@contextlib.contextmanager
def one_thread():
    """torch on one thread for the duration: tiny instances gain nothing from threads, and on a
    loaded machine OpenMP barriers make multi-threaded calls jump by 0.1-0.4 s."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------ strategies (lazy hypothesis)
def stress_instances(max_L: int = 8, max_d: int = 4, max_N: int = 2):
    """Large-score instances: gaussian inputs with inverse temperature in {1, 30, 1e3}, or the
    `outliers` family with magnitude-50 outlier features. Exact, stable solvers must stay finite."""
    from hypothesis import strategies as st

    from harness import families
    from harness.strategies import instance_params

    @st.composite
    def big_gaussian(draw):
        p = draw(instance_params(max_L=max_L, max_d=max_d, max_N=max_N))
        p["beta"] = draw(st.sampled_from([1.0, 30.0, 1e3]))
        p["scale"] = draw(st.sampled_from([1.0, 3.0]))
        return families.gaussian(**p)

    @st.composite
    def outlier(draw):
        d = draw(st.integers(1, max_d))
        return families.outliers(L=draw(st.integers(2, 4 * max_L)), d=d, r=draw(st.integers(1, d)),
                                 gamma=draw(st.sampled_from([1.0, 3.0])), n_outliers=2,
                                 magnitude=50.0, beta=1.0, seed=draw(st.integers(0, 2**32 - 1)),
                                 adapt=draw(st.sampled_from([("q",), ("q", "v"), ("q", "k", "v")])))

    return st.one_of(big_gaussian(), outlier())


def accuracy_instances(exact: bool, max_L: int = 8, max_d: int = 4, max_N: int = 2):
    """The claim's domain: general instances plus the bounded family for exact solvers; the
    bounded-entry regime only for approximate ones (see module docstring)."""
    from hypothesis import strategies as st

    from harness.strategies import bounded_instances, instances

    bounded = bounded_instances(max_L=max(4 * max_L, 2), max_d=max_d)
    if not exact:
        return bounded
    return st.one_of(instances(max_L=max_L, max_d=max_d, max_N=max_N), bounded)


# ------------------------------------------------------------------ running one solver
def _callable_of(solver) -> Callable | None:
    from harness.solvers.registry import CallableSolver

    return solver.fn if isinstance(solver, CallableSolver) else None


_OWN_ERROR = re.compile(r"^solver '.*' (raised|returned)")


def _is_refusal(exc: HarnessError) -> bool:
    """A deliberate one-line HarnessError from a solver (not an exception escaping a callable,
    nor a wrong/missing output, which the registry reports as 'raised ...' / 'returned ...')."""
    return not _OWN_ERROR.match(str(exc))


class _Runner:
    """Runs the solver and the float64 reference on instances; caches the reference."""

    def __init__(self, solver, reference: str, dtype: str, device: str, opts: dict):
        from harness.solvers import get_solver

        self.solver = solver
        self.ref_solver = get_solver(reference)
        self.dtype, self.device, self.opts = dtype, device, dict(opts)
        self._ref: dict[str, Any] = {}

    def reference(self, inst):
        key = inst.sha256
        if key not in self._ref:
            if len(self._ref) > 256:
                self._ref.clear()
            self._ref[key] = self.ref_solver.solve(inst, dtype="float64", device="cpu")
        return self._ref[key]

    def solve(self, inst):
        return self.solver.solve(inst, dtype=self.dtype, device=self.device, **self.opts)


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return msg if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {msg}"


def _finite_problem(runner: _Runner, inst) -> str | None:
    """None when the output is fine; else a one-line description."""
    try:
        res = runner.solve(inst)
    except HarnessError as exc:
        if _callable_of(runner.solver) is None and _is_refusal(exc):
            return None
        return _one_line(exc)
    except Exception as exc:  # a Solver subclass that crashed
        return f"raised {_one_line(exc)}"
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


def _accuracy_problem(runner: _Runner, inst, eps: float | None, check_cert: bool) -> str | None:
    """None when the claim holds on `inst` (Problem-1 criterion, MATH.md §4.4); else a message."""
    try:
        res = runner.solve(inst)
    except HarnessError as exc:
        return _one_line(exc)
    except Exception as exc:
        return f"raised {_one_line(exc)}"
    ref = runner.reference(inst)
    for k in ref.grads:
        if k not in res.grads or np.shape(res.grads[k]) != ref.grads[k].shape:
            return f"wrong or missing {k}"
        if not np.all(np.isfinite(res.grads[k])):
            return f"non-finite {k}"
    err = res.max_abs_error(ref)
    scale = max((float(np.max(np.abs(g))) for g in ref.grads.values() if g.size), default=0.0)
    if eps is not None and err > eps * max(1.0, scale):
        return (f"max-norm error {err:.3e} > claimed {eps:.1e} x max(1, |grad|_inf = {scale:.3g}) "
                f"on {inst.describe()} R={theory.score_range(inst):.3g}")
    bound = (res.certificate or {}).get("error_bound") if check_cert else None
    if bound is not None and not err <= float(bound) * (1 + 1e-9) + 1e-300:
        return f"max-norm error {err:.3e} exceeds the certificate's error_bound {float(bound):.3e}"
    return None


def permuted(inst, seed: int = 0):
    """Jointly permute query rows (X_q with Y) and key/value rows (X_k with X_v): the adapter
    gradients do not change (MATH.md §13 item 6)."""
    rng = np.random.default_rng(seed)
    qp, kp = rng.permutation(inst.Lq), rng.permutation(inst.Lk)
    x = {k: inst.x3(k) for k in ("X_q", "X_k", "X_v", "Y")}
    return inst.replace(X_q=x["X_q"][:, qp], Y=x["Y"][:, qp], X_k=x["X_k"][:, kp], X_v=x["X_v"][:, kp])


def _invariance_problem(runner: _Runner, inst, eps: float) -> str | None:
    """None when the solver's gradients survive the §13 item 6 permutation within 2 eps."""
    try:
        a, b = runner.solve(inst), runner.solve(permuted(inst))
    except HarnessError as exc:
        return _one_line(exc)
    except Exception as exc:
        return f"raised {_one_line(exc)}"
    scale = max((float(np.max(np.abs(g))) for g in a.grads.values() if np.size(g)), default=0.0)
    diff = b.max_abs_error(a)
    if not diff <= 2 * eps * max(1.0, scale):
        return (f"permuting query and key/value rows (MATH.md §13 item 6) changed the gradients by "
                f"{diff:.3e} > 2 x {eps:.1e} x max(1, {scale:.3g}) on {inst.describe()}")
    return None


def _hypothesis_settings(budget: Budget):
    from hypothesis import HealthCheck, Phase, settings

    return settings(max_examples=budget.max_examples, derandomize=True, database=None,
                    deadline=None, suppress_health_check=list(HealthCheck),
                    phases=[Phase.generate, Phase.shrink], report_multiple_bugs=False)


def _find_minimal(strategy, problem: Callable[[Any], str | None], budget: Budget):
    """(minimal failing instance, message, examples tried) or (None, None, examples tried)."""
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    tried, found = [0], [False]
    start = time.perf_counter()

    def fails(inst) -> bool:
        if not found[0] and time.perf_counter() - start > budget.property_budget_s:
            return False  # time budget spent: the remaining draws are not run
        tried[0] += 1
        bad = problem(inst) is not None
        found[0] = found[0] or bad
        return bad

    try:
        inst = find(strategy, fails, settings=_hypothesis_settings(budget))
    except NoSuchExample:
        return None, None, tried[0]
    return inst, problem(inst), tried[0]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80] or "solver"


def write_counterexample(inst, out_dir: str | os.PathLike, solver_name: str, check: str,
                         message: str) -> str:
    """Save the minimal failing instance (interchange format) and return its path."""
    from harness.io import save_instance

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{_slug(solver_name)}-{check}.npz"
    meta = dict(inst.meta)
    meta["counterexample"] = {"solver": solver_name, "check": check, "message": message}
    save_instance(inst.replace(meta=meta), path)
    return str(path)


MAX_REPLAY = 50


def _replay(name: str, solver_name: str, problem, out_dir) -> tuple[Any, str | None, int]:
    """This solver's saved counterexamples of this check in `out_dir` run first, like Hypothesis's
    example database: a fixed bug stays fixed. (first still-failing instance, message, count)"""
    from harness.io import load_instance

    folder = Path(out_dir)
    if not folder.is_dir():
        return None, None, 0
    n = 0
    for path in sorted(folder.glob(f"{_slug(solver_name)}-{name}*.npz"))[:MAX_REPLAY]:
        try:
            inst = load_instance(path)
        except HarnessError:
            continue
        n += 1
        msg = problem(inst)
        if msg is not None:
            return inst, msg, n
    return None, None, n


def _property_check(name: str, strategy, problem, runner, budget, out_dir) -> CheckOutcome:
    t0 = time.perf_counter()
    inst, msg, replayed = _replay(name, runner.solver.name, problem, out_dir)
    if inst is not None:
        path = write_counterexample(inst, out_dir, runner.solver.name, name, msg)
        return CheckOutcome(name, "FAIL", f"{msg} (a saved counterexample, replayed)", counterexample=path)
    inst, msg, tried = _find_minimal(strategy, problem, budget)
    secs = time.perf_counter() - t0
    if inst is None:
        again = f" + {replayed} saved counterexamples" if replayed else ""
        cut = ", time budget reached" if tried < budget.max_examples else ""
        return CheckOutcome(name, "pass", f"{tried} instances{again}, no failure ({secs:.1f} s{cut})")
    path = write_counterexample(inst, out_dir, runner.solver.name, name, msg)
    return CheckOutcome(name, "FAIL", msg, counterexample=path)


# ------------------------------------------------------------------ chain instances
CHAIN_SOURCES = (("planted", 3, 4, 1), ("unsat", 3, 4, 1))  # (sat_sources family, k, v, seed)


def chain_cases() -> list:
    """Small SAT -> OV -> attention gradient -> LoRA chain instances (REDUCTIONS.md; the route
    `reductions.chain.route("lora")`) with known answers.

    Each case is `(label, Instance, decode, expected)`: `Instance` is the LoRA instance the first
    oracle call sees; `decode(grads, solver)` finishes the chain's decode from that call's gradients
    (calling `solver` for the follow-up queries of a yes instance) and returns "SAT", "UNSAT" or a
    one-line description of a wrong model, and carries `decode.required_accuracy` (the max-norm
    accuracy the chain needs; cases needing less than the claimed eps are skipped); `expected`
    comes from python-sat."""
    from reductions import sat_sources
    from reductions.arrows.base import Composite
    from reductions.chain import route
    from reductions.problems.lora import lora_oracle

    cases = []
    for family, k, v, seed in CHAIN_SOURCES:
        cnf = getattr(sat_sources, family)(k, v, seed=seed)
        arrows = route("lora")
        x = cnf
        for a in arrows:
            x = a.reduce(x)

        def decode(grads, solver, arrows=arrows, x=x, cnf=cnf):
            model = Composite(arrows).decode(x, dict(grads), lora_oracle(solver))
            if model is None:
                return "UNSAT"
            return "SAT" if cnf.satisfies(model) else "a model that does not satisfy the formula"

        decode.required_accuracy = float(arrows[-1].required_accuracy(x))
        expected = "SAT" if cnf.solve() is not None else "UNSAT"
        cases.append((f"{family}-k{k}-v{v}-s{seed}", x.inst, decode, expected))
    return cases


def _chain_check(runner: _Runner, eps: float | None, out_dir) -> CheckOutcome:
    """Reduction-chain instances: the answer decoded through the solver equals the known answer.
    Only for claims at least as tight as the chain's required accuracy; a solver's deliberate
    refusal (hard regime) is not a failure."""
    cases = chain_cases()
    if eps is None:
        return CheckOutcome("chain", "skip", "no accuracy claim to hold the chain to")
    done, refused, loose = 0, 0, 0
    for label, inst, decode, expected in cases:
        req = getattr(decode, "required_accuracy", None)
        if req is not None and eps > req:
            loose += 1
            continue
        try:
            res = runner.solve(inst)
            got = decode(res.grads, runner.solver)
            msg = None if got == expected else f"decoded {got}, expected {expected}"
        except HarnessError as exc:
            if _callable_of(runner.solver) is None and _is_refusal(exc):
                refused += 1
                continue
            msg = _one_line(exc)
        except Exception as exc:
            msg = _one_line(exc)
        if msg:
            path = write_counterexample(inst, out_dir, runner.solver.name, "chain", f"{label}: {msg}")
            return CheckOutcome("chain", "FAIL", f"{label} ({inst.describe()}): {msg}", counterexample=path)
        done += 1
    if not done:
        why = f"{refused} refused (hard regime), {loose} need accuracy below the claimed eps"
        return CheckOutcome("chain", "skip", f"no chain instance decoded: {why}")
    extra = (f", {refused} refused" if refused else "") + (f", {loose} beyond the claim" if loose else "")
    return CheckOutcome("chain", "pass", f"{done} SAT/UNSAT chain instances decoded correctly{extra}")


# ------------------------------------------------------------------ scaling fit
def fit_exponent(xs: Iterable[float], samples: Iterable[Iterable[float]], n_boot: int = 400,
                 seed: int = 0) -> dict:
    """Log-log least-squares slope of median(samples) against xs with a 95% bootstrap CI
    (`harness.measure.fit.fit_power`: resamples residuals and, with several repeats, the repeats)."""
    from harness.measure.fit import fit_power

    xs = np.asarray(list(xs), dtype=float)
    samples = [np.asarray(list(s), dtype=float) for s in samples]
    med = [float(np.median(s)) for s in samples]
    out = fit_power(xs, med, samples=samples if len(samples[0]) > 1 else None, n_boot=n_boot, seed=seed)
    return {"exponent": float(out["exponent"]), "ci_low": float(out["ci"][0]), "ci_high": float(out["ci"][1])}


def _scaling_instance(L: int, d: int):
    from harness import families

    return families.bounded(L=L, d=d, r=2, gamma=1.0, adapt=("q", "v"), seed=L)


def measure_scaling(solver, budget: Budget, dtype: str = "float64", device: str = "cpu",
                    opts: dict | None = None) -> dict:
    """Times (interleaved repeats) and op counts over geometric L. Returns
    {"L": [...], "seconds": [[...], ...], "ops": [...] or None}."""
    fn = _callable_of(solver)
    opts = opts or {}

    def call(inst):
        if fn is not None:
            import torch

            from harness.solvers.base import resolve_device, resolve_dtype

            t = inst.as_torch(dtype=resolve_dtype(dtype), device=resolve_device(device))
            t0 = time.perf_counter()
            with torch.no_grad():
                out = fn(t)
            if device != "cpu" and torch.cuda.is_available():
                torch.cuda.synchronize()
            sec = time.perf_counter() - t0
            ops = out.get("ops") if hasattr(out, "get") else None
            return sec, (int(ops) if ops is not None else None)
        t0 = time.perf_counter()
        res = solver.solve(inst, dtype=dtype, device=device, **opts)
        return time.perf_counter() - t0, res.ops

    with one_thread():
        return _measure(call, budget)


def _measure(call, budget: Budget) -> dict:
    start = time.perf_counter()
    Ls, insts, ops = [], [], []
    for L in budget.scaling_L:
        inst = _scaling_instance(L, budget.scaling_d)
        sec, op = call(inst)  # warm-up, and the op count (deterministic)
        Ls.append(L)
        insts.append(inst)
        ops.append(op)
        if sec > budget.call_budget_s or time.perf_counter() - start > budget.scaling_budget_s / 3:
            break
    seconds = [[] for _ in Ls]
    for _ in range(budget.repeats):  # interleaved: each round visits every size once
        for i, inst in enumerate(insts):
            seconds[i].append(call(inst)[0])
        if time.perf_counter() - start > budget.scaling_budget_s:
            break
    return {"L": Ls, "seconds": seconds, "ops": ops if all(o is not None for o in ops) else None}


def _scaling_witness(solver, L: int, budget: Budget, out_dir, message: str) -> str:
    """For an exponent claim the witness is the largest timed instance (a reproducer)."""
    return write_counterexample(_scaling_instance(L, budget.scaling_d), out_dir, solver.name,
                                "scaling", message)


def _scaling_checks(solver, claim: float | None, budget: Budget, dtype, device, opts,
                    out_dir) -> list[CheckOutcome]:
    try:
        m = measure_scaling(solver, budget, dtype, device, opts)
    except HarnessError as exc:
        if _callable_of(solver) is None and _is_refusal(exc):
            return [CheckOutcome("scaling", "skip", f"solver refused a scaling instance: {_one_line(exc)}")]
        return [CheckOutcome("scaling", "FAIL", f"solver failed on a scaling instance: {_one_line(exc)}")]
    except Exception as exc:
        return [CheckOutcome("scaling", "FAIL", f"solver failed on a scaling instance: {_one_line(exc)}")]
    out = []
    Ls = m["L"]
    if len(Ls) < 3:
        return [CheckOutcome("scaling", "skip",
                             f"solver too slow for a fit (one call > {budget.call_budget_s:g} s at L={Ls[-1]})")]

    def verdict(check: str, desc: str, value: float, margin: float, figs: dict) -> CheckOutcome:
        if claim is None:
            return CheckOutcome(check, "info", desc + "; no exponent claimed", figures=figs)
        if value > claim + margin:
            return CheckOutcome(check, "FAIL", f"{desc}: above claimed {claim:g} + {margin:g}",
                                counterexample=_scaling_witness(solver, Ls[-1], budget, out_dir, desc),
                                figures=figs)
        return CheckOutcome(check, "pass", f"{desc}; claimed {claim:g}", figures=figs)

    if budget.repeats:
        keep = [i for i, s in enumerate(m["seconds"]) if np.median(s) >= MIN_TIMED_S]
        keep = keep if len(keep) >= 3 else list(range(len(Ls)))
        fit = fit_exponent([Ls[i] for i in keep], [m["seconds"][i] for i in keep], n_boot=budget.n_boot)
        desc = (f"time ~ L^{fit['exponent']:.2f} (95% CI {fit['ci_low']:.2f}..{fit['ci_high']:.2f}) "
                f"over L={Ls[keep[0]]}..{Ls[keep[-1]]}")
        figs = {"L": Ls, "median_seconds": [float(np.median(s)) for s in m["seconds"]], **fit}
        out.append(verdict("scaling", desc, fit["ci_low"], MARGIN, figs))
    elif not m["ops"]:
        out.append(CheckOutcome("scaling", "skip", "timing disabled and the solver reports no op counts"))
    if m["ops"]:
        ofit = fit_exponent(Ls, [[o] for o in m["ops"]], n_boot=1)
        desc = f"ops ~ L^{ofit['exponent']:.2f} over L={Ls[0]}..{Ls[-1]} (deterministic)"
        out.append(verdict("ops", desc, ofit["exponent"], OPS_MARGIN,
                           {"L": Ls, "ops": m["ops"], "exponent": ofit["exponent"]}))
    return out


# ------------------------------------------------------------------ the suite
def run_suite(solver, claim_eps: float | None = None, claim_exponent: float | None = None,
              out_dir: str | os.PathLike = "lora-harness-counterexamples", dtype: str = "float64",
              device: str = "cpu", opts: dict | None = None, reference: str = "autograd",
              budget: Budget | str = DEFAULT, checks: Iterable[str] | None = None) -> SuiteReport:
    """Run the property suite on `solver` (name, `module:attr`, Solver or callable).

    `checks` limits which run (finite, accuracy, invariance, chain, scaling); all by default."""
    from harness.solvers import get_solver

    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise HarnessError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
        budget = BUDGETS[budget]
    if claim_eps is not None and not (claim_eps > 0 and math.isfinite(claim_eps)):
        raise HarnessError(f"--claim-eps must be a positive number, got {claim_eps}")
    if claim_exponent is not None and not (claim_exponent > 0 and math.isfinite(claim_exponent)):
        raise HarnessError(f"--claim-exponent must be a positive number, got {claim_exponent}")
    if dtype not in DEFAULT_EPS:
        raise HarnessError(f"unsupported dtype {dtype!r}; use float32 or float64")
    from harness.solvers.base import resolve_device

    resolve_device(device)  # an unavailable device is a usage error
    solver = get_solver(solver)
    unknown = sorted(set(opts or {}) - set(solver.options))
    if unknown:  # a usage error, not a finding
        allowed = ", ".join(sorted(solver.options)) or "none"
        raise HarnessError(f"solver {solver.name!r} has no option {unknown[0]!r} (options: {allowed})")
    with one_thread():
        return _run_checks(solver, claim_eps, claim_exponent, out_dir, dtype, device, opts, reference,
                           budget, checks)


def _run_checks(solver, claim_eps, claim_exponent, out_dir, dtype, device, opts, reference, budget,
                checks) -> SuiteReport:
    runner = _Runner(solver, reference, dtype, device, opts or {})
    wanted = set(checks or ("finite", "accuracy", "invariance", "chain", "scaling"))
    exact = bool(getattr(solver, "exact", False))
    eps = claim_eps if claim_eps is not None else (DEFAULT_EPS[dtype] if exact else None)
    kw = dict(max_L=budget.max_L, max_d=budget.max_d, max_N=budget.max_N)
    outcomes: list[CheckOutcome] = []

    if "finite" in wanted:
        outcomes.append(_property_check("finite", stress_instances(**kw),
                                        lambda inst: _finite_problem(runner, inst), runner, budget, out_dir))
    if "accuracy" in wanted:
        domain = "general + bounded instances" if exact else "bounded-entry regime"
        o = _property_check("accuracy", accuracy_instances(exact, **kw),
                            lambda inst: _accuracy_problem(runner, inst, eps, check_cert=True),
                            runner, budget, out_dir)
        if o.status == "pass":
            claim = f"eps {eps:.1e}" if eps is not None else "certificates only (no --claim-eps)"
            o.detail = f"{claim} on {domain}: {o.detail}"
        outcomes.append(o)
    if "invariance" in wanted:
        if eps is None:
            outcomes.append(CheckOutcome("invariance", "skip", "no accuracy claim to hold it to"))
        else:
            outcomes.append(_property_check("invariance", accuracy_instances(exact, **kw),
                                            lambda inst: _invariance_problem(runner, inst, eps),
                                            runner, budget, out_dir))
    if "chain" in wanted:
        outcomes.append(_chain_check(runner, eps, out_dir))
    if "scaling" in wanted and budget.scaling:
        outcomes.extend(_scaling_checks(solver, claim_exponent, budget, dtype, device, opts or {},
                                        out_dir))
    return SuiteReport(solver.name, outcomes)


def assert_solver_meets(solver, eps: float | None = None, exponent: float | None = None,
                        budget: Budget | str = QUICK, out_dir: str | os.PathLike | None = None,
                        **kw) -> SuiteReport:
    """Run the suite and raise AssertionError (with the table and the counterexample path) when a
    claim fails; for use in a user's own tests (also exported by the pytest plugin)."""
    if out_dir is None:
        import tempfile

        out_dir = tempfile.mkdtemp(prefix="lora-harness-cex-")
    if exponent is None and "checks" not in kw:
        kw["checks"] = ("finite", "accuracy", "invariance", "chain")
    report = run_suite(solver, claim_eps=eps, claim_exponent=exponent, out_dir=out_dir,
                       budget=budget, **kw)
    if not report.ok:
        raise AssertionError("solver does not meet its claims:\n" + report.table())
    return report


def _cli_options(args) -> dict:
    """Solver options from the CLI: --opt key=value and the shortcuts (--eps, --degree, ...)."""
    from harness.commands import core

    if hasattr(core, "_solver_options"):
        return core._solver_options(args)
    return core._parse_options(getattr(args, "opt", None))


def run_from_cli(args) -> int:
    """`lora-harness check --solver S [--claim-eps E] [--claim-exponent K] [--out-dir D]`:
    exit 0 with a summary table when all claims hold, 1 when one fails (minimal counterexample
    written and its path printed). Budget: `--thorough` / `--budget NAME` when the CLI has them,
    else the environment variable LORA_HARNESS_CHECK_BUDGET = smoke | quick | default | thorough."""
    name = os.environ.get("LORA_HARNESS_CHECK_BUDGET", "default").strip().lower() or "default"
    if getattr(args, "budget", None):
        name = args.budget
    if getattr(args, "thorough", False):
        name = "thorough"
    if name not in BUDGETS:
        raise HarnessError(f"LORA_HARNESS_CHECK_BUDGET={name!r}; choose from {', '.join(BUDGETS)}")
    t0 = time.perf_counter()
    report = run_suite(args.solver, claim_eps=args.claim_eps, claim_exponent=args.claim_exponent,
                       out_dir=args.out_dir, dtype=args.dtype, device=args.device,
                       opts=_cli_options(args),
                       reference=getattr(args, "reference", None) or "autograd", budget=name)
    print(report.table())
    print(f"({name} budget, {time.perf_counter() - t0:.1f} s)")
    for o in report.outcomes:
        if o.failed and o.counterexample:
            print(f"counterexample ({o.check}): {o.counterexample}")
    return 0 if report.ok else 1
