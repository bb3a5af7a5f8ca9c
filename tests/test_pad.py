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


# mode_pad (the convolutions' pre-pad) with its hand-written adjoint: pads per axis
# with up to ADJOINT_MAX_BORDER (= 8) border positions take the fused sum, longer and
# negative ones JAX's adjoint; circular up to the axis size, reflect below it.
ADJOINT_CASES = [
    ("reflect", (5, 6), ((1, 1), (2, 1))),
    ("reflect", (9, 4), ((4, 4), (0, 3))),
    ("reflect", (10,), ((5, 4),)),  # 9 border positions: JAX's adjoint
    ("replicate", (3, 2, 4), ((1, 0), (8, 0), (2, 3))),
    ("replicate", (2,), ((5, 5),)),
    ("circular", (4, 5), ((4, 4), (1, 2))),
    ("circular", (3, 2, 2), ((1, 1), (0, 0), (2, 1))),
]


@pytest.mark.parametrize("mode, spatial, pads", ADJOINT_CASES, ids=str)
def test_mode_pad_adjoint_matches_torch(torch, mode, spatial, pads):
    """mode_pad's gradient (hand-written) is PyTorch's, and JAX's adjoint of pad_trailing."""
    from jaxconv._padding import ADJOINT_MAX_BORDER, mode_pad, pad_trailing
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, *spatial))
    out_shape = (2, 3, *(n + lo + hi for n, (lo, hi) in zip(spatial, pads, strict=True)))
    g = rng.standard_normal(out_shape)
    y, vjp = jax.vjp(lambda a: mode_pad(a, pads, mode), jnp.asarray(x))
    (dx,) = vjp(jnp.asarray(g))
    (dx_jax,) = jax.vjp(lambda a: pad_trailing(a, pads, mode), jnp.asarray(x))[1](jnp.asarray(g))
    tx = torch.from_numpy(x).requires_grad_()
    flat = tuple(v for lo_hi in reversed(pads) for v in lo_hi)
    ty = torch.nn.functional.pad(tx, flat, mode=mode) if len(pads) <= 3 else None
    if ty is not None:
        ty.backward(torch.from_numpy(g))
        np.testing.assert_array_equal(np.asarray(y), ty.detach().numpy())
        np.testing.assert_allclose(np.asarray(dx), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(dx), np.asarray(dx_jax), rtol=1e-12, atol=1e-12)
    fused = all(lo + hi <= ADJOINT_MAX_BORDER for lo, hi in pads)
    jaxpr = str(jax.make_jaxpr(lambda a: mode_pad(a, pads, mode))(jnp.asarray(x)))
    assert ("jaxconv_mode_pad" in jaxpr) == fused, jaxpr


def test_mode_pad_second_order_matches_jax_adjoint():
    """Differentiating through the hand-written adjoint (grad of grad) gives JAX's result."""
    from jaxconv._padding import mode_pad, pad_trailing
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, 3, 6, 5)))
    c = jnp.asarray(rng.standard_normal((2, 3, 6, 5)))
    pads = ((2, 1), (1, 3))

    def second(pad):
        inner = jax.grad(lambda a: jnp.sum(jnp.sin(pad(a, pads, "reflect")) ** 2))
        return jax.grad(lambda a: jnp.vdot(inner(a), c))(x)

    np.testing.assert_allclose(np.asarray(second(mode_pad)), np.asarray(second(pad_trailing)),
                               rtol=1e-12, atol=1e-12)


def test_conv_autodiff_jax_keeps_forward_mode_through_padding():
    """Forward mode runs through a mode-padded convolution by default (the pre-pad is a
    linear primitive) and with autodiff="jax" (pad_trailing); "custom_vjp" raises
    jaxconv's forward-mode hint."""
    x = jnp.ones((1, 2, 5, 5))
    w = jnp.ones((3, 2, 3, 3))
    f = lambda a, **kw: jaxconv.conv2d(a, w, padding=1, padding_mode="reflect", **kw)
    _, tangent = jax.jvp(lambda a: f(a, autodiff="jax"), (x,), (x,))
    np.testing.assert_allclose(np.asarray(tangent), np.asarray(f(x)), rtol=1e-6)
    _, tangent = jax.jvp(f, (x,), (x,))
    np.testing.assert_allclose(np.asarray(tangent), np.asarray(f(x)), rtol=1e-6)
    with pytest.raises(TypeError, match="forward-mode differentiation"):
        jax.jvp(lambda a: f(a, autodiff="custom_vjp"), (x,), (x,))
