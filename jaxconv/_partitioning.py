"""Automatic mesh axes: jaxconv partitions its own kernels.

Under ``jax.jit`` with operands sharded over *automatic* mesh axes (a plain
``jax.sharding.Mesh``, or ``jax.make_mesh(..., axis_types=(AxisType.Auto,) *
k)``), XLA's partitioner decides how each operation runs per device. Left to its
generic rules, a spatially sharded convolution either gathers the whole
activation or (an interior-padded ``lax.pad`` on the sharded axis, inside the
shift impl) aborts the process. So each of the three kernels ``F``, ``T`` and
``W`` (:mod:`jaxconv._primitives`) is lowered through
``jax.experimental.custom_partitioning``: at partition time it sees its operands'
shardings and emits the per-shard program itself, with the same per-shard plan
as the explicit-axes path (:mod:`jaxconv._sharding`):

- **batch** sharded: every shard convolves its own examples; ``W`` sums its
  per-shard weight gradients (``psum``) over the batch's mesh axes.
- **channels** sharded with the groups (``groups`` a multiple of the shards): each
  shard convolves its own groups with its rows of the weight; no communication.
- **spatial** axes sharded: a halo exchange (``ppermute``) of ``lo`` rows from the
  previous shard and ``hi`` from the next, the padding mode's rows at the global
  edges (zeros, reflect, replicate, or the other end's rows for circular), then
  the local kernel with no padding on that axis. With ``pre`` that extension of
  a shard's input (linear in it) and ``crop`` the drop of the extra output rows
  a rounded-up ``hi`` leaves::

      F:  y  = crop K_F(pre x, w)
      T:  dx = pre^T K_T(crop^T g, w)          (the adjoint of F's per-shard map)
      W:  dw = psum K_W(pre x, crop^T g)       over the batch and spatial mesh axes

  ``pre^T`` is JAX's transpose of the exchange: the halo cotangents travel back
  by the reverse ``ppermute`` and the edge rows fold onto their sources. A
  transposed convolution is ``T`` with the forward convolution's spec, so it is
  sharded by the same plan (its output ``s`` times its input, as on the explicit
  path).

A layout that can't be computed this way (a spatial output that isn't ``n / s``
rows, halos wider than a shard, a dimension the shards don't divide, channels
sharded across groups) is not an error here, since under automatic axes the
compiler chooses intermediate shardings: that dimension is replicated first (XLA
gathers it) and a ``UserWarning`` names the kernel, the dimension and why. The
program never holds the construct that aborts the partitioner: inside a
partitioned kernel every axis is per shard.

The custom call needs a device assignment while lowering, which jit gives only to
primitives it is told about: :func:`register` adds the three kernels to
``jax._src.dispatch.prim_requires_devices_during_lowering``, as JAX's own cuDNN
attention does. On one device, or inside ``shard_map`` (every axis manual), the
kernel is inlined as before.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxconv._settings import check_enabled, clear_jitted_cores
from jaxconv._sharding import Layout, _halo_plan, _names, _with_halo
from jaxconv._spec import ConvSpec

_SYMBOL = {"forward": "F", "input_grad": "T", "weight_grad": "W"}


def sharding_rule(kind: str, rank: int, groups: int) -> tuple[str, dict]:
    """The Shardy rule of a kernel and its keyword arguments: batch ``n``, spatial
    ``s_i`` (shared by the data operands and the result, so that a spatial sharding
    propagates through), kernel taps ``k_i`` (never sharded). Channels: with one
    group, the input's ``ci`` and output's ``o`` (contracted by ``F``, ``T``); with
    groups, one factor ``c`` for the data's channels, the weight's rows and the
    result's channels, so that a group-aligned channel sharding carries over to the
    result (a compound ``(g ci)`` would let Shardy split a mesh axis between the
    groups and their channels, which no partition spec can name)."""
    s = " ".join(f"s{i}" for i in range(rank))
    k = " ".join(f"k{i}" for i in range(rank))
    taps = tuple(f"k{i}" for i in range(rank))
    if groups == 1:
        rule, reduced = {
            "forward": (f"n ci {s}, o ci {k} -> n o {s}", ("ci",)),
            "input_grad": (f"n o {s}, o ci {k} -> n ci {s}", ("o",)),
            "weight_grad": (f"n ci {s}, n o {s} -> o ci {k}", ("n", *s.split())),
        }[kind]
        return rule, dict(reduction_factors=reduced, need_replication_factors=taps)
    rule, reduced = {
        "forward": (f"n c {s}, c ci {k} -> n c {s}", ("ci",)),
        "input_grad": (f"n c {s}, c ci {k} -> n c {s}", ()),
        "weight_grad": (f"n c {s}, n c {s} -> c ci {k}", ("n", *s.split())),
    }[kind]
    replicated = (("ci",) if kind == "input_grad" else ()) + taps  # in order of appearance
    return rule, dict(reduction_factors=reduced, need_replication_factors=replicated)


def _entries(sharding, ndim: int, kind: str, spec: ConvSpec) -> tuple:
    """The mesh entry of each dimension of an operand with `sharding`. A sharding that
    names no mesh axes (inside a ``shard_map`` manual over some axes only, the mesh
    is not known here) counts as replicated: XLA gathers it, with a warning."""
    entries = getattr(sharding, "spec", None)
    if entries is None:
        if not getattr(sharding, "is_fully_replicated", True):
            _warn(kind, spec, f"the sharding {sharding}",
                  "it names no mesh axes (a shard_map manual over some mesh axes only)")
        entries = ()
    entries = tuple(entries)
    return entries + (None,) * (ndim - len(entries))


def _warn(kind: str, spec: ConvSpec, what: str, why: str) -> None:
    warnings.warn(
        f"jaxconv: the {kind} kernel ({_SYMBOL[kind]}) of a {spec.rank}-d convolution can't "
        f"be computed per shard with {what}: {why}. That dimension is gathered first "
        "(replicated) under automatic mesh axes; reshard it, or pad so that it can be "
        "(docs/sharding.md).", UserWarning, stacklevel=2)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """One kernel's per-shard plan: the layout of the forward convolution's input
    (``(N, C, *S)``), the halo plan of its sharded spatial axes and the local spec."""

    layout: Layout
    halos: dict
    local: ConvSpec
    channels: object  # the mesh entry of the channels (group-aligned), or None

    def reduce_axes(self) -> tuple[str, ...]:
        """The mesh axes ``W``'s per-shard sums are added over: batch and spatial."""
        entries = [self.layout.x[0], *(self.layout.x[2 + i] for i in self.halos)]
        return tuple(a for e in entries if e is not None for a in _names(e))


