"""Golden instance hashes (ci/golden.json): same family, parameters and seed give the same bytes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ci import golden  # noqa: E402


def test_golden_file_covers_every_family():
    recorded = golden.load()
    missing = sorted(set(golden.all_cases()) - set(recorded))
    assert not missing, f"no golden hash for {missing}: run `python -m ci regen-golden`"


@pytest.mark.parametrize("name", sorted(golden.all_cases()))
def test_golden_instance_bytes(name):
    rec = golden.load()[name]
    inst = golden.build(name)
    cur = {name: {"array_sha256": inst.sha256, "file_sha256": golden.file_sha256(inst)}}
    assert golden.diff({name: rec}, cur) == []


def test_same_seed_same_bytes_twice():
    for name in golden.all_cases():
        assert golden.file_sha256(golden.build(name)) == golden.file_sha256(golden.build(name))


def test_diff_is_readable():
    rec = {"a": {"array_sha256": "0" * 64, "file_sha256": "1" * 64}}
    moved = {"a": {"array_sha256": "0" * 64, "file_sha256": "2" * 64}}
    [line] = golden.diff(rec, moved)
    assert "metadata or file format changed" in line
    [line] = golden.diff(rec, {"a": {"array_sha256": "3" * 64, "file_sha256": "2" * 64}})
    assert "array bytes changed" in line
    [line] = golden.diff({}, rec)
    assert "regen-golden" in line


def test_chain_instances_match_golden():
    chain = golden.chain_instances()
    if not chain:
        pytest.skip("reductions package not available")
    rec = golden.load()
    cur = {
        name: {"array_sha256": inst.sha256, "file_sha256": golden.file_sha256(inst)}
        for name, inst in chain.items()
    }
    assert golden.diff({k: rec[k] for k in cur if k in rec}, cur) == []
