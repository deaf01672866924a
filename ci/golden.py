"""Golden instance hashes: same family, same parameters, same seed -> the same `.npz` bytes.

`ci/golden.json` records, for fixed-seed instances of every family, the sha256 of the file written by
`harness.io.save_instance` (arrays, scalars and metadata) and of the arrays alone
(`Instance.sha256`). `tests/ci/test_golden.py` regenerates and compares; `python -m ci regen-golden`
rewrites the file deliberately (say why in the commit message).

The array bytes go through numpy's generator and a BLAS product (the gamma scaling), so the hashes
pin the environment too: a different numpy major version or BLAS build can change the last bit.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from ci import read_section, write_section

GOLDEN_PATH = Path(__file__).resolve().parent / "golden.json"

# name -> (family function in harness.families, keyword arguments)
CASES: dict[str, tuple[str, dict]] = {
    "bounded": ("bounded", dict(L=16, d=4, r=2, gamma=1.0, seed=0)),
    "bounded-cross-qkv-f32": (
        "bounded",
        dict(L=12, d=4, r=2, gamma=1.0, adapt=("q", "k", "v"), N=2, cross=True, dtype="float32", seed=1),
    ),
    "threshold": ("threshold", dict(L=32, d=4, r=1, c=1.0, seed=2)),
    "outliers": ("outliers", dict(L=16, d=4, r=2, seed=3)),
    "gaussian": ("gaussian", dict(L=5, Lk=7, d=3, r=2, N=2, adapt=("q", "k", "v"), seed=4)),
}


DEFAULT_PARAMS = dict(L=16, d=4, r=2, seed=5)  # for a family added to harness.families.FAMILIES later


def all_cases() -> dict[str, tuple[str, dict]]:
    """CASES plus one default case for every registered family that CASES does not cover yet."""
    from harness.families import FAMILIES

    cases = dict(CASES)
    covered = {fam for fam, _ in CASES.values()}
    for fam in sorted(set(FAMILIES) - covered):
        cases[fam] = (fam, dict(DEFAULT_PARAMS))
    return cases


def file_sha256(inst) -> str:
    """sha256 of the bytes `harness.io.save_instance` writes for `inst`."""
    from harness.io import save_instance

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "golden.npz"
        save_instance(inst, path)
        return hashlib.sha256(path.read_bytes()).hexdigest()


def build(name: str):
    from harness import families

    fam, kw = all_cases()[name]
    return getattr(families, fam)(**kw)


def chain_instances() -> dict:
    """The small reduction-chain instances of the `chain` check."""
    from harness.checks.chain import chain_cases

    return {f"chain/{case[0]}": case[1] for case in chain_cases()}


def compute() -> dict[str, dict]:
    out = {}
    for name, (fam, kw) in all_cases().items():
        inst = build(name)
        out[name] = {
            "family": fam,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()},
            "file_sha256": file_sha256(inst),
            "array_sha256": inst.sha256,
        }
    for name, inst in chain_instances().items():
        out[name] = {
            "family": "reduction-chain",
            "params": dict(inst.meta.get("params", {})),
            "file_sha256": file_sha256(inst),
            "array_sha256": inst.sha256,
        }
    return out


def load() -> dict[str, dict]:
    return read_section(GOLDEN_PATH, "cases")


def write(cases: dict[str, dict]) -> None:
    write_section(
        GOLDEN_PATH,
        "cases",
        "sha256 of fixed-seed instances; rewrite with `python -m ci regen-golden`",
        cases,
    )


def diff(golden: dict[str, dict], current: dict[str, dict]) -> list[str]:
    """One readable line per mismatch (empty when everything matches)."""
    lines = []
    for name in sorted(set(golden) | set(current)):
        g, c = golden.get(name), current.get(name)
        if g is None:
            lines.append(f"{name}: new instance, not in ci/golden.json (run `python -m ci regen-golden`)")
        elif c is None:
            if not name.startswith("chain/"):
                lines.append(f"{name}: in ci/golden.json but no longer generated")
        elif g["array_sha256"] != c["array_sha256"]:
            lines.append(
                f"{name}: array bytes changed: sha256 {g['array_sha256'][:16]}.. (golden) "
                f"vs {c['array_sha256'][:16]}.. (now) - the generator's output changed"
            )
        elif g["file_sha256"] != c["file_sha256"]:
            lines.append(
                f"{name}: file bytes changed, arrays unchanged: sha256 {g['file_sha256'][:16]}.. "
                f"(golden) vs {c['file_sha256'][:16]}.. (now) - metadata or file format changed"
            )
    return lines
