"""The memory guard: estimate the bytes a step will allocate, refuse before allocating.

    limit = MemoryLimit.resolve(None)            # default: 80% of the memory available now
    limit = MemoryLimit.resolve("8G")            # --max-memory 8G ("none" disables the guard)
    limit.check(need_bytes, "closed-form on L=65536 (3 L x L float64 buffers)")

`check` raises `MemoryLimitError` (a HarnessError, exit 2) with one line naming the estimate, the
limit and `--max-memory`. Available memory is MemAvailable from /proc/meminfo, lowered to the
cgroup's remaining allowance (memory.max − memory.current, v2; limit_in_bytes − usage_in_bytes, v1)
when the process runs under a memory limit (containers, CI runners). On systems with neither the
guard is off unless a limit is given. Estimates live beside the code that allocates
(`Solver.memory_estimate`, `harness.io.npz_manifest`, `reductions.sat_sources.chain_memory`,
`harness.families.family_memory`);
they are upper bounds checked against measured peaks in the tests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from harness.errors import HarnessError, MemoryLimitError

DEFAULT_FRACTION = 0.8
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1e3,
    "kb": 1e3,
    "m": 1e6,
    "mb": 1e6,
    "g": 1e9,
    "gb": 1e9,
    "t": 1e12,
    "tb": 1e12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_UNITS.update({"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40})  # bare K/M/G/T: binary, as in free -h


def fmt_bytes(n: float) -> str:
    """1.5 GiB, 320 MiB, 12 KiB, 7 B; astronomically large numbers as 2^k B."""
    if n >= 2**60 * 1024:
        return f"2^{math.log2(n):.0f} B"
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def parse_size(text: str) -> int | None:
    """'8G', '512MiB', '1.5e9', '2 GB' -> bytes; 'none' / 'off' / 'unlimited' -> None (no guard)."""
    t = str(text).strip().lower()
    if t in ("none", "off", "unlimited", "inf"):
        return None
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)", t)
    if not m or m.group(2) not in _UNITS:
        raise HarnessError(f"--max-memory expects a size like 8G, 512MiB or 2e9 (or 'none'), got {text!r}")
    v = float(m.group(1)) * _UNITS[m.group(2)]
    if not math.isfinite(v) or v < 1:
        raise HarnessError(f"--max-memory must be at least 1 byte, got {text!r}")
    return int(v)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            t = fh.read().strip()
    except OSError:
        return None
    return int(t) if t.isdigit() else None


def _cgroup_room() -> int | None:
    """Bytes this cgroup may still allocate, or None when it has no memory limit."""
    for lim_p, use_p in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        lim = _read_int(lim_p)
        if lim is not None and lim < 2**60:
            return max(0, lim - (_read_int(use_p) or 0))
    return None


def available_bytes() -> int | None:
    """MemAvailable (lowered to the cgroup allowance), or None when it cannot be read."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    room = _cgroup_room()
    if room is not None:
        avail = room if avail is None else min(avail, room)
    return avail


@dataclass(frozen=True)
class MemoryLimit:
    """A byte limit (None: no guard) and where it came from, for the error message."""

    bytes: int | None
    source: str

    @classmethod
    def resolve(cls, spec: MemoryLimit | int | str | None = None) -> MemoryLimit:
        """None: DEFAULT_FRACTION of the available memory; int: bytes; str: parse_size."""
        if isinstance(spec, MemoryLimit):
            return spec
        if spec is None:
            avail = available_bytes()
            if avail is None:
                return cls(None, "available memory unknown")
            return cls(
                int(DEFAULT_FRACTION * avail), f"{DEFAULT_FRACTION:.0%} of the {fmt_bytes(avail)} available"
            )
        if isinstance(spec, str):
            return cls(parse_size(spec), f"--max-memory {spec}")
        return cls(int(spec), f"--max-memory {fmt_bytes(spec)}")

    def check(self, need: float, what: str) -> None:
        """Raise MemoryLimitError when the estimate `need` (bytes) exceeds the limit."""
        if self.bytes is None or need <= self.bytes:
            return
        if need > 2**50:
            hint = "more than any machine has: make it smaller (--max-memory sets the limit)"
        else:
            hint = f"make it smaller or raise the limit, e.g. --max-memory {math.ceil(need * 1.25 / 2**30)}G"
        raise MemoryLimitError(
            f"{what} needs about {fmt_bytes(need)} of memory, more than the limit "
            f"{fmt_bytes(self.bytes)} ({self.source}); {hint}"
        )


def check(need: float, what: str, limit: MemoryLimit | int | str | None = None) -> None:
    MemoryLimit.resolve(limit).check(need, what)
