"""benchmarks/bench_certificate.py runs (a few adversarial cases) and writes its JSON and Markdown."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_certificate_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "bench_certificate", ROOT / "benchmarks/bench_certificate.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out, md = tmp_path / "c.json", tmp_path / "c.md"
    assert mod.main(["--adversarial", "4", "--seed", "3", "--out", str(out), "--md", str(md)]) == 0
    data = json.loads(out.read_text())
    s = data["after"]["adversarial_summary"]
    assert set(s) == {"poly", "poly-chained"} and all(v["violations_valid"] == 0 for v in s.values())
    assert "Adversarial generator" in md.read_text()
