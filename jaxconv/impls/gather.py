"""impl="gather": explicit im2col, with gathers, one einsum per kernel and col2im.

No convolution primitive is used. Per spatial axis, with zero-padded input size
``n + lo + hi``, kernel ``K``, stride ``s``, dilation ``d`` and output size ``P``,
a static integer index array ::

    idx[p, k] = p·s + k·d                                      shape (P, K)

names the padded input position that output ``p`` reads through tap ``k``.
Stride and dilation enter *only* here. Taking ``xp`` (the zero-padded input)
at ``idx`` along every spatial axis gives the patches
``X[b, c, p₁, k₁, p₂, k₂, …] = xp[b, c, idx₁[p₁, k₁], idx₂[p₂, k₂], …]``.

In matrix notation, per group ``γ``: ``X`` is ``(N·P, C/G · K)`` (rows are
(batch, output position), columns are (channel, tap); ``P``, ``K`` the products
over axes), ``W`` is ``(O/G, C/G · K)`` and ``G`` (the output gradient) is
``(N·P, O/G)``. The group is a batch dimension of every contraction::

    y  = X Wᵀ      [N·P, CK] [O, CK] -> [N·P, O]                 (forward)
    dW = Gᵀ X      [N·P, O] [N·P, CK] -> [O, CK]                 (weight grad)
    dX = G W       [N·P, O] [O, CK]  -> [N·P, CK]                (patch grad)

(``dW`` as ``Σ_b G_bᵀ X_b``, one ``[P, O] [P, CK]`` product per sample, when a
sample has at least ``PER_SAMPLE_W_MIN_POSITIONS`` output positions and no more
output channels per group than positions), and the
input gradient is ``dX`` sent back through the gather: col2im
scatter-adds ``dX[b, c, p, k]`` onto ``xp[b, c, idx[p, k]]`` (as strided
``lax.pad``s per tap, see :func:`col2im`; overlapping
windows sum; positions no window reads, e.g. the trailing ``(n + lo + hi -
d(K-1) - 1) mod s`` rows, get zero), then the zero padding ``(lo, hi)`` is
cropped away. That is exactly the adjoint of the forward in ``x``.

Memory: the patch tensor is about ``prod(K) / prod(s)`` times the input, so every
kernel runs over the batch in chunks whose largest gather tensor (the patch
tensor, or an axis-by-axis intermediate or the padded input if larger; in the
accumulation dtype for the patch gradient) stays under :func:`get_memory_budget`
bytes (see :func:`set_memory_budget`); a single sample is never split.

Half precision (float16, bfloat16): contractions accumulate in float32
(``preferred_element_type``), as does the col2im sum and the sum of
weight-gradient chunks; results are cast back to the input dtype.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._registry import Impl, register_impl
from jaxconv._settings import clear_jitted_cores
from jaxconv._spec import ConvSpec, Pairs, as_int
from jaxconv.impls._xla import accumulation_dtype, split_groups

_DEFAULT_MEMORY_BUDGET = 256 * 2**20
_memory_budget = _DEFAULT_MEMORY_BUDGET

# The weight gradient's contraction runs over (batch, output position). From this many
# output positions per sample on, it is one product per sample, summed: ``[P, O] [P, CK]``
# each, which XLA's CPU dot runs on the arrays as they lie, where contracting batch and
# positions together first transposes the patch tensor. W alone, ms, contracting both /
# per sample (AMD EPYC 2-core, ``python -m jaxconv bench --kernels`` shapes):
# 8x64x56² 3x3 104 / 79, stem 7x7 s2 (112² outputs) 193 / 116, wavenet 1-d (4096)
# 53 / 25; 8x64x28² 16.0 / 16.2; at 14² (196 positions) per sample is slower, 4.3 / 8.2,
# and at 4x4 (late layers) 7 / 280. Only with at most as many output channels per group as
# positions: the partial sums of a sample are then no larger than its patches.
PER_SAMPLE_W_MIN_POSITIONS = 1024


def set_memory_budget(nbytes: int) -> None:
    """Bound, in bytes, the patch tensor of one batch chunk (default 256 MiB).

    A single sample is never split, so one sample's patches may exceed it.

    The budget is read when a convolution is traced. Setting it clears the caches
    of jaxconv's own jitted cores, so every later call of jaxconv's functions
    and layers is traced again with the new budget; a jitted function of yours
    that already traced a jaxconv call keeps its program until it is traced
    again (e.g. after ``jax.clear_caches()``).

    Raises:
      TypeError: `nbytes` is not an int.
      ValueError: `nbytes` is not positive.
    """
    global _memory_budget
    nbytes = as_int("set_memory_budget", "nbytes", nbytes)
    if nbytes <= 0:
        raise ValueError(
            f"jaxconv.set_memory_budget: `nbytes` must be positive, got nbytes={nbytes}."
        )
    if nbytes != _memory_budget:
        _memory_budget = nbytes
        clear_jitted_cores()


def get_memory_budget() -> int:
    """The current patch-tensor budget in bytes (see :func:`set_memory_budget`)."""
    return _memory_budget


# --- index arithmetic, once for every rank --------------------------------------------------

@functools.lru_cache(maxsize=512)
def window_indices(out: int, kernel: int, stride: int, dilation: int) -> np.ndarray:
    """``idx[p, k] = p·stride + k·dilation``, shape ``(out, kernel)``, int64, read-only."""
    idx = np.arange(out, dtype=np.int64)[:, None] * stride
    idx = idx + np.arange(kernel, dtype=np.int64)[None, :] * dilation
    idx.setflags(write=False)
    return idx


def _axis_indices(spec: ConvSpec, out_spatial: Sequence[int],
                  kernel: Sequence[int]) -> list[np.ndarray]:
    return [
        window_indices(p, k, s, d)
        for p, k, s, d in zip(out_spatial, kernel, spec.stride, spec.dilation, strict=True)
    ]


def _padded_spatial(spatial: Sequence[int], pads: Pairs) -> tuple[int, ...]:
    return tuple(n + lo + hi for n, (lo, hi) in zip(spatial, pads, strict=True))


def _zero_pad(x: jax.Array, pads: Pairs) -> jax.Array:
    return jnp.pad(x, ((0, 0), (0, 0), *pads))


def _crop(x: jax.Array, pads: Pairs) -> jax.Array:
    return x[(slice(None), slice(None),
              *(slice(lo, n - hi) for n, (lo, hi) in zip(x.shape[2:], pads, strict=True)))]


_INT32_MAX = np.iinfo(np.int32).max


def take_windows(x: jax.Array, idx: np.ndarray, axis: int) -> jax.Array:
    """``x[..., idx[p, k], ...]`` with `axis` replaced by ``(P, K)``, by strided slices.

    Tap ``k`` of every window reads the arithmetic progression ``idx[:, k]``, one
    strided ``lax.slice``; the taps are stacked. No index array, so no index width
    to overflow: im2col uses it on an axis longer than int32 can index (a gather's
    indices are int32 unless x64 is enabled).
    """
    out = idx.shape[0]
    step = int(idx[1, 0] - idx[0, 0]) if out > 1 else 1
    bounds = [(int(idx[0, k]), int(idx[-1, k]) + 1) if out else (0, 0)
              for k in range(idx.shape[1])]
    taps = [lax.slice_in_dim(x, start, limit, step, axis) for start, limit in bounds]
    return jnp.stack(taps, axis=axis + 1)


def im2col(xp: jax.Array, indices: Sequence[np.ndarray]) -> jax.Array:
    """``(N, C, *S_padded) -> (N, C, P₁, K₁, …, P_r, K_r)``: gather one axis at a time."""
    for i, idx in enumerate(indices):
        # Axes before 2 + 2i are already (P, K) pairs; axis 2 + 2i is still S_i.
        axis = 2 + 2 * i
        if xp.shape[axis] > _INT32_MAX:  # int32 indices (and take's clip bound) overflow
            xp = take_windows(xp, idx, axis)
        else:  # in bounds: clip never clips
            xp = jnp.take(xp, idx.astype(np.int32), axis=axis, mode="clip")
    return xp


def col2im(patches: jax.Array, indices: Sequence[np.ndarray], strides: Sequence[int],
           padded: Sequence[int]) -> jax.Array:
    """Adjoint of :func:`im2col`: sum ``(N, C, P₁, K₁, …)`` back onto ``(N, C, *padded)``.

    A scatter-add of ``patches[..., p, k, ...]`` onto position ``idx[p, k]``, done
    one axis and one tap at a time without a scatter: tap ``k`` of every window
    lands on ``idx[:, k] = k·d + p·s``, an arithmetic progression, so its slice is
    placed by a ``lax.pad`` with low padding ``idx[0, k]`` and interior padding
    ``s - 1``; the taps are summed. (3-11x faster than XLA's scatter on CPU.)
    """
    zero = jnp.zeros((), patches.dtype)
    for i in reversed(range(len(indices))):
        # Axes after 2 + 2i + 1 are already padded input axes; (P_i, K_i) sit at 2 + 2i.
        axis, idx, stride = 2 + 2 * i, indices[i], strides[i]
        total = None
        for k in range(idx.shape[1]):
            tap = lax.index_in_dim(patches, k, axis + 1, keepdims=False)
            config = [(0, 0, 0)] * tap.ndim
            config[axis] = (int(idx[0, k]), padded[i] - 1 - int(idx[-1, k]), stride - 1)
            placed = lax.pad(tap, zero, config)
            total = placed if total is None else total + placed
        assert total is not None  # idx has at least one column
        patches = total
    return patches


# --- einsum labels (integers, so any rank) --------------------------------------------------

_BATCH, _GROUP, _IN, _OUT = range(4)


def _out_labels(rank: int) -> list[int]:
    return [4 + 2 * i for i in range(rank)]


def _tap_labels(rank: int) -> list[int]:
    return [5 + 2 * i for i in range(rank)]


def _patch_labels(rank: int) -> list[int]:
    """``(N, G, C/G, P₁, K₁, …, P_r, K_r)``, the layout :func:`im2col` produces."""
    pairs = zip(_out_labels(rank), _tap_labels(rank), strict=True)
    return [_BATCH, _GROUP, _IN, *(label for pair in pairs for label in pair)]


def _ungrouped(a: jax.Array, axis: int) -> jax.Array:
    """Merge axes `axis`, `axis + 1` (group, channel in group) back into one."""
    return a.reshape(*a.shape[:axis], a.shape[axis] * a.shape[axis + 1], *a.shape[axis + 2:])


def _einsum(spec: ConvSpec, *operands_and_labels: Any) -> jax.Array:
    dtype = operands_and_labels[0].dtype
    return jnp.einsum(*operands_and_labels, precision=spec.precision,
                      preferred_element_type=accumulation_dtype(dtype))


# --- batch chunking under the memory budget -------------------------------------------------

def _largest_gather_elements(padded: Sequence[int], out_spatial: Sequence[int],
                             kernel: Sequence[int]) -> int:
    """Spatial elements of the largest tensor im2col / col2im hold: the padded input,
    then axis by axis ``S_i -> (P_i, K_i)``; the final one is the patch tensor."""
    sizes = [math.prod(padded)]
    for i in range(len(padded)):
        gathered = math.prod(p * k for p, k in zip(out_spatial[: i + 1], kernel[: i + 1]))
        sizes.append(gathered * math.prod(padded[i + 1:]))
    return max(sizes)


def _chunk_size(channels: int, padded: Sequence[int], out_spatial: Sequence[int],
                kernel: Sequence[int], dtype: Any) -> int:
    """Samples per chunk so that one chunk's patch tensor fits the budget (at least 1)."""
    per_sample = (channels * jnp.dtype(dtype).itemsize
                  * _largest_gather_elements(padded, out_spatial, kernel))
    return max(1, get_memory_budget() // max(1, per_sample))


def _split_batch(
    arrays: Sequence[jax.Array], chunk: int
) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...] | None]:
    """``(head, tail)``: leading ``m·chunk`` samples as ``(m, chunk, ...)``, and the rest."""
    n = arrays[0].shape[0]
    m = n // chunk
    head = tuple(a[: m * chunk].reshape(m, chunk, *a.shape[1:]) for a in arrays)
    tail = tuple(a[m * chunk:] for a in arrays) if n % chunk else None
    return head, tail


