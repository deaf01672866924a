"""The public API at the package root: a small `__all__`, cheap to import, the version in one place,
and the README's Python example runs as written."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]


def test_root_api_names():
    from harness import (  # noqa: F401
        HarnessError,
        Instance,
        Refusal,
        assert_solver_meets,
        certify,
        families,
        from_attention,
        get_solver,
        run_suite,
        strategies,
    )

    assert set(harness.__all__) == {
        "Instance",
        "HarnessError",
        "get_solver",
        "families",
        "strategies",
        "certify",
        "run_suite",
        "assert_solver_meets",
        "from_attention",
        "Refusal",
        "__version__",
    }
    for name in harness.__all__:
        assert getattr(harness, name) is not None
    assert get_solver("closed-form").name == "closed-form" and callable(certify)


def test_import_is_cheap():
    code = "import sys, harness; assert 'torch' not in sys.modules and 'hypothesis' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_version_in_one_place():
    assert harness.__version__ == importlib.metadata.version("lora-limits")
    assert 'dynamic = ["version"]' in (ROOT / "pyproject.toml").read_text()


def test_readme_python_example_runs():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert "from harness import" in block
    exec(compile(block, "README.md", "exec"), {})
