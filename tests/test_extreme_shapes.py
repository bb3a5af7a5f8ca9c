"""Shapes at the edges, every impl, forward and gradients against PyTorch (float64).

Kernels as large as the padded input (one output position), size-1 spatial
axes in every padding mode PyTorch allows there (and its errors where it does
not), thousands of channels at 1x1, a 1-d signal of 2**20 samples, and the
gather impl's batch chunking, whose peak memory is measured from XLA's memory
analysis of the compiled program, not assumed.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv

IMPLS = ("lax", "gather", "shift", "fold", "auto")


def _draw(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def _pairs(padding, kernel, dilation):
    """PyTorch's padding (int, tuple, 'same', or jaxconv's (low, high) pairs) as pairs."""
    rank = len(kernel)
    dilation = (dilation,) * rank if isinstance(dilation, int) else dilation
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in totals]
    padding = (padding,) * rank if isinstance(padding, int) else padding
    return [p if isinstance(p, tuple) else (p, p) for p in padding]


def _torch_vjp(torch, x, w, b, *, transpose=False, padding_mode="zeros", **kw):
    """``(cotangent, [y, dx, dw, db])`` of ``torch.nn.functional.conv*d`` (or
    ``conv_transpose*d``) in float64 for a random cotangent. A convolution's padding is
    applied as ``nn.ConvNd`` does it: ``F.pad`` with the mode, then no padding."""
    rank = w.ndim - 2
    fn = getattr(torch.nn.functional, f"conv_transpose{rank}d" if transpose else f"conv{rank}d")
    xt, wt, bt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    if transpose:
        y = fn(xt, wt, bt, **kw)
    else:
        pairs = _pairs(kw.pop("padding", 0), w.shape[2:], kw.get("dilation", 1))
        pads = [q for pair in reversed(pairs) for q in pair]
        mode = "constant" if padding_mode == "zeros" else padding_mode
        y = fn(torch.nn.functional.pad(xt, pads, mode=mode), wt, bt, **kw)
    (cot,) = _draw([tuple(y.shape)], seed=7)
    grads = torch.autograd.grad(y, (xt, wt, bt), torch.from_numpy(cot))
    return cot, [y.detach().numpy(), *(g.numpy() for g in grads)]


def _jaxconv_vjp(x, w, b, cot, *, impl, transpose=False, dtype=jnp.float64, **kw):
    """``[y, dx, dw, db]`` of jaxconv under jit (hand-written gradients), as float64."""
    fn = jaxconv.conv_transpose if transpose else jaxconv.conv

    @jax.jit
    def run(x, w, b, cot):
        y, vjp = jax.vjp(lambda x, w, b: fn(x, w, b, **kw, impl=impl), x, w, b)
        return (y, *vjp(cot))

    return [np.asarray(a, np.float64)
            for a in run(*(jnp.asarray(a, dtype) for a in (x, w, b, cot)))]


_REFERENCES: dict = {}


def _reference(torch, x_shape, w_shape, dtype, seed, kw):
    """``(x, w, b, cotangent, [y, dx, dw, db])``: operands rounded to `dtype` and PyTorch's
    float64 results, computed once per configuration (shared by the impls)."""
    key = (x_shape, w_shape, jnp.dtype(dtype).name, seed, repr(sorted(kw.items())))
    if key not in _REFERENCES:
        transpose = kw.get("transpose", False)
        b_shape = (w_shape[1] * kw.get("groups", 1),) if transpose else (w_shape[0],)
        x, w, b = (np.asarray(jnp.asarray(a, dtype), np.float64)
                   for a in _draw([x_shape, w_shape, b_shape], seed))
        cot, want = _torch_vjp(torch, x, w, b, **kw)
        while len(_REFERENCES) >= 3:  # the grids run the impls of one case one after another
            del _REFERENCES[next(iter(_REFERENCES))]
        _REFERENCES[key] = (x, w, b, cot, want)
    return _REFERENCES[key]


def _compare(torch, x_shape, w_shape, *, impl, rtol=1e-10, dtype=jnp.float64, seed=0, **kw):
    """jaxconv's output and VJP against PyTorch's on the same (dtype-rounded) values;
    returns the output's shape."""
    x, w, b, cot, want = _reference(torch, x_shape, w_shape, dtype, seed, kw)
    got = _jaxconv_vjp(x, w, b, cot, impl=impl, dtype=dtype, **kw)
    for name, g, t in zip(("output", "d_input", "d_weight", "d_bias"), got, want, strict=True):
        assert g.shape == t.shape, (name, g.shape, t.shape)
        scale = 1.0 + np.abs(t).max(initial=0.0)
        np.testing.assert_allclose(g, t, rtol=rtol, atol=rtol * scale, err_msg=f"{impl}: {name}")
    return want[0].shape