def _map_batch(f: Callable[..., jax.Array], arrays: Sequence[jax.Array],
               chunk: int) -> jax.Array:
    """``f(*arrays)`` computed ``chunk`` samples at a time (``f`` maps batch to batch)."""
    if chunk >= arrays[0].shape[0]:
        return f(*arrays)
    head, tail = _split_batch(arrays, chunk)
    ys = lax.map(lambda xs: f(*xs), head)
    ys = ys.reshape(ys.shape[0] * ys.shape[1], *ys.shape[2:])
    return ys if tail is None else jnp.concatenate([ys, f(*tail)])


def _sum_batch(f: Callable[..., jax.Array], arrays: Sequence[jax.Array],
               chunk: int) -> jax.Array:
    """``f(*arrays)`` for an `f` that sums over the batch, ``chunk`` samples at a time."""
    if chunk >= arrays[0].shape[0]:
        return f(*arrays)
    head, tail = _split_batch(arrays, chunk)
    out = jax.eval_shape(f, *(a[0] for a in head))
    total, _ = lax.scan(lambda acc, xs: (acc + f(*xs), None),
                        jnp.zeros(out.shape, out.dtype), head)
    return total if tail is None else total + f(*tail)


# --- the three kernels ------------------------------------------------------------------------

def _grouped_patches(x: jax.Array, spec: ConvSpec, indices) -> jax.Array:
    """``(N, G, C/G, P₁, K₁, …)``: zero-pad, im2col, split channels into groups."""
    return split_groups(im2col(_zero_pad(x, spec.zero_padding), indices), 1, spec.groups)


