"""Load and save the interchange format (README "Interchange format"): one `.npz` per instance.

* Arrays under their interchange names; `alpha`, `beta` as 0-d arrays.
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
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.fsio import write_bytes, write_text
from harness.instance import FORMAT_VERSION, Instance, meta_json

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


def _read_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise HarnessError(f"{what} file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except HarnessError:
        raise
    except ValueError as exc:
        raise HarnessError(f"corrupt {what} file {path}: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError, ...
        raise HarnessError(f"corrupt {what} file {path}: {type(exc).__name__}: {exc}") from None


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
    arrays[META_KEY] = np.array(meta_json(meta))
    atomic_write_bytes(path, npz_bytes(arrays))
    return sha


def load_instance(path: str | os.PathLike) -> Instance:
    """Load and validate. A recorded sha256 that does not match the arrays is a corrupt file."""
    raw = _read_npz(path, "instance")
    meta = _split_meta(raw, path)
    fv = meta.get("format_version", FORMAT_VERSION)
    if not isinstance(fv, int) or fv > FORMAT_VERSION:
        raise HarnessError(f"{path}: format version {fv!r} is newer than this harness ({FORMAT_VERSION})")
    try:
        inst = Instance.from_arrays(raw, meta=meta)
    except HarnessError as exc:
        raise HarnessError(f"{path}: {exc}") from None
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


def load_gradients(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], float, dict[str, Any]]:
    raw = _read_npz(path, "gradient")
    meta = _split_meta(raw, path)
    if "loss" not in raw:
        raise HarnessError(f"gradient file {path} has no 'loss' array")
    loss = float(np.asarray(raw.pop("loss")).reshape(()))
    bad = sorted(k for k in raw if not (k.startswith("dA_") or k.startswith("dB_")))
    if bad:
        raise HarnessError(f"gradient file {path} has unexpected array {bad[0]!r}")
    return raw, loss, meta
