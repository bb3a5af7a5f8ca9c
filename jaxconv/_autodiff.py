"""The hand-written rules bound with ``jax.custom_vjp`` (``autodiff="custom_vjp"``).

The default binding is :mod:`jaxconv._primitives` (every transformation, forward
mode included); this one, the design jaxconv began with, serves reverse mode
only and is kept as a named option.

Write ``F(x, w)`` for an impl's forward kernel, ``T(g, w)`` for its input
gradient and ``W(x, g)`` for its weight gradient. All three are bilinear and
adjoint to one another (docs/backprop.md, §2 and §6)::

    <F(x, w), g> = <x, T(g, w)> = <w, W(x, g)>

so the vector-Jacobian products of each are the other two:

    F(x, w), cotangent g:  dx = T(g, w)   dw = W(x, g)
    T(g, w), cotangent u:  dg = F(u, w)   dw = W(u, g)
    W(x, g), cotangent v:  dx = T(g, v)   dg = F(x, v)

Each rule calls the *bound* functions below, never the raw kernels, so the
family is closed under differentiation: grad-of-grad (and any higher reverse
order) runs through the hand-written kernels of the same impl.

``spec.inference`` (set by ``impl="auto"`` where one impl's forward is the
faster alone and another's inside the forward+backward program) names the
impl of the primal: a call that is not differentiated runs it, while the
forward rule runs ``F`` of ``spec.impl`` (the same convolution, so either
kernel gives the same values up to rounding).

The kernels are bound as the primitives of :mod:`jaxconv._primitives`
(:func:`~jaxconv._primitives.run_kernel`), whose JAX rules this binding never
reaches: the padding mode's pre-pad is part of each, they batch by the
primitives' rules, and under automatic mesh axes each partitions itself
(:mod:`jaxconv._partitioning`).

Forward mode: JAX cannot push tangents through a ``custom_vjp`` function, so
``jax.jvp``, ``jax.jacfwd`` and ``jax.hessian`` raise with this binding; the
default, ``autodiff="custom"``, runs the same rules in both modes.
"""

from __future__ import annotations

import dataclasses
import functools

import jax

from jaxconv._primitives import run_kernel
from jaxconv._spec import ConvSpec


def _crop_like(y: jax.Array, like: jax.Array) -> jax.Array:
    """The leading ``like.shape`` part of `y`: ``F`` may produce more output positions
    than a cotangent ``g`` holds (conv_transpose with output_padding >= stride)."""
    if y.shape == like.shape:
        return y
    return y[tuple(slice(0, n) for n in like.shape)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def forward(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """``F(x, w)``: the convolution (its padding mode included), hand-written VJP; not
    differentiated, with ``spec.inference``'s forward kernel where that is set."""
    return run_kernel("forward", x, w, spec=spec)


def _training(spec: ConvSpec) -> ConvSpec:
    """`spec` without its inference forward: differentiated code (the forward rule, and
    the backward program, whose T and W rules run F under grad of grad) runs ``F``."""
    return spec if spec.inference is None else dataclasses.replace(spec, inference=None)


def _forward_fwd(x, w, spec):
    return forward(x, w, _training(spec)), (x, w)


def _forward_bwd(spec, residuals, g):
    spec = _training(spec)
    x, w = residuals
    return input_grad(g, w, spec, x.shape[2:]), weight_grad(x, g, spec, w.shape[2:])


forward.defvjp(_forward_fwd, _forward_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def input_grad(g: jax.Array, w: jax.Array, spec: ConvSpec, in_spatial: tuple[int, ...]):
    """``T(g, w)``: the adjoint of ``F`` in ``x`` (the transposed convolution)."""
    return run_kernel("input_grad", g, w, spec=spec, in_spatial=in_spatial)


def _input_grad_fwd(g, w, spec, in_spatial):
    return input_grad(g, w, spec, in_spatial), (g, w)


def _input_grad_bwd(spec, in_spatial, residuals, u):
    g, w = residuals
    return _crop_like(forward(u, w, spec), g), weight_grad(u, g, spec, w.shape[2:])


input_grad.defvjp(_input_grad_fwd, _input_grad_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def weight_grad(x: jax.Array, g: jax.Array, spec: ConvSpec, kernel: tuple[int, ...]):
    """``W(x, g)``: the adjoint of ``F`` in ``w`` (correlation of x with g)."""
    return run_kernel("weight_grad", x, g, spec=spec, kernel=kernel)


def _weight_grad_fwd(x, g, spec, kernel):
    return weight_grad(x, g, spec, kernel), (x, g)


def _weight_grad_bwd(spec, kernel, residuals, v):
    x, g = residuals
    return input_grad(g, v, spec, x.shape[2:]), _crop_like(forward(x, v, spec), g)


weight_grad.defvjp(_weight_grad_fwd, _weight_grad_bwd)
