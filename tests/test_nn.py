"""jaxconv.nn layers and PyTorch interop, against torch.nn itself."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import jaxconv
from jaxconv import nn

# (torch class, args, kwargs): every rank, both kinds, groups, stride, dilation,
# padding forms and modes, bias off.
MODULES = [
    ("Conv1d", (4, 6, 3), dict(stride=2, padding=1, groups=2)),
    ("Conv1d", (3, 5, 4), dict(padding="same", dilation=2, padding_mode="reflect")),
    ("Conv2d", (4, 8, 3), dict(padding=1, groups=4, bias=False, padding_mode="circular")),
    ("Conv2d", (3, 4, (3, 2)), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2))),
    ("Conv2d", (2, 4, 3), dict(padding="valid", padding_mode="replicate")),
    ("Conv3d", (2, 4, 3), dict(padding="same", groups=2, padding_mode="replicate")),
    ("ConvTranspose1d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1, groups=2)),
    ("ConvTranspose2d", (4, 3, (3, 2)), dict(stride=(2, 1), dilation=(1, 2), bias=False)),
    ("ConvTranspose3d", (2, 4, 2), dict(stride=2, padding=(0, 1, 0), output_padding=(1, 0, 0))),
]
IDS = [f"{c}-{i}" for i, (c, _, _) in enumerate(MODULES)]


def _torch_module(torch, name, args, kwargs, dtype=None, seed=0):
    torch.manual_seed(seed)
    return getattr(torch.nn, name)(*args, **kwargs, dtype=dtype or torch.float64)


def _input(module, batch=2, size=6, seed=1):
    rank = len(module.kernel_size)
    return np.random.default_rng(seed).standard_normal((batch, module.in_channels,
                                                        *(size,) * rank))


@pytest.mark.parametrize("case", MODULES, ids=IDS)
def test_from_torch_layer_matches_the_module_forward_and_gradients(torch, case):
    module = _torch_module(torch, *case)
    layer, params = nn.from_torch(module)
    assert type(layer).__name__ == case[0]
    assert layer == getattr(nn, case[0])(*case[1], **case[2], dtype="float64")
    x = _input(module)

    y, vjp = jax.vjp(lambda p, x: layer(p, x), params, jnp.asarray(x))
    cot = np.random.default_rng(2).standard_normal(y.shape)
    d_params, d_x = vjp(jnp.asarray(cot))

    tx = torch.tensor(x, requires_grad=True)
    ty = module(tx)
    ty.backward(torch.tensor(cot))
    np.testing.assert_allclose(np.asarray(y), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.asarray(d_x), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    for name, g in d_params.items():
        np.testing.assert_allclose(np.asarray(g), getattr(module, name).grad.numpy(),
                                   rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", MODULES[:3] + MODULES[6:7], ids=IDS[:3] + IDS[6:7])
def test_layers_compose_with_jit_vmap_and_grad(case):
    layer = getattr(nn, case[0])(*case[1], **case[2], impl="gather")
    params = layer.init(jax.random.key(0))
    shape = (3, layer.in_channels, *(7,) * layer.num_spatial_dims)
    x = jnp.asarray(np.random.default_rng(3).standard_normal(shape), jnp.float32)
    apply = jax.jit(lambda layer, p, x: layer(p, x), static_argnums=0)
    batched = apply(layer, params, x)
    mapped = jax.vmap(lambda xi: layer(params, xi))(x)  # unbatched calls
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(batched), rtol=1e-5, atol=1e-5)
    grads = jax.grad(lambda p: apply(layer, p, x).sum())(params)
    assert jax.tree.map(jnp.shape, grads) == jax.tree.map(jnp.shape, params)


def test_layers_are_hashable_descriptions():
    a = nn.Conv2d(4, 8, 3, padding=1)
    b = nn.Conv2d(4, 8, (3, 3), padding=(1, 1), stride=np.int64(1))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != nn.Conv(2, 4, 8, 3, padding=1)  # a different class, as in PyTorch
    assert a != nn.Conv2d(4, 8, 3, padding=1, impl="gather")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.stride = (2, 2)
    assert repr(a) == "Conv2d(4, 8, kernel_size=(3, 3), padding=(1, 1))"
    assert repr(nn.Conv(4, 2, 2, 1, bias=False)) == (
        "Conv(4, 2, 2, kernel_size=(1, 1, 1, 1), bias=False)")
    assert repr(nn.Conv1d(2, 2, 3, padding=((0, 2),))) == (
        "Conv1d(2, 2, kernel_size=(3,), padding=((0, 2),))")


def test_replace_rebuilds_and_revalidates():
    layer = nn.Conv2d(4, 8, 3, padding=1, groups=2)
    other = layer.replace(impl="gather", stride=2)
    assert type(other) is nn.Conv2d and other.impl == "gather" and other.stride == (2, 2)
    assert other.replace(impl="auto", stride=1) == layer
    t = nn.ConvTranspose3d(2, 4, 2, stride=2, output_padding=1)
    assert t.replace(bias=False) == nn.ConvTranspose3d(2, 4, 2, stride=2, output_padding=1,
                                                       bias=False)
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.nn.Conv2d: out_channels must be divisible by groups (as in PyTorch), "
            "got out_channels=8, groups=3.")):
        layer.replace(groups=3, in_channels=6)
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.Conv2d.replace: unknown argument(s) ['output_padding']; a Conv2d has "
            "['autodiff', 'bias', 'dilation', 'dtype', 'groups', 'impl', 'in_channels', "
            "'kernel_size', 'num_spatial_dims', 'out_channels', 'padding', 'padding_mode', "
            "'stride'].")):
        layer.replace(output_padding=1)


def test_from_torch_takes_impl_and_autodiff(torch):
    layer, _ = nn.from_torch(torch.nn.Conv1d(2, 2, 3), impl="shift", autodiff="jax")
    assert (layer.impl, layer.autodiff) == ("shift", "jax")
    layers, _ = nn.from_torch_model(torch.nn.Sequential(torch.nn.Conv1d(2, 2, 3)),
                                    impl=("lax", "gather", "shift"))
    assert layers["0"].impl == ("lax", "gather", "shift")


def test_four_d_layer_matches_the_function():
    layer = nn.Conv(4, 2, 4, 2, stride=(1, 2, 1, 1), padding=1, groups=2, dtype="float64")
    params = layer.init(jax.random.key(1))
    x = jnp.asarray(np.random.default_rng(4).standard_normal((1, 2, 3, 4, 3, 3)))
    want = jaxconv.conv(x, params["weight"], params["bias"], (1, 2, 1, 1), 1, 1, 2, impl="lax")
    np.testing.assert_allclose(np.asarray(layer(params, x)), np.asarray(want), rtol=1e-12)


# ---------------------------------------------------------------- init


@pytest.mark.parametrize("case", [
    ("Conv2d", (8, 16, 3), dict(groups=2)),
    ("Conv1d", (3, 64, 7), {}),
    ("ConvTranspose2d", (8, 16, 3), dict(groups=4)),  # fan_in from weight dim 1 = out // g
    ("ConvTranspose3d", (2, 32, 2), {}),
], ids=lambda c: c[0] if isinstance(c, str) else None)
def test_init_draws_from_pytorchs_distribution(torch, case):
    name, args, kwargs = case
    modules = [_torch_module(torch, name, args, kwargs, torch.float32, seed=s)
               for s in range(40)]
    torch_fan_in = torch.nn.init._calculate_fan_in_and_fan_out(modules[0].weight)[0]
    layer = getattr(nn, name)(*args, **kwargs)
    assert layer.fan_in == torch_fan_in
    bound = 1 / np.sqrt(torch_fan_in)
    keys = jax.random.split(jax.random.key(0), 40)
    ours = [layer.init(k) for k in keys]
    for part in ("weight", "bias"):
        theirs = np.concatenate([getattr(m, part).detach().numpy().ravel() for m in modules])
        mine = np.concatenate([np.asarray(p[part]).ravel() for p in ours])
        assert ours[0][part].dtype == jnp.float32
        assert ours[0][part].shape == tuple(getattr(modules[0], part).shape)
        assert np.abs(mine).max() <= bound and np.abs(theirs).max() <= bound
        assert np.abs(mine).max() > 0.95 * bound
        # Same distribution as torch's own draws (two-sample KS; fixed seeds, so
        # deterministic) and as U(-bound, bound).
        assert scipy.stats.ks_2samp(mine, theirs).pvalue > 1e-3
        assert scipy.stats.kstest(mine, scipy.stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3


def test_init_without_bias_and_in_every_dtype():
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        params = nn.Conv1d(2, 3, 2, bias=False, dtype=dtype).init(jax.random.key(0))
        assert list(params) == ["weight"] and params["weight"].dtype == jnp.dtype(dtype)


# ---------------------------------------------------------------- interop


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("case", MODULES, ids=IDS)
def test_round_trips_are_bit_exact(torch, case, dtype):
    module = _torch_module(torch, *case, dtype=getattr(torch, dtype))
    layer, params = nn.from_torch(module)
    assert layer.dtype == dtype and params["weight"].dtype == jnp.dtype(dtype)
    back = nn.to_torch(layer, params)
    assert type(back) is type(module) and repr(back) == repr(module)
    for name, tensor in module.state_dict().items():
        assert back.state_dict()[name].dtype == tensor.dtype
        assert torch.equal(back.state_dict()[name], tensor)
    layer2, params2 = nn.from_torch(back)
    assert layer2 == layer
    for name in params:
        np.testing.assert_array_equal(np.asarray(params2[name]).view(np.uint8),
                                      np.asarray(params[name]).view(np.uint8))


def test_to_torch_module_matches_the_layer(torch):
    layer = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2,
                               dtype="float64")
    params = layer.init(jax.random.key(3))
    x = np.random.default_rng(5).standard_normal((2, 4, 5, 5))
    module = nn.to_torch(layer, params)
    np.testing.assert_allclose(np.asarray(layer(params, jnp.asarray(x))),
                               module(torch.tensor(x)).detach().numpy(), rtol=1e-10,
                               atol=1e-10)


def _small_model(torch):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8),
        torch.nn.ConvTranspose2d(8, 4, 2, stride=2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 5),
    ).double()


def test_state_dict_helpers_convert_a_whole_model(torch):
    model = _small_model(torch)
    layers, params = nn.from_torch_model(model)
    assert sorted(layers) == ["0", "3", "4"]
    assert sorted(params) == ["0", "1", "3", "4", "6"]
    assert sorted(params["1"]) == ["bias", "num_batches_tracked", "running_mean",
                                   "running_var", "weight"]
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 4))
    model.eval()
    h = layers["0"](params["0"], jnp.asarray(x))
    bn = params["1"]
    h = (h - bn["running_mean"][:, None, None]) / jnp.sqrt(bn["running_var"][:, None, None]
                                                           + 1e-5)
    h = jax.nn.relu(h * bn["weight"][:, None, None] + bn["bias"][:, None, None])
    h = layers["4"](params["4"], layers["3"](params["3"], h))
    y = h.reshape(2, -1) @ params["6"]["weight"].T + params["6"]["bias"]
    np.testing.assert_allclose(np.asarray(y), model(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-10)

    state = nn.state_dict_to_torch(params)
    assert list(state) == list(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert state[name].dtype == tensor.dtype and torch.equal(state[name], tensor)
    fresh = _small_model(torch)
    fresh.load_state_dict(state)


def test_output_size_picks_pytorchs_output_padding(torch):
    module = _torch_module(torch, "ConvTranspose2d", (4, 2, 3), dict(stride=3, padding=1))
    layer, params = nn.from_torch(module)
    x = _input(module, size=4)
    for size in ((10, 10), (11, 12), [2, 2, 12, 10]):
        want = module(torch.tensor(x), output_size=size).detach().numpy()
        got = np.asarray(layer(params, jnp.asarray(x), output_size=size))
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError) as theirs:
        module(torch.tensor(x), output_size=(13, 10))
    message = ("jaxconv.nn.ConvTranspose2d: requested an output size of (13, 10), but valid "
               "sizes range from (10, 10) to (12, 12) (for an input of (4, 4)), as in PyTorch.")
    assert "requested an output size of (13, 10), but valid sizes range" in str(theirs.value)
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(params, jnp.asarray(x), output_size=(13, 10))


# ---------------------------------------------------------------- errors

# (call, torch call or None, exception, our message, PyTorch's words we repeat)
CONSTRUCTOR_ERRORS = [
    ("in-groups", lambda m: m.Conv2d(6, 8, 3, groups=4), ValueError,
     "jaxconv.nn.Conv2d: in_channels must be divisible by groups (as in PyTorch), got "
     "in_channels=6, groups=4.", "in_channels must be divisible by groups"),
    ("out-groups", lambda m: m.Conv2d(8, 6, 3, groups=4), ValueError,
     "jaxconv.nn.Conv2d: out_channels must be divisible by groups (as in PyTorch), got "
     "out_channels=6, groups=4.", "out_channels must be divisible by groups"),
    ("groups-zero", lambda m: m.Conv1d(4, 8, 3, groups=0), ValueError,
     "jaxconv.nn.Conv1d: groups must be a positive integer (as in PyTorch), got groups=0.",
     "groups must be a positive integer"),
    ("padding-string", lambda m: m.Conv2d(4, 8, 3, padding="full"), ValueError,
     "jaxconv.nn.Conv2d: Invalid padding string 'full', should be one of ('same', 'valid') "
     "(as in PyTorch).", "Invalid padding string 'full', should be one of"),
    ("same-strided", lambda m: m.Conv3d(4, 8, 3, stride=2, padding="same"), ValueError,
     "jaxconv.nn.Conv3d: padding='same' is not supported for strided convolutions (as in "
     "PyTorch), got stride=(2, 2, 2).", "padding='same' is not supported for strided "
     "convolutions"),
    ("padding-mode", lambda m: m.Conv2d(4, 8, 3, padding_mode="mirror"), ValueError,
     "jaxconv.nn.Conv2d: padding_mode must be one of ('zeros', 'reflect', 'replicate', "
     "'circular'), but got padding_mode='mirror'.", "but got padding_mode='mirror'"),
    ("transpose-mode", lambda m: m.ConvTranspose2d(4, 8, 3, padding_mode="reflect"),
     ValueError, "jaxconv.nn.ConvTranspose2d: Only \"zeros\" padding mode is supported for "
     "ConvTranspose2d (as in PyTorch), got padding_mode='reflect'.",
     'Only "zeros" padding mode is supported for ConvTranspose2d'),
    ("transpose-in-groups", lambda m: m.ConvTranspose1d(6, 8, 3, groups=4), ValueError,
     "jaxconv.nn.ConvTranspose1d: in_channels must be divisible by groups (as in PyTorch), "
     "got in_channels=6, groups=4.", "in_channels must be divisible by groups"),
]
# PyTorch accepts these at construction and fails (or misbehaves) only when run.
OWN_ERRORS = [
    ("kernel-zero", lambda m: m.Conv2d(4, 8, 0), ValueError,
     "jaxconv.nn.Conv2d: `kernel_size` must be positive, got kernel_size=0."),
    ("kernel-length", lambda m: m.Conv2d(4, 8, (3, 3, 3)), ValueError,
     "jaxconv.nn.Conv2d: `kernel_size` must be an int or a tuple of 2 ints for a 2-d "
     "convolution, got kernel_size=(3, 3, 3) of length 3."),
    ("stride-zero", lambda m: m.Conv1d(4, 8, 3, stride=0), ValueError,
     "jaxconv.nn.Conv1d: `stride` must be positive, got stride=0."),
    ("dilation-zero", lambda m: m.Conv1d(4, 8, 3, dilation=0), ValueError,
     "jaxconv.nn.Conv1d: `dilation` must be positive, got dilation=0."),
    ("channels-zero", lambda m: m.Conv2d(0, 8, 3), ValueError,
     "jaxconv.nn.Conv2d: `in_channels` must be positive, got in_channels=0."),
    ("channels-float", lambda m: m.Conv2d(4.0, 8, 3), TypeError,
     "jaxconv.nn.Conv2d: `in_channels` must be an int, got 4.0."),
    ("padding-negative", lambda m: m.Conv2d(4, 8, 3, padding=-1), ValueError,
     "jaxconv.nn.Conv2d: `padding` must be non-negative, got padding=-1."),
    ("transpose-padding-string", lambda m: m.ConvTranspose2d(4, 8, 3, padding="same"),
     TypeError, "jaxconv.nn.ConvTranspose2d: `padding` must be an int, or a tuple of 2 ints or "
     "(low, high) pairs, got 'same'."),
    ("output-padding-negative", lambda m: m.ConvTranspose2d(4, 8, 3, output_padding=-1),
     ValueError, "jaxconv.nn.ConvTranspose2d: `output_padding` must be non-negative, got "
     "output_padding=-1."),
    ("bias-kind", lambda m: m.Conv2d(4, 8, 3, bias=None), TypeError,
     "jaxconv.nn.Conv2d: `bias` must be a bool, got bias=None."),
    ("impl", lambda m: m.Conv2d(4, 8, 3, impl="fast"), ValueError,
     "jaxconv.nn.Conv2d: `impl` must be one of ('auto', 'lax', 'gather', 'shift', 'fold'), "
     "or a (forward, input_grad, weight_grad) tuple of those impls, got impl='fast'."),
    ("autodiff", lambda m: m.Conv2d(4, 8, 3, autodiff="torch"), ValueError,
     "jaxconv.nn.Conv2d: `autodiff` must be one of ('custom', 'custom_vjp', 'jax'), got "
     "autodiff='torch'."),
    ("dtype", lambda m: m.Conv2d(4, 8, 3, dtype="int32"), TypeError,
     "jaxconv.nn.Conv2d: `dtype` must be one of ('float16', 'bfloat16', 'float32', "
     "'float64', 'complex64', 'complex128'), got dtype='int32'."),
    ("rank", lambda m: m.Conv(0, 4, 8, 3), ValueError,
     "jaxconv.nn.Conv: `num_spatial_dims` must be positive, got num_spatial_dims=0."),
]


@pytest.mark.parametrize("case", CONSTRUCTOR_ERRORS, ids=[c[0] for c in CONSTRUCTOR_ERRORS])
def test_constructor_errors_are_pytorchs(torch, case):
    _, make, exc, message, torch_words = case
    with pytest.raises(exc, match=re.escape(message)):
        make(nn)
    with pytest.raises(exc) as theirs:
        make(torch.nn)
    assert torch_words in str(theirs.value)


@pytest.mark.parametrize("case", OWN_ERRORS, ids=[c[0] for c in OWN_ERRORS])
def test_constructor_errors_pytorch_defers(case):
    _, make, exc, message = case
    with pytest.raises(exc, match=re.escape(message)):
        make(nn)


def test_params_errors():
    layer = nn.Conv2d(4, 8, 3)
    params = layer.init(jax.random.key(0))
    x = jnp.zeros((1, 4, 5, 5))
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.Conv2d: `params` must be a dict with keys ('weight', 'bias') (as "
            "returned by init), got ['weight'].")):
        layer({"weight": params["weight"]}, x)
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.Conv2d: `params` must be a dict with keys ('weight', 'bias') (as "
            "returned by init), got tuple.")):
        layer((params["weight"], params["bias"]), x)
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.nn.Conv2d: params['weight'] must have shape (8, 4, 3, 3) for "
            "Conv2d(4, 8, kernel_size=(3, 3)), got (8, 4, 5, 5).")):
        layer({"weight": jnp.zeros((8, 4, 5, 5)), "bias": params["bias"]}, x)
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.nn.ConvTranspose1d: `output_size` must hold 1 or 3 ints, got "
            "output_size=(4, 5).")):
        t = nn.ConvTranspose1d(4, 2, 3)
        t(t.init(jax.random.key(0)), jnp.zeros((1, 4, 3)), output_size=(4, 5))


def test_interop_errors(torch):
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.from_torch: `module` must be a torch.nn Conv1d/2d/3d or "
            "ConvTranspose1d/2d/3d, got Linear.")):
        nn.from_torch(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.from_torch: `module` must be a torch.nn Conv1d/2d/3d or "
            "ConvTranspose1d/2d/3d, got LazyConv2d.")):
        nn.from_torch(torch.nn.LazyConv2d(4, 3))
    layer = nn.Conv(4, 1, 1, 1)
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.nn.to_torch: PyTorch has no 4-d convolution layer, got "
            "Conv(4, 1, 1, kernel_size=(1, 1, 1, 1)).")):
        nn.to_torch(layer, layer.init(jax.random.key(0)))
    layer = nn.Conv1d(1, 1, 3, padding=((0, 2),))
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.nn.to_torch: PyTorch's layers have no asymmetric (low, high) padding, got "
            "padding=((0, 2),).")):
        nn.to_torch(layer, layer.init(jax.random.key(0)))
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.to_torch: `layer` must be a jaxconv.nn Conv or ConvTranspose, got "
            "Conv2d.")):
        nn.to_torch(torch.nn.Conv2d(1, 1, 1), {})
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.from_torch_model: `model` must be a torch.nn.Module, got dict.")):
        nn.from_torch_model({})
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.state_dict_from_torch: `model_or_state_dict` must be a torch.nn.Module "
            "or a state dict, got list.")):
        nn.state_dict_from_torch([])
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.from_torch: `module` has int64 parameters; jaxconv supports "
            "float16, bfloat16, float32, float64, complex64, complex128.")):
        module = torch.nn.Conv1d(1, 1, 1)
        module.weight = torch.nn.Parameter(module.weight.detach().long(), requires_grad=False)
        nn.from_torch(module)


def test_argument_fuzz_findings(torch):
    """Layer arguments tests/test_argument_fuzz.py found mishandled."""
    # dtype=None is PyTorch's default dtype (float32), not JAX's default (float64 under x64).
    assert nn.Conv2d(4, 8, 3, dtype=None).dtype == "float32"
    assert torch.nn.Conv2d(4, 8, 3, dtype=None).weight.dtype == torch.float32
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.Conv2d: `dtype` must be one of ('float16', 'bfloat16', 'float32', "
            "'float64', 'complex64', 'complex128'), got dtype=np.float64(1.0).")):
        nn.Conv2d(4, 8, 3, dtype=np.float64(1.0))  # a NumPy scalar, not a dtype
    t = nn.ConvTranspose1d(4, 2, 3)
    p = t.init(jax.random.key(0))
    x = jnp.zeros((1, 4, 3), jnp.float32)
    for size in ((4.0,), True):  # was "requested an output size of (4.0,)": a kind error
        with pytest.raises(TypeError, match=re.escape(
                "jaxconv.nn.ConvTranspose1d: `output_size` must be None, an int or a tuple of "
                f"ints, got output_size={size!r}.")):
            t(p, x, output_size=size)
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.ConvTranspose1d: `x` must be an array (jax.Array or numpy.ndarray), got "
            "list.")):
        t(p, [[1.0]])
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.nn.ConvTranspose1d: `params['weight']` must be an array (jax.Array or "
            "numpy.ndarray), got list.")):
        t({"weight": [[1.0]], "bias": p["bias"]}, x)
    # NumPy ints are ints, as in PyTorch; so is an int output_size for a 1-d layer.
    y = t(p, x, output_size=np.int64(5))
    assert y.shape == (1, 2, 5)
