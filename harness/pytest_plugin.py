"""pytest plugin (entry point `lora_harness`): Hypothesis profiles for the harness's tiers.

Profiles: `ci` (derandomized, bounded examples, no deadline), `dev` (the default), `nightly`
(many examples). Select with HYPOTHESIS_PROFILE=ci or `--hypothesis-profile=ci`.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", derandomize=True, max_examples=25, print_blob=True, **_COMMON)
settings.register_profile("dev", max_examples=30, **_COMMON)
settings.register_profile("nightly", max_examples=300, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
