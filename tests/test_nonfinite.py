"""NaN and Inf against PyTorch (outputs and gradients), for every impl.

The contract (docs/numerics.md, "The NaN and Inf contract"):
- a NaN or Inf in the *input* of a convolution reaches exactly the output and
  gradient entries PyTorch's reaches, in every impl, padding mode and dtype;
- by default, a NaN or Inf in the weight or bias, or in the input of a transposed
  convolution, reaches every entry PyTorch's reaches, and where PyTorch's
  result is finite ours is the same number; but an impl that computes a kernel
  as an XLA convolution may mark more entries: there, the non-finite value is
  multiplied by a structural zero (the zero padding of a gradient, or the zeros
  between strided rows) that PyTorch's col2im never multiplies, and
  ``0 * Inf = NaN``;
- with ``jaxconv.set_exact_nonfinite(True)``, every impl marks exactly the
  NaN/±Inf entries of the sums of products of real elements (the NumPy oracle
  ``structural_conv_vjp``), wherever the non-finite values are, the output
  gradient included; PyTorch marks the same or, where its kernel is im2col
  (float64, depthwise, dilated), more.

Regression: in float64 on CPU, XLA computed depthwise convolutions (one input
channel per group) as a dense convolution with a zero-masked kernel, so a NaN in
one channel reached every output channel through ``0 * NaN`` (impl="lax", and
"fold", "auto" where they use it). jaxconv.impls.lax._xla_conv avoids that path.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from reference import structural_conv_vjp

import jaxconv
from jaxconv.testing import TOLERANCES

IMPLS = (*jaxconv.available_impls(), "auto")

# (rank, in_channels, out_channels, groups, stride): depthwise (with and without a
# channel multiplier), grouped and dense.
GEOMETRIES = [
    (1, 4, 4, 4, 1),
    (2, 4, 8, 4, 2),
    (3, 4, 4, 4, 1),
    (2, 4, 6, 2, 1),
    (2, 3, 5, 1, 1),
]


def _nan_masks(values):
    return [np.isnan(np.asarray(v)) for v in values]


@pytest.mark.parametrize("where", ["input", "weight"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "-".join(map(str, g)))
def test_a_planted_nan_reaches_what_pytorch_reaches(torch, geometry, impl, dtype, where):
    rank, c, o, groups, stride = geometry
    # XLA CPU's float32 lhs-dilated convolution (the lax impl's strided input gradient)
    # multiplies the inserted zeros by the weight, so by default a NaN weight reaches
    # input rows PyTorch's col2im never touches; set_exact_nonfinite(True) removes them
    # (test_set_exact_nonfinite_switches_traced_calls).
    superset = impl == "lax" and where == "weight" and stride > 1 and dtype == "float32"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, c, *(6,) * rank)).astype(dtype)
    w = rng.standard_normal((o, c // groups, *(3,) * rank)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    if where == "input":
        x[(1, c - 1) + (2,) * rank] = np.nan
    else:
        w[(o - 1, 0) + (1,) * rank] = np.nan

    def f(x, w, b):
        return jaxconv.conv(x, w, b, stride, 1, 1, groups, impl=impl)

    y, vjp = jax.vjp(f, jnp.asarray(x), jnp.asarray(w), jnp.asarray(b))
    cot = rng.standard_normal(y.shape).astype(dtype)
    ours = [y, *vjp(jnp.asarray(cot))]

    tconv = getattr(torch.nn.functional, f"conv{rank}d")
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = tconv(tx, tw, tb, stride, 1, 1, groups)
    ty.backward(torch.tensor(cot))
    theirs = [ty.detach(), tx.grad, tw.grad, tb.grad]

    names = ("output", "d_input", "d_weight", "d_bias")
    for name, a, t in zip(names, _nan_masks(ours), _nan_masks(theirs), strict=True):
        if superset and name == "d_input":
            assert np.all(a[t]) and a.sum() > t.sum(), f"{name}: not the documented superset"
            continue
        assert a.any() == t.any() and np.array_equal(a, t), (
            f"{name}: NaN at {np.argwhere(a ^ t)[:5].tolist()} differs from PyTorch")


# (rank, in, out, groups, stride, padding_mode or "transpose"): a 1-d sweep (fast to
# compile; every plant reuses one compiled program per impl) and two 2-d cases.
SWEEP = [(1, c, o, g, s, m) for (c, o, g) in ((4, 8, 4), (4, 6, 2), (3, 5, 1))
         for s in (1, 2) for m in ("zeros", "reflect", "transpose")]
SWEEP += [(1, 4, 4, 4, 1, "circular"), (2, 4, 8, 4, 2, "reflect"), (2, 4, 6, 2, 2, "transpose")]
PLANTS = [(where, value) for where in ("input", "weight", "bias") for value in (np.nan, np.inf)]


def _nonfinite(a):
    a = np.asarray(a)
    return np.isnan(a), np.isposinf(a), np.isneginf(a)


@pytest.mark.parametrize("case", SWEEP, ids=lambda c: "-".join(map(str, c)))
def test_nonfinite_values_against_pytorch(torch, case):
    rank, c, o, groups, stride, mode = case
    transpose = mode == "transpose"
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((2, c, *(6,) * rank)).astype(np.float32)
    w_shape = (c, o // groups) if transpose else (o, c // groups)
    w0 = rng.standard_normal((*w_shape, *(3,) * rank)).astype(np.float32)
    b0 = rng.standard_normal(o).astype(np.float32)

    torch_case = (rank, c, o, groups, stride, 1, 1, mode)
    runs = {impl: _jitted_vjp(torch_case, impl) for impl in IMPLS}
    for where, value in PLANTS:
        x, w, b = x0.copy(), w0.copy(), b0.copy()
        target = {"input": x, "weight": w, "bias": b}[where]
        target[(-1, 0, *(1,) * rank)[:target.ndim]] = value
        y_shape = _torch_run(torch, torch_case, x, w, b, None)[0].shape
        cot = rng.standard_normal(y_shape).astype(np.float32)
        theirs = _torch_run(torch, torch_case, x, w, b, cot)
        exact = where == "input" and not transpose
        for impl, run in runs.items():
            ours = run(x, w, b, cot)
            for name, a, t in zip(("output", "d_input", "d_weight", "d_bias"), ours, theirs,
                                  strict=True):
                a, label = np.asarray(a), f"{impl}: {name} with {value} in the {where}"
                a_bad, t_bad = _nonfinite(a), _nonfinite(t)
                if exact:
                    for kind, ab, tb_ in zip(("NaN", "+Inf", "-Inf"), a_bad, t_bad, strict=True):
                        assert np.array_equal(ab, tb_), f"{label}: {kind} entries differ"
                else:
                    ours_any = a_bad[0] | a_bad[1] | a_bad[2]
                    assert np.all(ours_any[t_bad[0] | t_bad[1] | t_bad[2]]), (
                        f"{label}: PyTorch has non-finite entries that we don't")
                    both_inf = (a_bad[1] & t_bad[1]) | (a_bad[2] & t_bad[2])
                    assert np.all(~t_bad[0] | a_bad[0]), f"{label}: a NaN of PyTorch's is not NaN"
                    assert np.all(both_inf | ~(t_bad[1] | t_bad[2]) | a_bad[0]), (
                        f"{label}: an Inf of PyTorch's has another sign")
                finite = np.isfinite(a) & np.isfinite(t)
                np.testing.assert_allclose(a[finite], t[finite], rtol=1e-4, atol=1e-4,
                                           err_msg=label)


# --- jaxconv.set_exact_nonfinite(True): exact propagation in every impl ---------------------
#
# The oracle is tests/reference.py's structural_conv_vjp: the sums of products of real
# elements only, in NumPy. PyTorch's oneDNN float32 CPU kernels and its col2im input
# gradient form the same products; its im2col forward and weight gradient (float64, and
# some float32 layers) also multiply the zero padding, so a NaN weight at a corner tap
# marks outputs that read only padding there. PyTorch gives the values where finite.


@pytest.fixture
def exact_nonfinite():
    jaxconv.set_exact_nonfinite(True)
    yield
    jaxconv.set_exact_nonfinite(False)


@pytest.fixture(params=["exact", "default"])
def setting(request):
    jaxconv.set_exact_nonfinite(request.param == "exact")
    yield request.param
    jaxconv.set_exact_nonfinite(False)


# (rank, in, out, groups, stride, dilation, padding, mode or "transpose")
EXACT_CASES = [
    (1, 4, 8, 4, 2, 1, 1, "zeros"),      # depthwise with a channel multiplier, strided
    (1, 3, 5, 1, 1, 2, 2, "zeros"),      # dense, dilated
    (1, 4, 6, 2, 2, 1, 1, "reflect"),
    (1, 4, 6, 2, 2, 1, 1, "transpose"),
    (2, 4, 4, 4, 1, 1, 1, "zeros"),      # depthwise
    (2, 3, 5, 1, 2, 1, 2, "zeros"),      # dense, strided, more padding than a tap reaches
    (2, 4, 4, 1, 1, 1, 1, "circular"),
    (2, 4, 6, 2, 2, 1, 1, "transpose"),
    (3, 2, 4, 2, 2, 1, 1, "zeros"),
]
EXACT_F64 = {0, 3, 5}  # the cases also run in float64

# (tensor, value, where): where is "corner" (first and last element of the tensor) or
# the number of random elements that get the value.
EXACT_PLANTS = [
    [("weight", np.nan, "corner")],
    [("weight", np.inf, "corner"), ("weight", -np.inf, 2)],
    [("input", np.inf, "corner"), ("weight", np.inf, "corner")],
    [("input", -np.inf, 2), ("weight", 0.0, 3), ("weight", np.nan, 1)],
    [("cotangent", np.nan, "corner")],
    [("cotangent", np.inf, 2), ("input", 0.0, 3), ("input", np.nan, 1)],
    [("bias", np.nan, 1), ("cotangent", -np.inf, "corner")],
]


def _plant(rng, arrays, plants):
    for name, value, where in plants:
        flat = arrays[name].reshape(-1)
        index = [0, flat.size - 1] if where == "corner" else rng.choice(flat.size, where)
        flat[index] = value


def _jitted_vjp(case, impl):
    """``(x, w, b, cot) -> (y, dx, dw, db)`` of jaxconv's call for `case` (see
    EXACT_CASES; its channel counts are not used), jitted; ``(y,)`` if `cot` is None."""
    rank, _, _, groups, stride, dilation, padding, mode = case
    if mode == "transpose":
        f = lambda x, w, b: jaxconv.conv_transpose(x, w, b, stride, padding, 0, groups,
                                                   dilation, impl=impl)
    else:
        f = lambda x, w, b: jaxconv.conv(x, w, b, stride, padding, dilation, groups,
                                         padding_mode=mode, impl=impl)

    @jax.jit
    def run(x, w, b, cot):
        if cot is None:  # the output alone (for its shape)
            return (f(x, w, b),)
        y, vjp = jax.vjp(f, x, w, b)
        return (y, *vjp(cot))
    return run


def _torch_run(torch, case, x, w, b, cot):
    rank, c, o, groups, stride, dilation, padding, mode = case
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    if mode == "transpose":
        tconv = getattr(torch.nn.functional, f"conv_transpose{rank}d")
        ty = tconv(tx, tw, tb, stride, padding, 0, groups, dilation)
    else:
        module = getattr(torch.nn, f"Conv{rank}d")(c, o, 3, stride, padding, dilation, groups,
                                                   True, mode, dtype=tx.dtype)
        with torch.no_grad():
            module.weight.copy_(tw)
            module.bias.copy_(tb)
        tw, tb = module.weight, module.bias
        ty = module(tx)
    if cot is None:
        return [ty.detach().numpy()]
    ty.backward(torch.tensor(cot))
    return [ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()]


def _structural(case, x, w, b, cot):
    """The NumPy oracle's ``(y, dx, dw, db)`` (tests/reference.py); a transposed
    convolution is the input gradient of the convolution it transposes."""
    rank, c, o, groups, stride, dilation, padding, mode = case
    if mode != "transpose":
        return structural_conv_vjp(x, w, b, cot, stride, padding, dilation, groups, mode)
    # conv_transpose(x, w) = T(x, w), its dx = F(g, w), its dw = W(g, x)
    dx, y, dw, _ = structural_conv_vjp(cot, w, None, x, stride, padding, dilation, groups)
    with np.errstate(invalid="ignore"):
        return (y + b.reshape((-1,) + (1,) * rank), dx, dw,
                cot.sum(axis=(0, *range(2, 2 + rank))))


@pytest.mark.parametrize(("case", "dtype"), [
    *((case, "float32") for case in EXACT_CASES),
    *((EXACT_CASES[i], "float64") for i in sorted(EXACT_F64)),
    (EXACT_CASES[4], "float16"), (EXACT_CASES[7], "bfloat16")],
    ids=lambda v: "-".join(map(str, v)) if isinstance(v, tuple) else v)
def test_nonfinite_against_the_structural_oracle(torch, setting, case, dtype):
    """With set_exact_nonfinite(True), exactly the oracle's NaN/+Inf/-Inf entries; by
    default, at least those (a NaN where the oracle has one, a NaN or the same Inf
    where it has an Inf), and the oracle's value wherever ours is finite."""
    rank, c, o, groups, stride, dilation, padding, mode = case
    transpose = mode == "transpose"
    rng = np.random.default_rng(EXACT_CASES.index(case))
    size = 4 if rank == 3 else 5
    dtype = jnp.dtype(dtype)
    x0 = rng.standard_normal((2, c, *(size,) * rank)).astype(dtype)
    w_shape = (c, o // groups) if transpose else (o, c // groups)
    w0 = rng.standard_normal((*w_shape, *(3,) * rank)).astype(dtype)
    b0 = rng.standard_normal(o).astype(dtype)
    half = dtype.itemsize < 4  # the oracle's float32 sums of the same values give both

    runs = {impl: _jitted_vjp(case, impl) for impl in IMPLS}
    y_shape = _torch_run(torch, case, *(a.astype(np.float32) for a in (x0, w0, b0)),
                         None)[0].shape
    for plants in EXACT_PLANTS:
        arrays = {"input": x0.copy(), "weight": w0.copy(), "bias": b0.copy()}
        label = f"{dtype.name} {plants}"
        arrays["cotangent"] = rng.standard_normal(y_shape).astype(dtype)
        _plant(rng, arrays, plants)
        x, w, b, cot = (arrays[k] for k in ("input", "weight", "bias", "cotangent"))
        up = [a.astype(np.float32) if half else a for a in (x, w, b, cot)]
        oracle = _structural(case, *up)
        masks = [_nonfinite(t) for t in oracle]
        values = oracle if half else _torch_run(torch, case, x, w, b, cot)
        assert any(m.any() for mask in masks for m in mask), f"{label}: nothing planted"
        for impl, run in runs.items():
            ours = run(x, w, b, cot)
            for name, a, mask, t in zip(("output", "d_input", "d_weight", "d_bias"), ours,
                                        masks, values, strict=True):
                a, where = np.asarray(a), f"{impl}: {name} with {label}"
                nan, pinf, minf = _nonfinite(a)
                if setting == "exact":
                    for kind, ab, tb in zip(("NaN", "+Inf", "-Inf"), (nan, pinf, minf), mask,
                                            strict=True):
                        assert np.array_equal(ab, tb), (
                            f"{where}: {kind} at {np.argwhere(ab ^ tb)[:4].tolist()} differs")
                    # PyTorch's kernels multiply the zero padding in some configurations
                    # (im2col: float64, dilated, depthwise), so it may mark more
                    # entries, never fewer; elsewhere its values are the oracle.
                    assert np.all(~np.isfinite(t)[~np.isfinite(a)]), (
                        f"{where}: PyTorch is finite where we are not")
                else:
                    assert np.all(nan[mask[0]]), f"{where}: an oracle NaN is not NaN"
                    assert np.all((pinf | nan)[mask[1]]) and np.all((minf | nan)[mask[2]]), (
                        f"{where}: an oracle Inf is finite or has the other sign")
                finite = np.isfinite(a) & np.isfinite(t)
                rtol, atol = TOLERANCES[dtype.name]
                np.testing.assert_allclose(a[finite].astype(np.float64), t[finite], rtol=rtol,
                                           atol=atol, err_msg=where)


def _vjp_all(impl, x, w, b, cot, **kw):
    y, vjp = jax.vjp(lambda x, w, b: jaxconv.conv(x, w, b, impl=impl, **kw), x, w, b)
    return (y, *vjp(cot))


def test_set_exact_nonfinite_switches_traced_calls(torch):
    """The superset case of test_a_planted_nan_reaches_what_pytorch_reaches (lax,
    float32, stride 2, NaN weight): with the setting on, the same call (already traced
    by jaxconv's jitted core) marks exactly the oracle's entries; off, the superset
    again."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    b = np.zeros(8, np.float32)
    w[7, 0, 1, 1] = np.nan
    kw = dict(stride=2, padding=1, groups=4)
    cot = rng.standard_normal((2, 8, 3, 3)).astype(np.float32)
    oracle = np.isnan(structural_conv_vjp(x, w, b, cot, 2, 1, 1, 4)[1])
    assert not jaxconv.get_exact_nonfinite()
    superset = np.isnan(np.asarray(_vjp_all("lax", x, w, b, cot, **kw)[1]))
    assert superset.sum() > oracle.sum() and np.all(superset[oracle])
    try:
        jaxconv.set_exact_nonfinite(True)
        assert jaxconv.get_exact_nonfinite()
        exact = np.isnan(np.asarray(_vjp_all("lax", x, w, b, cot, **kw)[1]))
        assert np.array_equal(exact, oracle)
    finally:
        jaxconv.set_exact_nonfinite(False)
    again = np.isnan(np.asarray(_vjp_all("lax", x, w, b, cot, **kw)[1]))
    assert np.array_equal(again, superset)


@pytest.mark.parametrize(("enabled", "text"), [
    (1, "enabled=1 of type builtins.int."),
    ("yes", "enabled='yes' of type builtins.str."),
    (None, "enabled=None of type builtins.NoneType."),
    (np.int64(1), "enabled=np.int64(1) of type numpy.int64."),
])
def test_set_exact_nonfinite_refuses_non_bools(enabled, text):
    with pytest.raises(TypeError) as err:
        jaxconv.set_exact_nonfinite(enabled)
    assert str(err.value) == (
        f"jaxconv.set_exact_nonfinite: `enabled` must be True or False, got {text}")
    assert not jaxconv.get_exact_nonfinite()


def test_set_exact_nonfinite_takes_numpy_bools():
    try:
        jaxconv.set_exact_nonfinite(np.True_)
        assert jaxconv.get_exact_nonfinite() is True
    finally:
        jaxconv.set_exact_nonfinite(np.False_)
    assert jaxconv.get_exact_nonfinite() is False


@pytest.mark.parametrize("impl", [  # 12 s each; the guard wraps every impl alike
    i if i == "auto" else pytest.param(i, marks=pytest.mark.exhaustive)
    for i in IMPLS])
def test_exact_nonfinite_is_free_of_changes_on_finite_data(exact_nonfinite, impl):
    """Finite operands take the kernel's own result: bit for bit what the default
    gives, for outputs, gradients, second-order gradients and per-example gradients."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((3, 4, 7, 7)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((6, 2, 3, 3)), jnp.float32)
    b = jnp.asarray(rng.standard_normal(6), jnp.float32)

    def results():
        f = lambda x, w: jaxconv.conv(x, w, b, 2, 1, 1, 2, impl=impl)
        loss = lambda x, w: jnp.sum(jnp.tanh(f(x, w)))
        per_example = jax.vmap(jax.grad(lambda x, w: loss(x[None], w), argnums=1),
                               in_axes=(0, None))
        return [f(x, w), *jax.grad(loss, (0, 1))(x, w),
                jax.grad(lambda x, w: jnp.sum(jax.grad(loss)(x, w) ** 2), 1)(x, w),
                per_example(x, w)]

    exact = results()
    jaxconv.set_exact_nonfinite(False)
    default = results()
    jaxconv.set_exact_nonfinite(True)
    for a, d in zip(exact, default, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(d))


@pytest.mark.parametrize("impl", IMPLS)
def test_exact_nonfinite_per_example(exact_nonfinite, impl):
    """Under ``vmap(grad)`` the finiteness test covers the whole batch, so each of the
    three conds (F, T, W; the output gradient is per example) stays a cond, not a
    select that runs both branches, and each example's gradient is exact."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3)).astype(np.float32)
    x[1, 0, 0] = np.inf
    w[2, 1, 0] = np.nan

    def grads(x, w):
        loss = lambda x, w: jnp.sum(jnp.tanh(jaxconv.conv1d(x, w, padding=1, impl=impl)))
        return jax.grad(loss, (0, 1))(x, w)

    per_example = jax.jit(jax.vmap(grads, in_axes=(0, None)))
    # The kernels are primitives' lowerings: count the conds in the lowered program.
    assert per_example.lower(x, w).as_text().count("stablehlo.case") == 3
    dx, dw = per_example(x, w)
    for i in range(3):
        y = structural_conv_vjp(x[i:i + 1], w, None, np.zeros((1, 3, 6), np.float32),
                                1, 1, 1, 1)[0]
        with np.errstate(invalid="ignore"):
            cot = (1 - np.tanh(y) ** 2).astype(np.float32)  # d tanh, NaN where y is
        _, tdx, tdw, _ = structural_conv_vjp(x[i:i + 1], w, None, cot, 1, 1, 1, 1)
        for a, t in ((dx[i], tdx[0]), (dw[i], tdw)):
            for ab, tb in zip(_nonfinite(a), _nonfinite(t), strict=True):
                assert np.array_equal(ab, tb)


def test_exact_nonfinite_with_jax_autodiff():
    """``autodiff="jax"``: outputs exact; JAX's derivatives (forward and reverse mode)
    are those of the unguarded kernel, bit for bit as with the setting off (not the
    derivative of the guard, whose ``where`` would drop cotangents at NaN outputs, and
    no ``K(x, 0)`` term for an operand that is not differentiated)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 6)).astype(np.float32)
    w = rng.standard_normal((2, 2, 3)).astype(np.float32)
    x[0, 1, 2] = np.nan
    w[1, 0, 0] = np.inf
    f = lambda x, w: jaxconv.conv1d(x, w, padding=1, autodiff="jax", impl="lax")
    loss = lambda x, w: jnp.sum(jnp.sin(f(x, w)))

    def results():
        tangent = jax.jvp(lambda x: f(x, w), (x,), (np.ones_like(x),))[1]
        return [f(x, w), tangent, *jax.grad(loss, (0, 1))(x, w)]

    default = results()
    jaxconv.set_exact_nonfinite(True)
    try:
        exact = results()
    finally:
        jaxconv.set_exact_nonfinite(False)
    oracle = structural_conv_vjp(x, w, None, np.zeros((1, 2, 6), np.float32), 1, 1, 1, 1)[0]
    for a, t in zip(_nonfinite(exact[0]), _nonfinite(oracle), strict=True):
        assert np.array_equal(a, t)
    assert not np.array_equal(np.isnan(default[0]), np.isnan(oracle))  # the default's superset
    for a, d in zip(exact[1:], default[1:], strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(d))


