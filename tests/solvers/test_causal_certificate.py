"""poly's a posteriori certificate on causal instances (issue 16 on issue 14's design): measured
max-norm error <= certified bound whenever the certificate is valid, against the masked
high-precision references (harness.highprec, causal softmax over keys m <= j), on the adversarial
generator with the mask on and on instances built from a few drawn integers (cross-attention
shapes, N > 1, large scores, early rows that see one or two keys)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness import families
from harness.checks.profiles import examples
from harness.instance import Instance
from harness.solvers import get_solver
from harness.strategies import adversarial_params
from tests.causal_helpers import masked_reference, max_err
from tests.certificate_helpers import check_promise

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_opts = st.one_of(
    st.builds(dict, degree=st.integers(1, 14)),
    st.builds(dict, eps=st.sampled_from([1e-3, 1e-6, 1e-9])),
    st.just({}),
)


def _check_promise(inst: Instance, dtype: str, opts: dict, kind: str = "mpmath"):
    assert inst.causal
    out = check_promise(inst, "poly", dtype, opts, kind)
    if out is not None:
        assert out[0]["causal"]
    return out


@example(p=dict(L=8, d=2, r=1, seed=5, gamma=5.0, beta=1.0), dtype="float64", opts={"degree": 40})
@example(p=dict(L=6, d=1, r=1, seed=3, Lk=1, const_v=True), dtype="float64", opts={"degree": 4})
@example(p=dict(L=3, d=3, r=2, seed=4, Lk=9, N=2), dtype="float32", opts={"degree": 7})
@settings(max_examples=examples(30), **_common)
@given(
    p=adversarial_params(max_L=8, max_d=4, max_N=2), dtype=st.sampled_from(["float64", "float32"]), opts=_opts
)
def test_causal_certificate_is_a_promise_on_the_adversarial_generator(p, dtype, opts):
    _check_promise(families.adversarial(**p).replace(causal=True), dtype, opts)


@pytest.mark.slow
@settings(max_examples=1500, **_common)
@given(
    p=adversarial_params(max_L=14, max_d=5, max_N=3),
    dtype=st.sampled_from(["float64", "float32"]),
    opts=_opts,
)
def test_causal_certificate_is_a_promise_nightly(p, dtype, opts):
    _check_promise(families.adversarial(**p).replace(causal=True), dtype, opts)


def _drawn(Lq: int, Lk: int, d: int, N: int, scale: float, seed: int) -> Instance:
    """An instance built from a few integers: Gaussian inputs and weights (numpy), scores up to
    about scale^2 d, a LoRA adapter on q and v, causal."""
    rng = np.random.default_rng(seed)
    a = {
        "X_q": rng.normal(size=(N, Lq, d)) * scale,
        "X_k": rng.normal(size=(N, Lk, d)) * scale,
        "X_v": rng.normal(size=(N, Lk, d)),
        "Y": rng.normal(size=(N, Lq, d)),
    }
    for m in "qkv":
        a[f"W_{m}"] = rng.normal(size=(d, d)) / math.sqrt(d)
    for m in "qv":
        a[f"A_{m}"], a[f"B_{m}"] = rng.normal(size=(1, d)), rng.normal(size=(d, 1))
    return Instance.from_arrays(a, alpha=1.0, beta=1.0, causal=True)


@example(Lq=40, Lk=3, d=2, N=1, scale=3, seed=0, eps=None)  # many rows, few keys
@example(Lq=3, Lk=40, d=2, N=2, scale=1, seed=1, eps=1e-9)  # keys m >= Lq are never seen
@settings(max_examples=examples(20), **_common)
@given(
    Lq=st.integers(1, 48),
    Lk=st.integers(1, 48),
    d=st.integers(1, 4),
    N=st.integers(1, 3),
    scale=st.sampled_from([0.3, 1, 2, 3]),
    seed=st.integers(0, 2**32 - 1),
    eps=st.sampled_from([None, 1e-6, 1e-9]),
)
def test_causal_certificate_holds_on_drawn_instances(Lq, Lk, d, N, scale, seed, eps):
    inst = _drawn(Lq, Lk, d, N, scale, seed)
    _check_promise(inst, "float64", {} if eps is None else {"eps": eps}, kind="longdouble")


def test_causal_certificate_is_tight_enough_to_serve_and_looser_than_nothing():
    """On a bounded instance the causal certificate serves eps = 1e-6 at a small degree, holds
    against the masked reference, and the measured error is within 10^4 of it."""
    inst = families.bounded(L=256, d=4, r=2, seed=0, adapt=("q", "k", "v"), causal=True, cross=True, N=2)
    res = get_solver("poly").solve(inst, eps=1e-6)
    c = res.certificate
    err, _ = max_err(res.grads, masked_reference(inst)[0])
    assert c["valid"] and c["meets_eps"] and c["degree"] <= 8
    assert err <= c["error_bound"] and c["error_bound"] <= 1e4 * max(err, 1e-15)


@settings(max_examples=examples(15), **_common)
@given(
    Lq=st.integers(1, 70),
    Lk=st.integers(1, 70),
    d=st.integers(1, 4),
    N=st.integers(1, 2),
    g=st.integers(1, 7),
    chunk=st.sampled_from([None, 16]),
    seed=st.integers(0, 2**16),
)
def test_causal_signed_value_error_equals_dense_masked_sum(Lq, Lk, d, N, g, chunk, seed):
    """The causal kernel's signed first-order value error F_v = sum_m X_v,m (x) sum_(j >= m)
    [P_g(x_jm) h_j - x_jm^(g+1)/(g+1)! c_j/D_j] (h_j from the run's rows) equals the same masked
    sum formed densely, at any shape, chunk and degree (the certificate uses it signed)."""
    import torch

    from harness.solvers.poly.causal import causal_poly_gradients
    from harness.solvers.poly.fused import preprocess
    from harness.solvers.poly.naive import taylor_poly

    rng = np.random.default_rng(seed)
    arr = {
        "X_q": rng.normal(size=(N, Lq, d)) * 0.5,
        "X_k": rng.normal(size=(N, Lk, d)) * 0.5,
        "X_v": rng.normal(size=(N, Lk, d)),
        "Y": rng.normal(size=(N, Lq, d)),
    }
    for m in "qkv":
        arr[f"W_{m}"] = np.eye(d) + 0.1 * rng.normal(size=(d, d))
    arr.update({"A_v": rng.normal(size=(1, d)) * 0.1, "B_v": rng.normal(size=(d, 1)) * 0.1})
    inst = Instance.from_arrays(arr, alpha=1.0, beta=1.0 / math.sqrt(d)).replace(causal=True)
    t = inst.as_torch()
    _, _, info = causal_poly_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g, chunk=chunk)
    r = {n: v.numpy() for n, v in info["rows"].items()}
    D, Oc, c, sT, tV = r["D"], r["Oc"], r["c"], r["sT"], r["tV"]
    hh = (-sT * c + (tV - sT * Oc) / N) / (D * D)
    P = preprocess(t, inst.alpha, inst.beta, inst.r)
    x = P["q"] @ P["Kc"].transpose(-1, -2)  # (N, Lq, Lk)
    keep = torch.ones(Lq, Lk, dtype=torch.bool).tril()
    A = taylor_poly(x, g).masked_fill(~keep, 0.0).numpy()
    top = (x.pow(g + 1) / math.factorial(g + 1)).masked_fill(~keep, 0.0).numpy()
    f1 = np.swapaxes(A, 1, 2) @ hh - np.swapaxes(top, 1, 2) @ (c / D)  # (N, Lk, d)
    dense = np.einsum("nma,nmb->ab", arr["X_v"], f1)
    got = info["Fv"].numpy()
    assert np.allclose(got, dense, rtol=1e-9, atol=1e-12 * max(1.0, float(np.abs(dense).max()))), (got, dense)
