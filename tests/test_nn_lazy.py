"""jaxconv.nn Lazy convolution layers and Unfold / Fold layers, against torch.nn itself."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxconv import nn

# (name without "Lazy", args without in_channels, kwargs, in_channels): every rank and
# kind, groups, stride, dilation, padding forms and modes, bias off, output_padding.
LAZY = [
    ("Conv1d", (6, 3), dict(stride=2, padding=1, groups=2), 4),
    ("Conv2d", (4, (3, 2)), dict(padding="same", dilation=(1, 2), padding_mode="reflect"), 3),
    ("Conv3d", (4, 2), dict(groups=2, bias=False, padding_mode="circular", padding=1), 2),
    ("ConvTranspose1d", (6, 3), dict(stride=2, padding=1, output_padding=1, groups=2), 4),
    ("ConvTranspose2d", (3, (3, 2)), dict(stride=(2, 1), dilation=(1, 2), bias=False), 2),
    ("ConvTranspose3d", (4, 2), dict(stride=2, padding=(0, 1, 0), output_padding=(1, 0, 0)), 3),
]
LAZY_IDS = [c[0] for c in LAZY]


def _rank(name):
    return int(name[-2])


def _torch_lazy(torch, name, args, kwargs, x, seed=0):
    """PyTorch's Lazy layer, materialised by a forward on `x` (it then is the plain one)."""
    torch.manual_seed(seed)
    module = getattr(torch.nn, "Lazy" + name)(*args, **kwargs, dtype=x.dtype)
    with torch.no_grad():
        module(x)
    assert type(module).__name__ == name  # cls_to_become
    return module


def _input(in_channels, rank, batch=2, size=5, seed=1):
    shape = (in_channels, *(size,) * rank)
    if batch is not None:
        shape = (batch, *shape)
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("case", [(*c, 2) for c in LAZY] + [(*LAZY[0], None), (*LAZY[4], None)],
                         ids=[*LAZY_IDS, f"{LAZY_IDS[0]}-unbatched", f"{LAZY_IDS[4]}-unbatched"])
