"""Loading checks everything it can from the zip directory and the .npy headers before decompressing
anything; dtypes, metadata and the integrity check are strict; big-endian floats are valid."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

from harness import families
from harness.errors import HarnessError, MemoryLimitError
from harness.io import load_instance, save_instance
from harness.solvers import get_solver


def _member(a) -> bytes:
    b = io.BytesIO()
    np.lib.format.write_array(b, np.asarray(a), allow_pickle=True)
    return b.getvalue()


def _arrays(**change):
    inst = families.bounded(L=8, d=4, r=2, seed=0)
    a = {k: np.array(v) for k, v in inst.arrays.items()}
    a.update(alpha=np.array(inst.alpha), beta=np.array(inst.beta))
    a.update(change)
    return a


def _write(path, arrays, meta=None, extra=None, deflate=False):
    comp = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=comp) as zf:
        for k, v in arrays.items():
            zf.writestr(k + ".npy", _member(v))
        if meta is not None:
            zf.writestr("__meta__.npy", _member(np.array(json.dumps(meta))))
        for k, v in (extra or {}).items():
            zf.writestr(k, v)


def _bomb(path, name, shape, extra):
    """`extra` arrays and a deflated all-zero float64 member (a few KiB on disk, any size unpacked)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k, v in extra.items():
            zf.writestr(k + ".npy", _member(v))
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as fh:
            h = io.BytesIO()
            np.lib.format.write_array_header_1_0(h, {"descr": "<f8", "fortran_order": False, "shape": shape})
            fh.write(h.getvalue())
            left = int(np.prod(shape)) * 8
            while left > 0:
                fh.write(bytes(min(left, 1 << 22)))
                left -= 1 << 22


def test_big_endian_float64_and_float32_are_valid(tmp_path):
    ref = get_solver("closed-form").solve(load_instance(_save(tmp_path / "a.npz", _arrays())))
    for dt in (">f8", ">f4"):
        p = tmp_path / f"be{dt[-1]}.npz"
        _write(p, {k: v.astype(dt) if v.ndim else v for k, v in _arrays().items()})
        res = get_solver("closed-form").solve(load_instance(p))
        assert res.max_abs_error(ref) < (1e-12 if dt == ">f8" else 1e-3)


def _save(p, arrays):
    _write(p, arrays)
    return p


@pytest.mark.parametrize(
    "change,msg",
    [
        ({"W_q": np.eye(4, dtype=bool)}, "dtype bool"),
        ({"W_q": np.eye(4, dtype=np.longdouble)}, "dtype float128"),
        ({"W_q": np.eye(4, dtype=np.float16)}, "dtype float16"),
        ({"beta": np.array(True)}, "'beta' must be a real number, got dtype bool"),
    ],
)
def test_dtypes_refused_from_the_header(tmp_path, change, msg):
    _write(tmp_path / "x.npz", _arrays(**change))
    with pytest.raises(HarnessError, match=msg):
        load_instance(tmp_path / "x.npz")


@pytest.mark.parametrize(
    "meta,msg",
    [
        ({"sha256": None}, "sha256 must be 64 hex digits, got null"),
        ({"sha256": 5}, "got 5"),
        ({"sha256": ""}, 'got ""'),
        ({"format_version": True}, "format_version must be a positive integer, got True"),
        ({"format_version": -3}, "got -3"),
        ({"format_version": "1"}, "got '1'"),
        ({"format_version": 2}, "newer than this harness"),
    ],
)
def test_metadata_is_strict(tmp_path, meta, msg):
    """`"sha256": null` used to disable the integrity check on tampered data."""
    _write(tmp_path / "x.npz", _arrays(W_q=np.eye(4) * 7), meta=meta)
    with pytest.raises(HarnessError, match=msg):
        load_instance(tmp_path / "x.npz")


def test_tampered_data_with_recorded_sha_is_corrupt(tmp_path):
    p = tmp_path / "x.npz"
    save_instance(families.bounded(L=8, d=4, seed=0), p)
    with zipfile.ZipFile(p) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    w = np.load(io.BytesIO(members["W_q.npy"]))
    members["W_q.npy"] = _member(w + 1e-12)
    with zipfile.ZipFile(p, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    with pytest.raises(HarnessError, match="sha256 of the arrays does not match"):
        load_instance(p)


def test_duplicate_member_refused(tmp_path):
    p = tmp_path / "x.npz"
    _write(p, _arrays())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(p, "a") as zf:
            zf.writestr("W_q.npy", _member(np.eye(4)))
    with pytest.raises(HarnessError, match="'W_q' is stored twice"):
        load_instance(p)


def test_zip_bomb_is_refused_before_decompressing(tmp_path):
    """A 2 MB file expanding to 2.3 GB under an unknown name was decompressed before the name
    check (RSS 2.2 GiB); now the zip directory is read first."""
    p = tmp_path / "bomb.npz"
    _bomb(p, "junk.npy", (16 << 20,), _arrays())  # 128 MiB of zeros
    assert p.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(HarnessError, match="unknown array name 'junk'"):
            load_instance(p)
        assert tracemalloc.get_traced_memory()[1] < 16 << 20
    finally:
        tracemalloc.stop()


def test_consistent_bomb_refused_by_the_memory_guard(tmp_path):
    n = 1 << 21  # X_q and Y: 64 MiB each unpacked, valid shapes
    p = tmp_path / "bomb.npz"
    extra = {k: v for k, v in _arrays().items() if k not in ("X_q", "X_k", "X_v", "Y")}
    _bomb(p, "X_q.npy", (1, n, 4), extra)
    with zipfile.ZipFile(p, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Y.npy", _member(np.zeros((1, n, 4))))
    with pytest.raises(MemoryLimitError, match=r"loading .*bomb.npz .* needs about .*--max-memory"):
        load_instance(p, max_memory="100M")


@pytest.mark.parametrize(
    "body,msg",
    [
        (bytes(range(256)) * 8, "not an .npz \\(zip\\) archive"),
        (_member(np.ones(3)), "a single .npy array, not an .npz archive"),
        (b"", "not an .npz"),
    ],
)
def test_not_a_zip(tmp_path, body, msg):
    (tmp_path / "x.npz").write_bytes(body)
    with pytest.raises(HarnessError, match=msg) as e:
        load_instance(tmp_path / "x.npz")
    assert "allow_pickle" not in str(e.value)  # numpy's hint to load pickles is not passed on


def test_header_claiming_more_than_the_member_holds(tmp_path):
    h = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        h, {"descr": "<f8", "fortran_order": False, "shape": (1 << 20, 1 << 20)}
    )
    _write(
        tmp_path / "x.npz",
        {k: v for k, v in _arrays().items() if k != "W_q"},
        extra={"W_q.npy": h.getvalue()},
    )
    with pytest.raises(HarnessError, match=r"claims shape \(1048576, 1048576\)"):
        load_instance(tmp_path / "x.npz")


def test_fifo_and_folder_refused_without_opening(tmp_path):
    os.mkfifo(tmp_path / "p")
    with pytest.raises(HarnessError, match="FIFO"):
        load_instance(tmp_path / "p")  # used to block forever
    with pytest.raises(HarnessError, match="is a folder"):
        load_instance(tmp_path)
