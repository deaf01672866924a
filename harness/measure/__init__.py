"""Measurement: timing, peak memory, deterministic operation counts, thread limits, and fits.

* `timing`    `time_call` (warm-up, repeats, median, CUDA events) and `time_interleaved`
* `memory`    `peak_memory` (RSS high-water mark / CUDA allocator), `peak_rss_mib`
* `opcount`   `OpCounter`, the deterministic flop tally solvers keep
* `memtrack`  `LargestTensor`: the largest tensor any torch op produced (no L x L allocation checks)
* `solver`    `measure_solver`: all of the above for one solver on one instance
* `fit`       exponents with bootstrap CIs, segmented fits, crossovers (numpy only)

The names below load lazily, so `harness.measure.fit` does not import torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "time_call": "harness.measure.timing",
    "time_interleaved": "harness.measure.timing",
    "peak_memory": "harness.measure.memory",
    "peak_rss_mib": "harness.measure.memory",
    "measure_solver": "harness.measure.solver",
    "OpCounter": "harness.measure.opcount",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
