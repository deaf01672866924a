"""Fits on synthetic data with known exponents and noise, and the edge cases (harness/measure/fit.py)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.measure.fit import crossover, fit_power, fit_segmented, predict

L = 2.0 ** np.arange(8, 16)


@pytest.mark.parametrize("b", [0.5, 1.0, 2.0, 3.0])
def test_exact_power_law_recovered(b):
    f = fit_power(L, 3e-7 * L**b)
    assert f["exponent"] == pytest.approx(b, abs=1e-10)
    assert f["ci"][0] == pytest.approx(b, abs=1e-8) and f["ci"][1] == pytest.approx(b, abs=1e-8)
    assert f["r2"] == pytest.approx(1.0)
    assert predict(f, 1024.0) == pytest.approx(3e-7 * 1024.0**b)


@pytest.mark.parametrize("seed", range(4))
def test_noisy_power_law_ci_covers_truth(seed):
    rng = np.random.default_rng(seed)
    b = 2.0
    reps = [1e-8 * x**b * np.exp(rng.normal(0, 0.1, 5)) for x in L]
    y = [np.median(r) for r in reps]
    f = fit_power(L, y, samples=reps, seed=1)
    assert f["ci"][0] <= f["exponent"] <= f["ci"][1]
    assert f["ci"][0] < b < f["ci"][1]
    assert f["ci"][1] - f["ci"][0] < 0.4


def test_noise_widens_ci_and_seed_reproduces():
    rng = np.random.default_rng(7)
    y = L * np.exp(rng.normal(0, 0.3, L.size))
    f1, f2 = fit_power(L, y, seed=3), fit_power(L, y, seed=3)
    assert f1 == f2
    quiet = fit_power(L, L * np.exp(rng.normal(0, 0.01, L.size)), seed=3)
    assert f1["ci"][1] - f1["ci"][0] > quiet["ci"][1] - quiet["ci"][0]


def test_two_points_and_equal_times():
    f = fit_power([100, 400], [1.0, 16.0])
    assert f["exponent"] == pytest.approx(2.0) and f["exact_fit"] and f["ci"] == pytest.approx([2.0, 2.0])
    g = fit_power(L, np.full(L.size, 0.25))
    assert g["exponent"] == pytest.approx(0.0, abs=1e-12) and g["ci"] == pytest.approx([0, 0], abs=1e-12)


@pytest.mark.parametrize(
    "x,y", [([1, 2], [1, 0]), ([1], [1]), ([2, 2], [1, 3]), ([1, 2, 3], [1, 2]), ([1, 2], [1, float("nan")])]
)
def test_bad_input_is_one_harness_error(x, y):
    with pytest.raises(HarnessError):
        fit_power(x, y)


def test_segmented_finds_overhead_knee():
    x = 2.0 ** np.arange(6, 15)
    y = 0.3 + 1e-7 * x**2  # flat overhead, then quadratic
    s = fit_segmented(x, y)
    assert s["slope_low"] < 0.5 and s["slope_high"] > 1.5
    assert 2**9 <= s["break_x"] <= 2**13
    assert s["sse"] <= s["sse_line"]
    assert fit_segmented([1, 2, 4], [1, 2, 4])["break_x"] is None


def test_crossover_of_known_curves():
    x = 2.0 ** np.arange(8, 14)
    quad, lin = 1e-8 * x**2, 1e-5 * x  # cross at x = 1000
    c = crossover(x, quad, lin)
    assert c["x_star"] == pytest.approx(1000.0, rel=1e-9)
    assert c["faster_above"] == "b" and not c["extrapolated"]
    assert c["observed"] == pytest.approx(1000.0, rel=1e-9)
    assert c["ci"][0] <= 1000.0 <= c["ci"][1]
    # extrapolated crossover: measured range below it
    e = crossover(x, 1e-9 * x**2, 1e-4 * x)
    assert e["extrapolated"] and e["observed"] is None and e["x_star"] == pytest.approx(1e5, rel=1e-9)


def test_crossover_noisy_ci_and_none():
    rng = np.random.default_rng(0)
    x = 2.0 ** np.arange(8, 14)
    a = 1e-8 * x**2 * np.exp(rng.normal(0, 0.05, x.size))
    b = 1e-5 * x * np.exp(rng.normal(0, 0.05, x.size))
    c = crossover(x, a, b, seed=2)
    assert c["ci"][0] < 1000 < c["ci"][1] and c["ci"][1] / c["ci"][0] < 3
    par = crossover(x, 2e-5 * x, 1e-5 * x)  # parallel: never cross
    assert par["x_star"] is None and par["ci"] is None and par["observed"] is None
    same = crossover(x, 1e-5 * x, 1e-5 * x)
    assert same["x_star"] is None


@pytest.mark.parametrize("b", [1.0, 2.0])
def test_opcount_shaped_data(b):
    """Op counts: exact polynomial in L with lower-order terms; the fit on the large sizes is close."""
    x = 2.0 ** np.arange(10, 16)
    y = 5 * x**b + 1000 * x + 1e4
    assert abs(fit_power(x, y)["exponent"] - b) < 0.05
