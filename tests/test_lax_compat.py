"""conv_general_dilated against jax.lax.conv_general_dilated (outputs and vjps, float64,
under jit, every impl; 0-D convolutions; every dtype lax convolves and the result dtypes
of preferred_element_type), inside flax.linen.Conv and flax.nnx.Conv, and every error
text. JAX's own convolution tests run it too: tests/test_jax_conv_suite.py."""

import functools
import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxconv

conv_general_dilated = jaxconv.conv_general_dilated

IMPLS = (*jaxconv.available_impls(), "auto")
TOL = dict(rtol=1e-10, atol=1e-10)


def _arrays(*shapes, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _value_and_vjp(fn, x, w, g):
    """``fn(x, w)`` and its vjp with cotangent `g`, both under one jit."""
    def run(x, w, g):
        y, vjp = jax.vjp(fn, x, w)
        return y, vjp(g)
    return jax.jit(run)(x, w, g)


def _check(lhs_shape, rhs_shape, kw, impl="auto", seed=0):
    lhs, rhs = _arrays(lhs_shape, rhs_shape, seed=seed)
    out_shape = jax.eval_shape(lambda a, b: lax.conv_general_dilated(a, b, **kw), lhs, rhs).shape
    (g,) = _arrays(out_shape, seed=seed + 1)
    want, (want_dx, want_dw) = _value_and_vjp(
        lambda a, b: lax.conv_general_dilated(a, b, **kw), lhs, rhs, g)
    got, (got_dx, got_dw) = _value_and_vjp(
        lambda a, b: conv_general_dilated(a, b, **kw, impl=impl), lhs, rhs, g)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, **TOL)
    np.testing.assert_allclose(got_dx, want_dx, **TOL)
    np.testing.assert_allclose(got_dw, want_dw, **TOL)


