"""impl="shift": direct shift-and-multiply-accumulate, for few channels per group.

No convolution primitive and no patch tensor. Split the channels into groups,
``x`` as ``(N, G, Cg, *S)`` (``Cg = C_in / G``) and ``w`` as ``(G, M, Cg, *K)``
(``M = C_out / G``, the channel multiplier). With ``xp`` the zero-padded input,
stride ``s``, dilation ``d`` and, per tap ``k`` (a multi-index over the kernel),
the strided window ``X_k = xp[..., k·d : k·d + (P - 1)·s + 1 : s]`` (one
``lax.slice``), of shape ``(N, G, Cg, *P)``::

    y[n, g, m, p] = Σ_{k, c} w[g, m, c, k] · X_k[n, g, c, p]                (forward)

``prod(K) · Cg`` broadcast multiply-adds of whole ``(N, G, M, *P)`` tensors,
which XLA fuses into one loop: each output element reads its ``prod(K) · Cg``
inputs once and nothing is materialised in between. The work is the
convolution's own ``N · C_out · P · Cg · prod(K)`` multiply-adds, with no
im2col copy and no matrix-multiply blocking, so it wins where the
contraction ``Cg · prod(K)`` is small: depthwise (``Cg = 1``, any ``M``) and
grouped convolutions with a few channels per group.

Input gradient, the adjoint in ``x``: tap ``k`` of every output ``p`` read
``xp[p·s + k·d]``, so the gradient of that tap, ``Σ_m w[g, m, c, k] · g[n, g, m, p]``
(``M`` multiply-adds), goes back to those positions. They are an arithmetic
progression, so one ``lax.pad`` places the whole tap: low ``k·d - lo``, interior
``s - 1``, high ``n - 1 + lo - k·d - (P - 1)·s`` (negative pads crop, which also
removes the zero padding ``(lo, hi)``; rows no window reached get zero)::

    dx = Σ_k pad(Σ_m w[:, m, :, k] · g[:, :, m], low, interior, high)

With stride 1 there is no interior padding and this is itself a forward
correlation, of ``g`` with the flipped kernel whose in/out channels are
exchanged within each group (the lax impl's ``T``, derived in
:mod:`jaxconv.impls.lax`), which the forward's single fused loop computes
faster than a sum of pads.

Weight gradient, the adjoint in ``w`` (batch and positions contracted)::

    dw[g, m, c, k] = Σ_{n, p} g[n, g, m, p] · X_k[n, g, c, p]

With few entries per group (``prod(K) · M · Cg <= REDUCE_MAX``, depthwise
and small groups) they are the operands of variadic ``lax.reduce`` operations over
``(n, p)``, into which XLA fuses the products, so ``x`` and ``g`` are read
once per reduction (10x faster than a pass per tap on CPU): as many taps per
reduction as keep it within ``REDUCE_OPERANDS`` operands (one reduction for
every depthwise 3x3 or 1-d k31 kernel; two taps each for 32 groups of 4 input
and 4 output channels).
A single reduction of more operands compiles slowly (1.9 s for 144) and
runs slower too (11.0 against 9.7 ms on grouped_3x3_g32, AMD 2-core CPU).
Otherwise it is one contraction per tap over ``(n, p)`` with ``g`` a batch
dimension.

``g`` may hold fewer positions than ``P`` (conv_transpose with output_padding
>= stride): the windows and placements then use its size, which is the adjoint
of the forward followed by that crop.

With many channels per group (``Cg`` above :data:`UNROLL_MAX` in the forward,
``M`` above it in the input gradient) the inner sum over channels is instead
one ``dot_general`` per tap (``[N·P, Cg] [Cg, M] -> [N·P, M]`` per group): a
shift-and-matmul, which keeps the program size at ``prod(K)`` operations. With one
group the group is not a batch dimension of that product: as one, XLA (jax 0.10.2,
CPU) copied the weight transposed, ``[Cg, M]``, on every call, and a 1x1 forward on a
small map (2x512x10x10 -> 1024) took 1.87 ms against 1.16 without it (PyTorch 0.84;
benchmarks/pointwise_probe.py, "group batch"). A 1x1 kernel on a map of at least
:data:`PER_IMAGE_MATMUL_MIN_POSITIONS` positions is instead one matmul per image and
group, ``[M, Cg] [Cg, P] -> [M, P]``, with the images and groups as batch
dimensions: it reads and writes the NCHW layout as it is, where the stacked matmul
transposes the input and the output around it
(:func:`per_image_matmul`).

The results of the fused loops pass through :func:`~jaxconv.impls._xla.fusion_fence`,
so that a reduction consuming them (a loss, a batch norm) does not pull the
loop into one of XLA's CPU YNNPACK fusions, which would materialise every
window first (16x slower on a depthwise layer).

Every product accumulates in float32 for half-precision inputs and is cast back
once at the end. ``spec.precision`` applies to the ``dot_general`` paths; the
unrolled multiply-adds and the reduction are elementwise products at the
accumulation dtype, which no precision setting changes.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._registry import Impl, register_impl
from jaxconv._spec import ConvSpec
from jaxconv.impls._xla import accumulation_dtype, fusion_fence, split_groups
from jaxconv.impls.lax import input_grad_as_forward

# Channel sums longer than this are one dot_general per tap instead of unrolled
# broadcast multiply-adds (which XLA fuses, but compiles slowly when long).
UNROLL_MAX = 16
# Weight gradients with at most this many entries per group (taps x M x Cg) are variadic
# reductions (one pass over x and g each); larger ones, one dot_general per tap.
REDUCE_MAX = 256
# ... split into variadic reductions of at most this many operands (whole taps each).
REDUCE_OPERANDS = 32
# Depthwise forwards with at most this many taps pad each window inside the fused loop.
WINDOW_PAD_MAX = 16
# 1x1 forwards with at least this many output positions per image are one matmul per
# image and group in the input's own layout (no transposes), else one matmul over all
# images (python benchmarks/pointwise_probe.py).
PER_IMAGE_MATMUL_MIN_POSITIONS = 400


def _taps(kernel: Sequence[int]):
    return itertools.product(*(range(k) for k in kernel))


def _window(x: jax.Array, tap: Sequence[int], spec: ConvSpec,
            positions: Sequence[int]) -> jax.Array:
    """``X_k``: ``xp[..., k·d : k·d + (P - 1)·s + 1 : s]`` over the trailing axes, where
    ``xp`` is `x` zero-padded by ``spec.zero_padding`` (negative pads crop).

    ``xp`` itself is never built: each window pads `x` by just what it reads
    beyond the edges, then slices. XLA fuses that small pad into the consumer
    loop, where one padded array read by every window would be materialised
    (single-threaded: 3-4 ms per 12.8 MB on this project's CPU).
    """
    lead = x.ndim - spec.rank
    config, start, limit = [(0, 0, 0)] * lead, [0] * lead, list(x.shape[:lead])
    for k, d, s, p, (lo, _), n in zip(tap, spec.dilation, spec.stride, positions,
                                      spec.zero_padding, x.shape[lead:], strict=True):
        first = k * d - lo  # the input row output 0 reads through this tap
        last = first + (p - 1) * s
        before, after = max(0, -first), max(0, last - (n - 1))
        config.append((before, after, 0))
        start.append(first + before)
        limit.append(last + before + 1)
    if any(lo or hi for lo, hi, _ in config):
        x = lax.pad(x, jnp.zeros((), x.dtype), config)
    return lax.slice(x, start, limit, [1] * lead + list(spec.stride))


def _padded(x: jax.Array, spec: ConvSpec, per_window: bool) -> tuple[jax.Array, ConvSpec]:
    """`x` and the spec its windows are read with: `x` as it is, each window padding
    itself (`per_window`), or `x` zero-padded once and a spec without padding.

    Per-window pads fuse into the forward's loop (a padded array read by many
    windows is materialised, single-threaded: 3-4 ms per 12.8 MB on this project's
    CPU); with many taps, or inside the weight gradient's reduction, one pad is
    faster (``python -m jaxconv bench --kernels``).
    """
    if per_window or all(lo == 0 and hi == 0 for lo, hi in spec.zero_padding):
        return x, spec
    config = [(0, 0, 0)] * (x.ndim - spec.rank) + [(lo, hi, 0) for lo, hi in spec.zero_padding]
    xp = lax.pad(x, jnp.zeros((), x.dtype), config)
    return xp, dataclasses.replace(spec, padding=((0, 0),) * spec.rank)


def per_image_matmul(kernel: Sequence[int], out_spatial: Sequence[int], group_in: int) -> bool:
    """Whether the forward of a 1x1 kernel is one matmul per image and group,
    ``[M, Cg] [Cg, P] -> [M, P]``, read and written in the NCHW layout itself: with
    at least :data:`PER_IMAGE_MATMUL_MIN_POSITIONS` positions, and channel sums
    long enough for a matmul. Else the images are stacked into one matmul, which
    transposes the input and the output (faster on small maps)."""
    return (all(k == 1 for k in kernel) and group_in > UNROLL_MAX
            and math.prod(out_spatial) >= PER_IMAGE_MATMUL_MIN_POSITIONS)


def _channel_matmul(xs: jax.Array, wt: jax.Array, spec: ConvSpec, acc) -> jax.Array:
    """One tap's channel sum as a matmul: ``[N, G, Cg, *P] [G, M, Cg] -> [N, G, M, *P]``.
    With one group the group is not a batch dimension of the ``dot_general`` (as one, XLA
    copied ``wt`` transposed on every call: module docstring)."""
    rank = xs.ndim - 3
    kw = dict(precision=spec.precision, preferred_element_type=acc)
    if xs.shape[1] == 1:  # [N, Cg, *P] [M, Cg] -> [N, *P, M]
        term = lax.dot_general(xs[:, 0], wt[0], (([1], [1]), ((), ())), **kw)
        return jnp.moveaxis(term, rank + 1, 1)[:, None]
    term = lax.dot_general(xs, wt, (([2], [2]), ([1], [0])), **kw)  # [G, N, *P, M]
    return jnp.moveaxis(term, (0, rank + 2), (1, 2))


def forward(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """``y = Σ_{k,c} w[:, :, c, k] · X_k[:, :, c]``: ``(N, C_in, *S) -> (N, C_out, *P)``."""
    n, groups, rank = x.shape[0], spec.groups, spec.rank
    out_channels, group_in, *kernel = w.shape
    acc = accumulation_dtype(x.dtype)
    out_spatial = spec.output_spatial(x.shape[2:], kernel)
    # A window read by several channels' terms is materialised with its pad: pad
    # per window only where each window has one reader (depthwise).
    xp, spec_p = _padded(x, spec, math.prod(kernel) <= WINDOW_PAD_MAX and group_in == 1)
    xp = split_groups(xp, 1, groups).astype(acc)  # (N, G, Cg, *S)
    wg = split_groups(w, 0, groups).astype(acc)  # (G, M, Cg, *K)
    y = None
    if per_image_matmul(kernel, out_spatial, group_in):
        # [N, G, M, Cg] [N, G, Cg, P] -> [N, G, M, P]: the images and groups are batch
        # dimensions, so the product is already in (N, C_out, *P) order.
        xs = _window(xp, (0,) * rank, spec_p, out_spatial).reshape(n, groups, group_in, -1)
        wb = jnp.broadcast_to(wg.reshape(1, *wg.shape[:3]), (n, *wg.shape[:3]))
        y = lax.dot_general(wb, xs, (([3], [2]), ([0, 1], [0, 1])),
                            precision=spec.precision, preferred_element_type=acc)
        return fusion_fence(y.reshape(n, out_channels, *out_spatial).astype(x.dtype))
    for tap in _taps(kernel):
        xs = _window(xp, tap, spec_p, out_spatial)  # (N, G, Cg, *P)
        if group_in > UNROLL_MAX:
            term = _channel_matmul(xs, wg[(Ellipsis, *tap)], spec, acc)
            y = term if y is None else y + term
            continue
        for c in range(group_in):
            wc = wg[(slice(None), slice(None), c, *tap)].reshape(1, *wg.shape[:2], *(1,) * rank)
            term = xs[:, :, c:c + 1] * wc  # (N, G, M, *P)
            y = term if y is None else y + term
    assert y is not None  # at least one tap
    return fusion_fence(y.reshape(n, out_channels, *out_spatial).astype(x.dtype))


def input_grad(g: jax.Array, w: jax.Array, spec: ConvSpec, in_spatial) -> jax.Array:
    """``dx = Σ_k place_k(Σ_m w[:, m, :, k] · g[:, :, m])``: ``-> (N, C_in, *in_spatial)``."""
    n, groups, rank = g.shape[0], spec.groups, spec.rank
    out_channels, group_in, *kernel = w.shape
    positions = g.shape[2:]
    if all(s == 1 for s in spec.stride):
        return input_grad_as_forward(forward, g, w, spec, in_spatial)
    acc = accumulation_dtype(g.dtype)
    gg = split_groups(g, 1, groups).astype(acc)  # (N, G, M, *P)
    wg = split_groups(w, 0, groups).astype(acc)  # (G, M, Cg, *K)
    zero = jnp.zeros((), acc)
    dx = None
    for tap in _taps(kernel):
        t = None
        if out_channels // groups > UNROLL_MAX:  # [N, G, M, *P] [G, M, Cg] -> [G, N, *P, Cg]
            t = lax.dot_general(gg, wg[(Ellipsis, *tap)], (([2], [1]), ([1], [0])),
                                precision=spec.precision, preferred_element_type=acc)
            t = jnp.moveaxis(t, (0, rank + 2), (1, 2))
        for m in range(0 if t is not None else out_channels // groups):
            wm = wg[(slice(None), m, slice(None), *tap)].reshape(1, groups, group_in,
                                                                  *(1,) * rank)
            term = gg[:, :, m:m + 1] * wm  # (N, G, Cg, *P)
            t = term if t is None else t + term
        assert t is not None  # at least one output channel per group
        config = [(0, 0, 0)] * 3 + [
            (k * d - lo, size - 1 + lo - k * d - (p - 1) * s, s - 1)
            for k, d, s, (lo, _), size, p in zip(tap, spec.dilation, spec.stride,
                                                 spec.zero_padding, in_spatial, positions,
                                                 strict=True)]
        placed = lax.pad(t, zero, config)
        dx = placed if dx is None else dx + placed
    assert dx is not None  # at least one tap
    return fusion_fence(dx.reshape(n, group_in * groups, *in_spatial).astype(g.dtype))


def weight_grad(x: jax.Array, g: jax.Array, spec: ConvSpec, kernel) -> jax.Array:
    """``dw[g, m, c, k] = Σ_{n,p} g[n, g, m, p] · X_k[n, g, c, p]``: ``-> (C_out, Cg, *K)``."""
    groups, rank = spec.groups, spec.rank
    acc = accumulation_dtype(x.dtype)
    positions = g.shape[2:]
    xp, spec = _padded(x, spec, False)
    xp = split_groups(xp, 1, groups)  # (N, G, Cg, *S)
    gg = split_groups(g, 1, groups)
    group_out, group_in = gg.shape[2], xp.shape[2]
    taps = list(_taps(kernel))
    if len(taps) * group_out * group_in <= REDUCE_MAX:
        return _weight_grad_by_reduce(xp.astype(acc), gg.astype(acc), spec, taps,
                                      kernel).astype(x.dtype)
    space = list(range(3, 3 + rank))
    per_tap = []
    for tap in taps:
        xs = _window(xp, tap, spec, positions)  # (N, G, Cg, *P)
        # (N, G, M, *P) x (N, G, Cg, *P) -> (G, M, Cg): g batch, (n, p) contracted.
        per_tap.append(lax.dot_general(gg, xs, (([0, *space], [0, *space]), ([1], [1])),
                                       precision=spec.precision, preferred_element_type=acc))
    dw = jnp.stack(per_tap, axis=-1)  # (G, M, Cg, prod(K))
    return dw.reshape(g.shape[1], x.shape[1] // groups, *kernel).astype(x.dtype)


def _weight_grad_by_reduce(xp: jax.Array, gg: jax.Array, spec: ConvSpec, taps,
                           kernel) -> jax.Array:
    """Every ``(k, m, c)`` entry of ``dw`` (per group) as one operand of a variadic
    ``lax.reduce`` over ``(n, p)``, whole taps per reduction and at most
    ``REDUCE_OPERANDS`` operands (at least one tap): XLA fuses the products into
    each and reads ``x`` and ``g`` once per reduction, not once per entry."""
    groups, group_out, group_in = gg.shape[1], gg.shape[2], xp.shape[2]
    per_reduce = max(1, REDUCE_OPERANDS // (group_out * group_in))
    dims = (0, *range(2, 2 + spec.rank))
    sums = []
    for first in range(0, len(taps), per_reduce):
        products = []
        for tap in taps[first:first + per_reduce]:
            xs = _window(xp, tap, spec, gg.shape[3:])  # (N, G, Cg, *P)
            products += [gg[:, :, m] * xs[:, :, c] for m in range(group_out)
                         for c in range(group_in)]  # each (N, G, *P)
        zeros = [jnp.zeros((), xp.dtype)] * len(products)
        sums += lax.reduce(products, zeros,
                           lambda a, b: [u + v for u, v in zip(a, b, strict=True)],
                           dims)  # each (G,)
    dw = jnp.stack(sums, axis=-1).reshape(groups, len(taps), group_out, group_in)
    return jnp.moveaxis(dw, 1, -1).reshape(groups * group_out, group_in, *kernel)


SHIFT = register_impl(
    Impl(
        name="shift",
        forward=forward,
        input_grad=input_grad,
        weight_grad=weight_grad,
        description="direct shift-and-multiply-accumulate over strided windows (lax.slice, "
        "lax.pad); no patch tensor; fastest for depthwise and few channels per group.",
    )
)
