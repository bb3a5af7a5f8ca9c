"""The check behind ``python -m jaxconv verify``: every impl against every other and PyTorch.

:func:`run_verify` samples convolution configurations with a seeded NumPy
generator (spatial rank 1-3; padding as an int, a tuple, ``'same'`` or
``'valid'``; padding modes zeros / reflect / replicate / circular; groups,
depthwise with a channel multiplier; stride; dilation; with or without bias;
batched, unbatched and zero batch; ``conv`` and ``conv_transpose`` with
``output_padding``), each within PyTorch's limits, and computes for each of
them, in each dtype, the output and the gradients ``d_input``, ``d_weight``
(and ``d_bias``) with every impl: ``jax.vjp`` of the call (under ``jax.jit``)
with a fixed pseudo-random cotangent. PyTorch, when it is installed and
wanted, computes the same with ``torch.nn.ConvNd`` (the padding modes are its
``padding_mode``) or ``torch.nn.functional.conv_transposeNd``, and
``backward`` of the same cotangent.

Comparisons: every impl against PyTorch, and every impl against every other.
Each quantity passes by the rule of :func:`jaxconv.testing.assert_impls_agree`,
``|a - b| <= atol * (1 + max|b|) + rtol * |b|`` with ``b`` the reference side
and ``(rtol, atol)`` from :data:`jaxconv.testing.TOLERANCES` for the dtype;
a NaN fails. The errors reported are ``max|a - b|`` (max abs) and
``max|a - b| / max|b|`` (max rel: relative to the reference's largest entry).

float16 / bfloat16: PyTorch's CPU convolutions in half types are not what is
being checked, so PyTorch runs in float32 on exactly the half-rounded inputs,
weight, bias and cotangent that the impls get. The comparison then measures
each impl's half-precision error against a float32 result, within the half
dtype's tolerance. Impl-against-impl comparisons are in the half dtype itself.

complex64 / complex128: the data are ``real + i imag``, both standard normal,
and PyTorch computes in the same complex dtype. JAX's VJP is the transpose of
the linear map, PyTorch's gradient its adjoint: ``x.grad`` after
``y.backward(ct)`` is ``conj(vjp(conj(ct)))``. The gradients reported for
every impl are that, so both sides are PyTorch's gradient (for real dtypes it
is just ``vjp(ct)``). The errors are moduli ``|a - b|``.

int64 (the one integer dtype in which PyTorch's CPU computes both ``conv`` and
``conv_transpose``): small integers (no sum overflows), the output only
(integers have no gradients), compared exactly (tolerance 0).

float64, complex128 and int64 run inside ``jax.enable_x64(True)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv._conv import conv
from jaxconv._conv_transpose import conv_transpose
from jaxconv._registry import available_impls
from jaxconv._spec import COMPLEX_DTYPES, INT_DTYPES, PARAM_DTYPES
from jaxconv.testing import TOLERANCES

KINDS = ("conv", "transpose")
RANKS = (1, 2, 3)
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
PADDING_FORMS = ("int", "tuple", "same", "valid")
QUANTITIES = ("output", "d_input", "d_weight", "d_bias")
TORCH = "torch"
# What verify runs in: the parameter dtypes (values and gradients) and int64, the one
# integer dtype PyTorch's CPU computes both conv and conv_transpose in (values only).
VERIFY_DTYPES = (*PARAM_DTYPES, "int64")
# Integer data are drawn from [-INT_DRAW, INT_DRAW]: far from any overflow.
INT_DRAW = 8


@dataclasses.dataclass(frozen=True)
class Config:
    """One sampled convolution (``kind`` "conv" or "transpose") and its data seed.

    Channels: ``groups * group_in`` in, ``groups * group_out`` out; the weight
    is ``(C_out, group_in, *kernel)`` for a conv and ``(C_in, group_out,
    *kernel)`` for a transposed conv (PyTorch's layouts). ``batch`` is the
    batch size, or ``None`` for an unbatched input.
    """

    index: int
    kind: str
    rank: int
    batch: int | None
    groups: int
    group_in: int
    group_out: int
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: int | tuple[int, ...]
    padding: int | tuple[int, ...] | str
    dilation: int | tuple[int, ...]
    padding_mode: str
    output_padding: int | tuple[int, ...]
    bias: bool
    seed: int

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`jaxconv.conv` / :func:`jaxconv.conv_transpose`."""
        if self.kind == "conv":
            return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                        groups=self.groups, padding_mode=self.padding_mode)
        return dict(stride=self.stride, padding=self.padding,
                    output_padding=self.output_padding, groups=self.groups,
                    dilation=self.dilation)

    @property
    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...] | None]:
        """Shapes of input, weight and bias (``None`` without bias)."""
        c_in, c_out = self.groups * self.group_in, self.groups * self.group_out
        lead = () if self.batch is None else (self.batch,)
        if self.kind == "conv":
            w = (c_out, self.group_in, *self.kernel)
        else:
            w = (c_in, self.group_out, *self.kernel)
        return (*lead, c_in, *self.spatial), w, ((c_out,) if self.bias else None)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """PyTorch's output-size formula, worked out here independently of jaxconv."""
        lead = () if self.batch is None else (self.batch,)
        out = []
        for i, n in enumerate(self.spatial):
            k, s, d = self.kernel[i], _axis(self.stride, i), _axis(self.dilation, i)
            if self.kind == "conv":
                lo, hi = _pads(self.padding, self.kernel, self.dilation)[i]
                out.append((n + lo + hi - d * (k - 1) - 1) // s + 1)
            else:
                p, op = _axis(self.padding, i), _axis(self.output_padding, i)
                out.append((n - 1) * s - 2 * p + d * (k - 1) + op + 1)
        return (*lead, self.groups * self.group_out, *out)

    def describe(self) -> str:
        """The call, as code: ``conv2d(x[2,4,7,6], w[6,2,3,2], b[6], stride=1, ...)``."""
        x, w, b = self.shapes
        name = ("conv" if self.kind == "conv" else "conv_transpose") + f"{self.rank}d"
        arrays = [f"x[{_dims(x)}]", f"w[{_dims(w)}]"] + ([f"b[{_dims(b)}]"] if b else [])
        kw = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{name}({', '.join(arrays)}, {kw})"

    def arrays(self, dtype: str) -> tuple[jax.Array | None, ...]:
        """Input, weight, bias (or ``None``) and the cotangent in `dtype`: standard normal;
        complex: ``real + i imag``, both standard normal; integers: uniform in
        ``[-INT_DRAW, INT_DRAW]``, and no cotangent (``None``: they have no gradients)."""
        rng = np.random.default_rng(self.seed)
        x_shape, w_shape, b_shape = self.shapes
        values: Callable[[tuple[int, ...]], Any]
        if dtype in INT_DTYPES:
            values = lambda shape: rng.integers(-INT_DRAW, INT_DRAW + 1, shape)
        elif dtype in COMPLEX_DTYPES:
            values = lambda shape: rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        else:
            values = rng.standard_normal
        draw = lambda shape: jnp.asarray(values(shape), dtype)
        x, w = draw(x_shape), draw(w_shape)
        b = draw(b_shape) if b_shape else None
        return x, w, b, None if dtype in INT_DTYPES else draw(self.output_shape)

    def to_dict(self) -> dict[str, Any]:
        return dict(dataclasses.asdict(self), call=self.describe())


def _x64(dtype: str):
    """64-bit dtypes (float64, complex128, int64) need JAX's 64-bit mode; the other dtypes
    run in the caller's setting."""
    wide = dtype in ("float64", "complex128", "int64")
    return jax.enable_x64(True) if wide else contextlib.nullcontext()


def host_dtype(dtype: str) -> type:
    """The NumPy dtype results in `dtype` are compared in: float64, complex128 or int64
    (exact)."""
    if dtype in COMPLEX_DTYPES:
        return np.complex128
    return np.int64 if dtype in INT_DTYPES else np.float64


def torch_dtype(torch, dtype: str):
    """The dtype PyTorch computes `dtype` in: itself, but float32 for the half types."""
    return getattr(torch, "float32" if dtype in ("float16", "bfloat16") else dtype)


def _axis(v, i: int) -> int:
    return v[i] if isinstance(v, tuple) else v


def _dims(shape: Sequence[int]) -> str:
    return ",".join(map(str, shape))


def _pads(padding, kernel: Sequence[int], dilation) -> list[tuple[int, int]]:
    """PyTorch's padding argument as (low, high) pairs (the odd extra of 'same' goes high)."""
    pairs = []
    for i, k in enumerate(kernel):
        if padding == "valid":
            pairs.append((0, 0))
        elif padding == "same":
            total = _axis(dilation, i) * (k - 1)
            pairs.append((total // 2, total - total // 2))
        else:
            pairs.append((_axis(padding, i),) * 2)
    return pairs


# --- sampling ---------------------------------------------------------------------------


def _int_or_tuple(rng: np.random.Generator, low: int, high: int, rank: int
                  ) -> int | tuple[int, ...]:
    """An int in [low, high], or (half the time) a tuple of `rank` of them."""
    if rng.random() < 0.5:
        return int(rng.integers(low, high + 1))
    return tuple(int(v) for v in rng.integers(low, high + 1, rank))


def _groups(rng: np.random.Generator) -> tuple[int, int, int]:
    """(groups, in per group, out per group): dense, grouped, or depthwise x multiplier."""
    form = rng.integers(3)
    if form == 0:
        return 1, int(rng.integers(1, 4)), int(rng.integers(1, 4))
    if form == 1:
        return int(rng.integers(2, 4)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
    return int(rng.integers(2, 5)), 1, int(rng.integers(1, 4))


def _batch(rng: np.random.Generator) -> int | None:
    return (2, 1, None, 0)[rng.choice(4, p=(0.45, 0.2, 0.25, 0.1))]


def _draw_conv(rng: np.random.Generator, index: int, j: int) -> Config:
    """The `j`-th conv. Padding modes and forms follow a Latin square: every 4 convs cover
    each mode and each form, every 16 all combinations. The rest is drawn until PyTorch
    accepts it: reflect pads < size, circular pads <= size, 'same' only with stride 1,
    kernel no larger than the padded input."""
    mode, form = PADDING_MODES[j % 4], PADDING_FORMS[(j + j // 4) % 4]
    rank = int(rng.choice(RANKS))
    max_size = {1: 12, 2: 7, 3: 5}[rank]
    while True:
        kernel = tuple(int(k) for k in rng.integers(1, 6 if rank == 1 else 4, rank))
        dilation = _int_or_tuple(rng, 1, 2, rank)
        stride = 1 if form == "same" else _int_or_tuple(rng, 1, 3, rank)
        forms: dict[str, Callable[[], int | tuple[int, ...] | str]] = {
            "int": lambda: int(rng.integers(1, 3)),
            "tuple": lambda: tuple(int(p) for p in rng.integers(0, 3, rank)),
            "same": lambda: "same", "valid": lambda: "valid"}
        padding = forms[form]()
        spatial = tuple(int(n) for n in rng.integers(3, max_size + 1, rank))
        pairs = _pads(padding, kernel, dilation)
        ok = all(n + lo + hi >= _axis(dilation, i) * (kernel[i] - 1) + 1
                 and (mode != "reflect" or max(lo, hi) < n)
                 and (mode != "circular" or max(lo, hi) <= n)
                 for i, (n, (lo, hi)) in enumerate(zip(spatial, pairs, strict=True)))
        if ok:
            break
    groups, group_in, group_out = _groups(rng)
    return Config(index, "conv", rank, _batch(rng), groups, group_in, group_out, spatial,
                  kernel, stride, padding, dilation, mode, 0, bool(rng.random() < 0.6),
                  int(rng.integers(2**31)))


def _draw_transpose(rng: np.random.Generator, index: int) -> Config:
    """A transposed conv (zeros padding only, as in PyTorch): output_padding < stride or
    dilation on each axis, a positive output size."""
    rank = int(rng.choice(RANKS))
    max_size = {1: 8, 2: 5, 3: 4}[rank]
    while True:
        kernel = tuple(int(k) for k in rng.integers(1, 5, rank))
        stride = _int_or_tuple(rng, 1, 3, rank)
        dilation = _int_or_tuple(rng, 1, 2, rank)
        limit = [max(_axis(stride, i), _axis(dilation, i)) for i in range(rank)]
        pads = tuple(int(rng.integers(m)) for m in limit)
        output_padding: int | tuple[int, ...] = (
            pads[0] if len(set(pads)) == 1 and rng.random() < 0.5 else pads)
        padding = _int_or_tuple(rng, 0, 2, rank)
        spatial = tuple(int(n) for n in rng.integers(2, max_size + 1, rank))
        config = Config(index, "transpose", rank, _batch(rng), *_groups(rng), spatial, kernel,
                        stride, padding, dilation, "zeros", output_padding,
                        bool(rng.random() < 0.6), int(rng.integers(2**31)))
        if all(n > 0 for n in config.output_shape[-rank:]):
            return config


def sample_configs(n: int, seed: int = 0, kinds: Sequence[str] = KINDS) -> list[Config]:
    """`n` configurations valid for PyTorch, drawn with ``numpy.random.default_rng(seed)``.

    With both kinds, every third one is a transposed conv (the conv has the
    padding modes and forms to cover); padding modes and forms of the convs
    cover each other (see :func:`_draw_conv`).
    """
    rng = np.random.default_rng(seed)
    configs, convs = [], 0
    for i in range(n):
        kind = kinds[0] if len(kinds) == 1 else ("transpose" if i % 3 == 2 else "conv")
        if kind == "conv":
            configs.append(_draw_conv(rng, i, convs))
            convs += 1
        else:
            configs.append(_draw_transpose(rng, i))
    return configs


# --- computing and comparing ------------------------------------------------------------


def jax_results(config: Config, impls: Sequence[str], dtype: str) -> dict[str, Any]:
    """Output and VJP of each impl on the config's data: ``{impl: {"output", "d_input",
    ...}}``, all impls in one jitted program (one compile); when that fails, each impl on
    its own, so that an impl that raises gets its error text and the others their results.
    Complex gradients are PyTorch's, ``conj(vjp(conj(ct)))``; integers have the output only.
    """
    with _x64(dtype):
        return _jax_results(config, impls, dtype)


def _jax_results(config: Config, impls: Sequence[str], dtype: str) -> dict[str, Any]:
    x, w, b, cot = config.arrays(dtype)
    fn = conv if config.kind == "conv" else conv_transpose
    args = (x, w) if b is None else (x, w, b)

    def run(impls, args, cot):
        out: dict[str, tuple[jax.Array, ...]] = {}
        for impl in impls:
            call = functools.partial(fn, **config.kwargs, impl=impl)
            # the output of a plain call: auto may run another forward kernel there
            # (an inference forward) than under differentiation (the VJP's)
            out[impl] = (call(*args),)
            if cot is not None:  # integers: no gradients
                _, vjp = jax.vjp(call, *args)
                # PyTorch's gradient: conj(vjp(conj(ct))) (JAX's VJP is the transpose, not
                # the adjoint); for real dtypes conj is the identity
                out[impl] += tuple(jnp.conj(g) for g in vjp(jnp.conj(cot)))
        return out

    def numpy(values):
        host = host_dtype(dtype)
        return {q: np.asarray(v, host) for q, v in zip(QUANTITIES, values, strict=False)}

    try:
        out = jax.jit(functools.partial(run, impls))(args, cot)
    except Exception:  # noqa: BLE001 - find out which impl, below
        results = {}
        for impl in impls:
            try:
                results[impl] = numpy(jax.jit(functools.partial(run, (impl,)))(args, cot)[impl])
            except Exception as err:  # noqa: BLE001 - an impl's error is its failure
                results[impl] = f"{type(err).__name__}: {err}"
        return results
    return {impl: numpy(values) for impl, values in out.items()}


def torch_results(torch, config: Config, dtype: str) -> dict[str, np.ndarray]:
    """The same with PyTorch: ``nn.ConvNd`` / ``F.conv_transposeNd`` and ``backward``.

    Half dtypes run in float32 on the half-rounded data (see the module docstring).
    int64 runs the functional form of ``nn.ConvNd`` (which takes floating parameters
    only): ``F.pad`` in the padding mode then ``F.convNd``, or ``F.convNd`` with the
    padding when the mode is zeros; the output only.
    """
    host = host_dtype(dtype)
    with _x64(dtype):
        xa, wa, ba, ca = config.arrays(dtype)
        x: np.ndarray = np.array(xa, host)
        w: np.ndarray = np.array(wa, host)
        b: np.ndarray | None = None if ba is None else np.array(ba, host)
        cot: np.ndarray | None = None if ca is None else np.array(ca, host)
    tdtype = torch_dtype(torch, dtype)
    t = lambda a: torch.from_numpy(a).to(tdtype)
    if cot is None:
        return {"output": _torch_forward(torch, config, t(x), t(w),
                                         None if b is None else t(b)).numpy().astype(host)}
    xt = t(x).requires_grad_()
    if config.kind == "conv":
        cls = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[config.rank]
        m = cls(x.shape[-config.rank - 1], w.shape[0], w.shape[2:], bias=b is not None,
                **config.kwargs)
        with warnings.catch_warnings():  # complex parameters: "a new feature", they work
            warnings.filterwarnings("ignore", "Complex modules are a new feature", UserWarning)
            m = m.to(tdtype)
        with torch.no_grad():
            m.weight.copy_(t(w))
            if b is not None:
                m.bias.copy_(t(b))
        with warnings.catch_warnings():  # 'same' with an even kernel: a padded copy, fine
            warnings.filterwarnings("ignore", "Using padding='same'", UserWarning)
            y = m(xt)
        wt, bt = m.weight, m.bias
    else:
        f = getattr(torch.nn.functional, f"conv_transpose{config.rank}d")
        wt = t(w).requires_grad_()
        bt = None if b is None else t(b).requires_grad_()
        y = f(xt, wt, bt, **config.kwargs)
    y.backward(t(cot))
    out = {"output": y, "d_input": xt.grad, "d_weight": wt.grad}
    if b is not None:
        out["d_bias"] = bt.grad
    return {q: v.detach().numpy().astype(host) for q, v in out.items()}


def _torch_forward(torch, config: Config, x, w, b):
    """What ``nn.ConvNd`` computes (its ``_conv_forward``), or ``F.conv_transposeNd``."""
    F = torch.nn.functional
    if config.kind == "transpose":
        return getattr(F, f"conv_transpose{config.rank}d")(x, w, b, **config.kwargs)
    conv_nd = getattr(F, f"conv{config.rank}d")
    if config.padding_mode == "zeros":
        with warnings.catch_warnings():  # 'same' with an even kernel: a padded copy, fine
            warnings.filterwarnings("ignore", "Using padding='same'", UserWarning)
            return conv_nd(x, w, b, config.stride, config.padding, config.dilation,
                           config.groups)
    pairs = _pads(config.padding, config.kernel, config.dilation)
    flat = [p for pair in reversed(pairs) for p in pair]  # F.pad: the last axis first
    return conv_nd(F.pad(x, flat, mode=config.padding_mode), w, b, config.stride, 0,
                   config.dilation, config.groups)


@dataclasses.dataclass(frozen=True)
class QuantityError:
    """How far one quantity of one side is from the reference side."""

    max_abs: float
    max_rel: float
    ratio: float  # max |a - b| / allowed: <= 1 passes
    passed: bool


@dataclasses.dataclass(frozen=True)
class Comparison:
    """`impl` against `reference` (PyTorch or an impl) on one config, in one dtype."""

    config: int
    dtype: str
    impl: str
    reference: str
    errors: dict[str, QuantityError]
    error: str | None = None  # why a side has no result, or a shape mismatch

    @property
    def passed(self) -> bool:
        return self.error is None and all(e.passed for e in self.errors.values())

    @property
    def failing(self) -> list[str]:
        """The quantities that disagree (all of them when a side has no result)."""
        if self.error is not None:
            return ["error"]
        return [q for q, e in self.errors.items() if not e.passed]


def compare(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> QuantityError:
    """`got` against the reference `want` by ``|a - b| <= atol (1 + max|b|) + rtol |b|``
    (for complex arrays, moduli). Integer arrays are subtracted exactly (int64's
    difference can wrap around); with zero tolerances the rule is equality."""
    if np.issubdtype(want.dtype, np.integer):
        diff = np.abs(got.astype(object) - want.astype(object)).astype(np.float64)
        want = want.astype(np.float64)
    else:
        diff = np.abs(got - want)
    scale = float(np.abs(want).max(initial=0.0))
    allowed = atol * (1.0 + scale) + rtol * np.abs(want)
    max_abs = float(np.max(diff, initial=0.0))
    if scale > 0:
        max_rel = max_abs / scale
    else:
        max_rel = 0.0 if max_abs == 0 else math.inf
    with np.errstate(divide="ignore", invalid="ignore"):  # allowed is 0 only if atol is
        # an equal entry is 0 x allowed, also where nothing is allowed (exact rules)
        ratio = float(np.max(np.divide(diff, allowed, out=np.zeros_like(diff),
                                       where=diff != 0), initial=0.0))
    return QuantityError(max_abs, max_rel, ratio, bool(np.all(diff <= allowed)))


def _compare_sides(config: Config, dtype: str, impl: str, reference: str,
                   results: dict[str, Any]) -> Comparison:
    got, want = results[impl], results[reference]
    for side, r in ((impl, got), (reference, want)):
        if isinstance(r, str):
            return Comparison(config.index, dtype, impl, reference, {}, f"{side}: {r}")
    if got.keys() != want.keys():
        return Comparison(config.index, dtype, impl, reference, {},
                          f"quantities {sorted(got)} vs {sorted(want)}")
    for q in want:
        if got[q].shape != want[q].shape:
            return Comparison(config.index, dtype, impl, reference, {},
                              f"{q} shape {got[q].shape} vs {want[q].shape}")
    rtol, atol = TOLERANCES[dtype]
    errors = {q: compare(got[q], want[q], rtol, atol) for q in want}
    return Comparison(config.index, dtype, impl, reference, errors)


# --- the report -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """All configs of one (impl, reference, dtype): the worst errors and how many failed."""

    impl: str
    reference: str
    dtype: str
    configs: int
    max_abs: float
    max_rel: float
    failures: int

    @property
    def pair(self) -> str:
        return f"{self.impl} vs {self.reference}"


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """What :func:`run_verify` found.

    Attributes:
      configs: the sampled configurations (``Config.index`` is their position).
      impls, dtypes: what was compared.
      reference: ``"torch"``, or the first impl when PyTorch is not used.
      torch_version: PyTorch's version, or ``None`` when it was not used.
      notes: lines for the reader (why PyTorch was not used, half-precision rules).
      comparisons: every (impl vs PyTorch) and (impl vs earlier impl) per config and dtype.
    """

    configs: list[Config]
    impls: tuple[str, ...]
    dtypes: tuple[str, ...]
    reference: str
    torch_version: str | None
    notes: list[str]
    comparisons: list[Comparison]
    seed: int

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    @property
    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.passed]

    def summary(self) -> list[SummaryRow]:
        """One row per (impl pair, dtype), the pairs with PyTorch first."""
        groups: dict[tuple[str, str, str], list[Comparison]] = {}
        for c in self.comparisons:
            groups.setdefault((c.impl, c.reference, c.dtype), []).append(c)
        order = lambda key: (key[1] != TORCH, self.dtypes.index(key[2]))
        rows = []
        for (impl, ref, dtype), cs in sorted(groups.items(), key=lambda kv: order(kv[0])):
            errs = [e for c in cs for e in c.errors.values()]
            rows.append(SummaryRow(
                impl, ref, dtype, len(cs),
                max((e.max_abs for e in errs), default=math.nan, key=_nan_first),
                max((e.max_rel for e in errs), default=math.nan, key=_nan_first),
                sum(not c.passed for c in cs)))
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (non-finite numbers as the strings "nan" / "inf")."""
        return {
            "jax_version": jax.__version__,
            "torch_version": self.torch_version,
            "reference": self.reference,
            "impls": list(self.impls),
            "dtypes": list(self.dtypes),
            "seed": self.seed,
            "tolerances": {d: {"rtol": TOLERANCES[d][0], "atol": TOLERANCES[d][1]}
                           for d in self.dtypes},
            "rule": "|a - b| <= atol * (1 + max|b|) + rtol * |b|, b the reference",
            "notes": self.notes,
            "configs": [c.to_dict() for c in self.configs],
            "comparisons": [_comparison_dict(c) for c in self.comparisons],
            "summary": [_json_numbers(dataclasses.asdict(r)) for r in self.summary()],
            "failures": [_comparison_dict(c) for c in self.failures],
            "passed": self.passed,
        }


def _nan_first(v: float) -> float:
    """Sort key that makes NaN the maximum, so a NaN error is never hidden."""
    return math.inf if math.isnan(v) else v


def _json_numbers(d: dict) -> dict:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v))
            for k, v in d.items()}


def _comparison_dict(c: Comparison) -> dict[str, Any]:
    return {"config": c.config, "dtype": c.dtype, "impl": c.impl, "reference": c.reference,
            "passed": c.passed, "error": c.error,
            "errors": {q: _json_numbers(dataclasses.asdict(e)) for q, e in c.errors.items()}}


def _fail(message: str) -> ValueError:
    return ValueError(f"jaxconv.verify.run_verify: {message}")


def _check(impls, dtypes, n, kinds) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    choices = (*available_impls(), "auto")
    impls = tuple(choices if impls is None else impls)
    if not impls or any(i not in choices for i in impls) or len(set(impls)) != len(impls):
        raise _fail(f"`impls` must be distinct names from {choices}, got impls={impls!r}.")
    dtypes = (dtypes,) if isinstance(dtypes, str) else tuple(dtypes)
    if not dtypes or any(d not in VERIFY_DTYPES for d in dtypes):
        raise _fail(f"`dtypes` must be names from {VERIFY_DTYPES}, got dtypes={dtypes!r}.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise _fail(f"`n` must be a positive int, got n={n!r}.")
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not kinds or any(k not in KINDS for k in kinds):
        raise _fail(f"`kinds` must be names from {KINDS}, got kinds={kinds!r}.")
    return impls, tuple(dict.fromkeys(dtypes)), tuple(dict.fromkeys(kinds))


def _import_torch():
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def run_verify(*, impls: Sequence[str] | None = None,
               dtypes: Sequence[str] = ("float32", "float64"), n: int = 16, seed: int = 0,
               kinds: Sequence[str] = KINDS, torch: bool = True,
               progress: Callable[[list, str], Iterable] | None = None) -> VerifyReport:
    """Check every impl against every other, and against PyTorch, on sampled configs.

    Args:
      impls: impl names; default: every registered impl and ``"auto"``.
      dtypes: any of :data:`VERIFY_DTYPES`: ``float16``, ``bfloat16``, ``float32``,
        ``float64``, ``complex64``, ``complex128`` (outputs and gradients) and ``int64``
        (outputs, exactly).
      n: how many configurations to sample.
      seed: seed of the configurations and of their data.
      kinds: ``"conv"``, ``"transpose"`` or both.
      torch: compare with PyTorch too, when it is installed (imported only here).
      progress: wraps the list of (config, dtype) work items, e.g. with a tqdm bar.

    Returns:
      A :class:`VerifyReport` (``.passed``, ``.failures``, ``.summary()``, ``.to_dict()``).

    Raises:
      ValueError: unknown or repeated impls, unknown dtypes or kinds, `n` < 1, or fewer
        than two impls with nothing else (PyTorch) to compare them with.
    """
    impls, dtypes, kinds = _check(impls, dtypes, n, kinds)
    notes = []
    torch_mod = _import_torch() if torch else None
    if torch_mod is None:
        if len(impls) < 2:
            raise _fail(f"without PyTorch, `impls` must name at least two impls to compare, "
                        f"got impls={impls!r}.")
        why = "not installed" if torch else "not used"
        notes.append(f"PyTorch {why}: impls compared with each other only "
                     f"(reference: {impls[0]}).")
    elif any(d in ("float16", "bfloat16") for d in dtypes):
        notes.append("float16/bfloat16: PyTorch computes in float32 on the same half-rounded "
                     "data; impls are compared with each other in the half dtype.")
    if any(d in COMPLEX_DTYPES for d in dtypes):
        notes.append("complex: the gradients compared are PyTorch's, conj(vjp(conj(ct))) of "
                     "JAX's VJP (the transpose; PyTorch's gradient is the adjoint); errors "
                     "are moduli.")
    if "int64" in dtypes:
        notes.append(f"int64: data in [-{INT_DRAW}, {INT_DRAW}], the output only (no "
                     "gradients), compared exactly.")
    reference = TORCH if torch_mod is not None else impls[0]
    configs = sample_configs(n, seed, kinds)
    items = [(c, d) for c in configs for d in dtypes]
    comparisons = []
    for config, dtype in (items if progress is None else progress(items, "verify")):
        results: dict[str, Any] = {}
        if torch_mod is not None:
            results[TORCH] = _capture(torch_results, torch_mod, config, dtype)
        results.update(jax_results(config, impls, dtype))
        if torch_mod is not None:
            comparisons += [_compare_sides(config, dtype, i, TORCH, results) for i in impls]
        comparisons += [_compare_sides(config, dtype, b, a, results)
                        for k, a in enumerate(impls) for b in impls[k + 1:]]
    return VerifyReport(configs, impls, dtypes, reference,
                        None if torch_mod is None else torch_mod.__version__, notes,
                        comparisons, seed)


def _capture(fn, *args) -> dict[str, np.ndarray] | str:
    """The results, or the exception as text (a failure of that side, not of the run)."""
    try:
        return fn(*args)
    except Exception as err:  # noqa: BLE001 - any error of one side is a reported failure
        return f"{type(err).__name__}: {err}"
