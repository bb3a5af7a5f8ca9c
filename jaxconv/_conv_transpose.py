"""Transposed convolutions: ``conv_transpose``, ``conv_transpose1d/2d/3d``.

A transposed convolution *is* the input gradient of a convolution
(docs/backprop.md §7): with weight ``(C_in, C_out // groups, *K)`` read as the
weight of a convolution from ``C_out`` to ``C_in`` channels, stride ``s``,
padding ``p`` and dilation ``d``,

    conv_transpose(x, w) = T(x, w)   on an output of size
    (n - 1)·s - 2p + d(K - 1) + output_padding + 1,

where ``T`` is the impl's ``input_grad`` kernel, the same code (and the same
hand-written rules: its gradients are ``F`` and ``W``) that serves
``jax.grad`` of :func:`jaxconv.conv`. There is no second copy of the arithmetic.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxconv import _autodiff, _deadtaps, _primitives, _registry, _settings, _sharding
from jaxconv._auto import resolve_impl
from jaxconv._conv import add_bias, run_core
from jaxconv._spec import ConvSpec, Impl, conv_transpose_spec


@functools.partial(jax.jit, static_argnames=("spec", "out_spatial"))
def conv_transpose_core(x: jax.Array, w: jax.Array, b: jax.Array | None, spec: ConvSpec,
                        out_spatial: tuple[int, ...]) -> jax.Array:
    """Batched transposed convolution for a validated `spec` (of the transposed conv).

    Taps that read only zero padding in the forward convolution (whose input is this
    one's output, and whose output positions are this one's input) are cropped from
    the kernel; a crop of that forward input is a zero pad of ``T``'s output
    (:mod:`jaxconv._deadtaps`). Where none is dead, nothing changes."""
    plan = _deadtaps.plan(spec, out_spatial, w.shape[2:], positions=x.shape[2:])
    if plan is not None and plan.all_dead:
        shape = (x.shape[0], w.shape[1] * spec.groups, *out_spatial)
        return add_bias(jnp.zeros(shape, x.dtype), b, spec.rank)
    inner = out_spatial
    if plan is not None:
        w, spec, inner = plan.crop_weight(w), plan.spec(spec), plan.in_spatial(out_spatial)
    if spec.autodiff == "custom":
        y = _primitives.input_grad(x, w, spec, inner)
    elif spec.autodiff == "custom_vjp":
        y = _autodiff.input_grad(x, w, spec, inner)
    else:
        y = _registry.input_grad_kernel(spec)(x, w, spec, inner)
    if plan is not None:
        y = plan.uncrop_output(y)
    return add_bias(y, b, spec.rank)


_settings.register_cache(conv_transpose_core.clear_cache)  # type: ignore[attr-defined]  # jit has it, its stub not


def _conv_transpose(fn: str, rank: int | None, input, weight, bias, stride, padding,
                    output_padding, groups, dilation, impl, precision, autodiff) -> jax.Array:
    spec, out_spatial, batched, conv_input_shape = conv_transpose_spec(
        fn, input, weight, bias, stride, padding, output_padding, groups, dilation,
        precision, rank=rank, autodiff=autodiff,
    )
    spec = resolve_impl(fn, impl, spec, conv_input_shape, weight.shape, input.dtype,
                        inference=False, positions=input.shape[-spec.rank:])
    return run_core(fn, conv_transpose_core, _sharding.sharded_conv_transpose, input, weight,
                    bias, batched, spec, out_spatial)


_DOC = """{rank_title} transposed convolution with the semantics of
    ``torch.nn.functional.{torch_fn}`` (``torch.nn.{torch_cls}``).

    The adjoint of the convolution with the same weight, stride, padding,
    dilation and groups: ``<conv(x, w), y> == <x, conv_transpose(y, w)>``. Often
    called a fractionally-strided convolution or "deconvolution" (upsampling).

    Differences from the JAX alternatives: ``jax.lax.conv_transpose`` has neither
    ``groups`` nor ``output_padding`` and takes the padding of the equivalent
    dilated convolution, not PyTorch's; ``flax.linen.ConvTranspose`` pads the
    same way as ``lax.conv_transpose`` (its ``padding`` is not PyTorch's
    ``padding``) and uses an ``(*kernel, in, out)`` weight.

    Args:
      input: ``(N, C_in, *spatial)``, or unbatched ``(C_in, *spatial)``.
      weight: ``(C_in, C_out // groups, *kernel)`` (PyTorch's layout).{rank_note}
      bias: ``(C_out,)`` or ``None``.
      stride: int or tuple, >= 1.
      padding: int or tuple, >= 0: ``dilation * (kernel - 1) - padding`` zeros are
        implicitly added on both sides (it crops ``padding`` from the full output).
        Beyond PyTorch, a tuple item may be a ``(low, high)`` pair: crop ``low``
        at the start and ``high`` at the end of that axis.
      output_padding: int or tuple, >= 0, smaller than stride or dilation on each
        axis: extra size on the high side of the output, to pick one of the
        input sizes that a stride-``s`` convolution maps to the same output size.
      groups: >= 1, divides ``C_in`` (and ``C_out = weight.shape[1] * groups``).
      dilation: int or tuple, >= 1.
      impl: ``"auto"`` (each of the forward, input-gradient and weight-gradient
        kernels from the impl measured fastest for this geometry and backend;
        :func:`jaxconv.explain_auto` says which and why), a name from
        :func:`jaxconv.available_impls`, or a ``(forward, input_grad,
        weight_grad)`` tuple of names.
      precision: passed to XLA, as in :func:`jaxconv.conv`.
      autodiff: ``"custom"`` (the hand-written rules as primitives: every
        transformation), ``"custom_vjp"`` (the same rules, reverse mode only) or
        ``"jax"``, as in :func:`jaxconv.conv`.

    Returns:
      ``(N, C_out, *out)``, or ``(C_out, *out)`` for unbatched input, in the
      input's dtype.

    Shape:
      ``out = (in - 1) * stride - 2 * padding + dilation * (kernel - 1)
      + output_padding + 1`` (``- low - high`` for a pair).

    Raises:
      TypeError: an argument of the wrong kind or dtype.
      ValueError: a bad value (ranks, channels, groups, non-positive stride or
        dilation, negative padding or output_padding, output_padding not
        smaller than stride or dilation, a non-positive output size, bias shape,
        tuple lengths, unknown impl).
    """


def conv_transpose(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                   padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                   dilation: Any = 1, *, impl: Impl = "auto", precision: Any = None,
                   autodiff: str = "custom") -> jax.Array:
    return _conv_transpose("conv_transpose", None, input, weight, bias, stride, padding,
                           output_padding, groups, dilation, impl, precision, autodiff)


def conv_transpose1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1, *, impl: Impl = "auto", precision: Any = None,
                     autodiff: str = "custom") -> jax.Array:
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation, impl, precision, autodiff)


def conv_transpose2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1, *, impl: Impl = "auto", precision: Any = None,
                     autodiff: str = "custom") -> jax.Array:
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation, impl, precision, autodiff)


def conv_transpose3d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1, *, impl: Impl = "auto", precision: Any = None,
                     autodiff: str = "custom") -> jax.Array:
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding,
                           output_padding, groups, dilation, impl, precision, autodiff)


conv_transpose.__doc__ = _DOC.format(
    rank_title="N-d", torch_fn="conv_transpose1d/2d/3d", torch_cls="ConvTransposeNd",
    rank_note=" The spatial rank is ``weight.ndim - 2``.",
)
for _f, _r in ((conv_transpose1d, 1), (conv_transpose2d, 2), (conv_transpose3d, 3)):
    _f.__doc__ = _DOC.format(rank_title=f"{_r}-d", torch_fn=f"conv_transpose{_r}d",
                             torch_cls=f"ConvTranspose{_r}d", rank_note="")
