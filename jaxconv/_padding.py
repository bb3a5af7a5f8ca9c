"""Padding with PyTorch's semantics: ``jaxconv.pad`` and the conv pre-pad step.

Non-constant modes are one static index map per padded axis, applied with a
gather (``jnp.take``); its autodiff adjoint is the matching scatter-add, which
folds the gradient of every copied border element back onto its source. For an
axis of size ``n`` padded by ``(lo, hi)`` the output reads source position
``src(j)`` for ``j`` in ``range(-lo, n + hi)``:

=========  ==========================================  ======================
mode       ``src(j)``                                  ``1234`` by ``(2, 2)``
=========  ==========================================  ======================
reflect    mirror about 0 and n-1, edge not repeated   ``32123432``
replicate  ``clip(j, 0, n - 1)``                       ``11123444``
circular   ``j mod n`` over the cropped axis           ``34123412``
=========  ==========================================  ======================

Negative pads crop, as in PyTorch; circular wraps over the cropped axis (that is
what PyTorch does). Constant padding is ``lax.pad``.

For non-negative pads (every convolution's case) the same map is built from
slices, flips and one concatenation instead of a gather: XLA runs those, and
their adjoints (slice-adds), several times faster on CPU. Tests hold both paths
to PyTorch.

The convolutions' pre-pad (inside the kernel primitives,
:mod:`jaxconv._primitives`; :func:`mode_pad` for unfold and fold) has a
hand-written adjoint (docs/backprop.md, §5). With ``xp[j] = x[src(j)]`` along one axis, ``gp`` the
gradient of ``xp`` and ``n`` the axis size::

    dx[i] = Σ_{j : src(j) = i} gp[j] = gp[lo + i] + Σ_{j border, src(j) = i} gp[j]

over the ``lo + hi`` border positions ``j``: one slice of ``gp`` per border
position, broadcast along the axis and kept where ``i == src(j)``
(``where(iota == src(j), gp[j], 0)``), added to the centre slice; the axes one
after another, last first (the transpose of padding them first to last). XLA
fuses that sum into one pass. JAX's own adjoint of the slices and concatenation
writes each border slab into a zero-padded copy of the whole axis and adds those
copies, each materialised: on CPU, in ``value_and_grad`` of an 8x64x56x56 3x3
convolution with a padding mode, that took 45.4 instead of 32.7 MiB of
temporaries and 1.06-1.10x the time (``benchmarks/pad_probe.py``,
``benchmarks/results/pad_cpu.md``). Pads of more than
:data:`ADJOINT_MAX_BORDER` positions on one axis, and negative ones, keep JAX's
adjoint for the whole call (each border position is one term of the fused
sum). A spatially sharded axis gets its edges by concatenation
(:mod:`jaxconv._sharding`, :mod:`jaxconv._partitioning`), with JAX's adjoint.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jaxconv._spec import (
    Pairs,
    _fail,
    as_int,
    check_array,
    check_at_most,
    check_elements,
    check_mode_padding,
    is_sequence,
)

PAD_MODES = ("constant", "reflect", "replicate", "circular")
ADJOINT_MAX_BORDER = 8  # lo + hi on every axis up to which mode_pad's adjoint is the fused sum


@functools.cache
def source_index(mode: str, n: int, lo: int, hi: int) -> np.ndarray:
    """Static source positions for one axis of size `n` padded by `(lo, hi)`."""
    j = np.arange(-lo, n + hi)
    if mode == "reflect":
        j = np.abs(j)
        return np.where(j > n - 1, 2 * (n - 1) - j, j)
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    if mode == "circular":
        start, stop = max(-lo, 0), n - max(-hi, 0)
        return start + np.mod(j - start, max(stop - start, 1))
    raise AssertionError(mode)


def pad_trailing(x: jnp.ndarray, pads: Pairs, mode: str, value: Any = 0.0) -> jnp.ndarray:
    """Pad the last ``len(pads)`` axes of `x` by validated ``(lo, hi)`` pairs."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    first = x.ndim - len(pads)
    if mode in ("constant", "zeros"):
        config = [(0, 0, 0)] * first + [(lo, hi, 0) for lo, hi in pads]
        return lax.pad(x, jnp.asarray(value, x.dtype), config)
    for axis, (lo, hi) in enumerate(pads, start=first):
        if lo < 0 or hi < 0:
            x = jnp.take(x, source_index(mode, x.shape[axis], lo, hi), axis=axis)
        elif lo or hi:
            x = _pad_axis_by_slices(x, axis, lo, hi, mode)
    return x


def fused_adjoint(pads: Pairs, mode: str) -> bool:
    """Whether :func:`mode_pad`'s adjoint is :func:`fold_border` (else JAX's)."""
    return not (mode in ("constant", "zeros") or all(lo == 0 and hi == 0 for lo, hi in pads)
                or any(lo < 0 or hi < 0 or lo + hi > ADJOINT_MAX_BORDER for lo, hi in pads))


