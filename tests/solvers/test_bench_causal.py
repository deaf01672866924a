"""benchmarks/bench_causal.py runs (tiny sizes) and writes its JSON and Markdown."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_causal_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_causal", ROOT / "benchmarks/bench_causal.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "causal"
    argv = ["--min-log2", "6", "--max-log2", "8", "--exact-max-log2", "11", "--ref-max-log2", "8"]
    argv += ["--fit-min-log2", "6", "--reps", "1", "--soundness", "6", "--out", str(out)]
    assert mod.main(argv) == 0
    data = json.loads(Path(str(out) + ".json").read_text())
    assert {r["L"] for r in data["rows"]["poly_degree"]} == {64, 128, 256}
    # every causal result met the masked closed form within its certificate, and streaming is exact
    for r in data["rows"]["poly_degree"] + data["rows"]["poly_eps"]:
        assert r["max_abs_error"] <= r["error_bound"]
    assert all(r["max_abs_error"] < 1e-12 for r in data["rows"]["streaming"])
    # the ops ratio of the causal schedule is deterministic: a little above half at L = 2^11
    (ratio,) = data["streaming_causal_ratio"]
    assert ratio["L"] == 2048 and 0.5 < ratio["ops_ratio"] < 0.56
    assert (
        data["fits"]["poly_degree"]["ops_exponent"] < 1.2 and "Machine:" in Path(str(out) + ".md").read_text()
    )
