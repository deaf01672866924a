"""`measure_solver(solver, inst, ...)`: time (harness.measure.timing), peak memory
(harness.measure.memory) and the deterministic operation count (`Result.ops`, harness.measure.opcount)
of one solver on one instance."""

from __future__ import annotations

from typing import Any

from harness.measure.memory import peak_memory
from harness.measure.timing import time_call


def measure_solver(
    solver,
    inst,
    *,
    dtype: Any = "float64",
    device: Any = "cpu",
    warmup: int = 1,
    repeats: int = 3,
    budget_s: float | None = None,
    memory: bool = True,
    clock: str = "wall",
    **options,
) -> dict[str, Any]:
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
            return {
                "seconds": first,
                "mem_bytes": mem["bytes"],
                "mem_method": mem["method"],
                "ops": None if mem["last"].ops is None else int(mem["last"].ops),
                "result": mem["last"],
            }
    elif memory:
        mem = peak_memory(call, device)
    t = time_call(call, warmup=warmup, repeats=repeats, device=dev, budget_s=budget_s, clock=clock)
    res = t.pop("last")
    return {
        "seconds": t,
        "mem_bytes": mem["bytes"],
        "mem_method": mem["method"],
        "ops": None if res.ops is None else int(res.ops),
        "result": res,
    }
