"""The lax impl's CPU convolutions kept off YNNPACK (jaxconv/impls/lax.py, ``_conv``).

The routing only acts on 2-d convolutions with more than 16 channels whose last
spatial axis is long enough (at most 1/8 more work), which the small shapes of
the other parity tests never reach: these use 24-40 channels and a 42-wide last
axis, check the value and all three gradients against PyTorch, and check on the
compiled program which convolutions left YNNPACK.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import torch_conv_grads
from test_xla_options import _ynn_fusions

import jaxconv
from jaxconv._padding import pad_trailing
from jaxconv._spec import conv_spec
from jaxconv.impls import lax as lax_impl
from jaxconv.testing import TOLERANCES

# (c_in, c_out, kernel, stride, padding, dilation, groups, padding_mode, ynn): `ynn`
# names the lax impl's kernels (F, T, W) that still run a YNNPACK convolution.
CASES = [
    (24, 32, 3, 1, 1, 1, 1, "zeros", ""),
    (24, 24, 3, 1, 0, 1, 1, "zeros", ""),  # 'valid': 3 more outputs, 3 more zero taps
    (24, 24, 3, 1, 1, 1, 1, "reflect", ""),  # pre-padded input (T: declined already)
    (24, 24, 3, 1, 2, 2, 1, "zeros", ""),  # dilated: W needs 5 more taps
    (32, 32, 3, 1, 1, 1, 2, "zeros", ""),  # 16 channels per group (W: batch-grouped)
    (24, 24, 5, 1, 2, 1, 1, "circular", ""),
    (24, 32, 3, 2, 1, 1, 1, "zeros", "FW"),  # strided: T is lhs-dilated, never YNNPACK
    (24, 24, 1, 1, 0, 1, 1, "zeros", "W"),  # 1x1: W (one tap) stays
    (40, 40, 3, 1, 1, 1, 40, "zeros", "FTW"),  # depthwise: F, T faster in YNNPACK; W: XLA
    # rewrites its batch groups into a convolution YNNPACK takes (lax.py leaves it)
]
SHAPE = (2, 5, 42)  # batch, H, W: only the last axis is routed, if long enough


def _case_id(case):
    return "-".join(map(str, case[:-1]))


def _loss(case, impl):
    _, _, _, stride, padding, dilation, groups, mode, _ = case

    def loss(x, w, b, ct):
        y = jaxconv.conv2d(x, w, b, stride, padding, dilation, groups, padding_mode=mode,
                           impl=impl)
        return jnp.vdot(y, ct)
    return jax.value_and_grad(loss, argnums=(0, 1, 2))


def _arrays(case, dtype, torch):
    c_in, c_out, k, stride, padding, dilation, groups, mode, _ = case
    rng = np.random.default_rng(c_in + k + stride)
    x = rng.standard_normal((SHAPE[0], c_in, *SHAPE[1:])).astype(dtype)
    w = (0.3 * rng.standard_normal((c_out, c_in // groups, k, k))).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    ct, (y, dx, dw, db) = torch_conv_grads(torch, x, w, b, rng, stride, padding, dilation,
                                           groups, mode)
    expected = (float((y * ct).sum()), dx, dw, db)
    return (x, w, b, ct), expected


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("impl", ["lax", "fold", "auto"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_routed_convolutions_match_pytorch(torch, case, impl, dtype):
    args, (value, dx, dw, db) = _arrays(case, dtype, torch)
    got_value, (gx, gw, gb) = jax.jit(_loss(case, impl))(*args)
    rtol, atol = TOLERANCES[dtype]
    scale = 10 if dtype == "float32" else 1  # sums of ~1000 float32 products
    for name, got, want in (("value", got_value, value), ("d_input", gx, dx),
                            ("d_weight", gw, dw), ("d_bias", gb, db)):
        np.testing.assert_allclose(got, want, rtol=scale * rtol, atol=scale * atol,
                                   err_msg=f"{impl} {dtype} {name}")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_which_kernels_leave_ynnpack(torch, case):
    """Each of the lax impl's kernels alone: a YNNPACK convolution fusion in the
    compiled CPU program exactly if `ynn` names the kernel."""
    (x, w, _, ct), _ = _arrays(case, "float32", torch)
    _, _, _, stride, padding, dilation, groups, mode, ynn = case
    impl = jaxconv.get_impl("lax")
    spec, _ = conv_spec("test", x, w, None, stride, padding, dilation, groups, mode, None)
    xp = pad_trailing(x, spec.mode_padding, spec.padding_mode)
    kernels = {
        "F": (lambda a, b: impl.forward(a, b, spec), xp, w),
        "T": (lambda a, b: impl.input_grad(a, b, spec, xp.shape[2:]), ct, w),
        "W": (lambda a, b: impl.weight_grad(a, b, spec, w.shape[2:]), xp, ct),
    }
    for name, (fn, a, b) in kernels.items():
        in_ynn = "convolution" in _ynn_fusions(fn, a, b)
        assert in_ynn == (name in ynn), f"{name}: YNNPACK {in_ynn}"
    if groups == 1:  # what auto asks (jaxconv/_auto.py) agrees with the compiled program
        assert lax_impl.weight_grad_on_ynnpack(spec, xp.shape, w.shape, np.float32) == (
            "W" in ynn)


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("impl", ["lax", "auto"])
def test_a_nonfinite_input_in_the_routed_weight_gradient(torch, impl, exact):
    """The weight gradient's zero taps meet x: by default a NaN in x marks PyTorch's
    weight-gradient entries and may mark more (docs/numerics.md, "The NaN and Inf contract"); with
    set_exact_nonfinite(True) exactly PyTorch's. Output and input gradient: exact."""
    case = CASES[1]  # 'valid': W routed through 3 more zero taps
    (x, w, b, ct), _ = _arrays(case, "float32", torch)
    x[1, 3, 2, 40] = np.nan  # a column only the zero taps reach from some taps
    _, _, _, stride, padding, dilation, groups, mode, _ = case

    def f(x, w, b):
        return jaxconv.conv2d(x, w, b, stride, padding, dilation, groups, padding_mode=mode,
                              impl=impl)
    jaxconv.set_exact_nonfinite(exact)
    try:
        y, vjp = jax.vjp(f, jnp.asarray(x), jnp.asarray(w), jnp.asarray(b))
        ours = [y, *vjp(jnp.asarray(ct))]
    finally:
        jaxconv.set_exact_nonfinite(False)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride, padding, dilation, groups)
    ty.backward(torch.tensor(ct))
    for name, a, t in zip(("output", "d_input", "d_weight", "d_bias"), ours,
                          (ty.detach(), tx.grad, tw.grad, tb.grad), strict=True):
        a, t = np.isnan(np.asarray(a)), np.isnan(t.numpy())
        assert t.any() == (name in ("output", "d_weight")), name
        if name == "d_weight" and not exact:
            assert np.all(a[t]) and a.sum() > t.sum(), "not the documented superset"
        else:
            assert np.array_equal(a, t), f"{name}: {np.argwhere(a ^ t)[:5].tolist()}"