def test_lazy_layer_matches_pytorchs_lazy_layer(torch, case):
    name, args, kwargs, in_channels, batch = case
    x = _input(in_channels, _rank(name), batch)
    module = _torch_lazy(torch, name, args, kwargs, torch.tensor(x))
    layer = getattr(nn, "Lazy" + name)(*args, **kwargs, dtype="float64")
    params = layer.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, params) == {
        k: tuple(v.shape) for k, v in module.named_parameters()}
    assert layer.materialize(in_channels) == getattr(nn, name)(in_channels, *args, **kwargs,
                                                                dtype="float64")
    params = {k: jnp.asarray(v.detach().numpy()) for k, v in module.named_parameters()}

    tx = torch.tensor(x, requires_grad=True)
    ty = module(tx)
    if batch is not None:  # forward only; the plain layers' gradients are test_nn.py's
        y = jax.jit(lambda p, x: layer(p, x))(params, x)
        np.testing.assert_allclose(np.asarray(y), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
        return
    y, vjp = jax.vjp(lambda p, x: layer(p, x), params, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    cot = np.random.default_rng(2).standard_normal(y.shape)
    d_params, d_x = vjp(jnp.asarray(cot))
    ty.backward(torch.tensor(cot))
    np.testing.assert_allclose(np.asarray(d_x), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    for k, g in d_params.items():
        np.testing.assert_allclose(np.asarray(g), getattr(module, k).grad.numpy(),
                                   rtol=1e-10, atol=1e-10)


def test_lazy_transposed_layer_takes_output_size(torch):
    x = _input(3, 1, size=4)
    module = _torch_lazy(torch, "ConvTranspose1d", (2, 3), dict(stride=3), torch.tensor(x))
    layer = nn.LazyConvTranspose1d(2, 3, stride=3, dtype="float64")
    params = {k: jnp.asarray(v.detach().numpy()) for k, v in module.named_parameters()}
    y = layer(params, x, output_size=(13,))
    np.testing.assert_allclose(np.asarray(y),
                               module(torch.tensor(x), output_size=(13,)).detach().numpy(),
                               rtol=1e-10, atol=1e-10)
    assert y.shape == (2, 2, 13)


@pytest.mark.parametrize("case", [
    ("Conv2d", (16, 3), dict(groups=2), 8),
    ("ConvTranspose1d", (32, 2), dict(groups=4), 8),  # fan_in = out // groups * k
], ids=lambda c: c[0] if isinstance(c, str) else None)
def test_lazy_init_draws_pytorchs_distribution(torch, case):
    name, args, kwargs, in_channels = case
    x = _input(in_channels, _rank(name), batch=None)
    modules = [_torch_lazy(torch, name, args, kwargs, torch.tensor(x, dtype=torch.float32),
                           seed=s) for s in range(10)]
    fan_in = torch.nn.init._calculate_fan_in_and_fan_out(modules[0].weight)[0]
    bound = 1 / math.sqrt(fan_in)
    layer = getattr(nn, "Lazy" + name)(*args, **kwargs)
    ours = [layer.init(k, x) for k in jax.random.split(jax.random.key(0), 10)]
    assert layer.materialize(in_channels).fan_in == fan_in
    for part in ("weight", "bias"):
        theirs = np.concatenate([getattr(m, part).detach().numpy().ravel() for m in modules])
        mine = np.concatenate([np.asarray(p[part]).ravel() for p in ours])
        assert ours[0][part].dtype == jnp.float32
        assert np.abs(mine).max() <= bound and np.abs(theirs).max() <= bound
        assert np.abs(mine).max() > 0.9 * bound
        assert scipy.stats.ks_2samp(mine, theirs).pvalue > 1e-3
        assert scipy.stats.kstest(mine, scipy.stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
    # The lazy init is the plain layer's init for the inferred in_channels, key for key.
    plain = layer.materialize(in_channels).init(jax.random.key(5))
    lazy = layer.init(jax.random.key(5), x)
    assert all(np.array_equal(plain[k], lazy[k]) for k in plain)


def test_lazy_layers_are_hashable_and_serve_any_in_channels():
    a = nn.LazyConv2d(8, 3, padding=1)
    b = nn.LazyConv2d(8, (3, 3), padding=(1, 1), stride=np.int64(1))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != nn.LazyConv2d(8, 3) and a != nn.LazyConv(2, 8, 3, padding=1)
    apply = jax.jit(lambda layer, p, x: layer(p, x), static_argnums=0)
    for channels in (1, 3):
        x = jnp.ones((2, channels, 6, 6), jnp.float32)
        assert apply(a, a.init(jax.random.key(0), x), x).shape == (2, 8, 6, 6)
    # vmap over unbatched calls of one params set.
    x = jnp.asarray(_input(3, 2, batch=4), jnp.float32)
    params = a.init(jax.random.key(0), x[0])
    np.testing.assert_allclose(np.asarray(jax.vmap(lambda xi: a(params, xi))(x)),
                               np.asarray(a(params, x)), rtol=1e-5, atol=1e-5)
    four_d = nn.LazyConv(4, 2, 1)
    assert four_d.materialize(3) == nn.Conv(4, 3, 2, 1)
    assert four_d.init(jax.random.key(0), jnp.ones((3, 2, 2, 2, 2)))["weight"].shape == (
        2, 3, 1, 1, 1, 1)


def test_lazy_reprs():
    assert repr(nn.LazyConv2d(16, 3, padding=1, groups=2)) == (
        "LazyConv2d(16, kernel_size=(3, 3), padding=(1, 1), groups=2)")
    assert repr(nn.LazyConvTranspose1d(4, 2, stride=2, output_padding=1, bias=False)) == (
        "LazyConvTranspose1d(4, kernel_size=(2,), stride=(2,), output_padding=(1,), "
        "bias=False)")
    assert repr(nn.LazyConv(4, 8, 1, impl="gather")) == (
        "LazyConv(4, 8, kernel_size=(1, 1, 1, 1), impl='gather')")


def test_lazy_errors(torch):
    # Constructor errors are the plain layer's, named after the lazy class.
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.nn.LazyConv2d: out_channels must be divisible by groups (as in PyTorch), "
            "got out_channels=15, groups=2.")):
        nn.LazyConv2d(15, 3, groups=2)
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.nn.LazyConvTranspose2d: Only \"zeros\" padding mode is supported for "
            "LazyConvTranspose2d (as in PyTorch), got padding_mode='reflect'.")):
        nn.LazyConvTranspose2d(4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.nn.LazyConv1d: groups must be a positive integer (as in PyTorch), "
            "got groups=0.")):
        nn.LazyConv1d(4, 3, groups=0)
    # init: the input's rank, as PyTorch's _get_in_channels checks it.
    layer = nn.LazyConv2d(4, 3, groups=2)
    with pytest.raises(RuntimeError, match=re.escape(
            "Expected 3D (unbatched) or 4D (batched) input to LazyConv2d, but got input "
            "of size: torch.Size([5, 5])")):
        torch.nn.LazyConv2d(4, 3)(torch.zeros(5, 5))
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.nn.LazyConv2d: Expected 3D (unbatched) or 4D (batched) input `x` (as in "
            "PyTorch), got x.shape=(5, 5).")):
        layer.init(jax.random.key(0), jnp.zeros((5, 5)))
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.nn.LazyConv2d: in_channels, inferred from the channel axis of `x`, must "
            "be positive and divisible by groups (=2), got in_channels=3 from "
            "x.shape=(1, 3, 5, 5).")):
        layer.init(jax.random.key(0), jnp.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=re.escape(
            "in_channels=0 from x.shape=(0, 5, 5).")):
        layer.init(jax.random.key(0), jnp.zeros((0, 5, 5)))
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.LazyConv2d: `x` must be an array (jax.Array or numpy.ndarray), got str.")):
        layer.init(jax.random.key(0), "x")
    # apply: input against params.
    params = layer.init(jax.random.key(0), jnp.zeros((4, 5, 5)))
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.nn.LazyConv2d: `x` has 6 channels (x.shape=(2, 6, 5, 5)), but `params` "
            "were initialised for in_channels=4 (params['weight'].shape=(4, 2, 3, 3)).")):
        layer(params, jnp.zeros((2, 6, 5, 5)))
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.LazyConv2d: `params` must be a dict with a 'weight' (as returned by "
            "init(key, x)), got ['bias'].")):
        layer({"bias": params["bias"]}, jnp.zeros((2, 4, 5, 5)))
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.nn.LazyConv2d: params['weight'] must have 4 dimensions (out, in // "
            "groups, *kernel_size), got shape (4, 2, 3).")):
        layer({"weight": jnp.zeros((4, 2, 3)), "bias": params["bias"]}, jnp.zeros((4, 5, 5)))
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.Conv2d: `params` must be a dict with keys ('weight', 'bias') (as "
            "returned by init), got ['weight'].")):
        layer({"weight": params["weight"]}, jnp.zeros((4, 5, 5)))


