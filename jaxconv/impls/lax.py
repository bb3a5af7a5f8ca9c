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

On CPU (jax 0.10.2), XLA hands a 2-d float32/float64 convolution with more than
16 input or output channels, no input dilation and no grouped batch
(``batch_group_count``) to YNNPACK, unless one of its output or kernel spatial
sizes exceeds the input's (XLA's ``IsConvolutionOpSupportedByYnn``); the rest,
1-d and 3-d ones included, run in XLA's Eigen kernels. On this project's AVX2
machine YNNPACK's are mostly the slower ones. Each kernel of the lax impl timed
alone on the benchmark's 2-d layers, the same programs compiled with
``jaxconv.eigen_conv_options()`` and without, interleaved (a probe, not
committed), ran in Eigen: F 0.53-0.67x as long on the dense and 4-group 3x3 and
7x7 layers (0.89x at 4x4, 1.17x for 1x1), a stride-1 T 0.56-0.71x, W
0.08-0.39x; but depthwise and 4-channels-per-group F and T 1.2-2.7x. So on CPU
:func:`_conv` shapes a float32 convolution YNNPACK would take, ungrouped or with
at least ``EIGEN_MIN_GROUP_IN`` input channels per group, so that YNNPACK declines it,
on the last spatial axis (size ``n`` of the convolution's input, kernel ``k``,
output ``P``), where that costs at most ``1/8`` more work:

* F and T (small kernel): ``e = n - P + 1`` more outputs, the high padding
  grown by ``e·s``, and the extra outputs cropped: the output is then longer
  than the input. (This also spares YNNPACK's slow path for convolutions
  without any padding, which :func:`_conv` used to pad for.)
* W (the kernel is ``g``, about as long as the input): ``x``'s zero padding is
  written out (``lax.pad``) and ``g`` gets ``e = n + lo + hi - P + 1`` more zero
  columns, the high padding becoming ``e`` times ``g``'s dilation (the stride),
  so the outputs stay the same ``K`` taps: the kernel is then longer than the
  input. (With the padding left in the convolution, Eigen ran the 3x3, 64-channel
  layer's W 40x slower, and with a single tap, 1x1 kernels, about 9x slower than
  YNNPACK: those stay with YNNPACK; so do weight gradients whose longer kernel
  would hold more elements than the input, tall layers, which XLA turns around
  into a reversed-window convolution that it runs in a naive loop.) The zeros
  add only ``0·x`` products, so by default a NaN or Inf in ``x`` may also mark
  a few more weight-gradient entries (``set_exact_nonfinite(True)`` counts only
  real products, as always; docs/numerics.md, "The NaN and Inf contract"). Choosing between this and
  the plain convolution with a ``lax.cond`` on ``isfinite(x).all()`` would keep
  the default exact, but XLA's CPU compiler leaves a convolution inside a
  conditional's branch in the operands' NCHW layout and runs it in a naive loop:
  a 7x7 stem's forward took 620 ms that way, against 40 ms outside.

float64 convolutions stay with YNNPACK too: XLA's Eigen convolution is for
float32 (and float16), and a float64 one YNNPACK declines runs in XLA's naive
loop. Strided F and W would need about ``s`` times the work, so they stay with
YNNPACK; when such a convolution has no padding at all, YNNPACK takes a much
slower path (3.5x for a 3x3 ResNet layer), so :func:`_conv` pads its last
spatial axis by one window stride on the high side and crops the one extra
output column (``1/P`` more work; padding every axis costs ``(1 + 1/P)^r``,
and a 3x3 weight gradient computed as 4x4 ran 1.3x slower than as 3x4).

