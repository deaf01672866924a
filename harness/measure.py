"""Measurement for the scaling study (ANCHORS.md "Empirical exponent fitting"): a timer with warm-up,
repeats, median and spread; peak memory; deterministic operation counts.

* `time_call(fn, ...)`: warm-up calls (not recorded), then `repeats` timed calls. On CUDA each call is
  timed with CUDA events and the device is synchronised only around the timed region (once before
  the start event, once after the end event); on CPU `time.perf_counter`.
* `peak_memory(fn, device)`: extra memory at the peak of one call. CUDA: `torch.cuda.max_memory_allocated`
  after `reset_peak_memory_stats` minus the allocation before. CPU: torch's CPU allocations bypass
  Python's allocator (invisible to tracemalloc), so we read the kernel's resident-set high-water mark:
  reset it to the current RSS by writing "5" to /proc/self/clear_refs (Linux >= 4.0), call, and take
  VmHWM - VmRSS(before). Free heap memory is handed back first (glibc `malloc_trim(0)`): without
  that, a call reusing memory the allocator kept from an earlier call read as 0 bytes (measured:
  streaming at L = 8192 gave 0 MiB, with the trim 196-212 MiB; closed-form 1024 MiB either way,
  its L x L buffers are fresh mmaps). Where clear_refs is not writable we fall back to the ru_maxrss delta, which
  is only a lower bound (zero unless the call raises the process's lifetime peak); the method used
  is returned with the number.
* `measure_solver(solver, inst, ...)`: the above for one solver on one instance, plus `Result.ops`
  (deterministic flop count, `harness.opcount`).
"""
from __future__ import annotations

import re
import resource
import statistics
import time
from typing import Any, Callable

import torch

from harness.errors import HarnessError


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = ("wall", "process")


def time_call(fn: Callable[[], Any], *, warmup: int = 1, repeats: int = 3,
              device: Any = None, budget_s: float | None = None, clock: str = "wall") -> dict[str, Any]:
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
    return {"median": med, "min": min(times), "max": max(times),
            "spread": (max(times) - min(times)) / med if med > 0 else 0.0,
            "times": times, "wall_times": walls, "warmup": warmup, "repeats": len(times),
            "timer": "cuda-events" if cuda else ("process_time" if clock == "process" else "perf_counter"),
            "last": out}


# ------------------------------------------------------------------------------------------ memory
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            m = re.search(rf"^{field}:\s+(\d+)\s+kB", fh.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _trim_heap() -> None:
    """Return free heap memory to the OS (glibc malloc_trim), so that an allocation which would reuse
    memory the allocator retained from earlier calls has to fault pages in again and is counted."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_memory(fn: Callable[[], Any], device: Any = None) -> dict[str, Any]:
    """Extra bytes at the peak of one call of `fn` (see module doc). Returns
    {"bytes", "method", "last"}; "bytes" is None when nothing sound can be measured."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        out = fn()
        torch.cuda.synchronize(dev)
        return {"bytes": int(torch.cuda.max_memory_allocated(dev) - base),
                "method": "cuda.max_memory_allocated", "last": out}
    _trim_heap()
    rss0 = _status_kib("VmRSS")
    if rss0 is not None and _reset_hwm():
        rss0 = _status_kib("VmRSS")
        out = fn()
        hwm = _status_kib("VmHWM")
        return {"bytes": max(0, (hwm - rss0)) * 1024, "method": "VmHWM after clear_refs", "last": out}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = fn()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"bytes": (after - before) * 1024, "method": "ru_maxrss delta (lower bound)", "last": out}


# ------------------------------------------------------------------------------------------ solvers
def measure_solver(solver, inst, *, dtype: Any = "float64", device: Any = "cpu", warmup: int = 1,
                   repeats: int = 3, budget_s: float | None = None, memory: bool = True,
                   clock: str = "wall", **options) -> dict[str, Any]:
    """Time, peak memory and operation count of `solver.solve(inst, ...)`. Returns
    {"seconds": time_call summary without "last", "mem_bytes", "mem_method", "ops", "result"}."""
    def call():
        return solver.solve(inst, dtype=dtype, device=device, **options)

    dev = device if str(device) != "auto" else None
    mem = {"bytes": None, "method": "off"}
    if memory and warmup >= 1:  # the first warm-up call doubles as the memory measurement
        first = time_call(lambda: peak_memory(call, device), warmup=0, repeats=1, device=dev, clock=clock)
        mem = first.pop("last")
        warmup -= 1
        if budget_s is not None and first["wall_times"][0] >= budget_s and warmup == 0:
            # a call longer than the whole budget: its one-time costs are negligible, so the
            # warm-up call is kept as the single sample instead of paying for a second call
            first.update(warmup=0, reused_warmup=True)
            return {"seconds": first, "mem_bytes": mem["bytes"], "mem_method": mem["method"],
                    "ops": None if mem["last"].ops is None else int(mem["last"].ops), "result": mem["last"]}
    elif memory:
        mem = peak_memory(call, device)
    t = time_call(call, warmup=warmup, repeats=repeats, device=dev, budget_s=budget_s, clock=clock)
    res = t.pop("last")
    return {"seconds": t, "mem_bytes": mem["bytes"], "mem_method": mem["method"],
            "ops": None if res.ops is None else int(res.ops), "result": res}
