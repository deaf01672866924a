"""`limit_threads(n)`: torch's intra-op threads (and, with `blas=True`, numpy's BLAS threads via
threadpoolctl) set to n for the duration of a `with` block and restored afterwards. n = None leaves
everything as it is. One helper for every place that pins threads: timing (work, not parallelism),
the check suite, the study, the CLI's --threads.

`blas_like_torch()`: numpy's BLAS threads capped at torch's intra-op thread count for a `with` block
(every `Solver.solve` runs in one; a lower BLAS limit the caller set is kept). A solver's numpy work
(poly's certificate: products with an inner dimension of d over L rows) then uses at most the
threads the caller gave torch; left to OpenBLAS's default, those products switched to its thread
pool from L = 2^16 and, with the other core busy, took 40-85 ms each instead of 1-4 ms (measured on
the 2-core CI machine)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from harness.errors import HarnessError

_BLAS: dict = {}  # the threadpoolctl controller of the loaded BLAS libraries, by len(sys.modules)


@contextlib.contextmanager
def limit_threads(n: int | None, *, blas: bool = False) -> Iterator[None]:
    if n is None:
        yield
        return
    if int(n) < 1:
        raise HarnessError(f"--threads must be >= 1, got {n}")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    limits = None
    try:
        if blas:
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(limits=int(n))
        yield
    finally:
        torch.set_num_threads(before)
        if limits is not None:
            limits.restore_original_limits()


def _blas_controller():
    """The BLAS libraries loaded now. Listing them costs ~0.6 ms, so the list is kept until a module
    is imported (a BLAS library only arrives with one: scipy's, say, after the first exact score range)."""
    n = len(sys.modules)
    if n not in _BLAS:
        import numpy  # noqa: F401 (its BLAS must be loaded before the controller looks)
        from threadpoolctl import ThreadpoolController

        _BLAS.clear()
        _BLAS[len(sys.modules)] = ThreadpoolController().select(user_api="blas")
    return _BLAS[len(sys.modules)]


@contextlib.contextmanager
def blas_like_torch() -> Iterator[None]:
    """numpy's BLAS threads at most torch.get_num_threads() inside the block (a caller's own lower
    BLAS limit is kept), restored afterwards (~20 us)."""
    import torch

    ctl = _blas_controller()
    now = [lc.num_threads for lc in ctl.lib_controllers]
    n = min([torch.get_num_threads()] + now)
    with ctl.limit(limits=n):
        yield
