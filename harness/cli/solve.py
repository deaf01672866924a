"""`lora-harness solve INSTANCE --solver S`: adapter gradients of one instance, with the loss, time,
peak memory, op count and certificate; `--out` writes them in the interchange format."""

from __future__ import annotations

import json
import time

from harness.cli.args import (
    add_solver_args,
    memory_limit,
    nonempty_path,
    resolve_solver,
    solver_options,
    threads,
)
from harness.errors import HarnessError
from harness.fsio import write_target
from harness.io import load_instance, save_gradients
from harness.measure.memory import peak_rss_mib
from harness.measure.threads import limit_threads


def _cmd_solve(args) -> int:
    if args.out is not None:
        write_target(args.out)  # a bad --out is refused before the work, not after it
    inst = load_instance(args.instance, max_memory=memory_limit(args))
    solver = resolve_solver(args)
    opts = solver_options(args)
    with limit_threads(threads(args)):
        rss0 = peak_rss_mib()
        t0 = time.perf_counter()
        res = solver.solve(inst, dtype=args.dtype, device=args.device, max_memory=memory_limit(args), **opts)
        elapsed = time.perf_counter() - t0
        peak = peak_rss_mib()
    if res.info.get("nonfinite"):
        raise HarnessError(f"solver {solver.name!r} returned a non-finite {res.info['nonfinite']}")
    print(f"instance: {inst.describe()}")
    print(
        f"solver:   {solver.name} ({'exact' if solver.exact else 'approximate'}, {args.dtype}, {args.device})"
    )
    print(f"loss:     {res.loss:.17g}")
    print(f"time:     {elapsed:.4f} s")
    print(f"peak mem: {peak:.1f} MiB (process RSS; +{max(peak - rss0, 0):.1f} MiB during solve)")
    if res.ops is not None:
        print(f"ops:      {res.ops:.4g} flops")
    if res.certificate:
        print("certificate: " + json.dumps(res.certificate, sort_keys=True, default=str))
    if args.out is not None:
        # no timings in the file: the same instance and solver give the same bytes
        meta = {
            "solver": solver.name,
            "instance_sha256": inst.sha256,
            "ops": res.ops,
            "certificate": res.certificate,
            "dtype": args.dtype,
        }
        save_gradients(res.grads, res.loss, args.out, meta=meta)
        print(f"wrote {args.out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("solve", help="compute adapter gradients of an instance")
    p.add_argument("instance")
    add_solver_args(p)
    p.add_argument("--out", type=nonempty_path, help="write gradients (.npz: dA_m, dB_m, loss)")
    p.set_defaults(func=_cmd_solve)
