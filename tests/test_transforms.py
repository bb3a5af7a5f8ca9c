"""jit (no retracing) and vmap compose with every impl (gradients: test_autodiff.py)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv
from jaxconv._conv import conv_core

IMPLS = jaxconv.available_impls()


@pytest.mark.parametrize("impl", IMPLS)
def test_no_retrace_for_same_configuration(impl):
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.standard_normal((4, 2, 3, 3)))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(x, w):
        return jaxconv.conv2d(x, w, stride=2, padding=1, groups=2,
                              padding_mode="reflect", impl=impl)

    for seed in range(3):
        f(jnp.asarray(np.random.default_rng(seed).standard_normal((2, 4, 8, 8))), w)
    chex.clear_trace_counter()


@pytest.mark.parametrize("impl", IMPLS)
def test_eager_calls_reuse_one_compilation(impl):
    x = jnp.ones((1, 2, 6))
    w = jnp.ones((3, 2, 3))
    jaxconv.conv1d(x, w, padding=1, impl=impl)
    before = conv_core._cache_size()
    for _ in range(3):
        jaxconv.conv1d(x + 1, w, padding=1, impl=impl)
    assert conv_core._cache_size() == before


@pytest.mark.parametrize("impl", IMPLS)
def test_vmap_over_unbatched_inputs_equals_batched_call(impl):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((3, 4, 7, 6)))
    w = jnp.asarray(rng.standard_normal((6, 2, 3, 2)))
    f = lambda v: jaxconv.conv2d(v, w, stride=(1, 2), padding="valid", groups=2, impl=impl)
    np.testing.assert_allclose(jax.vmap(f)(x), f(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_vmap_over_weights_is_an_ensemble(impl):
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, 3, 9)))
    ws = jnp.asarray(rng.standard_normal((4, 5, 3, 3)))
    ys = jax.vmap(lambda w: jaxconv.conv1d(x, w, padding=1, impl=impl))(ws)
    for i in range(4):
        np.testing.assert_allclose(ys[i], jaxconv.conv1d(x, ws[i], padding=1, impl=impl),
                                   rtol=1e-12, atol=1e-12)
