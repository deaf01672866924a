"""Load and save the interchange format (README "Interchange format"): one `.npz` per instance.

* Arrays under their interchange names; `alpha`, `beta` as 0-d arrays; `causal` as a 0-d bool array,
  written only for causal instances (absent means false, so non-causal files keep their bytes).
* Metadata (format version, generator, seed, parameters, sha256 of the arrays) as JSON in a 0-d string
  array `__meta__` inside the file. A file written by plain `numpy.savez` with only the arrays loads.
* Writes go through harness.fsio (atomic over a regular file, written through a device, refused
  over a folder) and are deterministic: the zip
  entries carry a fixed timestamp, so the same instance gives the same bytes.
* Gradient files: `dA_m`, `dB_m` for each adapted m, and `loss` (plus `__meta__`, e.g. a certificate).
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.fsio import check_readable, write_bytes, write_text
from harness.instance import (
    ARRAY_NAMES,
    FORMAT_VERSION,
    SCALAR_NAMES,
    Instance,
    check_dtype,
    meta_json,
    validate_shapes,
)
from harness.memguard import check as check_memory
from harness.memguard import fmt_bytes

META_KEY = "__meta__"
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


# every file the harness writes goes through harness.fsio (atomic over regular files only)
atomic_write_bytes = write_bytes
atomic_write_text = write_text


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Deterministic `.npz` bytes (a zip of `.npy` members, fixed timestamps, sorted names)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_FIXED_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


NPY_MAGIC = b"\x93NUMPY"
INSTANCE_NAMES = ARRAY_NAMES + SCALAR_NAMES + ("causal", META_KEY)


def _member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, header length) from the first bytes of one .npy member (its data is not read)."""
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        return tuple(shape), dtype, fh.tell()


def npz_manifest(path: str | os.PathLike, what: str, allowed=None) -> dict[str, tuple[tuple, np.dtype]]:
    """{array name: (shape, dtype)} from the zip directory and each member's .npy header, without
    decompressing any array data (a zip bomb costs nothing here). Refused before any data is read:
    not a regular file (a FIFO would block), not a zip, a name stored twice, a name not in `allowed`,
    an object (pickle) dtype, a header claiming more bytes than its member holds."""
    p = check_readable(path, what)
    try:
        zf = zipfile.ZipFile(p)
    except zipfile.BadZipFile:
        with open(p, "rb") as fh:
            npy = fh.read(len(NPY_MAGIC)) == NPY_MAGIC
        kind = "a single .npy array, not an .npz archive" if npy else "not an .npz (zip) archive"
        raise HarnessError(f"corrupt {what} file {p}: {kind}") from None
    except OSError as exc:
        raise HarnessError(f"cannot read {what} file {p}: {exc.strerror or exc}") from None
    out: dict[str, tuple[tuple, np.dtype]] = {}
    with zf:
        infos = zf.infolist()
        names = [i.filename[:-4] if i.filename.endswith(".npy") else i.filename for i in infos]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise HarnessError(f"corrupt {what} file {p}: array {dup[0]!r} is stored twice")
        bad = [n for n in names if allowed is not None and n not in allowed]
        if bad:
            known = ", ".join(n for n in allowed if n != META_KEY)
            raise HarnessError(f"{p}: unknown array name {bad[0]!r}; expected names from {known}")
        for info, name in zip(infos, names, strict=True):
            try:
                shape, dtype, header = _member_header(zf, info)
            except (ValueError, EOFError, OSError, SyntaxError, zipfile.BadZipFile) as exc:
                raise HarnessError(f"corrupt {what} file {p}: array {name!r}: {exc}") from None
            if dtype.hasobject:
                raise HarnessError(f"{p}: array {name!r} holds Python objects (pickle); refused")
            nbytes = math.prod(shape) * dtype.itemsize
            if info.file_size - header < nbytes:
                raise HarnessError(
                    f"corrupt {what} file {p}: array {name!r} claims shape {shape} ({nbytes} bytes) "
                    f"but holds {max(info.file_size - header, 0)}"
                )
            out[name] = (shape, dtype)
    return out


def _read_npz(path, what: str, man: dict, max_memory=None, copies: float = 3.0) -> dict[str, np.ndarray]:
    """Every array of a file whose manifest `man` passed, after the memory estimate (`copies` x the
    raw bytes: the arrays, their validated copies, temporaries)."""
    raw = sum(math.prod(s) * dt.itemsize for s, dt in man.values())
    what_load = f"loading {path} ({len(man)} arrays, {fmt_bytes(raw)} uncompressed)"
    check_memory(copies * raw, what_load, max_memory)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # a CRC error, a member shorter than its header said, ...
        raise HarnessError(f"corrupt {what} file {path}: {type(exc).__name__}: {exc}") from None


class _Shape:
    """Stands in for an array in `validate_shapes` (only .shape and .ndim are read)."""

    def __init__(self, shape):
        self.shape, self.ndim = tuple(shape), len(shape)