NHWC = ("NHWC", "HWIO", "NHWC")
# (id, lhs shape, rhs shape, conv_general_dilated kwargs)
CASES = [
    ("none-2d-same", (2, 3, 6, 5), (4, 3, 3, 2),
     dict(window_strides=(1, 1), padding="SAME")),
    ("nhwc-same-strided-rhs-dil", (2, 7, 6, 3), (3, 2, 3, 4),
     dict(window_strides=(2, 3), padding="SAME", rhs_dilation=(1, 2), dimension_numbers=NHWC,
          precision="highest")),
    ("nch-1d-same-lower", (2, 3, 9), (4, 3, 2),
     dict(window_strides=(2,), padding="same_lower", rhs_dilation=(2,),
          dimension_numbers=("NCH", "OIH", "NCH"))),
    ("ndhwc-3d-valid", (1, 5, 4, 6, 2), (2, 2, 3, 2, 3),
     dict(window_strides=(2, 1, 2), padding="VALID",
          dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))),
    ("dnums-object-mixed", (2, 5, 3, 6), (4, 3, 2, 3),
     dict(window_strides=(1, 2), padding="SAME",
          dimension_numbers=lax.conv_dimension_numbers((2, 5, 3, 6), (4, 3, 2, 3),
                                                       ("NHCW", "OIHW", "NCHW")))),
    ("swapped-spatial-letters", (2, 3, 6, 5), (4, 3, 2, 3),
     dict(window_strides=(2, 1), padding=((1, 0), (0, 2)),
          dimension_numbers=("NCWH", "OIHW", "NHWC"))),
    ("explicit-asymmetric", (2, 3, 5, 6), (2, 3, 3, 2),
     dict(window_strides=(1, 2), padding=((1, 2), (0, 3)))),
    ("explicit-negative", (2, 3, 7, 6), (2, 3, 2, 2),
     dict(window_strides=(2, 1), padding=((-1, 2), (2, -2)), preferred_element_type="float64")),
    ("lhs-dilation", (2, 3, 4, 5), (2, 3, 3, 2),
     dict(window_strides=(1, 1), padding=((1, 1), (2, 0)), lhs_dilation=(2, 3),
          rhs_dilation=(1, 2))),
    ("lhs-dilation-negative-strided", (1, 2, 5, 4), (3, 2, 2, 3),
     dict(window_strides=(2, 1), padding=((-1, 2), (0, -1)), lhs_dilation=(2, 2))),
    ("features-groups-nhwc", (2, 5, 5, 4), (3, 3, 2, 6),
     dict(window_strides=(1, 1), padding="SAME", feature_group_count=2,
          dimension_numbers=NHWC)),
    ("depthwise", (2, 3, 6, 6), (6, 1, 3, 3),
     dict(window_strides=(2, 2), padding=((1, 1), (1, 1)), feature_group_count=3)),
    ("batch-groups", (4, 3, 6, 5), (4, 3, 3, 2),
     dict(window_strides=(1, 1), padding="VALID", batch_group_count=2)),
    ("batch-groups-nhwc-strided", (6, 5, 4, 2), (2, 2, 2, 6),
     dict(window_strides=(2, 1), padding="SAME", batch_group_count=3, dimension_numbers=NHWC)),
    # 0-D: no spatial axes, a dot (lax's testConv0DIsDot), grouped either way
    ("0d-nc-io", (3, 4), (4, 5),
     dict(window_strides=(), padding="VALID", dimension_numbers=("NC", "IO", "NC"))),
    ("0d-feature-groups", (3, 4), (6, 2),
     dict(window_strides=(), padding=(), feature_group_count=2)),
    ("0d-batch-groups-cn", (5, 4), (5, 6),
     dict(window_strides=(), padding=(), lhs_dilation=(), rhs_dilation=(),
          batch_group_count=2, dimension_numbers=("CN", "IO", "CN"))),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("lhs_shape,rhs_shape,kw", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_matches_lax(lhs_shape, rhs_shape, kw, impl):
    _check(lhs_shape, rhs_shape, kw, impl)


@pytest.mark.parametrize("lhs_shape,rhs_shape,kw", [
    ((2, 3, 5), (4, 3, 2), dict(padding=((-5, 0),))),   # empty output
    ((2, 3, 5), (4, 3, 2), dict(padding=((-6, 3),))),   # crops past the input: only padding
    ((2, 3, 0), (4, 3, 2), dict(padding=((1, 1),))),    # empty spatial input
    ((2, 0, 5), (4, 0, 2), dict(padding=((1, 1),))),    # no features: an empty sum
    ((0, 3, 5), (4, 3, 2), dict(padding="SAME")),       # empty batch
    ((2, 3, 5), (0, 3, 2), dict(padding="VALID")),      # no output features
    ((0, 3), (4, 3), dict(window_strides=(), padding=())),  # 0-D, empty batch
    ((2, 0), (4, 0), dict(window_strides=(), padding=())),  # 0-D, an empty sum
], ids=["empty-out", "crop-all", "empty-spatial", "zero-features", "zero-batch", "zero-out",
        "0d-zero-batch", "0d-zero-features"])
def test_degenerate_shapes_match_lax(lhs_shape, rhs_shape, kw):
    _check(lhs_shape, rhs_shape, {"window_strides": (1,), **kw})


def test_eager_matches_lax():
    lhs, rhs = _arrays((2, 4, 7, 5), (3, 2, 2, 4))
    kw = dict(window_strides=(2, 1), padding="SAME", feature_group_count=2,
              dimension_numbers=("NCHW", "HWIO", "NHWC"))
    np.testing.assert_allclose(conv_general_dilated(lhs, rhs, **kw),
                               lax.conv_general_dilated(lhs, rhs, **kw), **TOL)


def test_signature_is_lax_plus_keyword_extras():
    ours = inspect.signature(conv_general_dilated).parameters
    theirs = inspect.signature(lax.conv_general_dilated).parameters
    assert [(p.name, p.kind, p.default) for p in theirs.values()] == [
        (p.name, p.kind, p.default) for p in list(ours.values())[:len(theirs)]]
    extras = list(ours.values())[len(theirs):]
    assert [(p.name, p.kind, p.default) for p in extras] == [
        ("impl", inspect.Parameter.KEYWORD_ONLY, "auto"),
        ("autodiff", inspect.Parameter.KEYWORD_ONLY, "custom")]


@pytest.mark.parametrize("dtype,preferred,rtol", [
    (np.float32, np.float64, 1e-12),   # operands cast up: exactly lax's float64 products
    (np.float16, np.float32, 2e-3),
    (np.float16, jnp.bfloat16, 2e-2),  # same width: computed in float32, rounded once
    (np.float32, np.float32, 1e-5),
])
def test_preferred_element_type(dtype, preferred, rtol):
    lhs, rhs = _arrays((2, 3, 6, 5), (4, 3, 3, 3), dtype=dtype)
    kw = dict(window_strides=(1, 2), padding="SAME", preferred_element_type=preferred)
    want = lax.conv_general_dilated(lhs, rhs, **kw)
    got = jax.jit(lambda a, b: conv_general_dilated(a, b, **kw))(lhs, rhs)
    assert got.dtype == want.dtype == jnp.dtype(preferred)
    np.testing.assert_allclose(np.float64(got), np.float64(want), rtol=rtol, atol=rtol)


# ---------------------------------------------------------------------------------------
# Every dtype lax convolves, and preferred_element_type's result dtypes, against lax.

NARROW = ("int4", "uint4", "float8_e4m3fn", "float8_e5m2", "float4_e2m1fn")
ALL_DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128",
              "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool",
              *NARROW)