def mode_pad(x: jnp.ndarray, pads: Pairs, mode: str) -> jnp.ndarray:
    """:func:`pad_trailing` for the convolutions' pre-pad, with the hand-written
    adjoint of the module docstring where every pair is non-negative with at most
    :data:`ADJOINT_MAX_BORDER` border positions (and JAX's adjoint elsewhere).

    Bound as a linear primitive (``jaxconv_mode_pad``) whose transpose is
    :func:`fold_border`: its tangent is the same pad of the tangent, so forward
    mode, reverse mode of any order and ``vmap`` all run through it."""
    if not fused_adjoint(pads, mode):
        return pad_trailing(x, pads, mode)
    return mode_pad_p.bind(x, pads=tuple(tuple(p) for p in pads), mode=mode)


mode_pad_p = Primitive("jaxconv_mode_pad")


def _mode_pad_abstract(x, *, pads, mode):
    del mode
    first = x.ndim - len(pads)
    grown = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[first:], pads, strict=True))
    return x.update(shape=(*x.shape[:first], *grown), weak_type=False)


def _mode_pad_run(x, *, pads, mode):
    return pad_trailing(x, pads, mode)


def _mode_pad_transpose(ct, x, *, pads, mode):
    del x
    return (None if type(ct) is ad.Zero else fold_border(ct, pads, mode),)


def _mode_pad_batch(args, dims, *, pads, mode):
    # The pads apply to the trailing axes: a mapped axis in front is one more batch axis.
    x = jnp.moveaxis(args[0], dims[0], 0)
    return mode_pad_p.bind(x, pads=pads, mode=mode), 0


mode_pad_p.def_impl(lambda x, *, pads, mode: jax.jit(pad_trailing, static_argnums=(1, 2))(
    x, pads, mode))
mode_pad_p.def_abstract_eval(_mode_pad_abstract)
mlir.register_lowering(mode_pad_p, mlir.lower_fun(_mode_pad_run, multiple_results=False))
ad.deflinear2(mode_pad_p, _mode_pad_transpose)
batching.primitive_batchers[mode_pad_p] = _mode_pad_batch


def fold_border(gp: jnp.ndarray, pads: Pairs, mode: str) -> jnp.ndarray:
    """The adjoint of ``pad_trailing(·, pads, mode)`` for non-negative `pads`:
    every border entry of `gp` added onto its source (module docstring)."""
    first = gp.ndim - len(pads)
    for axis in reversed(range(first, gp.ndim)):
        lo, hi = pads[axis - first]
        if not (lo or hi):
            continue
        n = gp.shape[axis] - lo - hi
        src = source_index(mode, n, lo, hi)
        total = lax.slice_in_dim(gp, lo, lo + n, axis=axis)
        iota = lax.broadcasted_iota(np.int32, total.shape, axis)
        for j in (*range(lo), *range(lo + n, lo + n + hi)):
            border = lax.slice_in_dim(gp, j, j + 1, axis=axis)
            total = total + jnp.where(iota == int(src[j]), border, jnp.zeros((), gp.dtype))
        gp = total
    return gp


def _pad_axis_by_slices(x: jnp.ndarray, axis: int, lo: int, hi: int, mode: str) -> jnp.ndarray:
    """``source_index`` for ``lo, hi >= 0`` as slices: ``[left, x, right]`` along `axis`."""
    n = x.shape[axis]

    def part(start: int, stop: int, flip: bool = False) -> jnp.ndarray:
        piece = lax.slice_in_dim(x, start, stop, axis=axis)
        return lax.rev(piece, (axis,)) if flip else piece

    if mode == "reflect":  # j < 0 reads -j; j >= n reads 2(n-1) - j
        left, right = part(1, lo + 1, flip=True), part(n - 1 - hi, n - 1, flip=True)
    elif mode == "replicate":
        shape = lambda k: (*x.shape[:axis], k, *x.shape[axis + 1:])
        left = jnp.broadcast_to(part(0, 1), shape(lo))
        right = jnp.broadcast_to(part(n - 1, n), shape(hi))
    elif mode == "circular":
        left, right = part(n - lo, n), part(0, hi)
    else:
        raise AssertionError(mode)
    return jnp.concatenate([left, x, right], axis=axis)


