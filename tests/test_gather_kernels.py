"""The gather, shift and fold kernels against the lax kernels and autodiff; gather's jaxpr
and its memory budget."""

from __future__ import annotations

import itertools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import ClosedJaxpr, Jaxpr

import jaxconv
from jaxconv.impls import fold as _fold
from jaxconv.impls import gather as _gather
from jaxconv.impls import lax as _lax
from jaxconv.impls import shift as _shift

PEERS = {"gather": _gather, "shift": _shift, "fold": _fold}

# (groups, C_in, C_out): plain, two groups, depthwise with channel multiplier 2.
GROUPINGS = ((1, 3, 2), (2, 4, 6), (3, 3, 6))
# Per-axis (lo, hi) zero padding, asymmetric pairs included.
PADDINGS = (((0, 0),) * 3, ((1, 1), (2, 0), (0, 3)), ((2, 0), (0, 3), (1, 1)))
KERNELS = {1: (3,), 2: (3, 2), 3: (2, 3, 2)}
SPATIAL = {1: (8,), 2: (7, 6), 3: (5, 6, 5)}


def _cases():
    """20 cases: every (rank, stride, dilation), twice for ranks 1 and 2 (3 is slow to
    compile); groupings x paddings cycle through all 9 pairs; every other case has
    per-axis strides (e.g. (2, 1)); some zero batches."""
    cases = []
    combos = [(r, s, d, t) for r, s, d, t in itertools.product((1, 2, 3), (1, 2), (1, 2), range(2))
              if r < 3 or t == 0]
    for k, (rank, s, dilation, _) in enumerate(combos):
        groups, c_in, c_out = GROUPINGS[k % 3]
        pads = PADDINGS[(k // 3) % 3][:rank]
        stride = (s,) * rank if k % 2 == 0 else (s, 3 - s, s)[:rank]
        batch = 0 if k % 5 == 4 else 2
        cases.append((rank, batch, stride, dilation, groups, c_in, c_out, pads))
    return cases


CASES = _cases()


def _spec(rank, stride, dilation, groups, pads):
    stride = (stride,) * rank if isinstance(stride, int) else stride
    return jaxconv.ConvSpec(rank=rank, stride=stride, padding=pads,
                            dilation=(dilation,) * rank, groups=groups,
                            padding_mode="zeros", impl="gather")


def _case_id(case):
    rank, batch, stride, dilation, groups, _, _, pads = case
    return f"{rank}d-n{batch}-s{stride}-d{dilation}-g{groups}-p{pads}".replace(" ", "")


def _stride_remainders(case):
    rank, _, stride, dilation, groups, _, _, pads = case
    spec = _spec(rank, stride, dilation, groups, pads)
    return [(n + lo + hi - dilation * (k - 1) - 1) % s
            for n, (lo, hi), k, s in zip(SPATIAL[rank], pads, KERNELS[rank], spec.stride,
                                         strict=True)]


def test_grid_covers_strides_that_do_not_divide():
    assert any(any(_stride_remainders(c)) for c in CASES)
    assert any(c[1] == 0 for c in CASES)
    assert {(c[4], c[7][0]) for c in CASES} == {(g, p[0]) for g, _, _ in GROUPINGS
                                                for p in PADDINGS}


def _arrays(rank, batch, c_in, c_out, groups, spec, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c_in, *SPATIAL[rank])).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups, *KERNELS[rank])).astype(dtype)
    out = spec.output_spatial(SPATIAL[rank], KERNELS[rank])
    g = rng.standard_normal((batch, c_out, *out)).astype(dtype)
    return jnp.asarray(x), jnp.asarray(w), jnp.asarray(g)


def _close(actual, expected, atol=1e-10):
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=0, atol=atol)


