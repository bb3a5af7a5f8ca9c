"""Property-based fuzzing against PyTorch: every impl and ``"auto"``, conv and conv_transpose.

Hypothesis draws convolutions from the whole space PyTorch accepts: spatial rank
1-3; spatial sizes, kernels, channels and batch down to 1; zero batch and
unbatched input; stride; dilation; dense, grouped and depthwise (with a channel
multiplier) groups; padding as an int, a tuple, ``'same'`` (stride 1 only),
``'valid'``, or explicit ``(low, high)`` pairs (beyond PyTorch, mixed with plain
ints); every ``padding_mode``; bias or not; float64, float32, complex128,
complex64 and int64; and, for ``conv_transpose``, ``output_padding`` < stride
or dilation. The configurations are built valid, not filtered: sizes are drawn
above what PyTorch needs (reflect pad < size, circular pad <= size, kernel no
larger than the padded input), and transposed padding below what keeps the
output size positive.

For each example, the output and the gradients of input, weight and bias (a VJP
with a random cotangent) of every registered impl and of ``"auto"`` are computed
in one jitted program (:func:`jaxconv.verify.jax_results`; one compile per
example, which is what an example costs) and compared with PyTorch's output and
autograd (``nn.ConvNd`` with its ``padding_mode``, ``F.conv_transposeNd``; for
pairs, ``F.pad`` then ``F.convNd``, and ``F.conv_transposeNd`` then a crop) by
``|a - b| <= atol * (1 + max|b|) + rtol * |b|`` with
:data:`jaxconv.testing.TOLERANCES` (float64 and complex128 1e-10, float32 and
complex64 1e-4, int64 0: exactly).

Complex data are ``real + i imag``, both standard normal, and PyTorch computes
in the same complex dtype. JAX's VJP is the transpose, PyTorch's gradient the
adjoint: ``x.grad`` after ``y.backward(ct)`` is ``conj(vjp(conj(ct)))``, and
that is what is compared (:func:`jaxconv.verify.jax_results` computes it).
int64 data are small integers (no sum overflows), and only the output is
compared (integers have no gradients), exactly; one more test draws int64 data
from the whole range, so that products and sums wrap around, and compares
exactly with PyTorch, which wraps around too.

The tests are parametrized by dtype family (real, complex, int64; the dtype
within one is drawn), padding mode (conv) and by explicit pairs or PyTorch's
padding forms (both), so that even a few examples per test cover each; the rest
is drawn. Example counts come from the Hypothesis profiles registered in
conftest.py, a third of the profile's per test (the three families share it)
and no fewer than 2: ``ci`` (the default: derandomized, 2 per test, 64 examples,
about a minute on 2 cores) and ``long`` (randomized, 166 per test: about 5300
examples; ``JAXCONV_HYPOTHESIS_EXAMPLES=n`` sets the profile's n)::

    JAXCONV_HYPOTHESIS_PROFILE=long python -m pytest -q tests/test_fuzz.py \\
        -p no:cacheprovider --hypothesis-show-statistics
    # or: python -m pytest -q tests/test_fuzz.py --hypothesis-profile=long

A failure prints the shrunk configuration as a call, and per impl and quantity
the largest difference, where it is and both values.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st
from reference import padding_pairs

import jaxconv
from jaxconv import verify
from jaxconv.testing import TOLERANCES

IMPLS = (*jaxconv.available_impls(), "auto")
# Each test runs one family; the dtype within it is drawn. complex: outputs and PyTorch's
# gradients; int64: outputs only, exactly.
DTYPE_FAMILIES = {"real": ("float64", "float32"), "complex": ("complex128", "complex64"),
                  "int64": ("int64",)}
# The profile's examples per test, shared by the families: the total stays the profile's.
EXAMPLES = settings(max_examples=max(2, settings.default.max_examples // len(DTYPE_FAMILIES)))
INT64 = np.iinfo(np.int64)
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
TORCH_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                   "circular": "circular"}
# Shapes stay tiny: an example's cost is compiling every impl for its shapes.
CONV_KERNEL = {1: 5, 2: 4, 3: 3}  # largest kernel per axis
CONV_EXTRA = {1: 5, 2: 3, 3: 2}  # spatial size: the least PyTorch accepts, plus up to this
TRANSPOSE_KERNEL = {1: 4, 2: 3, 3: 3}
TRANSPOSE_SIZE = {1: 6, 2: 4, 3: 3}
MAX_PAD = 3


def _axis(v, i: int) -> int:
    return v[i] if isinstance(v, tuple) else v


def _has_pairs(padding) -> bool:
    return isinstance(padding, tuple) and any(isinstance(p, tuple) for p in padding)


def _pairs(padding, kernel, dilation) -> list[tuple[int, int]]:
    """Any padding form as (low, high) per axis ('same' puts the odd extra high)."""
    if _has_pairs(padding):
        return [p if isinstance(p, tuple) else (p, p) for p in padding]
    return padding_pairs(padding, kernel, tuple(_axis(dilation, i) for i in range(len(kernel))))


class FuzzConfig(verify.Config):
    """:class:`jaxconv.verify.Config` that also takes explicit (low, high) padding pairs."""

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return _pairs(self.padding, self.kernel, self.dilation)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """PyTorch's output-size formula, with ``low + high`` for ``2 * padding``."""
        out = []
        for i, (n, (lo, hi)) in enumerate(zip(self.spatial, self.pairs, strict=True)):
            k, s, d = self.kernel[i], _axis(self.stride, i), _axis(self.dilation, i)
            if self.kind == "conv":
                out.append((n + lo + hi - d * (k - 1) - 1) // s + 1)
            else:
                op = _axis(self.output_padding, i)
                out.append((n - 1) * s - lo - hi + d * (k - 1) + op + 1)
        lead = () if self.batch is None else (self.batch,)
        return (*lead, self.groups * self.group_out, *out)

    @property
    def padding_form(self) -> str:
        if isinstance(self.padding, str):
            return self.padding
        if isinstance(self.padding, int):
            return "int"
        return "pairs" if _has_pairs(self.padding) else "tuple"

    @property
    def groups_form(self) -> str:
        if self.groups == 1:
            return "dense"
        if self.group_in == 1:
            return "depthwise" if self.group_out == 1 else "depthwise x multiplier"
        return "grouped"


# --- strategies -------------------------------------------------------------------------

BATCHES = st.sampled_from((1, 2, None, 0))  # None: unbatched
SEEDS = st.integers(0, 2**32 - 1)
PAD = st.integers(0, MAX_PAD)


def _int_or_tuple(low: int, high: int, rank: int):
    return st.one_of(st.integers(low, high), st.tuples(*[st.integers(low, high)] * rank))


@st.composite
def _pairs_padding(draw, rank: int, room: list[int]):
    """Explicit padding, at least one axis a (low, high) pair, the others pairs or ints:
    each pad at most MAX_PAD, and ``low + high <= room`` per axis."""
    paired = draw(st.integers(0, rank - 1))
    padding = []
    for i, r in enumerate(room):
        if i != paired and draw(st.booleans()):  # a plain int among the pairs
            padding.append(draw(st.integers(0, min(MAX_PAD, r // 2))))
        else:
            lo = draw(st.integers(0, min(MAX_PAD, r)))
            padding.append((lo, draw(st.integers(0, min(MAX_PAD, r - lo)))))
    return tuple(padding)


@st.composite
def _channels(draw) -> tuple[int, int, int]:
    """(groups, in per group, out per group): dense, grouped, or depthwise x multiplier."""
    form = draw(st.sampled_from(("dense", "grouped", "depthwise")))
    if form == "dense":
        return 1, draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if form == "grouped":
        return draw(st.integers(2, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    return draw(st.integers(2, 4)), 1, draw(st.integers(1, 3))


@st.composite
def conv_configs(draw, mode: str, pairs: bool) -> FuzzConfig:
    """A conv in padding mode `mode` that PyTorch accepts, its padding explicit (low, high)
    pairs (mixed with ints) or else one of PyTorch's forms: each spatial size is drawn from
    the least that the kernel (``dilation * (kernel - 1) + 1 <= size + low + high``) and the
    mode (reflect: pad < size; circular: pad <= size) allow, up to a few more."""
    rank = draw(st.integers(1, 3))
    form = "pairs" if pairs else draw(st.sampled_from(("int", "tuple", "same", "valid")))
    kernel = draw(st.tuples(*[st.integers(1, CONV_KERNEL[rank])] * rank))
    dilation = draw(_int_or_tuple(1, 3, rank))
    stride = draw(_int_or_tuple(1, 1 if form == "same" else 3, rank))
    padding = draw({
        "int": PAD,
        "tuple": st.tuples(*[PAD] * rank),
        "pairs": _pairs_padding(rank, [2 * MAX_PAD] * rank),
        "same": st.just("same"),
        "valid": st.just("valid"),
    }[form])
    spatial = []
    for i, (lo, hi) in enumerate(_pairs(padding, kernel, dilation)):
        least = max(1, _axis(dilation, i) * (kernel[i] - 1) + 1 - lo - hi)
        if lo or hi:
            least = max(least, {"reflect": max(lo, hi) + 1, "circular": max(lo, hi)}.get(mode, 1))
        spatial.append(draw(st.integers(least, least + CONV_EXTRA[rank])))
    groups, group_in, group_out = draw(_channels())
    return FuzzConfig(0, "conv", rank, draw(BATCHES), groups, group_in, group_out,
                      tuple(spatial), kernel, stride, padding, dilation, mode, 0,
                      draw(st.booleans()), draw(SEEDS))


@st.composite
def transpose_configs(draw, pairs: bool) -> FuzzConfig:
    """A transposed conv that PyTorch accepts, its padding explicit (low, high) pairs
    (mixed with ints) or else an int or a tuple: output_padding < max(stride, dilation) per
    axis, and ``low + high <= (in - 1) * stride + dilation * (kernel - 1) + output_padding``
    so that the output size is positive."""
    rank = draw(st.integers(1, 3))
    kernel = draw(st.tuples(*[st.integers(1, TRANSPOSE_KERNEL[rank])] * rank))
    stride = draw(_int_or_tuple(1, 3, rank))
    dilation = draw(_int_or_tuple(1, 3, rank))
    output_padding = tuple(
        draw(st.integers(0, max(_axis(stride, i), _axis(dilation, i)) - 1)) for i in range(rank))
    if len(set(output_padding)) == 1 and draw(st.booleans()):
        output_padding = output_padding[0]
    spatial = draw(st.tuples(*[st.integers(1, TRANSPOSE_SIZE[rank])] * rank))
    room = [(n - 1) * _axis(stride, i) + _axis(dilation, i) * (kernel[i] - 1)
            + _axis(output_padding, i) for i, n in enumerate(spatial)]
    form = "pairs" if pairs else draw(st.sampled_from(("int", "tuple")))
    if form == "int":
        padding = draw(st.integers(0, min(MAX_PAD, *(r // 2 for r in room))))
    elif form == "tuple":
        padding = tuple(draw(st.integers(0, min(MAX_PAD, r // 2))) for r in room)
    else:
        padding = draw(_pairs_padding(rank, room))
    groups, group_in, group_out = draw(_channels())
    return FuzzConfig(0, "transpose", rank, draw(BATCHES), groups, group_in, group_out,
                      spatial, kernel, stride, padding, dilation, "zeros", output_padding,
                      draw(st.booleans()), draw(SEEDS))


# --- PyTorch and the comparison ---------------------------------------------------------


def _torch_pairs_results(torch, config: FuzzConfig, dtype: str) -> dict[str, np.ndarray]:
    """Explicit pairs, which PyTorch lacks: ``F.pad`` (in the padding mode) then
    ``F.convNd`` unpadded; ``F.conv_transposeNd`` unpadded, cropped by low and high."""
    F = torch.nn.functional
    tdtype, host = verify.torch_dtype(torch, dtype), verify.host_dtype(dtype)
    x, w, b, cot = (None if a is None else torch.from_numpy(np.array(a, host)).to(tdtype)
                    for a in config.arrays(dtype))
    for leaf in (x, w, b):
        if leaf is not None and cot is not None:  # integers: no cotangent, no gradients
            leaf.requires_grad_()
    rank, pairs = config.rank, config.pairs
    if config.kind == "conv":
        flat = [v for pair in reversed(pairs) for v in pair]  # F.pad: last axis first
        xp = F.pad(x, flat, mode=TORCH_PAD_MODES[config.padding_mode])
        y = getattr(F, f"conv{rank}d")(xp, w, b, config.stride, 0, config.dilation,
                                       config.groups)
    else:
        full = getattr(F, f"conv_transpose{rank}d")(x, w, b, config.stride, 0,
                                                    config.output_padding, config.groups,
                                                    config.dilation)
        crop = tuple(slice(lo, full.shape[i - rank] - hi) for i, (lo, hi) in enumerate(pairs))
        y = full[(..., *crop)]
    if cot is None:
        return {"output": y.numpy().astype(host)}
    y.backward(cot)
    out = {"output": y, "d_input": x.grad, "d_weight": w.grad}
    if b is not None:
        out["d_bias"] = b.grad
    return {q: v.detach().numpy().astype(host) for q, v in out.items()}


def _torch_results(torch, config: FuzzConfig, dtype: str) -> dict[str, np.ndarray]:
    if _has_pairs(config.padding):
        return _torch_pairs_results(torch, config, dtype)
    return verify.torch_results(torch, config, dtype)


def _events(config: FuzzConfig, dtype: str) -> None:
    """What the examples covered, for ``--hypothesis-show-statistics``."""
    event(dtype)
    event(f"rank {config.rank}")
    event(f"padding {config.padding_form}")
    if config.kind == "transpose":  # (a conv's mode is parametrized)
        event("output_padding > 0" if any(_axis(config.output_padding, i)
                                          for i in range(config.rank)) else "output_padding 0")
    event(f"groups {config.groups_form}")
    event("unbatched" if config.batch is None else f"batch {config.batch}")
    event("size 1 on some axis" if 1 in config.spatial else "sizes > 1")


def _check_against_torch(torch, config: FuzzConfig, dtype: str) -> None:
    call = f"{config.describe()} in {dtype}"
    note(call)
    _events(config, dtype)
    want = _torch_results(torch, config, dtype)
    results = verify.jax_results(config, IMPLS, dtype)
    rtol, atol = TOLERANCES[dtype]
    failures = []
    for impl in IMPLS:
        got = results[impl]
        if isinstance(got, str):
            failures.append(f"  {impl}: raised {got}")
            continue
        if got.keys() != want.keys():
            failures.append(f"  {impl}: quantities {sorted(got)}, torch {sorted(want)}")
            continue
        for q, b in want.items():
            a = got[q]
            if a.shape != b.shape:
                failures.append(f"  {impl:<6} {q:<8} shape {a.shape}, torch {b.shape}")
                continue
            err = verify.compare(a, b, rtol, atol)
            if not err.passed:
                worst = a != b if a.dtype == np.int64 else np.abs(a - b)  # ints: exact
                at = np.unravel_index(np.argmax(worst), a.shape)
                failures.append(
                    f"  {impl:<6} {q:<8} max|a - b| {err.max_abs:.3e} (rel {err.max_rel:.3e}, "
                    f"{err.ratio:.3g} x allowed); at {tuple(map(int, at))}: "
                    f"jaxconv {a[at].item()!r}, torch {b[at].item()!r}")
    if failures:
        raise AssertionError(f"{call} disagrees with PyTorch (rtol={rtol:g}, atol={atol:g}):\n"
                             + "\n".join(failures))


# One test per dtype family, padding mode, and PyTorch's padding forms apart from explicit
# pairs (they have their own PyTorch reference), so that even the CI profile's few examples
# cover each.
PAIRS = pytest.mark.parametrize("pairs", (False, True), ids=("torch_padding", "pairs"))
FAMILIES = pytest.mark.parametrize("family", list(DTYPE_FAMILIES))


@FAMILIES
@PAIRS
@pytest.mark.parametrize("mode", PADDING_MODES)
@EXAMPLES
@given(data=st.data())
def test_conv_matches_torch(torch, mode, pairs, family, data):
    dtype = data.draw(st.sampled_from(DTYPE_FAMILIES[family]), label="dtype")
    _check_against_torch(torch, data.draw(conv_configs(mode, pairs), label="config"), dtype)


@FAMILIES
@PAIRS
@EXAMPLES
@given(data=st.data())
def test_conv_transpose_matches_torch(torch, pairs, family, data):
    dtype = data.draw(st.sampled_from(DTYPE_FAMILIES[family]), label="dtype")
    _check_against_torch(torch, data.draw(transpose_configs(pairs), label="config"), dtype)


class WrappingConfig(FuzzConfig):
    """A config whose int64 data are drawn from the whole int64 range: nearly every
    product, and so every sum, overflows and wraps around."""

    def arrays(self, dtype: str):
        assert dtype == "int64", dtype
        rng = np.random.default_rng(self.seed)
        x_shape, w_shape, b_shape = self.shapes
        draw = lambda shape: jnp.asarray(
            rng.integers(INT64.min, INT64.max, shape, endpoint=True), jnp.int64)
        return draw(x_shape), draw(w_shape), None if b_shape is None else draw(b_shape), None


@pytest.mark.parametrize("kind", ("conv", "transpose"))
@EXAMPLES
@given(data=st.data())
def test_int64_wraps_around_as_pytorch(torch, kind, data):
    """int64 arithmetic is modulo 2**64 in XLA and in PyTorch's CPU kernels: whatever
    order an impl sums in, the wrapped result is the same, exactly."""
    pairs = data.draw(st.booleans(), label="pairs")
    if kind == "conv":
        mode = data.draw(st.sampled_from(PADDING_MODES), label="mode")
        config = data.draw(conv_configs(mode, pairs), label="config")
    else:
        config = data.draw(transpose_configs(pairs), label="config")
    config = WrappingConfig(**dataclasses.asdict(config))
    x, w, *_ = config.arrays("int64")
    # the products overflow: |x| |w| > 2**63 somewhere (unless an array is empty)
    assert x.size == 0 or float(np.abs(np.asarray(x, float)).max()) * float(
        np.abs(np.asarray(w, float)).max()) > 2.0**63
    _check_against_torch(torch, config, "int64")
