"""PyTorch-style ``Unfold`` and ``Fold`` layers over :func:`jaxconv.unfold` / ``fold``.

Like the convolution layers, each is an immutable, hashable description with its
arguments validated and normalised once, at construction; it has no parameters
(``init(key)`` returns ``{}``) and applies as ``layer(params, x)``. Arguments are
checked by the functions' own validators (:mod:`jaxconv._unfold`), so a layer and a
call refuse the same values with the same texts (named after the layer).

Rank rule (the functions'): the spatial rank ``r`` is ``len(output_size)`` (Fold) when
it is a tuple, else the length of the first tuple among ``kernel_size, dilation,
padding, stride``, else 2 (all ints: PyTorch's 2-d layers, unchanged). The layer fixes
``r`` at construction and stores every argument as an ``r``-tuple.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax

from jaxconv import _unfold
from jaxconv._spec import (
    PADDING_MODES,
    _fail,
    non_negative_tuple,
)


def _rank(fn: str, args: dict[str, Any]) -> int:
    """The functions' rank rule (:mod:`jaxconv._unfold`), checked as they check it."""
    rank = _unfold._rank(tuple(args.values()))
    _unfold._check_rank(fn, rank, args)
    return rank


def _geometry(fn: str, rank: int, **args: Any) -> dict[str, tuple[int, ...]]:
    kernel, dil, pad, st = _unfold._geometry(fn, rank, **args)
    return dict(kernel_size=kernel, dilation=dil, padding=pad, stride=st)


def _check_params(fn: str, params: Any) -> None:
    if not isinstance(params, Mapping) or params:
        got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        raise _fail(TypeError, fn, "`params` must be an empty dict (as returned by init; "
                    f"the layer has no parameters), got {got}.")


