"""This project's own test configuration: its Hypothesis profile ($HYPOTHESIS_PROFILE, set by
`python -m ci`; `dev` otherwise) and one torch thread (tiny tensors; thread start-up and spinning cost
more than they gain on small CI machines)."""

import os

import pytest

from harness.checks.profiles import load_profile
from harness.measure.threads import limit_threads

load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    with limit_threads(1):
        yield
