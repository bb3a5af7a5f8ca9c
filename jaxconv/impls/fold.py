"""impl="fold": XLA's convolution, reshaped into the ones XLA's CPU backend runs fast.

Four reshapes, each exact (the same sums, regrouped), applied in this order:

* **Groups split** (``1 < groups <= SPLIT_MAX_GROUPS``): one dense convolution
  per group, the results concatenated on the channel axis. XLA's CPU grouped
  convolutions are slow, its grouped weight gradient (``batch_group_count``)
  100-300x slower than the same work done densely (``python -m jaxconv bench
  --kernels``); group ``γ`` reads input channels ``γ·C/G ...`` and writes output
  channels ``γ·O/G ...`` only, so ``y[:, γ] = F(x[:, γ], w[γ])``,
  ``dx[:, γ] = T(g[:, γ], w[γ])`` and ``dw[γ] = W(x[:, γ], g[:, γ])``, each with
  ``groups = 1``. Beyond ``SPLIT_MAX_GROUPS`` groups (depthwise layers) the
  unrolled program would grow with the channel count; those stay grouped.
* **Leading spatial axes folded** (rank >= 3), below.
* **Strided 2-d convolutions (3-d ones after folding: forward and weight
  gradient) with few input channels as stride-1 ones on space-to-depth input**,
  below, where that costs at most a third more taps (:func:`space_to_depth`
  decides per kernel).
* **Other strided input gradients as stride phases**, below.

N-d convolutions as one 2-d XLA convolution, leading axes folded away:

XLA's CPU convolutions (YNNPACK) are fast in 2-d and several times slower in
3-d (``python -m jaxconv bench --kernels``: a 3x3x3 video layer runs at a
quarter of the 2-d throughput). For rank ``r >= 3`` the first spatial axis is
folded into the others, once per level, until two remain.

Folding axis 1 (size ``n``, padding ``(lo, hi)``, kernel ``K``, stride ``s``,
dilation ``d``, ``P`` outputs): output plane ``p`` reads input planes
``p·s + k·d`` for ``k < K`` of the zero-padded input ``xp``::

    y[b, o, p, ...] = Σ_{c, k} w[o, c, k, ...] ⋆ xp[b, c, p·s + k·d, ...]

which is an ``(r-1)``-d convolution of ``X[(b, p), (c, k), ...] = xp[b, c, p·s + k·d, ...]``
(``K`` strided slices stacked next to the channels; batch ``N·P``, channels
``C·K``) with ``W[o, (c, k), ...] = w[o, c, k, ...]`` (a reshape). Channels stay
group-major (``(g, c, k)``), so ``feature_group_count`` is unchanged. The
result ``(N·P, O, ...)`` is reshaped and transposed back to ``(N, O, P, ...)``.
The work is the same; the copy is ``K / s`` times the input.

The same sum can be folded on the *output* side instead. Input plane ``i`` of
``x`` (unpadded) is tap ``k`` of output plane ``p`` when ``i = p·s + k·d - lo``, so
with stride 1 on the folded axis ::

    y[b, o, p, ...] = Σ_k z[(b, p + k·d - lo), (k, o), ...]      (0 <= p + k·d - lo < n only)
    z = F_{r-1}(x[(b, i)], W''),   W''[(k, o), c, ...] = w[o, c, k, ...]

one ``(r-1)``-d forward of every plane of ``x`` (batch ``N·n``, a transpose; no
copy of ``x``) with the ``K`` taps stacked as ``K·O`` output channels
(group-major, ``(γ, k, o)``), then ``K`` shifted slices of ``z`` summed. It
writes ``z``, ``K`` times the output, where the input side copies ``x`` ``K``
times, so it pays when the output has few channels against the input; and it
convolves all ``n`` input planes where the input side computes ``P`` output
planes, ``n / P`` times the work where the input is not zero-padded on that
axis (a padding mode's copy, ``'valid'``). So fold takes it
(:func:`forward_side`) with stride 1 on the folded axis (a strided one would
compute ``s`` times the planes) when ``(O/G)·n <= 2·(C/G)·P``
(:data:`OUTPUT_SIDE_MAX_RATIO`). ``python benchmarks/fold_side_probe.py`` times
both sides (``benchmarks/results/zen5/fold_side_cpu.md``, an AVX-512 CPU).
Half precision: ``z`` and the sum in float32, rounded once.

Input gradient: with stride 1 on every axis, ranks 1 and 2 take the lax impl's
kernel. Rank ``r >= 3`` folds the first spatial axis on the *output* side.
Input plane ``i`` (of the zero-padded input, ``lo`` rows cropped) is reached
through tap ``k`` from output plane ``p = i + lo - k·d``, so ::

    dx[b, c, i, ...] = Σ_k z[(b, i + lo - k·d), (k, c), ...]      (0 <= p < P only)
    z = T_{r-1}(g[(b, p), o, ...], W'),   W'[o, (k, c), ...] = w[o, c, k, ...]

one ``(r-1)``-d input gradient of all ``N·P`` planes of ``g`` (batch ``N·P``, a
transpose) with the ``K`` taps stacked as ``K·C`` input-gradient channels
(group-major, ``(γ, k, c)``), then ``K`` shifted slices of ``z`` summed. The
fold on the input side (the forward correlation of ``g`` with the flipped
kernel, folded like the forward) copied ``g`` ``K`` times and gave XLA a
convolution with ``C`` outputs; this one copies nothing and gives it ``K·C``
(``python -m jaxconv bench --kernels``: video_3d's input gradient about twice
as fast). Half precision: ``z`` and the sum in float32, rounded once.

With a stride ``s`` (and dilation 1 on that axis; otherwise the lax impl) the
input gradient is split into ``s`` phases per axis, the sub-pixel
decomposition, so that XLA never sees ``lhs_dilation``. Write ``j = i + lo``
for input row ``i`` in padded coordinates; ``j = p·s + k`` is reached from
output ``p`` through tap ``k``. For the phase ``j = q·s + ρ`` only the taps
``k = ρ + t·s`` reach it, from ``p = q - t``::

    dx[q·s + ρ - lo] = Σ_t g[q - t] · w[ρ + t·s]

the stride-1 input gradient of ``g`` with the sub-kernel ``w[ρ::s]`` and low
padding ``q0 = ceil((lo - ρ) / s)`` (the first ``q`` inside the input), on
the ``n_ρ`` rows ``i = i0, i0 + s, ...`` (``i0 = q0·s + ρ - lo``). Each phase is
placed back with one ``lax.pad`` (low ``i0``, interior ``s - 1``) and the phases
summed; a phase no tap reaches (``K < s``) gets zero.

Weight gradient: the fold ``x -> X`` is linear and does not involve ``w``, so
``dw`` is the folded convolution's weight gradient ``dW[o, (c, k), ...]``
(``W(X, g)`` with ``g`` folded the same way, ``(N·P, O, *Q)``) read back as
``dw[o, c, k, ...]``. With a cropped ``g`` (fewer planes than ``P``) only the
planes it holds are folded.

Space-to-depth (2-d, after any folding; one spatial axis shown, every strided
axis at once). With ``s > 1``, dilation 1 and ``K' = ceil(K / s)``, write tap
``k = t·s + ρ`` (``t < K'``, ``ρ < s``); output ``p`` reads ``xp[p·s + k] =
xp[(p + t)·s + ρ]``, so with the phases as channels::

    X[b, (c, ρ), q] = xp[b, c, q·s + ρ]        (q < Q = P - 1 + K')
    W'[o, (c, ρ), t] = w[o, c, t·s + ρ]         (zero for t·s + ρ >= K)
    y[b, o, p] = Σ_{(c, ρ), t} W'[o, (c, ρ), t] · X[b, (c, ρ), p + t]

a stride-1, unpadded convolution of ``X`` (``C·s`` channels, still group-major)
with ``W'`` (``K'`` taps), which XLA runs as a stride-1 convolution (kept off
YNNPACK where the lax impl's ``_eigen_plan`` can). ``x -> X`` pads ``x`` to ``Q·s`` (crops rows no
output reads), reshapes and transposes; ``w -> W'`` pads to ``K'·s``. Both are
linear, so the input gradient is ``X``'s gradient (the stride-1 input gradient
of ``g`` with ``W'``) mapped back through the transpose of ``x -> X`` (the
inverse reshape, then the padding cropped), and the weight gradient is ``W'``'s
(the stride-1 weight gradient of ``X`` and ``g``) mapped back likewise, the
zero taps dropped. The work grows by ``(K'·s / K)`` per strided axis; it pays
only with few input channels, where XLA's strided and lhs-dilated convolutions
are slow. Measured per kernel (:data:`S2D_MAX_EXTRA`, :data:`S2D_F_MAX_IN`,
:data:`S2D_T_MAX_IN`, :data:`S2D_W_MAX_IN`; docs/auto.md).
Where a kernel side is not a multiple of its stride, the forward's zero taps
would meet elements of ``x`` (``0 · NaN = NaN``: a NaN in ``x`` would reach
outputs PyTorch's does not), so the forward takes this path only when every
kernel side is a multiple of its stride (patchify, 2x2 downsampling, and a
7x7 stem's forward stays with the lax impl; a ``lax.cond`` on finiteness would
put the convolution in a conditional, where XLA's CPU compiler runs it in a
naive loop, 15x slower). The input gradient's zero taps meet ``g`` only, and
the weight gradient drops them.
"""