@pytest.mark.parametrize("case", LAZY[1:2] + LAZY[4:5], ids=LAZY_IDS[1:2] + LAZY_IDS[4:5])
def test_lazy_interop_round_trips(torch, case):
    name, args, kwargs, in_channels = case
    x = _input(in_channels, _rank(name))
    layer = getattr(nn, "Lazy" + name)(*args, **kwargs, dtype="float64")
    params = layer.init(jax.random.key(1), x)
    module = nn.to_torch(layer, params)
    assert type(module) is getattr(torch.nn, name)  # the materialised (plain) layer
    np.testing.assert_allclose(module(torch.tensor(x)).detach().numpy(),
                               np.asarray(layer(params, x)), rtol=1e-10, atol=1e-10)
    back, back_params = nn.from_torch(module)
    assert back == layer.materialize(in_channels)
    assert all(np.array_equal(back_params[k], params[k]) for k in params)
    # A materialised PyTorch Lazy layer converts like a plain one.
    lazy = _torch_lazy(torch, name, args, kwargs, torch.tensor(x))
    converted, converted_params = nn.from_torch(lazy)
    assert converted == layer.materialize(in_channels)
    assert all(np.array_equal(converted_params[k], getattr(lazy, k).detach().numpy())
               for k in converted_params)


def test_lazy_interop_errors(torch):
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.from_torch: `module` must be a torch.nn Conv1d/2d/3d or "
            "ConvTranspose1d/2d/3d, got LazyConvTranspose1d. It is an unmaterialised Lazy "
            "layer, whose in_channels are not known yet: run it once on an input (it then "
            "becomes a ConvTranspose1d), or use jaxconv.nn.LazyConvTranspose1d and "
            "init(key, x).")):
        nn.from_torch(torch.nn.LazyConvTranspose1d(4, 3))
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.LazyConv1d: `params` must be a dict with a 'weight'")):
        nn.to_torch(nn.LazyConv1d(2, 3), {})