def _plan(kind: str, spec: ConvSpec, mesh, data_sharding, x_shape, kernel,
          data_spatial) -> _Plan:
    """The plan for the forward convolution's input of shape `x_shape` whose layout is
    `data_sharding`'s (the data operand: ``x`` of ``F`` and ``W``, ``g`` of ``T``);
    dimensions that can't be done per shard are dropped from it, with a warning."""
    rank = spec.rank
    entries = list(_entries(data_sharding, rank + 2, kind, spec))
    layout = Layout(mesh, tuple(entries), (None,) * (rank + 2), None)
    if entries[0] is not None and x_shape[0] % layout.size(entries[0]):
        _warn(kind, spec, f"its batch sharded over mesh axis {entries[0]!r}",
              f"{layout.size(entries[0])} shards don't divide {x_shape[0]} examples")
        entries[0] = None
    chan = entries[1]
    if chan is not None and spec.groups % layout.size(chan):
        _warn(kind, spec, f"its channels sharded over mesh axis {chan!r}",
              f"groups must be a multiple of the {layout.size(chan)} shards, got "
              f"groups={spec.groups}")
        entries[1] = chan = None
    for i in range(rank):
        entry = entries[2 + i]
        if entry is None:
            continue
        shards, n = layout.size(entry), x_shape[2 + i]
        trial = dataclasses.replace(layout, x=(None, None, *(
            entry if j == i else None for j in range(rank))))
        plan, problem = _halo_plan(spec, trial, x_shape, kernel)
        if problem is None and n % shards:
            problem = (f"{shards} shards to divide its {n} rows", i)
        if problem is None and data_spatial is not None:
            if data_spatial[i] != n // spec.stride[i]:
                problem = (f"an output of {n} // stride = {n // spec.stride[i]} rows, got "
                           f"{data_spatial[i]}", i)
        if problem is not None:
            _warn(kind, spec, f"dimension {2 + i} sharded over mesh axis {entry!r} "
                  f"({shards} shards)", f"the halo exchange needs {problem[0]}")
            entries[2 + i] = None
    layout = dataclasses.replace(layout, x=tuple(entries))
    halos, problem = _halo_plan(spec, layout, x_shape, kernel)
    assert problem is None, problem  # every axis was checked alone above
    padding = list(spec.padding)
    for i in halos:
        padding[i] = (0, 0)
    local = dataclasses.replace(spec, padding=tuple(padding),
                                groups=spec.groups // layout.size(chan))
    return _Plan(layout, halos, local, chan)


def _extend(x: jax.Array, plan: _Plan, mode: str) -> jax.Array:
    """``pre``: a shard's input with its halos (and the mode's rows at global edges)."""
    for i, (lo, hi, entry, shards) in plan.halos.items():
        x = _with_halo(x, 2 + i, lo, hi, entry, shards, mode)
    return x


def _local_rows(plan: _Plan, spatial) -> tuple[int, ...]:
    """Each shard's rows of a global `spatial` size (the forward's input or output),
    split evenly on the sharded axes."""
    return tuple(n // plan.halos[i][3] if i in plan.halos else n
                 for i, n in enumerate(spatial))


def _crop(y: jax.Array, rows) -> jax.Array:
    return y[(slice(None), slice(None), *(slice(0, r) for r in rows))]


def _uncrop(g: jax.Array, shape) -> jax.Array:
    """``crop^T``: zeros after `g`'s rows, up to the local kernel's output `shape`."""
    pads = [(0, 0, 0)] * 2 + [(0, n - r, 0) for n, r in zip(shape, g.shape[2:], strict=True)]
    return lax.pad(g, jnp.zeros((), g.dtype), pads) if any(p[1] for p in pads) else g


def _partition(kind: str, params: dict, run: Callable) -> Callable:
    """The ``partition`` callback of one kernel (see the module docstring)."""
    spec: ConvSpec = params["spec"]
    rank = spec.rank
    from jaxconv._primitives import padded_spatial  # noqa: PLC0415  (cycle)

    def partition(mesh, arg_shapes, result_shape):
        a, b = arg_shapes
        if kind == "forward":
            x_shape, kernel, data, out = a.shape, b.shape[2:], a, result_shape.shape[2:]
            data_spatial = None
        elif kind == "input_grad":
            x_shape, kernel, data = result_shape.shape, b.shape[2:], a
            out, data_spatial = a.shape[2:], a.shape[2:]
        else:
            # W(x, g): the layout of whichever data operand is sharded (x's if both
            # are); g's spatial entries are those of the same axes of x. g must hold
            # exactly F's output rows (not fewer, as conv_transpose's output_padding
            # can leave it) for the shards to split both evenly.
            x_shape, kernel, out = a.shape, params["kernel"], b.shape[2:]
            replicated = all(e is None for e in _entries(a.sharding, rank + 2, kind, spec))
            data = b if replicated else a
            data_spatial = b.shape[2:]
        p = _plan(kind, spec, mesh, data.sharding, x_shape, kernel, data_spatial)
        x = p.layout.x
        chan = p.channels
        data_spec = P(*x)
        w_spec = P(chan, *(None,) * (rank + 1))
        rows = _local_rows(p, out)
        local = p.local

        def local_x_shape(n_local):
            return (n_local, x_shape[1] // p.layout.size(chan), *_local_rows(p, x_shape[2:]))

        def extended_out(xe_spatial):
            return local.output_spatial(padded_spatial(xe_spatial, local), kernel)

        if kind == "forward":
            def lower_fn(x, w):
                xe = _extend(x, p, spec.padding_mode)
                return _crop(run(xe, w, spec=local), rows)
            arg_shardings = (NamedSharding(mesh, data_spec), NamedSharding(mesh, w_spec))
            out_sharding = NamedSharding(mesh, P(x[0], chan, *x[2:]))
        elif kind == "input_grad":
            def lower_fn(g, w):
                shape = local_x_shape(g.shape[0])
                pre = functools.partial(_extend, plan=p, mode=spec.padding_mode)
                xe = jax.eval_shape(pre, jax.ShapeDtypeStruct(shape, g.dtype))
                ye = run(_uncrop(g, extended_out(xe.shape[2:])), w, spec=local,
                         in_spatial=xe.shape[2:])
                (dx,) = jax.linear_transpose(pre, jax.ShapeDtypeStruct(shape, g.dtype))(ye)
                return dx
            arg_shardings = (NamedSharding(mesh, P(x[0], chan, *x[2:])),
                             NamedSharding(mesh, w_spec))
            out_sharding = NamedSharding(mesh, data_spec)
        else:
            def lower_fn(x, g):
                xe = _extend(x, p, spec.padding_mode)
                dw = run(xe, _uncrop(g, extended_out(xe.shape[2:])), spec=local,
                         kernel=params["kernel"])
                axes = p.reduce_axes()
                return lax.psum(dw, axes) if axes else dw
            arg_shardings = (NamedSharding(mesh, data_spec),
                             NamedSharding(mesh, P(x[0], chan, *x[2:])))
            out_sharding = NamedSharding(mesh, w_spec)
        return mesh, lower_fn, out_sharding, arg_shardings

    return partition


def partitioned(kind: str, kwargs: dict, run: Callable) -> Callable:
    """The kernel `run` with static `kwargs` as a ``custom_partitioning`` function.

    A new one for each lowering, as the kernel itself was traced for each: a
    function's rule is fixed once it is traced, and what a kernel traces to may
    change between lowerings with the same parameters (:mod:`jaxconv._settings`)."""
    spec: ConvSpec = kwargs["spec"]

    # custom_partitioning refuses a function whose trace hoists constants (a kernel's
    # index tables): inside a jit they stay in the inner program.
    inner = jax.jit(functools.partial(run, **kwargs))

    @custom_partitioning
    def kernel(a, b):
        return inner(a, b)

    rule, rule_kwargs = sharding_rule(kind, spec.rank, spec.groups)
    kernel.def_partition(partition=_partition(kind, kwargs, run), sharding_rule=rule,
                         **rule_kwargs)
    return kernel


_enabled = True


def set_automatic_partitioning(enabled: bool) -> None:
    """Whether jaxconv's kernels partition themselves under automatic mesh axes
    (default on; docs/sharding.md).

    Off, each kernel is lowered as plain XLA operations that XLA's partitioner
    splits by its generic rules, as before jaxconv partitioned them: spatially
    sharded inputs may then be gathered, and (jax 0.10.2, CPU) the shift impl's
    input gradient may abort the process. What it is for: ``jax.export`` cannot
    serialise a program that holds ``custom_partitioning`` and is sharded over
    several devices. It is read when a program is lowered, and setting it clears
    the caches of jaxconv's own jitted cores (a jitted function of yours keeps its
    program until it is traced again).

    Args:
      enabled: ``True`` or ``False`` (a NumPy bool too).

    Raises:
      TypeError: `enabled` is not a bool.
    """
    global _enabled
    if check_enabled("set_automatic_partitioning", enabled) != _enabled:
        _enabled = bool(enabled)
        clear_jitted_cores()


def get_automatic_partitioning() -> bool:
    """Whether jaxconv's kernels partition themselves under automatic mesh axes (see
    :func:`set_automatic_partitioning`)."""
    return _enabled


def lowering(kind: str, run: Callable) -> Callable:
    """The MLIR lowering of a kernel primitive: its partitioned function, lowered
    (the kernel itself with :func:`set_automatic_partitioning` off)."""
    def lower(ctx, a, b, **params):
        fn = partitioned(kind, params, run) if _enabled else functools.partial(run, **params)
        return jax.interpreters.mlir.lower_fun(fn, multiple_results=False)(ctx, a, b)
    return lower


def register(prims) -> None:
    """Let jit give the kernels a device assignment while lowering (module docstring)."""
    from jax._src import dispatch  # noqa: PLC0415  (private: no public equivalent)
    for prim in prims:
        dispatch.prim_requires_devices_during_lowering.add(prim)

