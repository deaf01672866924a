"""Seeded SAT sources for the chain (docs/theory.md §6.6).

* `planted(k, v, seed, density)`: random k-CNF at the threshold density alpha_k that keeps a hidden
  model (every clause falsified by it is rejected and redrawn): always SAT.
* `unsat(k, v, seed, density)`: random k-CNF above the threshold, redrawn with the next seed until
  python-sat confirms UNSAT.
* CNFgen families on networkx graphs: `tseitin` (random regular graph, odd total charge: UNSAT),
  `pigeonhole` (p pigeons, h holes: UNSAT iff p > h), `coloring` (G(n, p) graph, k colours).
* `k_ladder(v, seed)`: planted formulas at k = 3, 4, 5 (m ~ alpha_k v grows with k).
* DIMACS: `read_dimacs` / `parse_dimacs` (bad input -> HarnessError naming the line), `dimacs_text`,
  `write_dimacs` (atomic).

Everything is a function of its arguments: the same call gives the same clauses.
"""

from __future__ import annotations

import os

import numpy as np

from harness.errors import HarnessError
from harness.fsio import check_readable
from harness.io import atomic_write_text
from harness.memguard import MemoryLimit
from reductions.problems.cnf import CNF
from reductions.sizes import (
    chain_memory,
    clause_count,
    clause_memory,
    count,
    default_density,
    predicted_size,
)


def _check_kv(k: int, v: int) -> None:
    if k < 1:
        raise HarnessError(f"clause width k must be >= 1, got {k}")
    if v < k:
        raise HarnessError(f"need at least k={k} variables, got v={v}")


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise HarnessError(f"seed must be an integer >= 0, got {seed!r}")


def _random_clause(rng: np.random.Generator, k: int, v: int) -> np.ndarray:
    vars_ = rng.choice(v, size=k, replace=False) + 1
    signs = rng.integers(0, 2, size=k) * 2 - 1
    return vars_ * signs


def planted(k: int, v: int, seed: int = 0, density: float | None = None) -> CNF:
    """Planted random k-CNF: m = round(density v) clauses of k distinct variables, each satisfied by
    a hidden uniform assignment (docs/theory.md §6.6)."""
    _check_kv(k, v)
    _check_seed(seed)
    m = clause_count(k, v, density)
    MemoryLimit.resolve(None).check(
        clause_memory(k, m), f"a planted formula with {count(m)} clauses of width {k}"
    )
    density = default_density(k) if density is None else float(density)
    rng = np.random.default_rng([seed, k, v, 1])
    hidden = rng.integers(0, 2, size=v).astype(bool)
    clauses = []
    while len(clauses) < m:
        c = _random_clause(rng, k, v)
        if any((x > 0) == hidden[abs(x) - 1] for x in c):
            clauses.append(tuple(int(x) for x in c))
    meta = {
        "family": "planted",
        "k": k,
        "seed": seed,
        "density": density,
        "hidden": "".join("1" if b else "0" for b in hidden),
    }
    return CNF.of(v, clauses, meta)


def random_kcnf(k: int, v: int, m: int, seed: int = 0) -> CNF:
    """Uniform random k-CNF with m clauses over k distinct variables each."""
    _check_kv(k, v)
    rng = np.random.default_rng([seed, k, v, m, 2])
    clauses = [tuple(int(x) for x in _random_clause(rng, k, v)) for _ in range(m)]
    return CNF.of(v, clauses, {"family": "random", "k": k, "seed": seed})


def unsat(k: int, v: int, seed: int = 0, density: float | None = None, max_tries: int = 200) -> CNF:
    """Random k-CNF above the threshold, redrawn (seed, seed+1, ...) until python-sat says UNSAT."""
    _check_kv(k, v)
    _check_seed(seed)
    m = clause_count(k, v, density, unsat=True)
    MemoryLimit.resolve(None).check(
        clause_memory(k, m), f"an unsat formula with {count(m)} clauses of width {k}"
    )
    density = default_density(k, unsat=True) if density is None else float(density)
    for t in range(max_tries):
        f = random_kcnf(k, v, m, seed + t)
        if f.solve() is None:
            meta = dict(f.meta, family="unsat", density=density, seed=seed, draw=t, verified="python-sat")
            return CNF.of(v, f.clauses, meta)
    raise HarnessError(f"no UNSAT random {k}-CNF with v={v}, m={m} in {max_tries} draws; raise the density")


