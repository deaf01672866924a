"""Hypothesis strategies: they draw a few integers, a seed and a family's parameters, then call the
family (harness.families). They hold no tensor code of their own, so failing examples shrink to small
parameters and every example is reproducible from its seed.

    from hypothesis import given
    from harness.strategies import instances

    @given(instances(max_L=16))
    def test_my_solver(inst): ...
"""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

from harness import families
from harness.instance import ADAPTABLE

ADAPTER_SETS = [tuple(c) for k in (1, 2, 3) for c in itertools.combinations(ADAPTABLE, k)]


def _causal(draw, causal) -> dict:
    """{"causal": True} when causal is True (or drawn True when None), else {} (the families' default)."""
    return {"causal": True} if (draw(st.booleans()) if causal is None else causal) else {}


@st.composite
def instance_params(
    draw, max_L: int = 12, max_d: int = 6, max_N: int = 3, adapters=None, cross=None, scale=None, causal=False
):
    """Parameters for `families.gaussian`: lengths, dimension, rank, adapter subset, batch, seed.
    `causal`: False (default), True, or None to draw it."""
    d = draw(st.integers(1, max_d))
    return dict(
        **_causal(draw, causal),
        L=draw(st.integers(1, max_L)),
        Lk=draw(st.integers(1, max_L)),
        d=d,
        r=draw(st.integers(1, d)),
        adapt=draw(st.sampled_from(adapters or ADAPTER_SETS)),
        N=draw(st.integers(1, max_N)),
        cross=draw(st.booleans()) if cross is None else cross,
        scale=draw(st.sampled_from([0.3, 1.0, 2.0])) if scale is None else scale,
        alpha=draw(st.sampled_from([1.0, 2.0, 0.5])),
        beta=draw(st.sampled_from([None, 1.0, 0.3])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def instances(**kw):
    """General (cross-attention capable) random instances: `families.gaussian` on drawn parameters."""
    return instance_params(**kw).map(lambda p: families.gaussian(**p))


@st.composite
def bounded_params(
    draw, min_L: int = 2, max_L: int = 64, max_d: int = 4, max_gamma: float = 1.5, adapters=None, causal=False
):
    d = draw(st.integers(1, max_d))
    return dict(
        **_causal(draw, causal),
        L=draw(st.integers(min_L, max_L)),
        d=d,
        r=draw(st.integers(1, d)),
        gamma=draw(st.floats(0.1, max_gamma)),
        adapt=draw(st.sampled_from(adapters or ADAPTER_SETS)),
        N=draw(st.integers(1, 2)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def bounded_instances(**kw):
    """Instances of the `bounded` family (efficient regime for small gamma)."""
    return bounded_params(**kw).map(lambda p: families.bounded(**p))


# ------------------------------------------------------------------ the check suite's domains
def stress_instances(
    max_L: int = 8, max_d: int = 4, max_N: int = 2, cross: bool | None = None, causal: bool = False
):
    """Large-score instances: gaussian inputs with inverse temperature in {1, 30, 1e3}, or the
    `outliers` family with magnitude-50 outlier features. Exact, stable solvers must stay finite."""

    @st.composite
    def big_gaussian(draw):
        p = draw(instance_params(max_L=max_L, max_d=max_d, max_N=max_N, cross=cross, causal=causal))
        p["beta"] = draw(st.sampled_from([1.0, 30.0, 1e3]))
        p["scale"] = draw(st.sampled_from([1.0, 3.0]))
        return families.gaussian(**p)

    @st.composite
    def outlier(draw):
        d = draw(st.integers(1, max_d))
        return families.outliers(
            L=draw(st.integers(2, 4 * max_L)),
            d=d,
            r=draw(st.integers(1, d)),
            gamma=draw(st.sampled_from([1.0, 3.0])),
            n_outliers=2,
            magnitude=50.0,
            beta=1.0,
            seed=draw(st.integers(0, 2**32 - 1)),
            adapt=draw(st.sampled_from([("q",), ("q", "v"), ("q", "k", "v")])),
            causal=causal,
        )

    return st.one_of(big_gaussian(), outlier())


def accuracy_instances(
    exact: bool,
    max_L: int = 8,
    max_d: int = 4,
    max_N: int = 2,
    cross: bool | None = None,
    causal: bool = False,
):
    """The claim's domain: general instances plus the bounded family for exact solvers; the
    bounded-entry regime only for approximate ones (`families.bounded`, gamma <= 1.5, beta = 1/d, so
    R = ||beta S||_inf <= 2.25), where the almost-linear claims live."""
    bounded = bounded_instances(max_L=max(4 * max_L, 2), max_d=max_d, causal=causal)
    if not exact:
        return bounded
    return st.one_of(instances(max_L=max_L, max_d=max_d, max_N=max_N, cross=cross, causal=causal), bounded)


@st.composite
def adversarial_params(draw, max_L: int = 12, max_d: int = 5, max_N: int = 3, dtypes=("float64", "float32")):
    """Parameters for `families.adversarial`: the corner cases of floating-point certificates
    (mixed row norms, an outlier token, near-collinear keys, rank-deficient / unbalanced / badly
    scaled W, d = 1, N > 1, Lq != Lk, a constant V column, negative or zero beta). Every draw
    shrinks towards the plain case (no trait, d = 1, L = 1)."""
    d = draw(st.integers(1, max_d))
    cross = draw(st.booleans())
    return dict(
        L=draw(st.integers(1, max_L)),
        Lk=draw(st.integers(1, max_L)) if cross else None,
        d=d,
        r=draw(st.integers(1, d)),
        N=draw(st.integers(1, max_N)),
        adapt=draw(st.sampled_from(ADAPTER_SETS)),
        gamma=draw(st.sampled_from([0.1, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0])),
        beta=draw(st.sampled_from([None, 1.0, -0.7, 0.0, 0.3])),
        spread=draw(st.sampled_from([0.0, 1.0, 3.0, 6.0])),
        outlier=draw(st.sampled_from([0.0, 10.0, 100.0])),
        collinear=draw(st.sampled_from([0.0, 3.0, 8.0])),
        w_mode=draw(st.sampled_from(list(families.W_MODES))),
        w_scale=draw(st.sampled_from([10.0, 1e3, 1e6, 1e12])),
        const_v=draw(st.booleans()),
        dtype=draw(st.sampled_from(list(dtypes))),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def adversarial_instances(**kw):
    """Instances of `families.adversarial` (see `adversarial_params`)."""
    return adversarial_params(**kw).map(lambda p: families.adversarial(**p))
