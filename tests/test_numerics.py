"""Half precision accumulates in float32: every impl, every kernel, against float64.

float16 and bfloat16 operands are multiplied and summed in float32 (the
accumulation dtype, ``jaxconv.impls._xla.accumulation_dtype``) and the result is
rounded once to the half type. Each output is a sum of ``K`` exact products
``t_k = a_k·b_k`` of half values (11- or 8-bit significands: every product is
exact in float32). With ``y = Σ t_k`` (computed here in float64 by PyTorch, from
the same half-rounded operands), ``u = 2⁻²⁴`` (float32) and ``u_h`` the half
type's unit roundoff (2⁻¹¹ float16, 2⁻⁸ bfloat16), a float32 sum in any order,
blocked, pairwise or fused, is within ``γ_K·Σ|t_k|`` of ``y`` (``γ_K = K·u / (1 -
K·u)``, Higham, *Accuracy and Stability of Numerical Algorithms*, §4.2), and the
final rounding adds ``u_h·|y|`` (plus half a subnormal spacing, ``η``)::

    |out - y| <= u_h·|y| + (1 + u_h)·γ_K·Σ|t_k| + η                       (BOUND)

Three data sets, one compilation:

- integers 0..3: every product and partial sum is an integer below 2²⁴, so a
  float32 accumulation is *exact* in any order and the output must be the
  correctly rounded ``y``, bit for bit (``|out - y| <= ½ ulp``); the sums are
  above 2¹¹ (and 2⁸), so a half accumulator rounds on the way.
- uniform [0, 1) (no cancellation, ``Σ|t_k| = y``): (BOUND) is
  ``(u_h + γ_K)·|y|``, 1.8 to 2.7 ``u_h`` in float16 (``K`` = 6912 to 13824
  here), 1.1 to 1.2 ``u_h`` in bfloat16: about one unit in the last place.
- standard normal (cancellation): (BOUND) as it stands.

Each kernel runs with ``K`` in the thousands: the forward ``F`` (256 input
channels x 3x3x3 taps), the input gradient ``T`` (512 output channels, a stride),
the weight gradient ``W`` (batch 16 x 4x12x12 positions, gather chunked under a
small memory budget) and ``conv_transpose`` (512 channels, dilation 2).
:func:`test_half_accumulation_would_fail` proves the check has teeth: the same
sums accumulated in the half type, one term at a time (30-250x over (BOUND)) or
pairwise (not bit-exact on the integers), break it, while a float32
accumulation in the worst (sequential) order does not.

Outside the kernels: with a padding mode the input gradient's border entries
are summed from their copies in float32 (the parts rounded by ``T``, then one
rounding); the bias is added in float32 and rounded once; its gradient ``Σ g``
accumulates in float32, like the kernels.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import jaxconv

IMPLS = ("lax", "gather", "shift", "fold", "auto")
U32 = 2.0**-24
# name: (dtype, unit roundoff u_h, half the smallest subnormal spacing η)
HALF = {
    "float16": (np.dtype(np.float16), 2.0**-11, 2.0**-25),
    "bfloat16": (np.dtype(ml_dtypes.bfloat16), 2.0**-8, 2.0**-134),
}
DATA = ("integers", "uniform", "normal")


@dataclasses.dataclass(frozen=True)
class Case:
    """One kernel as a bilinear map ``B(a, b)`` of 3-d operands (3-d: fold folds)."""

    kind: str  # "F", "T", "W" or "CT"
    a_shape: tuple[int, ...]
    b_shape: tuple[int, ...]
    other_shape: tuple[int, ...]  # T: the input's shape; W: the weight's
    stride: tuple[int, int, int] = (1, 1, 1)
    padding: int = 1
    dilation: int = 1
    max_terms: int = 0  # K: the longest sum

    def jaxconv_fn(self, impl: str) -> Callable:
        kw = dict(stride=self.stride, padding=self.padding, dilation=self.dilation, impl=impl)
        if self.kind == "F":  # a = x, b = w
            return lambda a, b: jaxconv.conv3d(a, b, **kw)
        if self.kind == "T":  # a = g, b = w: d input
            def t(a, b):
                x0 = jnp.zeros(self.other_shape, a.dtype)
                return jax.vjp(lambda x: jaxconv.conv3d(x, b, **kw), x0)[1](a)[0]
            return t
        if self.kind == "W":  # a = x, b = g: d weight
            def w(a, b):
                w0 = jnp.zeros(self.other_shape, a.dtype)
                return jax.vjp(lambda w: jaxconv.conv3d(a, w, **kw), w0)[1](b)[0]
            return w
        return lambda a, b: jaxconv.conv_transpose3d(a, b, **kw)  # a = input, b = w

    def torch_fn(self, torch) -> Callable:
        kw = dict(stride=self.stride, padding=self.padding, dilation=self.dilation)
        fn = torch.nn.functional
        return {
            "F": lambda a, b: fn.conv3d(a, b, **kw),
            "T": lambda a, b: torch.nn.grad.conv3d_input(self.other_shape, b, a, **kw),
            "W": lambda a, b: torch.nn.grad.conv3d_weight(a, self.other_shape, b, **kw),
            "CT": lambda a, b: fn.conv_transpose3d(a, b, **kw),
        }[self.kind]


CASES = {
    # y (1, 4, 3, 4, 4): K = 256 x 27 = 6912 inside, fewer at the borders.
    "F": Case("F", (1, 256, 3, 4, 4), (4, 256, 3, 3, 3), (), max_terms=6912),
    # dx (1, 4, 4, 8, 4) from g (1, 512, 4, 4, 4): stride 2 on H (fold's stride phases,
    # gather's strided col2im): K <= 512 x 3 x 2 x 3 = 9216.
    "T": Case("T", (1, 512, 4, 4, 4), (512, 4, 3, 3, 3), (1, 4, 4, 8, 4), stride=(1, 2, 1),
              max_terms=9216),
    # dw (4, 4, 3, 3, 3): K <= 16 x 4 x 12 x 12 = 9216 (batch x positions).
    "W": Case("W", (16, 4, 4, 12, 12), (16, 4, 4, 12, 12), (4, 4, 3, 3, 3), max_terms=9216),
    # (1, 512, 5, 5, 5) -> (1, 4, 5, 5, 5) with dilation 2: K <= 512 x 27 = 13824.
    "CT": Case("CT", (1, 512, 5, 5, 5), (512, 4, 3, 3, 3), (), padding=2, dilation=2,
               max_terms=13824),
}


@pytest.fixture(autouse=True)
def small_gather_budget():
    """256 KiB: gather splits W's batch of 16 into chunks of 2 (patches of ~122 KiB a sample),
    so its chunk sum is checked too; restored afterwards."""
    old = jaxconv.get_memory_budget()
    jaxconv.set_memory_budget(2**18)
    yield
    jaxconv.set_memory_budget(old)


def _operands(case: Case, data: str, half: np.dtype, seed: int):
    """``(a, b)`` drawn in float64 and rounded to `half` (so exact in float64 again)."""
    rng = np.random.default_rng(seed)

    def draw(shape):
        if data == "integers":
            v = rng.integers(0, 4, shape).astype(np.float64)
        elif data == "uniform":
            v = rng.uniform(0.0, 1.0, shape)
        else:
            v = rng.standard_normal(shape)
        return v.astype(half)

    return draw(case.a_shape), draw(case.b_shape)


def _reference(torch, case: Case, a: np.ndarray, b: np.ndarray):
    """``(y, Σ|t_k|)`` in float64 by PyTorch: the exact sum and the sum of |terms|."""
    fn = case.torch_fn(torch)
    a64, b64 = (torch.from_numpy(v.astype(np.float64)) for v in (a, b))
    y = fn(a64, b64).numpy()
    abs_sum = fn(a64.abs(), b64.abs()).numpy()
    return y, abs_sum


def _gamma(k: int) -> float:
    return k * U32 / (1 - k * U32)


def _bound(y: np.ndarray, abs_sum: np.ndarray, k: int, dtype: str) -> np.ndarray:
    """(BOUND) of the module docstring."""
    _, u_h, eta = HALF[dtype]
    return u_h * np.abs(y) + (1 + u_h) * _gamma(k) * abs_sum + eta


def _check(out: np.ndarray, y: np.ndarray, abs_sum: np.ndarray, case: Case, dtype: str,
           data: str, what: str) -> None:
    half = HALF[dtype][0]
    got = out.astype(np.float64)
    if data == "integers":
        assert y.max() > 2**11, "the sums must need more bits than a half significand holds"
        assert y.max() < 6e4, "and stay finite in float16"
        want = y.astype(half).astype(np.float64)  # y < 2**24 is exact in float32: one rounding
        bad = got != want
        assert not bad.any(), (
            f"{what}: {bad.sum()} of {bad.size} outputs are not the correctly rounded sum, "
            f"e.g. {got[bad][:3]} instead of {want[bad][:3]} (exact {y[bad][:3]})"
        )
    err, bound = np.abs(got - y), _bound(y, abs_sum, case.max_terms, dtype)
    worst = np.unravel_index(np.argmax(err / bound), err.shape)
    assert np.all(err <= bound), (
        f"{what}: |out - y| = {err[worst]:.4g} > bound {bound[worst]:.4g} at {worst} "
        f"(y = {y[worst]:.6g}, out = {got[worst]:.6g})"
    )


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("impl", IMPLS)
def test_half_accumulates_in_float32(torch, impl, kind, dtype):
    """Output of F / T / W / conv_transpose in a half type vs its float64 sum, on three
    data sets (one compilation): bit-exact on integers, (BOUND) everywhere."""
    case, half = CASES[kind], HALF[dtype][0]
    fn = jax.jit(case.jaxconv_fn(impl))
    for seed, data in enumerate(DATA):
        a, b = _operands(case, data, half, seed)
        out = np.asarray(fn(jnp.asarray(a), jnp.asarray(b)))
        assert out.dtype == half
        y, abs_sum = _reference(torch, case, a, b)
        assert out.shape == y.shape
        _check(out, y, abs_sum, case, dtype, data, f"{impl} {kind} {dtype} {data}")


# --- reflect / replicate / circular: the pre-pad's adjoint folds border gradients back ----

@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("impl", IMPLS)
def test_padding_mode_input_gradient(torch, impl, dtype, mode):
    """With a padding mode the input gradient is ``T`` on the padded input, whose border
    rows the pad's adjoint adds onto their sources, in float32 (jaxconv pads half
    inputs in float32): an entry with ``m`` copies in the padded input (``m = 1``
    inside) is a sum of ``m`` parts rounded by ``T``, added exactly and rounded once
    more. On non-negative integers (float32 sums exact) the entries inside are
    correctly rounded and the others within ``2·u_h·|dx|`` (the parts' roundings sum
    to at most ``u_h·|dx|``), whatever ``m``; summed in the half type it was up to
    ``m·u_h``."""
    half, u_h, _ = HALF[dtype]
    rng = np.random.default_rng(4)
    x = rng.integers(0, 4, (2, 4, 6, 7)).astype(half)
    w = rng.integers(0, 4, (256, 4, 3, 3)).astype(half)
    g = rng.integers(0, 4, (2, 256, 6, 7)).astype(half)
    conv = functools.partial(jaxconv.conv2d, padding=1, padding_mode=mode, impl=impl)
    dx = jax.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])(x, w, g)
    dx = np.asarray(dx).astype(np.float64)

    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    padded = torch.nn.functional.pad(xt, (1, 1, 1, 1), mode=mode)
    y = torch.nn.functional.conv2d(padded, torch.from_numpy(w.astype(np.float64)))
    (exact,) = torch.autograd.grad(y, xt, torch.from_numpy(g.astype(np.float64)))
    exact = exact.numpy()
    assert exact.max() > 2**11

    # m: how often each input position appears in the padded input (NumPy's own pad).
    copies = [np.bincount(np.pad(np.arange(n), 1, mode={"reflect": "reflect",
                                                        "replicate": "edge",
                                                        "circular": "wrap"}[mode]),
                          minlength=n) for n in x.shape[2:]]
    m = copies[0][:, None] * copies[1][None, :]
    inside = np.broadcast_to(m == 1, dx.shape)
    np.testing.assert_array_equal(dx[inside], exact[inside].astype(half).astype(np.float64))
    bound = (np.minimum(m, 2) * u_h + _gamma(256 * 9)) * np.abs(exact)
    assert np.all(np.abs(dx - exact) <= bound), np.max(np.abs(dx - exact) / bound)


# --- the bias: added to the rounded output; its gradient is a sum over batch x positions ---

def _bias_case(kind: str, half: np.dtype):
    """Integer operands (exact sums): 128 channels x 3x3 to 4 (``y`` ~ 2600, above 2¹¹),
    batch 16 x 32x32 (``db = Σ g`` over 16384 terms)."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, (16, 128, 32, 32)).astype(half)
    w = rng.integers(0, 4, (4, 128, 3, 3) if kind == "conv" else (128, 4, 3, 3)).astype(half)
    b = rng.integers(-64, 64, (4,)).astype(half)
    g = rng.integers(0, 4, (16, 4, 32, 32)).astype(half)
    fn = jaxconv.conv2d if kind == "conv" else jaxconv.conv_transpose2d
    return x, w, b, g, functools.partial(fn, padding=1, impl="auto")


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("kind", ["conv", "conv_transpose"])
def test_bias_is_added_with_at_most_one_more_rounding(torch, kind, dtype):
    """``y + b`` is the correctly rounded sum, or (the bias being added to the kernel's
    half-rounded output) the rounded ``y`` plus ``b``, rounded: never further off."""
    half = HALF[dtype][0]
    x, w, b, _, fn = _bias_case(kind, half)
    out = np.asarray(jax.jit(fn)(x, w, b)).astype(np.float64)
    torch_fn = (torch.nn.functional.conv2d if kind == "conv"
                else torch.nn.functional.conv_transpose2d)
    y = torch_fn(*(torch.from_numpy(v.astype(np.float64)) for v in (x, w)), padding=1).numpy()
    b64 = b.astype(np.float64).reshape(-1, 1, 1)
    assert y.max() > 2**11
    once = (y + b64).astype(half).astype(np.float64)
    twice = (y.astype(half).astype(np.float64) + b64).astype(half).astype(np.float64)
    assert np.all((out == once) | (out == twice))


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("kind", ["conv", "conv_transpose"])
def test_bias_gradient_accumulates_in_float32(kind, dtype):
    """``db = Σ_{n, p} g`` (16384 integer terms, exact in float32) is correctly rounded."""
    half = HALF[dtype][0]
    x, w, b, g, fn = _bias_case(kind, half)
    db = jax.jit(lambda x, w, b, g: jax.vjp(fn, x, w, b)[1](g)[2])(x, w, b, g)
    want = g.astype(np.float64).sum(axis=(0, 2, 3))
    assert want.min() > 2**14  # far above 2**11: a half accumulator rounds on the way
    np.testing.assert_array_equal(np.asarray(db).astype(np.float64),
                                  want.astype(half).astype(np.float64))


