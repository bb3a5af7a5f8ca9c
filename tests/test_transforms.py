"""jit (no retracing) and vmap compose with every impl (gradients: test_autodiff.py)."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv
from jaxconv import _registry
from jaxconv._conv import conv_core
from jaxconv._conv_transpose import conv_transpose_core

IMPLS = jaxconv.available_impls()


SPELLINGS = [  # one configuration, written three ways
    dict(stride=2, padding=1, dilation=1),
    dict(stride=(2, 2), padding=(1, 1), dilation=(1, 1)),
    dict(stride=np.int64(2), padding=[1, np.int32(1)], dilation=[1, 1]),
]


@pytest.mark.parametrize("autodiff", ["custom", "custom_vjp", "jax"])
@pytest.mark.parametrize("impl", IMPLS)
def test_one_configuration_traces_the_kernel_once(monkeypatch, impl, autodiff):
    """Equivalent spellings normalise to one spec, so the jitted core (and the impl's
    kernel inside it) is traced once, however the call is written or repeated."""
    chex.clear_trace_counter()
    kernel = _registry.get_impl(impl)
    counted = dataclasses.replace(kernel, forward=chex.assert_max_traces(kernel.forward, n=1))
    monkeypatch.setitem(_registry._REGISTRY, impl, counted)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    conv_core.clear_cache()
    for i, kw in enumerate(SPELLINGS * 2):
        inp = x + i if i % 2 else jnp.asarray(x - i)  # NumPy and JAX inputs alike
        jaxconv.conv2d(inp, w, groups=2, padding_mode="reflect", impl=impl,
                       autodiff=autodiff, **kw)
    assert conv_core._cache_size() == 1


@pytest.mark.parametrize("impl", IMPLS)
def test_user_jit_traces_once(impl):
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
def test_conv_transpose_reuses_one_compilation(impl):
    x = np.ones((1, 4, 5), np.float32)
    w = np.ones((4, 3, 3), np.float32)
    jaxconv.conv_transpose1d(x, w, stride=2, padding=1, output_padding=1, impl=impl)
    before = conv_transpose_core._cache_size()
    for spelling in (dict(stride=(2,), padding=(1,), output_padding=(1,)),
                     dict(stride=np.int64(2), padding=[1], output_padding=1)):
        jaxconv.conv_transpose1d(jnp.asarray(x) + 1, w, **spelling, impl=impl)
    assert conv_transpose_core._cache_size() == before


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
