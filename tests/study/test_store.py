"""The study's cell store checks (checksums, damaged files, stale temporary files), the folder lock,
third-party solvers in the study, and the Dask executor (tiny grids)."""

from __future__ import annotations

import json
import os

import pytest

from harness.cli import main
from harness.cli.run import parse_L
from harness.errors import HarnessError
from harness.study import (
    FolderLock,
    InProcessExecutor,
    StudyConfig,
    cell_id,
    config_dict,
    load_table,
    make_grid,
    parse_solver_spec,
    run_study,
)
from harness.study.records import check_record, seal
from harness.study.report import analyse, deterministic_view, write_report
from harness.study.store import load_store

try:
    import distributed  # noqa: F401

    HAS_DASK = True
except ImportError:
    HAS_DASK = False


def _small_cfg() -> StudyConfig:
    cfg = StudyConfig.tiny()
    cfg.exact_L = {"closed-form": [5, 6], "streaming": [5, 6]}
    cfg.poly_L = [5, 7]
    return cfg


def _grid(cfg=None):
    return make_grid(cfg or _small_cfg(), groups=["scaling"], extra=())


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    cfg = _small_cfg()
    out = tmp_path_factory.mktemp("store")
    cells = _grid(cfg)
    run_study(cells, out, config=config_dict(cfg))
    return cfg, cells, out, deterministic_view(write_report(out, plots=False))


def _copy(src, dst):
    (dst / "cells").mkdir(parents=True)
    for p in (src / "cells").glob("*.json"):
        (dst / "cells" / p.name).write_text(p.read_text())


def _resume(cfg, cells, out):
    notes = []
    info = run_study(cells, out, resume=True, config=config_dict(cfg), notify=notes.append)
    return info, notes


def test_record_checksum_detects_an_edit():
    rec = seal(
        {
            "format": "lora-harness-study/2",
            "id": cell_id({"a": 1}),
            "cell": {"a": 1},
            "result": {"ops": 10},
            "wall_s": 0.1,
        }
    )
    assert check_record(rec) is None
    rec["result"]["ops"] *= 1000
    assert "checksum" in check_record(rec)


def test_edited_cell_is_recomputed_and_said(done, tmp_path):
    """issue 12.6: a hand-edited but valid cell (ops x 1000) is not reused by --resume."""
    cfg, cells, out, view = done
    _copy(out, tmp_path)
    poly = next(c for c in cells if c["series"] == "poly")
    p = tmp_path / "cells" / f"{cell_id(poly)}.json"
    rec = json.loads(p.read_text())
    rec["result"]["ops"] *= 1000
    p.write_text(json.dumps(rec))
    info, notes = _resume(cfg, cells, tmp_path)
    assert info["ran"] == 1 and info["recomputed"] == [cell_id(poly)]
    assert any(cell_id(poly) in n and "checksum" in n and "recomputing" in n for n in notes)
    assert deterministic_view(analyse(load_table(tmp_path))) == view


@pytest.mark.parametrize(
    "content,why",
    [
        ("[1, 2, 3]", "JSON list"),
        ('{"format": "lora-harness-study/2", "cell": {}, "result": {}, "sha256": "x"}', "no 'id'"),
        ("{not json", "not readable JSON"),
        ('"just a string"', "JSON str"),
    ],
)
def test_damaged_cell_files_are_recomputed(done, tmp_path, content, why):
    cfg, cells, out, view = done
    _copy(out, tmp_path)
    victim = cell_id(cells[0])
    (tmp_path / "cells" / f"{victim}.json").write_text(content)
    info, notes = _resume(cfg, cells, tmp_path)
    assert info["recomputed"] == [victim] and info["ran"] == 1
    assert any(why in n for n in notes)
    assert deterministic_view(analyse(load_table(tmp_path))) == view


def test_cell_stored_under_another_name_is_not_used(done, tmp_path):
    cfg, cells, out, view = done
    _copy(out, tmp_path)
    a, b = cell_id(cells[0]), cell_id(cells[1])
    (tmp_path / "cells" / f"{a}.json").write_text((tmp_path / "cells" / f"{b}.json").read_text())
    info, notes = _resume(cfg, cells, tmp_path)
    assert info["recomputed"] == [a]
    assert deterministic_view(analyse(load_table(tmp_path))) == view


