"""Checks as named units: the registry, selection by name (API and CLI), `--list-checks`."""

from __future__ import annotations

import pytest

from harness.checks import CHECKS, DEFAULT_CHECKS, SMOKE, describe_checks, resolve_checks, run_suite
from harness.cli import main
from harness.errors import HarnessError


def test_every_check_is_a_documented_function():
    assert list(CHECKS) == [
        "finite",
        "accuracy",
        "invariance",
        "certificate",
        "chain",
        "scaling",
        "ops",
        "forward-finite",
        "forward-accuracy",
        "equivariance",
        "forward-chain",
        "forward-scaling",
    ]
    for name, check in CHECKS.items():
        assert check.name == name and callable(check.fn)
        assert check.summary and check.summary in describe_checks()
    assert "certificate" not in DEFAULT_CHECKS and "accuracy" in DEFAULT_CHECKS
    assert not any(CHECKS[n].forward for n in DEFAULT_CHECKS)
    assert resolve_checks(None, forward_only=True) == tuple(n for n in CHECKS if CHECKS[n].forward)
    with pytest.raises(HarnessError, match="needs gradients"):
        resolve_checks("accuracy", forward_only=True)


def test_resolve_checks_orders_and_rejects():
    assert resolve_checks("ops, accuracy") == ("accuracy", "ops")
    assert resolve_checks(None) == DEFAULT_CHECKS
    with pytest.raises(HarnessError, match="unknown check 'nope'"):
        resolve_checks(["accuracy", "nope"])
    with pytest.raises(HarnessError, match="no check named"):
        resolve_checks("")


def test_selected_checks_are_the_only_rows(tmp_path):
    rep = run_suite("closed-form", out_dir=tmp_path, budget=SMOKE, checks=("ops", "finite"))
    assert [o.check for o in rep.outcomes] == ["finite", "ops"]


@pytest.mark.parametrize(
    "claims, checks, row",
    [
        ({"claim_eps": 1e-8}, ("ops", "finite"), "claim-eps"),
        ({"claim_exponent": 2.1}, ("accuracy",), "claim-exponent"),
    ],
)
def test_a_claim_no_selected_check_tests_is_not_verified(tmp_path, claims, checks, row):
    """A claim left out of the selection is never "all claims hold" (exit 4, its own row)."""
    rep = run_suite("closed-form", out_dir=tmp_path, budget=SMOKE, checks=checks, **claims)
    assert [o.check for o in rep.outcomes] == sorted(checks, key=list(CHECKS).index) + [row]
    assert rep.outcome(row).status == "not verified" and rep.unverified == [row]
    assert rep.exit_code == 4 and "NOT VERIFIED" in rep.verdict
    both = checks + ("accuracy", "ops")
    full = run_suite("closed-form", out_dir=tmp_path, budget=SMOKE, checks=both, **claims)
    assert row not in [o.check for o in full.outcomes]  # tested: no extra row


def test_certificate_check_holds_poly_and_skips_exact_solvers(tmp_path):
    rep = run_suite("poly", out_dir=tmp_path, budget=SMOKE, checks=("certificate",))
    assert rep.outcome("certificate").status == "pass", rep.table()
    rep = run_suite("closed-form", out_dir=tmp_path, budget=SMOKE, checks=("certificate",))
    assert rep.outcome("certificate").status == "skip", rep.table()


def test_certificate_check_catches_a_broken_bound(tmp_path):
    """A solver whose certificate claims a bound it does not meet fails the certificate check."""
    from harness.solvers import get_solver
    from harness.solvers.base import Solver

    class Overclaims(Solver):
        name, exact = "overclaims", False

        def _solve(self, inst, dtype, device, **opts):
            res = get_solver("random-features").solve(inst, dtype=dtype, device=device, m=4)
            res.certificate = {"error_bound": 1e-30}
            return res

    rep = run_suite(Overclaims(), out_dir=tmp_path, budget=SMOKE, checks=("certificate",))
    cert = rep.outcome("certificate")
    assert cert.failed and "error_bound" in cert.detail and cert.counterexample, rep.table()


def test_cli_lists_and_selects_checks(tmp_path, capsys, monkeypatch):
    assert main(["check", "--list-checks"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in CHECKS)
    monkeypatch.setenv("LORA_HARNESS_CHECK_BUDGET", "smoke")
    assert (
        main(["check", "--solver", "closed-form", "--checks", "finite,ops", "--out-dir", str(tmp_path)]) == 0
    )
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:3]]
    assert rows == ["finite", "ops"]
    assert main(["check", "--solver", "closed-form", "--checks", "bogus"]) == 2
    assert "unknown check 'bogus'" in capsys.readouterr().err
