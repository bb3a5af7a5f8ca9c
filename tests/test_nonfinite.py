"""NaN and Inf reach exactly the entries PyTorch's reach (outputs and gradients).

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
