"""Helpers the benchmark scripts share: the machine's description and writing OUT.json / OUT.md."""

from __future__ import annotations

import json
import os
import platform

from harness.io import atomic_write_text


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (else platform's guess)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_results(out: str, res: dict, text: str) -> None:
    """Print the markdown table and write OUT.json and OUT.md atomically (folder created)."""
    print(text)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    atomic_write_text(out + ".json", json.dumps(res, indent=1))
    atomic_write_text(out + ".md", text)