def _from_cnfgen(F, meta: dict) -> CNF:
    return CNF.of(F.number_of_variables(), [tuple(c) for c in F.clauses()], meta)


def tseitin(n: int = 8, degree: int = 3, seed: int = 0) -> CNF:
    """Tseitin formula on a random `degree`-regular graph with n vertices and odd total charge
    (vertex 0 charged): UNSAT (cnfgen.TseitinFormula on networkx.random_regular_graph)."""
    import cnfgen
    import networkx as nx

    if n * degree % 2:
        raise HarnessError(f"a {degree}-regular graph needs n*degree even, got n={n}")
    G = nx.random_regular_graph(degree, n, seed=seed)
    charges = [1] + [0] * (n - 1)
    return _from_cnfgen(
        cnfgen.TseitinFormula(G, charges=charges),
        {"family": "tseitin", "n": n, "degree": degree, "seed": seed},
    )


def pigeonhole(pigeons: int = 4, holes: int = 3) -> CNF:
    """Pigeonhole principle PHP(pigeons, holes): UNSAT iff pigeons > holes."""
    import cnfgen

    return _from_cnfgen(
        cnfgen.PigeonholePrinciple(pigeons, holes),
        {"family": "pigeonhole", "pigeons": pigeons, "holes": holes},
    )


def coloring(n: int = 6, p: float = 0.5, colours: int = 3, seed: int = 0) -> CNF:
    """k-colourability of a G(n, p) random graph (cnfgen.GraphColoringFormula)."""
    import cnfgen
    import networkx as nx

    G = nx.gnp_random_graph(n, p, seed=seed)
    return _from_cnfgen(
        cnfgen.GraphColoringFormula(G, colours),
        {"family": "coloring", "n": n, "p": p, "colours": colours, "seed": seed},
    )


def k_ladder(v: int, seed: int = 0, ks=(3, 4, 5)) -> list[CNF]:
    """Planted k-CNF for k = 3, 4, 5 (docs/theory.md §6.1: the SETH-flavoured ladder; d grows with k)."""
    return [planted(k, v, seed) for k in ks]


# ------------------------------------------------------------------ DIMACS
def parse_dimacs(text: str, name: str = "<dimacs>") -> CNF:
    """Parse DIMACS CNF. Comments `c`, header `p cnf V M`, clauses ended by 0 (may span lines).
    Bad input raises HarnessError naming the line."""
    nvars = ncl = None
    clauses: list[tuple[int, ...]] = []
    cur: list[int] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("c"):
            continue
        if line.startswith("%"):
            break
        if line.startswith("p"):
            parts = line.split()
            if nvars is not None:
                raise HarnessError(f"{name}:{lineno}: second 'p' header")
            if len(parts) != 4 or parts[1] != "cnf":
                raise HarnessError(f"{name}:{lineno}: bad header {line!r}; expected 'p cnf VARS CLAUSES'")
            try:
                nvars, ncl = int(parts[2]), int(parts[3])
            except ValueError:
                raise HarnessError(f"{name}:{lineno}: bad header {line!r}; counts must be integers") from None
            if nvars < 0 or ncl < 0:
                raise HarnessError(f"{name}:{lineno}: negative count in header {line!r}")
            continue
        if nvars is None:
            raise HarnessError(f"{name}:{lineno}: clause before the 'p cnf' header")
        for tok in line.split():
            try:
                x = int(tok)
            except ValueError:
                raise HarnessError(f"{name}:{lineno}: {tok!r} is not an integer literal") from None
            if x == 0:
                clauses.append(tuple(cur))
                cur = []
            elif abs(x) > nvars:
                raise HarnessError(f"{name}:{lineno}: literal {x} exceeds the {nvars} declared variables")
            else:
                cur.append(x)
    if nvars is None:
        raise HarnessError(f"{name}: no 'p cnf' header")
    if cur:
        clauses.append(tuple(cur))  # tolerate a missing final 0
    if len(clauses) != ncl:
        raise HarnessError(f"{name}: header declares {ncl} clauses but {len(clauses)} were read")
    return CNF.of(nvars, clauses, {"file": os.path.basename(name)})


