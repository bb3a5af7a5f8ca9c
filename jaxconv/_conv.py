"""Public convolution functions: ``conv``, ``conv1d``, ``conv2d``, ``conv3d``.

Each call is: validate and normalise once (:func:`jaxconv._spec.conv_spec`), then
one jitted core keyed on the hashable spec: crop the kernel taps that read only
zero padding (:mod:`jaxconv._deadtaps`), the implementation's forward kernel
(bound to its hand-written reverse rules unless ``autodiff="jax"``), the bias.
The padding mode's pre-pad is part of each hand-written kernel
(:mod:`jaxconv._primitives`), or a step before the kernel with
``autodiff="jax"``. Its gradient folds the border gradients back onto their
sources (docs/backprop.md §5), in one fused sum written by hand
(:func:`jaxconv._padding.fold_border`; JAX's adjoint with ``autodiff="jax"``);
the bias's is JAX's adjoint of a broadcast (``db = Σ g``).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxconv import _autodiff, _deadtaps, _primitives, _registry, _settings, _sharding
from jaxconv._auto import resolve_impl
from jaxconv._padding import pad_trailing
from jaxconv._spec import ConvSpec, Impl, conv_spec
from jaxconv.impls._xla import accumulation_dtype


@functools.partial(jax.jit, static_argnames="spec")
def conv_core(x: jax.Array, w: jax.Array, b: jax.Array | None, spec: ConvSpec) -> jax.Array:
    """Batched convolution for a validated `spec`."""
    if spec.autodiff == "jax":  # the hand-written kernels pre-pad themselves
        if spec.padding_mode != "zeros" and accumulation_dtype(x.dtype) != x.dtype:
            # The pre-pad's adjoint adds each border gradient to its source: in float32,
            # so that an entry with m copies is rounded once, not m times (half types).
            x = pad_trailing(x.astype(jnp.float32), spec.mode_padding,
                             spec.padding_mode).astype(x.dtype)
        else:
            x = pad_trailing(x, spec.mode_padding, spec.padding_mode)
    if spec.padding_mode == "zeros":
        # Taps that read only zero padding are cropped away (slices JAX transposes to
        # zero pads); where none is dead, nothing changes (docs/backprop.md §10). A
        # mode's padding is data, never dead.
        x, w, spec, plan = _deadtaps.apply_conv(x, w, spec)
        if plan is not None and plan.all_dead:
            shape = (x.shape[0], w.shape[0], *spec.output_spatial(x.shape[2:], w.shape[2:]))
            return add_bias(jnp.zeros(shape, x.dtype), b, spec.rank)
    if spec.autodiff == "custom":
        y = _primitives.forward(x, w, spec)
    elif spec.autodiff == "custom_vjp":
        y = _autodiff.forward(x, w, spec)
    else:
        y = _registry.forward_kernel(spec)(x, w, spec)
    return add_bias(y, b, spec.rank)


_settings.register_cache(conv_core.clear_cache)  # type: ignore[attr-defined]  # jit has it, its stub not


def add_bias(y: jax.Array, b: jax.Array | None, rank: int) -> jax.Array:
    """``y[n, o, ...] + b[o]``; its adjoint is ``db = Σ g`` over batch and space.

    Half types are added in float32 and rounded once, so that JAX's adjoint (the
    transposed casts around a float32 sum) sums the bias gradient in float32 too:
    summed in float16, 49152 threes stall at 8192 (bfloat16: 1024).
    """
    if b is None:
        return y
    acc = accumulation_dtype(y.dtype)
    return (y.astype(acc) + b.astype(acc).reshape((-1,) + (1,) * rank)).astype(y.dtype)


FORWARD_MODE_HINT = (
    "forward-mode differentiation (jax.jvp, jax.jacfwd, jax.hessian) can't run through "
    "autodiff=\"custom_vjp\" (the hand-written rules bound with jax.custom_vjp, reverse mode "
    "only); the default, autodiff=\"custom\", runs the same rules in both modes."
)


def run_core(fn: str, core, sharded, input, weight, bias, batched: bool, *static) -> jax.Array:
    """Call a jitted core on batched operands, per shard (`sharded`, from
    :mod:`jaxconv._sharding`) when they are sharded over explicit mesh axes; turn
    JAX's forward-mode refusal of ``custom_vjp`` into a jaxconv error that says
    what to use instead."""
    x = jnp.asarray(input)
    x = x if batched else x[None]
    w, b = jnp.asarray(weight), None if bias is None else jnp.asarray(bias)
    try:
        layout = _sharding.explicit_layout(x, w, b)
        if layout is None:
            y = core(x, w, b, *static)
        else:
            shapes = [None if a is None else jax.ShapeDtypeStruct(a.shape, a.dtype)
                      for a in (x, w, b)]  # without their shardings: only the shape
            out_shape = jax.eval_shape(core, *shapes, *static).shape
            y = sharded(core, x, w, b, *static, fn=fn, layout=layout, out_shape=out_shape)
    except TypeError as err:
        if "forward-mode autodiff" in str(err):
            raise TypeError(f"jaxconv.{fn}: {FORWARD_MODE_HINT}") from err
        raise
    return y if batched else y[0]


def _conv(fn: str, rank: int | None, input, weight, bias, stride, padding, dilation, groups,
          padding_mode, impl, precision, autodiff) -> jax.Array:
    spec, batched = conv_spec(
        fn, input, weight, bias, stride, padding, dilation, groups, padding_mode,
        precision, rank=rank, autodiff=autodiff,
    )
    spec = resolve_impl(fn, impl, spec, input.shape if batched else (1, *input.shape),
                        weight.shape, input.dtype)
    return run_core(fn, conv_core, _sharding.sharded_conv, input, weight, bias, batched, spec)


_DOC = """{rank_title} convolution with the semantics of ``torch.nn.functional.{torch_fn}``
    and ``torch.nn.{torch_cls}``'s ``padding_mode``.

    Computes ``y[n, o] = bias[o] + Σ_{{c ∈ group(o)}} weight[o, c] ⋆ input[n, c]``
    (cross-correlation, as in PyTorch).

    Args:
      input: ``(N, C_in, *spatial)``, or unbatched ``(C_in, *spatial)``.
      weight: ``(C_out, C_in // groups, *kernel)``.{rank_note}
      bias: ``(C_out,)`` or ``None``.
      stride: int or tuple of one int per spatial axis, >= 1.
      padding: int or tuple (the same amount on both sides of each axis), or
        ``"valid"`` (none) or ``"same"`` (output size = input size; the total
        ``dilation * (k - 1)`` is split with the odd extra on the high side;
        needs stride 1). Beyond PyTorch, a tuple item may also be a
        ``(low, high)`` pair, e.g. ``((0, 1), (2, 2))``; for 1-d write
        ``((low, high),)``.
      dilation: int or tuple, >= 1.
      groups: >= 1, divides ``C_in`` and ``C_out``; ``groups == C_in`` is depthwise.
      padding_mode: how the padding is filled, as ``nn.ConvNd`` does it (pad the
        input, then convolve without padding). On ``1234`` padded by 2:
        ``"zeros"`` ``00123400``, ``"reflect"`` ``32123432`` (pad < size),
        ``"replicate"`` ``11123444``, ``"circular"`` ``34123412`` (pad <= size).
      impl: ``"auto"`` (each of the forward, input-gradient and weight-gradient
        kernels from the impl measured fastest for this geometry and backend;
        :func:`jaxconv.explain_auto` says which and why), a name from
        :func:`jaxconv.available_impls`, or a ``(forward, input_grad,
        weight_grad)`` tuple of names.
      precision: passed to the XLA dot/conv: ``None``, a ``jax.lax.Precision``,
        ``"default"``, ``"high"`` or ``"highest"``.
      autodiff: ``"custom"`` (default): the impl's forward, input-gradient and
        weight-gradient kernels are JAX primitives, each the transpose of the
        other two (:mod:`jaxconv._primitives`): reverse mode of any order runs
        the hand-written gradient kernels, and forward mode (``jax.jvp``,
        ``jacfwd``, ``hessian``, forward-over-reverse) and ``vmap`` of all of
        these work. ``"custom_vjp"``: the same rules bound with
        ``jax.custom_vjp`` (reverse mode only; forward mode raises a
        ``TypeError``). ``"jax"``: JAX differentiates the impl's forward kernel.

    Returns:
      ``(N, C_out, *out)``, or ``(C_out, *out)`` for unbatched input, in the
      input's dtype.

    Shape:
      ``out = (in + pad_lo + pad_hi - dilation * (kernel - 1) - 1) // stride + 1``.

    Raises:
      TypeError: an argument of the wrong kind (non-array, non-int, float
        padding, unsupported or mismatched dtypes).
      ValueError: a bad value (ranks, channels, groups, non-positive stride or
        dilation, negative padding, unknown padding string, mode or impl,
        'same' with stride > 1, pads past PyTorch's reflect/circular limits, a
        kernel larger than the padded input, bias shape, tuple lengths).
    """


def conv(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
         dilation: Any = 1, groups: int = 1, *, padding_mode: str = "zeros",
         impl: Impl = "auto", precision: Any = None, autodiff: str = "custom") -> jax.Array:
    return _conv("conv", None, input, weight, bias, stride, padding, dilation, groups,
                 padding_mode, impl, precision, autodiff)


def conv1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1, *, padding_mode: str = "zeros",
           impl: Impl = "auto", precision: Any = None, autodiff: str = "custom") -> jax.Array:
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups,
                 padding_mode, impl, precision, autodiff)


def conv2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1, *, padding_mode: str = "zeros",
           impl: Impl = "auto", precision: Any = None, autodiff: str = "custom") -> jax.Array:
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups,
                 padding_mode, impl, precision, autodiff)


def conv3d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1, *, padding_mode: str = "zeros",
           impl: Impl = "auto", precision: Any = None, autodiff: str = "custom") -> jax.Array:
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups,
                 padding_mode, impl, precision, autodiff)


conv.__doc__ = _DOC.format(
    rank_title="N-d", torch_fn="conv1d/conv2d/conv3d", torch_cls="ConvNd",
    rank_note=" The spatial rank is ``weight.ndim - 2`` (any rank >= 1;\n"
    "        PyTorch stops at 3).",
)
for _f, _r in ((conv1d, 1), (conv2d, 2), (conv3d, 3)):
    _f.__doc__ = _DOC.format(rank_title=f"{_r}-d", torch_fn=f"conv{_r}d",
                             torch_cls=f"Conv{_r}d", rank_note="")
