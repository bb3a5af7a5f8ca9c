"""Dead-tap elimination: kernel taps that read only zero padding are cropped away.

An atrous layer on a small map (3x3, dilation 12, padding 12, a 6x6 input) reads
zero padding with 8 of its 9 taps at every output position; PyTorch's kernel
skips them, XLA multiplies them all. The convolution with those taps cropped from
the kernel, and the padding shortened to match, is the same convolution, exactly.

Derivation, per spatial axis. The implementation's input (after any mode pre-pad)
has size ``n``; the zero padding (``spec.zero_padding``: a mode-padded border is
data, not padding) is ``(lo, hi)``; kernel ``k``, dilation ``d``, stride ``s``,
``P`` output positions::

    P = (n + lo + hi - d·(k - 1) - 1) // s + 1

Tap ``j`` reads input index ``p·s + j·d - lo`` (unpadded coordinates) for
``p = 0 .. P-1``. Its reads lie in ``[j·d - lo, (P-1)·s + j·d - lo]``, so it
reads only zeros (it is *dead*) if that interval misses ``[0, n)``::

    (P-1)·s + j·d - lo < 0     or     j·d - lo >= n.

Both conditions are monotone in ``j`` (the first holds for small ``j``, the
second for large), so the live taps are one contiguous range ``[j0, j1]``::

    j0 = max(0, ceil((lo - (P-1)·s) / d))        j1 = min(k - 1, floor((n - 1 + lo) / d))

(empty when ``j0 > j1``: every tap is dead). The interval test is sufficient, not
necessary: with ``s > n`` a tap's reads can straddle ``[0, n)`` and all miss it;
such a tap is kept, which costs time and never changes a value.

Crop the kernel to ``[j0, j1]`` (``k' = j1 - j0 + 1``) and the padding to::

    lo' = lo - j0·d          hi' = hi - (k - 1 - j1)·d.

*P is kept*: ``n + lo' + hi' - d·(k' - 1) = n + lo + hi - j0·d - (k-1-j1)·d
- d·(j1 - j0) = n + lo + hi - d·(k - 1)``. *Every read is kept*: new tap
``j' = j - j0`` reads ``p·s + j'·d - lo' = p·s + j·d - lo``, the index old tap
``j`` read; the dropped taps multiplied zeros only. So the output is the same,
term for term (and so are its gradients: ``W`` of the cropped kernel is ``W`` of
the full one at the live taps; at a dead tap it is a sum over zeros, 0).

``lo'`` or ``hi'`` may be negative (the live taps never reach that far into the
padding, nor into the first ``-lo'`` input elements): crop the input instead,
``x[c_lo : n - c_hi]`` with ``c_lo = max(0, -lo')``, ``c_hi = max(0, -hi')``, and
pad ``max(0, lo')``, ``max(0, hi')``, so no impl sees negative padding. The reads
of the live taps are ``>= -lo'`` and ``<= (P-1)·s + d·(k'-1) - lo' <= n + hi' - 1``
(the size formula), so the cropped elements are never read; the cropped input is
not empty (tap ``j0``'s first read ``j0·d - lo = c_lo <= n - 1`` where ``lo' < 0``;
likewise at the end).

Where the crops happen. The crops are ``jnp`` slices of ``x`` and ``w`` inside the
jitted cores, before the primitives are bound (:func:`apply_conv`): the kernels see
a smaller convolution, and JAX's own transposes of the slices (pads with zeros)
put the gradients back, zeros at the dead taps and at the cropped input, under
every transformation (``jvp``, ``vmap``, ``grad`` of ``grad``). conv_transpose
binds ``T`` directly: it is the input gradient of the forward convolution whose
input is the transposed convolution's output (``n = out_spatial``), and ``P`` is
the transposed convolution's input size (which ``output_padding`` may make smaller
than the forward's ``P``; positions past it are not read). A crop of that forward
input is a zero pad of ``T``'s output back to ``n`` (:func:`apply_transpose`).

Where every tap of an axis is dead, every output is a sum of zeros: the output is
zeros (then the bias), and so are the gradients.

The plan is computed from static shapes and the spec inside the cores, so it is
right whoever calls them (the explicit-axes sharding path calls them per shard).
When no tap is dead the plan is ``None`` and the cores build the program they
built without it. ``impl="auto"`` chooses its kernels for the cropped geometry
(:func:`jaxconv._auto.resolve_impl` asks :func:`cropped_geometry`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._spec import ConvSpec


@dataclasses.dataclass(frozen=True)
class AxisPlan:
    """One spatial axis of a :class:`DeadTapPlan`.

    Attributes:
      taps: ``(j0, j1)``, the live taps (inclusive; ``j0 > j1``: none).
      padding: the new zero padding ``(low, high)``, >= 0.
      crop: input elements removed ``(at the start, at the end)``, >= 0.
    """

    taps: tuple[int, int]
    padding: tuple[int, int]
    crop: tuple[int, int]

    @property
    def dead(self) -> bool:
        """Every tap of this axis is dead."""
        return self.taps[0] > self.taps[1]


@dataclasses.dataclass(frozen=True)
class DeadTapPlan:
    """Per spatial axis, which taps survive and how the padding and input change
    (hashable: built from static shapes and the spec)."""

    axes: tuple[AxisPlan, ...]

    @property
    def all_dead(self) -> bool:
        """Some axis has no live tap: every output is a sum of zeros."""
        return any(a.dead for a in self.axes)

    def kernel(self) -> tuple[int, ...]:
        """The cropped kernel's spatial shape."""
        return tuple(a.taps[1] - a.taps[0] + 1 for a in self.axes)

    def in_spatial(self, in_spatial: Sequence[int]) -> tuple[int, ...]:
        """The cropped input's spatial shape."""
        return tuple(n - a.crop[0] - a.crop[1]
                     for n, a in zip(in_spatial, self.axes, strict=True))

    def spec(self, spec: ConvSpec) -> ConvSpec:
        """`spec` with the new zero padding (only zero padding is ever cropped)."""
        assert spec.padding_mode == "zeros", spec  # a mode-padded border is data
        return dataclasses.replace(spec, padding=tuple(a.padding for a in self.axes))

    def crop_weight(self, w: jax.Array) -> jax.Array:
        return w[(slice(None), slice(None),
                  *(slice(j0, j1 + 1) for j0, j1 in (a.taps for a in self.axes)))]

    def crop_input(self, x: jax.Array) -> jax.Array:
        if not any(a.crop != (0, 0) for a in self.axes):
            return x
        return x[(slice(None), slice(None), *(
            slice(lo, n - hi) for n, (lo, hi) in zip(x.shape[2:], (a.crop for a in self.axes),
                                                     strict=True)))]

    def uncrop_output(self, y: jax.Array) -> jax.Array:
        """The adjoint of :meth:`crop_input`: zeros where the input was cropped."""
        if not any(a.crop != (0, 0) for a in self.axes):
            return y
        return lax.pad(y, jnp.zeros((), y.dtype),
                       [(0, 0, 0), (0, 0, 0), *((lo, hi, 0) for lo, hi in
                                                (a.crop for a in self.axes))])


