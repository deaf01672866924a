"""The regression suite: `python -m ci fast|slow|all|bench` runs one tier (see ci/__main__.py);
golden instance hashes (ci/golden.py), deterministic baseline figures (ci/baseline.py) and
same-run ratio gates (ci/gates.py)."""

from __future__ import annotations

import json
from pathlib import Path


def read_section(path: Path, key: str) -> dict:
    """The `key` mapping of a JSON record file written by `write_section` ({} when absent)."""
    if not path.exists():
        return {}
    return json.loads(path.read_text())[key]


def write_section(path: Path, key: str, about: str, data: dict) -> None:
    """Rewrite a JSON record file atomically, sorted keys, one line per entry field."""
    from harness.io import atomic_write_text

    doc = {"format": 1, "about": about, key: data}
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
