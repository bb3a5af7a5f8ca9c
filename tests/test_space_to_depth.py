"""fold's space-to-depth path for strided 2-d convolutions (jaxconv/impls/fold.py).

A strided convolution whose kernel the stride phases fit with at most a third
more taps is computed as a stride-1 one on the phases stacked as channels. The
shared parity grid's small kernels reach it only now and then; these cases do on
purpose: image stems, patchify and 2x2 downsampling, non-square strides, a
dilated stride-1 axis, groups (split and not), padding modes, rows no output
reads, unbatched and empty batches. Value and all gradients against PyTorch for
fold and auto in float32 and float64, which kernels take the path, and a
second-order gradient against the lax impl.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import torch_conv_grads

import jaxconv
from jaxconv._padding import pad_trailing
from jaxconv._spec import conv_spec
from jaxconv.impls import fold
from jaxconv.testing import TOLERANCES

# (input shape, weight shape, conv2d keyword arguments, kernels on the path)
CASES = [
    ((2, 3, 23, 22), (8, 3, 7, 7), dict(stride=2, padding=3), "TW"),  # a stem (F: 7 % 2)
    ((2, 3, 16, 15), (4, 3, 7, 7), dict(stride=2, padding=3, padding_mode="reflect"), "TW"),
    ((2, 3, 26, 25), (8, 3, 4, 4), dict(stride=4), "FT"),  # patchify; 2 rows unread
    ((2, 40, 10, 12), (24, 40, 2, 2), dict(stride=2), "FT"),  # 1x1 inside: any channels
    ((2, 24, 21, 20), (16, 24, 4, 4), dict(stride=2, padding=1), "F"),  # T: > 4, W: > 16
    ((2, 4, 19, 21), (6, 2, 3, 2), dict(stride=(3, 2), padding=(1, 0), groups=2), "FT"),
    ((2, 3, 15, 14), (5, 3, 2, 3), dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2)),
     "FTW"),
    ((2, 20, 13, 13), (20, 1, 4, 4), dict(stride=2, padding=1, groups=20), "FTW"),
    ((3, 16, 15), (4, 3, 2, 2), dict(stride=2, padding_mode="circular", padding=1), "FT"),
    ((0, 3, 16, 15), (4, 3, 8, 6), dict(stride=2, padding=3), "FTW"),
    # not taken: 3x3 at stride 2 (over a third more taps), dilated on a strided axis
    ((2, 3, 15, 14), (4, 3, 3, 3), dict(stride=2, padding=1), ""),
    ((2, 3, 17, 16), (4, 3, 2, 2), dict(stride=2, dilation=2), ""),
]


def _case_id(case):
    x_shape, w_shape, kwargs, _ = case
    return "x".join(map(str, x_shape)) + "-" + "x".join(map(str, w_shape)) + "-" + "-".join(
        f"{k}{v}" for k, v in kwargs.items()).replace(" ", "")


def _arrays(case, dtype, torch):
    x_shape, w_shape, kwargs, _ = case
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (0.3 * rng.standard_normal(w_shape)).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    ct, expected = torch_conv_grads(torch, x, w, b, rng, **kwargs)
    return (x, w, b, ct), expected


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("impl", ["fold", "auto"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_matches_pytorch(torch, case, impl, dtype):
    (x, w, b, ct), want = _arrays(case, dtype, torch)
    kwargs = case[2]

    def f(x, w, b):
        return jaxconv.conv2d(x, w, b, **kwargs, impl=impl)
    y, vjp = jax.vjp(jax.jit(f), x, w, b)
    rtol, atol = TOLERANCES[dtype]
    scale = 10 if dtype == "float32" else 1  # sums of a few hundred float32 products
    for name, got, expected in zip(("value", "d_input", "d_weight", "d_bias"),
                                   (y, *vjp(jnp.asarray(ct))), want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=scale * rtol, atol=scale * atol,
                                   err_msg=f"{impl} {dtype} {name}")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_which_kernels_take_the_path(torch, monkeypatch, case):
    """fold's kernels, run eagerly, build the phase tensor exactly in the kernels the
    case names; auto picks fold for those kernels of ungrouped layers."""
    (x, w, _, ct), _ = _arrays(case, "float32", torch)
    x_shape, w_shape, kwargs, path = case
    opts = dict(stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros") | kwargs
    batched = len(x_shape) == 4
    spec, _ = conv_spec("test", x, w, None, opts["stride"], opts["padding"],
                        opts["dilation"], opts["groups"], opts["padding_mode"], None)
    if not batched:
        x, ct = x[None], ct[None]
    xp = pad_trailing(jnp.asarray(x), spec.mode_padding, spec.padding_mode)
    calls = []
    to_phases = fold._to_phases
    monkeypatch.setattr(fold, "_to_phases", lambda a, pads: calls.append(a.shape) or
                        to_phases(a, pads))
    kernels = {
        "F": lambda: fold.forward(xp, w, spec),
        "T": lambda: fold.input_grad(ct, w, spec, xp.shape[2:]),
        "W": lambda: fold.weight_grad(xp, ct, spec, w.shape[2:]),
    }
    for name, run in kernels.items():
        calls.clear()
        run()
        assert bool(calls) == (name in path), f"{name}: phase tensors {calls}"
    if opts["groups"] == 1 and len(x_shape) == 4:
        choice = jaxconv.explain_auto(x.shape, w.shape, **kwargs, backend="cpu")
        for name, impl in zip("FTW", choice.impls, strict=True):
            if name in path:
                assert impl == "fold", (name, choice)


def test_second_order_gradient_matches_lax():
    """grad of grad through the path (its kernels' own custom rules) against the lax
    impl, float64 (the test session enables x64)."""
    x_shape, w_shape, kwargs, _ = CASES[0]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)

    def outer(impl):
        def inner(x, w):
            return jnp.sum(jnp.tanh(jaxconv.conv2d(x, w, **kwargs, impl=impl)))
        def norm(x, w):
            gx, gw = jax.grad(inner, argnums=(0, 1))(x, w)
            return jnp.sum(gx ** 2) + jnp.sum(gw ** 2)
        return jax.jit(jax.grad(norm, argnums=(0, 1)))
    got = outer("fold")(x, w)
    want = outer("lax")(x, w)
    rtol, atol = TOLERANCES["float64"]
    for g, e in zip(got, want, strict=True):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("impl", ["fold", "auto"])
def test_a_nonfinite_input_reaches_what_pytorch_reaches(torch, impl, value):
    """A 7x7 stride-2 forward would meet x with zero taps (7 = 2·4 - 1), so it stays
    off the path: a NaN or Inf planted in a row only such a tap would read from
    some outputs marks exactly PyTorch's outputs and gradients, as every impl does
    (docs/numerics.md, "The NaN and Inf contract"); the input and weight gradients take the path."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 23, 22)).astype(np.float32)
    w = rng.standard_normal((8, 3, 7, 7)).astype(np.float32)
    x[1, 2, 9, 10] = value  # padded row 12: tap 7 of output 3 (zero), taps 0-6 of others

    def f(x, w):
        return jaxconv.conv2d(x, w, stride=2, padding=3, impl=impl)
    y, vjp = jax.vjp(f, jnp.asarray(x), jnp.asarray(w))
    ct = rng.standard_normal(y.shape).astype(np.float32)
    ours = [y, *vjp(jnp.asarray(ct))]
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    ty = torch.nn.functional.conv2d(tx, tw, stride=2, padding=3)
    ty.backward(torch.tensor(ct))
    for name, a, t in zip(("output", "d_input", "d_weight"), ours,
                          (ty.detach(), tx.grad, tw.grad), strict=True):
        a, t = np.asarray(a), t.numpy()
        for kind in (np.isnan, np.isposinf, np.isneginf):
            assert np.array_equal(kind(a), kind(t)), (
                f"{name} {kind.__name__}: {np.argwhere(kind(a) ^ kind(t))[:5].tolist()}")


@pytest.mark.parametrize(("fn", "x_shape", "w_shape", "kwargs"), [
    # conv_transpose2d: its forward is the input gradient, its weight gradient gets a
    # g cropped by output_padding's extra rows... read back through the path
    ("conv_transpose2d", (2, 8, 6, 7), (8, 3, 4, 3), dict(stride=(2, 1), padding=(1, 2),
                                                          output_padding=(1, 0),
                                                          dilation=(1, 2))),
    ("conv_transpose2d", (2, 8, 5, 5), (8, 3, 7, 7), dict(stride=2, padding=3,
                                                          output_padding=1)),
    # 3-d: the path after the leading axis is folded away (forward, weight gradient)
    ("conv3d", (2, 3, 5, 12, 11), (4, 3, 2, 4, 4), dict(stride=(1, 2, 2), padding=(0, 1, 1))),
    # padding wider than the kernel: x cropped into the low padding on the high side
    ("conv2d", (2, 3, 3, 6), (4, 3, 4, 4), dict(stride=4, padding=5)),
], ids=["transpose-mixed", "transpose-stem", "3d", "wide-padding"])
def test_other_entry_points_match_pytorch(torch, fn, x_shape, w_shape, kwargs):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    tfn = getattr(torch.nn.functional, fn)
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    ty = tfn(tx, tw, **kwargs)
    ct = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(ct))
    y, vjp = jax.vjp(lambda x, w: getattr(jaxconv, fn)(x, w, **kwargs, impl="fold"), x, w)
    rtol, atol = TOLERANCES["float64"]
    for name, got, want in zip(("value", "d_input", "d_weight"), (y, *vjp(ct)),
                               (ty.detach(), tx.grad, tw.grad), strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=rtol, atol=atol, err_msg=name)