# (id, lhs shape, rhs shape, kwargs): a 1-d lhs-dilated, batch-grouped NHC conv and a 0-D
# grouped one.
DTYPE_CASES = [
    ((4, 7, 3), (3, 3, 4), dict(window_strides=(2,), padding=((1, 2),), lhs_dilation=(2,),
                                batch_group_count=2, dimension_numbers=("NHC", "HIO", "NHC"))),
    ((3, 4), (6, 2), dict(window_strides=(), padding="VALID", feature_group_count=2)),
]


def _operand(dtype, shape, rng):
    """Random values spanning `dtype`: integers over their whole range (the sums wrap)."""
    dtype = jnp.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if jnp.issubdtype(dtype, jnp.integer):
        info = jnp.iinfo(dtype)
        return rng.integers(int(info.min), int(info.max), shape, endpoint=True,
                            dtype=np.uint64 if info.min == 0 else np.int64).astype(dtype)
    values = rng.standard_normal(shape)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


def _assert_same_as_lax(got, want, rtol):
    assert (got.shape, got.dtype) == (want.shape, want.dtype)
    if jnp.issubdtype(want.dtype, jnp.inexact):
        np.testing.assert_allclose(np.asarray(got).astype(np.complex128),
                                   np.asarray(want).astype(np.complex128), rtol=rtol, atol=rtol)
    else:  # integers and bool: exact, wrap-around included
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _rtol(dtype):
    """Both round a float32 (or wider) sum once: a few of the result's ulps apart."""
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):
        return 0
    return {8: 1e-5, 16: 1e-12}.get(dtype.itemsize, 4 * float(jnp.finfo(dtype).eps))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_every_dtype_matches_lax(dtype, impl):
    rng = np.random.default_rng(0)
    for lhs_shape, rhs_shape, kw in DTYPE_CASES:
        lhs, rhs = _operand(dtype, lhs_shape, rng), _operand(dtype, rhs_shape, rng)
        want = lax.conv_general_dilated(lhs, rhs, **kw)
        got = jax.jit(lambda a, b, kw=kw: conv_general_dilated(a, b, **kw, impl=impl))(lhs, rhs)
        _assert_same_as_lax(got, want, _rtol(dtype))


