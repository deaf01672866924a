"""Sizes and memory of the SETH chain before anything is built (the memory guard's estimates,
harness.memguard): a formula's clause count from its generator's parameters, the bytes of its
clauses, and the peak bytes of the chain's instances (N = 2^ceil(v/2) OV vectors, 2N tokens).
Integer arithmetic throughout: v = 200 gives numbers of 2^100 scale, not an overflow."""

from __future__ import annotations

from harness.errors import HarnessError

# satisfiability thresholds alpha_k (docs/theory.md §6.1)
THRESHOLD = {3: 4.26, 4: 9.93, 5: 21.12, 6: 43.37, 7: 87.79}
# densities used for UNSAT draws (comfortably above the threshold)
UNSAT_DENSITY = {3: 5.4, 4: 12.0, 5: 25.0, 6: 50.0, 7: 100.0}


def count(n: int) -> str:
    """A count for a message: 1234567, or ~10^303 when it has more than 15 digits."""
    t = str(n)
    return t if len(t) <= 15 else f"~10^{len(t) - 1}"


def default_density(k: int, unsat: bool = False) -> float:
    """The table's density, else 0.69 2^k (planted) / 2^k (unsat); only for k < 1000 (a float)."""
    table = UNSAT_DENSITY if unsat else THRESHOLD
    return table.get(k, 2.0**k if unsat else 2.0**k * 0.69)


def clause_count(k: int, v: int, density: float | None = None, unsat: bool = False) -> int:
    """m = round(density v); the default density of wide clauses (0.69 2^k) overflows a float from
    k ~ 1024, so beyond k = 1000 it is computed in integers."""
    if density is None and k >= 1000:
        return (v << k) if unsat else (69 * v * (1 << k) + 50) // 100
    d = default_density(k, unsat) if density is None else float(density)
    return int(round(d * v))


def clause_memory(k: int, m: int) -> int:
    """Bytes of m clauses of k literals as Python tuples of ints, plus their DIMACS text."""
    return m * (72 + 48 * k)


def chain_memory(v: int, m: int, as23: bool = True) -> int:
    """Upper bound on the peak bytes of the SETH chain of a v-variable, m-clause formula: the
    sat-chain bundle (`as23=False`: one route, as `solve-sat` builds it). The P1/G1/LoRA instances
    have 2N tokens and d ~ m; the AS23 instance (N <= 256) has d = 12m with dense d x d weights.
    Fitted to tracemalloc peaks of 15 bundles (k = 3..7, v = 8..22; measured/fit at most 1.36),
    taken 1.5x: 886 N(m+1) + 53 (12m)^2 [AS23] + 856 (m+3)^2 + 1.5 MB (k = 7, v = 12: 9 GB)."""
    N = 1 << ((v + 1) // 2)
    fit = 886 * N * (m + 1) + 856 * (m + 3) ** 2 + 1_500_000
    if as23 and N <= 256:
        fit += 53 * (12 * m) ** 2
    return fit * 3 // 2


def predicted_size(kind: str, k: int, n: int) -> tuple[int, int]:
    """(variables, clauses) of `from_kind(kind, k, n)` before it is built (clauses: exact for the
    random kinds, a lower bound of 1 for the CNFgen families)."""
    if kind == "planted":
        return n, clause_count(k, n)
    if kind == "unsat":
        return n, clause_count(k, n, unsat=True)
    if kind == "tseitin":  # 3-regular graph on n vertices: 3n/2 edges, one variable each
        return 3 * n // 2, 1
    if kind == "pigeonhole":  # n pigeons, n - 1 holes
        return n * (n - 1), 1
    if kind == "coloring":  # 3 colours per vertex
        return 3 * n, 1
    raise HarnessError(f"unknown kind {kind!r}; choose planted, unsat, tseitin, pigeonhole, coloring")
