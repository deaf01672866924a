"""Reduction tests run tiny instances: torch on one thread (a loaded 2-core machine gains nothing
from more), restored after each module."""

import pytest

from harness.measure.threads import limit_threads


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    with limit_threads(1):
        yield