``spec.precision`` is passed to all three calls as given; a ``(lhs, rhs)`` pair
applies by position, so in the gradient kernels it governs ``(g, w)`` and
``(x, g)``.
"""

from __future__ import annotations

import dataclasses
import math

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


# XLA (jax 0.10.2) gives YNNPACK 2-d convolutions with more than this many channels.
YNN_MAX_SKIPPED_CHANNELS = 16
EIGEN_MAX_EXTRA = 1 / 8  # at most this much more work to keep a convolution off YNNPACK
EIGEN_MIN_GROUP_IN = 16  # ... and only with this many input channels per group (measured:
# 32 per group faster in Eigen, 4 and 1 slower)


def _eigen_plan(lhs_shape, rhs_shape, dtype, window_strides, padding, kwargs):
    """How :func:`_conv` runs a convolution on CPU: ``("ynn", 0)`` (YNNPACK takes it
    as it is), ``("eigen", 0)`` (YNNPACK declines it already), ``("output", e)`` (e
    more outputs on the last axis, cropped) or ``("taps", e)`` (the padding written
    out and e more zero taps): see the module docstring."""
    dn = kwargs["dimension_numbers"]
    groups = kwargs.get("feature_group_count", 1)
    dilation = kwargs.get("rhs_dilation") or (1,) * len(window_strides)
    outs = [(n + lo + hi - d * (k - 1) - 1) // s + 1 for n, k, s, d, (lo, hi) in zip(
        lhs_shape[2:], rhs_shape[2:], window_strides, dilation, padding, strict=True)]
    channels = max(lhs_shape[dn.lhs_spec[1]], rhs_shape[dn.rhs_spec[0]])
    ynn = (len(window_strides) == 2 and jnp.dtype(dtype) in (jnp.float32, jnp.float64)
           and channels > YNN_MAX_SKIPPED_CHANNELS
           and kwargs.get("batch_group_count", 1) == 1
           and all(v == 1 for v in kwargs.get("lhs_dilation") or (1,)) and min(outs) > 0)
    if not ynn:
        return "eigen", 0
    if any(o > m or k > m for o, k, m in zip(outs, rhs_shape[2:], lhs_shape[2:], strict=True)):
        return "eigen", 0
    if groups > 1 and lhs_shape[dn.lhs_spec[1]] // groups < EIGEN_MIN_GROUP_IN:
        return "ynn", 0
    if jnp.dtype(dtype) != jnp.float32:  # XLA's Eigen convolution is float32 (and 16):
        return "ynn", 0  # float64 would fall to its naive loop
    n, k, out = lhs_shape[-1], rhs_shape[-1], outs[-1]
    if n - out + 1 <= EIGEN_MAX_EXTRA * out:  # F, T: a longer output, cropped
        return "output", n - out + 1
    padded = [m + a + b for m, (a, b) in zip(lhs_shape[2:], padding, strict=True)]
    extra = padded[-1] - k + 1
    # W: a longer kernel; not where the kernel would hold more elements than the input
    # (XLA then swaps the operands, reversing the window, and runs a naive loop)
    if (min(outs) > 1 and extra <= EIGEN_MAX_EXTRA * k
            and math.prod(rhs_shape[2:-1]) * (k + extra) < math.prod(padded)):
        return "taps", extra
    return "ynn", 0


def _conv(lhs: jnp.ndarray, rhs: jnp.ndarray, window_strides, padding, *,
          pad_unpadded: bool = True, **kwargs) -> jnp.ndarray:
    """:func:`_xla_conv`; on CPU kept off YNNPACK where that is cheap, else (if
    `pad_unpadded`) without any padding the last spatial axis padded by one window
    stride and cropped back (see the module docstring). lhs, rhs and the output
    have their spatial axes last."""
    if jax.default_backend() != "cpu":
        return _xla_conv(lhs, rhs, window_strides, padding, **kwargs)
    padding = [tuple(p) for p in padding]
    how, extra = _eigen_plan(lhs.shape, rhs.shape, lhs.dtype, window_strides, padding, kwargs)
    s, (lo, hi) = window_strides[-1], padding[-1]
    d = (kwargs.get("rhs_dilation") or (1,) * len(window_strides))[-1]
    if how == "output":
        padding[-1] = (lo, hi + extra * s)
        y = _xla_conv(lhs, rhs, window_strides, padding, **kwargs)
        return y[..., :y.shape[-1] - extra]
    if how == "taps":
        lhs = lax.pad(lhs, jnp.zeros((), lhs.dtype),
                      [(0, 0, 0)] * 2 + [(a, b, 0) for a, b in padding])
        rhs = jnp.pad(rhs, [(0, 0)] * (rhs.ndim - 1) + [(0, extra)])
        padding = [(0, 0)] * (len(padding) - 1) + [(0, extra * d)]
        return _xla_conv(lhs, rhs, window_strides, padding, **kwargs)
    if how == "eigen" or not pad_unpadded or any(lo or hi for lo, hi in padding):
        return _xla_conv(lhs, rhs, window_strides, padding, **kwargs)
    y = _xla_conv(lhs, rhs, window_strides, padding[:-1] + [(0, s)], **kwargs)
    return y[..., :-1]


def weight_grad_on_ynnpack(spec: ConvSpec, input_shape, weight_shape, dtype) -> bool:
    """Whether :func:`weight_grad` leaves its convolution to YNNPACK on CPU, for an
    ungrouped convolution of `spec` on the mode-padded `input_shape` ``(N, C, *S)``.
    (Grouped weight gradients are batch-grouped convolutions, which XLA rewrites
    before it picks a library.)"""
    assert spec.groups == 1, spec.groups
    out_spatial = spec.output_spatial(input_shape[2:], weight_shape[2:])
    kernel = weight_shape[2:]
    x_shape = (input_shape[1], input_shape[0], *input_shape[2:])  # batch-feature swapped
    g_shape = (weight_shape[0], input_shape[0], *out_spatial)
    kwargs = dict(rhs_dilation=spec.stride, dimension_numbers=_channels_first(spec.rank),
                  batch_group_count=spec.groups)
    padding = weight_grad_padding(spec, input_shape[2:], kernel, out_spatial)
    return _eigen_plan(x_shape, g_shape, dtype, spec.dilation, padding, kwargs)[0] == "ynn"


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
    return _conv(
        g,
        group_transpose_kernel(w, spec.groups),
        window_strides=(1,) * spec.rank,
        padding=input_grad_padding(spec, in_spatial, kernel, g.shape[2:]),
        pad_unpadded=False,
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
