"""Explicit ``(low, high)`` padding pairs (beyond PyTorch), against PyTorch.

conv with pairs == ``F.pad`` by those pairs, then ``F.convNd`` with no padding;
conv_transpose with pairs == ``F.conv_transposeNd`` with no padding, cropped by
``low`` at the start and ``high`` at the end of each axis. Outputs and the
gradients of input, weight and bias (VJP with the same cotangent), every impl.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv

IMPLS = jaxconv.available_impls()

# (rank, pairs, stride, dilation, groups, padding_mode)
CONV_CASES = [
    (1, ((0, 2),), 1, 1, 1, "zeros"),
    (1, ((3, 1),), 2, 1, 2, "reflect"),
    (2, ((1, 0), (0, 2)), 1, 2, 1, "zeros"),
    (2, ((2, 1), 1), (2, 1), 1, 4, "circular"),
    (2, ((0, 1), (1, 0)), 2, 1, 1, "replicate"),
    (3, ((1, 0), (0, 1), (2, 0)), 1, 1, 2, "zeros"),
]
TRANSPOSE_CASES = [
    (1, ((0, 2),), 2, 1, 1),
    (2, ((1, 0), (2, 1)), 2, 1, 2),
    (2, ((0, 1), 1), (1, 2), 2, 1),
    (3, ((1, 0), (0, 1), (1, 1)), 2, 1, 1),
]


def _arrays(rng, x_shape, w_shape, out_channels):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(out_channels)
    return x, w, b


def _jax_vjp(f, x, w, b, cot_seed=0):
    y, vjp = jax.vjp(f, jnp.asarray(x), jnp.asarray(w), jnp.asarray(b))
    cot = np.random.default_rng(cot_seed).standard_normal(y.shape)
    return np.asarray(y), [np.asarray(g) for g in vjp(jnp.asarray(cot))], cot


def _torch_vjp(torch, f, x, w, b, cot):
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = f(tx, tw, tb)
    y.backward(torch.tensor(cot))
    return y.detach().numpy(), [t.grad.numpy() for t in (tx, tw, tb)]


def _torch_pad(pairs, rank):
    """F.pad's argument: last axis first, (low, high) per axis."""
    pairs = [p if isinstance(p, tuple) else (p, p) for p in pairs]
    return [v for lo_hi in reversed(pairs) for v in lo_hi]


def _assert_same(got, want):
    (y, grads), (ty, tgrads) = got, want
    assert y.shape == ty.shape
    np.testing.assert_allclose(y, ty, rtol=1e-10, atol=1e-10)
    for g, tg in zip(grads, tgrads, strict=True):
        np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}d-{c[1]}-{c[5]}")
def test_conv_pairs_match_torch_pad_then_conv(torch, case, impl):
    rank, pairs, stride, dilation, groups, mode = case
    rng = np.random.default_rng(0)
    x, w, b = _arrays(rng, (2, 4, *(7,) * rank), (4, 4 // groups, *(3,) * rank), 4)

    def f(x, w, b):
        return jaxconv.conv(x, w, b, stride, pairs, dilation, groups, padding_mode=mode,
                            impl=impl)

    y, grads, cot = _jax_vjp(f, x, w, b)
    tconv = getattr(torch.nn.functional, f"conv{rank}d")
    tmode = "constant" if mode == "zeros" else mode

    def tf(x, w, b):
        return tconv(torch.nn.functional.pad(x, _torch_pad(pairs, rank), mode=tmode), w, b,
                     stride, 0, dilation, groups)

    _assert_same((y, grads), _torch_vjp(torch, tf, x, w, b, cot))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=lambda c: f"{c[0]}d-{c[1]}")
def test_conv_transpose_pairs_match_torch_crop(torch, case, impl):
    rank, pairs, stride, dilation, groups = case
    rng = np.random.default_rng(1)
    x, w, b = _arrays(rng, (2, 4, *(5,) * rank), (4, 6 // groups, *(3,) * rank), 6)

    def f(x, w, b):
        return jaxconv.conv_transpose(x, w, b, stride, pairs, 0, groups, dilation, impl=impl)

    y, grads, cot = _jax_vjp(f, x, w, b)
    tconv = getattr(torch.nn.functional, f"conv_transpose{rank}d")
    crop = tuple(slice(None, None) for _ in range(2)) + tuple(
        slice(lo, -hi if hi else None)
        for lo, hi in (p if isinstance(p, tuple) else (p, p) for p in pairs))

    def tf(x, w, b):
        return tconv(x, w, b, stride, 0, 0, groups, dilation)[crop]

    _assert_same((y, grads), _torch_vjp(torch, tf, x, w, b, cot))


def test_symmetric_pairs_equal_int_padding_exactly():
    """``((p, p),)`` is PyTorch's ``p``: the same spec, so the same program and bits."""
    x = jnp.asarray(np.random.default_rng(2).standard_normal((1, 3, 9, 9)))
    w = jnp.asarray(np.random.default_rng(3).standard_normal((5, 3, 3, 3)))
    a = jaxconv.conv2d(x, w, padding=((1, 1), (2, 2)), padding_mode="reflect")
    b = jaxconv.conv2d(x, w, padding=(1, 2), padding_mode="reflect")
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
