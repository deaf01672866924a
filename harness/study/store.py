"""The cell store: one JSON record per finished cell under <out>/cells/<id>.json, written atomically as
it arrives, and <out>/table.json, the stored table the report and plots read.

Nothing stored is trusted (`records.check_record`): a file that is not JSON, not an object, has no or
the wrong "id", describes another cell than its name says, or fails its checksum is reported as
invalid (the runner recomputes the cell and says so), never used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.study.cells import run_cell
from harness.study.config import FORMAT
from harness.study.grid import cell_id
from harness.study.records import check_record


def cells_dir(out: str | os.PathLike) -> Path:
    return Path(out) / "cells"


@dataclass
class Loaded:
    records: dict[str, dict] = field(default_factory=dict)  # id -> sound record
    invalid: dict[str, str] = field(default_factory=dict)  # cell id (file stem) -> why it is not used


def store_record(out: str | os.PathLike, record: dict) -> None:
    """Check the record (its checksum was set where it was computed) and write it atomically."""
    why = check_record(record)
    if why:
        rid = record.get("id") if isinstance(record, dict) else "?"
        raise HarnessError(f"study cell {rid} {why}; not stored")
    cells_dir(out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(cells_dir(out) / f"{record['id']}.json", json.dumps(record, sort_keys=True))


def run_and_store(out: str, cell: dict, refs=None) -> dict:
    """`run_cell`, then store the record atomically under <out>/cells/<id>.json."""
    rec = run_cell(cell, refs)
    store_record(out, rec)
    return rec


def load_store(out: str | os.PathLike) -> Loaded:
    """Every stored record, checked."""
    got = Loaded()
    d = cells_dir(out)
    if not d.is_dir():
        return got
    for p in sorted(d.glob("*.json")):
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            got.invalid[p.stem] = f"is not readable JSON ({type(exc).__name__})"
            continue
        why = check_record(rec, p.stem)
        if why:
            got.invalid[p.stem] = why
        else:
            got.records[rec["id"]] = rec
    return got


def load_cells(out: str | os.PathLike, cells: list[dict] | None = None) -> list[dict]:
    """Sound stored records, in grid order when `cells` is given (missing cells skipped), else by id."""
    recs = load_store(out).records
    if cells is None:
        return [recs[k] for k in sorted(recs)]
    return [recs[cid] for cid in (cell_id(c) for c in cells) if cid in recs]


def clear_store(out: str | os.PathLike) -> None:
    d = cells_dir(out)
    if d.is_dir():
        for p in d.glob("*.json"):
            p.unlink()


def clean_tmp(out: str | os.PathLike) -> list[Path]:
    """Remove temporary files left by writers that were killed (`harness.io.atomic_write_*` names
    them `.<name>.<random>.tmp`) in <out> and <out>/cells. Only with the folder's lock held."""
    gone = []
    for folder in (Path(out), cells_dir(out)):
        if folder.is_dir():
            for p in folder.glob(".*.tmp"):
                if p.is_file():
                    p.unlink()
                    gone.append(p)
    return gone


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
    """{"config", "records"} of <out>/table.json, every record checked."""
    p = Path(out) / "table.json"
    if not p.is_file():
        raise HarnessError(f"no study table at {p}; run `lora-harness run --out {out}` first")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarnessError(f"study table {p} is not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{p} is not a study table (a JSON {type(data).__name__}, not an object)")
    if data.get("format") != FORMAT or not isinstance(data.get("records"), list):
        raise HarnessError(
            f"{p} is not a study table of this version (format {data.get('format')!r}, expected {FORMAT!r})"
        )
    for i, rec in enumerate(data["records"]):
        why = check_record(rec)
        if why:
            raise HarnessError(f"{p}: record {i} {why}; rerun `lora-harness run --out {out} --resume`")
    if not isinstance(data.get("config", {}), dict):
        raise HarnessError(f"{p}: 'config' is not an object")
    return data
