"""Implementations as peers behind one contract, and the ``impl=`` switch.

An implementation is three kernels over an already mode-padded, batched input
``x`` of shape ``(N, C_in, *S)``, a weight ``w`` of shape
``(C_out, C_in // groups, *K)`` and a :class:`~jaxconv._spec.ConvSpec`:

* ``forward(x, w, spec) -> y``: the convolution with ``spec.zero_padding``,
  stride, dilation and groups (no bias), ``y`` of shape ``(N, C_out, *P)``;
* ``input_grad(g, w, spec, in_spatial) -> dx``: the adjoint of ``forward`` in
  ``x`` (the transposed convolution), ``dx`` of shape ``(N, C_in, *in_spatial)``;
* ``weight_grad(x, g, spec, kernel) -> dw``: the adjoint of ``forward`` in
  ``w``, ``dw`` of shape ``(C_out, C_in // groups, *kernel)``.

``g`` may hold a leading part of the output positions ``forward`` produces
(``g.shape[2:] <= P`` per axis): the gradient kernels are then the adjoints of
``forward`` followed by that crop. ``conv_transpose`` with an
``output_padding`` >= stride needs this.

Because the three kernels of every impl satisfy the same adjoint contract, a
spec may take each of them from a different impl (``ConvSpec.impl`` is then a
``(forward, input_grad, weight_grad)`` triple of names; ``impl="auto"`` does
this, see :mod:`jaxconv._auto`).

Adding an implementation is one module under ``jaxconv/impls/`` that calls
:func:`register_impl`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from jax import lax

from jaxconv import _nonfinite
from jaxconv._spec import ConvSpec

Kernel = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class Impl:
    """One way to compute a convolution: forward, input-gradient and weight-gradient kernels."""

    name: str
    forward: Kernel
    input_grad: Kernel
    weight_grad: Kernel
    description: str = ""


_REGISTRY: dict[str, Impl] = {}


def register_impl(impl: Impl) -> Impl:
    """Make `impl` selectable as ``impl=impl.name``; returns it."""
    if impl.name == "auto":
        raise ValueError("jaxconv.register_impl: 'auto' is reserved for automatic selection.")
    if impl.name in _REGISTRY:
        raise ValueError(f"jaxconv.register_impl: impl {impl.name!r} is already registered.")
    _REGISTRY[impl.name] = impl
    return impl


def available_impls() -> tuple[str, ...]:
    """Names accepted by ``impl=``, besides ``"auto"``."""
    return tuple(_REGISTRY)


def get_impl(name: str) -> Impl:
    """The registered :class:`Impl` called `name` (its kernels and description)."""
    return _REGISTRY[name]


def _kernel(spec: ConvSpec, index: int, kind: str, name: str | None = None) -> Kernel:
    kernel = getattr(_REGISTRY[name or spec.kernel_impls[index]], kind)
    if _nonfinite.get_exact_nonfinite():
        kernel = _nonfinite.guard(kernel, getattr(_REGISTRY[_nonfinite.COUNTING_IMPL], kind),
                                  kind)
    return complex_kernel(kernel)


@functools.cache
def complex_kernel(kernel: Kernel) -> Kernel:
    """`kernel` (``K(a, b, *static)``, bilinear) for complex operands too, from three
    real calls (Gauss's product, as PyTorch's ``complex_convolution`` computes it)::

        K(ar + i ai, br + i bi) = (t1 - t2) + i (t3 - t1 - t2),
        t1 = K(ar, br),  t2 = K(ai, bi),  t3 = K(ar + ai, br + bi).

    Real, integer and bool operands go to `kernel` as they are."""

    @functools.wraps(kernel)
    def run(a, b, *static):
        if not jnp.iscomplexobj(a):
            return kernel(a, b, *static)
        ar, ai, br, bi = jnp.real(a), jnp.imag(a), jnp.real(b), jnp.imag(b)
        t1, t2 = kernel(ar, br, *static), kernel(ai, bi, *static)
        t3 = kernel(ar + ai, br + bi, *static)
        return lax.complex(t1 - t2, t3 - t1 - t2)

    return run


def forward_kernel(spec: ConvSpec) -> Kernel:
    """The forward kernel ``F`` the spec names (``spec.kernel_impls[0]``); with
    :func:`jaxconv.set_exact_nonfinite` on, wrapped for exact NaN/Inf propagation."""
    return _kernel(spec, 0, "forward")


def inference_kernel(spec: ConvSpec) -> Kernel:
    """The forward kernel of a call that is not differentiated: ``spec.inference``'s,
    or the forward kernel's impl where that is None; guarded likewise."""
    return _kernel(spec, 0, "forward", spec.inference)


def input_grad_kernel(spec: ConvSpec) -> Kernel:
    """The input-gradient kernel ``T`` the spec names (``spec.kernel_impls[1]``),
    guarded likewise."""
    return _kernel(spec, 1, "input_grad")


def weight_grad_kernel(spec: ConvSpec) -> Kernel:
    """The weight-gradient kernel ``W`` the spec names (``spec.kernel_impls[2]``),
    guarded likewise."""
    return _kernel(spec, 2, "weight_grad")
