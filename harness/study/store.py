"""The cell store: one JSON file per cell under <out>/cells/, written atomically as it finishes, and
<out>/table.json, the stored table the report and plots read."""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.study.cells import run_cell
from harness.study.config import FORMAT
from harness.study.grid import cell_id


def cells_dir(out: str | os.PathLike) -> Path:
    return Path(out) / "cells"


def run_and_store(out: str, cell: dict, refs=None) -> dict:
    """`run_cell`, then store the record atomically under <out>/cells/<id>.json."""
    rec = run_cell(cell, refs)
    cells_dir(out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(cells_dir(out) / f"{rec['id']}.json", json.dumps(rec, sort_keys=True))
    return rec


def load_cells(out: str | os.PathLike, cells: list[dict] | None = None) -> list[dict]:
    """Stored records, in grid order when `cells` is given (missing cells skipped), else by id."""
    d = cells_dir(out)
    if not d.is_dir():
        return []
    recs = {}
    for p in sorted(d.glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a torn file cannot exist (atomic writes), but be lenient with strays
        if rec.get("format") == FORMAT:
            recs[rec["id"]] = rec
    if cells is None:
        return [recs[k] for k in sorted(recs)]
    return [recs[cell_id(c)] for c in cells if cell_id(c) in recs]


def write_table(out: str | os.PathLike, cells: list[dict], config: dict | None = None) -> list[dict]:
    """<out>/table.json: the stored table of measurements the report and plots read."""
    recs = load_cells(out, cells)
    missing = len(cells) - len(recs)
    if missing:
        raise HarnessError(
            f"{missing} of {len(cells)} study cells are not stored in {out}; rerun with --resume"
        )
    atomic_write_text(
        Path(out) / "table.json",
        json.dumps({"format": FORMAT, "config": config or {}, "records": recs}, sort_keys=True, indent=1),
    )
    return recs


def load_table(out: str | os.PathLike) -> dict:
    """{"config", "records"} of <out>/table.json."""
    p = Path(out) / "table.json"
    if not p.is_file():
        raise HarnessError(f"no study table at {p}; run `lora-harness run --out {out}` first")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise HarnessError(f"study table {p} is not valid JSON ({exc})") from None
    if data.get("format") != FORMAT:
        raise HarnessError(f"{p} is not a study table (format {data.get('format')!r})")
    return data
