"""PyTorch-style convolution layers: ``Conv``, ``Conv1d/2d/3d``, ``ConvTranspose*``, ``Lazy*``.

A layer is an immutable, hashable description (it can be a ``jit`` static
argument, a dict key, a field of any pytree container); its parameters are a
plain dict ``{"weight", "bias"}`` that the user owns, so the layer works with
optax, ``jax.grad``, ``vmap`` and any framework without wrapping. ``init`` draws
the parameters from PyTorch's default distribution, ``__call__`` applies the
public functions :func:`jaxconv.conv` / :func:`jaxconv.conv_transpose` (the
layers are built only on them, so they can never disagree).

PyTorch's ``reset_parameters`` (``torch/nn/modules/conv.py``), derived:
``kaiming_uniform_(w, a=sqrt(5))`` draws ``U(-bound, bound)`` with
``bound = gain * sqrt(3 / fan_in)`` and ``gain = sqrt(2 / (1 + a²)) = sqrt(1/3)``,
so ``bound = 1 / sqrt(fan_in)``; the bias draws ``U(-1/sqrt(fan_in),
1/sqrt(fan_in))`` (0 when ``fan_in`` is 0). ``fan_in`` is
``weight.shape[1] * prod(kernel_size)`` in both layer kinds: ``in_channels //
groups * prod(k)`` for a convolution, but ``out_channels // groups * prod(k)``
for a transposed one, whose weight is ``(in, out // groups, *k)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._auto import check_impl
from jaxconv._conv import conv
from jaxconv._conv_transpose import conv_transpose
from jaxconv._spec import (
    PADDING_MODES,
    Impl,
    _fail,
    as_int,
    check_array,
    check_at_most,
    check_autodiff,
    check_elements,
    dtype_name,
    is_sequence,
    non_negative_tuple,
    padding_pairs,
    positive_tuple,
)

# A weight has num_spatial_dims + 2 dimensions, and NumPy arrays at most 64.
MAX_SPATIAL_DIMS = 62

Padding = str | tuple[int | tuple[int, int], ...]


def _canonical_padding(fn: str, padding: Any, rank: int, transposed: bool) -> Padding:
    """'same' / 'valid' kept as strings (as PyTorch keeps them); otherwise one item per
    axis, an int where both sides are equal and a ``(low, high)`` pair where not."""
    if isinstance(padding, str) and not transposed:
        if padding not in ("same", "valid"):
            raise _fail(ValueError, fn, f"Invalid padding string {padding!r}, should be one of "
                        "('same', 'valid') (as in PyTorch).")
        return padding
    pairs = padding_pairs(fn, padding, rank)
    return tuple(lo if lo == hi else (lo, hi) for lo, hi in pairs)


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class _ConvBase:
    """Fields shared by both layer kinds, in canonical (hashable) form."""

    num_spatial_dims: int
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Padding
    dilation: tuple[int, ...]
    groups: int
    bias: bool
    padding_mode: str
    impl: Impl
    autodiff: str
    dtype: str

    transposed = False

    @property
    def _fn(self) -> str:
        # A Lazy layer validates its arguments through a plain one named after itself.
        return self.__dict__.get("_fn_name", f"nn.{type(self).__name__}")

    def _setup(self, **values: Any) -> None:
        """Set every field from the constructor's arguments, validated and canonical."""
        fn = self._fn
        rank = as_int(fn, "num_spatial_dims", values["num_spatial_dims"])
        if rank <= 0:
            raise _fail(ValueError, fn, f"`num_spatial_dims` must be positive, got "
                        f"num_spatial_dims={rank}.")
        if rank > MAX_SPATIAL_DIMS:
            raise _fail(ValueError, fn, f"`num_spatial_dims` must be at most {MAX_SPATIAL_DIMS} "
                        "(the weight has num_spatial_dims + 2 dimensions, a NumPy array at most "
                        f"64), got num_spatial_dims={rank}.")
        values["num_spatial_dims"] = rank
        for name in ("in_channels", "out_channels"):
            values[name] = as_int(fn, name, values[name])
            if values[name] <= 0:
                raise _fail(ValueError, fn, f"`{name}` must be positive, got "
                            f"{name}={values[name]}.")
            check_at_most(fn, name, (values[name],), values[name])
        for name in ("kernel_size", "stride", "dilation"):
            values[name] = positive_tuple(fn, name, values[name], rank)
        groups = values["groups"] = as_int(fn, "groups", values["groups"])
        if groups <= 0:
            raise _fail(ValueError, fn, "groups must be a positive integer (as in PyTorch), "
                        f"got groups={groups}.")
        for name in ("in_channels", "out_channels"):
            if values[name] % groups:
                raise _fail(ValueError, fn, f"{name} must be divisible by groups (as in "
                            f"PyTorch), got {name}={values[name]}, groups={groups}.")
        lead, other = ((values["in_channels"], values["out_channels"]) if self.transposed
                       else (values["out_channels"], values["in_channels"]))
        check_elements(fn, "a weight", (lead, other // groups, *values["kernel_size"]),
                       f"in_channels={values['in_channels']}, out_channels="
                       f"{values['out_channels']}, kernel_size={values['kernel_size']}")
        if not isinstance(values["bias"], (bool, np.bool_)):
            raise _fail(TypeError, fn, f"`bias` must be a bool, got bias={values['bias']!r}.")
        values["bias"] = bool(values["bias"])
        values["padding"] = _canonical_padding(fn, values["padding"], rank, self.transposed)
        if values["padding"] == "same" and any(s != 1 for s in values["stride"]):
            raise _fail(ValueError, fn, "padding='same' is not supported for strided "
                        f"convolutions (as in PyTorch), got stride={values['stride']}.")
        mode = values["padding_mode"]
        if not isinstance(mode, str) or mode not in PADDING_MODES:
            raise _fail(ValueError, fn, f"padding_mode must be one of {PADDING_MODES}, but got "
                        f"padding_mode={mode!r}.")
        values["impl"] = check_impl(fn, values["impl"])
        values["autodiff"] = check_autodiff(fn, values["autodiff"])
        values["dtype"] = dtype_name(fn, values["dtype"])
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        """PyTorch's module repr (non-default arguments only), plus jaxconv's options."""
        args = [str(self.in_channels), str(self.out_channels),
                f"kernel_size={self.kernel_size}"]
        if type(self) in (Conv, ConvTranspose):
            args.insert(0, str(self.num_spatial_dims))
        defaults = dict(stride=(1,) * self.num_spatial_dims, padding=(0,) * self.num_spatial_dims,
                        output_padding=(0,) * self.num_spatial_dims,
                        dilation=(1,) * self.num_spatial_dims, groups=1, bias=True,
                        padding_mode="zeros", impl="auto", autodiff="custom", dtype="float32")
        for name, default in defaults.items():
            value = getattr(self, name, default)
            if value != default:
                args.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(args)})"

    def replace(self, **changes: Any) -> Self:
        """A copy with some constructor arguments changed, validated again, e.g.
        ``layer.replace(impl="gather")`` (``dataclasses.replace`` can't call the
        fixed-rank constructors, which take no ``num_spatial_dims``)."""
        base: Any = ConvTranspose if self.transposed else Conv
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - set(values))
        if unknown:
            raise _fail(TypeError, f"{self._fn}.replace", f"unknown argument(s) {unknown}; "
                        f"a {type(self).__name__} has {sorted(values)}.")
        values.update(changes)
        layer = object.__new__(type(self))
        base.__init__(layer, **values)
        return layer

    __replace__ = replace  # copy.replace (Python 3.13)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """PyTorch's weight layout: ``(out, in // groups, *k)``; transposed
        ``(in, out // groups, *k)``."""
        lead, other = ((self.in_channels, self.out_channels) if self.transposed
                       else (self.out_channels, self.in_channels))
        return (lead, other // self.groups, *self.kernel_size)

    @property
    def fan_in(self) -> int:
        """PyTorch's ``fan_in`` of the weight: ``weight.shape[1] * prod(kernel_size)``."""
        return self.weight_shape[1] * math.prod(self.kernel_size)

    def init(self, key: jax.Array) -> dict[str, jax.Array]:
        """Parameters drawn from PyTorch's default distribution (``reset_parameters``).

        Args:
          key: a ``jax.random`` key.

        Returns:
          ``{"weight": (weight_shape), "bias": (out_channels,)}`` in the layer's
          dtype; no ``"bias"`` when ``bias=False``. Both ``U(-1/sqrt(fan_in),
          1/sqrt(fan_in))`` (kaiming-uniform with ``a = sqrt(5)``, see the module
          docstring).
        """
        w_key, b_key = jax.random.split(key)
        a = math.sqrt(5.0)  # PyTorch's own arithmetic, to the last bit of the bound
        w_bound = math.sqrt(2.0 / (1 + a * a)) * math.sqrt(3.0 / self.fan_in)
        params = {"weight": _uniform(w_key, self.weight_shape, self.dtype, w_bound)}
        if self.bias:
            b_bound = 1 / math.sqrt(self.fan_in) if self.fan_in > 0 else 0.0
            params["bias"] = _uniform(b_key, (self.out_channels,), self.dtype, b_bound)
        return params

    def _params(self, params: Any) -> tuple[Any, Any]:
        """``(weight, bias)`` from a params mapping, checked against this layer."""
        fn = self._fn
        keys = ("weight", "bias") if self.bias else ("weight",)
        if not isinstance(params, Mapping) or set(params) != set(keys):
            got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
            raise _fail(TypeError, fn, f"`params` must be a dict with keys {keys} (as "
                        f"returned by init), got {got}.")
        weight, bias = params["weight"], params.get("bias")
        shapes = (("weight", weight, self.weight_shape),
                  ("bias", bias, (self.out_channels,)))
        for name, value, shape in shapes:
            if value is not None:
                check_array(fn, f"params[{name!r}]", value)
            if value is not None and tuple(np.shape(value)) != shape:
                raise _fail(ValueError, fn, f"params[{name!r}] must have shape {shape} for "
                            f"{self!r}, got {tuple(np.shape(value))}.")
        return weight, bias


def _uniform(key: jax.Array, shape: tuple[int, ...], dtype: str, bound: float) -> jax.Array:
    """``U(-bound, bound)`` in `dtype`; a complex dtype draws its real and imaginary
    parts each from it, as PyTorch's ``uniform_`` does (on ``view_as_real``)."""
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    real = jnp.finfo(dtype).dtype
    parts = jax.random.uniform(key, (*shape, 2), real, -bound, bound)
    return lax.complex(parts[..., 0], parts[..., 1])


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class Conv(_ConvBase):
    """An N-d convolution layer with ``torch.nn.ConvNd``'s arguments and init.

    ``Conv1d``, ``Conv2d`` and ``Conv3d`` fix ``num_spatial_dims`` and take
    exactly PyTorch's positional arguments.

    Args:
      num_spatial_dims: the spatial rank (1 to 62; PyTorch stops at 3).
      in_channels, out_channels: >= 1, each divisible by ``groups``.
      kernel_size, stride, dilation: int or tuple of ``num_spatial_dims`` ints, >= 1.
      padding: int, tuple, ``"same"`` or ``"valid"`` as in PyTorch; beyond
        PyTorch, tuple items may be ``(low, high)`` pairs.
      groups: >= 1.
      bias: whether the layer has a bias.
      padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
      impl, autodiff: as for :func:`jaxconv.conv` (keyword-only).
      dtype: the parameters' dtype (``init``): float16, bfloat16, float32, float64,
        complex64 or complex128 (real and imaginary parts each drawn from
        PyTorch's distribution, as its ``uniform_`` does); ``None`` is float32
        (PyTorch's default dtype).

    Raises:
      ValueError / TypeError: at construction, PyTorch's constructor errors
        (channels not divisible by groups, groups < 1, a bad padding string or
        padding_mode, 'same' with stride), and the ones PyTorch raises only when
        the layer is first run (kernel_size, stride or dilation < 1, negative
        padding), each naming the argument and its value.

    Example::

        layer = jaxconv.nn.Conv2d(3, 16, 3, padding=1, padding_mode="reflect")
        params = layer.init(jax.random.key(0))
        y = layer(params, x)            # x: (N, 3, H, W) -> (N, 16, H, W)
    """

    def __init__(self, num_spatial_dims: int, in_channels: int, out_channels: int,
                 kernel_size: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *,
                 impl: Any = "auto", autodiff: str = "custom", dtype: Any = "float32"):
        self._setup(num_spatial_dims=num_spatial_dims, in_channels=in_channels,
                    out_channels=out_channels, kernel_size=kernel_size, stride=stride,
                    padding=padding, dilation=dilation, groups=groups, bias=bias,
                    padding_mode=padding_mode, impl=impl, autodiff=autodiff, dtype=dtype)

    def __call__(self, params: Mapping[str, Any], x: Any) -> jax.Array:
        """Apply the layer: ``jaxconv.conv(x, params["weight"], params.get("bias"), ...)``.

        Args:
          params: ``{"weight", "bias"}`` as returned by :meth:`init` (or
            :func:`jaxconv.nn.from_torch`); no ``"bias"`` when ``bias=False``.
          x: ``(N, in_channels, *spatial)`` or unbatched ``(in_channels, *spatial)``.

        Returns:
          ``(N, out_channels, *out)`` (unbatched: ``(out_channels, *out)``).
        """
        weight, bias = self._params(params)
        check_array(self._fn, "x", x)
        return conv(x, weight, bias, self.stride, self.padding, self.dilation, self.groups,
                    padding_mode=self.padding_mode, impl=self.impl, autodiff=self.autodiff)


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class ConvTranspose(_ConvBase):
    """An N-d transposed convolution layer with ``torch.nn.ConvTransposeNd``'s
    arguments (``output_padding``, zeros padding only) and init.

    Args:
      num_spatial_dims, in_channels, out_channels, kernel_size, stride, dilation,
      groups, bias, impl, autodiff, dtype: as for :class:`Conv` (PyTorch's order:
        ``..., padding, output_padding, groups, bias, dilation, padding_mode``).
      padding: int or tuple (cropped from the full output, as in PyTorch);
        beyond PyTorch, tuple items may be ``(low, high)`` pairs.
      output_padding: int or tuple, >= 0 (smaller than stride or dilation per
        axis; checked when the layer is applied, as PyTorch does).
      padding_mode: ``"zeros"`` only (as in PyTorch).

    The weight is ``(in_channels, out_channels // groups, *kernel_size)``, and
    ``fan_in`` for init is ``out_channels // groups * prod(kernel_size)``, as in
    PyTorch.
    """

    output_padding: tuple[int, ...]

    transposed = True

    def __init__(self, num_spatial_dims: int, in_channels: int, out_channels: int,
                 kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", *, impl: Any = "auto",
                 autodiff: str = "custom", dtype: Any = "float32"):
        self._setup(num_spatial_dims=num_spatial_dims, in_channels=in_channels,
                    out_channels=out_channels, kernel_size=kernel_size, stride=stride,
                    padding=padding, dilation=dilation, groups=groups, bias=bias,
                    padding_mode=padding_mode, impl=impl, autodiff=autodiff, dtype=dtype)
        if self.padding_mode != "zeros":
            raise _fail(ValueError, self._fn, 'Only "zeros" padding mode is supported for '
                        f"{self._fn.removeprefix('nn.')} (as in PyTorch), got "
                        f"padding_mode={self.padding_mode!r}.")
        object.__setattr__(self, "output_padding", non_negative_tuple(
            self._fn, "output_padding", output_padding, self.num_spatial_dims))

    def _output_padding(self, x_spatial: Sequence[int], output_size: Any) -> tuple[int, ...]:
        """PyTorch's ``_output_padding``: the output_padding giving `output_size`."""
        fn, rank = self._fn, self.num_spatial_dims
        if output_size is None:
            return self.output_padding
        if is_sequence(output_size):
            size = tuple(output_size)
        else:
            size = (output_size,)
        if any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) for n in size):
            raise _fail(TypeError, fn, "`output_size` must be None, an int or a tuple of ints, "
                        f"got output_size={output_size!r}.")
        size = tuple(int(n) for n in size)
        if len(size) == rank + 2:
            size = size[2:]
        if len(size) != rank:
            raise _fail(ValueError, fn, f"`output_size` must hold {rank} or {rank + 2} ints, "
                        f"got output_size={output_size!r}.")
        pairs = padding_pairs(fn, self.padding, rank)
        smallest = tuple(
            (n - 1) * s - lo - hi + d * (k - 1) + 1
            for n, s, (lo, hi), d, k in zip(x_spatial, self.stride, pairs, self.dilation,
                                            self.kernel_size, strict=True))
        largest = tuple(m + s - 1 for m, s in zip(smallest, self.stride, strict=True))
        if any(not lo <= n <= hi for n, lo, hi in zip(size, smallest, largest, strict=True)):
            raise _fail(ValueError, fn, f"requested an output size of {size}, but valid sizes "
                        f"range from {smallest} to {largest} (for an input of "
                        f"{tuple(x_spatial)}), as in PyTorch.")
        return tuple(n - m for n, m in zip(size, smallest, strict=True))

    def __call__(self, params: Mapping[str, Any], x: Any, output_size: Any = None
                 ) -> jax.Array:
        """Apply the layer: :func:`jaxconv.conv_transpose` with the layer's arguments.

        Args:
          params: ``{"weight", "bias"}`` as returned by :meth:`init`.
          x: ``(N, in_channels, *spatial)`` or unbatched ``(in_channels, *spatial)``.
          output_size: optional, as in PyTorch's ``forward``: the wanted output
            spatial size (or the whole ``(N, C, *spatial)`` shape); it picks the
            ``output_padding`` (within ``[0, stride)``).

        Returns:
          ``(N, out_channels, *out)`` (unbatched: ``(out_channels, *out)``).
        """
        weight, bias = self._params(params)
        check_array(self._fn, "x", x)
        output_padding = self._output_padding(np.shape(x)[-self.num_spatial_dims:],
                                              output_size)
        return conv_transpose(x, weight, bias, self.stride, self.padding, output_padding,
                              self.groups, self.dilation, impl=self.impl,
                              autodiff=self.autodiff)


