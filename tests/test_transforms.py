"""jit (no retracing), vmap and grad compose with every impl."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import GRID

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


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", GRID[::8], ids=lambda c: c.id)
def test_grad_matches_torch_autograd(torch, case, impl):
    x, w, b = case.arrays(np.float64)
    rng = np.random.default_rng(5)
    if b is None:
        b = rng.standard_normal(w.shape[0])
    fn = {1: jaxconv.conv1d, 2: jaxconv.conv2d, 3: jaxconv.conv3d}[case.rank]
    y_shape = fn(x, w, b, **case.kwargs, impl=impl).shape
    cot = rng.standard_normal(y_shape)

    def loss(x, w, b):
        return jnp.vdot(fn(x, w, b, **case.kwargs, impl=impl), cot)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, w, b)

    cls = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[case.rank]
    m = cls(w.shape[1] * case.groups, w.shape[0], w.shape[2:], **case.kwargs).double()
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w))
        m.bias.copy_(torch.from_numpy(b))
    tx = torch.from_numpy(x).requires_grad_()
    m(tx).backward(torch.from_numpy(cot))
    for got, want in zip(grads, (tx.grad, m.weight.grad, m.bias.grad), strict=True):
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-10, atol=1e-10)
