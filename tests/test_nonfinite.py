"""NaN and Inf against PyTorch (outputs and gradients), for every impl.

The contract (README, "NaN and Inf"):
- a NaN or Inf in the *input* of a convolution reaches exactly the output and
  gradient entries PyTorch's reaches, in every impl, padding mode and dtype;
- a NaN or Inf in the weight or bias, or in the input of a transposed
  convolution, reaches every entry PyTorch's reaches, and where PyTorch's
  result is finite ours is the same number; but an impl that computes a kernel
  as an XLA convolution may mark more entries: there, the non-finite value is
  multiplied by a structural zero (the zero padding of a gradient, or the zeros
  between strided rows) that PyTorch's col2im never multiplies, and
  ``0 * Inf = NaN``.

Regression: in float64 on CPU, XLA computed depthwise convolutions (one input
channel per group) as a dense convolution with a zero-masked kernel, so a NaN in
one channel reached every output channel through ``0 * NaN`` (impl="lax", and
"fold", "auto" where they use it). jaxconv.impls.lax._xla_conv avoids that path.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv

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
def test_a_planted_nan_reaches_what_pytorch_reaches(torch, geometry, impl, dtype, where,
                                                   request):
    rank, c, o, groups, stride = geometry
    if impl == "lax" and where == "weight" and stride > 1 and dtype == "float32":
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            "XLA CPU's float32 lhs-dilated convolution (the lax impl's strided input "
            "gradient) multiplies the inserted zeros by the weight, so a NaN weight reaches "
            "input rows PyTorch's col2im never touches (issue 11)")))
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

    def jax_fn(impl):
        if transpose:
            f = lambda x, w, b: jaxconv.conv_transpose(x, w, b, stride, 1, 0, groups, 1,
                                                       impl=impl)
        else:
            f = lambda x, w, b: jaxconv.conv(x, w, b, stride, 1, 1, groups, padding_mode=mode,
                                             impl=impl)

        @jax.jit
        def run(x, w, b, cot):
            y, vjp = jax.vjp(f, x, w, b)
            return (y, *vjp(cot))
        return run

    runs = {impl: jax_fn(impl) for impl in IMPLS}
    for where, value in PLANTS:
        x, w, b = x0.copy(), w0.copy(), b0.copy()
        target = {"input": x, "weight": w, "bias": b}[where]
        target[(-1, 0, *(1,) * rank)[:target.ndim]] = value
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        if transpose:
            tconv = getattr(torch.nn.functional, f"conv_transpose{rank}d")
            ty = tconv(tx, tw, tb, stride, 1, 0, groups)
        else:
            module = getattr(torch.nn, f"Conv{rank}d")(c, o, 3, stride, 1, 1, groups, True, mode)
            with torch.no_grad():
                module.weight.copy_(tw)
                module.bias.copy_(tb)
            ty = module(tx)
        cot = rng.standard_normal(ty.shape).astype(np.float32)
        ty.backward(torch.tensor(cot))
        grads = (module.weight.grad, module.bias.grad) if not transpose else (tw.grad, tb.grad)
        theirs = [ty.detach().numpy(), tx.grad.numpy(), *(g.numpy() for g in grads)]
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