def _fixed_rank(base: Any, rank: int) -> Any:
    """``base`` with ``num_spatial_dims`` fixed: PyTorch's ``Conv{rank}d`` /
    ``ConvTranspose{rank}d`` signature (the same arguments, in the same order)."""

    def __init__(self, *args: Any, **kwargs: Any):
        base.__init__(self, rank, *args, **kwargs)

    name = f"{base.__name__}{rank}d"
    doc = (f"{rank}-d :class:`{base.__name__}`: ``torch.nn.{name}``'s arguments, in "
           f"its order, then the keyword-only ``impl``, ``autodiff``, ``dtype``.\n\n"
           f"    See :class:`jaxconv.nn.{base.__name__}` for the arguments.\n")
    __init__.__doc__ = doc
    return type(name, (base,), {"__init__": __init__, "__doc__": doc,
                                "__module__": "jaxconv.nn", "__qualname__": name})


Conv1d, Conv2d, Conv3d = (_fixed_rank(Conv, r) for r in (1, 2, 3))
ConvTranspose1d, ConvTranspose2d, ConvTranspose3d = (_fixed_rank(ConvTranspose, r)
                                                     for r in (1, 2, 3))


# ---------------------------------------------------------------- lazy layers
#
# PyTorch's Lazy layers infer ``in_channels`` from the first input and then *become* the
# plain layer (``cls_to_become``), mutating the module. A jaxconv layer is an immutable
# description, so the same idea is written functionally: ``init(key, x)`` reads
# ``in_channels`` from ``x`` and draws the plain layer's params; ``layer(params, x)`` reads
# ``in_channels`` back from ``params["weight"].shape`` (the params are the only state, as the
# weight is PyTorch's only record of it too) and applies the plain layer. The lazy layer
# stays hashable and one description serves params of any ``in_channels``;
# :meth:`materialize` gives the plain layer, PyTorch's ``cls_to_become``, explicitly.


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class _LazyBase:
    """Every field of the plain layer but ``in_channels``, validated by building one."""

    num_spatial_dims: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Padding
    dilation: tuple[int, ...]
    groups: int
    bias: bool
    padding_mode: str
    impl: Impl
    autodiff: str
    dtype: str

    # the plain N-d class (a class attribute, not a field)
    _plain: ClassVar[type[Conv] | type[ConvTranspose]] = Conv

    @property
    def _fn(self) -> str:
        return f"nn.{type(self).__name__}"

    def _setup(self, num_spatial_dims: Any, out_channels: Any, kernel_size: Any,
               **kwargs: Any) -> None:
        # The plain constructor validates (errors named after this class), with
        # in_channels = groups, valid for every groups; the real one comes with init.
        groups = kwargs["groups"]
        valid = (isinstance(groups, (int, np.integer)) and not isinstance(groups, bool)
                 and groups >= 1)
        plain: Any = self._plain
        probe = object.__new__(plain)
        object.__setattr__(probe, "_fn_name", self._fn)
        plain.__init__(probe, num_spatial_dims, int(groups) if valid else 1,
                             out_channels, kernel_size, **kwargs)
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, getattr(probe, field.name))

    def _kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("num_spatial_dims", "out_channels", "kernel_size")}

    def materialize(self, in_channels: int) -> Conv | ConvTranspose:
        """The plain layer with this ``in_channels`` (PyTorch's ``cls_to_become``):
        a ``LazyConv2d`` gives a ``Conv2d``, a ``LazyConv`` a ``Conv``."""
        rank = self.num_spatial_dims
        if type(self).__name__ == f"Lazy{self._plain.__name__}{rank}d":  # LazyConv2d ...
            cls = globals()[f"{self._plain.__name__}{rank}d"]
            return cls(in_channels, self.out_channels, self.kernel_size, **self._kwargs())
        return self._plain(rank, in_channels, self.out_channels, self.kernel_size,
                           **self._kwargs())

    def _in_channels_of_input(self, x: Any) -> int:
        """PyTorch's ``_get_in_channels``: dim 1 of a batched input, dim 0 of an unbatched."""
        fn, rank = self._fn, self.num_spatial_dims
        check_array(fn, "x", x)
        shape = tuple(np.shape(x))
        if len(shape) not in (rank + 1, rank + 2):
            raise _fail(ValueError, fn, f"Expected {rank + 1}D (unbatched) or {rank + 2}D "
                        f"(batched) input `x` (as in PyTorch), got x.shape={shape}.")
        in_channels = shape[-(rank + 1)]
        if in_channels <= 0 or in_channels % self.groups:
            raise _fail(ValueError, fn, "in_channels, inferred from the channel axis of `x`, "
                        f"must be positive and divisible by groups (={self.groups}), got "
                        f"in_channels={in_channels} from x.shape={shape}.")
        return in_channels

    def _in_channels_of_params(self, params: Any) -> int:
        """``in_channels`` as the weight records it: ``weight.shape[1] * groups`` for a
        convolution, ``weight.shape[0]`` for a transposed one."""
        fn, rank = self._fn, self.num_spatial_dims
        if not isinstance(params, Mapping) or "weight" not in params:
            got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
            raise _fail(TypeError, fn, "`params` must be a dict with a 'weight' (as returned "
                        f"by init(key, x)), got {got}.")
        check_array(fn, "params['weight']", params["weight"])
        shape = tuple(np.shape(params["weight"]))
        if len(shape) != rank + 2:
            raise _fail(ValueError, fn, f"params['weight'] must have {rank + 2} dimensions "
                        f"(out, in // groups, *kernel_size), got shape {shape}.")
        return shape[0] if self._plain.transposed else shape[1] * self.groups

    def init(self, key: jax.Array, x: Any) -> dict[str, jax.Array]:
        """Params for input `x`, drawn as PyTorch draws them once ``x`` has materialised it.

        Args:
          key: a ``jax.random`` key.
          x: an input (or any array of its shape): ``(N, C, *spatial)`` or unbatched
            ``(C, *spatial)``; ``in_channels = C``. Only its shape is read.

        Returns:
          ``self.materialize(C).init(key)``: the plain layer's params, from
          ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

        Raises:
          ValueError: `x` has neither ``num_spatial_dims + 1`` nor ``+ 2`` dimensions,
            or its channel count is not a positive multiple of ``groups``.
        """
        return self.materialize(self._in_channels_of_input(x)).init(key)

    def _plain_for(self, params: Any, x: Any) -> Conv | ConvTranspose:
        in_channels = self._in_channels_of_params(params)
        got = self._in_channels_of_input(x)
        if got != in_channels:
            raise _fail(ValueError, self._fn, f"`x` has {got} channels (x.shape="
                        f"{tuple(np.shape(x))}), but `params` were initialised for "
                        f"in_channels={in_channels} (params['weight'].shape="
                        f"{tuple(np.shape(params['weight']))}).")
        return self.materialize(in_channels)

    def __repr__(self) -> str:
        """PyTorch's repr without the (not yet known) in_channels, plus jaxconv's options."""
        text = repr(self.materialize(self.groups))
        name = type(self).__name__
        head, _, rest = text.partition("(")
        parts = rest.split(", ", 1 if head.endswith("d") else 2)
        args = parts[1:] if head.endswith("d") else [parts[0], *parts[2:]]
        return f"{name}({', '.join(args)}"


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class LazyConv(_LazyBase):
    """:class:`Conv` with ``in_channels`` inferred from the input (``torch.nn.LazyConvNd``).

    ``LazyConv1d/2d/3d`` fix ``num_spatial_dims`` and take exactly PyTorch's positional
    arguments. ``init(key, x)`` reads ``in_channels`` from ``x``; ``layer(params, x)``
    reads it from ``params["weight"].shape`` (``weight.shape[1] * groups``), so the layer
    itself holds no state and is hashable. ``materialize(in_channels)`` gives the
    plain :class:`Conv` (PyTorch's ``cls_to_become``).

    Args:
      num_spatial_dims, out_channels, kernel_size, stride, padding, dilation, groups,
      bias, padding_mode, impl, autodiff, dtype: as for :class:`Conv`.

    Shape:
      Input ``(N, C_in, *spatial)`` or ``(C_in, *spatial)``; output
      ``(N, out_channels, *out)`` with ``out = (in + lo + hi - dilation * (k - 1) - 1)
      // stride + 1`` per axis, as for :class:`Conv`.

    Raises:
      ValueError / TypeError: at construction, :class:`Conv`'s errors; at ``init``,
        an input of the wrong rank or a channel count not divisible by ``groups``;
        at apply, an input whose channels differ from the params'.

    Example::

        layer = jaxconv.nn.LazyConv2d(16, 3, padding=1)
        params = layer.init(jax.random.key(0), x)   # x: (N, 3, H, W): in_channels = 3
        y = layer(params, x)                       # (N, 16, H, W)
    """

    def __init__(self, num_spatial_dims: int, out_channels: int, kernel_size: Any,
                 stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros", *, impl: Any = "auto",
                 autodiff: str = "custom", dtype: Any = "float32"):
        self._setup(num_spatial_dims, out_channels, kernel_size, stride=stride,
                    padding=padding, dilation=dilation, groups=groups, bias=bias,
                    padding_mode=padding_mode, impl=impl, autodiff=autodiff, dtype=dtype)

    def __call__(self, params: Mapping[str, Any], x: Any) -> jax.Array:
        """Apply the layer: the plain :class:`Conv` for ``params``' in_channels.

        Args:
          params: ``{"weight", "bias"}`` as returned by :meth:`init`.
          x: ``(N, in_channels, *spatial)`` or unbatched ``(in_channels, *spatial)``.

        Returns:
          ``(N, out_channels, *out)`` (unbatched: ``(out_channels, *out)``).
        """
        return self._plain_for(params, x)(params, x)


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class LazyConvTranspose(_LazyBase):
    """:class:`ConvTranspose` with ``in_channels`` inferred from the input
    (``torch.nn.LazyConvTransposeNd``).

    As :class:`LazyConv`, with ``ConvTranspose``'s arguments (PyTorch's order:
    ``out_channels, kernel_size, stride, padding, output_padding, groups, bias,
    dilation, padding_mode``); ``layer(params, x)`` reads ``in_channels`` from
    ``params["weight"].shape[0]``.

    Shape:
      Input ``(N, C_in, *spatial)`` or ``(C_in, *spatial)``; output
      ``(N, out_channels, *out)`` with ``out = (in - 1) * stride - lo - hi +
      dilation * (k - 1) + output_padding + 1`` per axis.
    """

    output_padding: tuple[int, ...]

    _plain = ConvTranspose

    def __init__(self, num_spatial_dims: int, out_channels: int, kernel_size: Any,
                 stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                 groups: int = 1, bias: bool = True, dilation: Any = 1,
                 padding_mode: str = "zeros", *, impl: Any = "auto",
                 autodiff: str = "custom", dtype: Any = "float32"):
        self._setup(num_spatial_dims, out_channels, kernel_size, stride=stride,
                    padding=padding, output_padding=output_padding, groups=groups,
                    bias=bias, dilation=dilation, padding_mode=padding_mode, impl=impl,
                    autodiff=autodiff, dtype=dtype)

    def __call__(self, params: Mapping[str, Any], x: Any, output_size: Any = None
                 ) -> jax.Array:
        """Apply the layer: the plain :class:`ConvTranspose` for ``params``' in_channels.

        Args:
          params: ``{"weight", "bias"}`` as returned by :meth:`init`.
          x: ``(N, in_channels, *spatial)`` or unbatched ``(in_channels, *spatial)``.
          output_size: optional, as for :class:`ConvTranspose`.

        Returns:
          ``(N, out_channels, *out)`` (unbatched: ``(out_channels, *out)``).
        """
        layer = self._plain_for(params, x)
        assert isinstance(layer, ConvTranspose)
        return layer(params, x, output_size)


LazyConv1d, LazyConv2d, LazyConv3d = (_fixed_rank(LazyConv, r) for r in (1, 2, 3))
LazyConvTranspose1d, LazyConvTranspose2d, LazyConvTranspose3d = (
    _fixed_rank(LazyConvTranspose, r) for r in (1, 2, 3))