def pad(input: Any, pad: Any, mode: str = "constant", value: float | None = None) -> jnp.ndarray:
    """Pad an array like :func:`torch.nn.functional.pad`.

    `pad` lists ``(lo, hi)`` amounts starting from the **last** dimension:
    ``(left, right)`` pads the last axis, ``(left, right, top, bottom)`` the last
    two, and so on. Negative amounts crop (in ``"constant"`` mode before padding,
    as in PyTorch, so together at most that dimension's size).

    Modes, on ``1234`` padded by ``(2, 2)``:

    * ``"constant"``: ``vv1234vv`` with ``v = value`` (default 0).
    * ``"reflect"``: ``32123432``; each pad must be < that dimension's size.
    * ``"replicate"``: ``11123444``; the padded dimension must be non-empty.
    * ``"circular"``: ``34123412``; each pad must be <= that dimension's size.

    jaxconv goes further than PyTorch in one respect: non-constant modes accept
    any number of trailing dimensions (PyTorch allows only 1 to 3, and only on
    2-d to 5-d inputs).

    Args:
      input: array of any rank.
      pad: tuple of ``2 * m`` ints, ``m <= input.ndim``.
      mode: ``"constant"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
      value: fill value for ``"constant"``; other modes take none (or 0, as in
        PyTorch).

    Returns:
      The padded array, with the input's dtype.

    Raises:
      TypeError: `input` is not an array (or a masked one, or of a dtype JAX
        can't hold), `pad` is not a tuple (or list) of ints, or `value` is not a
        real number.
      ValueError: odd or too long `pad`, unknown `mode`, a `value` with a
        non-constant mode or one the input's dtype can't hold without overflow
        (as in PyTorch), pads past PyTorch's limits, or an output of more than
        2**56 elements.
    """
    fn = "pad"
    check_array(fn, "input", input)
    if not isinstance(mode, str) or mode not in PAD_MODES:
        raise _fail(ValueError, fn, f"`mode` must be one of {PAD_MODES}, got mode={mode!r}.")
    if not is_sequence(pad):
        raise _fail(TypeError, fn, f"`pad` must be a tuple of ints, got pad={pad!r}.")
    amounts = tuple(as_int(fn, "pad", p, pad) for p in pad)
    check_at_most(fn, "pad", amounts, pad)
    if len(amounts) % 2:
        raise _fail(
            ValueError, fn, f"`pad` length must be divisible by 2, got pad={tuple(pad)!r}."
        )
    if len(amounts) > 2 * input.ndim:
        raise _fail(
            ValueError,
            fn,
            f"`pad` has {len(amounts)} entries but a {input.ndim}-d input allows at "
            f"most {2 * input.ndim}, got pad={tuple(pad)!r}.",
        )
    if value is not None and (isinstance(value, bool) or not isinstance(
            value, (int, float, np.integer, np.floating))):
        raise _fail(TypeError, fn, f"`value` must be a real number or None, got {value!r}.")
    if isinstance(value, (int, np.integer)) and abs(int(value)) > float(np.finfo(np.float64).max):
        raise _fail(ValueError, fn, f"`value` must fit in a float64 (as in PyTorch), got "
                    f"value={value!r}.")
    if mode != "constant" and value is not None and value != 0:  # PyTorch lets 0 pass
        raise _fail(
            ValueError, fn, f"mode={mode!r} doesn't take a `value`, got value={value!r}."
        )
    # pad[0:2] is the last axis: reverse into first-to-last order.
    pairs = tuple((amounts[2 * i], amounts[2 * i + 1]) for i in range(len(amounts) // 2))[::-1]
    first = input.ndim - len(pairs)
    sizes = input.shape[first:]
    for axis, n, (lo, hi) in zip(range(first, input.ndim), sizes, pairs, strict=True):
        # Constant padding crops first, then pads (as in PyTorch); the other modes read
        # through one index map over the padded-then-cropped axis.
        kept = n + min(lo, 0) + min(hi, 0) if mode == "constant" else n + lo + hi
        if kept < 0:
            raise _fail(
                ValueError,
                fn,
                f"pad ({lo}, {hi}) at dimension {axis} crops more than its size ({n}).",
            )
    if mode != "constant":
        check_mode_padding(fn, "pad", mode, sizes, pairs, range(first, input.ndim))
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(sizes, pairs, strict=True))
    check_elements(fn, "an output", (*input.shape[:first], *padded), f"pad={tuple(pad)!r}")
    # Checked only when something is filled, as in PyTorch (crops and no-ops take any value).
    fills = mode == "constant" and any(lo > 0 or hi > 0 for lo, hi in pairs)
    fill = fill_value(fn, value, input.dtype) if value is not None and fills else 0
    x = jnp.asarray(input)
    return pad_trailing(x, pairs, mode, fill)


def fill_value(fn: str, value: Any, dtype: Any) -> Any:
    """`value` (a real number) converted for an array of `dtype`, by PyTorch's rule: it must
    convert without overflow. Into an integer dtype it is truncated toward zero and must be
    finite and in range; into a floating (or complex) dtype a finite value must stay
    finite (inf and nan pass); bool takes any value."""
    dtype = np.dtype(dtype)
    # As a Python int or float: exact comparisons, no NumPy casts of the limits.
    value_ = int(value) if isinstance(value, (int, np.integer)) else float(value)
    finite = isinstance(value_, int) or math.isfinite(value_)
    if jnp.issubdtype(dtype, np.bool_):
        return bool(value_)
    if jnp.issubdtype(dtype, np.integer):
        info = jnp.iinfo(dtype)
        if finite and int(info.min) <= value_ <= int(info.max):
            return int(value_)
    elif not finite or abs(value_) <= float(jnp.finfo(dtype).max):
        return float(value_)
    raise _fail(ValueError, fn, f"`value` can't be converted to the input's dtype {dtype.name} "
                f"without overflow (as in PyTorch), got value={value!r}.")
