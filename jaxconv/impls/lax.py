"""impl="lax": every kernel is one ``lax.conv_general_dilated``.

Notation, one spatial axis (every axis behaves the same, so this is N-d): input
size ``n``, zero padding ``(lo, hi)``, kernel ``K``, stride ``s``, dilation ``d``,
output size ``P = (n + lo + hi - d(K-1) - 1) // s + 1``. With ``xp`` the
zero-padded input and ``o`` an output channel of group ``γ``::

    y[b, o, p] = Σ_{c ∈ γ, k} w[o, c, k] · xp[b, c, p·s + k·d]          (forward)

Input gradient (the transposed convolution). ``dx[b, c, i]`` collects every
``g[b, o, p] · w[o, c, k]`` with ``p·s + k·d = i + lo``. Spread ``g`` out by
``s`` (``lhs_dilation=s``, call it ``G'``, length ``(P-1)s + 1``), flip the kernel
``w'[k] = w[K-1-k]`` and exchange in/out channels inside each group::

    dx[b, c, i] = Σ_{o ∈ γ, k} w'[c, o, k] · G'[b, o, i + lo - d(K-1) + k·d]

a stride-1 correlation of ``G'`` with padding ``(d(K-1) - lo, n + lo - 1 - (P-1)s)``.
The high side equals ``d(K-1) - hi + r`` with ``r = (n + lo + hi - d(K-1) - 1) mod s``,
the input rows that stride never reached, which get zero gradient. Either pad
may be negative; lax crops then.

Weight gradient (batch contracted)::

    dw[o, c, k] = Σ_{b, p} g[b, o, p] · xp[b, c, k·d + p·s]

a correlation in which batch plays the feature role and channels the batch
role: window stride ``d``, kernel (= ``g``) dilation ``s``, padding
``(lo, d(K-1) + (P-1)s + 1 - n - lo)`` so exactly ``K`` outputs come out. Groups
become ``batch_group_count``: group ``γ`` of ``c`` pairs with group ``γ`` of ``o``.

On CPU, XLA runs convolutions with YNNPACK, which takes a much slower path
(3.5x for a 3x3 ResNet layer, measured with ``python -m jaxconv bench``) when
a convolution has no padding at all: every pre-padded (reflect, replicate,
circular), ``'valid'`` or 1x1 forward, and weight gradients whose windows fit
exactly. :func:`_conv` then pads the last spatial axis by one window stride on
the high side and crops the one extra output column it computes (``1/P`` more
work; padding every axis costs ``(1 + 1/P)^r``, and a 3x3 weight gradient
computed as 4x4 ran 1.3x slower than as 3x4).

``spec.precision`` is passed to all three calls as given; a ``(lhs, rhs)`` pair
applies by position, so in the gradient kernels it governs ``(g, w)`` and
``(x, g)``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._registry import Impl, register_impl
from jaxconv._spec import ConvSpec


def _channels_first(rank: int) -> lax.ConvDimensionNumbers:
    axes = tuple(range(rank + 2))
    return lax.ConvDimensionNumbers(axes, axes, axes)


def _batch_feature_swapped(rank: int) -> lax.ConvDimensionNumbers:
    axes = (1, 0, *range(2, rank + 2))
    return lax.ConvDimensionNumbers(axes, axes, axes)


def group_transpose_kernel(w: jnp.ndarray, groups: int) -> jnp.ndarray:
    """``(O, C/G, *K) -> (C, O/G, *K)`` with every spatial axis flipped."""
    out_channels, group_in, *kernel = w.shape
    w = w.reshape(groups, out_channels // groups, group_in, *kernel)
    w = jnp.swapaxes(w, 1, 2).reshape(groups * group_in, out_channels // groups, *kernel)
    return jnp.flip(w, axis=tuple(range(2, w.ndim)))


def _xla_conv(lhs: jnp.ndarray, rhs: jnp.ndarray, window_strides, padding,
              **kwargs) -> jnp.ndarray:
    """``lax.conv_general_dilated``, kept off XLA CPU's masked depthwise expansion.

    In float64 on CPU (jax 0.10.2), XLA computes a convolution with one input
    channel per group (depthwise, any channel multiplier, any rank) as a dense
    convolution whose kernel is zero outside each group, so a NaN or Inf in one
    channel reaches every output channel (``0 * NaN = NaN``) where PyTorch keeps
    it in its group. With two channels per group it computes a true grouped
    convolution. So each group gets a second, all-zero input channel with a zero
    kernel (``x'[:, 2c] = x[:, c]``, ``x'[:, 2c + 1] = 0``, ``w'[:, 1] = 0``): the
    same sums, no cross-group products, at twice the arithmetic of a float64
    depthwise layer. (lhs and rhs are channels-first here, as in F and T.)
    """
    groups = kwargs.get("feature_group_count", 1)
    if (jax.default_backend() == "cpu" and lhs.dtype == jnp.float64 and groups > 1
            and rhs.shape[1] == 1):
        n, c, *spatial = lhs.shape
        lhs = jnp.stack([lhs, jnp.zeros_like(lhs)], axis=2).reshape(n, 2 * c, *spatial)
        rhs = jnp.concatenate([rhs, jnp.zeros_like(rhs)], axis=1)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs)


def _conv(lhs: jnp.ndarray, rhs: jnp.ndarray, window_strides, padding, **kwargs) -> jnp.ndarray:
    """:func:`_xla_conv`; without any padding on CPU, the last spatial axis padded by
    one window stride (high side) and cropped back (see the module docstring)."""
    if jax.default_backend() != "cpu" or any(lo or hi for lo, hi in padding):
        return _xla_conv(lhs, rhs, window_strides, padding, **kwargs)
    padding = [(0, 0)] * (len(window_strides) - 1) + [(0, window_strides[-1])]
    y = _xla_conv(lhs, rhs, window_strides, padding, **kwargs)
    axis = kwargs["dimension_numbers"].out_spec[-1]
    return lax.slice_in_dim(y, 0, y.shape[axis] - 1, axis=axis)


def forward(x: jnp.ndarray, w: jnp.ndarray, spec: ConvSpec) -> jnp.ndarray:
    return _conv(
        x,
        w,
        window_strides=spec.stride,
        padding=spec.zero_padding,
        rhs_dilation=spec.dilation,
        dimension_numbers=_channels_first(spec.rank),
        feature_group_count=spec.groups,
        precision=spec.precision,
    )


def input_grad_padding(spec: ConvSpec, in_spatial, kernel, out_spatial):
    """Padding of the stride-1 correlation of ``g`` (dilated by stride) giving ``dx``."""
    return tuple(
        (d * (k - 1) - lo, n + lo - 1 - (p - 1) * s)
        for n, (lo, _), k, d, s, p in zip(
            in_spatial, spec.zero_padding, kernel, spec.dilation, spec.stride, out_spatial,
            strict=True,
        )
    )


def weight_grad_padding(spec: ConvSpec, in_spatial, kernel, out_spatial):
    """Padding of the correlation of ``x`` with ``g`` giving exactly ``kernel`` outputs."""
    return tuple(
        (lo, d * (k - 1) + (p - 1) * s + 1 - n - lo)
        for n, (lo, _), k, d, s, p in zip(
            in_spatial, spec.zero_padding, kernel, spec.dilation, spec.stride, out_spatial,
            strict=True,
        )
    )


def input_grad_as_forward(forward, g: jnp.ndarray, w: jnp.ndarray, spec: ConvSpec,
                          in_spatial) -> jnp.ndarray:
    """A stride-1 input gradient through a forward kernel: the correlation of ``g``
    with the flipped, group-transposed kernel and :func:`input_grad_padding`
    (negative pads crop), as derived in the module docstring. For impls whose
    forward is faster than their own way of scattering taps back."""
    assert all(s == 1 for s in spec.stride), spec.stride
    pads = input_grad_padding(spec, in_spatial, w.shape[2:], g.shape[2:])
    transposed = dataclasses.replace(spec, padding=pads, padding_mode="zeros")
    return forward(g, group_transpose_kernel(w, spec.groups), transposed)


def input_grad(g: jnp.ndarray, w: jnp.ndarray, spec: ConvSpec, in_spatial) -> jnp.ndarray:
    kernel = w.shape[2:]
    return _xla_conv(
        g,
        group_transpose_kernel(w, spec.groups),
        window_strides=(1,) * spec.rank,
        padding=input_grad_padding(spec, in_spatial, kernel, g.shape[2:]),
        lhs_dilation=spec.stride,
        rhs_dilation=spec.dilation,
        dimension_numbers=_channels_first(spec.rank),
        feature_group_count=spec.groups,
        precision=spec.precision,
    )


def weight_grad(x: jnp.ndarray, g: jnp.ndarray, spec: ConvSpec, kernel) -> jnp.ndarray:
    return _conv(
        x,
        g,
        window_strides=spec.dilation,
        padding=weight_grad_padding(spec, x.shape[2:], kernel, g.shape[2:]),
        rhs_dilation=spec.stride,
        dimension_numbers=_batch_feature_swapped(spec.rank),
        batch_group_count=spec.groups,
        precision=spec.precision,
    )


LAX = register_impl(
    Impl(
        name="lax",
        forward=forward,
        input_grad=input_grad,
        weight_grad=weight_grad,
        description="lax.conv_general_dilated; portable to CPU, GPU and TPU.",
    )
)
