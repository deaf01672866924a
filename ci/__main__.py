"""The regression suite's entry point.

Test tiers (pytest):
    python -m ci fast      every change: `-m "not slow and not benchmark_only"`, Hypothesis profile `ci`
                           (derandomized, bounded examples); the whole project's tier stays < 10 min
                           on 2 cores
    python -m ci slow      nightly: `-m "slow or hypothesis"` (the @slow tests and every property test),
                           Hypothesis profile `nightly` (12x the examples of `ci`)
    python -m ci all       both tiers
    python -m ci bench     pytest-benchmark benchmarks (`-m benchmark_only`)
Extra pytest arguments follow the tier: `python -m ci fast -x -k golden`.

Deterministic figures and gates:
    python -m ci check-baseline     compare this run's deterministic figures with ci/baseline.json
    python -m ci update-baseline    rewrite ci/baseline.json deliberately (say why in the commit)
    python -m ci check-golden       compare fixed-seed instance hashes with ci/golden.json
    python -m ci regen-golden       rewrite ci/golden.json deliberately
    python -m ci gates              same-run wall-time ratio gates (ci/gates.py; slow-tier material)
    python -m ci peers [NAME ...]   the gallery (examples/peers/) through the referee
                                    -> benchmarks/results/peers.md
                                    (installs each library with --no-deps, or skips it saying why; slow tier)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TIERS = {
    "fast": ["-m", "not slow and not benchmark_only", "-q", "-ra"],
    "slow": ["-m", "slow or hypothesis", "-q", "-ra"],
    "all": ["-m", "not benchmark_only", "-q", "-ra"],
    "bench": ["-m", "benchmark_only", "--benchmark-only", "-q"],
}
ROOT = Path(__file__).resolve().parents[1]


def _run_tier(tier: str, extra: list[str]) -> int:
    import pytest

    os.environ.setdefault("HYPOTHESIS_PROFILE", "nightly" if tier == "slow" else "ci")
    code = pytest.main([str(ROOT / "tests")] + TIERS[tier] + extra)
    return 0 if code == 5 and tier == "bench" else int(code)


def _check_baseline(_extra) -> int:
    from ci import baseline

    base = baseline.load()
    rows = baseline.compare(base, baseline.compute(only=baseline.solvers_in(base)))
    bad = baseline.failures(rows)
    if rows:
        print(baseline.format_rows(rows))
    print(
        f"baseline: {len(bad)} figure(s) out of tolerance or missing"
        + ("" if bad else " - ok")
        + f" ({baseline.BASELINE_PATH})"
    )
    return 1 if bad else 0


def _update_baseline(_extra) -> int:
    from ci import baseline

    old = baseline.load()
    new = baseline.compute()
    rows = baseline.compare(old, new)
    baseline.write(new)
    if rows:
        print(baseline.format_rows(rows))
    print(f"wrote {baseline.BASELINE_PATH} ({len(new)} figures, {len(rows)} changed/new/missing)")
    return 0


def _check_golden(_extra) -> int:
    from ci import golden

    lines = golden.diff(golden.load(), golden.compute())
    for line in lines:
        print(line)
    print(f"golden: {len(lines)} mismatch(es)" + ("" if lines else " - ok") + f" ({golden.GOLDEN_PATH})")
    return 1 if lines else 0


def _regen_golden(_extra) -> int:
    from ci import golden

    cur = golden.compute()
    for line in golden.diff(golden.load(), cur):
        print(line)
    golden.write(cur)
    print(f"wrote {golden.GOLDEN_PATH} ({len(cur)} instances)")
    return 0


def _gates(_extra) -> int:
    from ci.gates import run_gates

    return 0 if run_gates() else 1


COMMANDS = {
    "check-baseline": _check_baseline,
    "update-baseline": _update_baseline,
    "check-golden": _check_golden,
    "regen-golden": _regen_golden,
    "gates": _gates,
    "peers": lambda extra: __import__("ci.peers", fromlist=["main"]).main(extra),
}


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "fast"
    if cmd in ("-h", "--help", "help"):
        print(__doc__.strip())
        return 0
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if cmd in TIERS:
        return _run_tier(cmd, argv[1:])
    if cmd in COMMANDS:
        return COMMANDS[cmd](argv[1:])
    print(
        f"python -m ci: unknown command {cmd!r}; choose from {', '.join(list(TIERS) + list(COMMANDS))}",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
