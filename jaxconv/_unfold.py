"""``unfold`` and ``fold`` (im2col and col2im) with PyTorch's layout, in any rank.

``unfold`` extracts the sliding blocks of a (padded) input; ``fold`` sums blocks
back onto an image. With ``K = prod(kernel_size)`` and ``L`` the number of blocks
(the product of the per-axis block counts ``P_i``)::

    unfold: (N, C, *S) -> (N, C·K, L)      fold: (N, C·K, L) -> (N, C, *S)

The feature axis is channel-major, then the kernel offsets ``(k_1, …, k_r)`` in
row-major order; the block axis lists the block positions ``(p_1, …, p_r)`` in
row-major order, as ``torch.nn.functional.unfold`` does::

    unfold(x)[n, (c·K_1 + k_1)·K_2 + k_2 …, p_1·P_2 + p_2 …]
        = xp[n, c, p_1·s_1 + k_1·d_1, p_2·s_2 + k_2·d_2, …]

with ``xp`` the input padded by ``padding`` on both sides of every spatial axis
(zeros, or ``padding_mode``), ``s`` the stride, ``d`` the dilation and
``P_i = (S_i + 2·pad_i - d_i·(K_i - 1) - 1) // s_i + 1``.

Derivation of fold as unfold's transpose. Write ``U`` for the VALID unfold of an
already padded input: a 0/1 matrix with exactly one 1 per row, mapping ``xp`` to
the columns. Its transpose ``Uᵀ`` sends column entry ``(c, k, p)`` back to the
position ``p·s + k·d`` it was read from, summing where windows overlap::

    <U xp, y> = Σ_{c,k,p} xp[c, p·s + k·d] y[c, k, p] = <xp, Uᵀ y>

``Uᵀ`` is PyTorch's ``fold`` onto the padded image; ``fold`` then crops the
padding (``C``, the crop, is the transpose of zero padding ``Z``)::

    unfold = U ∘ Z        fold = C ∘ Uᵀ = Zᵀ ∘ Uᵀ = (U ∘ Z)ᵀ

so ``fold`` is exactly the adjoint of zero-padded ``unfold`` (PyTorch's identity
``<unfold(x), y> = <x, fold(y)>``). Both ``U`` and ``Uᵀ`` are bound as linear JAX
primitives (``jaxconv_unfold``, ``jaxconv_fold``) whose transposes are each
other: the JVP of a linear map is the map of the tangent, so ``jvp``, ``vmap``,
``grad`` of any order, ``jacfwd`` and ``hessian`` all run the same two kernels.
The padding (and ``padding_mode``'s pre-pad, :func:`jaxconv._padding.mode_pad`,
itself a primitive with a hand-written transpose) and the crop stay outside.

Rank rule. PyTorch's unfold/fold are 2-d only; jaxconv takes any rank ``r >= 1``:
``r`` is ``len(output_size)`` (fold only) when it is a tuple, else the length of
the first tuple among ``kernel_size, dilation, padding, stride``, else 2 (all
ints: PyTorch's 2-d forms, unchanged). Every tuple argument must then have
``r`` entries. unfold's input is ``(N, C, *S)`` (``r + 2`` dims) or unbatched
``(C, *S)`` (``r + 1`` dims); fold's input is ``(N, C·K, L)`` or ``(C·K, L)``.

Impls (peers, compared with each other and with PyTorch in the tests):

* ``gather``: static index arrays and one gather per axis
  (:func:`jaxconv.impls.gather.im2col`); fold is its adjoint
  :func:`jaxconv.impls.gather.col2im` (scatter-add as strided pads per axis);
* ``slices``: one strided slice of the padded input per kernel offset, stacked;
  fold is a sum of one strided ``lax.pad`` per kernel offset;
* ``reshape``: blocks that do not overlap (``s_i >= d_i·(K_i - 1) + 1`` on every
  axis, e.g. ViT's 16x16/16 patching) by reshapes: crop or zero-pad each axis to
  ``P·s``, split it into ``(P, s)`` and take ``K`` strided entries of each ``s``;
  fold is its transpose (interior pad, merge, crop). Overlapping blocks split each
  axis's taps into consecutive groups of ``m = (s - 1) // d + 1`` (the most whose
  blocks do not overlap, :func:`tap_groups`): each group is such a reshape of the
  input shifted by its first tap, the groups are concatenated (unfold) or summed
  (fold: ``prod_i ceil(K_i / m_i)`` image-sized terms, e.g. 4 for an 8x8/4
  overlap-add where ``slices`` has 64 and an interior pad each);
* ``auto``: :func:`choose`, per op and shape.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jaxconv import _settings
from jaxconv._padding import mode_pad, pad_trailing
from jaxconv._spec import (
    PADDING_MODES,
    _fail,
    check_array,
    check_dtype,
    check_elements,
    check_mode_padding,
    is_sequence,
    non_negative_tuple,
    positive_tuple,
)
from jaxconv.impls.gather import col2im, im2col, window_indices

IMPLS = ("auto", "gather", "slices", "reshape")
# auto's rule (:func:`choose`), from benchmarks/unfold_bench.py on the 2-core AMD Zen 5
# (benchmarks/results/zen5/unfold_cpu.md): reshape's unfold was the fastest forward
# and forward+backward on every shape but one (Swin's 2x2/2 merge, 0.76 ms against
# slices' 0.56); its fold the fastest everywhere up to 25 groups of taps (3x3/1: 1.39
# ms against gather's 18.9 and PyTorch's 11.2) and gather's on the 7x7/1 local
# attention (49 groups: 2.8 ms against 4.0).
AUTO_FOLD_MAX_GROUPS = 32


@dataclasses.dataclass(frozen=True)
class Windows:
    """The sliding blocks of one call, validated: the static argument of the
    primitives. `padded` is the spatial size of the (padded) image the blocks tile.
    """

    kernel: tuple[int, ...]
    dilation: tuple[int, ...]
    stride: tuple[int, ...]
    padded: tuple[int, ...]
    impl: str

    @property
    def rank(self) -> int:
        return len(self.kernel)

    @property
    def blocks(self) -> tuple[int, ...]:
        return block_counts(self.padded, self.kernel, self.dilation, self.stride)

    @property
    def taps(self) -> int:
        return math.prod(self.kernel)


def block_counts(padded, kernel, dilation, stride) -> tuple[int, ...]:
    """``P_i = (Sp_i - d_i·(K_i - 1) - 1) // s_i + 1`` (may be < 1: not checked here)."""
    return tuple((n - d * (k - 1) - 1) // s + 1
                 for n, k, d, s in zip(padded, kernel, dilation, stride, strict=True))


