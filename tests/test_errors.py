"""Every validation message, by its text, eagerly and under jax.jit."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv

X1 = np.zeros((2, 4, 5), np.float32)  # (N, C, W)
W1 = np.zeros((6, 2, 3), np.float32)  # groups=2
W1G1 = np.zeros((6, 4, 3), np.float32)

class _TensorLike:
    """Has .shape and .dtype like a torch.Tensor, but is no JAX or NumPy array."""

    shape = (1, 4, 5)
    dtype = "torch.float32"
    ndim = 3


# (id, call, exception, message)
CONV_ERRORS = [
    ("input-not-array", lambda: jaxconv.conv1d([[1.0]], W1G1), TypeError,
     "jaxconv.conv1d: `input` must be an array (jax.Array or numpy.ndarray), got list."),
    ("weight-not-array", lambda: jaxconv.conv1d(X1, 3.0), TypeError,
     "jaxconv.conv1d: `weight` must be an array (jax.Array or numpy.ndarray), got float."),
    ("bias-not-array", lambda: jaxconv.conv1d(X1, W1G1, bias=(1, 2)), TypeError,
     "jaxconv.conv1d: `bias` must be an array"),
    ("weight-rank", lambda: jaxconv.conv2d(np.zeros((1, 4, 5, 5)), W1G1), ValueError,
     "jaxconv.conv2d: `weight` must be 4-d (C_out, C_in // groups, *kernel), got "
     "weight.shape=(6, 4, 3)."),
    ("generic-weight-rank", lambda: jaxconv.conv(X1, np.zeros((6, 4))), ValueError,
     "jaxconv.conv: `weight` must have shape (C_out, C_in // groups, *kernel) with at least "
     "one spatial dimension, got weight.shape=(6, 4)."),
    ("input-rank", lambda: jaxconv.conv1d(np.zeros(4), W1G1), ValueError,
     "jaxconv.conv1d: expected 2-d (unbatched) or 3-d (batched) `input`, got input.shape=(4,)."),
    ("float8-dtype", lambda: jaxconv.conv1d(X1.astype(jnp.float8_e5m2),
                                            W1G1.astype(jnp.float8_e5m2)), TypeError,
     "jaxconv.conv1d: `input` has dtype float8_e5m2; supported dtypes are float16, bfloat16, "
     "float32, float64, complex64, complex128, int8, int16, int32, int64, uint8, uint16, "
     "uint32, uint64, bool."),
    ("dtype-mismatch", lambda: jaxconv.conv1d(X1, W1G1.astype(np.float16)), TypeError,
     "jaxconv.conv1d: `weight` dtype float16 must equal `input` dtype float32."),
    ("bias-dtype", lambda: jaxconv.conv1d(X1, W1G1, np.zeros(6, np.float16)), TypeError,
     "jaxconv.conv1d: `bias` dtype float16 must equal `input` dtype float32."),
    ("groups-zero", lambda: jaxconv.conv1d(X1, W1, groups=0), ValueError,
     "jaxconv.conv1d: `groups` must be positive, got groups=0."),
    ("groups-float", lambda: jaxconv.conv1d(X1, W1, groups=2.0), TypeError,
     "jaxconv.conv1d: `groups` must be an int, got 2.0."),
    ("groups-bool", lambda: jaxconv.conv1d(X1, W1G1, groups=True), TypeError,
     "jaxconv.conv1d: `groups` must be an int, got True."),
    ("stride-zero", lambda: jaxconv.conv1d(X1, W1G1, stride=0), ValueError,
     "jaxconv.conv1d: `stride` must be positive, got stride=0."),
    ("stride-negative-tuple", lambda: jaxconv.conv2d(np.zeros((1, 4, 5, 5)),
                                                     np.zeros((2, 4, 3, 3)), stride=(1, -1)),
     ValueError, "jaxconv.conv2d: `stride` must be positive, got stride=(1, -1)."),
    ("stride-length", lambda: jaxconv.conv1d(X1, W1G1, stride=(1, 1)), ValueError,
     "jaxconv.conv1d: `stride` must be an int or a tuple of 1 ints for a 1-d convolution, "
     "got stride=(1, 1) of length 2."),
    ("stride-float", lambda: jaxconv.conv1d(X1, W1G1, stride=1.5), TypeError,
     "jaxconv.conv1d: `stride` must be an int or a tuple of 1 ints, got 1.5."),
    ("dilation-zero", lambda: jaxconv.conv1d(X1, W1G1, dilation=0), ValueError,
     "jaxconv.conv1d: `dilation` must be positive, got dilation=0."),
    ("padding-negative", lambda: jaxconv.conv1d(X1, W1G1, padding=-1), ValueError,
     "jaxconv.conv1d: `padding` must be non-negative, got padding=-1."),
    ("padding-float", lambda: jaxconv.conv1d(X1, W1G1, padding=0.5), TypeError,
     "jaxconv.conv1d: `padding` must be an int, or a tuple of 1 ints or (low, high) pairs, "
     "got 0.5."),
    ("padding-tuple-float", lambda: jaxconv.conv1d(X1, W1G1, padding=(0.5,)), TypeError,
     "jaxconv.conv1d: `padding` must be an int, got 0.5."),
    ("padding-pair-length", lambda: jaxconv.conv1d(X1, W1G1, padding=((1, 2, 3),)), ValueError,
     "jaxconv.conv1d: each (low, high) pair in `padding` must hold 2 ints, got (1, 2, 3) in "
     "padding=((1, 2, 3),)."),
    ("padding-pair-negative", lambda: jaxconv.conv1d(X1, W1G1, padding=((1, -1),)), ValueError,
     "jaxconv.conv1d: `padding` must be non-negative, got padding=((1, -1),)."),
    ("padding-pair-float", lambda: jaxconv.conv1d(X1, W1G1, padding=((1, 0.5),)), TypeError,
     "jaxconv.conv1d: `padding` must be an int, got 0.5."),
    ("padding-1d-pair-hint", lambda: jaxconv.conv1d(X1, W1G1, padding=(1, 2)), ValueError,
     "jaxconv.conv1d: `padding` must be an int, or a tuple of 1 ints or (low, high) pairs for "
     "a 1-d convolution, got padding=(1, 2) of length 2 (one (low, high) pair for a 1-d "
     "convolution is written ((low, high),))."),
    ("input-channels-last", lambda: jaxconv.conv2d(np.zeros((2, 8, 8, 4), np.float32),
                                                   np.zeros((6, 4, 3, 3), np.float32)),
     ValueError,
     "jaxconv.conv2d: with groups=1 and weight.shape=(6, 4, 3, 3), `input` must have 4 "
     "channels, got 8 (input.shape=(2, 8, 8, 4)). The input looks channels-last (NHWC); "
     "jaxconv expects channels-first (NCHW) like PyTorch: pass jnp.moveaxis(input, -1, -3)."),
    ("weight-channels-last", lambda: jaxconv.conv2d(np.zeros((2, 16, 8, 8), np.float32),
                                                    np.zeros((3, 3, 16, 32), np.float32)),
     ValueError,
     "jaxconv.conv2d: with groups=1 and weight.shape=(3, 3, 16, 32), `input` must have 3 "
     "channels, got 16 (input.shape=(2, 16, 8, 8)). The weight looks channels-last (*kernel, "
     "C_in // groups, C_out) (as in flax and lax); jaxconv expects (C_out, C_in // groups, "
     "*kernel) like PyTorch: pass jnp.transpose(weight, (3, 2, 0, 1))."),
    ("weight-channels-last-kernel", lambda: jaxconv.conv2d(np.zeros((2, 3, 8, 8), np.float32),
                                                           np.zeros((3, 3, 3, 16), np.float32)),
     ValueError,
     "the kernel can't be greater than the padded input. The weight looks channels-last "
     "(*kernel, C_in // groups, C_out) (as in flax and lax); jaxconv expects (C_out, "
     "C_in // groups, *kernel) like PyTorch: pass jnp.transpose(weight, (3, 2, 0, 1))."),
    ("transpose-input-channels-last",
     lambda: jaxconv.conv_transpose3d(np.zeros((1, 4, 4, 4, 6), np.float32),
                                      np.zeros((6, 2, 3, 3, 3), np.float32)),
     ValueError,
     "jaxconv.conv_transpose3d: weight.shape=(6, 2, 3, 3, 3) expects `input` with 6 channels, "
     "got 4 (input.shape=(1, 4, 4, 4, 6)). The input looks channels-last (NDHWC); jaxconv "
     "expects channels-first (NCDHW) like PyTorch: pass jnp.moveaxis(input, -1, -4)."),
    ("transpose-weight-channels-last",
     lambda: jaxconv.conv_transpose1d(np.zeros((2, 16, 8), np.float32),
                                      np.zeros((3, 16, 4), np.float32)),
     ValueError,
     "jaxconv.conv_transpose1d: weight.shape=(3, 16, 4) expects `input` with 3 channels, got "
     "16 (input.shape=(2, 16, 8)). The weight looks channels-last (*kernel, C_in, C_out) (as in "
     "flax and lax); jaxconv expects (C_in, C_out // groups, *kernel) like PyTorch: pass "
     "jnp.transpose(weight, (1, 2, 0))."),
    ("padding-string", lambda: jaxconv.conv1d(X1, W1G1, padding="full"), ValueError,
     "jaxconv.conv1d: `padding` string must be one of ('same', 'valid'), got padding='full'."),
    ("same-strided", lambda: jaxconv.conv1d(X1, W1G1, padding="same", stride=2), ValueError,
     "jaxconv.conv1d: padding='same' is not supported for strided convolutions, got "
     "stride=(2,); use an explicit padding instead."),
    ("padding-mode", lambda: jaxconv.conv1d(X1, W1G1, padding_mode="mirror"), ValueError,
     "jaxconv.conv1d: `padding_mode` must be one of ('zeros', 'reflect', 'replicate', "
     "'circular'), got padding_mode='mirror'."),
    ("groups-divide-out", lambda: jaxconv.conv1d(X1, np.zeros((5, 2, 3), np.float32),
                                                 groups=2), ValueError,
     "jaxconv.conv1d: out channels (weight.shape[0]=5) must be divisible by `groups` (=2)."),
    ("channels", lambda: jaxconv.conv1d(X1, W1, groups=3), ValueError,
     "jaxconv.conv1d: with groups=3 and weight.shape=(6, 2, 3), `input` must have 6 "
     "channels, got 4 (input.shape=(2, 4, 5))."),
    ("channels-g1", lambda: jaxconv.conv1d(X1, np.zeros((6, 3, 3), np.float32)), ValueError,
     "jaxconv.conv1d: with groups=1 and weight.shape=(6, 3, 3), `input` must have 3 "
     "channels, got 4"),
    ("empty-weight", lambda: jaxconv.conv1d(X1, np.zeros((0, 4, 3), np.float32)), ValueError,
     "jaxconv.conv1d: `weight` must not have a zero-size dimension, got "
     "weight.shape=(0, 4, 3)."),
    ("bias-shape", lambda: jaxconv.conv1d(X1, W1G1, np.zeros(5, np.float32)), ValueError,
     "jaxconv.conv1d: `bias` must have shape (6,) to match weight.shape[0], got "
     "bias.shape=(5,)."),
    ("kernel-too-big", lambda: jaxconv.conv1d(X1, np.zeros((6, 4, 4), np.float32),
                                              dilation=2), ValueError,
     "jaxconv.conv1d: padded input size (5,) is smaller than the dilated kernel size (7,) "
     "(kernel (4,), dilation (2,)); the kernel can't be greater than the padded input."),
    ("reflect-limit", lambda: jaxconv.conv1d(X1, W1G1, padding=5, padding_mode="reflect"),
     ValueError, "jaxconv.conv1d: reflect padding (5, 5) at dimension 2 must be less than that "
                 "input size (5), as in PyTorch."),
    ("circular-limit", lambda: jaxconv.conv1d(X1, W1G1, padding=6, padding_mode="circular"),
     ValueError, "jaxconv.conv1d: circular padding (6, 6) at dimension 2 wraps around more than "
                 "once: each pad must be at most that input size (5)."),
    ("empty-spatial", lambda: jaxconv.conv1d(np.zeros((1, 4, 0), np.float32), W1G1, padding=2,
                                             padding_mode="replicate"), ValueError,
     "jaxconv.conv1d: only the batch and channel dimensions of `input` may be empty (as in "
     "PyTorch), got input.shape=(1, 4, 0)."),
    ("torch-tensor", lambda: jaxconv.conv1d(_TensorLike(), W1G1), TypeError,
     "jaxconv.conv1d: `input` must be an array (jax.Array or numpy.ndarray), got _TensorLike."),
    ("precision-pair-none", lambda: jaxconv.conv1d(X1, W1G1, precision=(None, "high")),
     ValueError, "jaxconv.conv1d: `precision` must be None, a jax.lax.Precision, one of "
                 "'default', 'high', 'highest', or a pair of those, got precision=(None, 'high')."),
    ("impl", lambda: jaxconv.conv1d(X1, W1G1, impl="cudnn"), ValueError,
     "jaxconv.conv1d: `impl` must be one of ('auto', 'lax'"),
    ("precision", lambda: jaxconv.conv1d(X1, W1G1, precision="ultra"), ValueError,
     "jaxconv.conv1d: `precision` must be None, a jax.lax.Precision, one of 'default', "
     "'high', 'highest', or a pair of those, got precision='ultra'."),
]


@pytest.mark.parametrize("call, exc, message", [c[1:] for c in CONV_ERRORS],
                         ids=[c[0] for c in CONV_ERRORS])
def test_conv_error(call, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        call()


def test_unknown_impl_lists_every_choice():
    with pytest.raises(ValueError) as info:
        jaxconv.conv1d(X1, W1G1, impl="nope")
    for name in ("auto", *jaxconv.available_impls()):
        assert repr(name) in str(info.value)


@pytest.mark.parametrize("fn, x, w, kw, message", [
    (jaxconv.conv1d, X1, W1, dict(groups=3), "`input` must have 6 channels, got 4"),
    (jaxconv.conv1d, X1, W1G1, dict(stride=0), "`stride` must be positive, got stride=0."),
    (jaxconv.conv1d, X1, W1G1, dict(padding=5, padding_mode="reflect"),
     "reflect padding (5, 5) at dimension 2 must be less than that input size (5)"),
    (jaxconv.conv2d, np.zeros((1, 4, 5, 5)), np.zeros((2, 4, 3, 3)), dict(padding=(1,)),
     "`padding` must be an int, or a tuple of 2 ints or (low, high) pairs for a 2-d "
     "convolution"),
    (jaxconv.conv1d, X1, np.zeros((6, 4, 7), np.float32), {},
     "the kernel can't be greater than the padded input."),
    (jaxconv.conv_transpose1d, X1, np.zeros((4, 3, 3), np.float32),
     dict(stride=2, output_padding=2),
     "`output_padding` must be smaller than either stride or dilation on each axis"),
    (jaxconv.conv_transpose1d, X1, np.zeros((6, 3, 3), np.float32), {},
     "weight.shape=(6, 3, 3) expects `input` with 6 channels, got 4"),
])
def test_same_errors_under_jit(fn, x, w, kw, message):
    """Shapes and Python arguments are static under jit, so the checks still run first."""
    f = jax.jit(lambda x, w: fn(x, w, **kw))
    with pytest.raises(ValueError, match=re.escape(message)):
        f(jnp.asarray(x), jnp.asarray(w))


def test_pad_errors_under_jit():
    f = jax.jit(lambda x: jaxconv.pad(x, (3, 0), mode="reflect"))
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.pad: reflect padding (3, 0) at dimension 2 must be less than that input "
            "size (3), as in PyTorch.")):
        f(jnp.zeros((1, 2, 3)))


PAD_ERRORS = [
    ("mode", dict(pad=(1, 1), mode="wrap"), ValueError,
     "jaxconv.pad: `mode` must be one of ('constant', 'reflect', 'replicate', 'circular'), "
     "got mode='wrap'."),
    ("odd", dict(pad=(1, 1, 1)), ValueError,
     "jaxconv.pad: `pad` length must be divisible by 2, got pad=(1, 1, 1)."),
    ("too-long", dict(pad=(1,) * 8), ValueError,
     "jaxconv.pad: `pad` has 8 entries but a 3-d input allows at most 6, got "
     "pad=(1, 1, 1, 1, 1, 1, 1, 1)."),
    ("not-tuple", dict(pad=2), TypeError, "jaxconv.pad: `pad` must be a tuple of ints, got pad=2."),
    ("float-pad", dict(pad=(1.0, 1)), TypeError, "jaxconv.pad: `pad` must be an int, got 1.0."),
    ("value-with-reflect", dict(pad=(1, 1), mode="reflect", value=1.0), ValueError,
     "jaxconv.pad: mode='reflect' doesn't take a `value`, got value=1.0."),
    ("reflect-limit", dict(pad=(3, 0), mode="reflect"), ValueError,
     "jaxconv.pad: reflect padding (3, 0) at dimension 2 must be less than that input size "
     "(3), as in PyTorch."),
    ("circular-limit", dict(pad=(0, 4), mode="circular"), ValueError,
     "jaxconv.pad: circular padding (0, 4) at dimension 2 wraps around more than once: each "
     "pad must be at most that input size (3)."),
    ("value-kind", dict(pad=(1, 1), value="a"), TypeError,
     "jaxconv.pad: `value` must be a real number or None, got 'a'."),
    ("over-crop", dict(pad=(-2, -2)), ValueError,
     "jaxconv.pad: pad (-2, -2) at dimension 2 crops more than its size (3)."),
]


@pytest.mark.parametrize("kw, exc, message", [c[1:] for c in PAD_ERRORS],
                         ids=[c[0] for c in PAD_ERRORS])
def test_pad_error(kw, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        jaxconv.pad(np.zeros((1, 2, 3), np.float32), **kw)


def test_pad_input_not_array():
    with pytest.raises(TypeError, match=re.escape("jaxconv.pad: `input` must be an array")):
        jaxconv.pad([1.0, 2.0], (1, 1))


def test_pad_replicate_empty_dimension():
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.pad: replicate padding needs a non-empty dimension 2, got size 0 with "
            "pad=(1, 2).")):
        jaxconv.pad(np.zeros((1, 2, 0)), (1, 2), mode="replicate")


def test_register_impl_errors():
    impl = jaxconv.Impl("lax", *(lambda *a: None,) * 3)
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.register_impl: impl 'lax' is already registered.")):
        jaxconv.register_impl(impl)
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.register_impl: 'auto' is reserved for automatic selection.")):
        jaxconv.register_impl(jaxconv.Impl("auto", *(lambda *a: None,) * 3))


# ---------------------------------------------------------------------------------------------
# Found by tests/test_argument_fuzz.py: each of these once escaped as a JAX, XLA or NumPy error,
# aborted the process (XLA on shapes past 2**63 bytes), or was silently accepted.

X2 = np.zeros((1, 4, 5, 5), np.float32)
W2 = np.zeros((2, 4, 3, 3), np.float32)
WT1 = np.zeros((4, 3, 3), np.float32)  # conv_transpose1d weight for X1
ABORTS = ("more than 2**56 elements (no device holds that many; XLA aborts the process on such "
          "shapes).")
AGREE = "jaxconv.testing.assert_impls_agree: "
CONV_KWARGS = ("('stride', 'padding', 'dilation', 'groups', 'padding_mode', 'precision', "
               "'autodiff')")
LHS, RHS = np.zeros((2, 4, 5)), np.zeros((6, 4, 3))


def _cgd(lhs=LHS, rhs=RHS, strides=(1,), padding="VALID", **kw):
    return lambda: jaxconv.conv_general_dilated(lhs, rhs, strides, padding, **kw)


FUZZ_ERRORS = [
    # 64-bit ints, as in PyTorch (an OverflowError or TypeError from JAX before)
    ("int64", lambda: jaxconv.conv1d(X1, W1G1, stride=2**63), ValueError,
     "jaxconv.conv1d: `stride` must fit in a signed 64-bit integer, got "
     "stride=9223372036854775808."),
    ("int64-padding", lambda: jaxconv.conv1d(X1, W1G1, padding=(2**63,)), ValueError,
     "jaxconv.conv1d: `padding` must fit in a signed 64-bit integer, got "
     "padding=(9223372036854775808,)."),
    ("int64-layer", lambda: jaxconv.nn.Conv2d(4, 8, 3, stride=2**64), ValueError,
     "jaxconv.nn.Conv2d: `stride` must fit in a signed 64-bit integer, got "
     "stride=18446744073709551616."),
    ("int64-budget", lambda: jaxconv.set_memory_budget(2**63), ValueError,
     "jaxconv.set_memory_budget: `nbytes` must fit in a signed 64-bit integer, got "
     "nbytes=9223372036854775808."),
    ("int64-pad", lambda: jaxconv.pad(np.zeros((1, 2, 3)), (2**63, 0)), ValueError,
     "jaxconv.pad: `pad` must fit in a signed 64-bit integer, got pad=(9223372036854775808, 0)."),
    ("int64-lax", _cgd(strides=(2**63,)), ValueError,
     "jaxconv.conv_general_dilated: `window_strides` must fit in a signed 64-bit integer, got "
     "window_strides=(9223372036854775808,)."),
    # sizes XLA aborts the process on (padding=2**61 did), or that wrap its int64 arithmetic
    # (padding=2**63 - 1 gave a silently wrong output shape)
    ("max-stride", lambda: jaxconv.conv1d(X1, W1G1, stride=2**57), ValueError,
     "jaxconv.conv1d: `stride` must be at most 2**56 (no array can be that large), got "
     "stride=144115188075855872."),
    ("max-dilation", lambda: jaxconv.conv2d(X2, W2, dilation=(1, 2**60)), ValueError,
     "jaxconv.conv2d: `dilation` must be at most 2**56 (no array can be that large), got "
     "dilation=(1, 1152921504606846976)."),
    ("max-padding", lambda: jaxconv.conv1d(X1, W1G1, padding=2**63 - 1), ValueError,
     "jaxconv.conv1d: `padding` must be at most 2**56 (no array can be that large), got "
     "padding=9223372036854775807."),
    ("padded-input", lambda: jaxconv.conv1d(X1, W1G1, padding=2**55), ValueError,
     "jaxconv.conv1d: padding=36028797018963968 would make a padded input of shape "
     f"(2, 4, 72057594037927941), {ABORTS}"),
    ("padded-input-pair", lambda: jaxconv.conv1d(X1, W1G1, padding=((0, 2**56),)), ValueError,
     "jaxconv.conv1d: padding=((0, 72057594037927936),) would make a padded input of shape "
     f"(2, 4, 72057594037927941), {ABORTS}"),
    ("transpose-output", lambda: jaxconv.conv_transpose1d(X1, WT1, stride=2**55), ValueError,
     "jaxconv.conv_transpose1d: stride=(36028797018963968,), dilation=(1,) would make an "
     f"uncropped output of shape (2, 3, 144115188075855875), {ABORTS}"),
    ("pad-max", lambda: jaxconv.pad(np.zeros((2, 2)), (2**57, 0)), ValueError,
     "jaxconv.pad: `pad` must be at most 2**56 (no array can be that large), got "
     "pad=(144115188075855872, 0)."),
    ("pad-output", lambda: jaxconv.pad(np.zeros((2, 2)), (2**56, 0)), ValueError,
     f"jaxconv.pad: pad=(72057594037927936, 0) would make an output of shape "
     f"(2, 72057594037927938), {ABORTS}"),
    ("lax-padded", _cgd(padding=((2**55, 0),)), ValueError,
     "jaxconv.conv_general_dilated: padding=((36028797018963968, 0),), lhs_dilation=(1,) would "
     f"make a padded lhs of shape (2, 4, 36028797018963973), {ABORTS}"),
    ("lax-max", _cgd(rhs_dilation=(2**57,)), ValueError,
     "jaxconv.conv_general_dilated: `rhs_dilation` must be at most 2**56 (no array can be that "
     "large), got rhs_dilation=(144115188075855872,)."),
    ("layer-channels", lambda: jaxconv.nn.Conv2d(2**57, 8, 3), ValueError,
     "jaxconv.nn.Conv2d: `in_channels` must be at most 2**56 (no array can be that large), got "
     "in_channels=144115188075855872."),
    ("layer-weight", lambda: jaxconv.nn.Conv2d(2**20, 2**20, 2**10), ValueError,
     "jaxconv.nn.Conv2d: in_channels=1048576, out_channels=1048576, kernel_size=(1024, 1024) "
     f"would make a weight of shape (1048576, 1048576, 1024, 1024), {ABORTS}"),
    ("layer-rank", lambda: jaxconv.nn.Conv(63, 4, 8, 1), ValueError,
     "jaxconv.nn.Conv: `num_spatial_dims` must be at most 62 (the weight has num_spatial_dims "
     "+ 2 dimensions, a NumPy array at most 64), got num_spatial_dims=63."),
    # arrays JAX refuses (its own ValueError / TypeError before)
    ("masked", lambda: jaxconv.conv1d(np.ma.masked_array(X1), W1G1), TypeError,
     "jaxconv.conv1d: `input` must be an array (jax.Array or numpy.ndarray), got a NumPy masked "
     "array, which JAX does not take; pass input.filled() instead."),
    ("object-dtype", lambda: jaxconv.conv1d(X1.astype(object), W1G1), TypeError,
     "jaxconv.conv1d: `input` must be an array of a bool or numeric dtype (as JAX computes "
     "with), got dtype object."),
    ("pad-object-dtype", lambda: jaxconv.pad(np.zeros((1, 2, 3), object), (1, 1)), TypeError,
     "jaxconv.pad: `input` must be an array of a bool or numeric dtype (as JAX computes "
     "with), got dtype object."),
    ("lax-masked", _cgd(lhs=np.ma.masked_array(np.zeros((2, 4, 5)))), TypeError,
     "jaxconv.conv_general_dilated: `lhs` must be an array (jax.Array or numpy.ndarray), got a "
     "NumPy masked array, which JAX does not take; pass lhs.filled() instead."),
    # bytes were a tuple of ints (stride=b"x" ran with stride 120)
    ("bytes-stride", lambda: jaxconv.conv1d(X1, W1G1, stride=b"x"), TypeError,
     "jaxconv.conv1d: `stride` must be an int or a tuple of 1 ints, got b'x'."),
    ("bytes-padding", lambda: jaxconv.conv1d(X1, W1G1, padding=b"\x01"), TypeError,
     "jaxconv.conv1d: `padding` must be an int, or a tuple of 1 ints or (low, high) pairs, got "
     "b'\\x01'."),
    # arrays in options (NumPy's "truth value of an array is ambiguous" before)
    ("impl-array", lambda: jaxconv.conv1d(X1, W1G1, impl=np.array(["lax", "lax"])), ValueError,
     "jaxconv.conv1d: `impl` must be one of ('auto', 'lax', 'gather', 'shift', 'fold'), or a "
     "(forward, input_grad, weight_grad) tuple of those impls, got "
     "impl=array(['lax', 'lax'], dtype='<U3')."),
    ("precision-array", lambda: jaxconv.conv1d(X1, W1G1, precision=(np.array([1, 2]), "high")),
     ValueError, "jaxconv.conv1d: `precision` must be None, a jax.lax.Precision, one of "
     "'default', 'high', 'highest', or a pair of those, got precision=(array([1, 2]), 'high')."),
    ("lax-preferred-pair", _cgd(preferred_element_type=(None, None)), TypeError,
     "jaxconv.conv_general_dilated: `preferred_element_type` must be None or a dtype, got "
     "preferred_element_type=(None, None)."),
    # jaxconv.pad
    ("pad-0d-array", lambda: jaxconv.pad(np.zeros((1, 2, 3)), np.array(2)), TypeError,
     "jaxconv.pad: `pad` must be a tuple of ints, got pad=array(2)."),
    ("pad-value-int-overflow", lambda: jaxconv.pad(np.zeros((1, 2, 3), np.int32), (1, 1),
                                                   value=2**40), ValueError,
     "jaxconv.pad: `value` can't be converted to the input's dtype int32 without overflow (as in "
     "PyTorch), got value=1099511627776."),
    ("pad-value-int-nan", lambda: jaxconv.pad(np.zeros((1, 2, 3), np.int32), (1, 1),
                                              value=float("nan")), ValueError,
     "jaxconv.pad: `value` can't be converted to the input's dtype int32 without overflow (as in "
     "PyTorch), got value=nan."),
    ("pad-value-float16", lambda: jaxconv.pad(np.zeros((1, 2, 3), np.float16), (1, 1),
                                              value=1e10), ValueError,
     "jaxconv.pad: `value` can't be converted to the input's dtype float16 without overflow (as "
     "in PyTorch), got value=10000000000.0."),
    ("pad-value-float64", lambda: jaxconv.pad(np.zeros((1, 2, 3)), (1, 1), value=2**1030),
     ValueError, "jaxconv.pad: `value` must fit in a float64 (as in PyTorch), got value=1150523"),
    ("pad-crop-then-pad", lambda: jaxconv.pad(np.zeros((1, 2, 3)), (5, -4)), ValueError,
     "jaxconv.pad: pad (5, -4) at dimension 2 crops more than its size (3)."),
    # explain_auto (TypeErrors from iterating ints, '<' between str and int, NumPy dtypes)
    ("explain-shape-kind", lambda: jaxconv.explain_auto(5, (6, 4, 3)), TypeError,
     "jaxconv.explain_auto: `input_shape` must be a tuple of ints, got input_shape=5."),
    ("explain-shape-item", lambda: jaxconv.explain_auto((2, 4, 5), (6, "4", 3)), TypeError,
     "jaxconv.explain_auto: `weight_shape` must be an int, got '4'."),
    ("explain-shape-negative", lambda: jaxconv.explain_auto((2, -1, 5), (6, 4, 3)), ValueError,
     "jaxconv.explain_auto: `input_shape` must be a shape: at most 64 non-negative ints, got "
     "input_shape=(2, -1, 5)."),
    ("explain-shape-size", lambda: jaxconv.explain_auto((2**30,) * 3, (6, 4, 3)), ValueError,
     "jaxconv.explain_auto: `input_shape` must have at most 2**56 elements (no array can be that "
     "large), got input_shape=(1073741824, 1073741824, 1073741824)."),
    ("explain-dtype", lambda: jaxconv.explain_auto((2, 4, 5), (6, 4, 3), dtype="float8_e5m2"),
     TypeError, "jaxconv.explain_auto: `dtype` must be one of ('float16', 'bfloat16', "
     "'float32', 'float64', 'complex64', 'complex128', 'int8', 'int16', 'int32', 'int64', "
     "'uint8', 'uint16', 'uint32', 'uint64', 'bool'), got dtype='float8_e5m2'."),
    ("explain-backend", lambda: jaxconv.explain_auto((2, 4, 5), (6, 4, 3), backend=1), TypeError,
     "jaxconv.explain_auto: `backend` must be None or a backend name such as 'cpu', 'gpu' or "
     "'tpu', got backend=1."),
    ("explain-avx512", lambda: jaxconv.explain_auto((2, 4, 5), (6, 4, 3), avx512="no"),
     TypeError, "jaxconv.explain_auto: `avx512` must be None or a bool, got avx512='no'."),
    ("explain-transpose", lambda: jaxconv.explain_auto((2, 4, 5), (6, 4, 3), transpose="yes"),
     TypeError, "jaxconv.explain_auto: `transpose` must be a bool, got transpose='yes'."),
    ("explain-transpose-mode", lambda: jaxconv.explain_auto(
        (2, 4, 5), (4, 3, 3), padding_mode="reflect", transpose=True), ValueError,
     "jaxconv.explain_auto: `padding_mode` must be 'zeros' with transpose=True (conv_transpose "
     "pads with zeros only), got padding_mode='reflect'."),
    ("explain-output-padding", lambda: jaxconv.explain_auto((2, 4, 5), (6, 4, 3),
                                                            output_padding=1), ValueError,
     "jaxconv.explain_auto: `output_padding` is an argument of conv_transpose only: pass "
     "transpose=True with it, got output_padding=1."),
    # testing.assert_impls_agree (jnp.asarray's, NumPy's or conv()'s errors before)
    ("agree-input", lambda: jaxconv.testing.assert_impls_agree(None, W1G1), TypeError,
     AGREE + "`input` must be an array (jax.Array or numpy.ndarray), got NoneType."),
    ("agree-conv-kwargs", lambda: jaxconv.testing.assert_impls_agree(X1, W1G1, stride=0),
     ValueError, AGREE + "`stride` must be positive, got stride=0."),
    ("agree-impls-kind", lambda: jaxconv.testing.assert_impls_agree(X1, W1G1, impls=5),
     TypeError, AGREE + "`impls` must be a sequence of impl names (at least two of ('lax', "
     "'gather', 'shift', 'fold')), got impls=5."),
    ("agree-rtol-kind", lambda: jaxconv.testing.assert_impls_agree(X1, W1G1, rtol=True),
     TypeError, AGREE + "`rtol` must be None or a non-negative real number, got rtol=True."),
    ("agree-atol-negative", lambda: jaxconv.testing.assert_impls_agree(X1, W1G1, atol=-1),
     ValueError, AGREE + "`atol` must be None or a non-negative real number, got atol=-1."),
    ("agree-rtol-nan", lambda: jaxconv.testing.assert_impls_agree(X1, W1G1, rtol=float("nan")),
     ValueError, AGREE + "`rtol` must be None or a non-negative real number, got rtol=nan."),
    ("agree-impl", lambda: jaxconv.testing.assert_impls_agree(X1, W1G1, impl="lax"), TypeError,
     AGREE + "unexpected keyword argument(s) ['impl'] (name the impls with `impls`); the "
     f"convolution's are {CONV_KWARGS}."),
    ("agree-unknown", lambda: jaxconv.testing.assert_impls_agree(X1, W1G1, bogus=1), TypeError,
     AGREE + f"unexpected keyword argument(s) ['bogus']; the convolution's are {CONV_KWARGS}."),
]


@pytest.mark.parametrize("call, exc, message", [c[1:] for c in FUZZ_ERRORS],
                         ids=[c[0] for c in FUZZ_ERRORS])
def test_fuzz_found_error(call, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        call()


def test_pad_matches_pytorchs_value_rules(torch):
    """A fill value is checked only when something is filled, and a non-constant mode takes
    value=0, both as in PyTorch (jaxconv refused both)."""
    x = np.arange(6, dtype=np.int32).reshape(1, 2, 3)
    got = jaxconv.pad(x, (0, -1), value=2**40)  # a crop fills nothing
    want = torch.nn.functional.pad(torch.tensor(x), (0, -1), value=2**40).numpy()
    np.testing.assert_array_equal(np.asarray(got), want)
    got = jaxconv.pad(x.astype(np.float64), (1, 1), mode="reflect", value=0)
    want = torch.nn.functional.pad(torch.tensor(x, dtype=torch.float64), (1, 1), mode="reflect",
                                   value=0).numpy()
    np.testing.assert_array_equal(np.asarray(got), want)
    with pytest.raises(RuntimeError):  # PyTorch crops before it pads: refused as here
        torch.nn.functional.pad(torch.zeros(1, 2, 3), (5, -4))


def test_explain_auto_takes_lists_and_numpy_ints():
    a = jaxconv.explain_auto([np.int64(2), 4, 5], [6, 4, np.int32(3)], dtype=None)
    assert a == jaxconv.explain_auto((2, 4, 5), (6, 4, 3), dtype="float32")