def _gather_and_lax(spec, reference_dtype=None, impl=_gather):
    """A freshly jitted ``(x, w, g) -> {kernel: (`impl`'s result, [references])}``.

    References: the lax kernel and ``jax.vjp`` of the lax forward, computed on the
    inputs cast to `reference_dtype` (default: theirs). Fresh, so that the memory
    budget in force now is the one traced.
    """
    def run(x, w, g):
        in_spatial, kernel = x.shape[2:], w.shape[2:]
        rx, rw, rg = (a if reference_dtype is None else a.astype(reference_dtype)
                      for a in (x, w, g))
        y_lax, lax_vjp = jax.vjp(lambda a, b: _lax.forward(a, b, spec), rx, rw)
        dx_vjp, dw_vjp = lax_vjp(rg)
        return {
            "forward": (impl.forward(x, w, spec), [y_lax]),
            "input_grad": (impl.input_grad(g, w, spec, in_spatial),
                           [_lax.input_grad(rg, rw, spec, in_spatial), dx_vjp]),
            "weight_grad": (impl.weight_grad(x, g, spec, kernel),
                            [_lax.weight_grad(rx, rg, spec, kernel), dw_vjp]),
        }
    return jax.jit(run)


def _check(results, atol=1e-10):
    for actual, references in results.values():
        for expected in references:
            _close(actual, expected, atol)


@pytest.mark.parametrize("impl", list(PEERS))
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_kernels_match_lax_and_autodiff(case, impl):
    rank, batch, stride, dilation, groups, c_in, c_out, pads = case
    spec = _spec(rank, stride, dilation, groups, pads)
    x, w, g = _arrays(rank, batch, c_in, c_out, groups, spec)
    _check(_gather_and_lax(spec, impl=PEERS[impl])(x, w, g))


@pytest.mark.parametrize(("rank", "groups", "stride", "dilation", "pads", "cropped"), [
    (3, 1, 1, 1, ((1, 1), (1, 1), (0, 0)), False),
    (3, 2, 1, 2, ((2, 0), (0, 1), (1, 1)), False),
    (3, 4, 1, 1, ((3, 3), (1, 1), (1, 1)), False),  # padding past the kernel's extent
    (3, 1, (1, 2, 1), 1, ((0, 1), (1, 1), (1, 0)), True),  # stride on a later axis; g cropped
    (3, 2, (2, 1, 1), 1, ((1, 1), (0, 0), (1, 1)), False),  # stride phases, then the fold
    (4, 1, 1, 1, ((1, 1), (0, 1), (1, 1), (0, 0)), False),
    (4, 2, 1, (2, 1, 1, 1), ((1, 2), (1, 1), (0, 0), (1, 0)), True),
])
@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
@pytest.mark.exhaustive  # slow (quick-tier budget); its neighbours cover the same code
def test_fold_input_grad_folds_the_leading_axis_into_output_channels(
        rank, groups, stride, dilation, pads, cropped, dtype):
    """fold's stride-1 input gradient of rank >= 3 (one (r-1)-d input gradient with the
    leading taps as output channels, then shifted slices summed) equals lax's, with
    groups, leading dilation, padding beyond the kernel, a g with fewer planes than the
    output (an earlier crop), stride phases around it, 4-d, and half precision."""
    stride = (stride,) * rank if isinstance(stride, int) else stride
    dilation = (dilation,) * rank if isinstance(dilation, int) else dilation
    spec = jaxconv.ConvSpec(rank=rank, stride=stride, padding=pads, dilation=dilation,
                            groups=groups, padding_mode="zeros", impl="fold")
    spatial, kernel = (7, 6, 5, 4)[:rank], (3, 2, 3, 2)[:rank]
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2 * groups, 2, *kernel))
    out = list(spec.output_spatial(spatial, kernel))
    if cropped:
        out[0] -= 1
    g = rng.standard_normal((2, 2 * groups, *out))
    g, w = jnp.asarray(g, dtype), jnp.asarray(w, dtype)
    actual = _fold.input_grad(g, w, spec, spatial)
    # the reference: lax's, in float64 on the same (rounded) values; bfloat16 results
    # are rounded once, to 8 significant bits
    expected = _lax.input_grad(g.astype(jnp.float64), w.astype(jnp.float64), spec, spatial)
    _close_once_rounded(actual, expected, dtype)


