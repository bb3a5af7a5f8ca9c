"""``jaxconv.conv_general_dilated``: ``jax.lax.conv_general_dilated``'s signature and
semantics, computed by :func:`jaxconv.conv`.

It exists so that code written against lax, Flax's ``linen.Conv`` and ``nnx.Conv``
above all, can run jaxconv's impls (``impl="auto"`` included) and its hand-written
gradients by passing one argument. Every lax feature becomes one step in front of
(or behind) a plain ``jaxconv.conv`` call on ``(N, C, *spatial)`` and
``(O, I, *kernel)`` operands:

================================  =============================================
lax                               here
================================  =============================================
``dimension_numbers``             transpose lhs, rhs in, the output back out
string ``padding``                ``lax.padtype_to_pads`` (lax's own helper)
negative explicit pads            crop with ``lax.pad`` (negative edge pads)
``lhs_dilation``                  zeros between elements with ``lax.pad``
``rhs_dilation``                  ``dilation=``
``window_strides``                ``stride=``
``feature_group_count``           ``groups=``
``batch_group_count`` ``G``       batch groups moved into channels, ``groups=G``
``preferred_element_type``        cast the operands up, cast the result
0-D (no spatial axes: a dot)      a spatial axis of size 1 in, out again
int4, uint4, float8, float4       computed in int8, uint8, float32; cast back
================================  =============================================

The steps around the convolution are data movement (transposes, a pad, a
reshape); JAX differentiates them, and their adjoints (transposes, a strided
slice, a reshape) route the cotangent to jaxconv's own reverse rules.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv import _settings
from jaxconv._auto import check_impl
from jaxconv._conv import FORWARD_MODE_HINT, conv
from jaxconv._spec import (
    DTYPES,
    MAX_SIZE,
    _fail,
    canonical_precision,
    check_array,
    check_at_most,
    check_autodiff,
    check_elements,
    check_int64,
    is_sequence,
)

FN = "conv_general_dilated"
PADDING_STRINGS = ("SAME", "SAME_LOWER", "VALID")
# Types lax convolves and jaxconv.conv does not, with the type each is computed in: the
# sub-byte integers in 8 bits (the sums wrap modulo 2**8, so their low bits are the
# 4-bit sums: lax's result), the 8- and 4-bit floats in float32, rounded once at the end
# (XLA on CPU gives the same bits; for float8_e4m3fnuz, at times one unit in the last
# place apart). float8_e8m0fnu, which has no zero, is not among them.
NARROW = {"int4": "int8", "uint4": "uint8", **{
    name: "float32" for name in ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e4m3b11fnuz",
                                 "float8_e5m2", "float8_e5m2fnuz", "float8_e3m4", "float8_e4m3",
                                 "float4_e2m1fn")}}
OPERAND_DTYPES = DTYPES + tuple(name for name in NARROW if name not in DTYPES)

Pairs = tuple[tuple[int, int], ...]


def _is_sequence(value: Any) -> bool:
    return is_sequence(value) or (
        isinstance(value, np.ndarray) and value.ndim >= 1)


def _as_int(name: str, value: Any, whole: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _fail(TypeError, FN, f"`{name}` must hold ints, got {value!r} in "
                    f"{name}={whole!r}.")
    return check_int64(FN, name, operator.index(value), whole)


def _positive_ints(name: str, value: Any, rank: int) -> tuple[int, ...]:
    """A sequence of `rank` ints >= 1, one per spatial dimension (lax takes no bare int)."""
    if not _is_sequence(value):
        raise _fail(TypeError, FN, f"`{name}` must be a sequence of {rank} ints (one per "
                    f"spatial dimension), got {name}={value!r}.")
    items = tuple(value)
    if len(items) != rank:
        raise _fail(ValueError, FN, f"`{name}` must have {rank} ints (one per spatial "
                    f"dimension), got {name}={value!r} of length {len(items)}.")
    out = tuple(_as_int(name, v, value) for v in items)
    if any(v <= 0 for v in out):
        raise _fail(ValueError, FN, f"`{name}` must be positive, got {name}={value!r}.")
    check_at_most(FN, name, out, value)
    return out


def _group_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _fail(TypeError, FN, f"`{name}` must be an int, got {name}={value!r}.")
    if value <= 0:
        raise _fail(ValueError, FN, f"`{name}` must be positive, got {name}={value}.")
    return check_int64(FN, name, operator.index(value), value)


def _dimension_numbers(lhs_shape: tuple[int, ...], rhs_shape: tuple[int, ...],
                       dimension_numbers: Any) -> lax.ConvDimensionNumbers:
    """Any form lax accepts, canonicalised by lax itself; its complaints become ours."""
    ndim = len(lhs_shape)
    if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
        # lax takes this form on trust; check that each spec is a permutation.
        for name, perm in zip(("lhs_spec", "rhs_spec", "out_spec"), dimension_numbers,
                              strict=True):
            if sorted(int(i) for i in perm) != list(range(ndim)):
                raise _fail(ValueError, FN, f"`dimension_numbers`.{name} must be a "
                            f"permutation of range({ndim}) for {ndim}-d operands, got "
                            f"{name}={tuple(perm)!r}.")
        return dimension_numbers
    if dimension_numbers is not None and not (
            isinstance(dimension_numbers, (tuple, list)) and len(dimension_numbers) == 3
            and all(isinstance(s, str) for s in dimension_numbers)):
        raise _fail(TypeError, FN, "`dimension_numbers` must be None, a "
                    "jax.lax.ConvDimensionNumbers or a tuple of 3 strings such as "
                    f"('NHWC', 'HWIO', 'NHWC'), got dimension_numbers={dimension_numbers!r}.")
    try:
        return lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
    except TypeError as err:  # lax's checks of the strings' letters and lengths
        raise _fail(ValueError, FN, f"invalid `dimension_numbers`={dimension_numbers!r} "
                    f"for lhs.shape={lhs_shape}, rhs.shape={rhs_shape}: {err}") from err


def _padding(padding: Any, in_spatial: Sequence[int], window: Sequence[int],
             strides: Sequence[int], lhs_dilation: Sequence[int]) -> Pairs:
    """String or explicit padding -> ``(low, high)`` pairs, any sign, as lax resolves them."""
    rank = len(in_spatial)
    if isinstance(padding, str):
        if padding.upper() not in PADDING_STRINGS:
            raise _fail(ValueError, FN, f"`padding` string must be one of {PADDING_STRINGS} "
                        f"(any case), got padding={padding!r}.")
        if any(d != 1 for d in lhs_dilation):
            raise _fail(ValueError, FN, f"string padding ({padding!r}) is not defined for "
                        f"lhs_dilation={tuple(lhs_dilation)} (lax refuses it too); pass "
                        "explicit (low, high) pairs.")
        # lax's own helper: 'SAME' gives out = ceil(in / stride) with the dilated window.
        return tuple((int(lo), int(hi)) for lo, hi in
                     lax.padtype_to_pads(in_spatial, window, strides, padding.upper()))
    if not _is_sequence(padding):
        raise _fail(TypeError, FN, f"`padding` must be one of {PADDING_STRINGS} or a "
                    f"sequence of {rank} (low, high) pairs, got padding={padding!r}.")
    items = tuple(padding)
    if len(items) != rank:
        raise _fail(ValueError, FN, f"`padding` must have {rank} (low, high) pairs (one per "
                    f"spatial dimension), got padding={padding!r} of length {len(items)}.")
    pairs: list[tuple[int, int]] = []
    for item in items:
        if not _is_sequence(item) or len(item) != 2:
            raise _fail(ValueError, FN, f"each item of `padding` must be a (low, high) pair, "
                        f"got {item!r} in padding={padding!r}.")
        low, high = (_as_int("padding", v, padding) for v in item)
        pairs.append((low, high))
    check_at_most(FN, "padding", [p for pair in pairs for p in pair], padding)
    return tuple(pairs)


def _check_operand_dtype(name: str, dtype: np.dtype) -> None:
    if dtype.name not in OPERAND_DTYPES:
        raise _fail(TypeError, FN, f"`{name}` has dtype {dtype.name}; supported dtypes are "
                    f"{', '.join(OPERAND_DTYPES)}.")


def _kind(dtype: np.dtype) -> str:
    for kind, cls in (("complex", jnp.complexfloating), ("floating", jnp.floating),
                      ("signed integer", jnp.signedinteger),
                      ("unsigned integer", jnp.unsignedinteger)):
        if jnp.issubdtype(dtype, cls):
            return kind
    return "bool"


def _result_dtype(dtype: np.dtype, preferred_element_type: Any) -> np.dtype:
    """The output dtype: the operands', or ``preferred_element_type`` where lax allows it:
    at least as wide as the operands, and of the operands' kind (integer, floating,
    complex; signed for signed integers), or floating for integer operands; any for bool."""
    if preferred_element_type is None:
        return dtype
    try:
        if not isinstance(preferred_element_type, (str, np.dtype, type)):
            raise TypeError(preferred_element_type)
        preferred = jax.dtypes.canonicalize_dtype(np.dtype(preferred_element_type))
    except TypeError as err:
        raise _fail(TypeError, FN, "`preferred_element_type` must be None or a dtype, got "
                    f"preferred_element_type={preferred_element_type!r}.") from err
    if preferred.name not in OPERAND_DTYPES:
        raise _fail(TypeError, FN, f"`preferred_element_type` must be one of "
                    f"{', '.join(OPERAND_DTYPES)}, got preferred_element_type={preferred.name}.")
    have, want = _kind(dtype), _kind(preferred)
    allowed = {"bool": (have, want),
               "signed integer": ("signed integer", "floating"),
               "unsigned integer": ("signed integer", "unsigned integer", "floating"),
               "floating": ("floating",), "complex": ("complex",)}[have]
    if want not in allowed:
        raise _fail(TypeError, FN, f"`preferred_element_type` must be {' or '.join(allowed)} "
                    f"for {have} operands (dtype {dtype.name}), as in lax, got "
                    f"preferred_element_type={preferred.name}.")
    if preferred.itemsize < dtype.itemsize:
        raise _fail(TypeError, FN, "`preferred_element_type` must not be narrower than the "
                    f"operands' dtype {dtype.name} (as in lax), got "
                    f"preferred_element_type={preferred.name}.")
    return preferred


def _compute_dtype(dtype: np.dtype, out_dtype: np.dtype) -> np.dtype:
    """What the operands are cast to: the result type (lax casts integer and bool operands
    to it: uint8 -> int16 wraps modulo 2**16, int16 -> float16 rounds each operand), or,
    for inexact operands, the wider of the two (float16 operands with a bfloat16 result:
    float32, rounded once at the end); a narrow type's wider stand-in (:data:`NARROW`)."""
    if not jnp.issubdtype(dtype, jnp.inexact) or out_dtype.itemsize > dtype.itemsize:
        compute = out_dtype
    elif out_dtype == dtype:
        compute = dtype
    else:  # two inexact types of one size: float16 and bfloat16 (or 8-bit floats)
        compute = np.dtype(jnp.float32)
    return compute if compute.name in DTYPES else np.dtype(NARROW[compute.name])


