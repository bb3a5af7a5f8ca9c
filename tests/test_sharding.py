"""Runs tests/sharding_checks.py in its own pytest process on 8 simulated CPU devices.

The device count is fixed when JAX starts, so the multi-device checks can't run in
this session's process (which the rest of the suite shares); the subprocess gets
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` and its output is shown on
failure.
"""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


TIERS = {
    # the quick tier: conv and conv_transpose per shard (their grids' covering sample,
    # explicit and automatic axes), the automatic-axes checks (their covering sample),
    # the refused layouts and the device count
    "quick": ["-m", "not exhaustive", "-k",
              "per_shard_equals or raise or warn or automatic or devices"],
    # the exhaustive tier: every check (the quick tier's again, with the rest)
    "exhaustive": ["-m", "exhaustive or not exhaustive"],
}


@pytest.mark.parametrize("tier", [
    "quick", pytest.param("exhaustive", marks=pytest.mark.exhaustive)])
def test_sharding_checks_on_8_simulated_devices(tier):
    """The checks of this tier."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         *TIERS[tier], "tests/sharding_checks.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    tail = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, tail
    assert " passed" in result.stdout and "skipped" not in result.stdout, tail
