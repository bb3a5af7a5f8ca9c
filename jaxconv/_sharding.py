"""Convolutions of arrays sharded with explicit mesh axes (``jax.sharding``).

With ``jax.make_mesh(...)`` and ``jax.set_mesh`` (JAX's default, "explicit"
sharding), an array's sharding is part of its type, and every operation must
say how its output is sharded. XLA's convolution does not: even
``lax.conv_general_dilated`` + ``jax.grad`` raises for a batch-sharded input
(its weight gradient contracts the sharded batch). jaxconv reads the layout
(``jax.typeof(x).sharding``) at the boundary, before anything is traced, and
runs the whole convolution (forward, custom rules, gradients) per shard with
``jax.shard_map``:

- **batch** sharded: each shard convolves its examples; the weight is
  replicated, so its gradient is summed over the shards (shard_map's
  transpose of a replicated input is a ``psum``).
- **channels** sharded with the groups (channel / model parallel): shard ``j``
  holds channels ``[j C/P, (j+1) C/P)``, which are exactly groups
  ``[j G/P, (j+1) G/P)`` when ``P`` divides ``G``; it convolves them with its
  rows of the weight (``G/P`` groups), with no communication at all.
- **spatial** axes sharded: a halo exchange. Shard ``p`` owns input rows
  ``[p m, (p+1) m)`` and computes output rows ``[p q, (p+1) q)``, ``q = m / s``.
  Output row ``o`` reads padded rows ``o s - lo + k d`` (``k < K``), so the
  shard needs ``hl = lo`` rows before its own and ``hr = d (K-1) - lo - s + 1``
  after (when the output is ``n / s`` rows, which makes ``hl``, ``hr`` the same
  for every shard). Those come from its neighbours by one ``ppermute`` each
  way; at the global edges they are the padding instead: zeros, the reflection
  or replication of the edge shard's own rows, or (circular) the rows that the
  cyclic ``ppermute`` brings from the other end. Then a local convolution with
  no padding on that axis (the impl's own kernels and custom rules) gives the
  shard's ``q`` output rows. The gradient of a ``ppermute`` is the reverse
  ``ppermute``, so the backward pass exchanges the halo cotangents the same way.

Transposed convolutions are sharded the same way; a spatial axis needs an output
of exactly ``s`` times its input (:func:`_transpose_halo_plan`). A layout that
can't be convolved per shard (a spatial output that isn't ``n / s`` rows, halos
wider than a shard, channels sharded across groups) raises a ``ValueError`` that
says what it needs, rather than gathering the activation behind the user's back
or trusting XLA's partitioner, which (jax 0.10.2, CPU) computed wrong gradients
for a spatially sharded transposed convolution and aborted on a strided
``lax.pad``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from jaxconv._spec import ConvSpec, _fail


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a batched call's operands are sharded over explicit mesh axes."""

    mesh: Any
    x: tuple  # one entry per dimension of x: None, an axis name or a tuple of names
    w: tuple
    b: tuple | None

    def size(self, entry) -> int:
        """Number of shards of a dimension with spec `entry`."""
        if entry is None:
            return 1
        names = (entry,) if isinstance(entry, str) else entry
        return math.prod(self.mesh.shape[a] for a in names)


def _spec(a: jax.Array) -> tuple:
    sharding = jax.typeof(a).sharding
    spec = tuple(getattr(sharding, "spec", ()))
    return spec + (None,) * (a.ndim - len(spec))


def explicit_layout(x: jax.Array, w: jax.Array, b: jax.Array | None) -> Layout | None:
    """The layout when any operand is sharded over an explicit mesh axis, else ``None``
    (no mesh, automatic axes only, or everything replicated: nothing to do here)."""
    sharding = jax.typeof(x).sharding
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or mesh.empty or AxisType.Explicit not in tuple(mesh.axis_types):
        return None
    layout = Layout(mesh, _spec(x), _spec(w), None if b is None else _spec(b))
    entries = layout.x + layout.w + (layout.b or ())
    return layout if any(e is not None for e in entries) else None


def _names(entry) -> tuple[str, ...]:
    return (entry,) if isinstance(entry, str) else tuple(entry)


def _edge_rows(x: jax.Array, axis: int, count: int, side: str, mode: str) -> jax.Array:
    """The `count` padding rows beyond the global `side` edge, from the edge shard's
    own rows: zeros, replicate (the edge row) or reflect (without the edge row)."""
    m = x.shape[axis]
    if mode == "replicate":
        row = lax.slice_in_dim(x, 0, 1, axis=axis) if side == "low" else \
            lax.slice_in_dim(x, m - 1, m, axis=axis)
        return jnp.repeat(row, count, axis=axis)
    if mode == "reflect":  # low: rows count..1, high: rows m-2..m-1-count
        rows = lax.slice_in_dim(x, 1, count + 1, axis=axis) if side == "low" else \
            lax.slice_in_dim(x, m - 1 - count, m - 1, axis=axis)
        return jnp.flip(rows, axis=axis)
    shape = list(x.shape)
    shape[axis] = count
    return jnp.zeros(shape, x.dtype)


