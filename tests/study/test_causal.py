"""The study's causal series (issue 16)."""

from __future__ import annotations


def test_study_has_causal_series_and_races_them_against_causal_exact(tmp_path):
    from harness import study
    from harness.study import report

    cfg = study.StudyConfig.tiny()
    cells = study.make_grid(cfg, groups=("scaling",))
    assert {"streaming (causal)", "poly (causal)"} <= {c["series"] for c in cells}
    assert all(c.get("causal") for c in cells if "(causal)" in c["series"])
    study.run_study(cells, tmp_path, progress=False, config=study.config_dict(cfg))
    rep = report.analyse(study.load_table(tmp_path))
    sc = rep["scaling"]
    assert set(sc["crossover_vs_best_exact"]["poly (causal)"]["against"].values()) <= {"streaming (causal)"}
    assert sc["series"]["poly (causal)"]["max_abs_error"] < 1e-2
    assert sc["series"]["streaming (causal)"]["max_abs_error"] < 1e-12
    ratios = {r["L"]: r["ops_ratio"] for r in sc["causal_ratio"]["streaming (causal)"]}
    assert ratios and all(0.5 < v <= 1.0 for v in ratios.values())
    assert abs(sc["series"]["poly (causal)"]["ops_fit"]["exponent"] - 1.0) < 0.1
