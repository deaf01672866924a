"""`poly-chained` (the LoRA paper's Lemma 3.3-3.7 / Thm 3.1 chain, corrected conventions): agrees with
`poly` (same polynomial) and with its dense reference; the printed p2 orientation is wrong
(Hu et al. (arXiv:2406.03136) Lemmas 3.3-3.7, Thm 3.1; docs/theory.md §4.5, §7.1-§7.2)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness import families
from harness.errors import HarnessError
from harness.solvers import get_solver
from harness.solvers.poly.chained import chained_factors, chained_gradients, row_kron
from harness.solvers.poly.fused import poly_gradients
from harness.solvers.poly.naive import dense_chained_reference
from harness.strategies import instances
from tests.certificate_helpers import assert_within_certificate


def _max_rel(a, b):
    scale = max([1e-3] + [float(v.abs().max()) for v in b.values()])  # floor: zero gradients (L = 1)
    return max(float((a[k] - b[k]).abs().max()) for k in b) / scale


@given(instances(max_L=10, max_d=3, max_N=2, scale=0.5), st.integers(1, 3))
def test_chain_equals_poly_and_dense_reference(inst, g):
    t = inst.as_torch()
    args = (t, inst.alpha, inst.beta, inst.r, inst.adapted, g)
    chain, loss_c, _ = chained_gradients(*args)
    fast, loss_p, _ = poly_gradients(*args)
    dense = dense_chained_reference(*args)
    if inst.adapted:
        assert _max_rel(chain, fast) <= 1e-9
        assert _max_rel(chain, dense) <= 1e-9
    assert loss_c == pytest.approx(loss_p, rel=1e-10, abs=1e-12)


def test_row_kron_identity():
    """(U1 V1^T) . (U2 V2^T) = (U1 (/) U2)(V1 (/) V2)^T (docs/theory.md §1)."""
    g = torch.Generator().manual_seed(0)
    U1, V1 = (
        torch.randn(7, 3, generator=g, dtype=torch.float64),
        torch.randn(5, 3, generator=g, dtype=torch.float64),
    )
    U2, V2 = (
        torch.randn(7, 4, generator=g, dtype=torch.float64),
        torch.randn(5, 4, generator=g, dtype=torch.float64),
    )
    assert torch.allclose((U1 @ V1.T) * (U2 @ V2.T), row_kron(U1, U2) @ row_kron(V1, V2).T)
    assert row_kron(U1, U2)[2, 1 * 3 + 2] == U1[2, 2] * U2[2, 1]


def test_lemma_factors_reproduce_their_dense_objects():
    """Lemmas 3.3-3.7 on the solver's preprocessed inputs (centred keys and values, balanced split):
    every factor pair equals its dense object formed from the definitions."""
    from harness.solvers.poly.fused import preprocess
    from harness.solvers.poly.naive import taylor_poly

    inst = families.bounded(30, 3, 2, gamma=1.0, adapt=("q",), seed=1)
    t = inst.as_torch()
    P = preprocess(t, inst.alpha, inst.beta, inst.r)
    xq, xk, V, Y = P["xq"][0], P["xk"][0], P["Vc"][0], P["Yc"][0]
    F = chained_factors(xq, xk, V, Y, 3, 1)
    A = taylor_poly(xq @ xk.T, 3)
    assert torch.allclose(xq @ xk.T, inst.beta * P["Q"][0] @ P["Kc"][0].T)  # the split is exact
    f = A / A.sum(1, keepdim=True)
    c = f @ V - Y
    q = c @ V.T
    assert torch.allclose(F["U1"] @ F["V1"].T, f)  # Lemma 3.3
    assert torch.allclose(F["c"], c)  # Lemma 3.4
    assert torch.allclose(F["U2"] @ F["V2"].T, q)  # Lemma 3.5
    assert torch.allclose(row_kron(F["U1"], F["U2"]) @ row_kron(F["V1"], F["V2"]).T, f * q)  # Lemma 3.6
    assert torch.allclose(F["U4"] @ F["V4"].T, (f * q).sum(1, keepdim=True) * f)  # Lemma 3.7


def test_printed_p2_orientation_is_wrong():
    inst = families.bounded(40, 3, 2, gamma=1.0, adapt=("q", "k"), seed=2)
    t = inst.as_torch()
    args = (t, inst.alpha, inst.beta, inst.r, inst.adapted, 4)
    good, _, _ = chained_gradients(*args)
    bad, _, _ = chained_gradients(*args, printed_p2=True)
    assert _max_rel(bad, dense_chained_reference(*args, printed_p2=True)) <= 1e-9  # it is what is printed
    assert _max_rel(bad, good) > 1e-2  # and it is wrong
    ref = get_solver("closed-form").solve(inst)
    errs = {k: float(np.abs(bad[k].numpy() - ref.grads[k]).max()) for k in ref.grads}
    assert max(errs.values()) > 100 * get_solver("poly-chained").solve(inst).max_abs_error(ref)
    cross = families.bounded(10, 2, 1, gamma=1.0, cross=True, seed=0).replace(
        X_k=np.ones((1, 7, 2)), X_v=np.ones((1, 7, 2))
    )
    with pytest.raises(HarnessError, match="only defined when Lq == Lk"):
        chained_gradients(
            cross.as_torch(), cross.alpha, cross.beta, cross.r, cross.adapted, 2, printed_p2=True
        )


def test_solver_shares_the_poly_certificate():
    inst = families.bounded(64, 3, 2, gamma=1.0, adapt=("q", "k", "v"), N=2, seed=5)
    a = get_solver("poly").solve(inst, eps=1e-8)
    b = get_solver("poly-chained").solve(inst, eps=1e-8)
    for key in ("R", "degree", "rank", "eps_rel", "regime", "meets_eps"):
        assert a.certificate[key] == b.certificate[key]
    # the same exact-arithmetic gradient (truncation and input parts), its own rounding analysis
    for part in ("truncation", "input"):
        assert a.certificate["bound_parts"][part] == pytest.approx(
            b.certificate["bound_parts"][part], rel=1e-9
        )
    assert b.max_abs_error(a) <= 1e-12
    assert b.ops > a.ops  # the chain is the slower construction (k3 = k1 (k1 + d))
    assert_within_certificate(inst, b)
    assert b.certificate["error_bound"] <= 1e-8


def test_refuses_when_k3_is_huge():
    inst = families.bounded(16, 6, 2, gamma=1.0, adapt=("q",), seed=0)
    with pytest.raises(HarnessError, match="poly-chained refuses: rank k3"):
        get_solver("poly-chained").solve(inst, degree=9)