# --- a kernel as large as the padded input: one output position ------------------------------

LARGE_KERNELS = {
    # id: (x shape, w shape, kwargs, output spatial)
    # (kernels of at most ~20 taps: the shift impl unrolls them and compiles slowly)
    "2d-zeros-pad1": ((2, 3, 2, 3), (4, 3, 4, 5), dict(padding=1), (1, 1)),
    "2d-reflect-stride3": ((2, 3, 3, 2), (4, 3, 5, 2),
                           dict(padding=(1, 0), stride=3, padding_mode="reflect"), (1, 1)),
    "2d-circular-pairs": ((2, 3, 3, 4), (4, 3, 4, 6),
                          dict(padding=((1, 0), (2, 0)), padding_mode="circular"), (1, 1)),
    "2d-dilated-grouped": ((2, 6, 5, 7), (4, 3, 3, 4), dict(dilation=2, stride=2, groups=2),
                           (1, 1)),
    "1d-replicate": ((2, 3, 9), (4, 3, 13), dict(padding=2, padding_mode="replicate"), (1,)),
    "3d-zeros": ((1, 2, 1, 2, 3), (3, 2, 3, 2, 3), dict(padding=(1, 0, 0)), (1, 1, 1)),
    "3d-depthwise-valid": ((2, 4, 3, 2, 2), (8, 1, 3, 2, 2), dict(groups=4), (1, 1, 1)),
}


@pytest.mark.parametrize("impl", IMPLS)  # fastest: one PyTorch reference per case
@pytest.mark.parametrize("case", LARGE_KERNELS)
def test_kernel_as_large_as_padded_input(torch, impl, case):
    x_shape, w_shape, kw, out_spatial = LARGE_KERNELS[case]
    assert _compare(torch, x_shape, w_shape, impl=impl, **kw)[2:] == out_spatial


@pytest.mark.parametrize("impl", IMPLS)
def test_kernel_larger_than_padded_input_raises(torch, impl):
    """One row more than fits: PyTorch refuses it, and so does jaxconv, up front."""
    x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 8, 3))
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1)
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.conv2d: padded input size (7, 7) is smaller than the dilated kernel size "
            "(8, 3)")):
        jax.jit(lambda x, w: jaxconv.conv2d(x, w, padding=1, impl=impl))(x, w)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_transpose_of_one_position(torch, impl):
    """A 1x1 input: the output is the kernel's footprint (weights scaled per sample)."""
    shape = _compare(torch, (2, 4, 1, 1), (4, 3, 5, 6), impl=impl, transpose=True)
    assert shape == (2, 3, 5, 6)
    shape = _compare(torch, (2, 4, 1, 1, 1), (4, 1, 2, 3, 4), impl=impl, transpose=True,
                     stride=3, padding=(0, 1, 1), groups=2, output_padding=(2, 0, 1))
    assert shape == (2, 2, 4, 1, 3)


# --- size-1 spatial axes in every padding mode ---------------------------------------------