def _with_halo(x: jax.Array, axis: int, lo: int, hi: int, entry, shards: int,
               mode: str) -> jax.Array:
    """``[lo rows of the previous shard | x | hi rows of the next shard]`` along `axis`,
    with the padding of `mode` in place of the rows beyond the global edges."""
    names = _names(entry)
    index = lax.axis_index(names)
    m = x.shape[axis]
    parts = []
    if lo:
        # Each shard sends its last `lo` rows forward: shard p receives from p - 1
        # (shard 0 from the last one, which is what circular padding wants).
        rows = lax.ppermute(lax.slice_in_dim(x, m - lo, m, axis=axis), names,
                            [(j, (j + 1) % shards) for j in range(shards)])
        if mode != "circular":
            rows = jnp.where(index == 0, _edge_rows(x, axis, lo, "low", mode), rows)
        parts.append(rows)
    parts.append(x)
    if hi:
        rows = lax.ppermute(lax.slice_in_dim(x, 0, hi, axis=axis), names,
                            [(j, (j - 1) % shards) for j in range(shards)])
        if mode != "circular":
            rows = jnp.where(index == shards - 1, _edge_rows(x, axis, hi, "high", mode), rows)
        parts.append(rows)
    return jnp.concatenate(parts, axis=axis) if len(parts) > 1 else x


def _halo_plan(spec: ConvSpec, layout: Layout, x_shape, kernel) -> tuple:
    """``({spatial axis: (lo, hi, mesh entry, shards)}, None)`` for the sharded spatial
    axes, or ``(None, (what the halo exchange needs, axis))`` when an axis can't."""
    plan = {}
    for i, entry in enumerate(layout.x[2:]):
        if entry is None:
            continue
        shards, n = layout.size(entry), x_shape[2 + i]
        (lo, hi), s, d, k = spec.padding[i], spec.stride[i], spec.dilation[i], kernel[i]
        out = (n + lo + hi - d * (k - 1) - 1) // s + 1
        m = n // shards
        halo_hi = max(d * (k - 1) - lo - s + 1, 0)
        limit = m - 1 if spec.padding_mode == "reflect" else m
        if out * s != n or m % s:
            return None, (f"an output of {n} // stride = {n // s} rows on that axis, got "
                          f"{out}", i)
        if lo > limit or halo_hi > limit:
            return None, (f"halos of at most {limit} rows (one shard of {m}), got ({lo}, "
                          f"{halo_hi})", i)
        plan[i] = (lo, halo_hi, entry, shards)
    return plan, None


def _out_spec(layout: Layout, out_shape, channel_entry) -> P:
    """The output's spec: batch and spatial entries of x where they divide the output,
    the channel entry when the channels stay sharded."""
    entries = [layout.x[0], channel_entry, *layout.x[2:]]
    return P(*(e if e is not None and n % layout.size(e) == 0 else None
               for e, n in zip(entries, out_shape, strict=True)))


def _check(fn: str, layout: Layout, spec: ConvSpec, problem) -> bool:
    """Raise when the layout can't be convolved per shard; else whether the channels
    are sharded (with the groups)."""
    if problem is not None:
        axis, entry = 2 + problem[1], layout.x[2 + problem[1]]
        raise _fail(ValueError, fn, f"dimension {axis} of `input` is sharded over mesh axis "
                    f"{entry!r} ({layout.size(entry)} shards); jaxconv convolves it per "
                    f"shard with a halo exchange, which needs {problem[0]}. Pad so that "
                    "it does (e.g. padding='same' at stride 1), or reshard that dimension "
                    "(jax.sharding.reshard) before the call.")
    chan = layout.x[1]
    if chan is not None and spec.groups % layout.size(chan):
        raise _fail(ValueError, fn, f"the channels of `input` are sharded over mesh axis "
                    f"{chan!r} ({layout.size(chan)} shards), which jaxconv supports for "
                    f"groups split across the shards: groups must be a multiple of "
                    f"{layout.size(chan)}, got groups={spec.groups}. Reshard the channels "
                    "(jax.sharding.reshard) before the call.")
    return chan is not None


def _shard_map(fn: Callable, layout: Layout, x, w, b, x_spec: P, w_spec: P,
               out_spec: P) -> jax.Array:
    """``fn(x, w, b)`` per shard; w and b are first resharded to `w_spec` (replicated,
    or split by output channel for channel parallelism)."""
    # Inside, w and b are made to vary over the axes that x varies over, as the
    # custom rules' weight gradient does (per-shard sums); the transpose of that
    # cast is the psum over those axes, the weight gradient of the whole batch.
    spread = tuple(sorted({a for e in x_spec if e is not None for a in _names(e)}
                          - {a for e in w_spec if e is not None for a in _names(e)}))

    def vary(a):
        return lax.pcast(a, spread, to="varying") if spread and a is not None else a

    def body(x, w, b=None):
        return fn(x, vary(w), vary(b))

    x = jax.sharding.reshard(x, x_spec)
    w = jax.sharding.reshard(w, w_spec)
    if b is None:
        return jax.shard_map(body, mesh=layout.mesh, in_specs=(x_spec, w_spec),
                             out_specs=out_spec)(x, w)
    b = jax.sharding.reshard(b, w_spec)
    return jax.shard_map(body, mesh=layout.mesh, in_specs=(x_spec, w_spec, w_spec),
                         out_specs=out_spec)(x, w, b)


