"""Slow tier: the referee's exponent verdicts on torch SDPA with real timing, and the gallery runner."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from harness import from_attention
from harness.checks import DEFAULT, run_suite

pytestmark = pytest.mark.slow


def test_sdpa_exponent_2_holds_and_1_1_fails(tmp_path):
    sdpa = from_attention(torch.nn.functional.scaled_dot_product_attention, exact=True)
    ok = run_suite(
        sdpa, claim_eps=1e-8, claim_exponent=2, budget=DEFAULT, out_dir=tmp_path, checks=("scaling",)
    )
    assert ok.outcome("scaling").status == "pass", ok.table()
    bad = run_suite(
        sdpa, claim_eps=1e-8, claim_exponent=1.1, budget=DEFAULT, out_dir=tmp_path, checks=("scaling",)
    )
    row = bad.outcome("scaling")
    assert row.status == "FAIL" and row.counterexample, bad.table()
    assert row.figures["ci_low"] > 1.6 and min(row.figures["fitted_L"]) >= 256


def test_gallery_runs_what_is_installed_and_says_what_it_skips(tmp_path):
    from ci.peers import IMPORTS, run_gallery

    rec = run_gallery("smoke", out_dir=tmp_path, install=False)
    text = (tmp_path / "peers.md").read_text()
    assert "| sdpa |" in text and (tmp_path / "peers.json").exists()
    for name, mod in IMPORTS.items():
        if importlib.util.find_spec(mod) is None:
            assert name in rec["skipped"] and "not installed" in rec["skipped"][name]
        else:
            assert name not in rec["skipped"]
