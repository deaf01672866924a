"""What the CLI writes: gradient files are byte-reproducible (no timings inside), devices stay
devices, symlinks stay symlinks."""

from __future__ import annotations

import os
import stat

import pytest

from harness import families
from harness.cli import main
from harness.io import load_gradients, save_instance


@pytest.mark.parametrize("solver", ["closed-form", "streaming", "autograd", "poly", "random-features"])
def test_gradient_files_are_byte_reproducible(tmp_path, solver):
    save_instance(families.bounded(L=16, d=4, r=2, seed=3), tmp_path / "i.npz")
    for name in ("a.npz", "b.npz"):
        assert (
            main(["solve", str(tmp_path / "i.npz"), "--solver", solver, "--out", str(tmp_path / name)]) == 0
        )
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    _, _, meta = load_gradients(tmp_path / "a.npz")
    assert "seconds" not in meta and meta["solver"] == solver


@pytest.mark.skipif(os.geteuid() != 0, reason="os.mknod of a character device needs root")
@pytest.mark.parametrize(
    "argv",
    [
        ["solve", "{i}", "--out"],
        ["generate", "bounded", "--L", "8", "--d", "4", "--out"],
        ["reductions", "--png"],
    ],
)
def test_a_null_device_is_written_through_never_replaced(tmp_path, argv):
    """As root, `--out /dev/null` renamed a regular file over the device node (for everyone on the
    machine). Here on a node made in a temporary folder (never the real /dev)."""
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    save_instance(families.bounded(L=8, d=4, r=2, seed=0), tmp_path / "i.npz")
    assert main([a.replace("{i}", str(tmp_path / "i.npz")) for a in argv] + [str(node)]) == 0
    assert stat.S_ISCHR(os.lstat(node).st_mode) and os.lstat(node).st_rdev == os.makedev(1, 3)
    assert sorted(os.listdir(tmp_path)) == ["i.npz", "null"]


def test_symlinked_output_updates_its_target(tmp_path):
    (tmp_path / "real.npz").write_bytes(b"old")
    os.symlink("real.npz", tmp_path / "link.npz")
    assert main(["generate", "bounded", "--L", "8", "--d", "4", "--out", str(tmp_path / "link.npz")]) == 0
    assert os.path.islink(tmp_path / "link.npz") and (tmp_path / "real.npz").read_bytes()[:2] == b"PK"


def test_check_writes_nothing_into_the_current_folder(tmp_path):
    """`check` draws with Hypothesis, which caches under ./.hypothesis by default; the CLI points it
    at the user's cache folder instead, so a run in someone's project leaves the folder as it was."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    work, cache = tmp_path / "project", tmp_path / "cache"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    env["XDG_CACHE_HOME"] = str(cache)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "check",
        "--solver",
        "closed-form",
        "--budget",
        "smoke",
        "--checks",
        "finite",
        "--out-dir",
        str(tmp_path / "cex"),
    ]
    p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert list(work.iterdir()) == []
    assert (cache / "lora-harness" / "hypothesis").is_dir()
