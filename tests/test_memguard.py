"""harness.memguard: sizes, the default limit, and one-line refusals naming estimate, limit and option."""

from __future__ import annotations

import pytest

from harness import memguard
from harness.errors import HarnessError, MemoryLimitError
from harness.memguard import MemoryLimit, fmt_bytes, parse_size


@pytest.mark.parametrize(
    "text,want",
    [
        ("8G", 8 << 30),
        ("512M", 512 << 20),
        ("512MiB", 512 << 20),
        ("2GB", 2 * 10**9),
        ("2e9", 2 * 10**9),
        ("1.5 GiB", 3 << 29),
        ("100", 100),
        ("none", None),
        ("off", None),
    ],
)
def test_parse_size(text, want):
    assert parse_size(text) == want


@pytest.mark.parametrize("text", ["lots", "", "-1G", "8X", "0", "nanG"])
def test_parse_size_refuses(text):
    with pytest.raises(HarnessError, match="--max-memory"):
        parse_size(text)


def test_default_is_a_fraction_of_available(monkeypatch):
    monkeypatch.setattr(memguard, "available_bytes", lambda: 10 << 30)
    lim = MemoryLimit.resolve(None)
    assert lim.bytes == int(0.8 * (10 << 30)) and "80% of the 10.0 GiB available" in lim.source
    monkeypatch.setattr(memguard, "available_bytes", lambda: None)
    assert MemoryLimit.resolve(None).bytes is None  # unknown: no guard rather than a wrong one


def test_available_reads_proc_meminfo():
    avail = memguard.available_bytes()
    assert avail is None or avail > 0


def test_refusal_names_estimate_limit_and_option():
    with pytest.raises(MemoryLimitError) as e:
        MemoryLimit.resolve("1G").check(32 << 30, "closed-form on L=65536")
    msg = str(e.value)
    assert "closed-form on L=65536 needs about 32.0 GiB" in msg and "limit 1.0 GiB (--max-memory 1G)" in msg
    assert "--max-memory 40G" in msg and "\n" not in msg
    MemoryLimit.resolve("none").check(1 << 80, "anything")  # 'none' turns the guard off
    with pytest.raises(MemoryLimitError, match="more than any machine has"):
        MemoryLimit.resolve("1G").check(1 << 300, "a 2^100-row table")


def test_fmt_bytes():
    assert [fmt_bytes(n) for n in (7, 3 << 10, 5 << 20, 3 << 29, 1 << 200)] == [
        "7 B",
        "3.0 KiB",
        "5.0 MiB",
        "1.5 GiB",
        "2^200 B",
    ]


def test_family_memory_bounds_generation(tmp_path):
    import tracemalloc

    from harness import families
    from harness.io import save_instance

    for cross in (False, True):
        tracemalloc.start()
        try:
            save_instance(families.bounded(L=2048, d=32, r=2, N=2, cross=cross), tmp_path / "x.npz")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        est = families.family_memory(2048, 32, 2)
        assert peak <= est <= 4 * peak + (8 << 20), (peak, est)
