"""Complex, integer and bool convolutions: every impl against PyTorch and lax.

Complex values equal PyTorch's; gradients follow JAX's convention (a VJP is the
transpose, not the adjoint), so PyTorch's ``x.grad`` after ``y.backward(ct)`` is
``conj(vjp(conj(ct)))``. Integer convolutions are exact with the dtype's
wrap-around (PyTorch computes int64 on CPU); bool and narrow integers are checked
against ``lax.conv_general_dilated``. Integer inputs have no gradient (float0
tangents, as JAX).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxconv

IMPLS = ("auto", *jaxconv.available_impls())
MODES = ("zeros", "reflect", "replicate", "circular")


def _complex(rng, shape, dtype=np.complex128):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _torch_conv_and_grads(torch, x, w, b, ct, transpose, **kw):
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    if transpose:
        y = torch.nn.functional.conv_transpose2d(tx, tw, tb, **kw)
    else:
        mode = kw.pop("padding_mode")
        cls = torch.nn.Conv2d(x.shape[1], w.shape[0], w.shape[2:], padding_mode=mode, **kw,
                              dtype=tw.dtype)
        with torch.no_grad():
            cls.weight.copy_(tw)
            cls.bias.copy_(tb)
        y = cls(tx)
        tw, tb = cls.weight, cls.bias
    y.backward(torch.from_numpy(ct))
    return y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLS)
def test_complex_conv_values_and_vjps_match_torch(torch, impl, mode):
    rng = np.random.default_rng(0)
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    x, w, b = _complex(rng, (2, 4, 7, 6)), _complex(rng, (6, 2, 3, 2)), _complex(rng, (6,))
    f = lambda x, w, b: jaxconv.conv2d(x, w, b, **kw, padding_mode=mode, impl=impl)
    y, vjp = jax.vjp(f, x, w, b)
    ct = _complex(rng, y.shape)
    want = _torch_conv_and_grads(torch, x, w, b, ct, False, **kw, padding_mode=mode)
    grads = [np.conj(np.asarray(g)) for g in vjp(np.conj(ct))]
    for got, exp in zip((np.asarray(y), *grads), want, strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_complex_conv_transpose_matches_torch(torch, impl):
    rng = np.random.default_rng(1)
    kw = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1)
    x, w, b = _complex(rng, (2, 4, 4, 3)), _complex(rng, (4, 3, 3, 3)), _complex(rng, (6,))
    f = lambda x, w, b: jaxconv.conv_transpose2d(x, w, b, **kw, impl=impl)
    y, vjp = jax.vjp(f, x, w, b)
    ct = _complex(rng, y.shape)
    want = _torch_conv_and_grads(torch, x, w, b, ct, True, **kw)
    grads = [np.conj(np.asarray(g)) for g in vjp(np.conj(ct))]
    for got, exp in zip((np.asarray(y), *grads), want, strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_complex_transformations_match_lax(impl):
    """Forward mode and second order in complex, against lax's complex convolution."""
    rng = np.random.default_rng(2)
    x, w, t = _complex(rng, (1, 2, 6)), _complex(rng, (3, 2, 3)), _complex(rng, (3, 2, 3))
    ours = lambda w: jaxconv.conv1d(x, w, padding=1, impl=impl)
    ref = lambda w: lax.conv_general_dilated(x, w, (1,), [(1, 1)])
    for a, b in zip(jax.jvp(ours, (w,), (t,)), jax.jvp(ref, (w,), (t,)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)
    loss = lambda f: (lambda w: jnp.sum(jnp.abs(f(w)) ** 2))
    np.testing.assert_allclose(np.asarray(jax.grad(loss(ours))(w)),
                               np.asarray(jax.grad(loss(ref))(w)), rtol=1e-12, atol=1e-12)
    scaled = lambda f: (lambda s: loss(f)(w * s[0] + t * s[1]))
    s = jnp.array([0.7, -0.3])
    np.testing.assert_allclose(np.asarray(jax.hessian(scaled(ours))(s)),
                               np.asarray(jax.hessian(scaled(ref))(s)), rtol=1e-10, atol=1e-10)


def test_complex64_matches_torch_to_float32_accuracy(torch):
    rng = np.random.default_rng(3)
    x, w = _complex(rng, (2, 8, 9, 9), np.complex64), _complex(rng, (8, 8, 3, 3), np.complex64)
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1)
    for impl in IMPLS:
        y = jaxconv.conv2d(x, w, padding=1, impl=impl)
        assert y.dtype == jnp.complex64
        np.testing.assert_allclose(np.asarray(y), want.numpy(), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_complex_layers_match_torch(torch, impl):
    m = torch.nn.Conv2d(4, 6, 3, padding=1, groups=2, padding_mode="circular",
                        dtype=torch.complex128)
    layer, params = jaxconv.nn.from_torch(m, impl=impl)
    x = _complex(np.random.default_rng(4), (2, 4, 5, 5))
    np.testing.assert_allclose(np.asarray(layer(params, x)),
                               m(torch.from_numpy(x)).detach().numpy(), rtol=1e-12, atol=1e-12)
    mt = torch.nn.ConvTranspose1d(4, 2, 3, stride=2, dtype=torch.complex128)
    layer, params = jaxconv.nn.from_torch(mt, impl=impl)
    x = _complex(np.random.default_rng(5), (2, 4, 5))
    np.testing.assert_allclose(np.asarray(layer(params, x)),
                               mt(torch.from_numpy(x)).detach().numpy(), rtol=1e-12, atol=1e-12)


def test_complex_layer_init_draws_both_parts_from_torchs_bound():
    layer = jaxconv.nn.Conv2d(4, 8, 3, dtype="complex64")
    p = layer.init(jax.random.key(0))
    bound = 1 / np.sqrt(4 * 9)  # kaiming-uniform with a = sqrt(5): 1/sqrt(fan_in)
    for part in (p["weight"].real, p["weight"].imag):
        assert p["weight"].dtype == jnp.complex64
        assert np.abs(part).max() <= bound and np.abs(part).max() > 0.9 * bound
    assert not np.allclose(p["weight"].real, p["weight"].imag)


# --- integers and bool -------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_int64_conv_is_exact_with_wraparound_as_torch(torch, impl):
    rng = np.random.default_rng(6)
    with jax.enable_x64(True):
        for lo, hi in ((-5, 5), (-2**62, 2**62)):  # small values, then overflowing ones
            x = rng.integers(lo, hi, (2, 4, 7, 6))
            w = rng.integers(lo, hi, (6, 2, 3, 2))
            b = rng.integers(lo, hi, (6,))
            want = torch.nn.functional.conv2d(
                torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=2,
                padding=1, groups=2).numpy()
            y = jaxconv.conv2d(x, w, b, stride=2, padding=1, groups=2, impl=impl)
            assert y.dtype == jnp.int64
            np.testing.assert_array_equal(np.asarray(y), want)
            want = torch.nn.functional.conv_transpose2d(
                torch.from_numpy(x), torch.from_numpy(w[:4]), stride=2, padding=1,
                groups=2).numpy()
            y = jaxconv.conv_transpose2d(x, w[:4], stride=2, padding=1, groups=2, impl=impl)
            np.testing.assert_array_equal(np.asarray(y), want)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "uint32", "bool"])
