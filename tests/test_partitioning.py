"""Automatic-axes partitioning on one device: the switch, the rules given to Shardy.

The sharded behaviour (8 simulated devices) is in tests/sharding_checks.py.
"""

import jax
import numpy as np
import pytest

import jaxconv
from jaxconv._partitioning import sharding_rule


@pytest.mark.parametrize(("enabled", "text"), [
    (1, "enabled=1 of type builtins.int."),
    ("no", "enabled='no' of type builtins.str."),
    (None, "enabled=None of type builtins.NoneType."),
])
def test_set_automatic_partitioning_refuses_non_bools(enabled, text):
    with pytest.raises(TypeError) as err:
        jaxconv.set_automatic_partitioning(enabled)
    assert str(err.value) == (
        f"jaxconv.set_automatic_partitioning: `enabled` must be True or False, got {text}")
    assert jaxconv.get_automatic_partitioning() is True


def test_set_automatic_partitioning_switches_and_one_device_is_unchanged():
    """On one device the kernels are inlined either way: the same values."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3))
    want = jax.jit(lambda x, w: jaxconv.conv2d(x, w, padding=1))(x, w)
    try:
        jaxconv.set_automatic_partitioning(np.False_)
        assert jaxconv.get_automatic_partitioning() is False
        got = jax.jit(lambda x, w: jaxconv.conv2d(x, w, padding=1))(x, w)
    finally:
        jaxconv.set_automatic_partitioning(True)
    assert jaxconv.get_automatic_partitioning() is True
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize(("kind", "rank", "groups", "rule", "reduced", "replicated"), [
    ("forward", 2, 1, "n ci s0 s1, o ci k0 k1 -> n o s0 s1", ("ci",), ("k0", "k1")),
    ("input_grad", 1, 1, "n o s0, o ci k0 -> n ci s0", ("o",), ("k0",)),
    ("weight_grad", 3, 1, "n ci s0 s1 s2, n o s0 s1 s2 -> o ci k0 k1 k2",
     ("n", "s0", "s1", "s2"), ("k0", "k1", "k2")),
    ("forward", 2, 4, "n c s0 s1, c ci k0 k1 -> n c s0 s1", ("ci",), ("k0", "k1")),
    ("input_grad", 2, 4, "n c s0 s1, c ci k0 k1 -> n c s0 s1", (), ("ci", "k0", "k1")),
    ("weight_grad", 1, 2, "n c s0, n c s0 -> c ci k0", ("n", "s0"), ("k0",)),
])
def test_sharding_rules(kind, rank, groups, rule, reduced, replicated):
    """Spatial factors shared by data and result; one channel factor with groups."""
    assert sharding_rule(kind, rank, groups) == (
        rule, dict(reduction_factors=reduced, need_replication_factors=replicated))
