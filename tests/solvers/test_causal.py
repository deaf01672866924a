"""Every solver on causal instances against the masked float64 reference; the chunkwise poly and
the masked low-rank products against their naive twins (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import families
from harness.errors import HarnessError
from harness.solvers import get_solver
from harness.theory.causal import causal_poly_op_count
from tests.causal_helpers import causal_instances, masked_reference, max_err
from tests.certificate_helpers import assert_within_certificate

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(causal_instances())
def test_exact_solvers_match_the_masked_reference(inst):
    ref, loss = masked_reference(inst)
    for name, opts in (
        ("autograd", {}),
        ("closed-form", {}),
        ("streaming", {}),
        ("streaming", {"kernel": "reference"}),
        ("sdpa", {}),
        ("sdpa", {"backend": "math"}),
        ("streaming", {"block_q": 2, "block_k": 3}),
    ):
        res = get_solver(name).solve(inst, **opts)
        err, scale = max_err(res.grads, ref)
        assert err <= 1e-10 * max(1.0, scale), (name, opts, err, inst.describe())
        assert res.loss == pytest.approx(loss, rel=1e-10, abs=1e-12)
    out = get_solver("streaming").forward(inst, block_q=3, block_k=2)
    assert np.allclose(out, get_solver("autograd").forward(inst), atol=1e-12)


def test_mask_changes_the_gradient():
    inst = families.bounded(L=32, d=4, r=2, seed=1, adapt=("q", "k", "v"), causal=True)
    a, b = get_solver("closed-form").solve(inst), get_solver("closed-form").solve(inst.replace(causal=False))
    assert a.max_rel_error(b) > 1e-2


def test_streaming_skips_the_masked_tiles():
    s = get_solver("streaming")
    for L in (1024, 2048, 4096):
        inst = families.bounded(L=L, d=4, r=2, seed=0, adapt=("q", "k", "v"))
        full, causal = s.solve(inst), s.solve(inst.replace(causal=True))
        bq = causal.info["block_q"]  # the visible entries are (1/2 + bq / (2 L)) of all
        assert 0.5 < causal.ops / full.ops <= 0.5 + bq / (2 * L) + 0.005, (L, causal.ops / full.ops)
    # with one key block per query block the count is exactly the visible lower triangle plus the
    # diagonal blocks' upper halves
    inst = families.bounded(L=64, d=2, r=1, seed=0, causal=True)
    from harness.solvers.exact.streaming import visible_entries

    assert visible_entries(64, 64, 8, True) == sum(8 * e for e in range(8, 65, 8))
    assert visible_entries(64, 64, 8, False) == 64 * 64


# ------------------------------------------------------------------ poly
@SETTINGS
@given(causal_instances(max_L=40, big_scores=False), st.integers(1, 6), st.sampled_from([None, 1, 3, 8, 32]))
def test_chunkwise_poly_matches_its_naive_twin(inst, g, chunk):
    from harness.solvers.poly.causal import causal_poly_gradients
    from harness.solvers.poly.naive import causal_row_facts, dense_poly_gradients

    t = inst.as_torch()
    with torch.no_grad():
        fast, loss, info = causal_poly_gradients(
            t, inst.alpha, inst.beta, inst.r, inst.adapted, g, chunk=chunk
        )
        slow, loss_slow = dense_poly_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g, causal=True)
        facts = causal_row_facts(t, inst.alpha, inst.beta, inst.r, g)
    D = facts["D"]
    if not all(torch.isfinite(v).all() for v in slow.values()) or float(D.abs().min()) < 1e-6:
        return  # the kernel vanishes on a row at this degree: both are noise there
    scale = max(float(v.abs().max()) for v in slow.values())
    err = max(float((fast[k] - slow[k]).abs().max()) for k in slow)
    assert err <= 1e-9 * max(1.0, scale), (err, scale, inst.describe(), g, chunk)
    assert loss == pytest.approx(loss_slow, rel=1e-9, abs=1e-12)
    # the certificate's rows over each prefix: through the features the sums cancel (odd monomials
    # change sign), so compare against each quantity's scale
    rows = info["rows"]
    for name, got in (("D", rows["D"][..., 0]), ("sT", rows["sT"][..., 0]), ("tV", rows["tV"])):
        want = facts[name]
        assert float((got - want).abs().max()) <= 1e-12 * max(1.0, float(want.abs().max())), name
    if g % 2 == 0:
        want = facts["Sg"]
        assert float((rows["Sg"][..., 0] - want).abs().max()) <= 1e-12 * max(1.0, float(want.abs().max()))
    assert rows["n"].shape == (inst.N, inst.Lq, 1) and int(rows["n"].min()) >= 1


@SETTINGS
@given(
    st.integers(2, 80),
    st.integers(1, 4),
    st.floats(0.2, 1.5),
    st.booleans(),
    st.integers(1, 2),
    st.integers(0, 2**31),
    st.sampled_from([("q",), ("k",), ("v",), ("q", "k", "v")]),
)
def test_poly_meets_its_certificate_on_causal_instances(L, d, gamma, cross, N, seed, adapt):
    inst = families.bounded(L=L, d=d, r=1, gamma=gamma, seed=seed, N=N, cross=cross, adapt=adapt, causal=True)
    res = get_solver("poly").solve(inst)  # the default target 1e-6, never refused
    cert = res.certificate
    assert cert["causal"] and cert["ops"] == res.ops and cert["valid"]
    err, ref_err = assert_within_certificate(inst, res)  # the masked long-double reference, no slack
    assert not cert["meets_eps"] or err <= 1e-6 + ref_err


def test_poly_converges_to_the_masked_gradient_and_its_op_count_is_linear():
    inst = families.bounded(L=300, d=3, r=2, seed=2, adapt=("q", "k", "v"), causal=True, cross=True)
    ref, _ = masked_reference(inst)
    errs = [max_err(get_solver("poly").solve(inst, degree=g).grads, ref)[0] for g in (2, 4, 6, 8)]
    assert all(b < a for a, b in zip(errs, errs[1:])) and errs[-1] < 1e-7
    from harness.measure.fit import fit_power

    Ls = [2**k for k in range(10, 15)]
    ops = [causal_poly_op_count(1, L, L, 4, 5, 2, ("q", "k", "v")) for L in Ls]
    assert abs(fit_power(Ls, ops)["exponent"] - 1.0) < 0.02
    small = families.bounded(L=1024, d=4, r=2, seed=0, adapt=("q", "k", "v"), causal=True)
    assert get_solver("poly").solve(small, degree=5).ops == causal_poly_op_count(
        1, 1024, 1024, 4, 5, 2, ("q", "k", "v")
    )


def test_poly_forward_matches_on_causal_instances_and_chained_refuses():
    inst = families.gaussian(
        L=17, Lk=23, d=3, r=2, adapt=("q", "k", "v"), N=2, seed=5, causal=True, scale=0.3
    )
    exact = get_solver("autograd").forward(inst)
    assert np.abs(get_solver("poly").forward(inst, degree=8) - exact).max() < 1e-8
    with pytest.raises(HarnessError, match="poly-chained refuses: .*causal") as e:
        get_solver("poly-chained").solve(inst, degree=6)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ random features, products
def test_causal_products_match_dense():
    from harness.solvers.causal_products import causal_product, causal_product_t, dense_causal_product

    g = torch.Generator().manual_seed(0)
    for Lq, Lk, B in ((10, 10, 3), (7, 12, 4), (12, 5, 4), (1, 1, 64), (100, 100, 64), (65, 30, 16)):
        U, V = (
            torch.randn(2, Lq, 3, generator=g, dtype=torch.float64),
            torch.randn(2, Lk, 3, generator=g, dtype=torch.float64),
        )
        Y, Yq = (
            torch.randn(2, Lk, 2, generator=g, dtype=torch.float64),
            torch.randn(2, Lq, 2, generator=g, dtype=torch.float64),
        )
        assert torch.allclose(causal_product(U, V, Y, B), dense_causal_product(U, V, Y), atol=1e-12)
        assert torch.allclose(causal_product_t(U, V, Yq, B), dense_causal_product(U, V, Yq, True), atol=1e-12)


@SETTINGS
@given(causal_instances(max_L=30, big_scores=False), st.integers(1, 64))
def test_random_features_causal_matches_its_dense_twin(inst, m):
    from harness.solvers.random_features.naive import dense_rf_loss
    from harness.solvers.random_features.solver import rf_gradients

    a, la = rf_gradients(inst, m, 0, False, torch.float64, "cpu")
    b, lb = rf_gradients(inst, m, 0, False, torch.float64, "cpu", loss_fn=dense_rf_loss)
    err = max(float((a[k] - b[k]).abs().max()) for k in b)
    assert err <= 1e-10 * max(1.0, max(float(v.abs().max()) for v in b.values()))
    assert la == pytest.approx(lb, rel=1e-10, abs=1e-12)


def test_random_features_error_falls_with_m_on_causal_instances():
    inst = families.bounded(L=256, d=4, r=2, seed=0, causal=True)
    ref, _ = masked_reference(inst)
    errs = [max_err(get_solver("random-features").solve(inst, m=m).grads, ref)[0] for m in (64, 1024, 16384)]
    assert errs[2] < errs[0] / 4
