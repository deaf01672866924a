"""`run_study`: run the missing cells of a grid through an executor, store each as it arrives, write
the table."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.study.cells import run_cell_task
from harness.study.config import FORMAT
from harness.study.executors import InProcessExecutor
from harness.study.grid import cell_id
from harness.study.lock import FolderLock
from harness.study.store import cells_dir, clean_tmp, clear_store, load_store, store_record, write_table


def run_study(
    cells: list[dict],
    out: str | os.PathLike,
    *,
    executor: Any = None,
    resume: bool = False,
    progress: Any = None,
    config: dict | None = None,
    notify: Callable[[str], None] | None = None,
    lock: bool = True,
    threads: int | None = 1,
) -> dict:
    """Run the cells of the grid that are not soundly stored under `out` (all of them unless
    `resume`), store each as it arrives, then write <out>/table.json (the grid's stored records, in
    grid order).

    * `executor`: who runs the cells (`executors.InProcessExecutor` by default, `DaskExecutor`); each
      cell runs as `cells.run_cell_task(cell, refs, threads)`, refs kept by the executor.
    * The folder is locked for the run (`lock=False` when the caller holds the lock); temporary files
      of killed writers are removed; stored cells that fail their checks are recomputed; `notify(msg)`
      is told each of these, and each failed cell.
    * `progress`: None, or an object with `start(total, done)` and `update(cell, error)` called as
      cells finish, in whatever order they finish.
    * A cell that fails is left missing and the others are stored; the run then raises one
      HarnessError naming the first failed cell.

    Returns {"ran", "reused", "recomputed" (ids), "total", "seconds", "executor", "workers"}."""
    out = Path(out)
    ids = [cell_id(c) for c in cells]
    if len(set(ids)) != len(ids):
        raise HarnessError("study grid has duplicate cells")
    say = notify or (lambda msg: None)
    held = FolderLock(out).acquire() if lock else None
    try:
        cells_dir(out).mkdir(parents=True, exist_ok=True)
        for p in clean_tmp(out):
            say(f"removed a stale temporary file {p.name} (left by a killed writer)")
        if not resume:
            clear_store(out)
        loaded = load_store(out)
        grid_ids = set(ids)
        bad = {cid: why for cid, why in loaded.invalid.items() if cid in grid_ids}
        for cid, why in bad.items():
            say(f"stored cell {cid} {why}; recomputing it")
        todo = [c for c, cid in zip(cells, ids) if cid not in loaded.records]
        atomic_write_text(
            out / "grid.json", json.dumps({"format": FORMAT, "cells": cells}, sort_keys=True, indent=1)
        )
        if progress:
            progress.start(len(cells), len(cells) - len(todo))
        t0 = time.perf_counter()
        ex = executor or InProcessExecutor()
        failed: list[str] = []
        for cell, rec, err in ex.run(partial(run_cell_task, threads=threads), todo):
            if err is None:
                try:
                    store_record(out, rec)
                except HarnessError as exc:  # damaged in transit: leave the cell missing
                    err = exc
            if err is not None:
                failed.append(str(err))
                say(str(err))
            if progress:
                progress.update(cell, err)
        seconds = time.perf_counter() - t0
        if failed:
            raise HarnessError(
                f"{len(failed)} of {len(todo)} study cells failed and are not stored "
                f"(first: {failed[0]}); the others are stored: fix and rerun with --resume"
            )
        write_table(out, cells, config)
        return {
            "ran": len(todo),
            "reused": len(cells) - len(todo),
            "recomputed": sorted(bad),
            "total": len(cells),
            "seconds": seconds,
            **ex.describe(),
        }
    finally:
        if held is not None:
            held.release()