@pytest.mark.parametrize(("rank", "groups", "stride", "dilation", "pads", "channels"), [
    (3, 1, 1, 1, ((1, 1), (1, 1), (0, 0)), (3, 2)),
    (3, 2, 1, 2, ((2, 0), (0, 1), (1, 1)), (2, 4)),
    (3, 4, 1, 1, ((3, 3), (1, 1), (1, 1)), (1, 2)),  # padding past the kernel's extent
    (3, 1, (1, 2, 1), 1, ((0, 1), (1, 1), (1, 0)), (2, 5)),  # stride on a later axis
    (3, 2, (2, 1, 1), 1, ((1, 1), (0, 0), (1, 1)), (2, 2)),  # strided first axis: input side
    (4, 1, 1, 1, ((1, 1), (0, 1), (1, 1), (0, 0)), (2, 3)),
    (4, 2, 1, (2, 1, 1, 1), ((1, 2), (1, 1), (0, 0), (1, 0)), (3, 2)),
    (3, 17, 1, (2, 1, 1), ((1, 2), (1, 1), (0, 1)), (1, 2)),  # > 16 groups: not split
])
@pytest.mark.parametrize("side", ["output", "input"])
@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
@pytest.mark.exhaustive  # slow (quick-tier budget); its neighbours cover the same code
def test_fold_forward_on_either_side_of_the_leading_axis(
        monkeypatch, rank, groups, stride, dilation, pads, channels, side, dtype):
    """fold's forward of rank >= 3 folded on the output side (one (r-1)-d forward of
    every input plane with the leading taps as output channels, then shifted slices
    summed) and on the input side both equal lax's, with groups, leading dilation,
    padding beyond the kernel, strides, 4-d and half precision; the channel ratio
    picks the side."""
    stride = (stride,) * rank if isinstance(stride, int) else stride
    dilation = (dilation,) * rank if isinstance(dilation, int) else dilation
    spec = jaxconv.ConvSpec(rank=rank, stride=stride, padding=pads, dilation=dilation,
                            groups=groups, padding_mode="zeros", impl="fold")
    (group_in, per_group), spatial, kernel = channels, (7, 6, 5, 4)[:rank], (3, 2, 3, 2)[:rank]
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, group_in * groups, *spatial)), dtype)
    w = jnp.asarray(rng.standard_normal((per_group * groups, group_in, *kernel)), dtype)
    output_side = []
    folded = _fold._forward_output_folded
    monkeypatch.setattr(_fold, "_forward_output_folded",
                        lambda *a: output_side.append(True) or folded(*a))
    monkeypatch.setattr(_fold, "OUTPUT_SIDE_MAX_RATIO", 10**6 if side == "output" else 0)
    actual = [_fold.forward(x, w, spec)]
    assert bool(output_side) == (side == "output" and stride[0] == 1)
    if side == "output" and stride[0] == 1:  # also unsplit: the (γ, k, o) channel order
        actual.append(_fold._forward_output_folded(x, w, spec))
    expected = _lax.forward(x.astype(jnp.float64), w.astype(jnp.float64), spec)
    for result in actual:
        _close_once_rounded(result, expected, dtype)


def _close_once_rounded(actual, expected, dtype):
    """`actual` equals the float64 `expected` to float64 precision, or (half precision)
    rounded once: within half a unit in the last place (2**-8 relative for bfloat16),
    plus a float32 accumulation's error."""
    assert actual.dtype == jnp.dtype(dtype) and actual.shape == expected.shape
    scale = float(jnp.max(jnp.abs(expected)))
    if dtype == "float64":
        np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=0, atol=1e-10)
    else:
        np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected),
                                   rtol=2**-8, atol=2**-14 * scale)


