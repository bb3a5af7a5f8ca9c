"""conv_general_dilated against jax.lax.conv_general_dilated (outputs and vjps, float64,
under jit, every impl), inside flax.linen.Conv and flax.nnx.Conv, and every error text."""

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
], ids=["empty-out", "crop-all", "empty-spatial", "zero-features", "zero-batch", "zero-out"])
def test_degenerate_shapes_match_lax(lhs_shape, rhs_shape, kw):
    _check(lhs_shape, rhs_shape, dict(window_strides=(1,), **kw))


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
    x, = _arrays((1, 5, 5, 2))
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
    ("ndim-too-small", _call(lhs=np.zeros((2, 4)), rhs=np.zeros((6, 4)), window_strides=()),
     ValueError, P + "`lhs` and `rhs` must have at least 3 dimensions (batch, feature and one "
     "or more spatial), got lhs.shape=(2, 4)."),
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
    ("lhs-int", _call(lhs=X.astype(np.int32), rhs=W.astype(np.int32)), TypeError,
     P + "`lhs` has dtype int32; supported dtypes are float16, bfloat16, float32, float64."),
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
     P + "`preferred_element_type` must be a floating dtype for floating operands (jaxconv "
     "computes float16, bfloat16, float32 and float64 only), got "
     "preferred_element_type=int32."),
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
