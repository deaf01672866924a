"""harness.fsio: writes never turn a device, FIFO or link into a regular file; bundles all or nothing."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from harness import fsio
from harness.errors import HarnessError

ROOT = os.geteuid() == 0


def _chardev(path, minor):
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))


@pytest.mark.skipif(not ROOT, reason="os.mknod of a character device needs root")
def test_null_device_written_through_not_replaced(tmp_path):
    node = tmp_path / "null"
    _chardev(node, 3)  # the same device as /dev/null, in a temporary folder
    fsio.write_bytes(node, b"x" * 100)
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["null"]  # no temporary left behind


@pytest.mark.skipif(not ROOT, reason="os.mknod of a character device needs root")
def test_full_device_is_one_line_error(tmp_path):
    node = tmp_path / "full"
    _chardev(node, 7)  # /dev/full: every write fails with ENOSPC
    with pytest.raises(HarnessError, match="no space left on device"):
        fsio.write_bytes(node, b"x")
    assert stat.S_ISCHR(os.lstat(node).st_mode)


def test_regular_file_replaced_atomically_keeps_mode(tmp_path):
    f = tmp_path / "a.npz"
    f.write_bytes(b"old")
    os.chmod(f, 0o640)
    fsio.write_bytes(f, b"new")
    assert f.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["a.npz"]


def test_symlink_target_updated_link_kept(tmp_path):
    (tmp_path / "real.out").write_bytes(b"old")
    os.symlink("real.out", tmp_path / "ln")
    fsio.write_bytes(tmp_path / "ln", b"new")
    assert os.path.islink(tmp_path / "ln")
    assert (tmp_path / "real.out").read_bytes() == b"new"


def test_dangling_symlink_creates_target(tmp_path):
    os.symlink("made.out", tmp_path / "ln")
    fsio.write_bytes(tmp_path / "ln", b"new")
    assert os.path.islink(tmp_path / "ln") and (tmp_path / "made.out").read_bytes() == b"new"


def test_fifo_without_reader_refused_at_once(tmp_path):
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    with pytest.raises(HarnessError, match="no reader"):
        fsio.write_bytes(fifo, b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_fifo_with_reader_written_through(tmp_path):
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    got = []
    t = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    t.start()
    for _ in range(200):  # wait until the reader has opened its end
        try:
            fsio.write_bytes(fifo, b"hello" * 1000)
            break
        except HarnessError:
            threading.Event().wait(0.01)
    t.join(5)
    assert got == [b"hello" * 1000] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_proc_fd_link_written_through(tmp_path):
    r, w = os.pipe()
    os.symlink(f"/proc/self/fd/{w}", tmp_path / "stdout")
    fsio.write_bytes(tmp_path / "stdout", b"abc")
    os.close(w)
    assert os.read(r, 10) == b"abc"
    assert os.path.islink(tmp_path / "stdout")
    os.close(r)


@pytest.mark.parametrize("name", ["", "x.npz/", "."])
def test_bad_names_refused(tmp_path, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HarnessError, match="cannot write"):
        fsio.write_bytes(name, b"x")
    assert os.listdir(tmp_path) == []


def test_directory_refused(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(HarnessError, match="is a folder"):
        fsio.write_bytes(tmp_path / "d", b"x")


def test_missing_folder_and_file_parent(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(HarnessError, match="does not exist"):
        fsio.write_bytes(tmp_path / "no" / "x", b"x")
    with pytest.raises(HarnessError, match="not a folder"):
        fsio.write_bytes(tmp_path / "f" / "x", b"x")


def test_check_readable(tmp_path):
    os.mkfifo(tmp_path / "p")
    (tmp_path / "d").mkdir()
    for p, msg in (
        (tmp_path / "p", "FIFO"),
        (tmp_path / "d", "folder"),
        (tmp_path / "no", "does not exist"),
        ("", "empty"),
    ):
        with pytest.raises(HarnessError, match=msg):
            fsio.check_readable(p, "instance")


# ------------------------------------------------------------------------------ replace_dir
def _fill(files):
    def fill(d):
        for k, v in files.items():
            (d / k).write_text(v)

    return fill


def test_replace_dir_swaps_whole_folder(tmp_path):
    out = tmp_path / "b"
    fsio.replace_dir(out, _fill({"a": "1", "stale": "x"}))
    fsio.replace_dir(out, _fill({"a": "2"}), is_ours=lambda p: True)
    assert sorted(os.listdir(out)) == ["a"] and (out / "a").read_text() == "2"
    assert os.listdir(tmp_path) == ["b"]


def test_replace_dir_failure_keeps_old(tmp_path):
    out = tmp_path / "b"
    fsio.replace_dir(out, _fill({"a": "1"}))

    def boom(d):
        (d / "a").write_text("half")
        raise HarnessError("boom")

    with pytest.raises(HarnessError, match="boom"):
        fsio.replace_dir(out, boom, is_ours=lambda p: True)
    assert os.listdir(out) == ["a"] and (out / "a").read_text() == "1"
    assert os.listdir(tmp_path) == ["b"]


def test_replace_dir_refuses_foreign_and_files(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep")
    with pytest.raises(HarnessError, match="holds other files"):
        fsio.replace_dir(tmp_path / "mine", _fill({"a": "1"}))
    assert os.listdir(tmp_path / "mine") == ["thesis.tex"]
    (tmp_path / "f").write_text("x")
    with pytest.raises(HarnessError, match="not a folder"):
        fsio.replace_dir(tmp_path / "f", _fill({"a": "1"}))


def test_stale_temporaries_cleaned(tmp_path):
    stale = tmp_path / ".b.abcd1234.tmp"
    stale.mkdir()
    (stale / "x").write_text("half")
    keep = tmp_path / ".b.user.tmp"  # not one of our names: left alone
    keep.mkdir()
    fsio.replace_dir(tmp_path / "b", _fill({"a": "1"}))
    assert sorted(os.listdir(tmp_path)) == [".b.user.tmp", "b"]


def test_check_folder_and_make_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(HarnessError, match="it exists and is a regular file, not a folder"):
        fsio.check_folder(tmp_path / "f")
    with pytest.raises(HarnessError, match="does not exist"):
        fsio.make_folder(tmp_path / "no" / "sub")
    with pytest.raises(HarnessError, match="empty path"):
        fsio.check_folder("")
    assert fsio.make_folder(tmp_path / "new").is_dir()
    assert fsio.make_folder(tmp_path / "new").is_dir()  # an existing folder is fine
    assert sorted(os.listdir(tmp_path)) == ["f", "new"]


def test_check_folder_with_parents(tmp_path):
    deep = tmp_path / "a" / "b" / "c"
    with pytest.raises(HarnessError, match="does not exist"):
        fsio.check_folder(deep)
    assert fsio.check_folder(deep, parents=True) == deep
    assert not (tmp_path / "a").exists()  # checking creates nothing
    assert fsio.make_folder(deep, parents=True).is_dir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(HarnessError, match="not a folder"):
        fsio.make_folder(tmp_path / "f" / "sub" / "x", parents=True)
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.skipif(
    ROOT, reason="root may write into a read-only folder (tests/cli/test_corpus.py drops root)"
)
def test_readonly_folder_and_file_refused(tmp_path):
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o555)
    (tmp_path / "keep").write_text("old")
    os.chmod(tmp_path / "keep", 0o444)
    try:
        with pytest.raises(HarnessError, match="not writable"):
            fsio.write_bytes(tmp_path / "ro" / "x", b"x")
        with pytest.raises(HarnessError, match="read-only"):
            fsio.write_bytes(tmp_path / "keep", b"new")
        assert (tmp_path / "keep").read_text() == "old"
    finally:
        os.chmod(tmp_path / "ro", 0o755)
