"""`lora-harness run`: the scaling study (harness/study/), its report and figures.

lora-harness run                      # default study on CPU, < 5 minutes on 2 cores -> runs/default
lora-harness run --full --device cuda # bigger grid
lora-harness run --resume             # continue a killed run; finished cells are not redone
lora-harness run --report-only        # redraw the report and figures from the stored table
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.cli.args import nonempty_path, nonneg_int, positive_int, thread_count
from harness.cli.progress import Progress
from harness.errors import HarnessError
from harness.fsio import check_folder
from harness.io import atomic_write_text
from harness.measure.threads import limit_threads

GROUPS = ("scaling", "phase", "rank", "dim")


def _groups(text: str) -> tuple[str, ...]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in GROUPS]
    if bad or not items:
        raise HarnessError(
            f"unknown study group {bad[0] if bad else text!r}; choose from {', '.join(GROUPS)}"
        )
    return tuple(items)


def _cmd_run(args) -> int:
    from harness.solvers.base import resolve_device
    from harness.study import StudyConfig

    out = Path(args.out)
    if not args.report_only:
        check_folder(out, "study folder")  # a file, a read-only folder, a missing parent: refused at once
    if args.report_only:
        from harness.study.report import summary_table, write_report

        rep = write_report(out, plots=not args.no_plots)
        print(summary_table(rep))
        print(f"report: {out / 'report.md'}")
        return 0
    device = str(resolve_device(args.device))
    if device.startswith("cuda") and args.device == "auto":
        device = "cuda"
    cfg = (
        StudyConfig.full(device)
        if args.full
        else (StudyConfig.tiny() if args.tiny else StudyConfig.default(device))
    )
    cfg.device = device
    if args.dtype:
        cfg.dtype = args.dtype
    if args.repeats is not None:
        if args.repeats < 1:
            raise HarnessError(f"--repeats must be >= 1, got {args.repeats}")
        cfg.repeats = args.repeats
    cfg.seed = args.seed
    cfg.clock = args.clock
    threads = args.threads if args.threads is not None else (1 if device == "cpu" else None)
    # BLAS too: the certificates do O(L d) numpy products, and a 2-thread OpenBLAS on a loaded
    # 2-core machine made them dominate poly's time; restored afterwards (the CLI may run in-process)
    with limit_threads(threads, blas=True):
        return _run(args, cfg, out)


def _run(args, cfg, out: Path) -> int:
    from harness.study import config_dict, make_grid, run_study
    from harness.study.report import summary_table, write_report

    cells = make_grid(cfg, groups=_groups(args.groups))
    if out.exists() and not out.is_dir():
        raise HarnessError(f"--out {out} exists and is not a folder")
    if (out / "cells").is_dir() and any((out / "cells").glob("*.json")) and not (args.resume or args.force):
        raise HarnessError(
            f"{out} already holds study results; pass --resume to continue or --force to start over"
        )
    t0 = time.perf_counter()
    info = run_study(
        cells, out, resume=args.resume, progress=None if args.quiet else Progress(), config=config_dict(cfg)
    )
    rep = write_report(out, plots=not args.no_plots)
    total = time.perf_counter() - t0
    rep_info = {
        "ran": info["ran"],
        "reused": info["reused"],
        "total_cells": info["total"],
        "seconds": round(total, 1),
    }
    atomic_write_text(out / "last_run.json", json.dumps(rep_info, indent=1))
    print(summary_table(rep))
    print(f"\n{info['ran']} cells run, {info['reused']} reused, {total:.0f} s; report: {out / 'report.md'}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="run the scaling study (exponents, crossover, phase transition, report)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--out", type=nonempty_path, default="runs/default", help="output folder (default runs/default)"
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="the bigger grid (minutes to hours)")
    size.add_argument("--tiny", action="store_true", help="a seconds-long grid (smoke test)")
    p.add_argument(
        "--device", default="cpu", help="cpu, cuda or auto (default cpu; on cuda the --full grid in float32)"
    )
    p.add_argument(
        "--dtype",
        choices=["float64", "float32"],
        default=None,
        help="default float64 on CPU, float32 on CUDA with --full",
    )
    p.add_argument("--groups", default=",".join(GROUPS), help=f"comma list of {', '.join(GROUPS)}")
    p.add_argument(
        "--repeats",
        type=positive_int,
        default=None,
        help="timed repeats per cell (default 5; a cell stops once 6 s are spent)",
    )
    p.add_argument(
        "--threads",
        type=thread_count,
        default=None,
        help="torch and BLAS CPU threads (default 1 on CPU: stable timings on a shared machine)",
    )
    p.add_argument(
        "--clock",
        choices=["process", "wall"],
        default="process",
        help="CPU timing clock: process CPU time (default; robust to other load) or wall time",
    )
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue a killed run, reusing finished cells")
    p.add_argument("--force", action="store_true", help="discard earlier results in --out")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from the stored table")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)
