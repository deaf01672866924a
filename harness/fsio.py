"""Safe file-system writes and reads: nothing already written is lost, replaced half-way, or turned
into something else.

* `write_bytes(path, data)` / `write_text(path, text)`: the one way the harness writes a file.
  - absent path or regular file (symlinks followed to their target): written to a temporary file
    `.<name>.<random>.tmp` in the target's folder, fsynced, then renamed over the target (atomic:
    readers see the old bytes or the new ones, never a mix). A replaced file keeps its permission
    bits; a file the caller may not write is refused, not replaced.
  - character devices (/dev/null, /dev/full, a tty), FIFOs and paths that go through /proc or
    /dev/fd (/dev/stdout) are *written through*, never renamed over; a FIFO with no reader is
    refused at once instead of blocking.
  - directories, block devices, sockets, '' and names ending in '/' are refused.
  Every failure is one HarnessError line: "cannot write PATH: reason".
* `replace_dir(out, fill, kind=...)`: build a whole folder (a bundle) in a temporary sibling
  folder and swap it in, all or nothing; a killed run leaves the old folder intact.
* `check_readable(path, what)`: refuse '', folders, FIFOs and devices before opening (a FIFO would
  block forever).
* `check_folder(path, what)` / `make_folder(path, what)`: an output folder that exists and is
  writable, or can be made (its parent exists); refused when it is a file or a device.
Commands call `write_target` / `check_folder` before their work, so a bad output path is refused at
once rather than after minutes of computing.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.errors import HarnessError

TMP_SUFFIX = ".tmp"
_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFREG: "a regular file",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _reason(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


def _check_name(path: str, action: str) -> None:
    if path == "":
        raise HarnessError(f"cannot {action} '': empty path")
    if path.endswith(os.sep) or path.endswith("/."):
        raise HarnessError(f"cannot {action} {path}: a file name is needed, not a folder path")


def _through_proc(path: str) -> bool:
    """Does `path` (or a symlink on the way to it) live under /proc or /dev/fd? Such paths name
    open file descriptors (/dev/stdout -> /proc/self/fd/1): written through, never replaced."""
    cur, hops = os.path.abspath(path), 0
    while True:
        if os.path.realpath(os.path.dirname(cur)).startswith(("/proc/", "/dev/fd")) or cur.startswith(
            "/proc/"
        ):
            return True
        if not os.path.islink(cur) or hops > 40:
            return False
        cur = os.path.join(os.path.dirname(cur), os.readlink(cur))
        hops += 1


def _stat(p: str, fail: str) -> os.stat_result | None:
    """os.stat following links; None when the path does not exist; other failures one line
    ("<fail>: reason")."""
    try:
        return os.stat(p)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise HarnessError(f"{fail}: a parent of it is not a folder") from None
    except OSError as exc:
        raise HarnessError(f"{fail}: {_reason(exc)}") from None


def write_target(path: str | os.PathLike) -> tuple[str, str]:
    """How `write_bytes` would write `path`: ("replace", real path) for an absent path or a regular
    file, ("through", path) for a device / FIFO / descriptor path; refusals raise HarnessError."""
    p = os.fspath(path)
    _check_name(p, "write")
    if _through_proc(p):
        return "through", p
    st = _stat(p, f"cannot write {p}")
    if st is None:
        real = os.path.realpath(p)  # a dangling symlink creates its target
        folder = os.path.dirname(real) or "."
        if not os.path.isdir(folder):
            what = "does not exist" if not os.path.lexists(folder) else "is not a folder"
            raise HarnessError(f"cannot write {p}: folder {os.path.dirname(p) or folder} {what}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise HarnessError(f"cannot write {p}: folder {os.path.dirname(p) or folder} is not writable")
        return "replace", real
    if stat.S_ISREG(st.st_mode):
        real = os.path.realpath(p)
        if not os.access(real, os.W_OK):
            raise HarnessError(f"cannot write {p}: the existing file is read-only (not replaced)")
        return "replace", real
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return "through", p
    raise HarnessError(f"cannot write {p}: it is {_kind(st.st_mode)}, not a regular file")


def _write_through(p: str, data: bytes) -> None:
    is_fifo = stat.S_ISFIFO(os.stat(p).st_mode)
    try:
        fd = os.open(p, os.O_WRONLY | (os.O_NONBLOCK if is_fifo else 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise HarnessError(f"cannot write {p}: FIFO has no reader") from None
        raise HarnessError(f"cannot write {p}: {_reason(exc)}") from None
    try:
        if is_fifo:
            os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise HarnessError(f"cannot write {p}: {_reason(exc)}") from None
    finally:
        os.close(fd)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` (module docstring): atomic over a regular file or an absent path,
    through for devices/FIFOs/descriptors, refused otherwise."""
    how, real = write_target(path)
    p = os.fspath(path)
    if how == "through":
        return _write_through(p, data)
    folder = os.path.dirname(real) or "."
    name = os.path.basename(real)
    try:
        mode = stat.S_IMODE(os.stat(real).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise HarnessError(f"cannot write {p}: folder {folder} is not writable ({_reason(exc)})") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, real)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise HarnessError(f"cannot write {p}: {_reason(exc)}") from None
        raise
    _fsync_dir(folder)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def check_readable(path: str | os.PathLike, what: str = "input") -> Path:
    """The path as a Path if it is an existing regular file (symlinks followed); one-line
    HarnessError otherwise, before anything is opened."""
    p = os.fspath(path)
    if p == "":
        raise HarnessError(f"{what} file '': empty path")
    st = _stat(p, f"cannot read {what} file {p}")
    if st is None:
        raise HarnessError(f"{what} file {p} does not exist")
    if not stat.S_ISREG(st.st_mode):
        raise HarnessError(f"{what} file {p} is {_kind(st.st_mode)}, not a regular file")
    if not os.access(p, os.R_OK):
        raise HarnessError(f"cannot read {what} file {p}: permission denied")
    return Path(p)


