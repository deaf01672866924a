"""Hypothesis profiles of the harness's test tiers, registered and loaded only when asked.

`ci` (derandomized, 25 examples, no deadline), `dev` (30 examples), `nightly` (300 examples). Nothing
happens at import: the pytest plugin loads one for `--lora-hypothesis-profile NAME` (or
$LORA_HARNESS_HYPOTHESIS_PROFILE), and this project's tests/conftest.py loads $HYPOTHESIS_PROFILE
(`python -m ci fast` sets `ci`, `python -m ci slow` `nightly`).

A test that must draw fewer examples than the others scales with the loaded profile instead of fixing
a number: `@settings(max_examples=examples(6))` is 6 under `ci` and 72 under `nightly`.
"""

from __future__ import annotations

PROFILES = {
    "ci": {"derandomize": True, "max_examples": 25, "print_blob": True},
    "dev": {"max_examples": 30},
    "nightly": {"max_examples": 300},
}
CI_EXAMPLES = PROFILES["ci"]["max_examples"]


def register_profiles() -> None:
    """Register the three profiles with Hypothesis (does not load one)."""
    from hypothesis import HealthCheck, settings

    common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
    for name, kw in PROFILES.items():
        settings.register_profile(name, **common, **kw)


def load_profile(name: str) -> None:
    """Register the profiles and make `name` Hypothesis's default."""
    from hypothesis import settings

    from harness.errors import HarnessError

    if name not in PROFILES:
        raise HarnessError(f"unknown Hypothesis profile {name!r}; choose from {', '.join(PROFILES)}")
    register_profiles()
    settings.load_profile(name)


def examples(n_at_ci: int) -> int:
    """`n_at_ci` examples under the `ci` profile, scaled to the loaded profile's max_examples."""
    from hypothesis import settings

    return max(1, round(n_at_ci * settings().max_examples / CI_EXAMPLES))
