"""Exact NaN and Inf propagation for every impl's kernels.

Every entry of every kernel is a sum of products over *structural* pairs: the
pairs of real elements the convolution's definition multiplies::

    F(x, w)[n, o, p]  = Σ w[o, c, k] · x[n, c, p·s + k·d - lo]     (x index in range)
    T(g, w)[n, c, i]  = Σ g[n, o, p] · w[o, c, k]                  (p·s + k·d - lo = i)
    W(x, g)[o, c, k]  = Σ x[n, c, p·s + k·d - lo] · g[n, o, p]     (x index in range)

PyTorch's oneDNN float32 CPU kernels and its col2im input gradient form exactly
these products (its im2col forward and weight gradient, used for float64 and
some float32 layers, also multiply the zero padding). An impl may also multiply
*structural zeros*: the zero padding, or the zeros XLA inserts between strided
rows (``lhs_dilation``), or an im2col patch's padding. With finite operands that
changes nothing (``0 · a = 0``); with an Inf or NaN it does (``0 · Inf = NaN``),
so a NaN weight at a corner tap would mark outputs that read only padding there.

With :func:`set_exact_nonfinite` on, this module makes every kernel exact (it is
off by default: it costs compile time and run time, measured below).
The guard runs a kernel ``K(a, b)`` (``F(x, w)``, ``T(g, w)`` or ``W(x, g)``),
then a ``lax.cond`` on "are both operands finite": if so, ``K``'s result (all
products finite, so structural zeros add 0); if not, the IEEE result of the
structural sum, built from counts (and its finite values from gather's kernel,
:data:`COUNTING_IMPL`, whatever the impl):

* a product ``a·b`` is NaN iff a factor is NaN, or one is ±Inf and the other 0;
  it is ±Inf iff a factor is ±Inf and it is not NaN, with sign
  ``sign(a)·sign(b)``;
* a sum is NaN iff a term is NaN or the terms hold both +Inf and -Inf; else
  ±Inf iff a term is; else the finite sum.

With 0/1 indicators (``pos`` = ``> 0`` including +Inf, ``neg`` = ``< 0``), per
entry, the numbers of NaN, +Inf and -Inf products are::

    n = K(nan_a, 1_b) + K(1_a, nan_b) + K(+inf_a, 0_b) + K(-inf_a, 0_b) + K(0_a, inf_b)
    p = K(+inf_a, pos_b) + K(-inf_a, neg_b) + K(pos_a, +inf_b) + K(neg_a, -inf_b)
    m = K(+inf_a, neg_b) + K(-inf_a, pos_b) + K(pos_a, -inf_b) + K(neg_a, +inf_b)

``K`` is bilinear and the indicators are finite and non-negative, so ``K`` of
them counts exactly the structural pairs, whatever structural zeros the impl
multiplies (``0 · 1 = 0``). The result is NaN where ``n > 0`` or ``p, m > 0``,
±Inf where only ``p`` (``m``) is positive, and elsewhere
``K(fin(a), fin(b))`` with ``fin(v) = v`` where finite, else 0 (``K`` here is
gather's kernel; under ``jax.vmap`` a batch with one non-finite example takes
this branch for all of them).

All thirteen terms come from *one* kernel call on stacked operands (gather's
kernel, :data:`COUNTING_IMPL`), with the classes stacked inside each group along a channel axis:

* ``F``: the seven classes of ``x`` along ``C`` (``(N, G·7·Cg)``); the weight
  ``(G·3·Og, 7·Cg, K)`` holds in block ``(r, i)`` the indicator of ``w`` that
  term ``(i, r)`` pairs with class ``i`` of ``x`` for count ``r ∈ (n, p, m)``
  (zero if none): the contraction over ``C`` sums the terms of each count.
* ``T``: the same with the roles of the channel axes exchanged (``g``'s
  classes along ``O``, the weight ``(G·7·Og, 3·Cg, K)``).
* ``W``: both operands are data: the seven classes of ``x`` along ``C`` and
  the eight of ``g`` along ``O``; the stacked weight gradient
  ``(G·8·Og, 7·Cg, K)`` holds every pair, and each count sums its terms' blocks.

That call costs 21 (``F``, ``T``) or 56 (``W``) times the kernel, on top of the
impl's own call and gather's finite part, and runs only when an operand holds
an Inf or NaN. When both are finite the price is two
reductions (``isfinite(...).all()``), the ``cond`` (which keeps XLA from fusing
the kernel's output with what follows) and the compile time of the branch not
taken. Under ``jax.vmap`` the predicate is taken over the whole batch (a
``custom_vmap`` rule), so the ``cond`` stays a ``cond`` instead of becoming a
``select`` that would run both branches.

Why not always: with ``impl="auto"``, float32, forward + backward, on the
2-core AMD Zen 3 machine of docs/performance.md (an ad hoc probe, interleaved
medians of 5), the guard took compile time from 0.61 / 0.40 / 0.54 s to
2.45 / 2.87 / 2.48 s (8x64x56² 3x3, 8x128x56² depthwise, the 7x7 stem) and the
depthwise layer's f+b from 18.2 to 46.0 ms. Most of the compile time is the
branch's many small fusions (the classes, the stacking, the combination), not
its convolution. A non-finite weight or gradient means a run has already
diverged; the default keeps the speed and states the
difference (docs/numerics.md, "The NaN and Inf contract").
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jaxconv._settings import check_enabled, clear_jitted_cores

A_CLASSES = ("one", "nan", "pinf", "minf", "pos", "neg", "zero")
B_CLASSES = ("one", "nan", "pinf", "minf", "pos", "neg", "zero", "inf")
COUNTS = ("nan", "pinf", "minf")

# (class of a, class of b, count): the products a·b that are NaN, +Inf or -Inf.
TERMS = (
    ("nan", "one", "nan"), ("one", "nan", "nan"), ("pinf", "zero", "nan"),
    ("minf", "zero", "nan"), ("zero", "inf", "nan"),
    ("pinf", "pos", "pinf"), ("minf", "neg", "pinf"), ("pos", "pinf", "pinf"),
    ("neg", "minf", "pinf"),
    ("pinf", "neg", "minf"), ("minf", "pos", "minf"), ("pos", "minf", "minf"),
    ("neg", "pinf", "minf"),
)


def _indicator(v: jax.Array, name: str, dtype) -> jax.Array:
    test = {
        "one": lambda: jnp.ones(v.shape, bool),
        "nan": lambda: jnp.isnan(v),
        "pinf": lambda: v == jnp.inf,
        "minf": lambda: v == -jnp.inf,
        "pos": lambda: v > 0,
        "neg": lambda: v < 0,
        "zero": lambda: v == 0,
        "inf": lambda: jnp.isinf(v),
    }[name]
    return test().astype(dtype)


def _stack_classes(v: jax.Array, names, groups: int, dtype) -> jax.Array:
    """``(N, G·Cg, *S)`` -> ``(N, G·len(names)·Cg, *S)``: the class indicators of
    `v`, stacked inside each group along the channel axis."""
    n, c, *spatial = v.shape
    grouped = v.reshape(n, groups, 1, c // groups, *spatial)
    stacked = jnp.concatenate([_indicator(grouped, k, dtype) for k in names], axis=2)
    return stacked.reshape(n, groups * len(names) * (c // groups), *spatial)


def _weight_blocks(w: jax.Array, groups: int, dtype) -> list[list[jax.Array]]:
    """``blocks[r][i]``, shape ``(G, Og, Cg, *K)``: the indicator of `w` that class
    ``A_CLASSES[i]`` of the data operand pairs with for count ``COUNTS[r]``."""
    o, cg, *kernel = w.shape
    wg = w.reshape(groups, o // groups, cg, *kernel)
    pairs = {(a, r): b for a, b, r in TERMS}
    zero = jnp.zeros(wg.shape, dtype)
    return [[_indicator(wg, pairs[a, r], dtype) if (a, r) in pairs else zero
             for a in A_CLASSES] for r in COUNTS]


def _combine(base: jax.Array, counts: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
    nan, pinf, minf = (c > 0 for c in counts)
    inf = jnp.asarray(jnp.inf, base.dtype)
    out = jnp.where(minf, -inf, base)
    out = jnp.where(pinf, inf, out)
    return jnp.where(nan | (pinf & minf), jnp.asarray(jnp.nan, base.dtype), out)


def _finite(v: jax.Array) -> jax.Array:
    return jnp.where(jnp.isfinite(v), v, jnp.zeros((), v.dtype))


@jax.custom_batching.custom_vmap
def _all_finite(v: jax.Array) -> jax.Array:
    return jnp.isfinite(v).all()


@_all_finite.def_vmap
def _all_finite_vmap(axis_size, in_batched, v):
    # One answer for the whole batch, so that the cond stays a cond.
    del axis_size, in_batched
    return jnp.isfinite(v).all(), False


def _counts_forward(kernel, x, w, spec, dtype):
    g_, r_ = spec.groups, len(COUNTS)
    xs = _stack_classes(x, A_CLASSES, g_, dtype)
    blocks = _weight_blocks(w, g_, dtype)  # [r][i] (G, Og, Cg, *K)
    ws = jnp.stack([jnp.stack(row, axis=2) for row in blocks], axis=1)  # (G, r, Og, i, Cg, *K)
    o, cg, *k = w.shape
    ws = ws.reshape(r_ * o, len(A_CLASSES) * cg, *k)
    y = kernel(xs, ws, spec)  # (N, G·r·Og, *P)
    y = y.reshape(y.shape[0], g_, r_, o // g_, *y.shape[2:])
    return tuple(y[:, :, r].reshape(y.shape[0], o, *y.shape[4:]) for r in range(r_))


def _counts_input_grad(kernel, g, w, spec, in_spatial, dtype):
    g_, r_, i_ = spec.groups, len(COUNTS), len(A_CLASSES)
    gs = _stack_classes(g, A_CLASSES, g_, dtype)  # (N, G·i·Og, *P)
    blocks = _weight_blocks(w, g_, dtype)
    ws = jnp.stack([jnp.stack(row, axis=1) for row in blocks], axis=3)  # (G, i, Og, r, Cg, *K)
    o, cg, *k = w.shape
    ws = ws.reshape(i_ * o, r_ * cg, *k)
    dx = kernel(gs, ws, spec, in_spatial)  # (N, G·r·Cg, *S)
    dx = dx.reshape(dx.shape[0], g_, r_, cg, *dx.shape[2:])
    return tuple(dx[:, :, r].reshape(dx.shape[0], g_ * cg, *dx.shape[4:]) for r in range(r_))


def _counts_weight_grad(kernel, x, g, spec, ksize, dtype):
    g_ = spec.groups
    xs = _stack_classes(x, A_CLASSES, g_, dtype)
    gs = _stack_classes(g, B_CLASSES, g_, dtype)
    dw = kernel(xs, gs, spec, ksize)  # (G·b·Og, a·Cg, *K)
    o, cg = g.shape[1], x.shape[1] // g_
    dw = dw.reshape(g_, len(B_CLASSES), o // g_, len(A_CLASSES), cg, *ksize)
    counts = {r: jnp.zeros((o, cg, *ksize), dw.dtype) for r in COUNTS}
    for a, b, r in TERMS:
        block = dw[:, B_CLASSES.index(b), :, A_CLASSES.index(a)]
        counts[r] = counts[r] + block.reshape(o, cg, *ksize)
    return tuple(counts[r] for r in COUNTS)


def _guarded(kernel: Callable, counter: Callable, counts: Callable, a: jax.Array,
             b: jax.Array, *static) -> jax.Array:
    # Counts in float32 at least: exact integers up to 2**24, and positive beyond.
    dtype = jnp.promote_types(a.dtype, jnp.float32)

    def exact(y, a, b):
        del y
        base = counter(_finite(a), _finite(b), *static)
        return _combine(base, counts(counter, a, b, *static, dtype))

    # The kernel runs outside the cond: XLA's CPU convolutions inside a conditional's
    # branch ran up to 7x slower (8x64x56² 3x3 forward, 38 -> 263 ms).
    y = kernel(a, b, *static)
    finite = _all_finite(lax.stop_gradient(a)) & _all_finite(lax.stop_gradient(b))
    return lax.cond(finite, lambda y, a, b: y, exact, y, a, b)


_exact = False


def set_exact_nonfinite(enabled: bool) -> None:
    """Make every impl propagate NaN and Inf exactly as the convolution's sums of
    products do (default off; the derivation is in :mod:`jaxconv._nonfinite`).

    Off, a non-finite *weight*, or a non-finite output gradient (or input of a
    transposed convolution), may reach more output or gradient entries than the
    sums of products of real elements give: the impls multiply structural zeros
    (zero padding, the zeros between strided rows), and ``0 * Inf = NaN``. A NaN
    or Inf in the input of a convolution is exact either way.

    On, every kernel checks its two operands and, when one holds an Inf or NaN,
    recomputes the entries' NaN/±Inf from counts, and their finite values with
    gather's kernel: exactly the entries of the sums of products of real elements
    (what PyTorch's oneDNN float32 CPU kernels mark), in every impl and dtype, for
    outputs and for gradients of any order taken with ``autodiff="custom"`` (the
    default). With ``autodiff="jax"`` the outputs are exact and JAX's derivatives
    of the kernel follow the default. The zeros that
    :func:`jaxconv.conv_general_dilated`'s ``lhs_dilation`` inserts are data to it.

    It costs compile time (up to 7x measured) and run time (2.5x on a depthwise
    layer) even on finite data. Like :func:`jaxconv.set_memory_budget`, it is read
    when a convolution is traced, and setting it clears the caches of jaxconv's
    own jitted cores (a jitted function of yours keeps its program until it is
    traced again).

    Args:
      enabled: ``True`` or ``False`` (a NumPy bool too).

    Raises:
      TypeError: `enabled` is not a bool.
    """
    global _exact
    if check_enabled("set_exact_nonfinite", enabled) != _exact:
        _exact = bool(enabled)
        clear_jitted_cores()


def get_exact_nonfinite() -> bool:
    """Whether exact NaN/Inf propagation is on (see :func:`set_exact_nonfinite`)."""
    return _exact


# The impl whose kernels compute the counts and the finite part when an operand is
# not finite. Any impl is exact on the 0/1 indicators; gather's are matmuls, quick to
# compile and quick on grouped layers. Compile time of jax.grad of a small conv, every
# impl and auto summed, 3-d / 2-d / 1-d: 3.7 / 2.2 / 1.7 s without the guard; with it,
# counting with the same impl 20.4 / 11.4 / 7.5 s, with lax 9.1 / 7.3 / 6.2, with
# gather 10.7 / 8.1 / 5.4 (lax's grouped weight gradient is 100-300x slower, though).
COUNTING_IMPL = "gather"

_COUNTS: dict[str, Callable] = {"forward": _counts_forward, "input_grad": _counts_input_grad,
           "weight_grad": _counts_weight_grad}


@functools.cache
def guard(kernel: Callable, counter: Callable, kind: str) -> Callable:
    """`kernel` (``forward``, ``input_grad`` or ``weight_grad``: ``K(a, b, *static)``)
    with exact NaN/Inf propagation; `counter` is :data:`COUNTING_IMPL`'s kernel of the
    same kind.

    A ``custom_jvp`` gives JAX's differentiation (``autodiff="jax"``) the tangent
    ``K(da, b) + K(a, db)`` of the bilinear kernel itself: differentiating the guard
    would drop the cotangent wherever the output is NaN or Inf (``jnp.where``)."""
    counts = _COUNTS[kind]

    @functools.wraps(kernel)
    def guarded(a, b, *static):
        @jax.custom_jvp
        def f(a, b):
            return _guarded(kernel, counter, counts, a, b, *static)

        def f_jvp(primals, tangents):
            (a, b), (da, db) = primals, tangents
            y = f(a, b)
            # Only the operands being differentiated: K(a, 0) would be NaN where a is.
            terms = [kernel(*args, *static) for args, t in (((da, b), da), ((a, db), db))
                     if not isinstance(t, SymbolicZero)]
            return y, functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(y)

        f.defjvp(f_jvp, symbolic_zeros=True)

        return f(a, b)

    return guarded