@pytest.mark.parametrize("groups", [2, 32])  # split into dense convolutions, or not
@pytest.mark.parametrize(("group_in", "per_group", "depth", "pad", "output_side"), [
    (16, 32, 8, 1, True), (16, 16, 8, 1, True), (64, 16, 8, 1, True),
    (16, 33, 8, 1, False), (8, 64, 8, 1, False),
    (16, 16, 10, 0, True),  # a padding mode's copy: 10 planes in, 8 out
    (16, 32, 10, 0, False),  # ... with twice the outputs: 32·10 > 2·16·8
    (16, 24, 4, 0, False),  # 4 planes in, 2 out: 24·4 > 2·16·2
])
def test_fold_forward_side_follows_the_channel_ratio(monkeypatch, groups, group_in, per_group,
                                                     depth, pad, output_side):
    """The output side when a group's outputs times the input planes are at most
    OUTPUT_SIDE_MAX_RATIO (2) times its inputs times the output planes, whether the
    groups are split first or not; forward_side says the same."""
    calls = []
    folded = _fold._forward_output_folded
    monkeypatch.setattr(_fold, "_forward_output_folded", lambda *a: calls.append(a) or folded(*a))
    spec = jaxconv.ConvSpec(rank=3, stride=(1, 1, 1), padding=((pad, pad), (1, 1), (1, 1)),
                            dilation=(1, 1, 1), groups=groups, padding_mode="zeros",
                            impl="fold")
    x = jax.ShapeDtypeStruct((1, groups * group_in, depth, 4, 4), jnp.float32)
    w = jax.ShapeDtypeStruct((groups * per_group, group_in, 3, 3, 3), jnp.float32)
    jax.eval_shape(lambda a, b: _fold.forward(a, b, spec), x, w)  # traced, not run
    assert bool(calls) == output_side
    assert _fold.forward_side(spec, x.shape[2:], w.shape) == ("output" if output_side
                                                              else "input")


@pytest.mark.parametrize("path", ["unrolled", "dot_general"])
def test_shift_channel_sum_paths_agree(monkeypatch, path):
    """shift sums channels either as unrolled multiply-adds (and the weight gradient as one
    variadic reduction) or as one dot_general per tap (above UNROLL_MAX channels, above
    REDUCE_MAX weight entries): both match lax, in F, T and W, with groups."""
    monkeypatch.setattr(_shift, "UNROLL_MAX", 0 if path == "dot_general" else 64)
    monkeypatch.setattr(_shift, "REDUCE_MAX", 0 if path == "dot_general" else 1024)
    monkeypatch.setattr(_shift, "WINDOW_PAD_MAX", 0 if path == "dot_general" else 64)
    spec = _spec(2, (2, 1), 2, 2, ((1, 0), (0, 2)))
    x, w, g = _arrays(2, 2, 8, 6, 2, spec)
    _check(_gather_and_lax(spec, impl=_shift)(x, w, g))


@pytest.mark.parametrize(("operands", "sizes"), [
    (1, [12] * 6), (24, [24] * 3), (36, [36, 36]), (60, [60, 12]), (1000, [72])])
