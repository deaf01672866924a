"""harness.theory: Taylor bounds, degree/rank, score range, regime, and the rigorous gradient-error
certificate of the polynomial method (docs/theory.md §4, §5.1)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness import families, theory
from harness.solvers import get_solver
from harness.solvers.poly.features import monomial_plan
from harness.solvers.poly.naive import dense_poly_gradients, taylor_poly
from harness.solvers.poly.pilot import PILOT_ACCEPT
from harness.strategies import bounded_params
from harness.theory import norms


@given(st.floats(0.01, 6.0), st.integers(1, 25))
def test_taylor_rel_error_is_rigorous(R, g):
    x = torch.linspace(-R, R, 2001, dtype=torch.float64)
    rel = ((torch.exp(x) - taylor_poly(x, g)).abs() / torch.exp(x)).max().item()
    bound = theory.taylor_rel_error(R, g)
    assert rel <= bound * (1 + 1e-9) + 1e-14 * math.exp(2 * R)  # + float64 rounding (cancellation)
    assert bound <= theory.taylor_rel_error_paper(
        R, g
    )  # tighter than the printed e^(2R) form (docs/theory.md §4.1)


@given(st.floats(0.01, 20.0), st.sampled_from([1e-2, 1e-6, 1e-10, 1e-14]))
def test_taylor_degree_is_minimal(R, eps):
    g = theory.taylor_degree(R, eps)
    assert theory.taylor_rel_error(R, g) <= eps
    if g > 1:
        assert theory.taylor_rel_error(R, g - 1) > eps


@pytest.mark.parametrize("d,g", [(1, 5), (3, 4), (4, 6), (6, 3)])
def test_feature_rank_counts_monomials(d, g):
    plan = monomial_plan(d, g)
    assert len(plan["exps"]) == theory.feature_rank(d, g) == math.comb(d + g, g)
    assert len({tuple(e) for e in plan["exps"]}) == len(plan["exps"])
    assert plan["exps"].sum(1).max() == g


def test_regime_constants():
    L = 1024
    lg = math.log(L)
    assert theory.regime(0.5 * lg, L) == "efficient"
    assert theory.regime(0.5 * lg + 1e-9, L) == "threshold"
    assert theory.regime(2 * lg, L) == "threshold"
    assert theory.regime(2 * lg + 1e-9, L) == "hard"


@given(bounded_params(max_L=40, max_d=4, max_gamma=3.0), st.booleans(), st.sampled_from([None, 1.0, -0.5]))
def test_score_range_exact_and_bound(p, cross, beta):
    inst = families.bounded(**p, cross=cross, beta=beta)
    t = inst.as_torch()
    from harness.losses import effective_weights

    W = effective_weights(t, inst.alpha, inst.r)
    S = inst.beta * (t["X_q"] @ W["q"]) @ (t["X_k"] @ W["k"]).transpose(-1, -2)
    R = theory.score_range(inst)
    assert R == pytest.approx(float(S.abs().max()), rel=1e-12, abs=1e-300)
    assert R <= theory.score_range_bound(inst) * (1 + 1e-12)
    rows = theory.row_score_bounds(inst)
    assert (S.abs().amax(-1).numpy() <= rows * (1 + 1e-12) + 1e-300).all()


def test_score_range_blocks(monkeypatch):
    inst = families.bounded(300, 3, 1, gamma=1.3, N=2, seed=5)
    full = theory.score_range(inst)
    monkeypatch.setattr(norms, "_BLOCK_ENTRIES", 700)
    assert theory.score_range(inst) == full


@given(st.integers(65, 400), st.integers(1, 5), st.booleans(), st.integers(0, 2**31))
def test_score_range_hull_reduction_is_exact(L, d, cross, seed):
    inst = families.bounded(L, d, 1, gamma=1.0, cross=cross, seed=seed)
    fast = theory.score_range(inst)
    old, norms.HULL_MAX_D = norms.HULL_MAX_D, 0
    try:
        full = theory.score_range(inst)
    finally:
        norms.HULL_MAX_D = old
    assert fast == pytest.approx(full, rel=1e-12)


@pytest.mark.slow
def test_score_range_at_L_2_17():
    inst = families.bounded(2**17, 4, 2, gamma=1.0, seed=0)
    R = theory.score_range(inst)
    assert 0 < R <= theory.score_range_bound(inst) and R <= 1.0


@given(bounded_params(max_L=30, max_d=4, max_gamma=2.0))
def test_paper_gammas_match_the_family(p):
    inst = families.bounded(**p)
    gm = theory.paper_gammas(inst)
    assert gm["gamma"] == pytest.approx(p["gamma"], rel=1e-9)
    assert gm["q_C1W"] == gm["k_C2"] and gm["q_C2"] == gm["k_C1W"]
    # beta = 1/d by default: R <= gamma^2 (docs/theory.md §4.1 / families docstring)
    assert theory.score_range(inst) <= p["gamma"] ** 2 * (1 + 1e-9)


def test_normalisation_lemma():
    """|f~ - f| <= 2 eps/(1-eps) f entrywise when |A~ - A| <= eps A (docs/theory.md §4.3)."""
    rng = np.random.default_rng(0)
    for eps in (0.3, 1e-3):
        A = np.exp(rng.normal(size=(50, 60)))
        At = A * (1 + eps * rng.uniform(-1, 1, size=A.shape))
        f, ft = A / A.sum(1, keepdims=True), At / At.sum(1, keepdims=True)
        assert (np.abs(ft - f) <= theory.normalised_rel_error(eps) * f).all()


def _bound_holds(inst, g):
    """measured plug-in gradient error of the degree-g kernel <= certified bound (float64)."""
    t = inst.as_torch()
    ref = get_solver("closed-form").solve(inst)
    grads, _ = dense_poly_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g)
    err = max(float(np.abs(grads[k].numpy() - ref.grads[k]).max()) for k in ref.grads)
    R = theory.score_range_centred(inst)  # the polynomial is evaluated on the centred scores
    e = theory.taylor_rel_error(R, g)
    if e >= 1:
        return None
    bound = theory.gradient_error_bound(inst, e)
    rows = theory.gradient_error_bound_rows(inst, g, R=R)  # per-query-row kernel errors
    assert rows <= bound * (1 + 1e-12)
    scale = max(float(np.abs(v).max()) for v in ref.grads.values())
    assert err <= rows + 1e-12 * max(scale, 1.0), (err, rows, bound)
    return err, rows


@given(bounded_params(max_L=48, max_d=4, max_gamma=1.5), st.integers(1, 6), st.booleans())
def test_gradient_error_bound_holds(p, g, cross):
    _bound_holds(families.bounded(**p, cross=cross), g)


@given(bounded_params(max_L=24, max_d=3, max_gamma=1.5), st.integers(1, 4))
def test_gradient_error_bound_holds_beta_one(p, g):
    """beta = 1 (the paper's (S4)): R up to d gamma^2 (docs/theory.md §5.1, §7.6)."""
    _bound_holds(families.bounded(**p, beta=1.0), g)


def test_certify_keys_and_degree_choice():
    inst = families.bounded(256, 4, 2, gamma=1.0, adapt=("q", "k", "v"), seed=3)
    c = theory.certify(inst)
    for key in (
        "R",
        "R_exact",
        "log_L",
        "regime",
        "regime_R",
        "gammas",
        "degree",
        "rank",
        "eps_rel",
        "error_bound",
        "error_bound_estimate",
        "eps",
        "ops",
        "exact_ops",
        "cost_ratio",
    ):
        assert key in c
    assert c["R_exact"] and c["eps"] is None
    eps = 1e-7
    c = theory.certify(inst, eps=eps)
    assert c["error_bound_estimate"] <= PILOT_ACCEPT * eps and c["meets_eps_predicted"] is not None
    prev = theory.certify(inst, degree=c["degree"] - 1)
    assert prev["error_bound"] > c["error_bound"]  # the a priori bound falls with g
    assert c["rank"] == theory.feature_rank(4, c["degree"])
    # the degree is the solver's: its a posteriori certificate meets eps at that degree
    res = get_solver("poly").solve(inst, eps=eps)
    assert res.certificate["degree"] in (c["degree"], c["degree"] + 1) and res.certificate["meets_eps"]
    cb = theory.certify(inst, eps=eps, exact_R=False)
    assert cb["R"] == cb["R_bound"] >= c["R"] and not cb["R_exact"]


def test_certify_says_when_its_degree_search_stopped():
    """No degree meets eps (rounding and truncation at R ~ 20, d = 16): "degree_found" is False, so
    the degree, rank and cost it returns are lower bounds (the audit prints them with >=)."""
    hard = theory.certify(families.threshold(L=64, d=16, r=2, c=3.0, seed=0), eps=1e-6, max_rank=10**300)
    assert hard["degree_found"] is False and not hard["meets_eps_predicted"]
    easy = theory.certify(families.bounded(L=64, d=4, r=2, gamma=1.0, seed=0), eps=1e-6, max_rank=10**300)
    assert easy["degree_found"] is True and easy["meets_eps_predicted"]