from __future__ import annotations

import dataclasses
import fractions
import itertools
import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._registry import Impl, register_impl
from jaxconv._spec import ConvSpec
from jaxconv.impls import lax as lax_impl
from jaxconv.impls._xla import accumulation_dtype

SPLIT_MAX_GROUPS = 16  # at most this many groups: one dense XLA convolution per group
# Space-to-depth, 2-d: at most this much more work in zero taps (7x7 stride 2: 0.31, 11x11
# stride 4: 0.19, 4x4 stride 4: 0; 3x3 stride 2, 0.78, ran 1.6x slower; the forward only
# without zero taps, every K a multiple of s: module docstring), and per kernel at
# most this many input channels per group (probe, this AVX2 machine, lax's strided kernels
# against space-to-depth: F won at 3-32 channels, lost at 64; T won at 3, lost to the
# stride phases from 16; W won at 3-16, lost at 64), or any count when every K <= s (the
# inner convolution is 1x1: F and T won at 96 channels; W lost, so it never takes those)
S2D_MAX_EXTRA = fractions.Fraction(1, 3)
S2D_F_MAX_IN = 32
S2D_T_MAX_IN = 4
S2D_W_MAX_IN = 16
# Rank >= 3 forward: fold on the output side when a group's output channels times the input
# planes are at most this many times its input channels times the output planes
# (benchmarks/fold_side_probe.py: forward_side)
OUTPUT_SIDE_MAX_RATIO = 2