def test_shift_weight_grad_reductions_split_by_whole_taps(monkeypatch, operands, sizes):
    """shift's weight gradient sums up to REDUCE_OPERANDS products per variadic reduction,
    whole taps each (at least one): with 12 entries per tap (3 x 4 channels per group) and
    6 taps, the reductions have `sizes` operands, and every split matches lax."""
    monkeypatch.setattr(_shift, "REDUCE_OPERANDS", operands)
    spec = _spec(2, (2, 1), 1, 2, ((1, 0), (0, 2)))
    x, w, g = _arrays(2, 2, 8, 6, 2, spec)
    kernel = w.shape[2:]
    jaxpr = jax.make_jaxpr(lambda a, b: _shift.weight_grad(a, b, spec, kernel))(x, g)
    reduces = [e for e in _all_eqns(jaxpr.jaxpr) if e.primitive.name == "reduce"]
    assert [len(e.invars) // 2 for e in reduces] == sizes
    _check(_gather_and_lax(spec, impl=_shift)(x, w, g))


def _all_eqns(jaxpr):
    """Every equation of `jaxpr`, recursing into sub-jaxprs (pjit, scan, cond, custom_*)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(sub, ClosedJaxpr):
                    yield from _all_eqns(sub.jaxpr)
                elif isinstance(sub, Jaxpr):
                    yield from _all_eqns(sub)


def _primitive_names(jaxpr) -> set[str]:
    return {eqn.primitive.name for eqn in _all_eqns(jaxpr)}


LOSSES = {
    "conv2d": lambda impl: lambda x, w: jnp.sum(jaxconv.conv2d(
        x, w, stride=2, padding=1, dilation=(1, 2), groups=2, impl=impl) ** 2),
    "conv2d-reflect-same": lambda impl: lambda x, w: jnp.sum(jnp.sin(jaxconv.conv2d(
        x, w, padding="same", groups=2, padding_mode="reflect", impl=impl))),
    "conv_transpose2d": lambda impl: lambda x, w: jnp.sum(jaxconv.conv_transpose2d(
        x[:, :, :4, :3], w.reshape(4, 3, 3, 2)[:, :, :, :], stride=2, padding=1,
        output_padding=1, impl=impl) ** 2),
}


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("impl", ["gather", "lax"])
def test_gather_jaxpr_has_no_convolution(impl, loss):
    """No ``conv*`` primitive in the forward, the gradient or the gradient of the
    gradient norm; lax is the positive control."""
    x = jnp.ones((2, 4, 7, 6))
    w = jnp.ones((6, 2, 3, 2))
    f = LOSSES[loss](impl)
    grad = jax.grad(f, argnums=(0, 1))
    grad_of_grad = jax.grad(lambda x, w: sum(jnp.sum(g**2) for g in grad(x, w)), argnums=(0, 1))
    # The kernels are primitives' lowerings: read the lowered programs.
    programs = {name: jax.jit(fn).lower(x, w).as_text()
                for name, fn in (("forward", f), ("grad", grad), ("grad_of_grad", grad_of_grad))}
    for text in programs.values():
        assert ("stablehlo.convolution" in text) == (impl == "lax")
    if impl == "gather":
        assert "stablehlo.dot_general" in programs["forward"]


@pytest.fixture
def memory_budget():
    """Sets the budget for one test and restores it afterwards."""
    saved = _gather.get_memory_budget()
    yield _gather.set_memory_budget
    _gather.set_memory_budget(saved)


@pytest.mark.parametrize(("batch", "chunk"), [(5, 2), (3, 1)])
def test_tiny_budget_chunks_the_batch_and_agrees(memory_budget, batch, chunk):
    """Chunks of `chunk` samples: with a remainder (5 = 2 + 2 + 1) and without (3 x 1)."""
    spec = _spec(2, 2, 1, 2, ((1, 0), (0, 2)))
    x, w, g = _arrays(2, batch, 4, 6, 2, spec)
    per_sample = x.shape[1] * np.prod(g.shape[2:]) * np.prod(w.shape[2:]) * x.dtype.itemsize
    memory_budget(int(chunk * per_sample + per_sample // 2))

    run = _gather_and_lax(spec)
    jaxpr = jax.make_jaxpr(run)(x, w, g).jaxpr
    scans = [eqn for eqn in _all_eqns(jaxpr) if eqn.primitive.name == "scan"]
    assert len(scans) == 3  # forward, input_grad, weight_grad
    # Each scan walks batch // chunk full chunks of exactly `chunk` samples.
    assert {eqn.params["length"] for eqn in scans} == {batch // chunk}
    assert all(v.aval.shape[0] == chunk for eqn in scans
               for v in eqn.params["jaxpr"].jaxpr.invars[-1:])
    _check(run(x, w, g))


def test_default_budget_does_not_chunk_small_batches():
    spec = _spec(1, 1, 1, 1, ((1, 1),))
    x, w, _ = _arrays(1, 2, 3, 2, 1, spec)
    assert _gather.get_memory_budget() == 256 * 2**20
    jaxpr = jax.make_jaxpr(_gather_and_lax(spec))(x, w, x[:, :2]).jaxpr
    assert "scan" not in _primitive_names(jaxpr)


def test_set_memory_budget_roundtrip(memory_budget):
    memory_budget(np.int64(1024))
    assert _gather.get_memory_budget() == 1024
    assert type(_gather.get_memory_budget()) is int


@pytest.mark.parametrize("bad, exc, message", [
    (0, ValueError, "`nbytes` must be positive, got nbytes=0."),
    (-1, ValueError, "`nbytes` must be positive, got nbytes=-1."),
    (1.5, TypeError, "`nbytes` must be an int, got 1.5."),
    (True, TypeError, "`nbytes` must be an int, got True."),
    ("1024", TypeError, "`nbytes` must be an int, got '1024'."),
    (None, TypeError, "`nbytes` must be an int, got None."),
])
def test_set_memory_budget_rejects_bad_values(memory_budget, bad, exc, message):
    with pytest.raises(exc, match="^" + re.escape("jaxconv.set_memory_budget: " + message) + "$"):
        memory_budget(bad)


@pytest.mark.parametrize("impl", list(PEERS))
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_kernels_keep_dtype(dtype, impl):
    """Half and single precision: the dtype is kept, values match lax in float32."""
    spec = _spec(2, 2, 2, 2, ((1, 0), (0, 2)))
    x, w, g = _arrays(2, 2, 4, 6, 2, spec, dtype=np.float32)
    results = _gather_and_lax(spec, reference_dtype=jnp.float32, impl=PEERS[impl])(
        *(a.astype(dtype) for a in (x, w, g)))
    _check_dtype_kept(results, dtype)


def _check_dtype_kept(results, dtype):
    """Each result in `dtype`, within its rounding of the float32 references."""
    tol = {"float16": 2e-2, "bfloat16": 1.5e-1, "float32": 1e-4}[dtype]
    for actual, references in results.values():
        assert actual.dtype == jnp.dtype(dtype)
        for expected in references:
            scale = 1 + float(jnp.abs(expected).max())
            np.testing.assert_allclose(np.asarray(actual, np.float32), np.asarray(expected),
                                       rtol=0, atol=tol * scale)


def _weight_grad_dot_batch_dims(spec, x, g, kernel):
    jaxpr = jax.make_jaxpr(lambda a, b: _gather.weight_grad(a, b, spec, kernel))(x, g)
    return [len(eqn.params["dimension_numbers"][1][0]) for eqn in _all_eqns(jaxpr.jaxpr)
            if eqn.primitive.name == "dot_general"]


@pytest.mark.parametrize("per_sample", [True, False])
@pytest.mark.parametrize("case", CASES[::2], ids=_case_id)
def test_gather_weight_grad_per_sample_products(monkeypatch, case, per_sample):
    """dW as one ``[P, O] [P, CK]`` product per sample, summed (the path at least
    PER_SAMPLE_W_MIN_POSITIONS output positions take), or as one product over batch and
    positions: each agrees with lax and autodiff, and the jaxpr shows which one ran (the
    sample axis is a batch dimension of the product, next to the group, or it is not)."""
    monkeypatch.setattr(_gather, "PER_SAMPLE_W_MIN_POSITIONS", 1 if per_sample else 10**9)
    rank, batch, stride, dilation, groups, c_in, c_out, pads = case
    spec = _spec(rank, stride, dilation, groups, pads)
    x, w, g = _arrays(rank, batch, c_in, c_out, groups, spec)
    assert _weight_grad_dot_batch_dims(spec, x, g, w.shape[2:]) == [2 if per_sample else 1]
    _check(_gather_and_lax(spec)(x, w, g))


def test_gather_weight_grad_per_sample_products_in_chunks(monkeypatch, memory_budget):
    """The per-sample products inside the batch chunks of a tiny memory budget: the scan's
    body holds them (for the full chunks, and for the remainder after it)."""
    monkeypatch.setattr(_gather, "PER_SAMPLE_W_MIN_POSITIONS", 1)
    spec = _spec(2, 2, 1, 2, ((1, 0), (0, 2)))
    x, w, g = _arrays(2, 5, 4, 6, 2, spec)
    per_sample = x.shape[1] * np.prod(g.shape[2:]) * np.prod(w.shape[2:]) * x.dtype.itemsize
    memory_budget(int(2 * per_sample + per_sample // 2))
    run = _gather_and_lax(spec)
    assert sum(eqn.primitive.name == "scan" for eqn in _all_eqns(
        jax.make_jaxpr(run)(x, w, g).jaxpr)) == 3
    assert _weight_grad_dot_batch_dims(spec, x, g, w.shape[2:]) == [2, 2]
    _check(run(x, w, g))


def test_gather_weight_grad_per_sample_needs_positions_per_output_channel(monkeypatch):
    """Per sample only with no more output channels per group than positions, so that a
    sample's partial sums are no larger than its patches (the chunks' memory budget)."""
    monkeypatch.setattr(_gather, "PER_SAMPLE_W_MIN_POSITIONS", 1)
    spec = _spec(1, 1, 1, 1, ((0, 0),))
    x = jnp.ones((2, 3, 6))
    for channels, batch_dims in ((4, [2]), (5, [1])):  # 4 output positions
        g = jnp.ones((2, channels, 4))
        assert _weight_grad_dot_batch_dims(spec, x, g, (3,)) == batch_dims
        _close(_gather.weight_grad(x, g, spec, (3,)), _lax.weight_grad(x, g, spec, (3,)),
               atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gather_weight_grad_per_sample_products_in_half_precision(monkeypatch, dtype):
    """Half precision through the per-sample products: float32 sums, the dtype kept."""
    monkeypatch.setattr(_gather, "PER_SAMPLE_W_MIN_POSITIONS", 1)
    spec = _spec(2, 2, 2, 2, ((1, 0), (0, 2)))
    x, w, g = _arrays(2, 2, 4, 6, 2, spec, dtype=np.float32)
    xh, gh = x.astype(dtype), g.astype(dtype)
    assert _weight_grad_dot_batch_dims(spec, xh, gh, w.shape[2:]) == [2]
    results = _gather_and_lax(spec, reference_dtype=jnp.float32)(xh, w.astype(dtype), gh)
    _check_dtype_kept({"weight_grad": results["weight_grad"]}, dtype)


@pytest.mark.parametrize(("rank", "stride", "groups", "pads", "dtype"), [
    (2, (1, 1), 1, ((0, 0), (0, 0)), "float64"),
    (2, (2, 1), 2, ((1, 0), (0, 2)), "float64"),
    (1, (3,), 3, ((2, 1),), "float64"),
    (3, (1, 2, 1), 1, ((0, 0), (1, 1), (0, 0)), "float64"),
    (2, (1, 1), 2, ((0, 0), (0, 0)), "bfloat16"),
])
def test_shift_pointwise_forward_per_image(monkeypatch, rank, stride, groups, pads, dtype):
    """A 1x1 forward with at least PER_IMAGE_MATMUL_MIN_POSITIONS positions is one matmul
    per image and group with the images as a batch dimension (no transposes): it equals
    lax's forward, with strides, padding and groups, and in half precision rounds once."""
    monkeypatch.setattr(_shift, "PER_IMAGE_MATMUL_MIN_POSITIONS", 8)
    spatial = {1: (25,), 2: (7, 6), 3: (4, 6, 3)}[rank]
    c_in, c_out = 17 * groups, 5 * groups  # 17 channels per group: the matmul path
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((3, c_in, *spatial)), dtype)
    w = jnp.asarray(rng.standard_normal((c_out, c_in // groups, *(1,) * rank)), dtype)
    spec = jaxconv.ConvSpec(rank=rank, stride=stride, padding=pads, dilation=(1,) * rank,
                            groups=groups, impl="shift")
    out = spec.output_spatial(spatial, (1,) * rank)
    assert _shift.per_image_matmul((1,) * rank, out, c_in // groups)
    jaxpr = jax.make_jaxpr(lambda a, b: _shift.forward(a, b, spec))(x, w)
    dots = [e for e in _all_eqns(jaxpr.jaxpr) if e.primitive.name == "dot_general"]
    assert [e.params["dimension_numbers"][1] for e in dots] == [((0, 1), (0, 1))]
    assert not [e for e in _all_eqns(jaxpr.jaxpr) if e.primitive.name == "transpose"]
    got = jax.jit(lambda a, b: _shift.forward(a, b, spec))(x, w)
    want = _lax.forward(x.astype(jnp.float32 if dtype == "bfloat16" else x.dtype),
                        w.astype(jnp.float32 if dtype == "bfloat16" else w.dtype), spec)
    assert got.dtype == x.dtype
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=2 ** -8 if dtype == "bfloat16" else 1e-12,
                               atol=0 if dtype == "float64" else 1e-2)


@pytest.mark.parametrize(("kernel", "positions", "group_in", "picks"), [
    ((1, 1), (20, 20), 17, True), ((1, 1), (14, 14), 1024, False),
    ((1, 1), (28, 28), 16, False), ((3, 3), (56, 56), 64, False), ((1,), (400,), 32, True)])
def test_shift_pointwise_per_image_rule(kernel, positions, group_in, picks):
    """Per image from 400 positions (0.44-0.95 of the stacked matmul's time above them, a
    tie at 20x20, 1.05-3.05 at 14x14 and below; benchmarks/results/zen5/pointwise_cpu.md),
    1x1 kernels with more channels per group than the unrolled sums take."""
    assert _shift.per_image_matmul(kernel, positions, group_in) is picks


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize(("rank", "kernel", "stride", "dilation", "dtype"), [
    (2, (1, 1), (1, 1), (1, 1), "float64"), (2, (3, 3), (1, 1), (1, 1), "float64"),
    (1, (3,), (2,), (2,), "float64"), (3, (1, 2, 1), (1, 2, 1), (1, 1, 1), "float64"),
    (2, (3, 3), (1, 1), (1, 1), "bfloat16")])
def test_shift_matmuls_have_no_group_batch_dimension_with_one_group(groups, rank, kernel,
                                                                    stride, dilation, dtype):
    """With one group, shift's per-tap forward matmuls have no size-1 group batch
    dimension (XLA copied the weight transposed for one on every call: 1x1 forwards on
    small maps ran up to 2x slower); with several, the group is the batch dimension.
    Either way they equal lax's forward (half precision: rounded once)."""
    spatial = {1: (11,), 2: (5, 4), 3: (3, 5, 4)}[rank]
    pads = ((1, 1), (0, 1), (1, 0))[:rank]
    spec = jaxconv.ConvSpec(rank=rank, stride=stride, padding=pads, dilation=dilation,
                            groups=groups)
    rng = np.random.default_rng(0)
    c_in, c_out = 18 * groups, 6 * groups  # more than UNROLL_MAX channels: the matmuls
    x = jnp.asarray(rng.standard_normal((2, c_in, *spatial)), dtype)
    w = jnp.asarray(rng.standard_normal((c_out, 18, *kernel)), dtype)
    assert not _shift.per_image_matmul(kernel, spec.output_spatial(spatial, kernel), 18)
    jaxpr = jax.make_jaxpr(lambda a, b: _shift.forward(a, b, spec))(x, w)
    dims = [eqn.params["dimension_numbers"][1] for eqn in _all_eqns(jaxpr.jaxpr)
            if eqn.primitive.name == "dot_general"]
    assert len(dims) == math.prod(kernel)
    assert all(len(lhs) == len(rhs) == int(groups > 1) for lhs, rhs in dims), dims
    got = _shift.forward(x, w, spec)
    assert got.dtype == x.dtype
    f32 = jnp.float32 if dtype == "bfloat16" else x.dtype
    want = _lax.forward(x.astype(f32), w.astype(f32), spec)
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=2 ** -8 if dtype == "bfloat16" else 1e-10,
                               atol=1e-2 if dtype == "bfloat16" else 1e-10)