PREFERRED = [  # (operands, preferred): lax's own combinations and bool's
    ("int8", "int32"), ("int8", "int16"), ("uint8", "int16"), ("uint8", "uint32"),
    ("int32", "int64"), ("int16", "float16"), ("int8", "float32"), ("uint16", "bfloat16"),
    ("int64", "float64"), ("bool", "int32"), ("bool", "float32"), ("bool", "bool"),
    ("complex64", "complex128"), ("float16", "bfloat16"), ("bfloat16", "float64"),
    ("float8_e4m3fn", "float32"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype,preferred", PREFERRED, ids=[f"{a}-{b}" for a, b in PREFERRED])
def test_preferred_element_type_matches_lax(dtype, preferred, impl):
    """The result dtype and values are lax's: integer and bool operands are cast to the
    preferred type (uint8 -> int16 wraps modulo 2**16; int16 -> float16 rounds each)."""
    rng = np.random.default_rng(1)
    for lhs_shape, rhs_shape, kw in DTYPE_CASES:
        lhs, rhs = _operand(dtype, lhs_shape, rng), _operand(dtype, rhs_shape, rng)
        kw = dict(kw, preferred_element_type=preferred)
        want = lax.conv_general_dilated(lhs, rhs, **kw)
        got = jax.jit(lambda a, b, kw=kw: conv_general_dilated(a, b, **kw, impl=impl))(lhs, rhs)
        assert got.dtype == jnp.dtype(preferred)
        _assert_same_as_lax(got, want, _rtol(preferred if dtype != "complex64" else dtype))


@pytest.mark.parametrize("preferred", ["int8", "int32", "float32"])
def test_int4_with_preferred_element_type(preferred):
    """Beyond lax (XLA's CPU backend fails on it): int4 operands cast to the preferred
    type, as lax defines it, i.e. lax's result for operands cast up first."""
    rng = np.random.default_rng(4)
    for lhs_shape, rhs_shape, kw in DTYPE_CASES:
        lhs, rhs = _operand("int4", lhs_shape, rng), _operand("int4", rhs_shape, rng)
        want = lax.conv_general_dilated(lhs.astype(preferred), rhs.astype(preferred), **kw)
        got = conv_general_dilated(lhs, rhs, **kw, preferred_element_type=preferred)
        _assert_same_as_lax(got, want, _rtol(preferred))


def test_preferred_element_type_without_x64_is_lax_s():
    """Without x64 a 64-bit preferred type is its 32-bit one, as lax canonicalises it."""
    lhs, rhs = _arrays((2, 3, 6), (4, 3, 3), dtype=np.float32)
    kw = dict(window_strides=(1,), padding="SAME", preferred_element_type=np.float64)
    with jax.enable_x64(False):
        with pytest.warns(UserWarning, match="float64 requested in conv_general_dilated"):
            want = lax.conv_general_dilated(lhs, rhs, **kw)
        got = conv_general_dilated(lhs, rhs, **kw)
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_complex_vjp_is_lax_s(impl):
    """JAX's convention: a complex vjp is the transpose (no conjugation), as lax's."""
    rng = np.random.default_rng(2)
    lhs, rhs = _operand("complex128", (4, 6, 5), rng), _operand("complex128", (4, 2, 5), rng)
    kw = dict(window_strides=(2,), padding=((1, 0),), rhs_dilation=(2,), batch_group_count=2,
              dimension_numbers=("NWC", "OWI", "NWC"))
    g = _operand("complex128", jax.eval_shape(
        lambda a, b: lax.conv_general_dilated(a, b, **kw), lhs, rhs).shape, rng)
    want = _value_and_vjp(lambda a, b: lax.conv_general_dilated(a, b, **kw), lhs, rhs, g)
    got = _value_and_vjp(lambda a, b: conv_general_dilated(a, b, **kw, impl=impl), lhs, rhs, g)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.parametrize("preferred", [None, "int32", "float32"])
def test_integer_tangents_are_float0_as_in_lax(preferred):
    """Integer operands are not differentiable: jvp and vjp give what lax gives (float0
    tangents for integer values, zeros for a float result)."""
    rng = np.random.default_rng(3)
    lhs, rhs = _operand("int8", (2, 3, 5), rng), _operand("int8", (4, 3, 2), rng)
    zero = [np.zeros(a.shape, jax.dtypes.float0) for a in (lhs, rhs)]
    kw = dict(window_strides=(1,), padding="SAME", preferred_element_type=preferred)
    results = []
    for fn in (lax.conv_general_dilated, conv_general_dilated):
        y, ty = jax.jvp(lambda a, b, fn=fn: fn(a, b, **kw), (lhs, rhs), tuple(zero))
        _, vjp = jax.vjp(lambda a, b, fn=fn: fn(a, b, **kw), lhs, rhs)
        ct = np.zeros(y.shape, jax.dtypes.float0 if y.dtype.kind in "iu" else y.dtype)
        results.append((y, ty, *vjp(ct)))
    for got, want in zip(*results, strict=True):
        assert (got.shape, got.dtype) == (want.shape, want.dtype)
        if want.dtype != jax.dtypes.float0:
            np.testing.assert_array_equal(got, want)


def test_forward_mode_with_autodiff_jax():
    lhs, rhs, dx, dw = _arrays((2, 3, 6), (4, 3, 3), (2, 3, 6), (4, 3, 3))
    kw = dict(window_strides=(2,), padding="SAME", lhs_dilation=None)
    want = jax.jvp(lambda a, b: lax.conv_general_dilated(a, b, **kw), (lhs, rhs), (dx, dw))
    got = jax.jvp(lambda a, b: conv_general_dilated(a, b, **kw, autodiff="jax"), (lhs, rhs),
                  (dx, dw))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, **TOL)


# ---------------------------------------------------------------------------------------
# Flax: the same module with lax's and with jaxconv's conv_general_dilated, same params.

FLAX_CASES = [
    ("same-strided", (1, 7, 6, 3), dict(features=4, kernel_size=(3, 3), strides=2,
                                        padding="SAME")),
    ("circular", (2, 5, 6, 2), dict(features=3, kernel_size=(3, 2), padding="CIRCULAR")),
    ("reflect", (2, 5, 6, 2), dict(features=3, kernel_size=(3, 3), padding="REFLECT")),
    ("groups", (2, 6, 5, 4), dict(features=6, kernel_size=(3, 3), feature_group_count=2,
                                  padding="SAME")),
    ("kernel-dilation", (2, 8, 7, 2), dict(features=3, kernel_size=(3, 2), kernel_dilation=2,
                                           padding=((1, 2), (0, 1)))),
    ("input-dilation", (2, 4, 5, 2), dict(features=3, kernel_size=(3, 3), input_dilation=2,
                                          padding=((2, 2), (1, 2)))),
    ("causal-1d", (2, 9, 3), dict(features=2, kernel_size=(3,), padding="CAUSAL")),
    ("3d-valid", (1, 4, 5, 4, 2), dict(features=2, kernel_size=(2, 3, 2), strides=(1, 2, 1),
                                       padding="VALID")),
]


def _grads_close(got, want):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.parametrize("shape,kw", [c[1:] for c in FLAX_CASES], ids=[c[0] for c in FLAX_CASES])
def test_flax_linen_conv(shape, kw):
    nn = pytest.importorskip("flax.linen")
    x, = _arrays(shape)
    ref = nn.Conv(**kw, param_dtype=jnp.float64)
    ours = nn.Conv(**kw, param_dtype=jnp.float64, conv_general_dilated=conv_general_dilated)
    params = ref.init(jax.random.key(0), x)
    want = ref.apply(params, x)
    (g,) = _arrays(want.shape, seed=1)
    np.testing.assert_allclose(ours.apply(params, x), want, **TOL)

    def grads(module):
        return jax.jit(jax.grad(lambda p: jnp.sum(module.apply(p, x) * g)))(params)
    _grads_close(grads(ours), grads(ref))


@pytest.mark.parametrize("shape,kw", [c[1:] for c in FLAX_CASES], ids=[c[0] for c in FLAX_CASES])
def test_flax_nnx_conv(shape, kw):
    nnx = pytest.importorskip("flax.nnx")
    x, = _arrays(shape)
    kw = dict(kw, in_features=shape[-1], out_features=kw["features"])
    del kw["features"]
    ref = nnx.Conv(**kw, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    ours = nnx.Conv(**kw, param_dtype=jnp.float64, rngs=nnx.Rngs(0),
                    conv_general_dilated=conv_general_dilated)
    _grads_close(nnx.state(ours, nnx.Param), nnx.state(ref, nnx.Param))  # same init
    want = ref(x)
    (g,) = _arrays(want.shape, seed=1)
    np.testing.assert_allclose(ours(x), want, **TOL)

    def grads(model):
        return nnx.jit(nnx.grad(lambda m: jnp.sum(m(x) * g)))(model)
    _grads_close(grads(ours), grads(ref))


def test_flax_runs_jaxconv():
    """The module's program holds jaxconv's hand-written rules (its primitives), and with
    a non-lax impl no XLA convolution at all."""
    nn = pytest.importorskip("flax.linen")
    x, = _arrays((1, 6, 6, 2))  # 36 output positions: auto's XLA convolution (<= 25: gather)
    for impl, has_conv in (("auto", True), ("gather", False)):
        layer = nn.Conv(3, (3, 3), param_dtype=jnp.float64,
                        conv_general_dilated=functools.partial(conv_general_dilated, impl=impl))
        params = layer.init(jax.random.key(0), x)
        text = str(jax.make_jaxpr(lambda p, layer=layer: layer.apply(p, x))(params))
        assert "jaxconv_forward" in text
        hlo = jax.jit(lambda p, layer=layer: layer.apply(p, x)).lower(params).as_text()
        assert ("convolution" in hlo) == has_conv


def test_flax_nnx_preferred_element_type():
    nnx = pytest.importorskip("flax.nnx")
    x, = _arrays((2, 6, 5, 3), dtype=np.float32)
    kw = dict(in_features=3, out_features=4, kernel_size=(3, 3), strides=2,
              preferred_element_type=jnp.float64)
    ref = nnx.Conv(**kw, rngs=nnx.Rngs(0))
    ours = nnx.Conv(**kw, rngs=nnx.Rngs(0), conv_general_dilated=conv_general_dilated)
    want, got = ref(x), ours(x)
    assert got.dtype == want.dtype == jnp.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------
# Every error message, by its text.

P = "jaxconv.conv_general_dilated: "
X = np.zeros((2, 4, 5))  # (N, C, W)
W = np.zeros((6, 4, 3))  # (O, I, W)
WG = np.zeros((6, 2, 3))  # feature_group_count=2
# What conv_general_dilated convolves: ALL_DTYPES and the other 4- and 8-bit floats.
SUPPORTED = ", ".join((*ALL_DTYPES[:15], "int4", "uint4", "float8_e4m3fn", "float8_e4m3fnuz",
                       "float8_e4m3b11fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e3m4",
                       "float8_e4m3", "float4_e2m1fn"))


def _call(lhs=X, rhs=W, window_strides=(1,), padding="VALID", **kw):
    return lambda: conv_general_dilated(lhs, rhs, window_strides, padding, **kw)


ERRORS = [
    ("lhs-not-array", _call(lhs=[[[1.0]]]), TypeError,
     P + "`lhs` must be an array (jax.Array or numpy.ndarray), got list."),
    ("rhs-not-array", _call(rhs=3.0), TypeError,
     P + "`rhs` must be an array (jax.Array or numpy.ndarray), got float."),
    ("ndim-mismatch", _call(rhs=np.zeros((6, 4, 3, 3))), ValueError,
     P + "`lhs` and `rhs` must have the same number of dimensions, got lhs.shape=(2, 4, 5) "
     "and rhs.shape=(6, 4, 3, 3)."),
    ("ndim-too-small", _call(lhs=np.zeros((2,)), rhs=np.zeros((6,)), window_strides=()),
     ValueError, P + "`lhs` and `rhs` must have at least 2 dimensions (batch and feature; "
     "then any number of spatial), got lhs.shape=(2,)."),
    ("dnums-kind", _call(dimension_numbers="NCH"), TypeError,
     P + "`dimension_numbers` must be None, a jax.lax.ConvDimensionNumbers or a tuple of 3 "
     "strings such as ('NHWC', 'HWIO', 'NHWC'), got dimension_numbers='NCH'."),
    ("dnums-two-strings", _call(dimension_numbers=("NCH", "OIH")), TypeError,
     P + "`dimension_numbers` must be None, a jax.lax.ConvDimensionNumbers or a tuple of 3 "
     "strings such as ('NHWC', 'HWIO', 'NHWC'), got dimension_numbers=('NCH', 'OIH')."),
    ("dnums-letters", _call(dimension_numbers=("NCH", "OIH", "NCX")), ValueError,
     P + "invalid `dimension_numbers`=('NCH', 'OIH', 'NCX') for lhs.shape=(2, 4, 5), "
     "rhs.shape=(6, 4, 3): convolution dimension_numbers elements must each have the same "
     "set of spatial characters, got ('NCH', 'OIH', 'NCX')."),
    ("dnums-object-not-permutation",
     _call(dimension_numbers=lax.ConvDimensionNumbers((0, 1, 2), (0, 1, 1), (0, 1, 2))),
     ValueError, P + "`dimension_numbers`.rhs_spec must be a permutation of range(3) for 3-d "
     "operands, got rhs_spec=(0, 1, 1)."),
    ("lhs-int2", _call(lhs=X.astype(jnp.int2), rhs=W.astype(jnp.int2)), TypeError,
     P + f"`lhs` has dtype int2; supported dtypes are {SUPPORTED}."),
    ("lhs-float8-without-zero", _call(lhs=X.astype(jnp.float8_e8m0fnu),
                                      rhs=W.astype(jnp.float8_e8m0fnu)), TypeError,
     P + f"`lhs` has dtype float8_e8m0fnu; supported dtypes are {SUPPORTED}."),
    ("dtype-mismatch", _call(rhs=W.astype(np.float32)), TypeError,
     P + "`rhs` dtype float32 must equal `lhs` dtype float64 (as in lax)."),
    ("strides-int", _call(window_strides=1), TypeError,
     P + "`window_strides` must be a sequence of 1 ints (one per spatial dimension), got "
     "window_strides=1."),
    ("strides-length", _call(window_strides=(1, 1)), ValueError,
     P + "`window_strides` must have 1 ints (one per spatial dimension), got "
     "window_strides=(1, 1) of length 2."),
    ("strides-float", _call(window_strides=(1.5,)), TypeError,
     P + "`window_strides` must hold ints, got 1.5 in window_strides=(1.5,)."),
    ("strides-zero", _call(window_strides=(0,)), ValueError,
     P + "`window_strides` must be positive, got window_strides=(0,)."),
    ("lhs-dilation-zero", _call(padding=((0, 0),), lhs_dilation=(0,)), ValueError,
     P + "`lhs_dilation` must be positive, got lhs_dilation=(0,)."),
    ("rhs-dilation-length", _call(rhs_dilation=(1, 2)), ValueError,
     P + "`rhs_dilation` must have 1 ints (one per spatial dimension), got "
     "rhs_dilation=(1, 2) of length 2."),
    ("feature-groups-float", _call(feature_group_count=2.0), TypeError,
     P + "`feature_group_count` must be an int, got feature_group_count=2.0."),
    ("feature-groups-zero", _call(feature_group_count=0), ValueError,
     P + "`feature_group_count` must be positive, got feature_group_count=0."),
    ("batch-groups-negative", _call(batch_group_count=-1), ValueError,
     P + "`batch_group_count` must be positive, got batch_group_count=-1."),
    ("precision", _call(precision="fast"), ValueError,
     P + "`precision` must be None, a jax.lax.Precision, one of 'default', 'high', "
     "'highest', or a pair of those, got precision='fast'."),
    ("autodiff", _call(autodiff="torch"), ValueError,
     P + "`autodiff` must be one of ('custom', 'custom_vjp', 'jax'), got autodiff='torch'."),
    ("impl", _call(impl="cudnn"), ValueError,
     P + f"`impl` must be one of {('auto', *jaxconv.available_impls())}, or a (forward, "
     "input_grad, weight_grad) tuple of those impls, got impl='cudnn'."),
    ("impl-list", _call(impl=["lax", "lax", "lax"]), ValueError,
     P + f"`impl` must be one of {('auto', *jaxconv.available_impls())}, or a (forward, "
     "input_grad, weight_grad) tuple of those impls, got impl=['lax', 'lax', 'lax']."),
    ("preferred-int", _call(preferred_element_type=np.int32), TypeError,
     P + "`preferred_element_type` must be floating for floating operands (dtype float64), "
     "as in lax, got preferred_element_type=int32."),
    ("preferred-unsigned", _call(lhs=X.astype(np.int8), rhs=W.astype(np.int8),
                                 preferred_element_type=np.uint16), TypeError,
     P + "`preferred_element_type` must be signed integer or floating for signed integer "
     "operands (dtype int8), as in lax, got preferred_element_type=uint16."),
    ("preferred-real-for-complex", _call(lhs=X.astype(np.complex64), rhs=W.astype(np.complex64),
                                         preferred_element_type=np.float64), TypeError,
     P + "`preferred_element_type` must be complex for complex operands (dtype complex64), "
     "as in lax, got preferred_element_type=float64."),
    ("preferred-narrower-int", _call(lhs=X.astype(np.int16), rhs=W.astype(np.int16),
                                     preferred_element_type=np.int8), TypeError,
     P + "`preferred_element_type` must not be narrower than the operands' dtype int16 "
     "(as in lax), got preferred_element_type=int8."),
    ("preferred-int2", _call(preferred_element_type=jnp.int2), TypeError,
     P + f"`preferred_element_type` must be one of {SUPPORTED}, got "
     "preferred_element_type=int2."),
    ("preferred-narrower", _call(preferred_element_type=jnp.bfloat16), TypeError,
     P + "`preferred_element_type` must not be narrower than the operands' dtype float64 "
     "(as in lax), got preferred_element_type=bfloat16."),
    ("preferred-not-dtype", _call(preferred_element_type="wide"), TypeError,
     P + "`preferred_element_type` must be None or a dtype, got "
     "preferred_element_type='wide'."),
    ("out-sharding", _call(out_sharding=jax.sharding.PartitionSpec()), ValueError,
     P + "`out_sharding` is not supported (jaxconv leaves the output's sharding to XLA); "
     "pass None and reshard the result, got out_sharding=P()."),
    ("both-group-counts", _call(rhs=WG, feature_group_count=2, batch_group_count=2),
     ValueError, P + "at most one of `feature_group_count` and `batch_group_count` may be "
     "> 1, got feature_group_count=2 and batch_group_count=2."),
    ("features", _call(rhs=WG), ValueError,
     P + "the lhs feature dimension (4) must equal the rhs input feature dimension (2) times "
     "`feature_group_count` (=1), got lhs.shape=(2, 4, 5), rhs.shape=(6, 2, 3)."),
    ("out-features-groups", _call(rhs=np.zeros((5, 1, 3)), feature_group_count=4), ValueError,
     P + "the rhs output feature dimension (5) must be a multiple of `feature_group_count`, "
     "got feature_group_count=4."),
    ("out-features-batch-groups", _call(batch_group_count=4), ValueError,
     P + "the rhs output feature dimension (6) must be a multiple of `batch_group_count`, "
     "got batch_group_count=4."),
    ("batch-groups-batch", _call(batch_group_count=3), ValueError,
     P + "the lhs batch dimension (2) must be a multiple of `batch_group_count`, got "
     "batch_group_count=3."),
    ("padding-string", _call(padding="FULL"), ValueError,
     P + "`padding` string must be one of ('SAME', 'SAME_LOWER', 'VALID') (any case), got "
     "padding='FULL'."),
    ("padding-string-lhs-dilation", _call(padding="SAME", lhs_dilation=(2,)), ValueError,
     P + "string padding ('SAME') is not defined for lhs_dilation=(2,) (lax refuses it too); "
     "pass explicit (low, high) pairs."),
    ("padding-int", _call(padding=1), TypeError,
     P + "`padding` must be one of ('SAME', 'SAME_LOWER', 'VALID') or a sequence of 1 "
     "(low, high) pairs, got padding=1."),
    ("padding-length", _call(padding=((1, 1), (1, 1))), ValueError,
     P + "`padding` must have 1 (low, high) pairs (one per spatial dimension), got "
     "padding=((1, 1), (1, 1)) of length 2."),
    ("padding-not-pair", _call(padding=(1,)), ValueError,
     P + "each item of `padding` must be a (low, high) pair, got 1 in padding=(1,)."),
    ("padding-float", _call(padding=((1, 0.5),)), TypeError,
     P + "`padding` must hold ints, got 0.5 in padding=((1, 0.5),)."),
    ("crop-past-input", _call(padding=((-3, -3),)), ValueError,
     P + "negative padding crops more than the (lhs-dilated) input holds: got "
     "padding=((-3, -3),) for input spatial size (5,) with lhs_dilation=(1,)."),
]


@pytest.mark.parametrize("call,exc,message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_error(call, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        call()


def test_errors_under_jit():
    lhs, rhs = _arrays((2, 4, 5), (6, 2, 3))
    with pytest.raises(ValueError, match=re.escape(
            P + "the lhs feature dimension (4) must equal the rhs input feature dimension (2) "
            "times `feature_group_count` (=1), got lhs.shape=(2, 4, 5), rhs.shape=(6, 2, 3).")):
        jax.jit(lambda a, b: conv_general_dilated(a, b, (1,), "SAME"))(lhs, rhs)


def test_forward_mode_with_custom_rules_says_what_to_use():
    lhs, rhs = _arrays((2, 3, 6), (4, 3, 3))
    with pytest.raises(TypeError, match=re.escape(
            P + "forward-mode differentiation (jax.jvp, jax.jacfwd, jax.hessian) can't run "
            "through autodiff=\"custom_vjp\" (the hand-written rules bound with jax.custom_vjp, "
            "reverse mode only); the default, autodiff=\"custom\", runs the same rules in "
            "both modes.")):
        jax.jvp(lambda a: conv_general_dilated(a, rhs, (1,), "SAME", autodiff="custom_vjp"),
                (lhs,), (lhs,))
