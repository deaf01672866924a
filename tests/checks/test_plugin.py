"""The pytest plugin (entry point `lora_harness`): cheap to load; fixtures and strategies work in a
user's own test suite (run here with pytester)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]

USER_TESTS = """
from hypothesis import given, settings
from harness.pytest_plugin import instances, assert_solver_meets
from harness.solvers import get_solver


@settings(max_examples=5, derandomize=True, database=None)
@given(inst=instances(max_L=4, max_d=3))
def test_streaming_matches_reference(inst, lora_reference):
    res = get_solver("streaming").solve(inst)
    assert res.max_abs_error(lora_reference(inst)) <= 1e-10


def test_closed_form_meets_claim(lora_assert_solver_meets):
    rep = lora_assert_solver_meets("closed-form", eps=1e-8, budget="smoke", checks=("accuracy",))
    assert rep.ok


def test_planted_bug_is_reported(tmp_path):
    import pytest
    with pytest.raises(AssertionError, match="counterexample"):
        assert_solver_meets("tests.planted:off_by_1e3", eps=1e-8, out_dir=tmp_path, budget="smoke",
                            checks=("accuracy",))


def test_cli_solver(lora_solver, lora_assert_solver_meets):
    lora_assert_solver_meets(checks=("accuracy",), budget="smoke")
"""


def test_plugin_import_is_cheap_and_torch_free():
    code = (
        "import sys, harness.pytest_plugin as p; "
        "assert 'torch' not in sys.modules, 'plugin imported torch'; "
        "assert callable(p.instances)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_fixtures_and_strategies_in_a_user_suite(pytester, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_inprocess(
        "-q", "-p", "no:randomly", "--lora-solver", "streaming", "--lora-claim-eps", "1e-8"
    )
    result.assert_outcomes(passed=4)


def test_lora_solver_skips_without_option(pytester, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    pytester.makepyfile(test_user="def test_x(lora_solver):\n    pass\n")
    pytester.runpytest_inprocess("-q").assert_outcomes(skipped=1)


def test_plugin_import_changes_no_hypothesis_settings():
    """Loading the plugin registers and loads no profile (a user's own defaults stay)."""
    code = (
        "import hypothesis; from hypothesis import settings; n = settings().max_examples; "
        "import harness.pytest_plugin; assert settings().max_examples == n, 'profile loaded'; "
        "import pytest\n"
        "try:\n    settings.get_profile('nightly')\nexcept hypothesis.errors.InvalidArgument:\n    pass\n"
        "else:\n    raise SystemExit('profile registered at import')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_profile_is_loaded_only_when_asked(pytester, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.delenv("LORA_HARNESS_HYPOTHESIS_PROFILE", raising=False)
    pytester.makepyfile(
        test_user="""
import sys
from hypothesis import settings


def test_examples():
    print("max_examples", settings().max_examples)
"""
    )
    asked = pytester.runpytest_inprocess(
        "-q", "-s", "-p", "no:cacheprovider", "--lora-hypothesis-profile", "nightly"
    )
    asked.assert_outcomes(passed=1)
    assert "max_examples 300" in asked.stdout.str()