def _dilate(n: int, d: int) -> int:
    """Size of an axis of size `n` with ``d - 1`` zeros between elements (lax's rule)."""
    return 0 if n == 0 else (n - 1) * d + 1


@functools.partial(jax.jit, static_argnames=(
    "perms", "strides", "pads", "lhs_dilation", "rhs_dilation", "groups", "batch_groups",
    "out_shape", "out_dtype", "impl", "precision", "autodiff"))
def _core(lhs, rhs, *, perms, strides, pads, lhs_dilation, rhs_dilation, groups,
          batch_groups, out_shape, out_dtype, impl, precision, autodiff):
    """The convolution on validated, static arguments; `out_shape` is in (N, O, *out)."""
    lhs_perm, rhs_perm, out_perm = perms
    if math.prod(out_shape) == 0 or 0 in rhs.shape or any(
            _dilate(n, d) + min(lo, 0) + min(hi, 0) <= 0
            for n, d, (lo, hi) in zip(np.take(lhs.shape, lhs_perm)[2:], lhs_dilation, pads,
                                      strict=True)):
        # Nothing to compute: an empty output, an empty sum (rhs with a zero size), or a
        # spatial axis cropped to nothing (every window sees only padding). lax allows
        # all of these and gives zeros; jaxconv.conv (PyTorch's rules) refuses them.
        return jnp.transpose(jnp.zeros(out_shape, out_dtype), _inverse(out_perm))

    compute = _compute_dtype(lhs.dtype, np.dtype(out_dtype))
    x = jnp.transpose(lhs, lhs_perm).astype(compute)  # (N, C, *spatial)
    w = jnp.transpose(rhs, rhs_perm).astype(compute)  # (O, I, *kernel)
    dot = not strides
    if dot:
        # A 0-D convolution (no spatial axes) is a dot: y[n, o] = Σ_c w[o, c] x[n, c]
        # (grouped as usual). jaxconv.conv runs it on a spatial axis of size 1.
        x, w = x[..., None], w[..., None]
        strides, pads, lhs_dilation, rhs_dilation = (1,), ((0, 0),), (1,), (1,)

    # lhs_dilation and negative pads, in one lax.pad. XLA dilates the base first, then
    # pads it (negative pads crop); lax.pad applies interior padding, then edge
    # padding, which is that same order. Interior padding is correct for every stride,
    # padding and groups combination; mapping it onto jaxconv.conv_transpose would be
    # exact only when the pads and kernel line up with a strided conv's adjoint, and
    # its multiply-by-zero cost is what XLA's own lhs-dilated convolution pays too.
    # The remaining non-negative pads go to jaxconv.conv, whose impls pad cheaply.
    pre = [(min(lo, 0), min(hi, 0), d - 1) for (lo, hi), d in zip(pads, lhs_dilation,
                                                                   strict=True)]
    if any(p != (0, 0, 0) for p in pre):
        x = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (0, 0, 0), *pre])
    conv_pads = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads)

    if batch_groups > 1:
        # batch_group_count G: lhs batch n = g * (N / G) + m (group-major) meets only the
        # output features of group g. Move the groups into channels, (N, C) ->
        # (N / G, G * C) with channel g * C + c, and group the conv G ways:
        # y[m, o] = Σ_c w[o, c] ⋆ x[g(o) * (N / G) + m, c], g(o) = o // (O / G).
        n, c, *spatial = x.shape
        x = x.reshape(batch_groups, n // batch_groups, c, *spatial).swapaxes(0, 1)
        x = x.reshape(n // batch_groups, batch_groups * c, *spatial)

    y = conv(x, w, None, strides, conv_pads, rhs_dilation, groups, impl=impl,
             precision=precision, autodiff=autodiff)
    if dot:
        y = y[..., 0]
    return jnp.transpose(y.astype(out_dtype), _inverse(out_perm))


_settings.register_cache(_core.clear_cache)  # type: ignore[attr-defined]  # jit has it, its stub not



def _inverse(perm) -> tuple[int, ...]:
    """The permutation that undoes `perm`."""
    return tuple(int(i) for i in np.argsort(perm))

def conv_general_dilated(
    lhs: Any,
    rhs: Any,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    out_sharding: Any = None,
    *,
    impl: Any = "auto",
    autodiff: str = "custom",
) -> jax.Array:
    """``jax.lax.conv_general_dilated``, computed by :func:`jaxconv.conv`.

    The same signature (jax 0.10.2's, parameter names and defaults) and the same
    result as lax, but the convolution runs jaxconv's impls: ``impl="auto"``
    picks each of the forward, input-gradient and weight-gradient kernels, and
    ``jax.grad`` runs jaxconv's hand-written reverse rules. It plugs into Flax
    with one argument::

        import flax.linen as nn
        from flax import nnx
        import jaxconv

        layer = nn.Conv(16, (3, 3), conv_general_dilated=jaxconv.conv_general_dilated)
        layer = nnx.Conv(3, 16, (3, 3), rngs=nnx.Rngs(0),
                         conv_general_dilated=jaxconv.conv_general_dilated)

    Use ``functools.partial(jaxconv.conv_general_dilated, impl="gather")`` to fix
    an impl.

    Args:
      lhs: the input, rank ``n + 2`` (``n >= 0`` spatial dimensions; ``n = 0``
        is a dot, ``(N, C) x (O, I)``), laid out as ``dimension_numbers`` says
        (default ``(N, C, *spatial)``). Any size may be 0. Any dtype lax
        convolves: floats, complex, signed and unsigned integers of every width
        (integers wrap, as in lax), bool (sums are ORs of ANDs, as in lax); the
        4- and 8-bit types are computed in int8, uint8 or float32 and cast back
        (float8_e8m0fnu, which has no zero, is refused).
      rhs: the kernel, rank ``n + 2``, same dtype (default ``(O, I, *kernel)``,
        ``I = C / feature_group_count``).
      window_strides: ``n`` ints >= 1, in the order of the spatial dimensions of
        ``rhs``'s spec (as in lax).
      padding: ``'SAME'`` (output ``ceil(in / stride)``, the odd extra pad on the
        high side), ``'SAME_LOWER'`` (on the low side) or ``'VALID'``, in any
        case; or ``n`` ``(low, high)`` pairs of ints, which may be negative
        (crop that side).
      lhs_dilation: ``None`` or ``n`` ints >= 1: ``d - 1`` zeros between input
        elements (a transposed convolution). String padding needs it all ones.
      rhs_dilation: ``None`` or ``n`` ints >= 1: kernel (atrous) dilation.
      dimension_numbers: ``None`` (``(N, C, ...)``, ``(O, I, ...)``,
        ``(N, C, ...)``), a ``jax.lax.ConvDimensionNumbers``, or three strings
        such as ``('NHWC', 'HWIO', 'NHWC')``.
      feature_group_count: >= 1; ``groups`` of :func:`jaxconv.conv`.
      batch_group_count: >= 1; the batch of ``lhs`` is split (group-major) into
        this many groups, the output features too, and group ``g`` of the
        output sees only batch group ``g`` (what the weight gradient of a
        grouped convolution needs). At most one of the two counts may be > 1.
      precision: ``None``, a ``jax.lax.Precision``, a string
        ``jax.lax.Precision`` accepts (``'default'``, ``'high'``, ``'highest'``,
        ``'fastest'``, ``'float32'``, ...), or a pair of those.
      preferred_element_type: ``None`` or a dtype at least as wide as the
        operands', of their kind (lax's combinations: integer operands with an
        integer, signed for signed ones, or a floating type; floating with
        floating; complex with complex; bool with any). The operands are cast to
        it and the convolution computes, accumulates and returns in it (int8
        operands, int32 result: exact int32 sums; int16 operands, float16
        result: each operand rounded to float16, as lax does); floating operands
        with a same-size different type (float16 operands, bfloat16 result) are
        computed in float32 and rounded once. jaxconv already accumulates
        float16 and bfloat16 in float32.
      out_sharding: ``None`` only.
      impl: keyword-only, jaxconv's: ``"auto"``, a name from
        :func:`jaxconv.available_impls`, or a ``(forward, input_grad,
        weight_grad)`` tuple of names.
      autodiff: keyword-only, jaxconv's: ``"custom"`` (the hand-written rules
        bound as primitives: reverse and forward mode, any order), ``"custom_vjp"``
        (the same rules with ``jax.custom_vjp``; forward mode raises) or ``"jax"``
        (JAX differentiates the impl's forward kernel).

    Returns:
      The convolution, laid out as ``dimension_numbers``'s output spec, in
      ``preferred_element_type`` if given, else in the operands' dtype. Its
      spatial size is ``max((in' + low + high - window) // stride + 1, 0)`` with
      ``in' = (in - 1) * lhs_dilation + 1`` and ``window = (k - 1) *
      rhs_dilation + 1``; batch ``N / batch_group_count``; features ``O``.

    Raises:
      TypeError: operands that are not arrays, of two dtypes, or of a dtype no
        backend convolves (int2, uint2, float8_e8m0fnu); a
        ``preferred_element_type`` lax refuses for the operands' dtype (another
        kind, unsigned for signed integers, narrower); arguments of the wrong
        kind; forward-mode differentiation with ``autodiff="custom_vjp"``.
      ValueError: bad values as lax rejects them (ranks below 2, dimension_numbers,
        channel and group counts, non-positive strides or dilations, pad
        counts, string padding with lhs_dilation, negative pads that crop past
        the input), and, beyond lax, a non-``None`` ``out_sharding``, an unknown
        ``impl`` or ``autodiff``.

    Integer and bool results are not differentiable (their tangents are
    ``float0``, as in JAX).

    Differences from lax: precision presets that are not a
    ``jax.lax.Precision`` (``jax.lax.DotAlgorithmPreset``) and ``out_sharding``
    are refused; jaxconv's own error messages (JAX's tests that match lax's
    texts fail on the text alone: tests/test_jax_conv_suite.py); int4 and uint4
    with a ``preferred_element_type`` are computed (XLA's CPU and GPU backends
    fail on them); lax's ``RuntimeError`` for an unknown padding string, and its
    ``TypeError`` for ``dimension_numbers`` strings with the wrong letters or
    lengths and for operands of different ranks, are ``ValueError`` here, as are
    strides and dilations of the wrong length (lax zips them with the spatial
    dimensions, so ``lhs_dilation=[]`` runs as all ones), ints past 64 bits, and
    sizes past 2**56 elements (on which XLA aborts the process).
    Degenerate shapes lax accepts (empty spatial axes, a zero-size kernel, an
    empty output) give lax's zeros without reaching jaxconv.conv.
    """
    check_array(FN, "lhs", lhs)
    check_array(FN, "rhs", rhs)
    lhs, rhs = jnp.asarray(lhs), jnp.asarray(rhs)
    if lhs.ndim != rhs.ndim:
        raise _fail(ValueError, FN, "`lhs` and `rhs` must have the same number of "
                    f"dimensions, got lhs.shape={lhs.shape} and rhs.shape={rhs.shape}.")
    if lhs.ndim < 2:
        raise _fail(ValueError, FN, "`lhs` and `rhs` must have at least 2 dimensions (batch "
                    f"and feature; then any number of spatial), got lhs.shape={lhs.shape}.")
    rank = lhs.ndim - 2
    dnums = _dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    _check_operand_dtype("lhs", lhs.dtype)
    if rhs.dtype != lhs.dtype:
        raise _fail(TypeError, FN, f"`rhs` dtype {rhs.dtype.name} must equal `lhs` dtype "
                    f"{lhs.dtype.name} (as in lax).")
    strides = _positive_ints("window_strides", window_strides, rank)
    lhs_dil = (1,) * rank if lhs_dilation is None else _positive_ints(
        "lhs_dilation", lhs_dilation, rank)
    rhs_dil = (1,) * rank if rhs_dilation is None else _positive_ints(
        "rhs_dilation", rhs_dilation, rank)
    fgc = _group_count("feature_group_count", feature_group_count)
    bgc = _group_count("batch_group_count", batch_group_count)
    precision = canonical_precision(FN, precision)
    autodiff = check_autodiff(FN, autodiff)
    impl = check_impl(FN, impl)  # here, so an unhashable value never reaches jax.jit
    out_dtype = _result_dtype(lhs.dtype, preferred_element_type)
    if out_sharding is not None:
        raise _fail(ValueError, FN, "`out_sharding` is not supported (jaxconv leaves the "
                    "output's sharding to XLA); pass None and reshard the result, got "
                    f"out_sharding={out_sharding!r}.")

    # Shapes in canonical order: lhs (N, C, *spatial), rhs (O, I, *kernel).
    lhs_perm, rhs_perm, out_perm = (tuple(int(i) for i in p) for p in dnums)
    n, c, *in_spatial = (lhs.shape[i] for i in lhs_perm)
    o, i, *kernel = (rhs.shape[j] for j in rhs_perm)
    if fgc > 1 and bgc > 1:
        raise _fail(ValueError, FN, "at most one of `feature_group_count` and "
                    f"`batch_group_count` may be > 1, got feature_group_count={fgc} and "
                    f"batch_group_count={bgc}.")
    if c != i * fgc:
        raise _fail(ValueError, FN, f"the lhs feature dimension ({c}) must equal the rhs "
                    f"input feature dimension ({i}) times `feature_group_count` (={fgc}), "
                    f"got lhs.shape={lhs.shape}, rhs.shape={rhs.shape}.")
    for name, count in (("feature_group_count", fgc), ("batch_group_count", bgc)):
        if o % count:
            raise _fail(ValueError, FN, f"the rhs output feature dimension ({o}) must be a "
                        f"multiple of `{name}`, got {name}={count}.")
    if n % bgc:
        raise _fail(ValueError, FN, f"the lhs batch dimension ({n}) must be a multiple of "
                    f"`batch_group_count`, got batch_group_count={bgc}.")

    window = tuple(_dilate(k, d) for k, d in zip(kernel, rhs_dil, strict=True))
    dilated = tuple(_dilate(s, d) for s, d in zip(in_spatial, lhs_dil, strict=True))
    if max(dilated, default=0) > MAX_SIZE:
        check_elements(FN, "an lhs-dilated input", (n, c, *dilated),
                       f"lhs_dilation={lhs_dil}")
    pads = _padding(padding, in_spatial, window, strides, lhs_dil)
    padded = tuple(m + lo + hi for m, (lo, hi) in zip(dilated, pads, strict=True))
    if any(p < 0 for p in padded):
        raise _fail(ValueError, FN, "negative padding crops more than the (lhs-dilated) "
                    f"input holds: got padding={pads} for input spatial size "
                    f"{tuple(in_spatial)} with lhs_dilation={lhs_dil}.")
    culprits = f"padding={pads}, lhs_dilation={lhs_dil}"
    check_elements(FN, "a padded lhs", (n, c, *padded), culprits)
    out_spatial = tuple(max((p - k) // s + 1, 0)
                        for p, k, s in zip(padded, window, strides, strict=True))
    check_elements(FN, "an output", (n // bgc, o, *out_spatial), culprits)

    try:
        return _core(lhs, rhs, perms=(lhs_perm, rhs_perm, out_perm), strides=strides,
                     pads=pads, lhs_dilation=lhs_dil, rhs_dilation=rhs_dil,
                     groups=bgc if bgc > 1 else fgc, batch_groups=bgc,
                     out_shape=(n // bgc, o, *out_spatial), out_dtype=out_dtype,
                     impl=impl, precision=precision, autodiff=autodiff)
    except TypeError as err:
        if "forward-mode autodiff" in str(err):
            raise _fail(TypeError, FN, FORWARD_MODE_HINT) from err
        raise
