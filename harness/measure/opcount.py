"""Deterministic operation counts. Solvers tally their work here as they run, so CI can gate on
counts (and exponents fitted on counts) instead of wall time (docs/ci.md, "What is gated").

Convention (FlashAttention's): a (m x k) @ (k x n) product costs 2 m k n flops; an elementwise op
costs one flop per entry and per operation (exp counts as one).
"""

from __future__ import annotations


class OpCounter:
    """Tally of floating-point operations."""

    def __init__(self) -> None:
        self.flops = 0
        self.gemm = 0  # the part of `flops` in products

    def mm(self, m: int, k: int, n: int, batch: int = 1) -> None:
        """Account for `batch` products of (m x k) by (k x n)."""
        f = 2 * int(batch) * int(m) * int(k) * int(n)
        self.flops += f
        self.gemm += f

    def ew(self, entries: int, ops: int = 1) -> None:
        """Account for `ops` elementwise operations over `entries` entries."""
        self.flops += int(entries) * int(ops)

    def __int__(self) -> int:
        return self.flops
