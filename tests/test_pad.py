"""jaxconv.pad against torch.nn.functional.pad and NumPy."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import NP_MODES

import jaxconv

MODES = ("constant", "reflect", "replicate", "circular")


@pytest.mark.parametrize("mode, expected", [
    ("constant", "00123400"), ("reflect", "32123432"),
    ("replicate", "11123444"), ("circular", "34123412")])
def test_documented_examples(mode, expected):
    y = jaxconv.pad(jnp.arange(1, 5), (2, 2), mode=mode)
    assert "".join(str(int(v)) for v in y) == expected


PADS = [(1, 2), (2, 0), (0, 0), (-1, 2), (2, -2), (-1, -1),
        (1, 1, 2, 0), (0, 2, -1, 1), (1, 0, 2, 1, 1, 1)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pad", PADS, ids=str)
def test_matches_torch(torch, mode, pad):
    ndim = len(pad) // 2 + 2  # PyTorch's non-constant modes want a batch and channel axis
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5, 3)[:ndim])
    expected = torch.nn.functional.pad(torch.from_numpy(x), pad, mode=mode).numpy()
    y = jaxconv.pad(jnp.asarray(x), pad, mode=mode)
    np.testing.assert_array_equal(np.asarray(y), expected)


@pytest.mark.parametrize("mode", MODES)
def test_gradient_folds_border_back_like_torch(torch, mode):
    """The adjoint of padding sums each copied border element back onto its source."""
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 5))
    pad = (2, 1, 3, 0)
    cot = np.random.default_rng(2).standard_normal(
        torch.nn.functional.pad(torch.zeros(x.shape), pad, mode=mode).shape)
    tx = torch.from_numpy(x).requires_grad_()
    torch.nn.functional.pad(tx, pad, mode=mode).backward(torch.from_numpy(cot))
    grad = jax.grad(lambda v: jnp.vdot(jaxconv.pad(v, pad, mode=mode), cot))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(grad), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_any_number_of_trailing_dims_matches_numpy(mode):
    """Beyond PyTorch: all axes of a 4-d array, checked against numpy.pad."""
    x = np.random.default_rng(3).standard_normal((3, 4, 3, 5))
    pairs = [(1, 2), (0, 3), (2, 1), (4, 0)]
    flat = tuple(itertools.chain.from_iterable(pairs[::-1]))
    expected = np.pad(x, pairs, mode=NP_MODES.get(mode, mode))
    np.testing.assert_array_equal(np.asarray(jaxconv.pad(x, flat, mode=mode)), expected)


def test_constant_value_and_dtype():
    x = jnp.ones((2, 3), jnp.bfloat16)
    y = jaxconv.pad(x, (1, 1), value=7.0)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(y[:, 0], np.float32), [7.0, 7.0])


def test_pad_under_jit_and_vmap():
    f = jax.jit(lambda v: jaxconv.pad(v, (2, 1), mode="reflect"))
    x = jnp.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(jax.vmap(f)(x), f(x))
