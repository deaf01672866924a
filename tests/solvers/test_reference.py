"""ReferenceCache: one float64 reference per instance, oldest dropped beyond maxsize, seeded results kept."""

from harness import families
from harness.solvers.reference import ReferenceCache


def test_cache_hits_evicts_and_accepts_seeded_results():
    refs = ReferenceCache("closed-form", maxsize=2)
    a, b, c = (families.bounded(L=8, d=2, r=1, seed=s) for s in range(3))
    first = refs(a)
    assert refs(a) is first and len(refs) == 1
    refs(b), refs(c)
    assert len(refs) == 2 and refs(a) is not first  # a was evicted, then recomputed
    seeded = refs.solver.solve(b)
    fresh = ReferenceCache("closed-form")
    fresh.add(b, seeded)
    assert fresh(b) is seeded
