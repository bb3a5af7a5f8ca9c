"""``impl="auto"``: which impl computes each kernel of a convolution.

The forward ``F``, input-gradient ``T`` and weight-gradient ``W`` kernels of every
impl satisfy the same adjoint contract (:mod:`jaxconv._registry`), so auto picks
each of the three separately, from the convolution's geometry (rank, sizes, channels
per group, kernel), the dtype and the backend. The rules below were read off
``python -m jaxconv bench --kernels`` on a 2-core x86-64 CPU (jax 0.10.2); the table
that justifies each one is in docs/auto.md and the performance pages
(docs/performance.md). On another machine, ``python -m jaxconv bench --kernels``
times every impl's kernels per layer and prints what auto picks next to the fastest,
so a rule can be re-derived there. Some rules depend on the CPU: on a later AMD
machine without AVX-512 (AVX2 only) the 2-d weight-gradient convolution XLA hands to
YNNPACK ran at a tenth of the Intel machine's speed, so there gather computes it for
strided layers that fold's space-to-depth does not take with at most 4 input
channels (image stems), and for stride-1 mode-padded layers too short for the lax
impl to keep it off YNNPACK; shift computes it for strided layers with 32-63 input
channels and at most 9 taps (:func:`cpu_has_avx512`,
:func:`jaxconv.impls.lax.weight_grad_on_ynnpack`).

Strided 2-d layers with few input channels whose kernel the stride phases fit
(image stems, patchify, 2x2 downsampling) take fold's space-to-depth kernels
where :func:`jaxconv.impls.fold.space_to_depth` says so; other strided input
gradients with few channels or at least ``PHASES_MIN_POSITIONS`` output
positions take fold's stride phases (space-to-depth and the positions
threshold were measured on the AVX2 machine only; the rules apply on any CPU).

A kernel's speed can depend on the program around it: on the CPU without
AVX-512, gather's 1x1 forward is the faster one timed alone, shift's inside the
forward+backward program (on both AVX-512 machines shift's was the faster alone
too). So a choice may name a fourth impl, ``inference``: the forward of a call
that is not differentiated (the forward primitive's own lowering;
:mod:`jaxconv._primitives`), while ``forward`` is the one its JVP and
transposes rebind, so differentiated code runs it.

On GPU and TPU auto keeps ``lax`` for every kernel: no measurement there says
otherwise yet.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from jaxconv import _deadtaps
from jaxconv._registry import available_impls
from jaxconv._spec import (
    DTYPES,
    ConvSpec,
    _fail,
    conv_spec,
    conv_transpose_spec,
    dtype_name,
    shape_tuple,
)
from jaxconv.impls import fold as fold_impl
from jaxconv.impls import lax as lax_impl
from jaxconv.impls.fold import SPLIT_MAX_GROUPS

KERNELS = ("forward", "input_grad", "weight_grad")

# Rule thresholds (see the module docstring and docs/auto.md).
SHIFT_MAX_GROUP_IN = 8  # shift-and-add beats matmul-based kernels up to this C_in / groups
SHIFT_MAX_TERMS = 512  # Cg * prod(K) (F, W) and M * prod(K) (T): unrolled terms per output
SMALL_SPATIAL = 25  # output positions per sample at or below which patches + matmul win
# (late_3x3_512 at 4x4, and on the Zen 5 small_3x3_512 at 5x5: 2.1 against lax's 3.6 ms
# forward, 7.3 against 9.5 f+b; grouped_3x3_2x2: 0.1 against shift's 0.7, 0.4 against 2.1)
SMALL_SPATIAL_LAX_MAX_OUT = 64  # ... but on AVX-512 CPUs dense 2-d stride-1 layers with at
# most this many output channels on input and output maps no smaller than the (dilated)
# kernel keep lax's (Zen 5, 3x3 on 4x4 and 5x5
# with 128-256 input channels: lax's forward 0.33-0.89 of gather's, forward+backward
# 0.28-0.75 with 32 and 64 output channels; 1.27-1.63 and 0.96-1.30 from 128; on 2x2, where
# the kernel outgrows the map, gather's 2.8-5.5x faster)
GROUPED_TINY = 16  # grouped layers of 2-8 channels per group (shift-and-add's on larger
# maps): im2col + matmul up to this many output positions per sample (Zen 5, forward alone
# / forward+backward: 55 groups of 8 on 2x2 0.09 / 0.25 ms against shift's 0.42 / 0.80;
# 4x4 1.1-1.4x faster; at 5x5 shift's ran 2-2.5x faster; depthwise layers keep shift's,
# 2-7x faster than gather's on 2x2 to 5x5)
INFERENCE_STEM_MAX_TAPS = 9  # strided stems (<= STEM_MAX_IN channels): shift's forward alone
PHASES_MAX_IN = 16  # strided input gradients with at most this many input channels: phases,
PHASES_MIN_POSITIONS = 100  # ... or with at least this many output positions per sample (3x3
# at stride 2, AVX2 machine: won with 16-256 channels at 196-3136 positions, 1-d too; at 49
# lost with 128 and 512 channels, won narrowly with 256)
STRIDED_W_MIN_IN = 64  # strided 2-d weight gradients with at least this many: shift's matmuls
STRIDED_W_MAX_TAPS = 9  # ... and kernels of at most this many taps (3x3, 2x2; 5x5 no faster)
STEM_MAX_IN = 4  # CPUs without AVX-512: strided weight gradients from gather up to this many
# input channels (RGB, RGBA stems; measured at 3, a 2.5x win)
STRIDED_W_AVX2_MIN_IN = 32  # ... and shift's from this many (below STRIDED_W_MIN_IN) with at
# most STRIDED_W_MAX_TAPS taps (forward+backward, 3x3 and 2x2 at stride 2: 32 and 48 channels
# 1.0-2.0x faster than with lax's in every run; 8 channels 1.1-1.3x; 16 a tie in one run, 1.26x
# slower in the benchmark's, so not below 32)


@dataclasses.dataclass(frozen=True)
class AutoChoice:
    """What ``impl="auto"`` runs for one convolution, and why.

    Attributes:
      forward, input_grad, weight_grad: the impl of each kernel (``forward``: in
        a call that is differentiated).
      reasons: one short sentence per kernel: the rule that chose it.
      inference: the impl of the forward kernel in a call that is not
        differentiated, where it differs from ``forward`` (else None).
      inference_reason: the rule that chose it ("" with ``inference=None``).
      dead_taps: where some kernel taps read only zero padding, a line that says
        so: they are cropped away (:mod:`jaxconv._deadtaps`) and the kernels are
        chosen for the cropped convolution ("" where none is dead).
    """

    forward: str
    input_grad: str
    weight_grad: str
    reasons: tuple[str, str, str]
    inference: str | None = None
    inference_reason: str = ""
    dead_taps: str = ""

    @property
    def impls(self) -> tuple[str, str, str]:
        return (self.forward, self.input_grad, self.weight_grad)

    def rows(self) -> list[tuple[str, str, str]]:
        """``(kernel, impl, reason)`` per kernel, and ``"inference"`` where set."""
        rows = list(zip(KERNELS, self.impls, self.reasons, strict=True))
        if self.inference is not None:
            rows.append(("inference", self.inference, self.inference_reason))
        return rows

    def __str__(self) -> str:
        lines = [f"{k:<12} {i:<7} {r}" for k, i, r in self.rows()]
        return "\n".join(lines + [self.dead_taps] if self.dead_taps else lines)


def choose(spec: ConvSpec, input_shape, weight_shape, dtype: Any,
           backend: str, avx512: bool = True) -> AutoChoice:
    """The kernels auto runs for the convolution of `spec` on `input_shape`
    ``(N, C_in, *S)`` (before mode padding) with `weight_shape` on `backend`.

    `dtype` is part of the decision's inputs but no rule uses it yet: the rules
    were measured in float32 only. `avx512` says whether the CPU has AVX-512
    (:func:`cpu_has_avx512`): without it, XLA's 2-d weight-gradient convolution
    is slow and gather computes it where that shows in the whole program, and
    gather's 1x1 forward is the faster one in a call that is not differentiated."""
    if backend != "cpu":
        why = f"backend {backend!r}: lax (no measurement on this backend says otherwise)"
        return AutoChoice("lax", "lax", "lax", (why,) * 3)
    out_channels, group_in, *kernel = weight_shape
    groups, taps = spec.groups, math.prod(kernel)
    group_out = out_channels // groups
    mode_padded = [n + lo + hi for n, (lo, hi) in zip(input_shape[2:], spec.mode_padding,
                                                      strict=True)]
    out_spatial = spec.output_spatial(mode_padded, kernel)
    out_positions = math.prod(out_spatial)
    strided = any(s > 1 for s in spec.stride)
    phases = all(s == 1 or d == 1 for s, d in zip(spec.stride, spec.dilation, strict=True))

    if groups > 1 and 1 < group_in <= SHIFT_MAX_GROUP_IN and out_positions <= GROUPED_TINY:
        why = (f"{groups} groups of {group_in} input channels on {out_positions} output "
               f"positions per sample (<= {GROUPED_TINY}): im2col + one matmul per group")
        return AutoChoice("gather", "gather", "gather", (why,) * 3)
    if groups > 1 and group_in <= SHIFT_MAX_GROUP_IN:
        why = (f"{groups} groups of {group_in} input channels (<= {SHIFT_MAX_GROUP_IN}): "
               "shift-and-add, no grouped XLA convolution")
        f = t = w = "shift"
        reasons = [why] * 3
        if group_in * taps > SHIFT_MAX_TERMS:
            f, reasons[0] = "gather", f"{group_in * taps} terms per output: gather"
        if group_out * taps > SHIFT_MAX_TERMS:
            t, reasons[1] = "gather", f"{group_out * taps} terms per input: gather"
        return AutoChoice(f, t, w, _three(reasons))
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, spec.dilation, strict=True)]
    if (avx512 and out_positions <= SMALL_SPATIAL and spec.rank == 2 and groups == 1
            and taps > 1 and not strided and out_channels <= SMALL_SPATIAL_LAX_MAX_OUT
            and all(min(n, p) >= e for n, p, e in zip(mode_padded, out_spatial, extents,
                                                       strict=True))):
        # (the input gradient convolves the output-sized map: both at least the kernel)
        why = (f"{out_positions} output positions per sample (<= {SMALL_SPATIAL}), but "
               f"{out_channels} output channels (<= {SMALL_SPATIAL_LAX_MAX_OUT}) on input and "
               "output maps no smaller than the kernel: XLA's CPU convolution")
        return AutoChoice("lax", "lax", "lax", (why,) * 3)
    if out_positions <= SMALL_SPATIAL:
        why = (f"{out_positions} output positions per sample (<= {SMALL_SPATIAL}): "
               "im2col + one matmul" + (f" per group ({groups} groups)" if groups > 1 else ""))
        return AutoChoice("gather", "gather", "gather", (why,) * 3)
    if groups > 1 and groups <= SPLIT_MAX_GROUPS:
        why = (f"{groups} groups (<= {SPLIT_MAX_GROUPS}) of {group_in} input channels: "
               "fold, which splits them into dense XLA convolutions, one per group (XLA's "
               "grouped ones are slow on CPU)")
        return AutoChoice("fold", "fold", "fold", (why,) * 3)
    if groups > 1:
        why = (f"{groups} groups of {group_in} channels: one matmul per tap, batched over "
               "groups (XLA's grouped convolutions are slow on CPU)")
        return AutoChoice("shift", "shift", "shift", (why,) * 3)
    if taps == 1:
        why = "1x1 kernel: one matmul over channels"
        pointwise = (why + " (shift's, which the forward+backward program runs faster)",
                     why + " (gather)", why + " (gather)")
        if avx512:  # shift's forward is the faster alone there too: 1.08-1.2x in the
            # suites of benchmarks/results/intel and zen5 (and git history's zen5 runs),
            # 1.13-1.29x in zen5's kernel tables
            return AutoChoice("shift", "gather", "gather", pointwise)
        return AutoChoice("shift", "gather", "gather", pointwise, "gather",
                          why + " (gather's, the faster alone on a CPU without AVX-512)")
    if spec.rank >= 3:
        t_how = ("folded to 2-d on the output side" if not strided else
                 "stride phases, each folded to 2-d" if phases else
                 "strided and dilated on one axis: XLA's convolution (fold = lax)")
        f_side = fold_impl.forward_side(spec, mode_padded, weight_shape)
        return AutoChoice("fold", "fold", "fold", (
            f"{spec.rank}-d: one 2-d XLA convolution, the leading axis folded into batch "
            f"and channels on the {f_side} side (XLA's CPU convolution is fast in 2-d only)",
            f"{spec.rank}-d input gradient: {t_how}",
            f"{spec.rank}-d weight gradient: the folded 2-d convolution's, read back"))
    why = "dense convolution: XLA's CPU convolution"
    f, t, w, reasons = "lax", "lax", "lax", [why] * 3
    if (spec.rank == 2 and strided and group_in >= STRIDED_W_MIN_IN
            and taps <= STRIDED_W_MAX_TAPS):
        w, reasons[2] = "shift", (
            f"strided 2-d, {group_in} input channels (>= {STRIDED_W_MIN_IN}), {taps} taps "
            f"(<= {STRIDED_W_MAX_TAPS}): one matmul per tap over the strided windows (XLA's "
            "strided weight gradient is slow on CPU)")
    elif (not avx512 and spec.rank == 2 and not strided
          and any(lo or hi for lo, hi in spec.mode_padding)
          and lax_impl.weight_grad_on_ynnpack(spec, (*input_shape[:2], *mode_padded),
                                              weight_shape, dtype)):
        w, reasons[2] = "gather", (
            f"2-d, {spec.padding_mode} padding, on a CPU without AVX-512, too short to keep "
            "off YNNPACK: im2col + matmul (YNNPACK's weight-gradient convolution is slow "
            "there; zero-padded layers keep it, as XLA runs it beside the input gradient)")
    elif not avx512 and spec.rank == 2 and strided and group_in <= STEM_MAX_IN:
        w, reasons[2] = "gather", (
            f"strided 2-d, {group_in} input channels (<= {STEM_MAX_IN}, an image stem), on a "
            "CPU without AVX-512: im2col + matmul (XLA's strided weight-gradient convolution "
            "is slow there)")
    elif (not avx512 and spec.rank == 2 and strided and taps <= STRIDED_W_MAX_TAPS
          and group_in >= STRIDED_W_AVX2_MIN_IN):
        w, reasons[2] = "shift", (
            f"strided 2-d, {group_in} input channels ({STRIDED_W_AVX2_MIN_IN}-"
            f"{STRIDED_W_MIN_IN - 1}), {taps} taps "
            f"(<= {STRIDED_W_MAX_TAPS}), on a CPU without AVX-512: one matmul per tap over the "
            "strided windows (XLA's strided weight-gradient convolution is slow there)")
    if strided and phases and (group_in <= PHASES_MAX_IN
                               or out_positions >= PHASES_MIN_POSITIONS):
        size = (f"{group_in} input channels (<= {PHASES_MAX_IN})" if group_in <= PHASES_MAX_IN
                else f"{out_positions} output positions per sample (>= {PHASES_MIN_POSITIONS})")
        t, reasons[1] = "fold", (
            f"strided, {size}: stride phases, each a stride-1 XLA convolution (XLA's "
            "convolution of the zero-stuffed gradient, lhs_dilation, is the slower there)")
    picks, reasons = [f, t, w], list(reasons)
    for i, name in enumerate(KERNELS):
        if fold_impl.space_to_depth(spec, group_in, kernel, name):
            picks[i], reasons[i] = "fold", (
                f"strided 2-d, {group_in} input channels, kernel {tuple(kernel)} at stride "
                f"{spec.stride}: fold's space-to-depth, one stride-1 XLA convolution with the "
                "stride phases as channels (measured faster than the rules above here)")
    if (spec.rank == 2 and strided and group_in <= STEM_MAX_IN
            and taps <= INFERENCE_STEM_MAX_TAPS and picks[0] == "lax"):
        # stem_3x3_s2 on the Zen 5: shift's forward 2.7 ms against lax's 7.8 (PyTorch 1.1);
        # inside forward+backward all three ran 29-31 ms, and a 7x7 stem's shift is slower
        return AutoChoice(*_three(picks), _three(reasons), "shift", (
            f"strided 2-d stem, {group_in} input channels (<= {STEM_MAX_IN}), {taps} taps "
            f"(<= {INFERENCE_STEM_MAX_TAPS}): one matmul per tap, the faster forward alone"))
    return AutoChoice(*_three(picks), _three(reasons))


