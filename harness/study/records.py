"""A stored cell record and its checksum: {"format", "id", "cell", "result", "wall_s", "cpu_s",
"sha256"}. `id` is the hash of the cell's canonical JSON (its identity, `grid.cell_id`); `sha256` is
the hash of the record's canonical JSON without the "sha256" key, set where the cell was computed
(`seal`) and checked before it is stored and whenever it is read (`check_record`), so a record edited
by hand or damaged in transit is never used."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from harness.study.config import FORMAT
from harness.study.grid import cell_id


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def checksum(record: dict) -> str:
    """sha256 of the record's canonical JSON without its "sha256" key."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "sha256"}).encode()).hexdigest()


def seal(record: dict) -> dict:
    """The record with its checksum set."""
    out = {k: v for k, v in record.items() if k != "sha256"}
    out["sha256"] = checksum(out)
    return out


def check_record(rec: Any, expect_id: str | None = None) -> str | None:
    """None when `rec` is a sound record (of cell `expect_id` when given), else why it is not."""
    if not isinstance(rec, dict):
        return f"is a JSON {type(rec).__name__}, not a record"
    if rec.get("format") != FORMAT:
        return f"has format {rec.get('format')!r}, not {FORMAT!r}"
    for key in ("id", "cell", "result", "sha256"):
        if key not in rec:
            return f"has no {key!r}"
    if not isinstance(rec["cell"], dict) or not isinstance(rec["id"], str):
        return "has a malformed 'cell' or 'id'"
    if expect_id is not None and rec["id"] != expect_id:
        return f"holds cell {rec['id']!r} under the name {expect_id!r}"
    if cell_id(rec["cell"]) != rec["id"]:
        return "describes another cell than its id"
    try:
        ok = checksum(rec) == rec["sha256"]
    except (TypeError, ValueError):
        ok = False
    return None if ok else "fails its checksum (edited or damaged)"