def forward(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """``y = X Wᵀ`` per group: ``(N, C_in, *S) -> (N, C_out, *P)``."""
    rank, kernel = spec.rank, w.shape[2:]
    padded = _padded_spatial(x.shape[2:], spec.zero_padding)
    out_spatial = spec.output_spatial(x.shape[2:], kernel)
    indices = _axis_indices(spec, out_spatial, kernel)
    wg = split_groups(w, 0, spec.groups)  # (G, O/G, C/G, *K)

    def chunk_forward(xc: jax.Array) -> jax.Array:
        y = _einsum(spec, _grouped_patches(xc, spec, indices), _patch_labels(rank),
                    wg, [_GROUP, _OUT, _IN, *_tap_labels(rank)],
                    [_BATCH, _GROUP, _OUT, *_out_labels(rank)])
        return _ungrouped(y, 1).astype(x.dtype)

    chunk = _chunk_size(x.shape[1], padded, out_spatial, kernel, x.dtype)
    return _map_batch(chunk_forward, (x,), chunk)


def input_grad(g: jax.Array, w: jax.Array, spec: ConvSpec, in_spatial) -> jax.Array:
    """``dX = G W`` per group, then col2im and crop: ``(N, C_out, *P) -> (N, C_in, *S)``."""
    rank, kernel, out_spatial = spec.rank, w.shape[2:], g.shape[2:]
    padded = _padded_spatial(in_spatial, spec.zero_padding)
    assert all(p <= q for p, q in zip(out_spatial, spec.output_spatial(in_spatial, kernel),
                                      strict=True))
    indices = _axis_indices(spec, out_spatial, kernel)
    wg = split_groups(w, 0, spec.groups)

    def chunk_input_grad(gc: jax.Array) -> jax.Array:
        dpatches = _einsum(spec, split_groups(gc, 1, spec.groups),
                           [_BATCH, _GROUP, _OUT, *_out_labels(rank)],
                           wg, [_GROUP, _OUT, _IN, *_tap_labels(rank)],
                           _patch_labels(rank))
        dxp = col2im(_ungrouped(dpatches, 1), indices, spec.stride, padded)
        return _crop(dxp, spec.zero_padding).astype(g.dtype)

    channels = w.shape[1] * spec.groups
    chunk = _chunk_size(channels, padded, out_spatial, kernel, accumulation_dtype(g.dtype))
    return _map_batch(chunk_input_grad, (g,), chunk)


def weight_grad(x: jax.Array, g: jax.Array, spec: ConvSpec, kernel) -> jax.Array:
    """``dW = Gᵀ X`` per group, summed over batch chunks: ``-> (C_out, C_in/G, *kernel)``."""
    rank, kernel, out_spatial = spec.rank, tuple(kernel), g.shape[2:]
    padded = _padded_spatial(x.shape[2:], spec.zero_padding)
    assert all(p <= q for p, q in zip(out_spatial, spec.output_spatial(x.shape[2:], kernel),
                                      strict=True))
    indices = _axis_indices(spec, out_spatial, kernel)

    # Per sample only where its [O/G, C/G·K] partial sums are no larger than the patch
    # tensor's [C/G·K, P] per sample, which the batch chunks are sized for.
    positions = math.prod(out_spatial)
    per_sample = positions >= max(PER_SAMPLE_W_MIN_POSITIONS, g.shape[1] // spec.groups)
    dw_labels = [_GROUP, _OUT, _IN, *_tap_labels(rank)]

    def chunk_weight_grad(xc: jax.Array, gc: jax.Array) -> jax.Array:
        dw = _einsum(spec, split_groups(gc, 1, spec.groups),
                     [_BATCH, _GROUP, _OUT, *_out_labels(rank)],
                     _grouped_patches(xc, spec, indices), _patch_labels(rank),
                     [_BATCH, *dw_labels] if per_sample else dw_labels)
        if per_sample:
            dw = dw.sum(0)
        return _ungrouped(dw, 0)  # accumulation dtype; cast once after the chunk sum

    chunk = _chunk_size(x.shape[1], padded, out_spatial, kernel, x.dtype)
    return _sum_batch(chunk_weight_grad, (x, g), chunk).astype(x.dtype)


GATHER = register_impl(
    Impl(
        name="gather",
        forward=forward,
        input_grad=input_grad,
        weight_grad=weight_grad,
        description="explicit im2col: static-index gathers + einsum, col2im transposed gather; "
        "no convolution primitive; batch chunked under a memory budget.",
    )
)
