"""Every case of the bad-input corpus (tests/cli/corpus.py): exit code 2, exactly one line on stderr
starting with `lora-harness: error: `, nothing in the case's folder created, changed or removed."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from harness.cli import main
from tests.cli.corpus import cases

ROOT = os.geteuid() == 0
NOBODY = 65534
CASES = list(cases())


def snapshot(root: Path) -> dict:
    """Kind, mode and content hash of everything under root (symlinks, devices and FIFOs by lstat)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = os.lstat(p)
            key = str(p.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                out[key] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(p.read_bytes()).hexdigest())
            elif stat.S_ISLNK(st.st_mode):
                out[key] = ("link", os.readlink(p))
            else:
                out[key] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_rdev)
    return out


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
    return rc, err.getvalue()


def run_unprivileged(argv: list[str]) -> tuple[int, str]:
    """As root, read-only folders and files are writable: run the command in a forked child that
    dropped to uid/gid 65534. (Not root: the chmod in the case's setup is enough.)"""
    if not ROOT:
        return run_cli(argv)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            rc, err = run_cli(argv)
            os.write(w, f"{rc}\n{err}".encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    rc, _, err = data.decode().partition("\n")
    return int(rc), err


@pytest.fixture
def work(tmp_path):
    """The case's folder: under pytest's tmp_path, or (when a case runs without root) a fresh folder
    in the system temp directory, which uid 65534 can reach (pytest's is private to its user)."""
    if not ROOT:
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix="lora-corpus-"))
    os.chmod(d, 0o777)
    try:
        yield d
    finally:
        for root, dirs, _ in os.walk(d):
            for x in dirs:
                os.chmod(os.path.join(root, x), 0o777)
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_one_line_exit_2_nothing_changed(case, work, monkeypatch):
    if "root" in case.needs and not ROOT:
        pytest.skip("making a character device (os.mknod) needs root")
    if case.setup:
        case.setup(work)
    before = snapshot(work)
    monkeypatch.chdir(work)
    argv = [a.replace("{d}", str(work)) for a in case.argv]
    rc, err = (run_unprivileged if "unprivileged" in case.needs else run_cli)(argv)
    lines = err.splitlines()
    assert rc == 2, f"exit {rc}: {err!r}"
    assert len(lines) == 1 and lines[0].startswith("lora-harness: error: "), err
    if case.match:
        assert re.search(case.match, lines[0]), f"{lines[0]!r} does not match {case.match!r}"
    assert snapshot(work) == before


def test_corpus_covers_every_class():
    assert {c.cls for c in CASES} >= {
        "write-target",
        "out-folder",
        "usage",
        "range",
        "solver-option",
        "solver-spec",
        "device",
        "instance-file",
        "formula",
        "text",
        "memory",
    }
    assert len({c.id for c in CASES}) == len(CASES)
