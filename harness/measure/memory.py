"""Peak memory of one call.

`peak_memory(fn, device)`: extra memory at the peak of one call. CUDA: `torch.cuda.max_memory_allocated`
after `reset_peak_memory_stats` minus the allocation before. CPU: torch's CPU allocations bypass
Python's allocator (invisible to tracemalloc), so we read the kernel's resident-set high-water mark:
reset it to the current RSS by writing "5" to /proc/self/clear_refs (Linux >= 4.0), call, and take
VmHWM - VmRSS(before). Free heap memory is handed back first (glibc `malloc_trim(0)`): without
that, a call reusing memory the allocator kept from an earlier call read as 0 bytes (measured:
streaming at L = 8192 gave 0 MiB, with the trim 196-212 MiB; closed-form 1024 MiB either way,
its L x L buffers are fresh mmaps). Where clear_refs is not writable we fall back to the ru_maxrss
delta, which is only a lower bound (zero unless the call raises the process's lifetime peak); the method used
is returned with the number.
"""

from __future__ import annotations

import re
import resource
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            m = re.search(rf"^{field}:\s+(\d+)\s+kB", fh.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


@lru_cache(maxsize=1)
def _libc():
    """glibc, with `malloc_trim` declared; None where there is no glibc."""
    try:
        import ctypes

        lib = ctypes.CDLL("libc.so.6")
        lib.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return lib


def _trim_heap() -> None:
    """Return free heap memory to the OS (glibc malloc_trim), so that an allocation which would reuse
    memory the allocator retained from earlier calls has to fault pages in again and is counted."""
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(0)


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
        return {
            "bytes": int(torch.cuda.max_memory_allocated(dev) - base),
            "method": "cuda.max_memory_allocated",
            "last": out,
        }
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


def peak_rss_mib() -> float:
    """The process's lifetime peak resident set (ru_maxrss), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
