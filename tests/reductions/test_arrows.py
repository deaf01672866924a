"""Every arrow on its own: decode(exact_solve(reduce(x))) is right, and the margins and identities
of docs/theory.md §6.2-§6.5 hold in float64 and float32 (oracles: numpy references and the harness's
exact solvers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings

from harness.checks.profiles import examples
from harness.errors import HarnessError
from harness.solvers import get_solver
from reductions import sat_sources as S
from reductions.arrows.attention_to_gradient import AttentionToGradient
from reductions.arrows.base import CountingOracle
from reductions.arrows.gradient_to_lora import GradientToLoRA
from reductions.arrows.ov_to_attention import (
    GapHammingToAttentionAS23,
    OVToAttentionG1Layout,
    OVToAttentionP1,
)
from reductions.arrows.ov_to_gadgets import OVToGapHamming, OVToMaxIP
from reductions.arrows.ov_to_gradient import OVToGradientG1
from reductions.arrows.sat_to_ov import SatToOV
from reductions.problems import attention as att
from reductions.problems import attention_gradient as agr
from reductions.problems.gadgets import solve_gap_hamming, solve_maxip
from reductions.problems.lora import lora_oracle
from reductions.problems.ov import solve_ov, yes_rows
from tests.reductions.helpers import WIDE_RANGE, assert_agrees, cnfs


def _ov(cnf):
    return SatToOV().reduce(cnf)


def _check(cnf, ov, pair):
    """The decoded pair answers OV exactly like python-sat answers the formula."""
    assert_agrees(cnf, SatToOV().decode(ov, pair))


@given(cnfs(max_v=10, max_m=12))
@settings(max_examples=examples(20))
def test_gadget_identities(cnf):
    ov = _ov(cnf)
    ip = ov.U.astype(np.int64) @ ov.W.T.astype(np.int64)
    mip = OVToMaxIP().reduce(ov)
    assert np.array_equal(mip.A.astype(np.int64) @ mip.B.T.astype(np.int64), ov.m - ip)
    gh = OVToGapHamming().reduce(ov)
    assert np.all(gh.A.sum(1) == 3 * ov.m) and np.all(gh.B.sum(1) == 3 * ov.m)
    ham = (gh.A[:, None, :] != gh.B[None, :, :]).sum(-1)
    assert np.array_equal(ham, 2 * ov.m + 4 * ip)
    _check(cnf, ov, OVToMaxIP().decode(mip, solve_maxip(mip)))
    _check(cnf, ov, OVToGapHamming().decode(gh, solve_gap_hamming(gh)))


@given(cnfs(max_v=12))
@settings(max_examples=examples(15))
def test_p1_margins_and_decode(cnf):
    """docs/theory.md §6.3 (P1): yes rows >= c/(c+1), no rows <= 1/(cN) (fp64 reference); decoding a
    float32 harness forward pass is right; realised under tau = 1 and tau = d alike."""
    ov = _ov(cnf)
    yes = yes_rows(ov)
    for tau in ("1", "d"):
        arrow = OVToAttentionP1(tau=tau)
        t = arrow.reduce(ov)
        T = att.exact_attention(t)[: ov.N, 0]
        assert np.all(T[yes] >= 0.8 - 1e-12)
        assert np.all(T[~yes] <= 1 / (4 * ov.N) * (1 + 1e-12))
        assert arrow.required_accuracy(t) >= 0.25 - 1e-12
    t = OVToAttentionP1().reduce(ov)
    for solver, dtype in (("closed-form", "float64"), ("streaming", "float32")):
        sol = att.forward_oracle(solver, dtype)(t)
        assert np.max(np.abs(sol.T - att.exact_attention(t))) < (1e-12 if dtype == "float64" else 1e-5)
        _check(cnf, ov, OVToAttentionP1().decode(t, sol))


def test_p1_wrong_oracle_is_caught():
    cnf = S.unsat(3, 8, seed=0)
    ov = _ov(cnf)
    t = OVToAttentionP1().reduce(ov)
    T = att.exact_attention(t)
    T[0, 0] = 0.9  # an oracle error larger than the required 0.3
    with pytest.raises(HarnessError, match="decode failed"):
        OVToAttentionP1().decode(t, att.AttentionSolution(T=T))


@given(cnfs(max_v=8, max_m=14))
@settings(max_examples=examples(10))
def test_as23_log_space(cnf):
    """docs/theory.md §6.3 (AS23 (arXiv:2302.13214) Lemma 4.7 layout): decided right in log space; the
    yes/no bounds hold on the log column."""
    assume(cnf.m > 0)
    ov = _ov(cnf)
    gh = OVToGapHamming().reduce(ov)
    arrow = GapHammingToAttentionAS23()
    t = arrow.reduce(gh)
    logc = att.log_attention_column(t)[: ov.N]
    yes = yes_rows(ov)
    assert np.all(logc[yes] >= t.meta["log_yes_lb"] - 1e-9)
    assert np.all(logc[~yes] <= t.meta["log_no_ub"] + 1e-9)
    pair = arrow.decode(t, att.AttentionSolution(info={"log_col0": logc}))
    _check(cnf, ov, OVToGapHamming().decode(gh, pair))


def test_as23_float64_small_and_underflow():
    small = S.planted(3, 6, seed=1)
    ov = _ov(small)
    gh = OVToGapHamming().reduce(ov)
    t = GapHammingToAttentionAS23().reduce(gh)
    assert t.meta["log10_yes_lb"] > -300
    sol = att.forward_oracle("closed-form")(t)
    _check(small, ov, GapHammingToAttentionAS23().decode(t, sol))
    big = S.planted(3, 14, seed=1)
    ov = _ov(big)
    t = GapHammingToAttentionAS23().reduce(OVToGapHamming().reduce(ov))
    assert t.meta["log10_yes_lb"] < -308  # below float64's smallest subnormal
    T = att.exact_attention(t)
    assert np.all(T[:, 0] == 0.0)  # the float64 forward pass underflows to exactly 0
    with pytest.raises(HarnessError, match="underflows"):
        GapHammingToAttentionAS23().decode(t, att.AttentionSolution(T=T))


@given(cnfs(max_v=12))
@settings(max_examples=examples(15))
def test_g1_identity_margins_and_binary_search(cnf):
    """docs/theory.md §6.4 (G1): g = (1/d') sum T_i (T_i + c)(1 - T_i); read-out on the right side of
    [no_ub, yes_lb] in float64; float32 harness oracle decides; decode uses <= ceil(log2 N) extra calls."""
    ov = _ov(cnf)
    yes = yes_rows(ov)
    for zero in (False, True):
        arrow = OVToGradientG1(zero_E=zero)
        t = arrow.reduce(ov)
        g = agr.exact_oracle(t)
        Tq = att.exact_attention(att.AAttCInstance(t.A1 @ t.X, t.A2, t.A3, float(t.d)))[:, 0]
        Tq = Tq[: ov.N]
        expect = (Tq**2 * (1 - Tq) if zero else Tq * (Tq + 1) * (1 - Tq)).sum() / t.d
        assert math.isclose(arrow.readout(t, g), expect, rel_tol=1e-9, abs_tol=1e-300)
        if yes.any():
            assert arrow.readout(t, g) >= t.meta["yes_lb"] * (1 - 1e-9)
        else:
            assert arrow.readout(t, g) <= t.meta["no_ub"] * (1 + 1e-9)
        assert t.meta["eps_needed"] > 0
        # float32: the read-out entry's error stays inside the required accuracy with a 2x margin, so
        # the float32 decision is the float64 one (the max-norm error over the whole gradient can be
        # larger: other entries are O(beta m) in size). Measured over 800 draws at N <= 64: median
        # 6e-8 of eps_needed, max 0.074; the nightly tier once drew 0.15 (a one-clause tautology)
        g32 = agr.gradient_oracle("streaming", "float32")(t)
        assert abs(arrow.readout(t, g32) - arrow.readout(t, g)) < t.meta["eps_needed"] / 2
        assert arrow.decide(t, g32) == arrow.decide(t, g)
    arrow = OVToGradientG1()
    oracle = CountingOracle(agr.gradient_oracle("streaming", "float32"))
    pair = arrow.solve(ov, oracle)
    _check(cnf, ov, pair)
    assert oracle.calls <= 1 + math.ceil(math.log2(ov.N)) if ov.N > 1 else oracle.calls == 1


def test_g1_matches_autograd_and_closed_form():
    cnf = S.planted(3, 8, seed=2)
    t = OVToGradientG1().reduce(_ov(cnf))
    g = agr.exact_oracle(t)
    for name in ("autograd", "closed-form", "streaming"):
        assert np.max(np.abs(agr.gradient_oracle(name)(t) - g)) <= 1e-12 * np.max(np.abs(g))


@pytest.mark.parametrize(
    "form,adapt", [("cross", "C1"), ("cross", "C1-q"), ("cross", "C2"), ("self", "C1"), ("self", "C2")]
)
@pytest.mark.parametrize("alpha,fold", [(None, False), (1.0, True)])
def test_lora_embedding_identity(form, adapt, alpha, fold):
    """Hu et al. (arXiv:2406.03136) App. D (v2); docs/theory.md §6.5: the LoRA read-out equals the AAttLGC
    gradient to 1e-10 relative, the padded columns of dA_q are exactly 0, and the two losses agree."""
    for cnf in (S.planted(3, 8, seed=4), S.unsat(3, 8, seed=4)):
        src = OVToGradientG1().reduce(_ov(cnf))
        loss, g = agr.loss_and_gradient(src)
        arrow = GradientToLoRA(form, adapt, alpha=alpha, fold=fold)
        x = arrow.reduce(src)
        assert x.inst.r == src.d < x.inst.d
        for solver in ("closed-form", "autograd"):
            res = get_solver(solver).solve(x.inst)
            gl = arrow.decode(x, res.grads)
            assert np.max(np.abs(gl - g)) <= 1e-10 * np.max(np.abs(g))
            assert np.all(res.grads["dA_q"][:, src.d :] == 0)
            assert math.isclose(res.loss, loss, rel_tol=1e-12)
        b = x.bounds()
        assert b["Gamma_K"] == pytest.approx(np.abs(src.A2).max())


def test_calculus_route_left_riemann_fails_gauss_legendre_works():
    """docs/theory.md §6.4, §7.8: the printed left-Riemann sum misses f(1) by far more than the
    decision needs; Gauss-Legendre meets it and decides through the G1 layout."""
    for cnf in (S.planted(3, 8, seed=5), S.unsat(3, 8, seed=5)):
        ov = _ov(cnf)
        layout = OVToAttentionG1Layout()
        a = layout.reduce(ov)
        truth = float(np.square(att.exact_attention(a)).sum())
        need = layout.required_accuracy(a)
        lr = AttentionToGradient("left-riemann", calls=64).solve(a, agr.exact_oracle).frob2
        gl = AttentionToGradient("gauss-legendre", panels=4).solve(a, agr.exact_oracle).frob2
        assert abs(lr - truth) > 10 * need
        assert abs(gl - truth) < need / 10
        calc = AttentionToGradient("gauss-legendre", panels=4)
        _check(cnf, ov, layout.solve(ov, calc.pullback(agr.exact_oracle)))


def test_calculus_route_refines_its_quadrature_to_the_tolerance():
    """The adaptive rule bisects panels until its error estimate is <= delta/4, where the same
    starting panels used as a fixed rule are off by more than the quadrature's share delta/2;
    with too few calls allowed it refuses in one line instead of answering."""
    layout = OVToAttentionG1Layout()
    a = layout.reduce(_ov(WIDE_RANGE))
    truth = float(np.square(att.exact_attention(a)).sum())
    need = layout.required_accuracy(a)
    fixed = AttentionToGradient("gauss-legendre", panels=2, order=12, adaptive=False)
    assert abs(fixed.solve(a, agr.exact_oracle).frob2 - truth) > need / 2
    counted = CountingOracle(agr.exact_oracle)
    sol = AttentionToGradient("gauss-legendre", panels=2, order=12).solve(a, counted)
    assert sol.info["adaptive"] and sol.info["calls"] == counted.calls > 2 * 12
    assert sol.info["error_estimate"] <= sol.info["tol"] == pytest.approx(need / 4)
    assert abs(sol.frob2 - truth) <= sol.info["error_estimate"]
    with pytest.raises(HarnessError, match=r"calculus route: .* above the tolerance .*\(max_calls=72\)"):
        AttentionToGradient("gauss-legendre", panels=2, order=12, max_calls=72).solve(a, agr.exact_oracle)
    # no tolerance known (an AAttC instance not from the G1 layout): the fixed rule, said so
    plain = att.AAttCInstance(a.Q, a.K, a.V, a.tau, {}, source=None)
    assert AttentionToGradient("gauss-legendre", panels=2, order=12).solve(plain, counted).info == {
        "calls": 24,
        "rule": "gauss-legendre",
        "adaptive": False,
    }


def test_arrows_never_pick_a_solver():
    t = OVToGradientG1().reduce(_ov(S.planted(3, 6, seed=0)))
    g = agr.exact_oracle(t)
    with pytest.raises(HarnessError, match="needs the oracle"):
        OVToGradientG1().decode(t, g)  # yes instance: the binary search needs the caller's oracle


def test_lora_oracle_through_embedding_decides():
    cnf = S.planted(3, 10, seed=7)
    ov = _ov(cnf)
    g1, emb = OVToGradientG1(), GradientToLoRA("cross", "C2")
    oracle = emb.pullback(lora_oracle("streaming", "float32"))
    _check(cnf, ov, g1.solve(ov, oracle))
    assert solve_ov(ov) is not None