# --- the check has teeth: half accumulation fails it, float32 accumulation passes -----------

def _terms(torch, case: Case, a: np.ndarray, b: np.ndarray,
           rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``(terms, index)``: the ``(rows, K)`` products ``t_k`` (float64, exact) summed into
    the `rows` outputs with the most terms, and those outputs' flat indices. ``B`` is linear
    in ``a`` and every (output, entry of a) pair meets through one tap, so row ``j`` of
    ``∂B/∂a`` times ``a`` holds the terms."""
    fn = case.torch_fn(torch)
    a64 = torch.tensor(a.astype(np.float64), requires_grad=True)
    b64 = torch.from_numpy(b.astype(np.float64))
    y = fn(a64, b64).reshape(-1)
    counts = fn(torch.ones_like(a64), torch.ones_like(b64)).reshape(-1)
    chosen = torch.argsort(counts, descending=True)[:rows]
    jac = np.stack([torch.autograd.grad(y[j], a64, retain_graph=True)[0].reshape(-1).numpy()
                    for j in chosen])
    terms = jac * a.astype(np.float64).reshape(1, -1)
    # Move each row's nonzero terms to its front, in order; the zero tail sums exactly.
    order = np.argsort(jac == 0, axis=1, kind="stable")
    terms = np.take_along_axis(terms, order, axis=1)
    k = int((jac != 0).sum(axis=1).max())
    assert k <= case.max_terms
    return terms[:, :k], chosen.numpy()


def _sequential(terms: np.ndarray, acc_dtype: np.dtype) -> np.ndarray:
    """``acc = fl(acc + t_k)`` one term at a time, ``fl`` rounding to `acc_dtype`."""
    acc = np.zeros(terms.shape[0], acc_dtype)
    for k in range(terms.shape[1]):
        acc = (acc.astype(np.float64) + terms[:, k]).astype(acc_dtype)
    return acc


def _pairwise(terms: np.ndarray, acc_dtype: np.dtype) -> np.ndarray:
    """The tree sum ``fl(s_left + s_right)``, every node rounded to `acc_dtype`."""
    width = 1 << (terms.shape[1] - 1).bit_length()
    t = np.pad(terms, ((0, 0), (0, width - terms.shape[1])))
    while t.shape[1] > 1:
        t = (t[:, ::2].astype(np.float64) + t[:, 1::2].astype(np.float64)).astype(acc_dtype)
    return t[:, 0]


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("kind", CASES)
def test_half_accumulation_would_fail(torch, kind, dtype):
    """The same sums (64 longest outputs) accumulated in the half type, sequentially or
    pairwise, break the check of :func:`test_half_accumulates_in_float32`; accumulated in
    float32, even sequentially (the worst order), and rounded once, they pass it."""
    case, half = CASES[kind], HALF[dtype][0]
    for seed, data in enumerate(DATA[:2]):
        a, b = _operands(case, data, half, seed)
        y, abs_sum = _reference(torch, case, a, b)
        terms, rows = _terms(torch, case, a, b, rows=64)
        y, abs_sum = y.reshape(-1)[rows], abs_sum.reshape(-1)[rows]
        np.testing.assert_allclose(terms.sum(axis=1), y, rtol=1e-12)

        f32 = _sequential(terms, np.dtype(np.float32)).astype(half)
        _check(f32, y, abs_sum, case, dtype, data, f"float32 accumulation {kind} {dtype}")

        # Sequential: 30-250x over (BOUND). Pairwise (log2 K roundings) can stay inside
        # (BOUND)'s slack, but not bit-exact on the integers.
        accumulators = [_sequential] + ([_pairwise] if data == "integers" else [])
        for accumulate in accumulators:
            out = accumulate(terms, half)
            with pytest.raises(AssertionError):
                _check(out, y, abs_sum, case, dtype, data, f"half accumulation {kind}")
