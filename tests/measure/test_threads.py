"""Threads: a solver's numpy BLAS work runs on the threads torch was given (harness.measure.threads)."""

from __future__ import annotations

import pytest
import torch

from harness.families import bounded
from harness.measure.threads import limit_threads
from harness.solvers import get_solver

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> set[int]:
    return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}


@pytest.mark.parametrize("torch_threads, blas_outside", [(1, 2), (2, 1), (2, 2)])
def test_a_solve_runs_numpy_blas_on_torchs_threads(monkeypatch, torch_threads, blas_outside):
    if not _blas_threads():
        pytest.skip("numpy has no BLAS library that threadpoolctl can limit")
    solver = get_solver("poly")
    seen = []
    inner = type(solver)._solve

    def spy(self, *a, **k):
        seen.append((torch.get_num_threads(), _blas_threads()))
        return inner(self, *a, **k)

    monkeypatch.setattr(type(solver), "_solve", spy)
    with threadpoolctl.threadpool_limits(limits=blas_outside, user_api="blas"), limit_threads(torch_threads):
        solver.solve(bounded(32, 2, 1, seed=0), dtype="float64")
        after = _blas_threads()
    # capped at torch's threads; a lower BLAS limit of the caller's is kept
    assert seen == [(torch_threads, {min(torch_threads, blas_outside)})]
    assert after == {blas_outside}  # restored when the solve returns
