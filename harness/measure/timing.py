"""Timing (docs/study.md): a timer with warm-up, repeats, median and spread.

`time_call(fn, ...)`: warm-up calls (not recorded), then `repeats` timed calls. On CUDA each call is
timed with CUDA events and the device is synchronised only around the timed region (once before the
start event, once after the end event); on CPU `time.perf_counter` (or the process CPU clock).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from harness.errors import HarnessError


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = ("wall", "process")


def time_call(
    fn: Callable[[], Any],
    *,
    warmup: int = 1,
    repeats: int = 3,
    device: Any = None,
    budget_s: float | None = None,
    clock: str = "wall",
) -> dict[str, Any]:
    """Time `fn()`: `warmup` unrecorded calls, then up to `repeats` timed calls (at least one; stop
    early once `budget_s` seconds of timed calls have been spent). Returns seconds:
    {"median", "min", "max", "spread" (max - min) / median, "times", "wall_times", "warmup", "repeats",
    "timer", "last" (fn's last return value)}.

    On CPU, `clock="process"` makes "times" the CPU time of this process (`time.process_time`) instead
    of wall time: with one torch thread that is the work done, unaffected by other processes taking the
    cores (on a shared, oversubscribed machine wall time inflates long calls more than short ones and
    biases exponents upward). "wall_times" are always kept. On CUDA the clock is CUDA events."""
    if clock not in CLOCKS:
        raise HarnessError(f"unknown clock {clock!r}; choose from {', '.join(CLOCKS)}")
    if repeats < 1 or warmup < 0:
        raise HarnessError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    dev = torch.device(device) if device is not None else None
    cuda = dev is not None and dev.type == "cuda"
    out = None
    for _ in range(warmup):
        out = fn()
    _sync(dev)
    times: list[float] = []
    walls: list[float] = []
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(dev)
            start.record()
            out = fn()
            end.record()
            torch.cuda.synchronize(dev)
            times.append(start.elapsed_time(end) / 1e3)
            walls.append(times[-1])
        else:
            c0, t0 = time.process_time(), time.perf_counter()
            out = fn()
            t1, c1 = time.perf_counter(), time.process_time()
            walls.append(t1 - t0)
            times.append(c1 - c0 if clock == "process" else t1 - t0)
        if budget_s is not None and sum(walls) >= budget_s:
            break
    med = statistics.median(times)
    return {
        "median": med,
        "min": min(times),
        "max": max(times),
        "spread": (max(times) - min(times)) / med if med > 0 else 0.0,
        "times": times,
        "wall_times": walls,
        "warmup": warmup,
        "repeats": len(times),
        "timer": "cuda-events" if cuda else ("process_time" if clock == "process" else "perf_counter"),
        "last": out,
    }


def time_interleaved(
    fns: Sequence[Callable[[], Any]],
    *,
    rounds: int,
    budget_s: float | None = None,
    device: Any = None,
    clock: str = "wall",
) -> list[list[float]]:
    """Round-robin timing of several calls: each round times every fn once (A B C A B C ...), with
    `time_call`, so a slow drift of a shared machine hits every fn alike. Returns one list of seconds
    per fn. Stops after `rounds` rounds, or after the first round that brings the wall time spent to
    `budget_s`; at least one round when `rounds` >= 1."""
    samples: list[list[float]] = [[] for _ in fns]
    spent = 0.0
    for _ in range(rounds):
        for fn, out in zip(fns, samples):
            t = time_call(fn, warmup=0, repeats=1, device=device, clock=clock)
            out.append(t["times"][0])
            spent += t["wall_times"][0]
        if budget_s is not None and spent > budget_s:
            break
    return samples