# --- property-based: non-finite values anywhere, any configuration ----------------------------

PLANT_VALUES = (np.nan, np.inf, -np.inf, 0.0)
TENSORS = ("input", "weight", "bias", "cotangent")


@st.composite
def _nonfinite_examples(draw):
    """A convolution (or transposed convolution) from the whole space the structural
    oracle covers (symmetric padding), float32 or float64, and two sets of planted
    values (NaN, ±Inf, and zeros, which make ``0 * Inf``) at random places."""
    rank = draw(st.integers(1, 3))
    transpose = draw(st.booleans())
    groups = draw(st.sampled_from((1, 2, 3)))
    cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    mode = "zeros" if transpose else draw(st.sampled_from(
        ("zeros", "zeros", "reflect", "replicate", "circular")))
    axes = [draw(st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(1, 2),
                           st.integers(0, 2), st.integers(0, 3 if rank < 3 else 1)))
            for _ in range(rank)]  # kernel, stride, dilation, padding, extra size
    kernel, stride, dilation, padding, size = [], [], [], [], []
    for k, s, d, p, extra in axes:
        if transpose:
            n = 1 + extra
            p = min(p, ((n - 1) * s + d * (k - 1)) // 2)
        else:
            n = max(d * (k - 1) + 1 - 2 * p, p + 1 if mode != "zeros" else 1) + extra
        kernel.append(k), stride.append(s), dilation.append(d), padding.append(p)
        size.append(n)
    c, o = (groups * og, groups * cg) if transpose else (groups * cg, groups * og)
    w_shape = (c, o // groups) if transpose else (o, c // groups)
    return dict(rank=rank, transpose=transpose, groups=groups, mode=mode,
                kernel=tuple(kernel), stride=tuple(stride), dilation=tuple(dilation),
                padding=tuple(padding), x_shape=(draw(st.integers(1, 2)), c, *size),
                w_shape=(*w_shape, *kernel), out_channels=o,
                dtype=draw(st.sampled_from(("float32", "float64"))),
                seed=draw(st.integers(0, 2**32 - 1)),
                plants=[draw(st.lists(st.tuples(st.sampled_from(TENSORS),
                                                st.sampled_from(PLANT_VALUES),
                                                st.integers(1, 3)), min_size=1, max_size=4))
                        for _ in range(2)])


@pytest.mark.exhaustive  # a fuzz; the structural-oracle grid runs in the quick tier
@given(example=_nonfinite_examples())
def test_exact_nonfinite_fuzz(example):
    """Every impl and auto, with set_exact_nonfinite(True), against the structural
    oracle: exactly its NaN/+Inf/-Inf entries, its values elsewhere. The ci profile
    draws a few examples; the long one many::

        JAXCONV_HYPOTHESIS_PROFILE=long python -m pytest -q tests/test_nonfinite.py \\
            -k fuzz --hypothesis-show-statistics
    """
    e = example
    note(str({k: v for k, v in e.items() if k != "seed"}))
    rng = np.random.default_rng(e["seed"])
    x0 = rng.standard_normal(e["x_shape"]).astype(e["dtype"])
    w0 = rng.standard_normal(e["w_shape"]).astype(e["dtype"])
    b0 = rng.standard_normal(e["out_channels"]).astype(e["dtype"])
    case = (e["rank"], None, None, e["groups"], e["stride"], e["dilation"], e["padding"],
            "transpose" if e["transpose"] else e["mode"])
    runs = {impl: _jitted_vjp(case, impl) for impl in IMPLS}
    y_shape = jax.eval_shape(runs["lax"], x0, w0, b0, None)[0].shape
    jaxconv.set_exact_nonfinite(True)
    try:
        for plants in e["plants"]:
            arrays = {"input": x0.copy(), "weight": w0.copy(), "bias": b0.copy(),
                      "cotangent": rng.standard_normal(y_shape).astype(e["dtype"])}
            _plant(rng, arrays, plants)
            x, w, b, cot = (arrays[k] for k in TENSORS)
            oracle = _structural(case, x, w, b, cot)
            for impl, run in runs.items():
                for name, a, t in zip(("output", "d_input", "d_weight", "d_bias"),
                                      run(x, w, b, cot), oracle, strict=True):
                    a, where = np.asarray(a), f"{impl}: {name} with {plants}"
                    for kind, ab, tb in zip(("NaN", "+Inf", "-Inf"), _nonfinite(a),
                                            _nonfinite(t), strict=True):
                        assert np.array_equal(ab, tb), f"{where}: {kind} entries differ"
                    finite = np.isfinite(t)
                    rtol, atol = TOLERANCES[e["dtype"]]
                    scale = 1 + np.max(np.abs(t[finite]), initial=0)
                    diff = np.abs(a[finite] - t[finite])
                    assert np.all(diff <= atol * scale + rtol * np.abs(t[finite])), where
    finally:
        jaxconv.set_exact_nonfinite(False)
