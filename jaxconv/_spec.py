"""The canonical description of a convolution, and the one step that builds it.

Every public entry point calls :func:`conv_spec` exactly once, before anything
is traced. It validates every argument against PyTorch's rules and returns a
frozen, hashable :class:`ConvSpec` that implementations receive and that is the
static argument of the jitted core. Implementations never re-parse or re-check.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
PADDING_STRINGS = ("same", "valid")
AUTODIFF_MODES = ("custom", "custom_vjp", "jax")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
COMPLEX_DTYPES = ("complex64", "complex128")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
# What the convolutions compute: floats and complex (differentiable), integers (exact, with
# the dtype's wrap-around, as lax and PyTorch's CPU kernels) and bool (as lax computes it).
DTYPES = FLOAT_DTYPES + COMPLEX_DTYPES + INT_DTYPES + ("bool",)
# What parameters (layers' weights, verify's runs) are drawn in: PyTorch's init needs these.
PARAM_DTYPES = FLOAT_DTYPES + COMPLEX_DTYPES

Pairs = tuple[tuple[int, int], ...]
# `impl=`: one name for all three kernels, or (forward, input_grad, weight_grad).
Impl = str | tuple[str, str, str]

# Integer arguments are 64-bit, as in PyTorch (which refuses larger Python ints).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# The largest size, pad, stride or dilation, and the most elements of any array a call
# reads or writes (padded input, output). XLA does not raise on larger ones: it aborts
# the whole process when a shape's byte size overflows int64, and its shape arithmetic
# (a padded size plus a stride, a dilated window) must not overflow either. 2**56 elements
# is far more than any device holds (64 PiB of float8), and leaves room below the abort
# for the impls' intermediates (padded copies, float32 accumulators, patch tensors).
MAX_SIZE = 2**56
MAX_SIZE_TEXT = "2**56"


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A validated, canonical convolution configuration (hashable, jit-static).

    Attributes:
      rank: number of spatial dimensions.
      stride: per spatial axis, >= 1.
      padding: ``(low, high)`` per spatial axis, >= 0. ``"same"`` and
        ``"valid"`` are already resolved here.
      dilation: per spatial axis, >= 1.
      groups: >= 1, divides both channel counts.
      padding_mode: how ``padding`` is filled: one of :data:`PADDING_MODES`.
      impl: the registered implementation that computes it (never ``"auto"``):
        one name for all three kernels, or a ``(forward, input_grad,
        weight_grad)`` triple of names, one impl per kernel (what
        ``impl="auto"`` resolves to; see :attr:`kernel_impls`).
      precision: a :class:`jax.lax.Precision` (or pair of them), or ``None``.
      autodiff: ``"custom"`` (the impl's hand-written rules bound as JAX
        primitives, :mod:`jaxconv._primitives`: every transformation),
        ``"custom_vjp"`` (the same rules bound with ``jax.custom_vjp``: reverse
        mode only) or ``"jax"`` (JAX differentiates the forward kernel).
      inference: the impl of the forward kernel where the convolution is not
        differentiated, or ``None`` for the forward kernel's own impl. ``auto``
        sets it where one impl's forward is the faster alone and another's in
        the forward+backward program (:mod:`jaxconv._auto`); with the
        hand-written rules a call that is not differentiated runs it, and
        differentiated code the ``forward`` kernel (:mod:`jaxconv._primitives`).
    """

    rank: int
    stride: tuple[int, ...]
    padding: Pairs
    dilation: tuple[int, ...]
    groups: int
    padding_mode: str = "zeros"
    impl: Impl = "lax"
    precision: Any = None
    autodiff: str = "custom"
    inference: str | None = None

    @property
    def kernel_impls(self) -> tuple[str, str, str]:
        """The impls of the ``(forward, input_grad, weight_grad)`` kernels."""
        return (self.impl,) * 3 if isinstance(self.impl, str) else self.impl

    @property
    def zero_padding(self) -> Pairs:
        """Zero padding the implementation applies itself (none unless mode is zeros)."""
        if self.padding_mode == "zeros":
            return self.padding
        return ((0, 0),) * self.rank

    @property
    def mode_padding(self) -> Pairs:
        """Padding applied beforehand by :func:`jaxconv.pad` (reflect/replicate/circular)."""
        if self.padding_mode == "zeros":
            return ((0, 0),) * self.rank
        return self.padding

    def output_spatial(self, in_spatial: Sequence[int], kernel: Sequence[int]) -> tuple[int, ...]:
        """Output size for an implementation's input (already mode-padded):
        ``(in + lo + hi - dilation * (k - 1) - 1) // stride + 1`` with the zero padding."""
        return tuple(
            (n + lo + hi - d * (k - 1) - 1) // s + 1
            for n, (lo, hi), d, k, s in zip(
                in_spatial, self.zero_padding, self.dilation, kernel, self.stride, strict=True
            )
        )


