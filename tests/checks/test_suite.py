"""The third-party property suite (harness.checks): it rejects every planted bug (tests/planted.py)
with a minimal counterexample on disk, and passes the project's exact solvers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.checks.budgets import QUICK, SMOKE
from harness.checks.chain import chain_cases
from harness.checks.properties import permuted
from harness.checks.scaling import fit_exponent
from harness.checks.suite import run_suite
from harness.errors import HarnessError
from harness.io import load_instance
from harness.solvers import get_solver

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Small property budgets; op counts only (no timing) so the fast tier is deterministic.
FAST = SMOKE


def _run(spec, tmp_path, **kw):
    kw.setdefault("budget", FAST)
    return run_suite(spec, out_dir=tmp_path, **kw)


def _assert_counterexample(outcome, spec):
    """The file exists, loads in the interchange format, is small, and still shows the failure."""
    assert outcome.counterexample, outcome
    inst = load_instance(outcome.counterexample)
    assert inst.meta["counterexample"]["check"] == outcome.check
    return inst


@pytest.mark.parametrize("name", ["printed_q", "printed_p2", "off_by_1e3"])
def test_wrong_gradients_fail_accuracy(name, tmp_path):
    spec = f"tests.planted:{name}"
    rep = _run(spec, tmp_path, claim_eps=1e-8, checks=("finite", "accuracy"))
    acc = rep.outcome("accuracy")
    assert not rep.ok and acc.failed, rep.table()
    inst = _assert_counterexample(acc, spec)
    assert inst.L <= 4 and inst.d <= 2, inst  # shrunk to a minimal instance
    res = get_solver(spec).solve(inst)
    ref = get_solver("autograd").solve(inst)
    want = 1e-3 if name == "off_by_1e3" else 1e-2
    assert res.max_abs_error(ref) >= want * 0.999


def test_off_by_1e3_passes_a_loose_claim(tmp_path):
    rep = _run("tests.planted:off_by_1e3", tmp_path, claim_eps=1e-2, checks=("finite", "accuracy"))
    assert rep.ok, rep.table()


def test_nan_on_large_scores_fails_finite(tmp_path):
    rep = _run("tests.planted:nan_on_large", tmp_path, claim_eps=1e-8, checks=("finite", "accuracy"))
    fin = rep.outcome("finite")
    assert fin.failed and "NaN" in fin.detail, rep.table()
    assert rep.outcome("accuracy").status == "pass"  # accurate where scores are moderate
    inst = _assert_counterexample(fin, "nan_on_large")
    res = get_solver("tests.planted:nan_on_large").solve(inst)
    assert res.info.get("nonfinite")


def test_quadratic_fails_exponent_claim_on_op_counts(tmp_path):
    rep = _run("tests.planted:quadratic", tmp_path, claim_eps=1e-8, claim_exponent=1.1)
    ops = rep.outcome("ops")
    assert ops.failed and abs(ops.figures["exponent"] - 2.0) < 0.05, rep.table()
    assert rep.outcome("accuracy").status == "pass"
    assert load_instance(ops.counterexample).L == 512


@pytest.mark.parametrize("name", ["closed-form", "streaming", "sdpa", "tests.planted:correct"])
def test_exact_solvers_pass(name, tmp_path):
    rep = _run(name, tmp_path, claim_eps=1e-8, claim_exponent=2.0)
    assert rep.ok, rep.table()
    assert rep.outcome("accuracy").status == "pass"
    assert rep.outcome("finite").status == "pass"
    assert rep.outcome("ops").status == "pass"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("eps", [None, 1e-6])
def test_poly_meets_its_claim(eps, tmp_path):
    """poly in its regime: within its certificates, and within its default eps = 1e-6."""
    rep = _run("poly", tmp_path, claim_eps=eps, checks=("accuracy", "invariance"))
    assert rep.ok, rep.table()


def _raises(t):
    raise ValueError("boom")


def _wrong_shape(t):
    out = get_solver("closed-form").solve(_inst_from(t)).grads
    return {k: np.zeros((v.shape[0] + 1,) + v.shape[1:]) for k, v in out.items()}


def _inst_from(t):
    from harness.instance import Instance

    arrays = {k: v.numpy() for k, v in t.items() if k not in ("alpha", "beta")}
    return Instance.from_arrays(arrays, alpha=float(t["alpha"]), beta=float(t["beta"]))


def test_exceptions_are_one_line_failures(tmp_path):
    rep = _run(_raises, tmp_path, claim_eps=1e-8, checks=("finite",))
    fin = rep.outcome("finite")
    assert fin.failed and "raised ValueError: boom" in fin.detail and "\n" not in fin.detail, fin


def test_wrong_shapes_are_a_usage_error(tmp_path):
    """The calling convention is checked once, before any check: no finding, no file written."""
    with pytest.raises(HarnessError, match="with shape"):
        _run(_wrong_shape, tmp_path / "cex", claim_eps=1e-8, checks=("finite",))
    assert not (tmp_path / "cex").exists()


def test_bad_claims_are_harness_errors(tmp_path):
    with pytest.raises(HarnessError, match="claim-eps"):
        run_suite("closed-form", claim_eps=-1.0, out_dir=tmp_path)
    with pytest.raises(HarnessError, match="budget"):
        run_suite("closed-form", budget="huge", out_dir=tmp_path)


def test_fit_exponent_recovers_known_slopes():
    xs = [64, 128, 256, 512]
    rng = np.random.default_rng(0)
    for k in (1.0, 2.0):
        samples = [[x**k * (1 + 0.01 * rng.random()) for _ in range(5)] for x in xs]
        fit = fit_exponent(xs, samples, n_boot=100)
        assert abs(fit["exponent"] - k) < 0.02
        assert fit["ci_low"] <= fit["exponent"] <= fit["ci_high"]


def _cli(*args, tmp_path):
    env = dict(
        os.environ,
        LORA_HARNESS_CHECK_BUDGET="smoke",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    cmd = [sys.executable, "-m", "harness.cli", "check", *args, "--out-dir", str(tmp_path)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


def test_cli_exits_nonzero_and_prints_counterexample(tmp_path):
    p = _cli("--solver", "tests.planted:printed_q", "--claim-eps", "1e-8", tmp_path=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "CLAIM FAILED" in p.stdout
    paths = [line.split(": ", 1)[1] for line in p.stdout.splitlines() if line.startswith("counterexample (")]
    assert paths and all(load_instance(x) for x in paths)


def test_cli_passes_closed_form(tmp_path):
    p = _cli("--solver", "closed-form", "--claim-eps", "1e-8", tmp_path=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all claims hold" in p.stdout


@pytest.mark.slow
def test_quadratic_fails_on_timing_alone(tmp_path):
    """A quadratic solver that reports no op counts is caught by the timing fit (single-threaded,
    interleaved repeats; claim 1.1 + margin 0.5 vs a measured ~2-2.6)."""
    import tests.planted as planted

    def no_ops(t):
        out = planted.quadratic(t)
        out.pop("ops")
        return out

    rep = run_suite(no_ops, claim_exponent=1.1, out_dir=tmp_path, budget=QUICK, checks=("scaling",))
    assert rep.outcome("scaling").failed, rep.table()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["closed-form", "streaming"])
def test_exact_solvers_pass_timing_claim(name, tmp_path):
    rep = run_suite(name, claim_eps=1e-8, claim_exponent=2.0, out_dir=tmp_path)
    assert rep.ok, rep.table()


def test_printed_q_fails_the_reduction_chain(tmp_path):
    assert chain_cases()
    rep = _run("tests.planted:printed_q", tmp_path, claim_eps=1e-8, checks=("chain",))
    chain = rep.outcome("chain")
    assert chain.failed and "expected SAT" in chain.detail, rep.table()
    _assert_counterexample(chain, "printed_q")


def test_chain_is_skipped_for_claims_looser_than_it_needs(tmp_path):
    assert chain_cases()
    rep = _run("tests.planted:printed_q", tmp_path, claim_eps=0.5, checks=("chain",))
    assert rep.outcome("chain").status == "skip", rep.table()


@pytest.mark.parametrize("name", ["printed_q", "printed_p2"])
def test_printed_orientations_break_permutation_invariance(name, tmp_path):
    """The permutation invariance of docs/theory.md §3.5 needs no reference: the printed orientations fail
    it on their own."""
    rep = _run(f"tests.planted:{name}", tmp_path, claim_eps=1e-6, checks=("invariance",))
    inv = rep.outcome("invariance")
    assert inv.failed and "docs/theory.md §3.5" in inv.detail, rep.table()
    _assert_counterexample(inv, name)


def test_permutation_keeps_exact_gradients():
    from harness import families

    inst = families.gaussian(L=5, Lk=7, d=3, r=2, N=2, adapt=("q", "k", "v"), seed=9)
    ref = get_solver("closed-form")
    assert ref.solve(permuted(inst)).max_rel_error(ref.solve(inst)) <= 1e-12


def test_saved_counterexamples_are_replayed(tmp_path):
    """A counterexample found once is re-run first on the solver's later runs."""
    import shutil

    rep = _run("tests.planted:off_by_1e3", tmp_path, claim_eps=1e-8, checks=("accuracy",))
    saved = Path(rep.outcome("accuracy").counterexample)
    again = _run("tests.planted:off_by_1e3", tmp_path, claim_eps=1e-8, checks=("accuracy",))
    assert "replayed" in again.outcome("accuracy").detail
    shutil.copy(saved, tmp_path / "closed-form-accuracy-pin1.npz")  # a user's own pin
    fixed = _run("closed-form", tmp_path, claim_eps=1e-8, checks=("accuracy",))
    assert fixed.ok and "1 saved counterexamples" in fixed.outcome("accuracy").detail


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, exponent, check",
    [
        ("printed_q", "2", "accuracy"),
        ("printed_p2", "2", "accuracy"),
        ("off_by_1e3", "2", "accuracy"),
        ("quadratic", "1.1", "ops"),
        ("nan_on_large", "2", "finite"),
    ],
)
def test_cli_rejects_every_planted_bug_default_budget(name, exponent, check, tmp_path):
    """`lora-harness check` (default budget) exits 1 naming the check, with loadable counterexamples."""
    env = dict(
        os.environ,
        LORA_HARNESS_CHECK_BUDGET="default",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "check",
        "--solver",
        f"tests.planted:{name}",
        "--claim-eps",
        "1e-8",
        "--claim-exponent",
        exponent,
        "--out-dir",
        str(tmp_path),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert p.returncode == 1, p.stdout + p.stderr
    assert any(line.split()[:2] == [check, "FAIL"] for line in p.stdout.splitlines()), p.stdout
    files = sorted(tmp_path.glob("*.npz"))
    assert files and all(load_instance(f) for f in files)


def test_unknown_solver_option_is_a_usage_error(tmp_path):
    with pytest.raises(HarnessError, match="has no option 'foo'"):
        run_suite("closed-form", opts={"foo": 1}, out_dir=tmp_path)
    assert not list(tmp_path.iterdir())
