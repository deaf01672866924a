"""benchmarks/approx_floor.py (--tiny) and the dense twin's swappable kernel it uses."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from harness import families
from harness.solvers.poly.naive import dense_poly_gradients, taylor_poly

ROOT = Path(__file__).resolve().parents[2]


def _mod():
    spec = importlib.util.spec_from_file_location("approx_floor", ROOT / "benchmarks/approx_floor.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dense_twin_kernel_swap_is_the_same_program():
    inst = families.bounded(L=24, d=3, r=2, gamma=1.0, seed=3)
    t = inst.as_torch(dtype=torch.float64)
    a = (t, inst.alpha, inst.beta, inst.r, inst.adapted, 4)
    G0, l0 = dense_poly_gradients(*a)
    G1, l1 = dense_poly_gradients(*a, kernel=lambda x: taylor_poly(x, 4))
    assert l0 == l1 and all(torch.equal(G0[k], G1[k]) for k in G0)
    G2, _ = dense_poly_gradients(*a, kernel=torch.exp)  # the exact kernel: another gradient
    assert any(not torch.equal(G0[k], G2[k]) for k in G0)


def test_fitted_polynomial_is_no_worse_than_the_interpolant():
    mod = _mod()
    x = np.random.default_rng(5).normal(0.0, 0.6, 3000)
    R = float(np.abs(x).max())
    for g in (1, 2, 4, 7):
        a, rel = mod.fitted_coefs(x, R, g)
        a0 = mod.chebyshev_coefs(R, g)
        V = np.polynomial.chebyshev.chebvander(x / R, g)
        rel0 = float(np.abs(1 - V @ a0 / np.exp(x)).max())
        # the LP optimum on the quantiles, re-measured on every point: at most the interpolant's
        assert rel <= rel0 * (1 + 1e-9)
        assert float(np.abs(1 - V @ a / np.exp(x)).max()) <= 1.05 * rel0


def test_approx_floor_tiny(tmp_path):
    mod = _mod()
    out = tmp_path / "f"
    assert mod.main(["--tiny", "--out", str(out)]) == 0
    data = json.loads((tmp_path / "f.json").read_text())
    (case,) = data["cases"]
    eps = data["eps"]
    for r in case["rows"]:
        if r["certified"] is not None:
            assert r["taylor"] <= r["certified"]  # the certificate is a promise at every degree
        assert r["fitted_max_rel"] > 0
    for name in ("taylor", "chebyshev", "fitted"):
        met = [r["g"] for r in case["rows"] if r[name] <= eps]
        assert case["first"][name] == (met[0] if met else None)
    assert "Approximation floor" in (tmp_path / "f.md").read_text()
