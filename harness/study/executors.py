"""Executors run the cells: any object with `.map(fn, iterable)` (in-process by default; a
`concurrent.futures` executor works, as `run_cell` is a module-level function of picklable args)."""

from __future__ import annotations

from collections.abc import Callable, Iterable


class InProcessExecutor:
    """The default executor: runs cells one after another in this process."""

    def map(self, fn: Callable, iterable: Iterable) -> Iterable:
        return map(fn, iterable)
