"""`limit_threads(n)`: torch's intra-op threads (and, with `blas=True`, numpy's BLAS threads via
threadpoolctl) set to n for the duration of a `with` block and restored afterwards. n = None leaves
everything as it is. One helper for every place that pins threads: timing (work, not parallelism),
the check suite, the study, the CLI's --threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from harness.errors import HarnessError


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