SIZE_ONE = {
    # id: (x shape, w shape, kwargs). Reflect needs pad < size (pad 0 at size 1);
    # circular pad <= size; replicate and zeros any pad.
    "zeros-pad2": ((2, 3, 1, 1), (4, 3, 3, 3), dict(padding=2)),
    "reflect-pad0": ((2, 3, 1, 1), (4, 3, 1, 1), dict(padding=0, padding_mode="reflect")),
    "reflect-pad0-long-axis": ((2, 3, 1, 6), (4, 3, 1, 3),
                               dict(padding=(0, 2), padding_mode="reflect")),
    "circular-pad1": ((2, 3, 1, 1), (4, 3, 3, 3), dict(padding=1, padding_mode="circular")),
    "circular-same": ((2, 3, 1, 1), (4, 3, 3, 2), dict(padding="same", padding_mode="circular")),
    "replicate-same-dilated": ((2, 3, 1, 1), (4, 3, 3, 3),
                               dict(padding="same", dilation=2, padding_mode="replicate")),
    "1d-circular-grouped-stride": ((2, 4, 1), (6, 2, 3), dict(padding=1, groups=2, stride=2,
                                                              padding_mode="circular")),
    "3d-replicate-mixed": ((1, 2, 1, 3, 1), (3, 2, 2, 3, 3),
                           dict(padding=(3, 1, 2), padding_mode="replicate")),
}


@pytest.mark.parametrize("impl", IMPLS)  # fastest: one PyTorch reference per case
@pytest.mark.parametrize("case", SIZE_ONE)
def test_size_one_spatial(torch, impl, case):
    x_shape, w_shape, kw = SIZE_ONE[case]
    _compare(torch, x_shape, w_shape, impl=impl, **kw)


@pytest.mark.parametrize("mode, padding, message", [
    ("reflect", 1, r"reflect padding \(1, 1\) at dimension 2 must be less than that input "
                   r"size \(1\)"),
    ("reflect", "same", r"reflect padding \(2, 2\) at dimension 2 must be less than that "
                        r"input size \(1\)"),
    ("circular", 2, r"circular padding \(2, 2\) at dimension 2 wraps around more than once"),
])
def test_size_one_illegal_padding_raises(torch, mode, padding, message):
    """Where PyTorch refuses the pad at size 1, jaxconv raises a ValueError first, before
    anything is traced (under jit too), naming the pad, the axis and the size."""
    x, w = np.ones((2, 3, 1, 1)), np.ones((4, 3, 5, 5))
    module = torch.nn.Conv2d(3, 4, 5, padding=padding, padding_mode=mode).double()
    with pytest.raises(RuntimeError):
        module(torch.from_numpy(x))
    for impl in IMPLS:
        f = jax.jit(lambda x, w, impl=impl: jaxconv.conv2d(x, w, padding=padding,
                                                           padding_mode=mode, impl=impl))
        with pytest.raises(ValueError, match=rf"jaxconv\.conv2d: {message}"):
            f(jnp.asarray(x), jnp.asarray(w))


# --- thousands of channels at 1x1 spatial ----------------------------------------------------

WIDE = {
    # id: (x shape, w shape, kwargs), float32
    "1x1-2048-2048": ((2, 2048, 1, 1), (2048, 2048, 1, 1), {}),
    "3x3-pad1-2048-256": ((2, 2048, 1, 1), (256, 2048, 3, 3), dict(padding=1)),
    "3x3-pad1-groups32": ((2, 2048, 1, 1), (2048, 64, 3, 3), dict(padding=1, groups=32)),
    "3x3-depthwise-2048": ((2, 2048, 1, 1), (2048, 1, 3, 3), dict(padding=1, groups=2048)),
    "3x3-circular-stride2": ((1, 2048, 1, 1), (64, 2048, 3, 3),
                             dict(padding=1, stride=2, padding_mode="circular")),
    "transpose-2048-256": ((2, 2048, 1, 1), (2048, 256, 3, 3),
                           dict(transpose=True, stride=2)),
}


@pytest.mark.parametrize("impl", IMPLS)  # fastest: one PyTorch reference per case
@pytest.mark.parametrize("case", WIDE)
def test_thousands_of_channels_at_1x1(torch, impl, case):
    """float32 against float64 on the same values: sums of up to 2048 x 9 terms, so the
    tolerance is 1e-5 relative to the largest entry (float32 rounding is ~1e-7 per term)."""
    x_shape, w_shape, kw = WIDE[case]
    _compare(torch, x_shape, w_shape, impl=impl, dtype=jnp.float32, rtol=1e-5, **kw)