# ---------------------------------------------------------------------------------- folders
def check_folder(path: str | os.PathLike, what: str = "folder", *, parents: bool = False) -> Path:
    """`path` as a writable output folder: an existing writable folder, or an absent one whose
    parent is a writable folder (with `parents`: whose nearest existing ancestor is, as `mkdir -p`
    would make the rest). Nothing is created; one-line HarnessError otherwise."""
    p = os.fspath(path)
    if p == "":
        raise HarnessError(f"cannot write {what} '': empty path")
    st = _stat(p, f"cannot write {what} {p}")
    if st is None:
        parent = os.path.dirname(os.path.abspath(p))
        shown = os.path.dirname(p) or parent
        if parents:  # the nearest existing ancestor (a file on the path failed _stat above: ENOTDIR)
            while not os.path.lexists(parent) and os.path.dirname(parent) != parent:
                parent = os.path.dirname(parent)
            shown = parent
        if not os.path.isdir(parent):
            raise HarnessError(f"cannot write {what} {p}: folder {shown} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise HarnessError(f"cannot write {what} {p}: folder {shown} is not writable")
        return Path(p)
    if not stat.S_ISDIR(st.st_mode):
        raise HarnessError(f"cannot write {what} {p}: it exists and is {_kind(st.st_mode)}, not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise HarnessError(f"cannot write {what} {p}: folder {p} is not writable")
    return Path(p)


def make_folder(path: str | os.PathLike, what: str = "folder", *, parents: bool = False) -> Path:
    """`check_folder`, then create it (one level unless `parents`: a missing parent is then made too,
    else it is an error, not a surprise)."""
    p = check_folder(path, what, parents=parents)
    try:
        p.mkdir(parents=parents, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot write {what} {p}: {_reason(exc)}") from None
    return p


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False when unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


def _fsync_tree(root: str) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            try:
                fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(dirpath)


def _is_tmp_name(entry: str, name: str) -> bool:
    """`.<name>.<8 random chars>.tmp`: the names tempfile.mkstemp/mkdtemp give our temporaries."""
    mid = entry[len(name) + 2 : -len(TMP_SUFFIX)]
    return (
        entry.startswith(f".{name}.")
        and entry.endswith(TMP_SUFFIX)
        and len(mid) == 8
        and all(c.isalnum() or c == "_" for c in mid)
    )


def clean_partial(out: str | os.PathLike) -> list[str]:
    """Remove temporary folders a killed `replace_dir` left beside `out` (named like our
    temporaries, `.<name>.<8 chars>.tmp`). Returns what was removed."""
    out = os.path.abspath(os.fspath(out))
    parent, name = os.path.dirname(out), os.path.basename(out)
    gone = []
    try:
        entries = os.listdir(parent)
    except OSError:
        return gone
    for e in entries:
        q = os.path.join(parent, e)
        if _is_tmp_name(e, name) and os.path.isdir(q) and not os.path.islink(q):
            shutil.rmtree(q, ignore_errors=True)
            gone.append(q)
    return gone


def check_replaceable(out: str | os.PathLike, is_ours: Callable[[Path], bool], what: str = "folder") -> str:
    """`check_folder`, and an existing folder must be empty or `is_ours` (replace_dir would swap it)."""
    o = os.fspath(out)
    o = o.rstrip("/") or o
    check_folder(o, what)
    if os.path.isdir(o) and any(True for _ in os.scandir(o)) and not is_ours(Path(o)):
        raise HarnessError(
            f"cannot write {what} {o}: the folder holds other files; choose a new or empty folder"
        )
    return o


def replace_dir(
    out: str | os.PathLike,
    fill: Callable[[Path], None],
    *,
    is_ours: Callable[[Path], bool] = lambda p: False,
    what: str = "folder",
) -> None:
    """Build folder `out` all or nothing: `fill(tmp)` writes every file into a fresh temporary
    sibling folder, which is then swapped in for `out` (renameat2 exchange, else two renames).
    An existing `out` must be empty or `is_ours(out)` (e.g. an earlier bundle): a folder holding
    someone else's files is refused, never overwritten. A kill at any point leaves `out` as it was
    (or already complete); leftovers are removed by the next call."""
    o = check_replaceable(out, is_ours, what)
    st = os.stat(o) if os.path.isdir(o) else None
    real = os.path.realpath(o)
    parent = os.path.dirname(real)
    old = os.path.join(parent, f".{os.path.basename(real)}.old{TMP_SUFFIX}")
    if os.path.isdir(old) and not os.path.islink(old):  # a fallback swap was killed half-way
        if st is None:
            os.rename(old, real)
            st = os.stat(real)
        else:
            shutil.rmtree(old, ignore_errors=True)
    clean_partial(real)
    try:
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(real)}.", suffix=TMP_SUFFIX, dir=parent)
    except OSError as exc:
        raise HarnessError(
            f"cannot write {what} {o}: folder {parent} is not writable ({_reason(exc)})"
        ) from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        fill(Path(tmp))
        _fsync_tree(tmp)
        if st is None:
            os.rename(tmp, real)
        else:
            if not _exchange(tmp, real):  # no renameat2: two renames, recoverable (see above)
                os.rename(real, old)
                os.rename(tmp, real)
                tmp = old
            shutil.rmtree(tmp, ignore_errors=True)  # the old folder, now under the temporary name
        _fsync_dir(parent)
    except BaseException as exc:
        if os.path.isdir(tmp) and os.path.realpath(tmp) != real:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise HarnessError(f"cannot write {what} {o}: {_reason(exc)}") from None
        raise
