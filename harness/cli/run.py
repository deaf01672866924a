"""`lora-harness run`: the scaling study (harness/study/), its report and figures.

lora-harness run                      # default study on CPU, about 2 minutes on 2 cores -> runs/default
lora-harness run --full --device cuda # bigger grid
lora-harness run --resume             # continue a killed run; finished cells are not redone
lora-harness run --report-only        # redraw the report and figures from the stored table
lora-harness run --solver mypkg.mod:grads --L 2^10..2^16   # scale your solver (+ one exact baseline)
lora-harness run --attention mypkg.mod:attn               # ... or your attention function
lora-harness run --executor dask --workers 2              # the cells as tasks on a local Dask cluster
lora-harness run --executor dask --scheduler tcp://host:8786   # ... or on a running one
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
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


def parse_L(text: str) -> list[int]:
    """`2^10..2^16`, `1024..65536`, `2^12` -> [log2 lo, log2 hi] (powers of two in 2^2..2^24)."""

    def one(tok: str) -> int:
        tok = tok.strip()
        try:
            if tok.startswith("2^"):
                k = int(tok[2:])
            else:
                v = int(tok)
                if v < 1 or v & (v - 1):
                    raise ValueError
                k = v.bit_length() - 1
        except ValueError:
            raise HarnessError(
                f"--L {text!r}: sizes must be powers of two, as 2^10..2^16 or 1024..65536"
            ) from None
        if not 2 <= k <= 24:
            raise HarnessError(f"--L {text!r}: sizes must lie in 2^2..2^24")
        return k

    parts = text.split("..")
    if len(parts) > 2 or not all(p.strip() for p in parts):
        raise HarnessError(f"--L {text!r}: expected LO..HI, as 2^10..2^16")
    lo, hi = one(parts[0]), one(parts[-1])
    if lo > hi:
        raise HarnessError(f"--L {text!r}: the first size is larger than the last")
    return [lo, hi]


def _executor(args):
    from harness.study import DaskExecutor, InProcessExecutor

    kind = args.executor or ("dask" if (args.workers is not None or args.scheduler) else "in-process")
    if kind == "in-process":
        if args.workers is not None or args.scheduler:
            raise HarnessError("--workers and --scheduler need --executor dask")
        return InProcessExecutor()
    if args.threads not in (None, 1):
        raise HarnessError("--threads applies to the in-process executor; dask workers run one thread each")
    if args.workers is not None and args.scheduler:
        raise HarnessError(
            "give --workers N (a local cluster) or --scheduler ADDRESS (a running one), not both"
        )
    workers = args.workers
    if workers is None and not args.scheduler:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return DaskExecutor(workers=workers, scheduler=args.scheduler)


def _user_solvers(args) -> list[dict]:
    from harness.study import EXACT, parse_solver_spec

    users = [parse_solver_spec(s, "solver") for s in args.solver or ()]
    users += [parse_solver_spec(s, "attention") for s in args.attention or ()]
    seen: set[str] = set()
    for u in users:
        if u["solver"] in seen or u["solver"] in (*EXACT, "poly", "poly-chained", "random-features"):
            raise HarnessError(
                f"solver {u['solver']!r} is named twice (or is a built-in series of the study)"
            )
        seen.add(u["solver"])
    return users


def _cmd_run(args) -> int:
    from harness.solvers.base import resolve_device
    from harness.study import FolderLock, StudyConfig

    out = Path(args.out)
    if args.resume and args.force:
        raise HarnessError(
            "--resume and --force contradict each other: --resume keeps the stored cells, "
            "--force discards them"
        )
    if out.exists() and not out.is_dir():
        raise HarnessError(f"--out {out} exists and is not a folder")
    if not args.report_only:
        # a read-only folder, a file on the path: refused at once; missing parents are made (the
        # default runs/default on a fresh clone has none)
        check_folder(out, "study folder", parents=True)
    if args.report_only:
        from harness.study.report import summary_table, write_report

        if not out.is_dir():  # nothing to lock, and nothing is created
            raise HarnessError(
                f"no study table at {out / 'table.json'}; run `lora-harness run --out {out}` first"
            )
        with FolderLock(out):
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
    if args.config is not None:
        from harness.study import apply_config_file

        apply_config_file(cfg, args.config)
    if args.L is not None:
        user_L = parse_L(args.L)  # a malformed range is named first, with or without a solver
        if not (args.solver or args.attention):
            raise HarnessError("--L sets the sizes of the --solver / --attention series; name a solver")
        cfg.user_L = user_L
    threads = args.threads if args.threads is not None else (1 if device == "cpu" else None)
    # BLAS too: the certificates do O(L d) numpy products, and a 2-thread OpenBLAS on a loaded
    # 2-core machine made them dominate poly's time; restored afterwards (the CLI may run in-process)
    with limit_threads(threads, blas=True), _cwd_on_path():
        return _run(args, cfg, out)


@contextlib.contextmanager
def _cwd_on_path():
    """`--solver mypkg.mod:fn` names a module in the current folder as `python -m` would find it (the
    console script's sys.path does not hold the folder); local Dask workers inherit the path.
    Restored afterwards (the CLI may run in-process)."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _run(args, cfg, out: Path) -> int:
    from harness.study import FolderLock, config_dict, make_grid, run_study
    from harness.study.report import summary_table, write_report

    users = _user_solvers(args)
    builtin = not users or args.groups is not None
    cells = make_grid(cfg, groups=_groups(args.groups or ",".join(GROUPS)), user=users, builtin=builtin)
    executor = _executor(args)
    t0 = time.perf_counter()
    with FolderLock(out):  # one run per folder: a second one is refused before anything changes
        if (
            (out / "cells").is_dir()
            and any((out / "cells").glob("*.json"))
            and not (args.resume or args.force)
        ):
            raise HarnessError(
                f"{out} already holds study results; pass --resume to continue or --force to start over"
            )
        with executor:
            info = run_study(
                cells,
                out,
                resume=args.resume,
                progress=None if args.quiet else Progress(),
                config=config_dict(cfg),
                executor=executor,
                lock=False,
                threads=1,
                notify=lambda msg: print(f"lora-harness: note: {msg}", file=sys.stderr),
            )
        rep = write_report(out, plots=not args.no_plots)
        total = time.perf_counter() - t0
        rep_info = {
            "ran": info["ran"],
            "reused": info["reused"],
            "recomputed": info["recomputed"],
            "total_cells": info["total"],
            "seconds": round(total, 1),
            "cell_seconds": round(info["seconds"], 1),
            "executor": info["executor"],
            "workers": info["workers"],
        }
        atomic_write_text(out / "last_run.json", json.dumps(rep_info, indent=1))
    print(summary_table(rep))
    where = f" on {info['workers']} dask workers" if info["executor"] == "dask" else ""
    done = f"{info['ran']} cells run{where}, {info['reused']} reused, {total:.0f} s"
    print(f"\n{done}; report: {out / 'report.md'}")
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
    p.add_argument(
        "--groups",
        default=None,
        help=f"comma list of {', '.join(GROUPS)} (default all; "
        "with --solver/--attention: only their scaling series and one exact baseline)",
    )
    p.add_argument(
        "--solver",
        action="append",
        metavar="SPEC",
        help="add a solver to the scaling group: a registered name or module:attr (repeatable)",
    )
    p.add_argument(
        "--attention",
        action="append",
        metavar="MODULE:FN",
        help="add an attention function fn(q, k, v, scale=...) (gradients by autograd; repeatable)",
    )
    p.add_argument(
        "--L",
        default=None,
        metavar="LO..HI",
        help="sizes of the --solver/--attention series, powers of two, e.g. 2^10..2^16 (default 2^8..2^13)",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help='override grid settings from a JSON (or TOML) file, e.g. {"user_L": [10, 16]}',
    )
    p.add_argument(
        "--executor",
        choices=["in-process", "dask"],
        default=None,
        help="who runs the cells (default in-process; dask with --workers or --scheduler)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="dask: start a local cluster of N single-threaded worker processes (default: the cores)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="dask: use a running cluster, e.g. tcp://10.0.0.5:8786",
    )
    p.add_argument(
        "--repeats",
        type=positive_int,
        default=None,
        help="timed repeats per cell (default 5; a cell stops once 3.5 s are spent)",
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