# --- a 1-d signal of 2**20 samples -----------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kw", [dict(padding=4),
                                dict(stride=3, dilation=5, padding=((7, 2),), groups=2,
                                     padding_mode="reflect")],
                         ids=["k9-pad4", "reflect-stride3-dilation5-grouped"])
@pytest.mark.exhaustive  # slow (quick-tier budget); its neighbours cover the same code
def test_long_signal(torch, impl, kw):
    """(1, 2, 2**20) -> 2 or 4 channels, float64: every weight-gradient entry is a sum over
    up to a million positions."""
    w_shape = (4, 1, 9) if kw.get("groups") == 2 else (2, 2, 9)
    _compare(torch, (1, 2, 2**20), w_shape, impl=impl, **kw)


# --- gather's batch chunking: measured peak memory ------------------------------------------

def _temp_bytes(f, *args) -> int:
    """Bytes of XLA temporaries of the compiled `f` (arguments and outputs excluded).

    The budget is read when a convolution is traced and jaxconv's jitted cores keep
    their traces, so the caches are cleared first."""
    jax.clear_caches()
    return jax.jit(f).lower(*args).compile().memory_analysis().temp_size_in_bytes


@pytest.fixture
def budget():
    """Set the gather memory budget for one test; the old value (and fresh traces) after."""
    old = jaxconv.get_memory_budget()
    yield jaxconv.set_memory_budget
    jaxconv.set_memory_budget(old)
    jax.clear_caches()


def _loss_grads(impl, **kw):
    def f(x, w):
        return jax.grad(lambda x, w: jnp.sum(jaxconv.conv2d(x, w, **kw, impl=impl) ** 2),
                        argnums=(0, 1))(x, w)
    return f


# 65 samples of 16 channels, 32x32, float64, a 3x3 kernel with padding 1. One sample's
# largest gather tensor (its patches): 16 channels x (32·3)² x 8 bytes = 1.125 MiB, so a
# 4 MiB budget gives chunks of 3 samples and a tail of 2.
CHUNKED = dict(x=(65, 16, 32, 32), w=(16, 16, 3, 3))
PER_SAMPLE = 16 * (32 * 3) ** 2 * 8
SMALL = 2**16  # weight-sized buffers and scalars


@pytest.mark.parametrize("stage", ["forward", "forward+grads"])
def test_gather_chunks_within_budget(budget, stage):
    """Gather's compiled program under a 4 MiB budget, measured: the forward holds at most
    the budget plus one activation-sized buffer (the outputs ``lax.map`` stacks); with the
    gradients, twice the budget (a chunk's patches and their gradient) plus three (the
    output, its cotangent and the stacked input gradient). Unchunked (the default 256 MiB)
    it holds the whole batch's patches, more than 3x either bound. The results (chunks,
    tail, the weight gradient's chunk sum) equal lax's."""
    x, w = (jnp.asarray(a) for a in _draw([CHUNKED["x"], CHUNKED["w"]]))
    act = x.nbytes  # the input, the output, the gradients: all (65, 16, 32, 32) float64
    limit = 2**22

    def fn(impl):
        if stage == "forward":
            return lambda x, w: jaxconv.conv2d(x, w, padding=1, impl=impl)
        return _loss_grads(impl, padding=1)

    bound = (limit + act if stage == "forward" else 2 * limit + 3 * act) + SMALL
    budget(256 * 2**20)
    unchunked = _temp_bytes(fn("gather"), x, w)
    assert unchunked > 65 * PER_SAMPLE  # the whole batch's patches
    assert unchunked > 3 * bound  # so the bound is not vacuous
    budget(limit)
    chunked = _temp_bytes(fn("gather"), x, w)
    assert chunked <= bound, (chunked, bound)
    got, want = jax.jit(fn("gather"))(x, w), jax.jit(fn("lax"))(x, w)
    for g, t in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, t, rtol=1e-10, atol=1e-10 * (1 + np.abs(t).max()))


