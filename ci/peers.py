"""`python -m ci peers`: the gallery of real attention libraries (examples/peers/) through the referee.

For each library: install what it needs with `pip install --no-deps` into this environment (never
replacing torch) or skip it, saying why; run `check --attention` in full and forward-only mode with
the claims in its ENTRIES; measure the defects found (smallest instance, the figure); write
benchmarks/results/peers.md and peers.json. Budget: LORA_HARNESS_PEERS_BUDGET (default quick).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["sdpa", "performer", "taylor", "mea", "nystrom", "local", "linear_attention"]
IMPORTS = {
    "performer": "performer_pytorch",
    "taylor": "taylor_series_linear_attention",
    "mea": "memory_efficient_attention_pytorch",
    "nystrom": "nystrom_attention",
    "local": "local_attention",
    "linear_attention": "linear_attention_transformer",
}


def ensure_installed(name: str, requires: list[str], install: bool = True) -> str | None:
    """None when the library imports (after a --no-deps install if needed); else why it is skipped."""
    mod = IMPORTS.get(name)
    if mod is None:
        return None
    try:
        importlib.import_module(mod)
        return None
    except ImportError as exc:
        if not install:
            return f"not installed ({exc})"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *requires]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        return f"pip install --no-deps failed: {last}"
    importlib.invalidate_caches()
    try:
        importlib.import_module(mod)
    except Exception as exc:
        return f"installed but does not import: {type(exc).__name__}: {exc}"
    return None


def _rel(path: str | None) -> str | None:
    """A counterexample path relative to the repository root (the record is committed)."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def _row(name, entry, rep, mode, secs):
    return {
        "library": name,
        "mode": mode,
        "promise": entry.get("promise", ""),
        "claim_eps": entry.get("claim_eps"),
        "claim_exponent": entry.get("claim_exponent"),
        "verdict": rep.verdict,
        "exit": rep.exit_code,
        "seconds": round(secs, 1),
        "checks": [
            {
                "check": o.check,
                "status": o.status,
                "detail": o.detail,
                "counterexample": _rel(o.counterexample),
            }
            for o in rep.outcomes
        ],
        "warnings": [f"x{n} {m}" for n, m in rep.warnings],
    }


def run_gallery(
    budget: str = "quick",
    out_dir: str | os.PathLike = ROOT / "benchmarks" / "results",
    install: bool = True,
    only: list[str] | None = None,
) -> dict:
    import torch

    from harness import from_attention
    from harness.checks import run_suite

    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    cex = out_dir / "peers-counterexamples"
    rows, skipped = [], {}
    for name in only or MODULES:
        mod = importlib.import_module(f"examples.peers.{name}")
        why = ensure_installed(name, mod.REQUIRES, install)
        if why:
            skipped[name] = why
            print(f"peers: {name} skipped: {why}", flush=True)
            continue
        for label, entry in mod.ENTRIES.items():
            for fwd in (False, True):
                solver = from_attention(entry["fn"], name=f"examples.peers.{name}:{entry['fn'].__name__}")
                t0 = time.perf_counter()
                rep = run_suite(
                    solver,
                    claim_eps=entry.get("claim_eps"),
                    claim_exponent=entry.get("claim_exponent"),
                    budget=budget,
                    out_dir=cex,
                    forward_only=fwd,
                )
                rows.append(
                    _row(label, entry, rep, "forward-only" if fwd else "full", time.perf_counter() - t0)
                )
                print(f"peers: {label} ({rows[-1]['mode']}): {rep.verdict}", flush=True)
    from ci.peers_defects import defects

    found = defects([n for n in (only or MODULES) if n not in skipped])
    record = {
        "budget": budget,
        "torch": torch.__version__,
        "rows": rows,
        "skipped": skipped,
        "defects": found,
    }
    write(record, out_dir)
    return record


def _md(record: dict) -> str:
    lines = [
        "# Peers: real attention libraries through the referee",
        "",
        (
            f"`python -m ci peers` ({record['budget']} budget, torch {record['torch']}, one thread, CPU). "
            "Each library's adapter is in `examples/peers/`; it claims what the library promises."
        ),
        "",
        "| library | promise | claim | mode | verdict | findings |",
        "|---|---|---|---|---|---|",
    ]
    for r in record["rows"]:
        claim = (
            ", ".join(
                x
                for x in (
                    f"eps {r['claim_eps']:g}" if r["claim_eps"] else "",
                    f"exponent {r['claim_exponent']:g}" if r["claim_exponent"] else "",
                )
                if x
            )
            or "none"
        )
        notable = "; ".join(
            f"{c['check']} {c['status']}: {c['detail']}"
            for c in r["checks"]
            if c["status"] in ("FAIL", "not verified", "not claimed", "info")
        )
        lines.append(
            f"| {r['library']} | {r['promise']} | {claim} | {r['mode']} | {r['verdict']} | "
            f"{notable.replace('|', '/')} |"
        )
    if record["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in record["skipped"].items())]
    lines += ["", "## Defects found (smallest instance, cause)", ""]
    for d in record["defects"]:
        lines.append(f"* **{d['library']}: {d['title']}** {d['figures']} Cause: {d['cause']}")
    return "\n".join(lines) + "\n"


def write(record: dict, out_dir: Path) -> None:
    from harness.io import atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out_dir / "peers.json", json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    )
    atomic_write_text(out_dir / "peers.md", _md(record))
    print(f"wrote {out_dir / 'peers.md'} and peers.json")


def main(extra: list[str]) -> int:
    budget = os.environ.get("LORA_HARNESS_PEERS_BUDGET", "quick")
    run_gallery(budget, only=extra or None)
    return 0
