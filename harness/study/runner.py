"""`run_study`: run the missing cells of a grid through an executor, store each as it finishes, write
the table."""

from __future__ import annotations

import json
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.study.cells import reference_cache
from harness.study.config import FORMAT
from harness.study.executors import InProcessExecutor
from harness.study.grid import cell_id
from harness.study.store import cells_dir, load_cells, run_and_store, write_table


def run_study(
    cells: list[dict],
    out: str | os.PathLike,
    *,
    executor: Any = None,
    resume: bool = False,
    progress: Any = None,
    config: dict | None = None,
) -> dict:
    """Run the cells of the grid that are not stored yet under `out` (all of them unless `resume`),
    store each as it finishes, then write <out>/table.json (the grid's stored records, in grid
    order). `progress`: None, or an object with `start(total, done)` and `update(record)` called as
    cells finish (the CLI's progress bar). Returns {"ran", "reused", "total", "seconds"}."""
    out = Path(out)
    d = cells_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    if not resume:
        for p in d.glob("*.json"):
            p.unlink()
    have = {r["id"] for r in load_cells(out)} if resume else set()
    todo = [c for c in cells if cell_id(c) not in have]
    ids = [cell_id(c) for c in cells]
    if len(set(ids)) != len(ids):
        raise HarnessError("study grid has duplicate cells")
    atomic_write_text(
        out / "grid.json", json.dumps({"format": FORMAT, "cells": cells}, sort_keys=True, indent=1)
    )
    if progress:
        progress.start(len(cells), len(cells) - len(todo))
    t0 = time.perf_counter()
    ex = executor or InProcessExecutor()
    refs = reference_cache(cells[0]["device"]) if cells else None
    for rec in ex.map(partial(run_and_store, str(out), refs=refs), todo):
        if progress:
            progress.update(rec)
    seconds = time.perf_counter() - t0
    write_table(out, cells, config)
    return {"ran": len(todo), "reused": len(cells) - len(todo), "total": len(cells), "seconds": seconds}