# ---------------------------------------------------------------- Unfold / Fold

# (kernel_size, dilation, padding, stride, input spatial size): 2-d, PyTorch's forms.
UNFOLD_2D = [
    ((2, 3), 1, 0, 1, (5, 6)),
    (3, (1, 2), (1, 0), 2, (7, 8)),
    (16, 1, 0, 16, (32, 48)),  # ViT patching
    ((1, 2), 2, 2, (3, 1), (4, 5)),
]


@pytest.mark.parametrize("batch", [3, None], ids=["batched", "unbatched"])
@pytest.mark.parametrize("case", UNFOLD_2D, ids=range(len(UNFOLD_2D)))
def test_unfold_and_fold_layers_match_pytorch(torch, case, batch):
    kernel_size, dilation, padding, stride, size = case
    x = np.random.default_rng(4).standard_normal(((batch,) if batch else ()) + (2, *size))
    t_unfold = torch.nn.Unfold(kernel_size, dilation, padding, stride)
    unfold = nn.Unfold(kernel_size, dilation, padding, stride)
    y, vjp = jax.vjp(jax.jit(lambda x: unfold({}, x)), jnp.asarray(x))
    tx = torch.tensor(x, requires_grad=True)
    ty = t_unfold(tx)
    np.testing.assert_allclose(np.asarray(y), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    cot = np.random.default_rng(5).standard_normal(y.shape)
    ty.backward(torch.tensor(cot))
    np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(cot))[0]), tx.grad.numpy(),
                               rtol=1e-12, atol=1e-12)

    fold = nn.Fold(size, kernel_size, dilation, padding, stride)
    t_fold = torch.nn.Fold(size, kernel_size, dilation, padding, stride)
    np.testing.assert_allclose(np.asarray(fold(fold.init(jax.random.key(0)), cot)),
                               t_fold(torch.tensor(cot)).numpy(), rtol=1e-12, atol=1e-12)
    assert nn.from_torch(t_unfold) == (unfold, {}) and nn.from_torch(t_fold) == (fold, {})
    for layer, expected in ((unfold, y), (fold, fold({}, cot))):
        module = nn.to_torch(layer, {})
        assert type(module) is getattr(torch.nn, type(layer).__name__)
        assert nn.from_torch(module) == (layer, {})
        source = x if layer is unfold else cot
        np.testing.assert_allclose(module(torch.tensor(source)).numpy(), np.asarray(expected),
                                   rtol=1e-12, atol=1e-12)


