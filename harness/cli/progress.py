"""The study's progress bar on stderr (`lora-harness run`; `run_study(progress=...)`)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Plain-stderr progress bar (no dependency): one redrawn line on a terminal, else one line per cell."""

    def __init__(self, stream=None):
        self.total, self.done, self.t0 = 0, 0, time.perf_counter()
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def start(self, total: int, done: int) -> None:
        self.total, self.done, self.t0 = total, done, time.perf_counter()

    def update(self, cell: dict, error: BaseException | None = None) -> None:
        """One more cell finished (in any order), or failed when `error` is given."""
        self.done += 1
        c = cell
        what = (
            f"{c['group']:<7} {c['series']:<13} L={c['L']:<6} d={c['d']}"
            + (f" c={c['c']}" if "c" in c else "")
            + (f" r={c['r']}" if c["group"] == "rank" else "")
        )
        if error is not None:
            what += "  FAILED"
        n = 30
        fill = n * self.done // max(self.total, 1)
        line = (
            f"[{'#' * fill}{'.' * (n - fill)}] {self.done}/{self.total} "
            f"{time.perf_counter() - self.t0:6.1f}s  {what}"
        )
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(120))
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
