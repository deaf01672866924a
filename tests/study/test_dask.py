"""Slow tier: the study on a Dask cluster started by the test on 127.0.0.1 (`dask scheduler` and two
`dask worker` subprocesses), a Dask run killed with SIGKILL mid-grid and resumed, and workers lost
mid-cell. Each gives the deterministic report of an uninterrupted in-process run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.study import StudyConfig, cell_id, config_dict, make_grid, parse_solver_spec, run_study
from harness.study.report import deterministic_view, write_report
from harness.study.store import load_store

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SLOW = "tests.thirdparty:slow_exact_solver"


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cli(*args):
    return [sys.executable, "-m", "harness.cli", "run", "--tiny", "--quiet", "--no-plots", *args]


def _grid_argv(out, *executor):
    """The grid every test here runs: the tiny built-in study plus a slow third-party series."""
    return _cli("--out", str(out), "--groups", "scaling,phase,rank,dim", "--solver", SLOW, *executor)


def _view(out):
    return deterministic_view(write_report(out, plots=False))


@pytest.fixture(scope="module")
def reference_view(tmp_path_factory):
    """The uninterrupted in-process run of the grid the tests below use (tiny + a slow user series)."""
    out = tmp_path_factory.mktemp("inproc")
    subprocess.run(
        _grid_argv(out),
        check=True,
        cwd=ROOT,
        env=_env(),
    )
    return _view(out)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`dask scheduler` + two `dask worker --nthreads 1` on loopback; yields the scheduler address."""
    d = tmp_path_factory.mktemp("cluster")
    sched_file = d / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                str(BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        t0 = time.monotonic()
        while not sched_file.exists() and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        assert sched_file.exists(), "dask scheduler did not start"
        for i in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "dask"),
                        "worker",
                        "--scheduler-file",
                        str(sched_file),
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                        "--name",
                        f"w{i}",
                    ],
                    cwd=ROOT,
                    env=_env(),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        address = json.loads(sched_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=60) as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_external_scheduler_gives_the_in_process_report(cluster, reference_view, tmp_path):
    out = tmp_path / "ext"
    r = subprocess.run(
        _grid_argv(out, "--executor", "dask", "--scheduler", cluster),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "on 2 dask workers" in r.stdout
    assert _view(out) == reference_view


def _kill_mid_grid(out, argv):
    """Start a run in its own process group, SIGKILL the group once a third of the cells are stored."""
    p = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        total = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            if total is None and (out / "grid.json").exists():
                total = len(json.loads((out / "grid.json").read_text())["cells"])
            n = len(list((out / "cells").glob("*.json"))) if (out / "cells").is_dir() else 0
            if total and n >= total // 3:
                break
            assert p.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        os.killpg(p.pid, signal.SIGKILL)
    finally:
        p.wait()
    stored = len(list((out / "cells").glob("*.json")))
    return stored, total


def test_killed_dask_run_resumes_to_the_same_report(reference_view, tmp_path):
    out = tmp_path / "killed"
    argv = _grid_argv(out, "--executor", "dask", "--workers", "2")
    stored, total = _kill_mid_grid(out, argv)
    assert 0 < stored < total
    assert not (out / "table.json").exists()
    r = subprocess.run(argv + ["--resume"], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"{total - stored} cells run" in r.stdout and f"{stored} reused" in r.stdout
    assert _view(out) == reference_view


def _user_cells(spec):
    cfg = StudyConfig.tiny()
    cfg.user_L = [5, 6]
    return cfg, make_grid(cfg, user=[parse_solver_spec(spec)], builtin=False)


def test_worker_lost_mid_cell_is_retried(tmp_path, monkeypatch):
    from harness.study import DaskExecutor

    monkeypatch.setenv("LORA_TEST_DIE_ONCE", str(tmp_path / "died"))
    cfg, cells = _user_cells("tests.thirdparty:dies_once")
    with DaskExecutor(workers=2) as ex:
        info = run_study(cells, tmp_path / "o", executor=ex, config=config_dict(cfg))
    assert (tmp_path / "died").exists()  # a worker did die mid-cell
    assert info["ran"] == len(cells)
    assert set(load_store(tmp_path / "o").records) == {cell_id(c) for c in cells}


def test_cell_that_keeps_killing_workers_is_left_missing(tmp_path):
    from harness.errors import HarnessError
    from harness.study import DaskExecutor

    cfg, cells = _user_cells("tests.thirdparty:always_dies")
    bad = {cell_id(c) for c in cells if c["solver"] == "tests.thirdparty:always_dies"}
    with DaskExecutor(workers=2) as ex:
        with pytest.raises(HarnessError, match="lost its worker"):
            run_study(cells, tmp_path / "o", executor=ex, config=config_dict(cfg))
    stored = load_store(tmp_path / "o")
    assert set(stored.records) == {cell_id(c) for c in cells} - bad and not stored.invalid
    assert not list((tmp_path / "o" / "cells").glob(".*.tmp"))
