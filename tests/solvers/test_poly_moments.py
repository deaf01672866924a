"""`poly`'s two-pass moments kernel (harness/solvers/poly/moments.py) against its references: the
dense O(L^2) twin (naive.dense_poly_gradients) and the three-pass kernel (fused.poly_gradients),
whose per-row certificate quantities it must reproduce in the same layout."""

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from harness import families, get_solver
from harness.solvers.poly.fused import poly_gradients
from harness.solvers.poly.moments import _derive, derivative_map, moment_gradients
from harness.solvers.poly.naive import dense_poly_gradients
from harness.strategies import instances
from harness.theory.certificate import moments_op_count, poly_op_count


@given(instances(max_L=12, max_d=4, max_N=2, scale=0.5), st.integers(1, 5), st.sampled_from([None, 3]))
def test_moment_gradients_equal_dense_reference(inst, g, block):
    t = inst.as_torch()
    fast, loss_f, info = moment_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g, block=block)
    assume(info["min_rowsum"] > 0.1)  # odd g can make P_g(x) <= 0 for x < -1 on unbounded draws
    slow, loss_s = dense_poly_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g)
    scale = max([1.0] + [float(v.abs().max()) for v in slow.values()])
    for k in slow:
        assert torch.allclose(fast[k], slow[k], rtol=0, atol=1e-10 * scale), k
    assert loss_f == pytest.approx(loss_s, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("g", [2, 3, 4, 5])
@pytest.mark.parametrize("adapt", [("q", "k", "v"), ("k",), ("q", "v")])
def test_rows_and_first_order_value_error_equal_three_pass_kernel(g, adapt):
    inst = families.bounded(53, 3, 2, gamma=1.0, adapt=adapt, N=2, seed=5, cross=True)
    t = inst.as_torch()
    a, la, ia = poly_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g)
    b, lb, ib = moment_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g, block=7)
    assert ib["mode"] == "moments" and ib["absXdG"] is None
    assert set(ia["rows"]) == set(ib["rows"])
    for n, v in ia["rows"].items():
        assert ib["rows"][n].shape == v.shape, n
        assert torch.allclose(ib["rows"][n], v, rtol=1e-12, atol=1e-13), n
    assert torch.allclose(ib["Fv"], ia["Fv"], rtol=1e-10, atol=1e-15)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-11, atol=1e-14), k
    assert la == pytest.approx(lb, rel=1e-12)


@pytest.mark.parametrize("d,g", [(1, 3), (2, 4), (4, 5)])
def test_derivative_map_differentiates_the_polynomial(d, g):
    """d/dx_b of sum_a c_a x^a (degree g+1) equals sum_i x^i fac c[idx], checked by finite
    differences of the polynomial in float64."""
    from harness.solvers.poly.features import TorchPlan, features

    gen = torch.Generator().manual_seed(d * 10 + g)
    plan = TorchPlan(d, g + 1, torch.float64, "cpu")
    c = torch.randn(1, plan.k, 1, dtype=torch.float64, generator=gen)
    x = torch.randn(1, 1, d, dtype=torch.float64, generator=gen) * 0.5
    idx, fac = derivative_map(d, g)
    assert idx.shape == fac.shape == (d, idx.shape[1]) and np.all(fac >= 1)
    Dc = _derive(c, d, g)  # (1, k, d)
    lo = TorchPlan(d, g, torch.float64, "cpu")
    for b in range(d):
        e = torch.zeros(d, dtype=torch.float64)
        e[b] = 1e-6
        fd = ((features(x + e, plan) - features(x - e, plan))[0, :, 0] @ c[0, :, 0]) / 2e-6
        an = features(x, lo)[0, :, 0] @ Dc[0, :, b]
        assert float(an) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blocked_rounding_certificate_holds(monkeypatch, dtype, seed):
    """Small blocks, so the certificate's gamma_n uses the blocked path length (block + L/block),
    not L: the measured error (long-double reference) stays within the bound, float32 included
    (where rounding is most of the bound)."""
    from harness import highprec
    from harness.solvers import get_solver
    from harness.solvers.poly import moments
    from harness.solvers.poly.bound_context import path_length

    monkeypatch.setattr(moments, "MIN_BLOCK", 8)
    monkeypatch.setattr(moments, "BLOCK_ENTRIES", 16 * 120)
    inst = families.adversarial(L=400, d=3, r=2, seed=seed, Lk=350)
    res = get_solver("poly").solve(inst, dtype=dtype, degree=6)
    c = res.certificate
    assert res.info["block"] < 40 and path_length(400, res.info["block"]) < 400
    ref = highprec.reference(inst, "longdouble")
    err, ref_err = ref.max_abs_error(res.grads)
    if c["valid"]:
        assert err <= c["error_bound"] + ref_err, (err, c["error_bound"], c["bound_parts"])
    else:
        assert c["reason"]


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 6),
    st.integers(2, 90),
    st.integers(1, 2),
    st.sampled_from([("q", "k", "v"), ("q", "v"), ("k",), ("v",), ("q",)]),
    st.integers(0, 2**16),
)
def test_op_count_products_equal_the_kernels_matmuls(d, g, L, N, adapt, seed):
    """theory.moments_op_count is the count CI gates on; its products must be the kernel's own: the
    2 m k n of every matmul the kernel (preprocess and adapter chain included) really runs, as torch's
    FlopCounterMode sees them, at any shape, adapter set and block count."""
    inst = families.bounded(L, d, min(2, d), gamma=1.0, adapt=adapt, N=N, seed=seed)
    t = inst.as_torch()
    with FlopCounterMode(display=False) as fc:
        moment_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g, block=max(2, L // 3))
    model = moments_op_count(N, L, L, d, g, inst.r, inst.adapted, counter=True)
    assert fc.get_total_flops() == model.gemm
    assert int(model) > model.gemm  # and the elementwise work is counted on top


def test_solver_reports_the_op_count_of_the_kernel_it_runs():
    inst = families.bounded(128, 4, 2, gamma=1.0, adapt=("q", "k", "v"), seed=3)
    a = (inst.N, inst.Lq, inst.Lk, inst.d, 5, inst.r, inst.adapted)
    assert get_solver("poly").solve(inst, degree=5).ops == moments_op_count(*a)
    gemm = type(get_solver("poly"))()  # a private instance: the registry's is shared
    gemm.kernel = "gemm"
    assert gemm.solve(inst, degree=5).ops == poly_op_count(*a, kernel="gemm") != moments_op_count(*a)
