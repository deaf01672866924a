"""The study grid, resume determinism, report generation and the `run` CLI (tiny grids only)."""

from __future__ import annotations

import json
import os

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.study import (
    StudyConfig,
    cell_id,
    config_dict,
    load_cells,
    load_table,
    make_grid,
    run_and_store,
    run_study,
    write_table,
)
from harness.study.executors import InProcessExecutor
from harness.study.report import analyse, deterministic_view, load_report, summary_table, write_report


def _tiny_cfg() -> StudyConfig:
    cfg = StudyConfig.tiny()
    cfg.exact_L = {"closed-form": [5, 7], "streaming": [5, 6]}
    cfg.dim_d = [2]
    cfg.rank_r = [1]
    return cfg


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted tiny study with its report (shared by the tests below)."""
    cfg = _tiny_cfg()
    out = tmp_path_factory.mktemp("study_full")
    cells = make_grid(cfg)
    info = run_study(cells, out, progress=False, config=config_dict(cfg))
    rep = write_report(out)
    return cfg, cells, out, info, rep


def test_grid_is_deterministic_and_ids_unique():
    cfg = StudyConfig.default()
    a, b = make_grid(cfg), make_grid(cfg)
    assert a == b
    ids = [cell_id(c) for c in a]
    assert len(set(ids)) == len(ids)
    exact_only = make_grid(cfg, poly=False)
    assert exact_only and all(c["solver"] != "poly" for c in exact_only)
    assert {c["group"] for c in make_grid(cfg, groups=["phase"])} <= {"phase"}


def test_every_cell_stored_once(full_run):
    cfg, cells, out, info, rep = full_run
    assert info["ran"] == len(cells) and info["reused"] == 0
    files = list((out / "cells").glob("*.json"))
    assert len(files) == len(cells)
    assert [r["id"] for r in load_cells(out, cells)] == [cell_id(c) for c in cells]


def test_resume_after_kill_gives_same_report(full_run, tmp_path):
    """A run killed halfway (only a subset of cells stored) and then resumed reports the same
    deterministic content (op counts, degrees, ranks, errors) as the uninterrupted run."""
    cfg, cells, out, _, rep_full = full_run
    half = cells[::2]
    for c in half:  # the 'killed' run: these cells finished and were stored
        run_and_store(str(tmp_path), c)
    with pytest.raises(HarnessError, match="resume"):
        write_table(tmp_path, cells)
    ran = []

    class Spy(InProcessExecutor):
        def run(self, fn, cells):
            for c in cells:
                ran.append(cell_id(c))
                yield from super().run(fn, [c])

    info = run_study(cells, tmp_path, resume=True, progress=False, executor=Spy(), config=config_dict(cfg))
    assert info["reused"] == len(half) and info["ran"] == len(cells) - len(half)
    assert not set(ran) & {cell_id(c) for c in half}
    rep = write_report(tmp_path, plots=False)
    assert deterministic_view(rep) == deterministic_view(rep_full)
    # the timings of the reused cells are the stored ones
    t_old = {
        r["id"]: r["result"]["seconds"]["times"]
        for r in load_cells(tmp_path, half)
        if "seconds" in r["result"]
    }
    again = analyse(load_table(tmp_path))
    assert deterministic_view(again) == deterministic_view(rep)
    assert t_old


def test_report_files_and_content(full_run):
    cfg, cells, out, _, rep = full_run
    for name in ("report.json", "report.md", "table.json", "grid.json"):
        assert (out / name).is_file()
    md = (out / "report.md").read_text()
    for rel in rep["figures"].values():
        assert (out / rel).is_file() and (out / rel).with_suffix(".svg").is_file()
        assert f"({rel})" in md
    assert "time" in rep["figures"]
    stored = load_report(out)
    assert stored["summary"] and "closed-form" in summary_table(rep)
    cf = rep["scaling"]["series"]["closed-form"]
    assert cf["max_abs_error"] == 0.0  # the reference itself
    # CI gate on deterministic op-count exponents: quadratic exact solvers
    assert 1.8 <= cf["ops_fit"]["exponent"] <= 2.2
    assert 1.8 <= rep["scaling"]["series"]["streaming"]["ops_fit"]["exponent"] <= 2.2


def test_poly_op_exponent_and_phase(full_run):
    cfg, cells, out, _, rep = full_run
    poly = rep["scaling"]["series"]["poly"]
    assert 0.9 <= poly["ops_fit"]["exponent"] <= 1.2  # fixed degree: linear in L
    assert poly["max_abs_error"] < 1e-2
    ph = rep["phase"]["cells"]
    assert {p["c"] for p in ph} == set(cfg.phase_c)
    # above the threshold the needed rank is larger than below it, at every L
    for L in {p["L"] for p in ph}:
        lo = min((p for p in ph if p["L"] == L), key=lambda p: p["c"])
        hi = max((p for p in ph if p["L"] == L), key=lambda p: p["c"])
        assert hi["rank"] > lo["rank"] and hi["R"] > lo["R"]
    assert rep["rank"] and rep["dim"]


def test_report_only_needs_the_table(full_run, tmp_path):
    _, _, out, _, rep = full_run
    (tmp_path / "table.json").write_text((out / "table.json").read_text())
    rep2 = write_report(tmp_path, plots=False)
    assert deterministic_view(rep2) == deterministic_view(rep)


def test_cli_run_tiny_and_resume(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["run", "--tiny", "--groups", "scaling", "--out", str(out), "--quiet", "--no-plots"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "closed-form" in text and "time exponent" in text
    assert main(args) == 2  # refuses to overwrite silently
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
    assert "0 cells run" in capsys.readouterr().out
    assert json.loads((out / "last_run.json").read_text())["ran"] == 0


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["run", "--groups", "nope"], "unknown study group"),
        (["run", "--device", "tpu9"], "device"),
        (["run", "--tiny", "--repeats", "0"], "repeats"),
        (["run", "--tiny", "--threads", "0"], "threads"),
    ],
)
def test_cli_errors_are_one_line(argv, msg, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_cli_report_only_without_table(tmp_path, capsys):
    assert main(["run", "--report-only", "--out", str(tmp_path)]) == 2
    assert "no study table" in capsys.readouterr().err


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["run", "--tiny", "--out", str(f), "--quiet"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_missing_parents_of_the_study_folder_are_made(tmp_path, monkeypatch, capsys):
    """The README's `run --out runs/default` on a fresh clone, where runs/ does not exist yet; a file
    on the path is still refused in one line."""
    monkeypatch.chdir(tmp_path)
    args = ["run", "--tiny", "--groups", "dim", "--quiet", "--no-plots", "--out"]
    assert main(args + [os.path.join("runs", "deeper", "default")]) == 0
    assert (tmp_path / "runs" / "deeper" / "default" / "table.json").is_file()
    (tmp_path / "f").write_text("keep")
    capsys.readouterr()
    assert main(args + [os.path.join("f", "sub", "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a folder" in err and len(err.splitlines()) == 1
    assert (tmp_path / "f").read_text() == "keep"


def test_code_change_invalidates_stored_cells(monkeypatch):
    import harness.study.grid as st

    cfg = _tiny_cfg()
    a = make_grid(cfg, groups=["scaling"])
    monkeypatch.setattr(st, "code_fingerprint", lambda: "other-code")
    b = make_grid(cfg, groups=["scaling"])
    assert len(a) == len(b) and not {cell_id(c) for c in a} & {cell_id(c) for c in b}


def test_crossover_plot_of_far_extrapolations_warns_nothing(tmp_path):
    """Tiny grids extrapolate L* to 1e24..1e308; the log2 axis over them overflowed matplotlib's exp2
    (a RuntimeWarning on `run --tiny`). They are drawn at the axis cap now."""
    import warnings

    from harness.study import plots

    far = {"x_star": 4.9e24, "ci": [4674, 2.1e28], "extrapolated": True}
    rep = {
        "dim": [
            {
                "d": 4,
                "L": [32, 64],
                "crossover": far,
                "ops_crossover": {**far, "x_star": 1e300, "ci": [1e3, 1e308]},
            },
            {
                "d": 8,
                "L": [32, 64],
                "crossover": {"x_star": 1e3, "ci": None, "extrapolated": False},
                "ops_crossover": {"x_star": 2e3, "ci": [500, 3e3], "extrapolated": False},
            },
        ],
        "config": {"dim_eps": 1e-6},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plots.plot_crossover(rep, tmp_path) == "figures/crossover_vs_d.png"
    assert (tmp_path / "figures" / "crossover_vs_d.png").read_bytes()[:4] == b"\x89PNG"
