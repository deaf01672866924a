"""Run a test tier: `python -m ci fast` (every change, <= 10 min on 2 cores), `slow` (nightly),
`all`, or `bench` (pytest-benchmark benchmarks). Hypothesis uses the derandomized `ci` profile
unless HYPOTHESIS_PROFILE says otherwise."""
from __future__ import annotations

import os
import sys

import pytest

TIERS = {
    "fast": ["-m", "not slow and not benchmark_only", "-q", "-ra"],
    "slow": ["-m", "slow", "-q", "-ra"],
    "all": ["-m", "not benchmark_only", "-q", "-ra"],
    "bench": ["-m", "benchmark_only", "--benchmark-only", "-q"],
}


def main(argv: list[str]) -> int:
    tier = argv[0] if argv else "fast"
    if tier not in TIERS:
        print(f"python -m ci: unknown tier {tier!r}; choose from {', '.join(TIERS)}", file=sys.stderr)
        return 2
    os.environ.setdefault("HYPOTHESIS_PROFILE", "nightly" if tier == "slow" else "ci")
    args = ["tests"] + TIERS[tier] + ["-p", "no:randomly"] * 0 + argv[1:]
    code = pytest.main(args)
    return 0 if code == 5 and tier == "bench" else int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