@pytest.mark.parametrize("impl", IMPLS)
def test_narrow_integers_and_bool_match_lax(impl, dtype):
    rng = np.random.default_rng(7)
    x = rng.integers(0 if dtype == "bool" else -100, 2 if dtype == "bool" else 100,
                     (2, 4, 7, 6)).astype(dtype)
    w = rng.integers(0 if dtype == "bool" else -100, 2 if dtype == "bool" else 100,
                     (6, 2, 3, 2)).astype(dtype)
    want = lax.conv_general_dilated(x, w, (2, 1), ((1, 1), (0, 2)), rhs_dilation=(1, 2),
                                    feature_group_count=2)
    y = jaxconv.conv2d(x, w, stride=(2, 1), padding=((1, 1), (0, 2)), dilation=(1, 2),
                       groups=2, impl=impl)
    assert y.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(y), np.asarray(want))


@pytest.mark.parametrize("impl", IMPLS)
def test_integer_inputs_have_float0_tangents(impl):
    x = jnp.arange(2 * 2 * 6, dtype=jnp.int32).reshape(2, 2, 6)
    w = jnp.ones((3, 2, 3), jnp.int32)
    f = lambda x, w: jaxconv.conv1d(x, w, padding=1, padding_mode="reflect", impl=impl)
    zero = np.zeros(x.shape, jax.dtypes.float0)
    y, t = jax.jvp(f, (x, w), (zero, np.zeros(w.shape, jax.dtypes.float0)))
    assert t.dtype == jax.dtypes.float0 and y.dtype == jnp.int32
    _, vjp = jax.vjp(f, x, w)
    dx, dw = vjp(np.zeros(y.shape, jax.dtypes.float0))
    assert dx.dtype == jax.dtypes.float0 and dw.dtype == jax.dtypes.float0
    with pytest.raises(TypeError, match=re.escape("grad requires real- or complex-valued")):
        jax.grad(lambda x: jnp.sum(f(x, w)))(x)


def test_unsupported_dtype_error_lists_what_is_computed():
    x = jnp.zeros((1, 2, 5), jnp.float8_e4m3fn)
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.conv1d: `input` has dtype float8_e4m3fn; supported dtypes are float16, "
            "bfloat16, float32, float64, complex64, complex128, int8, int16, int32, int64, "
            "uint8, uint16, uint32, uint64, bool.")):
        jaxconv.conv1d(x, x[:1])


def test_layer_dtype_error_names_the_parameter_dtypes():
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.Conv2d: `dtype` must be one of ('float16', 'bfloat16', 'float32', "
            "'float64', 'complex64', 'complex128'), got dtype='int64'.")):
        jaxconv.nn.Conv2d(2, 2, 3, dtype="int64")