def test_stale_tmp_files_are_cleaned(done, tmp_path):
    cfg, cells, out, _ = done
    _copy(out, tmp_path)
    stale = [tmp_path / "cells" / f".{cell_id(cells[0])}.json.abc123.tmp", tmp_path / ".table.json.xyz.tmp"]
    for p in stale:
        p.write_text("half a record")
    info, notes = _resume(cfg, cells, tmp_path)
    assert info["ran"] == 0
    assert not any(p.exists() for p in stale)
    assert sum("stale temporary" in n for n in notes) == 2


@pytest.mark.parametrize("content", ["[]", '{"format": "lora-harness-study/2", "records": {}}', "nope"])
def test_bad_table_is_one_line(tmp_path, capsys, content):
    (tmp_path / "table.json").write_text(content)
    assert main(["run", "--report-only", "--out", str(tmp_path), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert "table" in err and len(err.splitlines()) == 1


def test_table_with_edited_record_is_refused(done, tmp_path, capsys):
    _, _, out, _ = done
    data = json.loads((out / "table.json").read_text())
    data["records"][0]["result"]["ops"] = 1
    (tmp_path / "table.json").write_text(json.dumps(data))
    assert main(["run", "--report-only", "--out", str(tmp_path), "--no-plots"]) == 2
    assert "checksum" in capsys.readouterr().err


def test_second_run_on_a_locked_folder_is_refused(tmp_path, capsys):
    """issue 12.7: one run per output folder; the refusal changes nothing."""
    out = tmp_path / "r"
    (out / "cells").mkdir(parents=True)
    keep = out / "cells" / "0000.json"
    keep.write_text("{}")
    with FolderLock(out):
        for extra in ([], ["--force"], ["--resume"], ["--report-only"]):
            assert main(["run", "--tiny", "--out", str(out), "--quiet", "--no-plots", *extra]) == 2
            err = capsys.readouterr().err.strip()
            assert "another study run" in err and str(os.getpid()) in err and len(err.splitlines()) == 1
            assert keep.read_text() == "{}"
    # released: the lock never outlives its holder
    with FolderLock(out):
        pass


def test_resume_and_force_together_are_refused(tmp_path, capsys):
    assert main(["run", "--tiny", "--out", str(tmp_path), "--resume", "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--resume" in err and "--force" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "text,want",
    [("2^10..2^16", [10, 16]), ("1024..65536", [10, 16]), ("2^12", [12, 12]), ("256..2^9", [8, 9])],
)
def test_parse_L(text, want):
    assert parse_L(text) == want


@pytest.mark.parametrize("text", ["1000..2000", "2^16..2^10", "2^30", "a..b", "..", "2^1"])
def test_parse_L_refuses(text):
    with pytest.raises(HarnessError, match="--L"):
        parse_L(text)


def test_solver_alone_runs_its_scaling_series_and_one_baseline(tmp_path, capsys):
    out = tmp_path / "u"
    spec, att = "tests.thirdparty:exact_solver", "tests.thirdparty:sdpa_attention"
    assert (
        main(
            [
                "run",
                "--solver",
                spec,
                "--attention",
                att,
                "--L",
                "2^5..2^7",
                "--out",
                str(out),
                "--quiet",
                "--repeats",
                "1",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert spec in text and att in text
    rep = json.loads((out / "report.json").read_text())
    series = rep["scaling"]["series"]
    assert set(series) == {spec, att, "closed-form"}
    assert not rep["phase"]["cells"] and not rep["rank"] and not rep["dim"]
    for name in (spec, att):
        s = series[name]
        assert [p["L"] for p in s["points"]] == [32, 64, 128]
        assert s["time_fit"] is not None and s["max_abs_error"] < 1e-10  # exact, against float64
        assert name in rep["scaling"]["crossover_vs_best_exact"]
    md = (out / "report.md").read_text()
    assert spec in md and att in md
    svg = (out / "figures" / "time_vs_L.svg").read_text()
    assert "exact_solver" in svg and "sdpa_attention" in svg


def test_solver_spec_errors_are_one_line(tmp_path, capsys):
    for argv in (
        ["--solver", "nosuchmodule:f"],
        ["--attention", "tests.thirdparty"],
        ["--L", "2^5..2^6"],
        ["--solver", "tests.thirdparty:exact_solver", "--solver", "tests.thirdparty:exact_solver"],
    ):
        assert main(["run", "--tiny", "--out", str(tmp_path / "x"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err


def _user_grid(spec, kind="solver"):
    cfg = _small_cfg()
    cfg.user_L = [5, 6]
    return cfg, make_grid(cfg, user=[parse_solver_spec(spec, kind)], builtin=False)


def test_failing_cell_is_named_and_the_others_are_stored(tmp_path):
    cfg, cells = _user_grid("tests.thirdparty:broken_shape")
    with pytest.raises(HarnessError) as e:
        run_study(cells, tmp_path, config=config_dict(cfg))
    msg = str(e.value)
    bad = [c for c in cells if c["solver"] == "tests.thirdparty:broken_shape"]
    assert f"{len(bad)} of {len(cells)} study cells failed" in msg and cell_id(bad[0]) in msg
    assert "L=32" in msg and "shape" in msg
    stored = load_store(tmp_path).records
    assert set(stored) == {cell_id(c) for c in cells if c not in bad}


@pytest.mark.skipif(not HAS_DASK, reason="dask distributed not installed")
def test_local_cluster_gives_the_in_process_report(done, tmp_path):
    """issue 13.5 (fast tier): a tiny grid on a 2-worker LocalCluster equals the in-process report,
    and a worker's exception names its cell."""
    from harness.study import DaskExecutor

    cfg, cells, out, view = done
    with DaskExecutor(workers=2) as ex:
        assert ex.workers == 2
        info = run_study(cells, tmp_path / "d", executor=ex, config=config_dict(cfg))
        assert info["executor"] == "dask" and info["ran"] == len(cells)
        assert deterministic_view(write_report(tmp_path / "d", plots=False)) == view
        ucfg, ucells = _user_grid("tests.thirdparty:broken_shape")
        with pytest.raises(
            HarnessError,
            match=r"cell [0-9a-f]{16} \(scaling tests.thirdparty:broken_shape L=(32|64) d=2\) failed on ",
        ):
            run_study(ucells, tmp_path / "e", executor=ex, config=config_dict(ucfg))


def test_in_process_executor_yields_errors_not_raises():
    def boom(c, refs):
        raise HarnessError("x")

    out = list(InProcessExecutor().run(boom, [{"device": "cpu"}]))
    assert out[0][1] is None and isinstance(out[0][2], HarnessError)


def test_config_file_sets_the_grid(tmp_path, capsys):
    from harness.study import apply_config_file

    f = tmp_path / "c.json"
    f.write_text(json.dumps({"user_L": [6, 7], "repeats": 2, "gamma": 1}))
    cfg = apply_config_file(StudyConfig.tiny(), f)
    assert cfg.user_L == [6, 7] and cfg.repeats == 2 and cfg.gamma == 1.0
    for bad, msg in (
        ({"nope": 1}, "unknown setting"),
        ({"repeats": "x"}, "'repeats' must be"),
        ({"user_L": [1]}, "'user_L' must be"),
        ([1], "expected an object"),
    ):
        f.write_text(json.dumps(bad))
        assert main(["run", "--tiny", "--config", str(f), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1


def test_solver_module_in_the_current_folder(tmp_path):
    """The console script finds `--solver mymod:fn` in the folder it runs in, as `python -m` would."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "lora-harness"
    if not exe.exists():
        pytest.skip("console script not installed")
    shutil.copy(Path(__file__).resolve().parents[1] / "thirdparty.py", tmp_path / "mysolvers.py")
    r = subprocess.run(
        [
            str(exe),
            "run",
            "--solver",
            "mysolvers:exact_solver",
            "--L",
            "2^5..2^6",
            "--out",
            "o",
            "--quiet",
            "--no-plots",
            "--repeats",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "mysolvers:exact_solver" in r.stdout


def test_a_run_that_writes_nothing_leaves_no_folder(tmp_path):
    """A failed start (e.g. a dask cluster that does not come up) inside the lock leaves no folder the
    run made itself; a folder that existed, or one with results, keeps its files."""
    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with FolderLock(out):
            raise RuntimeError("the cluster did not start")
    assert not out.exists()
    with FolderLock(out):
        (out / "table.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == [".lock", "table.json"]
    old = tmp_path / "old"
    old.mkdir()
    with FolderLock(old):
        pass
    assert old.is_dir()