def _split(spec: ConvSpec) -> bool:
    return 1 < spec.groups <= SPLIT_MAX_GROUPS


def _per_group(a: jax.Array, groups: int, axis: int) -> list[jax.Array]:
    """`a` cut into `groups` equal slices along `axis` (channels are group-major)."""
    return jnp.split(a, groups, axis=axis)


def _fold(x: jax.Array, spec: ConvSpec, taps: int,
          planes: int) -> tuple[jax.Array, ConvSpec]:
    """``X[(b, p), (c, k), ...] = xp[b, c, p·s + k·d, ...]`` for ``p < planes``, and the
    ``(r-1)``-d spec it is convolved with: ``(N, C, n, *S) -> (N·P, C·K, *S)``."""
    n_batch, channels, _, *rest = x.shape
    (lo, hi), s, d = spec.zero_padding[0], spec.stride[0], spec.dilation[0]
    config = [(0, 0, 0), (0, 0, 0), (lo, hi, 0)] + [(0, 0, 0)] * len(rest)
    xp = lax.pad(x, jnp.zeros((), x.dtype), config)
    slabs = [lax.slice_in_dim(xp, k * d, k * d + (planes - 1) * s + 1, s, axis=2)
             for k in range(taps)]  # each (N, C, P, *S)
    folded = jnp.stack(slabs, axis=2)  # (N, C, K, P, *S)
    folded = jnp.moveaxis(folded, 3, 1).reshape(n_batch * planes, channels * taps, *rest)
    return folded, _inner_spec(spec)