def read_dimacs(path: str | os.PathLike, max_memory=None) -> CNF:
    """Read a DIMACS file: a regular file (a folder, FIFO or device is refused before it is opened;
    a FIFO would block), UTF-8 text; parsing costs about 40 bytes per byte of text (ints in
    tuples), checked against the memory limit first."""
    p = check_readable(path, "formula")
    MemoryLimit.resolve(max_memory).check(40 * p.stat().st_size, f"parsing {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise HarnessError(f"{p}: not a text (DIMACS) file") from None
    except OSError as exc:
        raise HarnessError(f"cannot read formula file {p}: {exc.strerror or exc}") from None
    return parse_dimacs(text, str(p))


def dimacs_text(cnf: CNF, comments: list[str] | None = None) -> str:
    lines = [f"c {c}" for c in (comments or [])]
    lines.append(f"p cnf {cnf.nvars} {cnf.m}")
    lines += [" ".join(str(x) for x in c) + (" 0" if c else "0") for c in cnf.clauses]
    return "\n".join(lines) + "\n"


def write_dimacs(cnf: CNF, path: str | os.PathLike, comments: list[str] | None = None) -> None:
    atomic_write_text(path, dimacs_text(cnf, comments))


KINDS = ("planted", "unsat", "tseitin", "pigeonhole", "coloring")


def from_kind(kind: str, k: int, v: int, seed: int = 0, max_memory=None):
    """A formula by kind name (`generate sat-chain --kind`): planted / unsat random k-CNF over v
    variables, or a CNFgen family whose size parameter is v. The size is checked before anything is
    built: the family's valid range, the clauses' memory, and the chain's 2^ceil(v/2) vectors (a
    v = 3540 pigeonhole formula would otherwise go to CDCL first, and never come back)."""
    _check_seed(seed)
    if kind in ("planted", "unsat"):
        _check_kv(k, v)
    elif kind == "tseitin" and (v < 4 or v % 2):
        raise HarnessError(f"tseitin needs an even number of graph vertices >= 4 (--vars), got {v}")
    elif kind == "pigeonhole" and v < 2:
        raise HarnessError(f"pigeonhole needs at least 2 pigeons (--vars; holes = pigeons - 1), got {v}")
    elif kind == "coloring" and v < 1:
        raise HarnessError(f"coloring needs at least 1 graph vertex (--vars), got {v}")
    nv, m = predicted_size(kind, k, v)
    limit = MemoryLimit.resolve(max_memory)
    limit.check(clause_memory(k, m), f"a {kind} formula with {count(m)} clauses of width {k}")
    limit.check(
        chain_memory(nv, m), f"the SETH chain of a formula with v={nv} (N = 2^{(nv + 1) // 2} OV vectors)"
    )
    if kind == "planted":
        return planted(k, v, seed)
    if kind == "unsat":
        return unsat(k, v, seed)
    if kind == "tseitin":  # --vars = number of graph vertices (3-regular: 1.5 x vars variables)
        return tseitin(v, 3, seed)
    if kind == "pigeonhole":  # --vars = pigeons, holes = pigeons - 1
        return pigeonhole(v, v - 1)
    if kind == "coloring":  # --vars = vertices of G(n, 1/2), 3 colours
        return coloring(v, 0.5, 3, seed)
    raise HarnessError(f"unknown kind {kind!r}")
