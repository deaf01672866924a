"""The referee on causal attention (`check --causal`, issue 16)."""

from __future__ import annotations

import pytest
import torch

from harness.checks import run_suite
from harness.io import load_instance
from tests.causal_helpers import attention_solver, bottom_right, ignores_mask, sdpa


def test_referee_passes_sdpa_and_shrinks_counterexamples_of_wrong_masks(tmp_path):
    checks = ("finite", "accuracy", "invariance")
    rep = run_suite(
        attention_solver(sdpa),
        claim_eps=1e-8,
        out_dir=tmp_path / "a",
        budget="smoke",
        checks=checks,
        causal=True,
    )
    assert rep.ok, rep.table()
    for fn, must_fail in ((ignores_mask, ("accuracy", "invariance")), (bottom_right, ("invariance",))):
        rep = run_suite(
            attention_solver(fn),
            claim_eps=1e-8,
            out_dir=tmp_path / fn.__name__,
            budget="smoke",
            checks=checks,
            causal=True,
        )
        for check in must_fail:  # bottom-right differs only when Lq != Lk, which appending keys makes
            o = rep.outcome(check)
            assert o.failed and o.counterexample, rep.table()
            cex = load_instance(o.counterexample)
            assert cex.causal and max(cex.Lq, cex.Lk) <= 2, cex.describe()
        # the same functions pass without the mask: the finding is about causal attention
        assert run_suite(
            attention_solver(fn),
            claim_eps=1e-8,
            out_dir=tmp_path / "nc",
            budget="smoke",
            checks=("accuracy",),
        ).ok


@pytest.mark.parametrize("name", ["closed-form", "streaming", "sdpa"])
def test_referee_passes_the_exact_solvers_on_causal_instances(tmp_path, name):
    rep = run_suite(
        name,
        out_dir=tmp_path,
        budget="smoke",
        checks=("finite", "accuracy", "invariance", "chain"),
        causal=True,
    )
    assert rep.ok, rep.table()
    assert rep.outcome("chain").status == "skip"


def test_referee_holds_poly_to_its_causal_certificate(tmp_path):
    rep = run_suite("poly", out_dir=tmp_path, budget="smoke", checks=("accuracy",), causal=True)
    assert rep.ok, rep.table()


def test_cli_generate_and_check_causal(tmp_path, capsys):
    from harness.cli import main

    out = tmp_path / "c.npz"
    assert main(["generate", "bounded", "--L", "12", "--d", "3", "--causal", "--out", str(out)]) == 0
    assert load_instance(out).causal
    assert main(["check", str(out), "--solver", "streaming"]) == 0
    assert "causal" in capsys.readouterr().out


def test_forward_only_referee_on_causal_attention(tmp_path):
    checks = ("forward-finite", "forward-accuracy", "equivariance", "forward-chain")

    def referee(fn, out):
        return run_suite(
            attention_solver(fn),
            claim_eps=1e-8,
            out_dir=tmp_path / out,
            budget="smoke",
            checks=checks,
            forward_only=True,
            causal=True,
        )

    rep = referee(sdpa, "a")
    assert rep.ok, rep.table()
    assert rep.outcome("forward-chain").status == "skip"
    rep = referee(ignores_mask, "b")
    for check in ("forward-accuracy", "equivariance"):
        o = rep.outcome(check)
        assert o.failed and max(load_instance(o.counterexample).Lq, load_instance(o.counterexample).Lk) <= 2


def test_attention_without_is_causal_is_a_usage_error_on_causal_instances(tmp_path):
    from harness import families, from_attention
    from harness.errors import ContractError

    def plain(q, k, v, *, scale):
        return torch.softmax(scale * q @ k.transpose(-1, -2), -1) @ v

    inst = families.bounded(L=4, d=2, r=1, seed=0, causal=True)
    with pytest.raises(ContractError, match="is_causal"):
        from_attention(plain).solve(inst)
    assert from_attention(plain).solve(inst.replace(causal=False)).grads
    with pytest.raises(ContractError, match="is_causal"):
        run_suite(from_attention(plain), claim_eps=1e-8, out_dir=tmp_path, budget="smoke", causal=True)

    # a function that masks by itself may declare it
    def own(q, k, v, *, scale, **kw):
        return sdpa(q, k, v, scale=scale, **kw)

    assert from_attention(own).supports_causal


def test_cli_check_causal_attention_sdpa(tmp_path, capsys):
    from harness.cli import main

    rc = main(
        [
            "check",
            "--causal",
            "--attention",
            "torch.nn.functional:scaled_dot_product_attention",
            "--claim-eps",
            "1e-8",
            "--budget",
            "smoke",
            "--checks",
            "finite,accuracy,invariance",
            "--out-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "(causal)" in out