def choose_cropped(spec: ConvSpec, input_shape, weight_shape, dtype: Any, backend: str,
                   avx512: bool = True, positions: Sequence[int] | None = None) -> AutoChoice:
    """:func:`choose` for the convolution that runs: with the kernel taps that read only
    zero padding cropped away (:func:`jaxconv._deadtaps.cropped_geometry`; `positions`:
    the output positions read, conv_transpose's input size), and a line that says so."""
    cropped, in_shape, w_shape, plan = _deadtaps.cropped_geometry(
        spec, input_shape, weight_shape, positions)
    choice = choose(cropped, in_shape, w_shape, dtype, backend, avx512)
    if plan is None:
        return choice
    return dataclasses.replace(choice, dead_taps=_deadtaps.describe(plan, weight_shape[2:]))


def _three(items: Sequence[str]) -> tuple[str, str, str]:
    """One entry per kernel (F, T, W), as a typed triple."""
    forward, input_grad, weight_grad = items
    return forward, input_grad, weight_grad


_CPUINFO = "/proc/cpuinfo"


@functools.cache
def cpu_has_avx512() -> bool:
    """Whether this machine's CPU has AVX-512 (``avx512f`` among the first
    processor's flags in ``/proc/cpuinfo``). Where that file can't be read (not
    Linux) or lists no x86 flags (e.g. ARM), the answer is True: the rules
    measured on the AVX-512 machine apply. It reads the hardware, not what XLA
    was told to use (``XLA_FLAGS=--xla_cpu_max_isa=...``)."""
    try:
        with open(_CPUINFO, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return True
    flags = [line.partition(":")[2].split() for line in text.splitlines()
             if line.startswith("flags")]
    return not flags or "avx512f" in flags[0]


def resolve_impl(fn: str, impl: Any, spec: ConvSpec, input_shape, weight_shape,
                 dtype: Any, inference: bool = True,
                 positions: Sequence[int] | None = None) -> ConvSpec:
    """`spec` with ``impl`` set: the named impl, or auto's per-kernel choice (and, with
    the hand-written rules (``autodiff="custom"`` or ``"custom_vjp"``) and `inference`,
    its forward for calls that are not differentiated; conv_transpose, whose forward is
    ``input_grad``, passes False, and its input's spatial size as `positions`). Auto
    chooses for the convolution the core runs: with its dead taps cropped
    (:func:`choose_cropped`); the spec keeps the full geometry, which the core crops."""
    impl, primal = check_impl(fn, impl), None
    if impl == "auto":
        choice = choose_cropped(spec, tuple(input_shape), tuple(weight_shape), dtype,
                                jax.default_backend(), cpu_has_avx512(), positions)
        impl = choice.impls
        if spec.autodiff in ("custom", "custom_vjp") and inference:
            primal = choice.inference
    elif isinstance(impl, str):
        impl = (impl,) * 3
    return dataclasses.replace(spec, impl=impl[0] if len(set(impl)) == 1 else impl,
                               inference=primal)


def check_impl(fn: str, impl: Any) -> str | tuple[str, str, str]:
    """An ``impl=`` argument in canonical form: ``"auto"``, a registered name, or a
    ``(forward, input_grad, weight_grad)`` tuple of names."""
    if isinstance(impl, str) and (impl == "auto" or impl in available_impls()):
        return impl
    if (isinstance(impl, tuple) and len(impl) == 3
            and all(isinstance(i, str) and i in available_impls() for i in impl)):
        return impl
    choices = ("auto", *available_impls())
    raise _fail(ValueError, fn, f"`impl` must be one of {choices}, or a (forward, input_grad, "
                f"weight_grad) tuple of those impls, got impl={impl!r}.")


def shape_stand_in(shape, dtype: Any = np.float32) -> np.ndarray:
    """A zero-byte array of `shape` (a broadcast scalar), for validating shapes."""
    return np.broadcast_to(np.zeros((), dtype), tuple(shape))


def explain_auto(input_shape: Sequence[int], weight_shape: Sequence[int], stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1,
                 padding_mode: str = "zeros", *,
                 dtype: Any = "float32", backend: str | None = None,
                 transpose: bool = False, output_padding: Any = 0,
                 avx512: bool | None = None) -> AutoChoice:
    """What ``impl="auto"`` would run for a call with these shapes, and why.

    Takes the shapes (not arrays) and the arguments of :func:`jaxconv.conv`
    (or, with ``transpose=True``, of :func:`jaxconv.conv_transpose`); validates
    them exactly as the call would.

    Args:
      input_shape, weight_shape: as the call's ``input.shape``, ``weight.shape``.
      stride, padding, dilation, groups, padding_mode, output_padding: as the call.
      dtype: the input dtype.
      backend: ``"cpu"``, ``"gpu"``, ``"tpu"``; default ``jax.default_backend()``.
      transpose: describe :func:`jaxconv.conv_transpose` (whose forward is the
        ``input_grad`` kernel of the convolution it transposes).
      avx512: whether the CPU has AVX-512 (a CPU rule depends on it); default
        this machine's answer, :func:`jaxconv._auto.cpu_has_avx512`.

    Returns:
      An :class:`AutoChoice`; ``print`` it for a per-kernel table (and, where some
      kernel taps read only zero padding, a line saying they are cropped away and
      the kernels chosen for the cropped convolution).

    Raises:
      ValueError, TypeError: as the call would; and for shapes that are not tuples
        of non-negative ints, a `dtype` jaxconv doesn't compute, a `backend` that
        is not a string, a `transpose` that is not a bool, a `padding_mode` other
        than ``"zeros"`` with ``transpose=True`` (conv_transpose takes none), an
        `output_padding` with ``transpose=False`` (conv takes none) or an `avx512`
        that is neither None nor a bool.
    """
    fn = "explain_auto"
    input_shape = shape_tuple(fn, "input_shape", input_shape)
    weight_shape = shape_tuple(fn, "weight_shape", weight_shape)
    dt = np.dtype(jax.numpy.dtype(dtype_name(fn, dtype, allowed=DTYPES)))
    if backend is not None and not isinstance(backend, str):
        raise _fail(TypeError, fn, "`backend` must be None or a backend name such as 'cpu', "
                    f"'gpu' or 'tpu', got backend={backend!r}.")
    if not isinstance(transpose, (bool, np.bool_)):
        raise _fail(TypeError, fn, f"`transpose` must be a bool, got transpose={transpose!r}.")
    if transpose and not (isinstance(padding_mode, str) and padding_mode == "zeros"):
        raise _fail(ValueError, fn, "`padding_mode` must be 'zeros' with transpose=True "
                    f"(conv_transpose pads with zeros only), got padding_mode={padding_mode!r}.")
    if not transpose and not (isinstance(output_padding, (int, np.integer))
                              and not isinstance(output_padding, bool) and output_padding == 0):
        raise _fail(ValueError, fn, "`output_padding` is an argument of conv_transpose only: "
                    f"pass transpose=True with it, got output_padding={output_padding!r}.")
    if avx512 is not None and not isinstance(avx512, (bool, np.bool_)):
        raise _fail(TypeError, fn, f"`avx512` must be None or a bool, got avx512={avx512!r}.")
    x, w = shape_stand_in(input_shape, dt), shape_stand_in(weight_shape, dt)
    backend = jax.default_backend() if backend is None else backend
    avx512 = cpu_has_avx512() if avx512 is None else bool(avx512)
    if transpose:
        spec, _, _, conv_input_shape = conv_transpose_spec(
            "explain_auto", x, w, None, stride, padding, output_padding, groups, dilation,
            None)
        choice = choose_cropped(spec, conv_input_shape, w.shape, dt, backend, avx512,
                                positions=x.shape[-spec.rank:])
        # conv_transpose's forward is input_grad: it runs no inference forward
        return dataclasses.replace(choice, inference=None, inference_reason="")
    spec, batched = conv_spec("explain_auto", x, w, None, stride, padding, dilation, groups,
                              padding_mode, None)
    return choose_cropped(spec, x.shape if batched else (1, *x.shape), w.shape, dt, backend,
                          avx512)