def sharded_conv(core: Callable, x, w, b, spec: ConvSpec, *, fn: str, layout: Layout,
                 out_shape: tuple[int, ...]) -> jax.Array:
    """``core(x, w, b, spec)`` (a batched conv) per shard, as the module docstring says."""
    chan = layout.x[1]
    plan, problem = _halo_plan(spec, layout, x.shape, w.shape[2:])
    channel_parallel = _check(fn, layout, spec, problem)

    padding = list(spec.padding)
    for i in plan:
        padding[i] = (0, 0)
    local_spec = dataclasses.replace(spec, padding=tuple(padding),
                                     groups=spec.groups // layout.size(chan))

    def local(x, w, b):
        for i, (lo, hi, entry, shards) in plan.items():
            x = _with_halo(x, 2 + i, lo, hi, entry, shards, spec.padding_mode)
        y = core(x, w, b, local_spec)
        rows = [slice(None)] * y.ndim  # hr was rounded up to 0: drop the extra rows
        for i, (*_, shards) in plan.items():
            rows[2 + i] = slice(0, out_shape[2 + i] // shards)
        return y[tuple(rows)]

    w_spec = P(chan if channel_parallel else None)
    out_spec = _out_spec(layout, out_shape, chan if channel_parallel else None)
    return _shard_map(local, layout, x, w, b, P(*layout.x), w_spec, out_spec)


def _transpose_halo_plan(spec: ConvSpec, layout: Layout, x_shape, kernel,
                         out_spatial) -> tuple:
    """Halo plan of a transposed convolution whose output is ``s`` times its input.

    Shard ``p`` computes output rows ``j`` in ``[p m s, (p+1) m s)``; row ``j`` collects
    input rows ``i`` with ``j = i s - lo + k d``, so it needs
    ``hl = ceil((d (K-1) - lo) / s)`` rows before its own and
    ``hr = floor((lo + s - 1) / s)`` after (zeros beyond the global edges). On
    ``[hl | x_p | hr]`` (``m + hl + hr`` rows) the same transposed convolution with
    padding ``(hl s + lo, hi')`` yields exactly its ``m s`` rows, where
    ``hi' = max((hr - 1) s - lo + d (K-1) + 1, 0)`` (any value in a window of ``s``
    gives that size; this one is never negative).
    """
    plan = {}
    for i, entry in enumerate(layout.x[2:]):
        if entry is None:
            continue
        shards, n = layout.size(entry), x_shape[2 + i]
        (lo, _), s, d, k = spec.padding[i], spec.stride[i], spec.dilation[i], kernel[i]
        m = n // shards
        halo_lo = max(-((lo - d * (k - 1)) // s), 0)
        halo_hi = (lo + s - 1) // s
        if out_spatial[i] != n * s:
            return None, (f"an output of {n} * stride = {n * s} rows, got "
                          f"{out_spatial[i]}", i)
        if halo_lo > m or halo_hi > m:
            return None, (f"halos of at most {m} rows (one shard), got ({halo_lo}, "
                          f"{halo_hi})", i)
        local_hi = max((halo_hi - 1) * s - lo + d * (k - 1) + 1, 0)
        plan[i] = (halo_lo, halo_hi, entry, shards, (halo_lo * s + lo, local_hi), m * s)
    return plan, None


def sharded_conv_transpose(core: Callable, x, w, b, spec: ConvSpec, out_spatial, *, fn: str,
                           layout: Layout, out_shape: tuple[int, ...]) -> jax.Array:
    """``core(x, w, b, spec, out_spatial)`` (a batched transposed conv) per shard: batch,
    group-aligned channels and (with halos, :func:`_transpose_halo_plan`) spatial axes."""
    chan = layout.x[1]
    plan, problem = _transpose_halo_plan(spec, layout, x.shape, w.shape[2:], out_spatial)
    channel_parallel = _check(fn, layout, spec, problem)
    padding, local_out = list(spec.padding), list(out_spatial)
    for i, (*_, pads, rows) in plan.items():
        padding[i], local_out[i] = pads, rows
    local_spec = dataclasses.replace(spec, padding=tuple(padding),
                                     groups=spec.groups // layout.size(chan))

    def local(x, w, b):
        for i, (lo, hi, entry, shards, *_) in plan.items():
            x = _with_halo(x, 2 + i, lo, hi, entry, shards, "zeros")
        return core(x, w, b, local_spec, tuple(local_out))

    w_spec = P(chan if channel_parallel else None)
    out_spec = _out_spec(layout, out_shape, chan if channel_parallel else None)
    return _shard_map(local, layout, x, w, b, P(*layout.x), w_spec, out_spec)
