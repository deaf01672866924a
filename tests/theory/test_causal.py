"""R over the unmasked scores and the certificate's per-row prefix terms on causal instances (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest

from harness import families, theory


def test_causal_score_range_is_over_the_unmasked_entries():
    for seed, (L, Lk) in enumerate(((50, 50), (70, 20), (20, 70), (400, 400))):
        inst = families.gaussian(L=L, Lk=Lk, d=3, seed=seed, causal=True)
        Q, K, _ = theory.projections(inst)
        S = np.abs(inst.beta * np.einsum("nja,nma->njm", Q, K))
        S = np.where(np.tril(np.ones(S.shape[1:], bool)), S, 0.0)
        assert theory.score_range(inst) == pytest.approx(S.max(), rel=1e-12)
        rows = theory.row_score_bounds(inst)
        assert np.all(rows >= S.max(-1) * (1 - 1e-12))
        assert theory.score_range(inst) <= theory.score_range(inst.replace(causal=False))


def test_causal_bound_terms_are_tighter_than_the_unmasked_ones():
    inst = families.bounded(L=64, d=3, r=1, seed=1, adapt=("q", "k", "v"), causal=True)
    for g in (3, 5):
        c = theory.certify(inst, degree=g)["error_bound"]
        u = theory.certify(inst.replace(causal=False), degree=g)["error_bound"]
        assert 0 < c <= u
