"""The CI entry point: tiers, commands, the workflow template."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ci.__main__ as entry  # noqa: E402


def test_unknown_command_is_exit_2(capsys):
    assert entry.main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


def test_tiers_select_markers():
    assert "not slow" in entry.TIERS["fast"][1]
    assert entry.TIERS["slow"][1] == "slow or hypothesis"  # property tests meet the nightly profile
    assert "benchmark_only" in entry.TIERS["bench"][1]


def test_golden_and_baseline_commands_pass(capsys):
    assert entry.main(["check-golden"]) == 0
    assert "golden: 0 mismatch" in capsys.readouterr().out


def test_workflow_template_matches_installed_copy():
    tmpl = (ROOT / "ci" / "github-workflow.yml").read_text()
    inst = (ROOT / ".github" / "workflows" / "lora-harness.yml").read_text()
    assert tmpl == inst
    assert "python -m ci fast" in tmpl and "python -m ci slow" in tmpl


def test_ci_runner_runs_the_fast_tier():
    run = (ROOT / ".ci" / "run").read_text()
    assert "ci/setup.sh" in run and "-m ci fast" in run
    assert run.index("ruff check .") < run.index("ruff format --check .") < run.index("-m ci fast")