# --- the kernels: VALID im2col of a padded image and its transpose --------------------------

def _indices(w: Windows) -> list[np.ndarray]:
    return [window_indices(p, k, s, d)
            for p, k, s, d in zip(w.blocks, w.kernel, w.stride, w.dilation, strict=True)]


def _to_columns(a: jax.Array, w: Windows) -> jax.Array:
    """``(N, C, K_1, …, K_r, P_1, …, P_r) -> (N, C·K, L)``."""
    return a.reshape(a.shape[0], a.shape[1] * w.taps, math.prod(w.blocks))


def _from_columns(cols: jax.Array, w: Windows) -> jax.Array:
    """``(N, C·K, L) -> (N, C, K_1, …, K_r, P_1, …, P_r)``."""
    return cols.reshape(cols.shape[0], cols.shape[1] // w.taps, *w.kernel, *w.blocks)


def _gather_unfold(xp: jax.Array, w: Windows) -> jax.Array:
    r = w.rank
    patches = im2col(xp, _indices(w))  # (N, C, P_1, K_1, …, P_r, K_r)
    order = (0, 1, *(3 + 2 * i for i in range(r)), *(2 + 2 * i for i in range(r)))
    return _to_columns(patches.transpose(order), w)


def _gather_fold(cols: jax.Array, w: Windows) -> jax.Array:
    r = w.rank
    a = _from_columns(cols, w)  # (N, C, K_1…K_r, P_1…P_r)
    # to (N, C, P_1, K_1, …): axis 2 + 2i takes P_i (at 2 + r + i), 3 + 2i takes K_i (2 + i)
    order = (0, 1, *itertools.chain.from_iterable((2 + r + i, 2 + i) for i in range(r)))
    return col2im(a.transpose(order), _indices(w), w.stride, w.padded)


def _offsets(w: Windows):
    return itertools.product(*(range(k) for k in w.kernel))


def _slices_unfold(xp: jax.Array, w: Windows) -> jax.Array:
    """One strided slice per kernel offset ``k``: ``xp[..., k·d : k·d + (P-1)·s + 1 : s]``."""
    n, c = xp.shape[:2]
    taps = []
    for k in _offsets(w):
        start = (0, 0, *(ki * d for ki, d in zip(k, w.dilation)))
        limit = (n, c, *(ki * d + (p - 1) * s + 1
                         for ki, d, p, s in zip(k, w.dilation, w.blocks, w.stride)))
        taps.append(lax.slice(xp, start, limit, (1, 1, *w.stride)))
    stacked = jnp.stack(taps, axis=2)  # (N, C, K, P_1, …, P_r), K row-major
    return stacked.reshape(n, c * w.taps, math.prod(w.blocks))


def _slices_fold(cols: jax.Array, w: Windows) -> jax.Array:
    """Transpose of :func:`_slices_unfold`: offset ``k``'s blocks are placed back by one
    ``lax.pad`` (low ``k·d``, interior ``s - 1``, high the rest) and summed."""
    n = cols.shape[0]
    a = cols.reshape(n, cols.shape[1] // w.taps, w.taps, *w.blocks)
    zero = jnp.zeros((), cols.dtype)
    total = None
    for t, k in enumerate(_offsets(w)):
        config = [(0, 0, 0), (0, 0, 0)] + [
            (ki * d, size - 1 - (ki * d + (p - 1) * s), s - 1)
            for ki, d, p, s, size in zip(k, w.dilation, w.blocks, w.stride, w.padded)]
        placed = lax.pad(a[:, :, t], zero, config)
        total = placed if total is None else total + placed
    assert total is not None  # at least one kernel offset
    return total


def tap_groups(kernel, dilation, stride) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Per axis, the taps split into consecutive groups ``[start, stop)`` whose blocks do
    not overlap: ``m = (s - 1) // d + 1`` taps each (the most with ``s >= d·(m - 1) + 1``),
    ``ceil(K / m)`` groups; one group where the blocks tile the image without overlapping
    (``s >= d·(K - 1) + 1``: no concatenation)."""
    groups = []
    for k, d, s in zip(kernel, dilation, stride, strict=True):
        m = min(k, (s - 1) // d + 1)
        groups.append(tuple((g, min(k, g + m)) for g in range(0, k, m)))
    return tuple(groups)


def _tile_unfold(xp: jax.Array, w: Windows, taps) -> jax.Array:
    """The blocks of taps ``[start_i, stop_i)`` per axis (non-overlapping:
    :func:`tap_groups`), ``(N, C, k'_1, …, k'_r, P_1, …, P_r)``, by reshapes. Per axis,
    block ``p`` reads ``xp[o + p·s + j·d]`` for ``j < k' = stop - start``, ``o = start·d``:
    crop the first ``o`` entries and crop (or zero-pad) the rest to ``P·s`` (the last
    read, ``(P-1)·s + d·(K-1)``, is inside ``Sp``, so the pad is never read), split it
    into ``(P, s)`` and take ``[0 : d·(k'-1) + 1 : d]`` of each ``s`` (``<= s``)."""
    r, (n, c) = w.rank, xp.shape[:2]
    size = [j1 - j0 for j0, j1 in taps]
    zero = jnp.zeros((), xp.dtype)
    fit = lax.pad(xp, zero, [(0, 0, 0)] * 2 + [
        (-j0 * d, p * s - (n_ - j0 * d), 0)
        for (j0, _), d, p, s, n_ in zip(taps, w.dilation, w.blocks, w.stride, w.padded)])
    split = fit.reshape(n, c, *itertools.chain.from_iterable(zip(w.blocks, w.stride)))
    picked = lax.slice(split, (0,) * (2 + 2 * r),
                       (n, c, *itertools.chain.from_iterable(
                           (p, d * (k - 1) + 1) for p, k, d in zip(w.blocks, size, w.dilation))),
                       (1, 1, *itertools.chain.from_iterable((1, d) for d in w.dilation)))
    order = (0, 1, *(3 + 2 * i for i in range(r)), *(2 + 2 * i for i in range(r)))
    return picked.transpose(order)


def _tile_fold(a: jax.Array, w: Windows, taps) -> jax.Array:
    """Transpose of :func:`_tile_unfold`, ``(N, C, k'…, P…)`` onto the padded image: the
    strided slice becomes an interior pad up to ``s``, the split a merge, the crops zero
    pads (and the zero pad a crop)."""
    r, n = w.rank, a.shape[0]
    size = [j1 - j0 for j0, j1 in taps]
    order = (0, 1, *itertools.chain.from_iterable((2 + r + i, 2 + i) for i in range(r)))
    a = a.transpose(order)  # (N, C, P_1, k'_1, …)
    zero = jnp.zeros((), a.dtype)
    spread = lax.pad(a, zero, [(0, 0, 0)] * 2 + list(itertools.chain.from_iterable(
        ((0, 0, 0), (0, s - d * (k - 1) - 1, d - 1))
        for k, d, s in zip(size, w.dilation, w.stride))))
    merged = spread.reshape(n, a.shape[1], *(p * s for p, s in zip(w.blocks, w.stride)))
    return lax.pad(merged, zero, [(0, 0, 0)] * 2 + [
        (j0 * d, n_ - j0 * d - p * s, 0)
        for (j0, _), d, p, s, n_ in zip(taps, w.dilation, w.blocks, w.stride, w.padded)])


def _reshape_unfold(xp: jax.Array, w: Windows) -> jax.Array:
    """Each group of taps whose blocks do not overlap (:func:`tap_groups`) by
    :func:`_tile_unfold`, concatenated back along the kernel axes (groups are
    consecutive taps, so the row-major order is kept)."""
    groups = tap_groups(w.kernel, w.dilation, w.stride)

    def assemble(axis: int, taps: tuple) -> jax.Array:
        if axis == w.rank:
            return _tile_unfold(xp, w, taps)
        parts = [assemble(axis + 1, (*taps, g)) for g in groups[axis]]
        return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=2 + axis)

    return _to_columns(assemble(0, ()), w)


def _reshape_fold(cols: jax.Array, w: Windows) -> jax.Array:
    """Transpose of :func:`_reshape_unfold`: each group's columns folded by
    :func:`_tile_fold`, summed (``ceil(K_i / m_i)`` terms per axis, not ``K``)."""
    a = _from_columns(cols, w)  # (N, C, K_1…K_r, P_1…P_r)
    total = None
    for taps in itertools.product(*tap_groups(w.kernel, w.dilation, w.stride)):
        part = a[(slice(None), slice(None), *(slice(j0, j1) for j0, j1 in taps))]
        placed = _tile_fold(part, w, taps)
        total = placed if total is None else total + placed
    assert total is not None  # at least one tap
    return total


_UNFOLD_KERNELS = {"gather": _gather_unfold, "slices": _slices_unfold,
                   "reshape": _reshape_unfold}
_FOLD_KERNELS = {"gather": _gather_fold, "slices": _slices_fold, "reshape": _reshape_fold}


def choose(op: str, w: Windows) -> str:
    """auto's impl for `op` ("unfold" or "fold") on windows `w`; an explicit impl is
    kept. Rule measured with benchmarks/unfold_bench.py
    (docs/unfold.md quotes the table): reshape, except a fold of more than
    :data:`AUTO_FOLD_MAX_GROUPS` groups of taps (:func:`tap_groups`: a stride-1 fold
    of a kernel larger than 5x5), which is gather's scatter-add."""
    if w.impl != "auto":
        return w.impl
    if op == "fold" and fold_terms(w) > AUTO_FOLD_MAX_GROUPS:
        return "gather"
    return "reshape"


def fold_terms(w: Windows) -> int:
    """The image-sized terms reshape's fold sums: the product of the groups per axis."""
    return math.prod(len(g) for g in tap_groups(w.kernel, w.dilation, w.stride))


# --- the primitives -----------------------------------------------------------------------

unfold_p = Primitive("jaxconv_unfold")
fold_p = Primitive("jaxconv_fold")


def _unfold_shape(xp, w: Windows):
    return (xp.shape[0], xp.shape[1] * w.taps, math.prod(w.blocks))


def _fold_shape(cols, w: Windows):
    return (cols.shape[0], cols.shape[1] // w.taps, *w.padded)


def _run_unfold(xp, *, windows):
    return _UNFOLD_KERNELS[choose("unfold", windows)](xp, windows)


def _run_fold(cols, *, windows):
    return _FOLD_KERNELS[choose("fold", windows)](cols, windows)


@functools.cache
def _jitted(prim: Primitive, windows: Windows):
    return jax.jit(functools.partial(prim.bind, windows=windows))


_settings.register_cache(_jitted.cache_clear)


def _eager(prim: Primitive):
    return lambda a, *, windows: _jitted(prim, windows)(a)


def _abstract(shape_rule):
    return lambda a, *, windows: a.update(shape=shape_rule(a, windows), weak_type=False)


# Transposes: U and Uᵀ (module docstring), each the other's.
def _unfold_transpose(ct, xp, *, windows):
    del xp
    return [fold_p.bind(ct, windows=windows)]


def _fold_transpose(ct, cols, *, windows):
    del cols
    return [unfold_p.bind(ct, windows=windows)]


def _batch_rule(prim: Primitive):
    # Both kernels treat every sample alike, so the mapped axis folds into the batch:
    # (B, N, ...) -> (B·N, ...), bound once, and split back.
    def rule(args, dims, *, windows):
        (a,), (d,) = args, dims
        a = jnp.moveaxis(a, d, 0)
        b, n = a.shape[:2]
        y = prim.bind(a.reshape(b * n, *a.shape[2:]), windows=windows)
        return y.reshape(b, n, *y.shape[1:]), 0
    return rule


for _prim, _shape, _run, _transpose in ((unfold_p, _unfold_shape, _run_unfold, _unfold_transpose),
                                        (fold_p, _fold_shape, _run_fold, _fold_transpose)):
    _prim.def_impl(_eager(_prim))
    _prim.def_abstract_eval(_abstract(_shape))
    mlir.register_lowering(_prim, mlir.lower_fun(_run, multiple_results=False))
    ad.deflinear2(_prim, _transpose)
    batching.primitive_batchers[_prim] = _batch_rule(_prim)


# --- validation: once, at the boundary ---------------------------------------------------------

def _rank(first: Iterable[Any]) -> int:
    """The rank rule of the module docstring: the first tuple's length, else 2."""
    for value in first:
        if is_sequence(value):
            return len(value)
    return 2


def _check_impl(fn: str, impl: Any) -> str:
    if not isinstance(impl, str) or impl not in IMPLS:
        raise _fail(ValueError, fn, f"`impl` must be one of {IMPLS}, got impl={impl!r}.")
    return impl


def _check_rank(fn: str, rank: int, args: dict[str, Any]) -> None:
    if rank < 1:
        name, value = next((k, v) for k, v in args.items() if is_sequence(v))
        raise _fail(ValueError, fn, f"`{name}` must have at least one entry (the spatial "
                    f"rank), got {name}={value!r}.")


def _geometry(fn: str, rank: int, kernel_size, dilation, padding, stride):
    kernel = positive_tuple(fn, "kernel_size", kernel_size, rank)
    dil = positive_tuple(fn, "dilation", dilation, rank)
    pad = non_negative_tuple(fn, "padding", padding, rank)
    st = positive_tuple(fn, "stride", stride, rank)
    return kernel, dil, pad, st


def _check_blocks(fn: str, what: str, blocks, kernel, dil, pad) -> None:
    if any(p < 1 for p in blocks):
        raise _fail(ValueError, fn,
                    f"{what}, kernel_size={kernel}, dilation={dil}, padding={pad} give "
                    f"{blocks} sliding blocks per axis; each must be at least one (the "
                    "padded input must hold one dilated kernel).")


def _as_array(x: Any) -> jax.Array:
    return x if isinstance(x, jax.Array) else jnp.asarray(x)


def unfold(input: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
           stride: Any = 1, *, padding_mode: str = "zeros", impl: str = "auto") -> jax.Array:
    """Extract sliding local blocks: PyTorch's ``torch.nn.functional.unfold``, any rank.

    Args:
      input: ``(N, C, *S)`` or unbatched ``(C, *S)``, any dtype the convolutions take.
      kernel_size: int or tuple of ``r`` ints, the block size.
      dilation: int or tuple, the spacing of a block's elements (default 1).
      padding: int or tuple, padding added on both sides of each spatial axis.
      stride: int or tuple, the step between blocks (default 1).
      padding_mode: ``"zeros"`` (PyTorch's unfold), ``"reflect"`` (``1234 -> 32123432``),
        ``"replicate"`` (``11123444``) or ``"circular"`` (``34123412``); beyond PyTorch.
      impl: ``"auto"``, ``"gather"``, ``"slices"`` or ``"reshape"`` (module docstring).

    Returns:
      ``(N, C·prod(kernel_size), L)`` (``(C·prod(kernel_size), L)`` unbatched): channel
      major, then the kernel offsets row-major; ``L`` block positions row-major.

    Shape:
      ``L = prod_i ((S_i + 2·padding_i - dilation_i·(kernel_size_i - 1) - 1) // stride_i + 1)``.
      The rank ``r`` is the length of the first tuple among kernel_size, dilation,
      padding, stride, else 2 (PyTorch); PyTorch takes only ``r = 2``.

    Raises:
      TypeError: `input` not an array of a supported dtype; non-int arguments.
      ValueError: wrong input rank, zero channels or spatial size, non-positive kernel,
        dilation or stride, negative padding, no block fits, bad `padding_mode`/`impl`,
        or padding beyond `padding_mode`'s limits (as PyTorch's ``F.pad``).
    """
    fn = "unfold"
    check_array(fn, "input", input)
    check_dtype(fn, "input", input.dtype)
    args = {"kernel_size": kernel_size, "dilation": dilation, "padding": padding,
            "stride": stride}
    rank = _rank(args.values())
    _check_rank(fn, rank, args)
    kernel, dil, pad, st = _geometry(fn, rank, kernel_size, dilation, padding, stride)
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise _fail(ValueError, fn, f"`padding_mode` must be one of {PADDING_MODES}, got "
                    f"padding_mode={padding_mode!r}.")
    impl = _check_impl(fn, impl)
    shape = tuple(input.shape)
    if len(shape) not in (rank + 1, rank + 2):
        raise _fail(ValueError, fn, f"`input` must be {rank + 2}-d (N, C, *spatial) or "
                    f"{rank + 1}-d unbatched (C, *spatial) for a {rank}-d unfold, got "
                    f"input of shape {shape}.")
    batched = len(shape) == rank + 2
    channels, spatial = shape[-rank - 1], shape[-rank:]
    if channels == 0 or 0 in spatial:
        raise _fail(ValueError, fn, "`input` must have non-zero channel and spatial "
                    f"dimensions (a zero batch is fine), got input of shape {shape}.")
    pairs = tuple((p, p) for p in pad)
    if padding_mode != "zeros":
        check_mode_padding(fn, "padding", padding_mode, spatial, pairs,
                           range(len(shape) - rank, len(shape)))
    padded = tuple(n + 2 * p for n, p in zip(spatial, pad))
    windows = Windows(kernel, dil, st, padded, impl)
    _check_blocks(fn, f"input spatial size {spatial}", windows.blocks, kernel, dil, pad)
    n = shape[0] if batched else 1
    check_elements(fn, "an output", (n, channels * windows.taps, math.prod(windows.blocks)),
                   "`kernel_size`, `stride`, `dilation` and `padding`")
    x = _as_array(input)
    if not batched:
        x = x[None]
    x = (pad_trailing(x, pairs, "zeros") if padding_mode == "zeros"
         else mode_pad(x, pairs, padding_mode))
    y = unfold_p.bind(x, windows=windows)
    return y if batched else y[0]


def fold(input: Any, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
         stride: Any = 1, *, impl: str = "auto") -> jax.Array:
    """Combine sliding blocks into an image, summing overlaps: PyTorch's
    ``torch.nn.functional.fold``, any rank; the adjoint of :func:`unfold` (zeros mode).

    Args:
      input: ``(N, C·prod(kernel_size), L)`` or unbatched ``(C·prod(kernel_size), L)``.
      output_size: int or tuple of ``r`` ints, the spatial size ``S`` of the image.
      kernel_size, dilation, padding, stride: as for :func:`unfold`; the blocks tile the
        image padded by `padding`, which is cropped afterwards.
      impl: ``"auto"``, ``"gather"``, ``"slices"`` or ``"reshape"``.

    Returns:
      ``(N, C, *output_size)`` (``(C, *output_size)`` unbatched).

    Shape:
      ``L`` must equal ``prod_i ((S_i + 2·padding_i - dilation_i·(kernel_size_i - 1) - 1)
      // stride_i + 1)``. The rank is ``len(output_size)`` when a tuple, else as for
      :func:`unfold`. For bool input, overlapping blocks combine by ``or``.

    Raises:
      TypeError: `input` not an array of a supported dtype; non-int arguments.
      ValueError: input not 2-d or 3-d, zero features, features not divisible by
        ``prod(kernel_size)``, ``L`` not the number of blocks, bad geometry or `impl`.
    """
    fn = "fold"
    check_array(fn, "input", input)
    check_dtype(fn, "input", input.dtype)
    args = {"output_size": output_size, "kernel_size": kernel_size, "dilation": dilation,
            "padding": padding, "stride": stride}
    rank = _rank(args.values())
    _check_rank(fn, rank, args)
    size = non_negative_tuple(fn, "output_size", output_size, rank)
    kernel, dil, pad, st = _geometry(fn, rank, kernel_size, dilation, padding, stride)
    impl = _check_impl(fn, impl)
    shape = tuple(input.shape)
    if len(shape) not in (2, 3) or shape[-2] == 0 or shape[-1] == 0:
        raise _fail(ValueError, fn, "`input` must be 3-d (N, C·prod(kernel_size), L) or "
                    "2-d unbatched (C·prod(kernel_size), L) with non-zero dimensions 1 and "
                    f"2 (a zero batch is fine), got input of shape {shape}.")
    batched = len(shape) == 3
    features, length = shape[-2:]
    taps = math.prod(kernel)
    if features % taps:
        raise _fail(ValueError, fn, "`input`'s feature dimension must be divisible by "
                    f"prod(kernel_size)={taps}, got input of shape {shape} and "
                    f"kernel_size={kernel}.")
    padded = tuple(n + 2 * p for n, p in zip(size, pad))
    windows = Windows(kernel, dil, st, padded, impl)
    blocks = windows.blocks
    _check_blocks(fn, f"output_size={size}", blocks, kernel, dil, pad)
    if length != math.prod(blocks):
        raise _fail(ValueError, fn, f"`input`'s last dimension must be the number of "
                    f"sliding blocks {' * '.join(map(str, blocks))} = {math.prod(blocks)} "
                    f"for output_size={size}, kernel_size={kernel}, dilation={dil}, "
                    f"padding={pad}, stride={st}, got input of shape {shape}.")
    n = shape[0] if batched else 1
    check_elements(fn, "an output", (n, features // taps, *padded),
                   "`output_size` and `padding`")
    cols = _as_array(input)
    if not batched:
        cols = cols[None]
    y = fold_p.bind(cols, windows=windows)
    y = y[(slice(None), slice(None), *(slice(p, p + s) for p, s in zip(pad, size)))]
    return y if batched else y[0]


__all__ = ["fold", "unfold"]