def _check_manifest(man: dict, path) -> None:
    """Instance dtypes and shapes from the .npy headers, before any array data is read."""
    try:
        for name, (shape, dt) in man.items():
            if name == "causal":  # the mask flag: 0-d bool (or 0/1 integer); its value is read later
                if tuple(shape) not in ((), (1,)) or dt.kind not in "biu":
                    raise HarnessError(
                        f"'causal' must be a 0-d boolean array, got shape {tuple(shape)} dtype {dt}"
                    )
            elif name != META_KEY:
                check_dtype(name, dt)
        specs = {k: _Shape(s) for k, (s, _) in man.items() if k in ARRAY_NAMES}
        for name in ("X_q", "W_q", "W_k", "W_v", "Y"):
            if name not in specs:
                raise HarnessError(f"missing array {name!r}")
        specs.setdefault("X_k", specs["X_q"])
        specs.setdefault("X_v", specs["X_k"])
        validate_shapes(specs)
    except HarnessError as exc:
        raise HarnessError(f"{path}: {exc}") from None


def _check_meta(meta: dict, path) -> None:
    """format_version an integer in 1..FORMAT_VERSION; a sha256, when the key is there, 64 hex
    digits (null or a number is a corrupt file, not "skip the check")."""
    fv = meta.get("format_version", FORMAT_VERSION)
    if isinstance(fv, bool) or not isinstance(fv, int) or fv < 1:
        raise HarnessError(
            f"corrupt metadata in {path}: format_version must be a positive integer, got {fv!r}"
        )
    if fv > FORMAT_VERSION:
        raise HarnessError(f"{path}: format version {fv} is newer than this harness ({FORMAT_VERSION})")
    if "sha256" in meta:
        want = meta["sha256"]
        if not (isinstance(want, str) and len(want) == 64 and all(c in "0123456789abcdef" for c in want)):
            raise HarnessError(
                f"corrupt metadata in {path}: sha256 must be 64 hex digits, got {json.dumps(want)[:40]} "
                "(delete the key to load without the integrity check)"
            )


def _split_meta(raw: dict[str, np.ndarray], path) -> dict[str, Any]:
    if META_KEY not in raw:
        return {}
    try:
        meta = json.loads(str(raw.pop(META_KEY).reshape(())))
    except Exception:
        raise HarnessError(f"corrupt metadata in {path}: {META_KEY} is not JSON") from None
    if not isinstance(meta, dict):
        raise HarnessError(f"corrupt metadata in {path}: {META_KEY} is not a JSON object")
    return meta


def save_instance(inst: Instance, path: str | os.PathLike) -> str:
    """Save atomically; returns the sha256 recorded in the metadata."""
    sha = inst.sha256
    meta = dict(inst.meta)
    meta["format_version"] = FORMAT_VERSION
    meta["sha256"] = sha
    arrays = dict(inst.arrays)
    arrays["alpha"] = np.array(inst.alpha, dtype=np.float64)
    arrays["beta"] = np.array(inst.beta, dtype=np.float64)
    if inst.causal:  # only then: non-causal files keep their bytes
        meta["causal"] = True
        arrays["causal"] = np.array(True)
    arrays[META_KEY] = np.array(meta_json(meta))
    atomic_write_bytes(path, npz_bytes(arrays))
    return sha


def load_instance(path: str | os.PathLike, max_memory=None) -> Instance:
    """Load and validate. Names, dtypes, shapes and the memory estimate are checked from the zip
    directory and the .npy headers before any array is decompressed; a recorded sha256 must be a
    sha256 and match the arrays, else the file is corrupt."""
    man = npz_manifest(path, "instance", INSTANCE_NAMES)
    _check_manifest(man, path)
    raw = _read_npz(path, "instance", man, max_memory)
    meta = _split_meta(raw, path)
    _check_meta(meta, path)
    try:
        inst = Instance.from_arrays(raw, meta=meta)
    except HarnessError as exc:
        raise HarnessError(f"{path}: {exc}") from None
    if "causal" in meta and bool(meta["causal"]) != inst.causal:
        raise HarnessError(
            f"corrupt instance file {path}: metadata says causal={meta['causal']!r} "
            f"but the 'causal' array says {inst.causal}"
        )
    want = meta.get("sha256")
    if want is not None and want != inst.sha256:
        raise HarnessError(f"corrupt instance file {path}: sha256 of the arrays does not match the metadata")
    return inst


def save_gradients(
    grads: Mapping[str, Any], loss: float, path: str | os.PathLike, meta: Mapping[str, Any] | None = None
) -> None:
    arrays = {k: np.asarray(v) for k, v in grads.items()}
    arrays["loss"] = np.array(float(loss), dtype=np.float64)
    if meta:
        arrays[META_KEY] = np.array(meta_json(meta))
    atomic_write_bytes(path, npz_bytes(arrays))


def load_gradients(
    path: str | os.PathLike, max_memory=None
) -> tuple[dict[str, np.ndarray], float, dict[str, Any]]:
    raw = _read_npz(path, "gradient", npz_manifest(path, "gradient"), max_memory)
    meta = _split_meta(raw, path)
    if "loss" not in raw:
        raise HarnessError(f"gradient file {path} has no 'loss' array")
    loss = float(np.asarray(raw.pop("loss")).reshape(()))
    bad = sorted(k for k in raw if not (k.startswith("dA_") or k.startswith("dB_")))
    if bad:
        raise HarnessError(f"gradient file {path} has unexpected array {bad[0]!r}")
    return raw, loss, meta
