"""`run_study`: run the missing cells of a grid through an executor, store each as it finishes, write
the table."""
from __future__ import annotations
import json
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.study.config import FORMAT
from harness.study.executors import InProcessExecutor
from harness.study.grid import cell_id
from harness.study.store import cells_dir, load_cells, run_and_store, write_table


class Progress:
    """Plain-stderr progress bar (no dependency): one redrawn line on a terminal, else one line per cell."""

    def __init__(self, total: int, stream=None, enabled: bool = True):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, rec: dict) -> None:
        self.done += 1
        if not self.enabled:
            return
        c = rec["cell"]
        what = f"{c['group']:<7} {c['series']:<13} L={c['L']:<6} d={c['d']}" + (
            f" c={c['c']}" if "c" in c else "") + (f" r={c['r']}" if c["group"] == "rank" else "")
        n = 30
        fill = n * self.done // max(self.total, 1)
        line = (f"[{'#' * fill}{'.' * (n - fill)}] {self.done}/{self.total} "
                f"{time.perf_counter() - self.t0:6.1f}s  {what}")
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(120))
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def run_study(cells: list[dict], out: str | os.PathLike, *, executor: Any = None, resume: bool = False,
              progress: bool = True, stream=None, config: dict | None = None) -> dict:
    """Run the cells of the grid that are not stored yet under `out` (all of them unless `resume`),
    store each as it finishes, then write <out>/table.json (the grid's stored records, in grid
    order). Returns {"ran", "reused", "total", "seconds"}."""
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
    atomic_write_text(out / "grid.json", json.dumps({"format": FORMAT, "cells": cells}, sort_keys=True, indent=1))
    bar = Progress(len(cells), stream=stream, enabled=progress)
    bar.done = len(cells) - len(todo)
    t0 = time.perf_counter()
    ex = executor or InProcessExecutor()
    for rec in ex.map(partial(run_and_store, str(out)), todo):
        bar.update(rec)
    seconds = time.perf_counter() - t0
    write_table(out, cells, config)
    return {"ran": len(todo), "reused": len(cells) - len(todo), "total": len(cells), "seconds": seconds}
