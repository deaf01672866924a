"""Deterministic figures (ci/baseline.json) against this run: operation counts and their exponents,
losses and exact-solver errors on fixed instances, certificates, chain answers."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ci import baseline  # noqa: E402


def test_baseline_figures_hold():
    base = baseline.load()
    rows = baseline.compare(base, baseline.compute(only=baseline.solvers_in(base)))
    bad = baseline.failures(rows)
    assert not bad, (
        "deterministic figures moved (run `python -m ci update-baseline` if deliberate):\n"
        + baseline.format_rows(bad)
    )


def test_baseline_has_the_exact_solvers():
    figs = baseline.load()
    for name in ("closed-form", "streaming"):
        assert abs(figs[f"ops-exponent/{name}"]["value"] - 2.0) < 0.05
        assert f"error/{name}/gaussian-cross" in figs


def test_compare_reports_figure_baseline_current_tolerance():
    base = {
        "ops/x/L=8": {"value": 100, "kind": "eq", "tol": 0},
        "loss/c": {"value": 1.0, "kind": "rel", "tol": 1e-9},
        "error/x/c": {"value": 1e-16, "kind": "le", "tol": 1e-10},
        "ops-exponent/x": {"value": 2.0, "kind": "abs", "tol": 0.01},
    }
    cur = {
        "ops/x/L=8": {"value": 101, "kind": "eq", "tol": 0},
        "loss/c": {"value": 1.0 + 1e-12, "kind": "rel", "tol": 1e-9},
        "error/x/c": {"value": 1e-3, "kind": "le", "tol": 1e-10},
        "ops-exponent/y": {"value": 1.0, "kind": "abs", "tol": 0.01},
    }
    rows = baseline.compare(base, cur)
    got = {r[0]: r for r in rows}
    assert got["ops/x/L=8"][1:] == ("100", "101", "exact", "out of tolerance")
    assert got["error/x/c"][4] == "out of tolerance"
    assert "loss/c" not in got
    assert got["ops-exponent/x"][4] == "missing"  # solver x still present, figure gone
    assert got["ops-exponent/y"][4] == "not in baseline"
    assert len(baseline.failures(rows)) == 3
    table = baseline.format_rows(rows)
    assert table.splitlines()[0].split() == ["figure", "baseline", "current", "tolerance", "problem"]
