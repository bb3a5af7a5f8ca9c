"""Shared test setup: float64 on, PyTorch as the oracle (required under CI)."""

import importlib.util
import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)

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
