"""Every impl against PyTorch (nn.ConvNd) and the NumPy reference, over the parity grid."""

import jax.numpy as jnp
import numpy as np
import pytest
from cases import GRID
from reference import numpy_conv, torch_conv_module

import jaxconv

IMPLS = jaxconv.available_impls()
FUNCS = {1: jaxconv.conv1d, 2: jaxconv.conv2d, 3: jaxconv.conv3d}


def _run(case, impl, dtype, via_generic=False):
    x, w, b = case.arrays(dtype)
    fn = jaxconv.conv if via_generic else FUNCS[case.rank]
    y = fn(jnp.asarray(x), jnp.asarray(w), None if b is None else jnp.asarray(b),
           **case.kwargs, impl=impl)
    return (x, w, b), y


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", GRID, ids=lambda c: c.id)
def test_float64_matches_torch(torch, case, impl):
    (x, w, b), y = _run(case, impl, np.float64)
    expected = torch_conv_module(torch, x, w, b, **case.kwargs)
    assert y.dtype == jnp.float64
    assert y.shape == expected.shape
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", GRID, ids=lambda c: c.id)
def test_float64_matches_numpy(case, impl):
    (x, w, b), y = _run(case, impl, np.float64, via_generic=True)
    expected = numpy_conv(x, w, b, **case.kwargs)
    assert y.shape == expected.shape
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", GRID[::3], ids=lambda c: c.id)
def test_float32_matches_torch(torch, case, impl):
    (x, w, b), y = _run(case, impl, np.float32)
    expected = torch_conv_module(torch, x, w, b, **case.kwargs)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", GRID[::12], ids=lambda c: c.id)
def test_half_precision_keeps_dtype_and_matches_torch(torch, case, impl, dtype):
    """Half inputs, compared with PyTorch in float32 on the same rounded inputs."""
    x, w, b = case.arrays(np.float32)
    xh, wh = jnp.asarray(x, dtype), jnp.asarray(w, dtype)
    bh = None if b is None else jnp.asarray(b, dtype)
    y = FUNCS[case.rank](xh, wh, bh, **case.kwargs, impl=impl)
    assert y.dtype == jnp.dtype(dtype)
    f32 = [None if a is None else np.asarray(a, np.float32) for a in (xh, wh, bh)]
    expected = torch_conv_module(torch, *f32, **case.kwargs)
    scale = 1 + np.abs(expected).max(initial=0.0)
    tol = {"bfloat16": 3e-2, "float16": 4e-3}[dtype] * scale
    np.testing.assert_allclose(np.asarray(y, np.float32), expected, rtol=0, atol=tol)


def test_functional_zeros_padding_matches_torch_functional(torch):
    """F.conv2d directly (not the module), with tuple stride/dilation and 'same'."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 2, 4, 3))
    b = rng.standard_normal(6)
    for kw in (dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
               dict(padding="same", dilation=(2, 1), groups=2),
               dict(padding="valid", stride=3, groups=2)):
        y = jaxconv.conv2d(x, w, b, **kw)
        expected = torch.nn.functional.conv2d(
            torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), **kw).numpy()
        np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-10, atol=1e-10)