def is_sequence(value: Any) -> bool:
    """A tuple, list or range of items, not a string of characters or bytes."""
    return isinstance(value, Sequence) and not isinstance(
        value, (str, bytes, bytearray, memoryview))


def _fail(cls: type[Exception], fn: str, message: str) -> Exception:
    return cls(f"jaxconv.{fn}: {message}")


def check_array(fn: str, name: str, value: Any) -> None:
    """`value` must be a jax.Array (tracers included) or a NumPy array or scalar, of a bool
    or numeric dtype (not object, string, datetime or a PRNG key); NumPy masked arrays are
    refused, as JAX refuses them."""
    if not isinstance(value, (jax.Array, np.ndarray, np.generic)):
        raise _fail(
            TypeError,
            fn,
            f"`{name}` must be an array (jax.Array or numpy.ndarray), "
            f"got {type(value).__name__}.",
        )
    if isinstance(value, np.ma.MaskedArray):
        raise _fail(
            TypeError,
            fn,
            f"`{name}` must be an array (jax.Array or numpy.ndarray), got a NumPy masked "
            f"array, which JAX does not take; pass {name}.filled() instead.",
        )
    dtype = value.dtype
    if not (jnp.issubdtype(dtype, np.number) or jnp.issubdtype(dtype, np.bool_)):
        raise _fail(
            TypeError,
            fn,
            f"`{name}` must be an array of a bool or numeric dtype (as JAX computes with), "
            f"got dtype {dtype}.",
        )


def check_dtype(fn: str, name: str, dtype: Any) -> None:
    if jnp.dtype(dtype).name not in DTYPES:
        raise _fail(
            TypeError,
            fn,
            f"`{name}` has dtype {jnp.dtype(dtype).name}; supported dtypes are "
            f"{', '.join(DTYPES)}.",
        )


def check_int64(fn: str, name: str, value: int, whole: Any) -> int:
    """`value` (an item of the argument `whole`) must fit in 64 bits, as in PyTorch."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise _fail(
            ValueError,
            fn,
            f"`{name}` must fit in a signed 64-bit integer, got {name}={whole!r}.",
        )
    return value


def dtype_name(fn: str, dtype: Any, name: str = "dtype",
               allowed: tuple[str, ...] = PARAM_DTYPES) -> str:
    """A dtype argument: one of `allowed` (default :data:`PARAM_DTYPES`) as a name, a
    NumPy dtype or a scalar type (``jnp.float32``); ``None`` is PyTorch's default,
    float32."""
    if dtype is None:
        return "float32"
    resolved = None
    if isinstance(dtype, (str, np.dtype, type)):
        try:
            resolved = jnp.dtype(dtype).name
        except TypeError:
            pass
    if resolved not in allowed:
        raise _fail(TypeError, fn, f"`{name}` must be one of {allowed}, got {name}={dtype!r}.")
    return resolved


def shape_tuple(fn: str, name: str, shape: Any) -> tuple[int, ...]:
    """An array shape given as an argument: a tuple (or list) of at most 64 (NumPy's
    limit) non-negative ints, with at most :data:`MAX_SIZE` elements."""
    if not is_sequence(shape):
        raise _fail(TypeError, fn, f"`{name}` must be a tuple of ints, got {name}={shape!r}.")
    dims = tuple(as_int(fn, name, d, shape) for d in shape)
    if any(d < 0 for d in dims) or len(dims) > 64:
        raise _fail(ValueError, fn, f"`{name}` must be a shape: at most 64 non-negative ints, "
                    f"got {name}={shape!r}.")
    if max(dims, default=0) > MAX_SIZE or math.prod(dims) > MAX_SIZE:
        raise _fail(ValueError, fn, f"`{name}` must have at most {MAX_SIZE_TEXT} elements (no "
                    f"array can be that large), got {name}={shape!r}.")
    return dims


def as_int(fn: str, name: str, value: Any, whole: Any = None) -> int:
    """An integer argument: Python or NumPy ints (not bools, floats or arrays) of 64 bits.

    `whole` is the argument `value` is an item of, for the message (default: `value`)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _fail(TypeError, fn, f"`{name}` must be an int, got {value!r}.")
    return check_int64(fn, name, operator.index(value), value if whole is None else whole)