def _identity_conv(torch, x, kernel_size, dilation, padding, stride):
    """An independent N-d unfold: a grouped convolution with one-hot kernels (PyTorch)."""
    channels, taps = x.shape[1], math.prod(kernel_size)
    weight = torch.eye(taps, dtype=x.dtype).reshape(taps, 1, *kernel_size).repeat(
        channels, *(1,) * (len(kernel_size) + 1))
    conv = getattr(torch.nn.functional, f"conv{len(kernel_size)}d")
    y = conv(x, weight, None, stride, padding, dilation, groups=channels)
    return y.reshape(x.shape[0], channels * taps, -1)


@pytest.mark.parametrize("case", [
    ((2, 1, 3), (1, 2, 1), (1, 0, 2), (2, 1, 1), (5, 4, 3)),
    ((3,), (2,), (1,), (2,), (9,)),
], ids=["3d", "1d"])
def test_nd_unfold_and_fold_layers_match_a_pytorch_convolution(torch, case):
    kernel_size, dilation, padding, stride, size = case
    x = np.random.default_rng(6).standard_normal((2, 3, *size))
    unfold = nn.Unfold(kernel_size, dilation, padding, stride)
    y = unfold({}, x)
    tx = torch.tensor(x, requires_grad=True)
    ty = _identity_conv(torch, tx, kernel_size, dilation, padding, stride)
    np.testing.assert_allclose(np.asarray(y), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    # Fold is unfold's adjoint: the input gradient of PyTorch's convolution.
    cot = np.random.default_rng(7).standard_normal(y.shape)
    ty.backward(torch.tensor(cot))
    fold = nn.Fold(size, kernel_size, dilation, padding, stride)
    np.testing.assert_allclose(np.asarray(fold({}, cot)), tx.grad.numpy(),
                               rtol=1e-12, atol=1e-12)
    assert fold.num_spatial_dims == unfold.num_spatial_dims == len(size)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_unfold_layer_padding_modes_are_pytorchs_pad_then_unfold(torch, mode):
    x = np.random.default_rng(8).standard_normal((2, 3, 5, 6))
    layer = nn.Unfold((3, 2), padding=(2, 1), stride=(1, 2), padding_mode=mode, impl="slices")
    padded = torch.nn.functional.pad(torch.tensor(x), (1, 1, 2, 2), mode=mode)
    expected = torch.nn.functional.unfold(padded, (3, 2), stride=(1, 2))
    np.testing.assert_allclose(np.asarray(layer({}, x)), expected.numpy(), rtol=1e-12,
                               atol=1e-12)


def test_unfold_layers_are_hashable_descriptions_with_pytorchs_repr():
    from jaxconv import _unfold

    # one impl list: the layers accept exactly the functions' impls
    for impl in _unfold.IMPLS:
        assert nn.Unfold(2, stride=2, impl=impl).impl == impl
    a, b = nn.Unfold(2, stride=2), nn.Unfold((2, 2), 1, (0, 0), np.int64(2))
    assert a == b and hash(a) == hash(b) and a != nn.Unfold(2)
    assert a.init(jax.random.key(0)) == {} and a.init() == {}
    assert repr(a) == "Unfold(kernel_size=(2, 2), dilation=(1, 1), padding=(0, 0), stride=(2, 2))"
    assert repr(nn.Unfold(3, padding_mode="circular", impl="gather")) == (
        "Unfold(kernel_size=(3, 3), dilation=(1, 1), padding=(0, 0), stride=(1, 1), "
        "padding_mode='circular', impl='gather')")
    assert repr(nn.Fold((4, 5), 2, padding=1)) == (
        "Fold(output_size=(4, 5), kernel_size=(2, 2), dilation=(1, 1), padding=(1, 1), "
        "stride=(1, 1))")
    assert nn.Fold(4, (1, 2, 3)).output_size == (4, 4, 4)  # rank from the first tuple
    assert nn.Unfold(2, (1, 1, 1)).kernel_size == (2, 2, 2)
    apply = jax.jit(lambda layer, x: layer({}, x), static_argnums=0)
    assert apply(a, jnp.ones((1, 2, 4, 4))).shape == (1, 8, 4)


def test_unfold_layer_errors(torch):
    cases = [
        (ValueError, "jaxconv.nn.Unfold: `kernel_size` must be positive, got kernel_size=0.",
         lambda: nn.Unfold(0)),
        (ValueError, "jaxconv.nn.Unfold: `padding` must be non-negative, got padding=-1.",
         lambda: nn.Unfold(2, padding=-1)),
        (ValueError, "jaxconv.nn.Unfold: `stride` must be an int or a tuple of 3 ints for a "
         "3-d convolution, got stride=(1, 2) of length 2.",
         lambda: nn.Unfold((2, 2, 2), stride=(1, 2))),
        (ValueError, "jaxconv.nn.Unfold: `kernel_size` must have at least one entry (the "
         "spatial rank), got kernel_size=().", lambda: nn.Unfold(())),
        (ValueError, "jaxconv.nn.Unfold: `padding_mode` must be one of ('zeros', 'reflect', "
         "'replicate', 'circular'), got padding_mode='mirror'.",
         lambda: nn.Unfold(2, padding_mode="mirror")),
        (ValueError, "jaxconv.nn.Unfold: `impl` must be one of ('auto', 'gather', 'slices', "
         "'reshape'), got impl='xla'.", lambda: nn.Unfold(2, impl="xla")),
        (TypeError, "jaxconv.nn.Fold: `output_size` must be an int or a tuple of 2 ints, got "
         "4.5.", lambda: nn.Fold(4.5, 2)),
        (ValueError, "jaxconv.nn.Fold: `dilation` must be positive, got dilation=(1, 0).",
         lambda: nn.Fold((4, 4), 2, dilation=(1, 0))),
        (TypeError, "jaxconv.nn.Unfold: `params` must be an empty dict (as returned by init; "
         "the layer has no parameters), got ['weight'].",
         lambda: nn.Unfold(2)({"weight": 1}, jnp.ones((1, 1, 3, 3)))),
        (TypeError, "jaxconv.nn.Fold: `params` must be an empty dict (as returned by init; "
         "the layer has no parameters), got NoneType.",
         lambda: nn.Fold(3, 2)(None, jnp.ones((1, 4, 4)))),
        (ValueError, "jaxconv.nn.to_torch: PyTorch's Unfold is 2-d only, got "
         "Unfold(kernel_size=(2, 2, 2), dilation=(1, 1, 1), padding=(0, 0, 0), "
         "stride=(1, 1, 1)).", lambda: nn.to_torch(nn.Unfold((2, 2, 2)), {})),
        (ValueError, "jaxconv.nn.to_torch: PyTorch's Unfold pads with zeros only, got ",
         lambda: nn.to_torch(nn.Unfold(2, padding_mode="reflect"), {})),
        (TypeError, "jaxconv.nn.to_torch: `params` of an Fold must be an empty dict, got "
         "['w'].", lambda: nn.to_torch(nn.Fold(3, 2), {"w": 1})),
    ]
    for error, text, call in cases:
        with pytest.raises(error, match=re.escape(text)):
            call()
    # Input errors come from the functions, which the layer calls.
    with pytest.raises(ValueError, match=re.escape("jaxconv.unfold: `input` must be 4-d")):
        nn.Unfold(2)({}, jnp.ones((1, 1, 1, 3, 3)))
    with pytest.raises(ValueError, match=re.escape("jaxconv.fold: `input`'s last dimension")):
        nn.Fold(3, 2)({}, jnp.ones((1, 4, 5)))


def test_exports():
    for name in ("Unfold", "Fold", "LazyConv", "LazyConvTranspose",
                 *(f"Lazy{k}{r}d" for k in ("Conv", "ConvTranspose") for r in (1, 2, 3))):
        assert name in nn.__all__ and hasattr(nn, name)