def _inner_spec(spec: ConvSpec) -> ConvSpec:
    """The ``(r-1)``-d spec of the axes after the first (its zero padding only)."""
    return dataclasses.replace(spec, rank=spec.rank - 1, stride=spec.stride[1:],
                               padding=spec.zero_padding[1:], dilation=spec.dilation[1:],
                               padding_mode="zeros")


def space_to_depth(spec: ConvSpec, group_in: int, kernel, kernel_name: str) -> bool:
    """Whether fold computes `kernel_name` (``"forward"``, ``"input_grad"`` or
    ``"weight_grad"``) of the convolution `spec` (after any group split and
    folding) with `group_in` input channels per group and a `kernel`-shaped window
    as a stride-1 one on space-to-depth input (module docstring)."""
    if spec.rank != 2 or all(s == 1 for s in spec.stride):
        return False
    if any(s > 1 and d > 1 for s, d in zip(spec.stride, spec.dilation, strict=True)):
        return False
    taps = math.prod(-(-k // s) * s for k, s in zip(kernel, spec.stride, strict=True))
    if taps > (1 + S2D_MAX_EXTRA) * math.prod(kernel):  # exact: a Fraction
        return False
    pointwise = all(k <= s for k, s in zip(kernel, spec.stride, strict=True))  # 1x1 inside
    if kernel_name == "weight_grad":
        return not pointwise and group_in <= S2D_W_MAX_IN
    if kernel_name == "forward":  # no zero taps, which would meet elements of x
        return all(k % s == 0 for k, s in zip(kernel, spec.stride, strict=True)) and (
            pointwise or group_in <= S2D_F_MAX_IN)
    return pointwise or group_in <= S2D_T_MAX_IN


def _phase_pads(spec: ConvSpec, in_spatial, kernel):
    """Per spatial axis ``(s, lo, hi)``: ``x``'s padding to ``Q·s`` rows (``hi`` may
    be negative: rows no output reads); the stride-1 spec on ``X``; and ``X``'s
    spatial shape ``Q``. (A stride-1 axis keeps its kernel and dilation ``d``:
    ``Q = P + d·(K - 1)``, its padding written out.)"""
    out = spec.output_spatial(in_spatial, kernel)
    pads, q = [], []
    for n, k, s, d, (lo, _), p in zip(in_spatial, kernel, spec.stride, spec.dilation,
                                      spec.zero_padding, out, strict=True):
        q.append(p + d * (-(-k // s) - 1))  # d = 1 where s > 1
        pads.append((s, lo, q[-1] * s - n - lo))
    inner = dataclasses.replace(spec, stride=(1,) * spec.rank,
                                padding=((0, 0),) * spec.rank, padding_mode="zeros")
    return pads, inner, tuple(q)


def _to_phases(a: jax.Array, pads) -> jax.Array:
    """``(N, C, *S) -> (N, C·Π s, *Q)``: ``a`` padded by ``(lo, hi)`` per axis, each
    axis ``Q·s`` cut into ``(Q, s)`` and the phases moved next to the channels."""
    a = lax.pad(a, jnp.zeros((), a.dtype), [(0, 0, 0)] * 2 + [(lo, hi, 0) for _, lo, hi in pads])
    n_batch, channels, *spatial = a.shape
    split = [v for (s, _, _), m in zip(pads, spatial, strict=True) for v in (m // s, s)]
    a = a.reshape(n_batch, channels, *split)
    rank = len(pads)
    a = a.transpose(0, 1, *range(3, 2 + 2 * rank, 2), *range(2, 2 + 2 * rank, 2))
    return a.reshape(n_batch, channels * math.prod(s for s, _, _ in pads), *a.shape[2 + rank:])


def _from_phases(a: jax.Array, pads) -> jax.Array:
    """The transpose of :func:`_to_phases`: ``(N, C·Π s, *Q) -> (N, C, *S)``."""
    n_batch, channels, *q = a.shape
    strides = [s for s, _, _ in pads]
    rank = len(pads)
    a = a.reshape(n_batch, channels // math.prod(strides), *strides, *q)
    a = a.transpose(0, 1, *(i for r in range(rank) for i in (2 + rank + r, 2 + r)))
    a = a.reshape(n_batch, a.shape[1], *(m * s for m, s in zip(q, strides, strict=True)))
    return lax.pad(a, jnp.zeros((), a.dtype),
                   [(0, 0, 0)] * 2 + [(-lo, -hi, 0) for _, lo, hi in pads])


def _kernel_pads(spec: ConvSpec, kernel):
    """:func:`_to_phases`'s padding for a weight: each kernel side zero-padded to
    ``K'·s`` (the zero taps ``t·s + ρ >= K``)."""
    return [(s, 0, -(-k // s) * s - k) for k, s in zip(kernel, spec.stride, strict=True)]


def _unfold_batch(y: jax.Array, n_batch: int, planes: int) -> jax.Array:
    """``(N·P, O, *Q) -> (N, O, P, *Q)``."""
    return jnp.moveaxis(y.reshape(n_batch, planes, *y.shape[1:]), 1, 2)


def _fold_batch(g: jax.Array) -> jax.Array:
    """``(N, O, P, *Q) -> (N·P, O, *Q)``, the inverse of :func:`_unfold_batch`."""
    g = jnp.moveaxis(g, 2, 1)
    return g.reshape(g.shape[0] * g.shape[1], *g.shape[2:])


def forward(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """``(N, C, n, *S) -> (N, O, P, *Q)``: split the groups, then fold the first spatial
    axis while rank > 2."""
    if _split(spec):
        dense = dataclasses.replace(spec, groups=1)
        return jnp.concatenate([forward(xg, wg, dense) for xg, wg in zip(
            _per_group(x, spec.groups, 1), _per_group(w, spec.groups, 0), strict=True)], axis=1)
    if space_to_depth(spec, w.shape[1], w.shape[2:], "forward"):
        pads, inner, _ = _phase_pads(spec, x.shape[2:], w.shape[2:])
        return forward(_to_phases(x, pads), _to_phases(w, _kernel_pads(spec, w.shape[2:])),
                       inner)
    if spec.rank <= 2:
        return lax_impl.forward(x, w, spec)
    if forward_side(spec, x.shape[2:], w.shape) == "output":
        return _forward_output_folded(x, w, spec)
    out_channels, group_in, taps, *kernel = w.shape
    planes = spec.output_spatial(x.shape[2:], w.shape[2:])[0]
    folded, inner = _fold(x, spec, taps, planes)
    y = forward(folded, w.reshape(out_channels, group_in * taps, *kernel), inner)
    return _unfold_batch(y, x.shape[0], planes)


def _sum_tap_slices(z: jax.Array, length: int, shifts) -> jax.Array:
    """``out[:, i] = Σ_k z[:, i + shifts[k], :, k]`` for ``i < length``, terms outside
    ``z``'s planes left out: ``z`` is ``(N, planes, G, K, ...)``, ``out`` ``(N, length, G,
    ...)``, both folds' sum of shifted slices (module docstring)."""
    out = jnp.zeros((z.shape[0], length, *z.shape[2:3], *z.shape[4:]), z.dtype)
    for k, shift in enumerate(shifts):
        first, stop = max(0, -shift), min(length, z.shape[1] - shift)
        if first < stop:
            piece = z[:, first + shift:stop + shift, :, k]
            out = out + jnp.pad(piece, [(0, 0), (first, length - stop)]
                                + [(0, 0)] * (piece.ndim - 2))
    return out


def forward_side(spec: ConvSpec, in_spatial, weight_shape) -> str:
    """The side (``"output"`` or ``"input"``) on which fold's forward folds the leading
    axis of a rank >= 3 convolution of `spec` on (zero-padding-only) input of spatial
    shape `in_spatial` (module docstring): the output side with stride 1 on that axis
    and ``(O/G)·n <= OUTPUT_SIDE_MAX_RATIO·(C/G)·P`` (``n`` input, ``P`` output planes)."""
    out_channels, group_in = weight_shape[:2]
    planes = spec.output_spatial(in_spatial, weight_shape[2:])[0]
    per_group = out_channels // spec.groups
    if spec.stride[0] == 1 and (per_group * in_spatial[0]
                                <= OUTPUT_SIDE_MAX_RATIO * group_in * planes):
        return "output"
    return "input"


def _forward_output_folded(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """Forward of rank >= 3, stride 1 on the first axis: one ``(r-1)``-d forward of every
    plane of ``x`` with the leading taps as extra output channels, then a sum of ``K``
    shifted slices along the leading axis (module docstring)."""
    n, _, depth = x.shape[:3]
    out_channels, group_in, taps, *kernel = w.shape
    groups, (lo, _), dilation = spec.groups, spec.zero_padding[0], spec.dilation[0]
    planes = spec.output_spatial(x.shape[2:], w.shape[2:])[0]
    acc = accumulation_dtype(x.dtype)  # half precision: z and the sum in float32
    # W''[(γ, k, o)] = w[(γ, o), :, k]: within each group the outputs are (tap, channel)
    per_group = out_channels // groups
    stacked = w.reshape(groups, per_group, group_in, taps, *kernel)
    stacked = jnp.moveaxis(stacked, 3, 1).reshape(groups * taps * per_group, group_in, *kernel)
    z = forward(_fold_batch(x).astype(acc), stacked.astype(acc),
                _inner_spec(spec))  # (N·n, (γ, k, o), ...)
    z = z.reshape(n, depth, groups, taps, per_group, *z.shape[2:])
    # output plane p gets tap k from input plane p + k·d - lo
    y = _sum_tap_slices(z, planes, [k * dilation - lo for k in range(taps)])
    y = y.reshape(n * planes, out_channels, *y.shape[4:])
    return _unfold_batch(y, n, planes).astype(x.dtype)


def input_grad(g: jax.Array, w: jax.Array, spec: ConvSpec, in_spatial) -> jax.Array:
    if _split(spec):
        dense = dataclasses.replace(spec, groups=1)
        return jnp.concatenate([input_grad(gg, wg, dense, in_spatial) for gg, wg in zip(
            _per_group(g, spec.groups, 1), _per_group(w, spec.groups, 0), strict=True)], axis=1)
    if space_to_depth(spec, w.shape[1], w.shape[2:], "input_grad"):
        pads, inner, q = _phase_pads(spec, in_spatial, w.shape[2:])
        w_phases = _to_phases(w, _kernel_pads(spec, w.shape[2:]))
        return _from_phases(input_grad(g, w_phases, inner, q), pads)
    if any(s != 1 for s in spec.stride):
        if all(d == 1 or s == 1 for s, d in zip(spec.stride, spec.dilation, strict=True)):
            return _input_grad_by_phases(g, w, spec, in_spatial)
        return lax_impl.input_grad(g, w, spec, in_spatial)
    if spec.rank <= 2:
        return lax_impl.input_grad(g, w, spec, in_spatial)
    return _input_grad_output_folded(g, w, spec, in_spatial)


def _input_grad_output_folded(g: jax.Array, w: jax.Array, spec: ConvSpec,
                              in_spatial) -> jax.Array:
    """Stride-1 input gradient of rank >= 3: one ``(r-1)``-d input gradient of every
    plane of ``g`` with the leading taps as extra output channels, then a sum of
    ``K`` shifted slices along the leading axis (module docstring)."""
    n, out_channels, planes = g.shape[:3]
    _, group_in, taps, *kernel = w.shape
    groups, (lo, _), dilation, depth = spec.groups, spec.zero_padding[0], spec.dilation[0], \
        in_spatial[0]
    # Half precision: the planes' gradients and their sum in float32, rounded once.
    acc = accumulation_dtype(g.dtype)
    # W'[o, (k, c)] = w[o, c, k]: within each group the input channels are (tap, channel)
    stacked = jnp.moveaxis(w, 2, 1).reshape(out_channels, taps * group_in, *kernel)
    z = input_grad(_fold_batch(g).astype(acc), stacked.astype(acc), _inner_spec(spec),
                   tuple(in_spatial[1:]))  # (N·P, (γ, k, c), ...)
    z = z.reshape(n, planes, groups, taps, group_in, *in_spatial[1:])
    # input plane i gets tap k from output plane i + lo - k·d
    dx = _sum_tap_slices(z, depth, [lo - k * dilation for k in range(taps)])
    dx = dx.reshape(n * depth, groups * group_in, *in_spatial[1:])
    return _unfold_batch(dx, n, depth).astype(g.dtype)


def _input_grad_by_phases(g: jax.Array, w: jax.Array, spec: ConvSpec,
                          in_spatial) -> jax.Array:
    """Strided input gradient as ``prod(s)`` stride-1 ones, interleaved (module docstring)."""
    axes = []  # per axis: [(phase offset i0, rows n_ρ, sub-kernel taps, q0), ...]
    for n, (lo, _), k, s in zip(in_spatial, spec.zero_padding, w.shape[2:], spec.stride,
                                strict=True):
        phases = []
        for rho in range(s):
            q0 = -((rho - lo) // s)  # ceil((lo - ρ) / s)
            i0 = q0 * s + rho - lo
            rows = max(0, -((i0 - n) // s))  # positions i0, i0 + s, ... below n
            phases.append((i0, rows, range(rho, k, s), q0))
        axes.append(phases)
    dx = None
    zero = jnp.zeros((), g.dtype)
    for combo in itertools.product(*axes):
        if any(rows == 0 or len(taps) == 0 for _, rows, taps, _ in combo):
            continue  # no input position, or no tap reaches this phase: zero gradient
        sub_w = w[(slice(None), slice(None), *(slice(t.start, t.stop, t.step)
                                               for _, _, t, _ in combo))]
        sub = ConvSpec(rank=spec.rank, stride=(1,) * spec.rank,
                       padding=tuple((q0, 0) for *_, q0 in combo), dilation=spec.dilation,
                       groups=spec.groups, impl="fold", precision=spec.precision)
        part = input_grad(g, sub_w, sub, tuple(rows for _, rows, _, _ in combo))
        config = [(0, 0, 0)] * 2 + [
            (i0, n - 1 - i0 - (rows - 1) * s, s - 1)
            for (i0, rows, _, _), n, s in zip(combo, in_spatial, spec.stride, strict=True)]
        placed = lax.pad(part, zero, config)
        dx = placed if dx is None else dx + placed
    if dx is None:
        return jnp.zeros((*g.shape[:1], w.shape[1] * spec.groups, *in_spatial), g.dtype)
    return dx


def weight_grad(x: jax.Array, g: jax.Array, spec: ConvSpec, kernel) -> jax.Array:
    """The folded convolution's weight gradient, ``(O, C/G·K, ...)`` read back as
    ``(O, C/G, K, ...)``: the fold is linear in ``x`` and ``W`` sees it unchanged.
    Split groups stack their dense weight gradients along ``O``."""
    if _split(spec):
        dense = dataclasses.replace(spec, groups=1)
        return jnp.concatenate([weight_grad(xg, gg, dense, kernel) for xg, gg in zip(
            _per_group(x, spec.groups, 1), _per_group(g, spec.groups, 1), strict=True)], axis=0)
    if space_to_depth(spec, x.shape[1] // spec.groups, kernel, "weight_grad"):
        pads, inner, _ = _phase_pads(spec, x.shape[2:], kernel)
        kernel_pads = _kernel_pads(spec, kernel)
        inner_kernel = tuple(-(-k // s) for k, s in zip(kernel, spec.stride, strict=True))
        dw = weight_grad(_to_phases(x, pads), g, inner, inner_kernel)
        return _from_phases(dw, kernel_pads)
    if spec.rank <= 2:
        return lax_impl.weight_grad(x, g, spec, kernel)
    taps, *rest = kernel
    folded, inner = _fold(x, spec, taps, g.shape[2])  # only the planes g holds
    dw = weight_grad(folded, _fold_batch(g), inner, tuple(rest))
    return dw.reshape(dw.shape[0], dw.shape[1] // taps, taps, *rest)


FOLD = register_impl(
    Impl(
        name="fold",
        forward=forward,
        input_grad=input_grad,
        weight_grad=weight_grad,
        description=f"XLA's convolution reshaped: up to {SPLIT_MAX_GROUPS} groups split into dense "
        "convolutions, 3-d (and higher) folded into one 2-d convolution, strided 2-d "
        "convolutions with few channels on space-to-depth input, strided input gradients "
        "as stride phases; otherwise lax.",
    )
)
