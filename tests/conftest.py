"""Shared test setup: float64 on, PyTorch as the oracle (required under CI)."""

import importlib.util
import os

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)

# Hypothesis profiles: "ci" (default) is reproducible and sized for CI (tests/test_fuzz.py in
# about a minute on 2 cores); "long" fuzzes (JAXCONV_HYPOTHESIS_PROFILE=long or pytest
# --hypothesis-profile=long; JAXCONV_HYPOTHESIS_EXAMPLES=n: n examples per test instead).
# Tests that set max_examples themselves keep their count.
settings.register_profile("ci", derandomize=True, max_examples=6, deadline=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", settings.get_profile("ci"), derandomize=False,
                          max_examples=int(os.environ.get("JAXCONV_HYPOTHESIS_EXAMPLES", 500)))
settings.load_profile(os.environ.get("JAXCONV_HYPOTHESIS_PROFILE", "ci"))

TORCH_REQUIRED = os.environ.get("CI", "").lower() in ("1", "true") or bool(
    os.environ.get("JAXCONV_REQUIRE_TORCH")
)


def pytest_configure(config):
    if TORCH_REQUIRED and importlib.util.find_spec("torch") is None:
        raise pytest.UsageError(
            "PyTorch, the test oracle, is not installed, and CI / JAXCONV_REQUIRE_TORCH "
            "forbids skipping its tests: pip install torch==2.13.0 (CPU build)."
        )


@pytest.fixture(scope="session")
def torch():
    """The PyTorch module; skips outside CI when it is not installed."""
    return pytest.importorskip("torch")
