"""The referee for attention functions (harness.from_attention, --attention, --forward-only) and the
honest-verdict rules of the check suite: each bug of issue 11 has a regression test here."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import Refusal, families, from_attention
from harness.checks import SMOKE, Budget, run_suite
from harness.checks.evidence import exponent_evidence, exponent_verdict
from harness.cli import main
from harness.errors import HarnessError
from harness.io import load_instance
from harness.solvers import get_solver

ROOT = Path(__file__).resolve().parents[1]
SDPA = "torch.nn.functional:scaled_dot_product_attention"
# tiny timing budget: real timing, sizes small enough for the fast tier
TINY_TIMED = Budget(
    max_examples=10,
    max_L=6,
    max_d=3,
    max_N=2,
    scaling_L=(32, 64, 128),
    repeats=1,
    max_scaling_L=128,
    scaling_budget_s=5.0,
    property_budget_s=5.0,
)


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------ from_attention
def test_from_attention_sdpa_matches_the_reference():
    s = from_attention(torch.nn.functional.scaled_dot_product_attention, exact=True)
    ref = get_solver("autograd")
    for inst in (
        families.bounded(L=7, d=3, r=2, adapt=("q", "k", "v"), N=2, seed=1),
        families.gaussian(L=5, Lk=9, d=4, r=1, seed=2, cross=True),
    ):
        res, want = s.solve(inst), ref.solve(inst)
        assert res.max_abs_error(want) <= 1e-12 * max(1.0, max(np.abs(g).max() for g in want.grads.values()))
        assert np.allclose(s.forward(inst), ref.forward(inst), atol=1e-13)
        assert math.isclose(res.loss, want.loss, rel_tol=1e-12)


def test_from_attention_uses_backward_so_reentrant_checkpointing_works():
    from tests.thirdparty import checkpointed_attention

    inst = families.bounded(L=4, d=2, r=1, seed=0)
    with pytest.raises(RuntimeError):  # what autograd.grad-based glue would hit
        q = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
        torch.autograd.grad(checkpointed_attention(q, q, q, scale=1.0).sum(), [q])
    res = from_attention(checkpointed_attention).solve(inst)
    assert res.max_abs_error(get_solver("autograd").solve(inst)) <= 1e-12


def test_declared_capabilities_and_refusal():
    def self_only(q, k, v, *, scale):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)

    self_only.self_attention_only = True
    s = from_attention(self_only)
    assert not s.exact and s.self_attention_only and s.supports_float64
    assert from_attention(self_only, exact=True).exact  # the keyword wins over the attribute
    with pytest.raises(Refusal, match="self-attention only"):
        s.solve(families.gaussian(L=2, Lk=3, d=2, seed=0, cross=True))
    s32 = from_attention(self_only, supports_float64=False)
    with pytest.raises(Refusal, match="float64"):
        s32.solve(families.bounded(L=3, d=2, seed=0), dtype="float64")
    assert np.isfinite(s32.forward(families.bounded(L=3, d=2, seed=0), dtype="float32")).all()


def test_refusals_are_never_failures_nor_passes(tmp_path):
    def refuses(q, k, v, *, scale):
        raise Refusal("this kernel needs L a multiple of 128")

    rep = run_suite(
        from_attention(refuses, exact=True),
        claim_eps=1e-8,
        budget=SMOKE,
        out_dir=tmp_path,
        checks=("finite", "accuracy", "invariance"),
    )
    assert rep.ok and not rep.verified, rep.table()
    assert {o.status for o in rep.outcomes} == {"not verified"}
    assert rep.exit_code == 4 and not list(tmp_path.iterdir())


def test_self_attention_only_draws_self_attention(tmp_path):
    def strict(q, k, v, *, scale):
        assert q.shape[1] == k.shape[1]
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)

    strict.self_attention_only = True
    strict.exact = True
    rep = run_suite(
        from_attention(strict),
        claim_eps=1e-8,
        budget=SMOKE,
        out_dir=tmp_path,
        checks=("finite", "accuracy", "invariance"),
    )
    assert rep.verified, rep.table()


# ------------------------------------------------------------------ done criteria (no timing here)
def test_sdpa_passes_at_1e8_and_wrong_axis_fails_in_both_modes(tmp_path, capsys):
    checks = ["--budget", "smoke", "--out-dir", str(tmp_path)]
    code, out, _ = run(capsys, "check", "--attention", SDPA, "--claim-eps", "1e-8", *checks)
    assert code == 0 and "all claims hold" in out, out
    for extra in ([], ["--forward-only"]):
        code, out, _ = run(
            capsys,
            "check",
            "--attention",
            "tests.planted:softmax_wrong_axis",
            "--claim-eps",
            "1e-8",
            *checks,
            *extra,
        )
        assert code == 1 and "CLAIM FAILED" in out, out
        name = "forward-accuracy" if extra else "accuracy"
        cex = tmp_path / f"tests.planted_softmax_wrong_axis-{name}.npz"
        inst = load_instance(cex)
        assert inst.L <= 2 and inst.d == 1, inst  # shrunk to two tokens, one feature
        o = np.asarray(from_attention(__import__("tests.planted").planted.softmax_wrong_axis).forward(inst))
        assert np.abs(o - get_solver("autograd").forward(inst)).max() > 1e-3


def test_sdpa_forward_only_passes(tmp_path, capsys):
    code, out, _ = run(
        capsys,
        "check",
        "--attention",
        SDPA,
        "--exact",
        "--claim-eps",
        "1e-8",
        "--forward-only",
        "--budget",
        "smoke",
        "--out-dir",
        str(tmp_path),
    )
    assert code == 0, out
    for row in ("forward-finite", "forward-accuracy", "equivariance", "forward-chain"):
        assert any(line.startswith(row) and " pass " in line for line in out.splitlines()), out


# ------------------------------------------------------------------ honest verdicts
def test_scaling_runs_autograd_callables_with_grad_mode(tmp_path):
    """Bug: the scaling check called callables under torch.no_grad(), so autograd-based ones failed."""
    rep = run_suite(
        "tests.thirdparty:exact_solver",
        claim_eps=1e-8,
        claim_exponent=2,
        budget=TINY_TIMED,
        out_dir=tmp_path,
        checks=("scaling",),
    )
    row = rep.outcome("scaling")
    assert "does not require grad" not in row.detail and row.status != "FAIL", row


def test_unchecked_exponent_claim_is_not_verified(tmp_path, capsys):
    """Bug: smoke budget (no timing), no op counts: a claim of L^0.5 for O(L^2) code 'held'."""
    code, out, _ = run(
        capsys,
        "check",
        "--solver",
        "tests.thirdparty:dense_no_ops",
        "--claim-eps",
        "1e-8",
        "--claim-exponent",
        "0.5",
        "--budget",
        "smoke",
        "--out-dir",
        str(tmp_path),
    )
    assert code == 4, out
    assert "NOT VERIFIED (scaling)" in out and "all claims hold" not in out


def _samples(Ls, f, reps=3, jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return [[f(L) * (1 + jitter * rng.standard_normal()) for _ in range(reps)] for L in Ls]


def test_overhead_dominated_fit_is_not_verified():
    """Bug: a fit over call overhead read L^0.3-0.7 for quadratic code and 'passed' L^1.1."""
    Ls = [256, 512, 1024, 2048, 4096]
    c = 5e-3  # 5 ms overhead, quadratic work that stays below it
    ev = exponent_evidence(Ls, _samples(Ls, lambda L: c + 1e-10 * L * L), floor=c)
    assert exponent_verdict(1.1, ev)[0] == "not verified"
    assert exponent_verdict(None, ev)[0] == "info"


def test_work_dominated_fit_decides():
    Ls = [256, 512, 1024, 2048, 4096, 8192]
    c = 1e-4
    ev = exponent_evidence(Ls, _samples(Ls, lambda L: c + 1e-8 * L * L, jitter=0.02), floor=c)
    assert ev["kept"][0] >= 256 and len(ev["kept"]) >= 3
    assert exponent_verdict(1.1, ev)[0] == "FAIL"
    assert exponent_verdict(2.0, ev)[0] == "pass"
    noisy = exponent_evidence(
        Ls[:3], _samples(Ls[:3], lambda L: 1e-8 * L * L, jitter=0.8, seed=3), floor=1e-7
    )
    assert exponent_verdict(2.0, noisy)[0] in ("not verified", "pass")
    if noisy["status"] == "noisy":
        assert exponent_verdict(2.0, noisy)[0] == "not verified"


def test_instance_mode_honours_claim_eps(tmp_path, capsys):
    """Bug: `check inst.npz` ignored --claim-eps and used 1e-8."""
    inst = tmp_path / "i.npz"
    run(capsys, "generate", "bounded", "--L", "8", "--d", "4", "--seed", "3", "--out", str(inst))
    code, out, _ = run(
        capsys, "check", str(inst), "--solver", "tests.planted:off_by_1e3", "--claim-eps", "1e-2"
    )
    assert code == 0 and "claimed 1.0e-02 x max(1, |G_ref|_inf" in out, out
    code, out, _ = run(capsys, "check", str(inst), "--solver", "closed-form", "--claim-eps", "1e-17")
    assert code == 1 and "FAIL" in out, out


@pytest.mark.parametrize(
    "spec, words",
    [
        ("tests.thirdparty:wrong_signature", "cannot be called as fn(tensors)"),
        ("tests.thirdparty:returns_tuple", "returned tuple; expected a mapping"),
        ("tests.thirdparty:wrong_keys", "returned no 'dA_q'"),
        ("tests.thirdparty:broken_shape", "with shape (2, 1); expected (1, 2)"),
    ],
)
def test_contract_errors_are_usage_errors(spec, words, tmp_path, capsys):
    """Bug: five checks 'FAIL', exit 1, and unrelated counterexamples replayed on every later run."""
    out_dir = tmp_path / "cex"
    code, out, err = run(
        capsys,
        "check",
        "--solver",
        spec,
        "--claim-eps",
        "1e-8",
        "--budget",
        "smoke",
        "--out-dir",
        str(out_dir),
    )
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, (out, err)
    assert not out_dir.exists()


@pytest.mark.parametrize(
    "spec, words",
    [
        ("tests.thirdparty:attention_wrong_signature", "cannot be called as fn(q, k, v, *, scale)"),
        ("tests.thirdparty:attention_wrong_shape", "returned shape (1, 1, 2); expected (N, Lq, d)"),
    ],
)
def test_attention_contract_errors_are_usage_errors(spec, words, tmp_path, capsys):
    code, _, err = run(
        capsys, "check", "--attention", spec, "--budget", "smoke", "--out-dir", str(tmp_path / "c")
    )
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "c").exists()


def test_accuracy_without_claim_is_not_claimed(tmp_path, capsys):
    """Bug: an all-zeros solver got accuracy 'pass' without a claim or certificate."""
    code, out, _ = run(
        capsys, "check", "--solver", "tests.thirdparty:zeros", "--budget", "smoke", "--out-dir", str(tmp_path)
    )
    assert code == 0, out
    acc = next(line for line in out.splitlines() if line.startswith("accuracy"))
    assert "not claimed" in acc and " pass " not in acc, out
    assert "all claims hold" not in out


def test_module_attr_resolves_the_current_directory(tmp_path, monkeypatch):
    """Bug: the console script (bin/ first on sys.path, not cwd) could not find ./mymod.py."""
    (tmp_path / "cwd_attention_mod.py").write_text(
        "import torch\n"
        "def attn(q, k, v, *, scale):\n"
        "    return torch.softmax(scale * q @ k.transpose(-1, -2), -1) @ v\n"
    )
    (tmp_path / "broken_dep_mod.py").write_text("import not_installed_pkg_xyz\n")
    (tmp_path / "raising_mod.py").write_text("raise RuntimeError('needs CUDA')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    from harness.solvers.registry import resolve_object

    assert callable(resolve_object("cwd_attention_mod:attn"))
    with pytest.raises(HarnessError, match="importing module 'broken_dep_mod' failed: ModuleNotFoundError"):
        resolve_object("broken_dep_mod:f")
    with pytest.raises(HarnessError, match="importing module 'raising_mod' failed: RuntimeError: needs CUDA"):
        resolve_object("raising_mod:f")
    with pytest.raises(HarnessError, match="no module named 'no_such_mod_xyz'"):
        resolve_object("no_such_mod_xyz:f")


def test_repeated_library_warning_is_shown_once(tmp_path, capsys):
    """Bug: Hypothesis resets the once-per-location registry on each draw: one warning per call."""
    code, out, err = run(
        capsys,
        "check",
        "--solver",
        "tests.thirdparty:noisy",
        "--claim-eps",
        "1e-8",
        "--budget",
        "smoke",
        "--out-dir",
        str(tmp_path),
    )
    text = out + err
    assert code == 0, text
    assert text.count("torch.cuda.amp.autocast(args...) is deprecated") == 1, text
    assert "shown once" in text
