"""The reduced C1/C2 forms (docs/theory.md §2.3) give the same loss and gradients as the
general instance they come from."""

import numpy as np
from hypothesis import given

from harness.problems import c1_from_original, c1_reduced, c2_from_original
from harness.solvers import get_solver
from harness.strategies import instances

CF = get_solver("closed-form")


@given(instances(max_L=8, max_d=4, max_N=2, adapters=[("q",), ("q", "v"), ("q", "k", "v")]))
def test_c1_substitution_preserves_loss_and_q_gradients(inst):
    red = c1_from_original(inst)
    assert red.adapted == ("q",) and red.alpha == red.r
    a, b = CF.solve(inst), CF.solve(red)
    assert abs(a.loss - b.loss) <= 1e-10 * max(1.0, abs(a.loss))
    for k in ("dA_q", "dB_q"):
        np.testing.assert_allclose(b.grads[k], a.grads[k], atol=1e-10 * max(1.0, np.abs(a.grads[k]).max()))


@given(instances(max_L=8, max_d=4, max_N=1, adapters=[("q", "k"), ("q", "k", "v")]))
def test_c2_form_preserves_loss_and_qk_gradients(inst):
    red = c2_from_original(inst)
    s = inst.alpha / inst.r
    a, b = CF.solve(inst), CF.solve(red)
    assert abs(a.loss - b.loss) <= 1e-10 * max(1.0, abs(a.loss))
    for m in ("q", "k"):
        # B'_m = s B_m, alpha'/r' = 1: dL/dA_m equal, dL/dB'_m = dL/dB_m / s
        tol = 1e-10 * max(1.0, max(np.abs(g).max() for g in a.grads.values()))
        np.testing.assert_allclose(b.grads[f"dA_{m}"], a.grads[f"dA_{m}"], atol=tol)
        np.testing.assert_allclose(s * b.grads[f"dB_{m}"], a.grads[f"dB_{m}"], atol=tol)


def test_c1_reduced_closed_form_matches_lemma_3_2():
    """dL/dA_Q = B^T C1^T p C2 and dL/dB_Q = C1^T p C2 A^T (Hu et al. (arXiv:2406.03136) Lemma 3.2;
    docs/theory.md §3.1) directly."""
    rng = np.random.default_rng(0)
    L, d, r = 7, 4, 2
    C1, C2, C3, Y = (rng.normal(size=(L, d)) for _ in range(4))
    Ws, A, B = rng.normal(size=(d, d)) / 2, rng.normal(size=(r, d)), rng.normal(size=(d, r))
    inst = c1_reduced(C1, C2, C3, Y, Ws, A, B)
    S = C1 @ (Ws + B @ A) @ C2.T
    f = np.exp(S - S.max(1, keepdims=True))
    f /= f.sum(1, keepdims=True)
    c = f @ C3 - Y
    q = c @ C3.T
    p = f * q - (f * q).sum(1, keepdims=True) * f
    G = C1.T @ p @ C2
    res = get_solver("autograd").solve(inst)
    np.testing.assert_allclose(res.grads["dA_q"], B.T @ G, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.grads["dB_q"], G @ A.T, rtol=1e-10, atol=1e-12)