def check_at_most(fn: str, name: str, values: Sequence[int], whole: Any) -> None:
    """Every one of `values` (from the argument `whole`) at most :data:`MAX_SIZE` in size."""
    if any(abs(v) > MAX_SIZE for v in values):
        raise _fail(
            ValueError,
            fn,
            f"`{name}` must be at most {MAX_SIZE_TEXT} (no array can be that large), got "
            f"{name}={whole!r}.",
        )


def check_elements(fn: str, what: str, shape: Sequence[int], culprits: str) -> None:
    """An array a call would build, of `shape`, must have at most :data:`MAX_SIZE` elements
    (and sizes); `culprits` names the arguments that made it that large."""
    if max(shape, default=0) > MAX_SIZE or math.prod(shape) > MAX_SIZE:
        raise _fail(
            ValueError,
            fn,
            f"{culprits} would make {what} of shape {tuple(shape)}, more than "
            f"{MAX_SIZE_TEXT} elements (no device holds that many; XLA aborts the process on "
            "such shapes).",
        )


def int_tuple(fn: str, name: str, value: Any, rank: int) -> tuple[int, ...]:
    """An int (repeated `rank` times) or a sequence of `rank` ints."""
    if is_sequence(value):
        items = tuple(value)
        if len(items) != rank:
            raise _fail(
                ValueError,
                fn,
                f"`{name}` must be an int or a tuple of {rank} ints for a {rank}-d "
                f"convolution, got {name}={value!r} of length {len(items)}.",
            )
        return tuple(as_int(fn, name, v, value) for v in items)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _fail(
            TypeError,
            fn,
            f"`{name}` must be an int or a tuple of {rank} ints, got {value!r}.",
        )
    return (check_int64(fn, name, operator.index(value), value),) * rank


def positive_tuple(fn: str, name: str, value: Any, rank: int) -> tuple[int, ...]:
    out = int_tuple(fn, name, value, rank)
    if any(v <= 0 for v in out):
        raise _fail(ValueError, fn, f"`{name}` must be positive, got {name}={value!r}.")
    check_at_most(fn, name, out, value)
    return out


def non_negative_tuple(fn: str, name: str, value: Any, rank: int) -> tuple[int, ...]:
    out = int_tuple(fn, name, value, rank)
    if any(v < 0 for v in out):
        raise _fail(ValueError, fn, f"`{name}` must be non-negative, got {name}={value!r}.")
    check_at_most(fn, name, out, value)
    return out


def same_padding(kernel: Sequence[int], dilation: Sequence[int]) -> Pairs:
    """PyTorch's 'same': total ``dilation * (k - 1)``, the odd extra on the high side."""
    pairs = []
    for k, d in zip(kernel, dilation, strict=True):
        total = d * (k - 1)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