def test_gather_sample_larger_than_budget(budget):
    """A single sample is never split (documented): under a 1-byte budget every chunk is
    one sample, whose patches exceed the budget; the program then holds one sample's
    patches (and their gradient) plus the activation-sized buffers, and equals lax."""
    x, w = (jnp.asarray(a) for a in _draw([(7, 16, 32, 32), CHUNKED["w"]]))
    budget(1)
    temp = _temp_bytes(_loss_grads("gather", padding=1), x, w)
    bound = 2 * PER_SAMPLE + 3 * x.nbytes + SMALL
    assert temp <= bound, (temp, bound)
    got = jax.jit(_loss_grads("gather", padding=1))(x, w)
    want = jax.jit(_loss_grads("lax", padding=1))(x, w)
    for g, t in zip(got, want, strict=True):
        np.testing.assert_allclose(g, t, rtol=1e-10, atol=1e-10 * (1 + np.abs(t).max()))


def test_budget_change_applies_to_shapes_traced_before(budget):
    x, w = (jnp.asarray(a) for a in _draw([CHUNKED["x"], CHUNKED["w"]]))

    def temp(f):
        return jax.jit(f).lower(x, w).compile().memory_analysis().temp_size_in_bytes

    budget(256 * 2**20)
    jax.clear_caches()
    unchunked = temp(lambda x, w: jaxconv.conv2d(x, w, padding=1, impl="gather"))
    budget(2**22)
    chunked = temp(lambda x, w: jaxconv.conv2d(x, w, padding=1, impl="gather"))  # new wrapper
    assert chunked <= 2**22 + x.nbytes + SMALL < unchunked, (chunked, unchunked)


@pytest.mark.parametrize("out, kernel, stride, dilation",
                         [(5, 3, 3, 2), (1, 4, 1, 3), (0, 2, 1, 1), (4, 1, 4, 1), (3, 3, 1, 1)])
def test_take_windows_matches_take(out, kernel, stride, dilation):
    """The strided-slice im2col that gather uses on axes indexed past int32 reads what the
    gather reads (checked here at small sizes, where both apply)."""
    from jaxconv.impls.gather import take_windows, window_indices

    x = jnp.arange(2 * 3 * 17.0).reshape(2, 3, 17)
    idx = window_indices(out, kernel, stride, dilation)
    got = take_windows(x, idx, axis=2)
    want = np.take(np.asarray(x), idx, axis=2)
    assert got.shape == want.shape == (2, 3, out, kernel)
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("rank, stride", [(1, 1), (1, 3), (2, 2)])
def test_gather_slices_axes_past_int32(monkeypatch, rank, stride):
    """im2col slices an axis longer than int32 can index (take_windows) instead of
    gathering it. With the threshold lowered to 3, every axis here takes that path: the
    gather impl's output and gradients must still be lax's."""
    from jaxconv import _conv
    from jaxconv.impls import gather

    rng = np.random.default_rng(rank * 10 + stride)
    x = rng.standard_normal((2, 4, *(9,) * rank))
    w = rng.standard_normal((6, 2, *(3,) * rank))
    kw = dict(stride=stride, padding=1, dilation=(2,) + (1,) * (rank - 1), groups=2)

    def run(impl):
        y, vjp = jax.vjp(lambda x, w: jaxconv.conv(x, w, **kw, impl=impl), x, w)
        return y, *vjp(np.cos(np.arange(y.size)).reshape(y.shape))

    want = run("lax")
    calls = []
    monkeypatch.setattr(gather, "_INT32_MAX", 3)
    monkeypatch.setattr(gather, "take_windows",
                        lambda *a, f=gather.take_windows: calls.append(1) or f(*a))
    _conv.conv_core.clear_cache()
    try:
        got = run("gather")
    finally:
        _conv.conv_core.clear_cache()
    assert calls, "im2col never took the sliced path"
    for g, w_ in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w_), rtol=1e-10, atol=1e-10)