def live_taps(n: int, lo: int, hi: int, k: int, d: int, s: int,
              positions: int | None = None) -> tuple[int, int]:
    """``(j0, j1)``: the taps whose reads can reach the input (see the module docstring);
    ``j0 > j1`` when none does. `positions` is ``P``, by default the convolution's."""
    if positions is None:
        positions = (n + lo + hi - d * (k - 1) - 1) // s + 1
    last = (positions - 1) * s
    j0 = max(0, -((last - lo) // d))  # ceil((lo - last) / d)
    j1 = min(k - 1, (n - 1 + lo) // d)
    return j0, j1


def plan(spec: ConvSpec, in_spatial: Sequence[int], kernel: Sequence[int],
         positions: Sequence[int] | None = None) -> DeadTapPlan | None:
    """The dead-tap plan of the convolution of `spec` on an implementation's input of
    spatial size `in_spatial` (already mode-padded) with a kernel of spatial size
    `kernel`, or ``None`` when no tap is dead. `positions`: the output positions read
    (conv_transpose: its input's size), by default the convolution's own."""
    positions = positions if positions is not None else spec.output_spatial(in_spatial,
                                                                            kernel)
    axes = []
    for n, (lo, hi), k, d, s, p in zip(in_spatial, spec.zero_padding, kernel, spec.dilation,
                                       spec.stride, positions, strict=True):
        j0, j1 = live_taps(n, lo, hi, k, d, s, p)
        if j0 > j1:
            axes.append(AxisPlan((j0, j1), (lo, hi), (0, 0)))
            continue
        new_lo, new_hi = lo - j0 * d, hi - (k - 1 - j1) * d
        axes.append(AxisPlan((j0, j1), (max(new_lo, 0), max(new_hi, 0)),
                             (max(-new_lo, 0), max(-new_hi, 0))))
    if all(a.taps == (0, k - 1) for a, k in zip(axes, kernel, strict=True)):
        return None
    return DeadTapPlan(tuple(axes))


def cropped_geometry(spec: ConvSpec, input_shape: Sequence[int], weight_shape: Sequence[int],
                     positions: Sequence[int] | None = None
                     ) -> tuple[ConvSpec, tuple[int, ...], tuple[int, ...], DeadTapPlan | None]:
    """The convolution that actually runs, for ``impl="auto"`` to choose kernels for:
    ``(spec, input_shape, weight_shape, plan)``, cropped where `plan` (else ``None``)
    says so and some tap lives. `input_shape` is ``(N, C, *S)`` before mode padding."""
    input_shape, weight_shape = tuple(input_shape), tuple(weight_shape)
    in_spatial = [n + lo + hi for n, (lo, hi) in zip(input_shape[2:], spec.mode_padding,
                                                     strict=True)]
    p = plan(spec, in_spatial, weight_shape[2:], positions)
    if p is None or p.all_dead:
        return spec, input_shape, weight_shape, p
    # A plan exists only where the padding is zeros: no mode padding to undo.
    return (p.spec(spec), (*input_shape[:2], *p.in_spatial(input_shape[2:])),
            (*weight_shape[:2], *p.kernel()), p)


def apply_conv(x: jax.Array, w: jax.Array, spec: ConvSpec
               ) -> tuple[jax.Array, jax.Array, ConvSpec, DeadTapPlan | None]:
    """The operands and spec of the forward convolution with the dead taps cropped
    (the same ones where none is dead), and the plan. `x` is already mode-padded. With
    ``plan.all_dead`` nothing is cropped: the caller returns zeros."""
    p = plan(spec, x.shape[2:], w.shape[2:])
    if p is None or p.all_dead:
        return x, w, spec, p
    return p.crop_input(x), p.crop_weight(w), p.spec(spec), p


def describe(p: DeadTapPlan, kernel: Sequence[int]) -> str:
    """One line for :func:`jaxconv.explain_auto`."""
    if p.all_dead:
        axes = [i for i, a in enumerate(p.axes) if a.dead]
        return (f"dead taps: every tap of spatial axis {axes[0]} reads only zero padding: "
                "the output is zeros (plus the bias); no kernel runs")
    return (f"dead taps: kernel {tuple(kernel)} cropped to {p.kernel()} (the other taps read "
            "only zero padding); the kernels above are chosen for the cropped convolution")