def canonical_padding(
    fn: str, padding: Any, rank: int, kernel: Sequence[int], dilation: Sequence[int],
    stride: Sequence[int],
) -> Pairs:
    """int / tuple / 'same' / 'valid' -> ``(low, high)`` pairs."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * rank
        if padding == "same":
            if any(s != 1 for s in stride):
                raise _fail(
                    ValueError,
                    fn,
                    "padding='same' is not supported for strided convolutions, "
                    f"got stride={tuple(stride)!r}; use an explicit padding instead.",
                )
            return same_padding(kernel, dilation)
        raise _fail(
            ValueError,
            fn,
            f"`padding` string must be one of {PADDING_STRINGS}, got padding={padding!r}.",
        )
    return padding_pairs(fn, padding, rank)


def padding_pairs(fn: str, padding: Any, rank: int) -> Pairs:
    """An int, or one item per spatial axis: an int (both sides, as in PyTorch) or a
    ``(low, high)`` pair (beyond PyTorch); every pad >= 0."""
    if not is_sequence(padding):
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)):
            raise _fail(
                TypeError,
                fn,
                f"`padding` must be an int, or a tuple of {rank} ints or (low, high) pairs, "
                f"got {padding!r}.",
            )
        pairs = ((check_int64(fn, "padding", operator.index(padding), padding),) * 2,) * rank
    else:
        items = tuple(padding)
        if len(items) != rank:
            hint = (" (one (low, high) pair for a 1-d convolution is written ((low, high),))"
                    if rank == 1 and len(items) == 2 else "")
            raise _fail(
                ValueError,
                fn,
                f"`padding` must be an int, or a tuple of {rank} ints or (low, high) pairs "
                f"for a {rank}-d convolution, got padding={padding!r} of length "
                f"{len(items)}{hint}.",
            )
        pair_list: list[tuple[int, ...]] = []
        for item in items:
            if is_sequence(item):
                if len(item) != 2:
                    raise _fail(
                        ValueError,
                        fn,
                        f"each (low, high) pair in `padding` must hold 2 ints, got {item!r} "
                        f"in padding={padding!r}.",
                    )
                pair_list.append(tuple(as_int(fn, "padding", v, padding) for v in item))
            else:
                pair_list.append((as_int(fn, "padding", item, padding),) * 2)
        pairs = tuple(pair_list)  # type: ignore[arg-type]  # every entry has 2 ints
    if any(p < 0 for pair in pairs for p in pair):
        raise _fail(ValueError, fn, f"`padding` must be non-negative, got padding={padding!r}.")
    check_at_most(fn, "padding", [p for pair in pairs for p in pair], padding)
    return pairs


def canonical_precision(fn: str, precision: Any) -> Any:
    if precision is None or isinstance(precision, lax.Precision):
        return precision
    if isinstance(precision, str):
        try:
            return lax.Precision(precision)
        except ValueError:
            pass
    elif isinstance(precision, tuple) and len(precision) == 2 and all(
            isinstance(p, (str, lax.Precision)) for p in precision):
        try:
            return tuple(canonical_precision(fn, p) for p in precision)
        except ValueError:
            pass
    raise _fail(
        ValueError,
        fn,
        "`precision` must be None, a jax.lax.Precision, one of 'default', 'high', "
        f"'highest', or a pair of those, got precision={precision!r}.",
    )


def check_mode_padding(
    fn: str, name: str, mode: str, spatial: Sequence[int], pads: Pairs, axes: Sequence[int]
) -> None:
    """PyTorch's limits for non-constant padding (``jnp.pad`` would silently wrap again).

    reflect: each pad < that input size; circular: each pad <= that size;
    reflect, replicate and circular all need a non-empty padded dimension.
    """
    for n, (lo, hi), axis in zip(spatial, pads, axes, strict=True):
        if lo == 0 and hi == 0:
            continue
        if n == 0:
            raise _fail(
                ValueError,
                fn,
                f"{mode} padding needs a non-empty dimension {axis}, got size 0 "
                f"with {name}=({lo}, {hi}).",
            )
        if mode == "reflect" and (lo >= n or hi >= n):
            raise _fail(
                ValueError,
                fn,
                f"reflect padding ({lo}, {hi}) at dimension {axis} must be less than "
                f"that input size ({n}), as in PyTorch.",
            )
        if mode == "circular" and (lo > n or hi > n):
            raise _fail(
                ValueError,
                fn,
                f"circular padding ({lo}, {hi}) at dimension {axis} wraps around more "
                f"than once: each pad must be at most that input size ({n}).",
            )


@dataclasses.dataclass(frozen=True)
class Operands:
    """What the shapes of a call say, after :func:`check_operands`."""

    rank: int
    batched: bool
    in_channels: int
    in_spatial: tuple[int, ...]
    weight_shape: tuple[int, ...]

    @property
    def kernel(self) -> tuple[int, ...]:
        return self.weight_shape[2:]


def check_operands(fn: str, input: Any, weight: Any, bias: Any, rank: int | None,
                   weight_layout: str) -> Operands:
    """Kinds, ranks and dtypes of input, weight and bias (channels are checked by the caller).

    `rank` is the fixed spatial rank of the ``*1d``/``*2d``/``*3d`` functions;
    ``None`` takes it from ``weight.ndim - 2``.
    """
    check_array(fn, "input", input)
    check_array(fn, "weight", weight)
    if bias is not None:
        check_array(fn, "bias", bias)
    if rank is None:
        if weight.ndim < 3:
            raise _fail(
                ValueError,
                fn,
                f"`weight` must have shape {weight_layout} with at least one spatial "
                f"dimension, got weight.shape={tuple(weight.shape)}.",
            )
        rank = weight.ndim - 2
    elif weight.ndim != rank + 2:
        raise _fail(
            ValueError,
            fn,
            f"`weight` must be {rank + 2}-d {weight_layout}, got "
            f"weight.shape={tuple(weight.shape)}.",
        )
    if input.ndim not in (rank + 1, rank + 2):
        raise _fail(
            ValueError,
            fn,
            f"expected {rank + 1}-d (unbatched) or {rank + 2}-d (batched) `input`, "
            f"got input.shape={tuple(input.shape)}.",
        )
    batched = input.ndim == rank + 2
    in_channels, *in_spatial = input.shape[1:] if batched else input.shape
    if any(n == 0 for n in in_spatial):
        raise _fail(
            ValueError,
            fn,
            "only the batch and channel dimensions of `input` may be empty (as in PyTorch), "
            f"got input.shape={tuple(input.shape)}.",
        )

    check_dtype(fn, "input", input.dtype)
    for name, arr in (("weight", weight), ("bias", bias)):
        if arr is not None and jnp.dtype(arr.dtype) != jnp.dtype(input.dtype):
            raise _fail(
                TypeError,
                fn,
                f"`{name}` dtype {jnp.dtype(arr.dtype).name} must equal `input` dtype "
                f"{jnp.dtype(input.dtype).name}.",
            )
    if any(d == 0 for d in weight.shape):
        raise _fail(
            ValueError,
            fn,
            f"`weight` must not have a zero-size dimension, got "
            f"weight.shape={tuple(weight.shape)}.",
        )
    return Operands(rank, batched, in_channels, tuple(in_spatial), tuple(weight.shape))


def check_groups(fn: str, groups: Any) -> int:
    groups = as_int(fn, "groups", groups)
    if groups <= 0:
        raise _fail(ValueError, fn, f"`groups` must be positive, got groups={groups}.")
    return groups


def check_bias(fn: str, bias: Any, out_channels: int, source: str) -> None:
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise _fail(
            ValueError,
            fn,
            f"`bias` must have shape ({out_channels},) to match {source}, got "
            f"bias.shape={tuple(bias.shape)}.",
        )


def check_autodiff(fn: str, autodiff: Any) -> str:
    if not isinstance(autodiff, str) or autodiff not in AUTODIFF_MODES:
        raise _fail(
            ValueError,
            fn,
            f"`autodiff` must be one of {AUTODIFF_MODES}, got autodiff={autodiff!r}.",
        )
    return autodiff


def check_options(fn: str, rank: int, groups: Any, stride: Any, dilation: Any,
                  precision: Any, autodiff: Any):
    """The arguments conv and conv_transpose share: ``(groups, stride, dilation,
    precision, autodiff)`` in canonical form."""
    return (check_groups(fn, groups), positive_tuple(fn, "stride", stride, rank),
            positive_tuple(fn, "dilation", dilation, rank), canonical_precision(fn, precision),
            check_autodiff(fn, autodiff))


def channels_last_hint(input_shape: Sequence[int], weight_shape: Sequence[int], rank: int,
                       groups: int, transpose: bool) -> str:
    """When channel counts disagree, say so if the operands look channels-last (an NHWC
    input, or an HWIO weight as flax and ``lax.conv_general_dilated`` use them)."""
    in_ch = input_shape[-(rank + 1)]
    spatial = "".join("DHW"[-rank:]) if rank <= 3 else "*spatial"
    if transpose:  # weight (C_in, C_out // groups, *kernel); flax: (*kernel, C_in, C_out)
        wants = weight_shape[0]
        weight_last = weight_shape[-2] == in_ch
        perm = (rank, rank + 1, *range(rank))
        torch_layout = "(C_in, C_out // groups, *kernel)"
        last_layout = "(*kernel, C_in, C_out)"
    else:  # weight (C_out, C_in // groups, *kernel); lax/flax: (*kernel, C_in // groups, C_out)
        wants = weight_shape[1] * groups
        weight_last = weight_shape[-2] * groups == in_ch
        perm = (rank + 1, rank, *range(rank))
        torch_layout = "(C_out, C_in // groups, *kernel)"
        last_layout = "(*kernel, C_in // groups, C_out)"
    if input_shape[-1] == wants:
        return (f" The input looks channels-last (N{spatial}C); jaxconv expects channels-first "
                f"(NC{spatial}) like PyTorch: pass jnp.moveaxis(input, -1, {-(rank + 1)}).")
    if weight_last:
        return (f" The weight looks channels-last {last_layout} (as in flax and lax); jaxconv "
                f"expects {torch_layout} like PyTorch: pass jnp.transpose(weight, {perm}).")
    return ""


def conv_spec(
    fn: str,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    padding_mode: Any,
    precision: Any,
    rank: int | None = None,
    autodiff: Any = "custom",
) -> tuple[ConvSpec, bool]:
    """Validate a conv call and return its :class:`ConvSpec` and whether input is batched.

    The spec's ``impl`` is left at its default: the caller resolves the ``impl=``
    argument (``"auto"`` included) with :func:`jaxconv._auto.resolve_impl`.
    """
    ops = check_operands(fn, input, weight, bias, rank, "(C_out, C_in // groups, *kernel)")
    rank, in_spatial, kernel = ops.rank, ops.in_spatial, ops.kernel
    out_channels, group_in = ops.weight_shape[:2]
    groups, stride, dilation, precision, autodiff = check_options(
        fn, rank, groups, stride, dilation, precision, autodiff)
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise _fail(
            ValueError,
            fn,
            f"`padding_mode` must be one of {PADDING_MODES}, got padding_mode={padding_mode!r}.",
        )
    pads = canonical_padding(fn, padding, rank, kernel, dilation, stride)

    if out_channels % groups:
        raise _fail(
            ValueError,
            fn,
            f"out channels (weight.shape[0]={out_channels}) must be divisible by "
            f"`groups` (={groups}).",
        )
    if ops.in_channels != group_in * groups:
        hint = channels_last_hint(input.shape, ops.weight_shape, rank, groups, transpose=False)
        raise _fail(
            ValueError,
            fn,
            f"with groups={groups} and weight.shape={ops.weight_shape}, `input` must "
            f"have {group_in * groups} channels, got {ops.in_channels} "
            f"(input.shape={tuple(input.shape)}).{hint}",
        )
    check_bias(fn, bias, out_channels, "weight.shape[0]")
    if padding_mode != "zeros":
        spatial_axes = range(input.ndim - rank, input.ndim)
        check_mode_padding(fn, "padding", padding_mode, in_spatial, pads, spatial_axes)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(in_spatial, pads, strict=True))
    batch = input.shape[0] if ops.batched else 1
    check_elements(fn, "a padded input", (batch, ops.in_channels, *padded), f"padding={padding!r}")
    extent = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True))
    if any(e > p for e, p in zip(extent, padded, strict=True)):
        raise _fail(
            ValueError,
            fn,
            f"padded input size {padded} is smaller than the dilated kernel size "
            f"{extent} (kernel {tuple(kernel)}, dilation {dilation}); the kernel can't "
            "be greater than the padded input."
            + channels_last_hint(input.shape, ops.weight_shape, rank, groups, transpose=False),
        )

    out_spatial = tuple((p - e) // s + 1 for p, e, s in zip(padded, extent, stride, strict=True))
    check_elements(fn, "an output", (batch, out_channels, *out_spatial), f"padding={padding!r}")

    spec = ConvSpec(rank=rank, stride=stride, padding=pads, dilation=dilation, groups=groups,
                    padding_mode=padding_mode, precision=precision, autodiff=autodiff)
    return spec, ops.batched


def conv_transpose_spec(
    fn: str,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    output_padding: Any,
    groups: Any,
    dilation: Any,
    precision: Any,
    rank: int | None = None,
    autodiff: Any = "custom",
) -> tuple[ConvSpec, tuple[int, ...], bool, tuple[int, ...]]:
    """Validate a conv_transpose call.

    Returns the :class:`ConvSpec` of the convolution it transposes (whose input
    gradient it is), the transposed convolution's output spatial size, whether
    input is batched, and the input shape of that convolution (what
    :func:`jaxconv._auto.resolve_impl` chooses kernels for).
    """
    ops = check_operands(fn, input, weight, bias, rank, "(C_in, C_out // groups, *kernel)")
    rank, in_spatial, kernel = ops.rank, ops.in_spatial, ops.kernel
    in_channels, group_out = ops.weight_shape[:2]
    groups, stride, dilation, precision, autodiff = check_options(
        fn, rank, groups, stride, dilation, precision, autodiff)
    pads = padding_pairs(fn, padding, rank)
    out_pads = non_negative_tuple(fn, "output_padding", output_padding, rank)
    if any(op >= s and op >= d for op, s, d in zip(out_pads, stride, dilation, strict=True)):
        raise _fail(
            ValueError,
            fn,
            "`output_padding` must be smaller than either stride or dilation on each axis, "
            f"got output_padding={out_pads}, stride={stride}, dilation={dilation}.",
        )
    if in_channels % groups:
        raise _fail(
            ValueError,
            fn,
            f"in channels (weight.shape[0]={in_channels}) must be divisible by "
            f"`groups` (={groups}).",
        )
    if ops.in_channels != in_channels:
        hint = channels_last_hint(input.shape, ops.weight_shape, rank, groups, transpose=True)
        raise _fail(
            ValueError,
            fn,
            f"weight.shape={ops.weight_shape} expects `input` with {in_channels} channels, "
            f"got {ops.in_channels} (input.shape={tuple(input.shape)}).{hint}",
        )
    out_channels = group_out * groups
    check_bias(fn, bias, out_channels, "weight.shape[1] * groups")
    out_spatial = tuple(
        (n - 1) * s - lo - hi + d * (k - 1) + op + 1
        for n, s, (lo, hi), d, k, op in zip(in_spatial, stride, pads, dilation, kernel,
                                            out_pads, strict=True)
    )
    if any(o <= 0 for o in out_spatial):
        raise _fail(
            ValueError,
            fn,
            f"the output size (in - 1) * stride - pad_low - pad_high + dilation * (kernel - 1) + "
            f"output_padding + 1 must be positive, got {out_spatial} for input size "
            f"{in_spatial}, padding {pads}.",
        )
    # The output before `padding` crops it: the size every impl works at.
    full = tuple(o + lo + hi for o, (lo, hi) in zip(out_spatial, pads, strict=True))
    batch = input.shape[0] if ops.batched else 1
    culprits = f"stride={stride}, dilation={dilation}"
    check_elements(fn, "an uncropped output", (batch, out_channels, *full), culprits)
    spec = ConvSpec(rank=rank, stride=stride, padding=pads, dilation=dilation, groups=groups,
                    precision=precision, autodiff=autodiff)
    batch = input.shape[:1] if ops.batched else (1,)
    conv_input_shape = (*batch, out_channels, *out_spatial)
    return spec, out_spatial, ops.batched, conv_input_shape