class _NoParams:
    """``init`` and the repr shared by both layers."""

    _repr_fields: tuple[str, ...] = ()
    impl: str

    def init(self, key: jax.Array | None = None) -> dict[str, jax.Array]:
        """``{}``: the layer has no parameters (the protocol of the other layers)."""
        return {}

    def __repr__(self) -> str:
        """PyTorch's repr (every argument, in its order), plus non-default jaxconv options."""
        args = [f"{name}={getattr(self, name)!r}" for name in self._repr_fields]
        padding_mode = getattr(self, "padding_mode", "zeros")
        if padding_mode != "zeros":
            args.append(f"padding_mode={padding_mode!r}")
        if self.impl != "auto":
            args.append(f"impl={self.impl!r}")
        return f"{type(self).__name__}({', '.join(args)})"


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class Unfold(_NoParams):
    """Extract sliding local blocks: ``torch.nn.Unfold``, in any spatial rank.

    Args:
      kernel_size: int or tuple of ``r`` ints, >= 1: the block size.
      dilation: int or tuple, >= 1 (default 1).
      padding: int or tuple, >= 0: added on both sides of each spatial axis.
      stride: int or tuple, >= 1 (default 1).
      padding_mode: ``"zeros"`` (PyTorch's), or beyond PyTorch ``"reflect"``,
        ``"replicate"``, ``"circular"`` (keyword-only).
      impl: ``"auto"``, ``"gather"``, ``"slices"`` or ``"reshape"`` (keyword-only; see
        :func:`jaxconv.unfold`).

    Shape:
      Input ``(N, C, *S)`` or unbatched ``(C, *S)``; output ``(N, C * prod(kernel_size),
      L)`` (unbatched ``(C * prod(kernel_size), L)``) with ``L = prod_i ((S_i + 2 *
      padding_i - dilation_i * (kernel_size_i - 1) - 1) // stride_i + 1)``. PyTorch
      takes only ``r = 2``; the rank rule is in the module docstring.

    Raises:
      ValueError / TypeError: at construction, a non-int, non-positive kernel_size,
        dilation or stride, a negative padding, tuples of different lengths, or a bad
        padding_mode or impl; when applied, :func:`jaxconv.unfold`'s input errors.

    Example::

        patches = jaxconv.nn.Unfold(16, stride=16)    # ViT patching
        y = patches({}, x)                            # (N, 3, 224, 224) -> (N, 768, 196)
    """

    kernel_size: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[int, ...]
    stride: tuple[int, ...]
    padding_mode: str
    impl: str

    _repr_fields = ("kernel_size", "dilation", "padding", "stride")

    def __init__(self, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
                 stride: Any = 1, *, padding_mode: str = "zeros", impl: str = "auto"):
        fn = "nn.Unfold"
        args = dict(kernel_size=kernel_size, dilation=dilation, padding=padding,
                    stride=stride)
        values: dict[str, Any] = _geometry(fn, _rank(fn, args), **args)
        if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
            raise _fail(ValueError, fn, f"`padding_mode` must be one of {PADDING_MODES}, got "
                        f"padding_mode={padding_mode!r}.")
        values.update(padding_mode=padding_mode, impl=_unfold._check_impl(fn, impl))
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def num_spatial_dims(self) -> int:
        return len(self.kernel_size)

    def __call__(self, params: Mapping[str, Any], x: Any) -> jax.Array:
        """Apply :func:`jaxconv.unfold` with the layer's arguments.

        Args:
          params: ``{}`` (as returned by :meth:`init`).
          x: ``(N, C, *S)`` or unbatched ``(C, *S)``, with ``r`` spatial dims.

        Returns:
          ``(N, C * prod(kernel_size), L)`` (unbatched ``(C * prod(kernel_size), L)``).
        """
        _check_params("nn.Unfold", params)
        return _unfold.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride,
                      padding_mode=self.padding_mode, impl=self.impl)


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class Fold(_NoParams):
    """Combine sliding blocks into an image, summing overlaps: ``torch.nn.Fold``, any rank.

    The adjoint of :class:`Unfold` (zeros padding).

    Args:
      output_size: int or tuple of ``r`` ints, >= 0: the spatial size ``S`` of the output.
      kernel_size, dilation, padding, stride: as for :class:`Unfold`.
      impl: ``"auto"``, ``"gather"``, ``"slices"`` or ``"reshape"`` (keyword-only; see
        :func:`jaxconv.fold`).

    Shape:
      Input ``(N, C * prod(kernel_size), L)`` or unbatched ``(C * prod(kernel_size), L)``
      with ``L`` the number of blocks (as for :class:`Unfold` on an input of size
      ``output_size``); output ``(N, C, *output_size)`` (unbatched ``(C, *output_size)``).

    Raises:
      ValueError / TypeError: at construction, bad or mismatched geometry arguments
        or impl; when applied, :func:`jaxconv.fold`'s input errors.
    """

    output_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[int, ...]
    stride: tuple[int, ...]
    impl: str

    _repr_fields = ("output_size", "kernel_size", "dilation", "padding", "stride")

    def __init__(self, output_size: Any, kernel_size: Any, dilation: Any = 1,
                 padding: Any = 0, stride: Any = 1, *, impl: str = "auto"):
        fn = "nn.Fold"
        args = dict(kernel_size=kernel_size, dilation=dilation, padding=padding,
                    stride=stride)
        rank = _rank(fn, dict(output_size=output_size, **args))
        values: dict[str, Any] = dict(
            output_size=non_negative_tuple(fn, "output_size", output_size, rank))
        values.update(_geometry(fn, rank, **args))
        values.update(impl=_unfold._check_impl(fn, impl))
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def num_spatial_dims(self) -> int:
        return len(self.kernel_size)

    def __call__(self, params: Mapping[str, Any], x: Any) -> jax.Array:
        """Apply :func:`jaxconv.fold` with the layer's arguments.

        Args:
          params: ``{}`` (as returned by :meth:`init`).
          x: ``(N, C * prod(kernel_size), L)`` or unbatched ``(C * prod(kernel_size), L)``.

        Returns:
          ``(N, C, *output_size)`` (unbatched ``(C, *output_size)``).
        """
        _check_params("nn.Fold", params)
        return _unfold.fold(x, self.output_size, self.kernel_size, self.dilation, self.padding,
                    self.stride, impl=self.impl)
