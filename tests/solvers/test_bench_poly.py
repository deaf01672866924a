"""benchmarks/bench_poly.py runs (--tiny) and writes its JSON and Markdown (no wall time asserted)."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_poly_tiny(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_poly", ROOT / "benchmarks/bench_poly.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "p"
    assert mod.main(["--tiny", "--out", str(out)]) == 0
    data = json.loads((tmp_path / "p.json").read_text())
    big = data["large"][0]
    assert big["valid"] and big["meets_eps"] and big["error_bound"] <= 1e-6
    assert big["poly_min"] > 0 and big["streaming_min"] > 0
    assert set(data["breakdown"][0]["seconds"]) == {
        "score_range",
        "setup",
        "degree_search",
        "kernel",
        "certificate",
    }
    assert "poly speed" in (tmp_path / "p.md").read_text()
