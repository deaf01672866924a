"""The scaling study: a grid of independent cells, each measured and stored atomically as it finishes
(one JSON file per cell under <out>/cells/, written with `harness.io.atomic_write_text`), so a killed
run resumes without redoing finished cells, and the report is a function of the stored cells only.

Groups (docs/study.md):
* "scaling": time, memory, op count and error of each solver against L on the bounded family
  (gamma fixed, so R = O(1): the almost-linear regime of docs/theory.md §5.2). `poly` runs at a fixed
  Taylor degree (fixed rank, so its time exponent is the L-exponent of the algorithm) and as
  "poly@eps" with the target eps = 1/L (the 1/poly(L) accuracy of Problem 1, docs/theory.md §2.2).
* "phase": the threshold family gamma = c sqrt(log L) (Hu et al. (arXiv:2406.03136) Thm 5.1 (v2) / 4.1
  (ICLR); docs/theory.md §5.3) on a (c, L) grid; per cell `theory.certify` for eps = 1/L gives the degree
  and rank needed, the measured error of the polynomial method at a fixed rank budget, and the time
  (measured where the rank is affordable, predicted op count always).
* "rank": poly against the best exact solver while the LoRA rank r varies.
* "dim": poly and the exact solver against L for several head dimensions d (crossover L* vs d).

A cell is a plain dict (its JSON is its identity, `cell_id`). `run_study(cells, out, executor=...)`
runs the missing ones through an executor (in-process by default, or Dask distributed: a local
cluster or a running one) and stores each checked record as it arrives; one run holds the folder.

* `config`     `StudyConfig` (default, full, tiny grids)
* `grid`       `make_grid`, `cell_id`, the code fingerprint
* `cells`      `run_cell`: one cell measured
* `records`    a stored record and its checksum
* `store`      the cell store under <out>/cells/ and <out>/table.json (checked on every read)
* `lock`       one run per output folder
* `executors`  how cells are run (in-process by default; Dask distributed)
* `thirdparty` `--solver` / `--attention` solvers in the study
* `runner`     `run_study`
* `report`     the analysis of the stored table (fits, crossovers) into report.json / report.md
* `plots`      its figures
"""

from harness.study.cells import reference_cache, run_cell, run_cell_task
from harness.study.config import EXACT, EXTRAS, FORMAT, REFERENCE, StudyConfig, apply_config_file, config_dict
from harness.study.executors import DaskExecutor, InProcessExecutor
from harness.study.grid import cell_id, code_fingerprint, make_grid, parse_solver_spec
from harness.study.lock import FolderLock
from harness.study.runner import run_study
from harness.study.store import cells_dir, load_cells, load_table, run_and_store, write_table

__all__ = [
    "EXACT",
    "EXTRAS",
    "FORMAT",
    "REFERENCE",
    "DaskExecutor",
    "FolderLock",
    "InProcessExecutor",
    "StudyConfig",
    "apply_config_file",
    "cell_id",
    "cells_dir",
    "code_fingerprint",
    "config_dict",
    "load_cells",
    "load_table",
    "make_grid",
    "parse_solver_spec",
    "reference_cache",
    "run_and_store",
    "run_cell",
    "run_cell_task",
    "run_study",
    "write_table",
]
