"""Regenerating a sat-chain bundle is all or nothing: SIGKILL at any moment leaves the old bundle
byte for byte, or the complete new one; never the new formula with the old metadata. The next run
removes what a killed run left behind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.io import load_instance

PY = sys.executable


def _cli(*argv, cwd):
    return subprocess.Popen(
        [PY, "-m", "harness.cli", *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )


def _gen(v: int, seed: int, cwd: Path) -> None:
    """generate sat-chain in-process (only the run that is killed needs its own process)."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        assert main(["generate", "sat-chain", "--vars", str(v), "--seed", str(seed), "--out", "B"]) == 0
    finally:
        os.chdir(old)


def _tree(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _consistent(folder: Path, v: int) -> bool:
    """A complete bundle of the v-variable formula: header, metadata and file list agree, every
    instance loads."""
    meta = json.loads((folder / "metadata.json").read_text())
    header = next(line for line in (folder / "formula.cnf").read_text().splitlines() if line.startswith("p "))
    files = set(meta["files"]) | {"metadata.json"}
    ok = (
        meta["formula"]["v"] == v
        and header.split()[2] == str(v)
        and files == {p.name for p in folder.iterdir()}
    )
    for name in files:
        if name.startswith(("attention", "gradient", "lora")):
            load_instance(folder / name)
    return ok


def _partial(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(".B.") and p.name.endswith(".tmp")]


@pytest.mark.parametrize("files", [1, 6])
def test_kill_mid_build_keeps_old_bundle_byte_for_byte(tmp_path, files):
    """SIGKILL once the new bundle's temporary folder holds `files` files: the old bundle is intact."""
    _gen(8, 1, tmp_path)
    before = _tree(tmp_path / "B")
    proc = _cli("generate", "sat-chain", "--vars", "18", "--seed", "5", "--out", "B", cwd=tmp_path)
    seen = 0
    while proc.poll() is None:
        tmp = _partial(tmp_path)
        seen = len(list(tmp[0].iterdir())) if tmp and tmp[0].is_dir() else 0
        if seen >= files:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    proc.wait(60)
    assert seen >= files, "the run finished before the kill point"
    assert _tree(tmp_path / "B") == before
    assert _partial(tmp_path)  # what the killed run left ...
    _gen(18, 5, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B"]  # ... is gone after the next run
    assert _consistent(tmp_path / "B", 18)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.3, 0.6, 0.9, 1.2, 1.6, 2.2])
def test_kill_at_any_time_leaves_old_or_new(tmp_path, delay):
    old = _cli("generate", "sat-chain", "--k", "3", "--vars", "8", "--seed", "1", "--out", "B", cwd=tmp_path)
    assert old.wait(120) == 0
    before = _tree(tmp_path / "B")
    # v = 18 is past the AS23 cut-off (N = 512 > 256): a stale attention_as23.npz would show
    proc = _cli(
        "generate", "sat-chain", "--k", "3", "--vars", "18", "--seed", "5", "--out", "B", cwd=tmp_path
    )
    t0 = time.monotonic()
    while time.monotonic() - t0 < delay and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    after = _tree(tmp_path / "B")
    assert after == before or _consistent(tmp_path / "B", 18), sorted(after)
    # the next run completes and leaves nothing else beside the bundle
    again = _cli(
        "generate", "sat-chain", "--k", "3", "--vars", "18", "--seed", "5", "--out", "B", cwd=tmp_path
    )
    assert again.wait(300) == 0, again.stderr.read()
    assert _consistent(tmp_path / "B", 18)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B"]


def test_regeneration_removes_files_of_the_old_bundle(tmp_path):
    _gen(8, 0, tmp_path)
    assert (tmp_path / "B" / "attention_as23.npz").exists()
    _gen(18, 0, tmp_path)
    assert not (tmp_path / "B" / "attention_as23.npz").exists()
    assert _consistent(tmp_path / "B", 18)
