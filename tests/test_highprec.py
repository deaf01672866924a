"""The high-precision references (harness.highprec) and the adversarial family they are used on."""

import numpy as np
import pytest
from hypothesis import given, settings

from harness import families, highprec
from harness.checks.profiles import examples
from harness.errors import HarnessError
from harness.strategies import adversarial_params


def test_the_longdouble_reference_agrees_with_mpmath():
    for kw in (
        dict(L=6, d=3, r=1, seed=1),
        dict(L=5, d=1, r=1, seed=2, Lk=3, const_v=True),
        dict(L=6, d=2, r=2, seed=3, gamma=3.0, N=2, w_mode="unbalanced", w_scale=1e6),
    ):
        inst = families.adversarial(**kw)
        ld, mp = highprec.reference(inst, "longdouble"), highprec.reference(inst, "mpmath")
        e, own = ld.max_abs_error(mp.grads_hp)
        assert e <= own + mp.error_bound_hp


def test_references_agree_with_the_float64_closed_form_to_its_rounding():
    from harness.solvers import get_solver

    inst = families.adversarial(L=7, d=3, r=2, seed=5, Lk=4, N=2)
    ref = highprec.reference(inst, "mpmath")
    cf = get_solver("closed-form").solve(inst)
    e, own = ref.max_abs_error(cf.grads)
    scale = max(float(np.abs(v).max()) for v in ref.grads.values())
    assert e <= 1e-13 * scale and own <= 1e-17 * scale


def test_mpmath_reference_refuses_big_instances_and_unknown_kinds():
    with pytest.raises(HarnessError, match="tiny instances"):
        highprec.reference(families.bounded(600, 4, 2, seed=0), "mpmath")
    with pytest.raises(HarnessError, match="unknown reference kind"):
        highprec.reference(families.bounded(6, 2, 1, seed=0), "double-double")


@settings(max_examples=examples(10))
@given(adversarial_params(max_L=6, max_d=3, max_N=2))
def test_adversarial_family_is_reproducible_and_valid(p):
    a, b = families.adversarial(**p), families.adversarial(**p)
    assert a.sha256 == b.sha256 and a.meta["generator"] == "adversarial" and a.meta["seed"] == p["seed"]
    assert a.Lq == p["L"] and a.Lk == (p["Lk"] or p["L"]) and a.d == p["d"] and a.N == p["N"]
    if p["const_v"]:
        from harness import theory

        V = theory.projections(a)[2]
        assert np.ptp(V[..., 0], axis=-1).max() <= 1e-12 * max(1.0, float(np.abs(V[..., 0]).max()))
