"""Hand-written reverse rules: parity, higher order, composition, forward mode, proof they run."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import GRID
from jax.test_util import check_grads

import jaxconv

IMPLS = jaxconv.available_impls()
FUNCS = {1: jaxconv.conv1d, 2: jaxconv.conv2d, 3: jaxconv.conv3d}


def _with_bias(case, dtype=np.float64):
    x, w, b = case.arrays(dtype)
    if b is None:
        b = np.random.default_rng(9).standard_normal(w.shape[0]).astype(dtype)
    return x, w, b


def _grads(case, impl, autodiff, x, w, b, cot):
    fn = FUNCS[case.rank]

    def loss(x, w, b):
        return jnp.vdot(fn(x, w, b, **case.kwargs, impl=impl, autodiff=autodiff), cot)

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, w, b)


def _torch_grads(torch, case, x, w, b, cot):
    cls = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[case.rank]
    m = cls(w.shape[1] * case.groups, w.shape[0], w.shape[2:], **case.kwargs)
    m = m.to(torch.from_numpy(x).dtype)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w))
        m.bias.copy_(torch.from_numpy(b))
    tx = torch.from_numpy(x).requires_grad_()
    m(tx).backward(torch.from_numpy(cot))
    return tx.grad.numpy(), m.weight.grad.numpy(), m.bias.grad.numpy()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", GRID, ids=lambda c: c.id)
def test_custom_gradients_match_torch_and_jax_autodiff_float64(torch, case, impl):
    x, w, b = _with_bias(case)
    y_shape = jax.eval_shape(lambda: FUNCS[case.rank](x, w, b, **case.kwargs)).shape
    cot = np.random.default_rng(3).standard_normal(y_shape)
    custom = _grads(case, impl, "custom", x, w, b, cot)
    autodiff = _grads(case, impl, "jax", x, w, b, cot)
    expected = _torch_grads(torch, case, x, w, b, cot)
    for name, got, ad, want in zip(("dx", "dw", "db"), custom, autodiff, expected, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(np.asarray(got), np.asarray(ad), rtol=1e-10, atol=1e-10,
                                   err_msg=name)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", GRID[1::6], ids=lambda c: c.id)
def test_custom_gradients_match_torch_float32(torch, case, impl):
    x, w, b = _with_bias(case, np.float32)
    y_shape = jax.eval_shape(lambda: FUNCS[case.rank](x, w, b, **case.kwargs)).shape
    cot = np.random.default_rng(4).standard_normal(y_shape).astype(np.float32)
    for name, got, want in zip(("dx", "dw", "db"), _grads(case, impl, "custom", x, w, b, cot),
                               _torch_grads(torch, case, x, w, b, cot), strict=True):
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-4, err_msg=name)


SMALL = [
    dict(stride=2, padding=1, dilation=1, groups=2, padding_mode="reflect"),
    dict(stride=1, padding="same", dilation=2, groups=1, padding_mode="circular"),
    dict(stride=(2, 1), padding=(0, 1), dilation=(1, 2), groups=4, padding_mode="replicate"),
]


def _small_arrays(kw, seed=0):
    rng = np.random.default_rng(seed)
    groups = kw["groups"]
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((4, 4 // groups, 3, 2))
    b = rng.standard_normal(4)
    return jnp.asarray(x), jnp.asarray(w), jnp.asarray(b)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kw", SMALL, ids=lambda kw: kw["padding_mode"])
def test_check_grads_to_second_order(impl, kw):
    """Finite differences: first and second reverse-mode derivatives."""
    x, w, b = _small_arrays(kw)
    f = lambda x, w, b: jaxconv.conv2d(x, w, b, **kw, impl=impl)
    check_grads(f, (x, w, b), order=2, modes=["rev"], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kw", SMALL, ids=lambda kw: kw["padding_mode"])
def test_grad_of_grad_equals_autodiff_and_torch_double_backward(torch, impl, kw):
    x, w, b = _small_arrays(kw, seed=1)

    def outer(autodiff):
        def inner_loss(x, w):
            return jnp.sum(jnp.tanh(jaxconv.conv2d(x, w, b, **kw, impl=impl,
                                                    autodiff=autodiff)))

        def gnorm(x, w):
            gx, gw = jax.grad(inner_loss, argnums=(0, 1))(x, w)
            return jnp.sum(gx**2) + jnp.sum(gw**3)

        return jax.grad(gnorm, argnums=(0, 1))(x, w)

    custom, autodiff = outer("custom"), outer("jax")
    cls = torch.nn.Conv2d(4, 4, (3, 2), **kw).double()
    with torch.no_grad():
        cls.weight.copy_(torch.from_numpy(np.array(w)))
        cls.bias.copy_(torch.from_numpy(np.array(b)))
    tx = torch.from_numpy(np.array(x)).requires_grad_()
    gx, gw = torch.autograd.grad(torch.tanh(cls(tx)).sum(), (tx, cls.weight), create_graph=True)
    ggx, ggw = torch.autograd.grad((gx**2).sum() + (gw**3).sum(), (tx, cls.weight))
    for got, ad, want in zip(custom, autodiff, (ggx, ggw), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(ad), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_third_order_stays_in_the_family(impl):
    x = jnp.linspace(-1.0, 1.0, 2 * 3 * 8).reshape(2, 3, 8)
    w = jnp.linspace(-0.5, 0.7, 2 * 3 * 3).reshape(2, 3, 3)

    def f(w, autodiff):
        return jnp.sum(jnp.sin(jaxconv.conv1d(x, w, stride=2, padding=1, impl=impl,
                                              autodiff=autodiff)))

    d3 = lambda ad: jax.grad(lambda w: jnp.sum(jax.grad(lambda w: jnp.sum(
        jax.grad(f)(w, ad) ** 2))(w) ** 2))(w)
    np.testing.assert_allclose(d3("custom"), d3("jax"), rtol=1e-10, atol=1e-10)


# --- composition -----------------------------------------------------------------------------

def _layer(impl, **extra):
    kw = dict(stride=2, padding=1, groups=2, padding_mode="reflect", impl=impl, **extra)
    return lambda x, w, b: jaxconv.conv2d(x, w, b, **kw)


def _data(seed=0, n=3):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.standard_normal((n, 4, 8, 8))),
            jnp.asarray(rng.standard_normal((6, 2, 3, 3))),
            jnp.asarray(rng.standard_normal(6)))


@pytest.mark.parametrize("impl", IMPLS)
def test_value_and_grad_under_jit(impl):
    x, w, b = _data()
    conv = _layer(impl)
    ref = _layer(impl, autodiff="jax")
    loss = lambda f: (lambda w, b: jnp.mean(f(x, w, b) ** 2))
    v, g = jax.jit(jax.value_and_grad(loss(conv), argnums=(0, 1)))(w, b)
    v2, g2 = jax.value_and_grad(loss(ref), argnums=(0, 1))(w, b)
    np.testing.assert_allclose(v, v2, rtol=1e-12)
    for a, c in zip(g, g2, strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_per_example_gradients_with_vmap(impl):
    x, w, b = _data()
    conv = _layer(impl)
    loss = lambda w, xi: jnp.sum(conv(xi, w, b) ** 2)  # xi unbatched
    per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(w, x)
    for i in range(x.shape[0]):
        np.testing.assert_allclose(per_example[i], jax.grad(loss)(w, x[i]),
                                   rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(per_example.sum(0),
                               jax.grad(lambda w: jnp.sum(conv(x, w, b) ** 2))(w),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_ensemble_gradients_with_vmap_over_weights(impl):
    x, w, b = _data()
    ws = jnp.stack([w, 0.5 * w, -w])
    conv = _layer(impl)
    loss = lambda w: jnp.sum(jnp.sin(conv(x, w, b)))
    grads = jax.vmap(jax.grad(loss))(ws)
    for i in range(3):
        np.testing.assert_allclose(grads[i], jax.grad(loss)(ws[i]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_checkpoint_and_scan(impl):
    """A 3-layer residual stack under lax.scan, each step rematerialised."""
    x, _, _ = _data()
    rng = np.random.default_rng(5)
    ws = jnp.asarray(rng.standard_normal((3, 4, 2, 3, 3)) * 0.2)

    def net(ws, autodiff):
        conv = lambda h, w: jaxconv.conv2d(h, w, padding=1, groups=2, padding_mode="circular",
                                           impl=impl, autodiff=autodiff)
        step = jax.checkpoint(lambda h, w: (h + jnp.tanh(conv(h, w)), None))
        return jnp.sum(jax.lax.scan(step, x, ws)[0] ** 2)

    got = jax.jit(jax.grad(net), static_argnums=1)(ws, "custom")
    np.testing.assert_allclose(got, jax.grad(net)(ws, "jax"), rtol=1e-10, atol=1e-10)


# --- forward mode ----------------------------------------------------------------------------

FORWARD_MODE_MESSAGE = (
    "jaxconv.conv2d: forward-mode differentiation (jax.jvp, jax.jacfwd, jax.hessian) can't "
    "run through autodiff=\"custom_vjp\" (the hand-written rules bound with jax.custom_vjp, "
    "reverse mode only); the default, autodiff=\"custom\", runs the same rules in both modes."
)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("transform", ["jvp", "jacfwd", "hessian"])
def test_forward_mode_with_custom_vjp_raises_a_jaxconv_error(impl, transform):
    x, w, b = _data(n=1)
    f = lambda w: jnp.sum(_layer(impl, autodiff="custom_vjp")(x, w, b) ** 2)
    call = {"jvp": lambda: jax.jvp(f, (w,), (w,)),
            "jacfwd": lambda: jax.jacfwd(f)(w),
            "hessian": lambda: jax.hessian(f)(w)}[transform]
    with pytest.raises(TypeError, match=re.escape(FORWARD_MODE_MESSAGE)):
        call()


@pytest.mark.parametrize("impl", IMPLS)
def test_forward_mode_with_autodiff_jax(impl):
    x, w, b = _data(n=1)
    conv = _layer(impl, autodiff="jax")
    f = lambda w: jnp.sum(jnp.sin(conv(x, w, b)))
    # jvp equals the directional derivative from the custom reverse rule.
    t = jnp.ones_like(w)
    _, jvp = jax.jvp(f, (w,), (t,))
    grad = jax.grad(lambda w: jnp.sum(jnp.sin(_layer(impl)(x, w, b))))(w)
    np.testing.assert_allclose(jvp, jnp.vdot(grad, t), rtol=1e-10)
    # Hessian-vector product, forward-over-reverse, equals reverse-over-reverse.
    hvp = jax.jvp(jax.grad(f), (w,), (t,))[1]
    g_custom = lambda w: jax.grad(lambda w: jnp.sum(jnp.sin(_layer(impl)(x, w, b))))(w)
    hvp_rev = jax.grad(lambda w: jnp.vdot(g_custom(w), t))(w)
    np.testing.assert_allclose(hvp, hvp_rev, rtol=1e-10, atol=1e-12)
    assert jax.hessian(f)(w).shape == w.shape * 2


def test_autodiff_argument_is_validated():
    x, w, b = _data(n=1)
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.conv2d: `autodiff` must be one of ('custom', 'custom_vjp', 'jax'), got "
            "autodiff='fwd'.")):
        jaxconv.conv2d(x, w, b, autodiff="fwd")


# --- the hand-written rules are what runs --------------------------------------------------

def _custom_vjp_names(jaxpr):
    """``func_src_info`` of every custom_vjp call in `jaxpr`, sub-jaxprs included."""
    names = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name.startswith("custom_vjp_call"):
            info = eqn.params["call_jaxpr"].jaxpr.debug_info
            names.append(getattr(info, "func_src_info", None) or str(info))
        for value in eqn.params.values():
            for inner in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    names += _custom_vjp_names(inner)
    return names


@pytest.mark.parametrize("impl", IMPLS)
def test_gradient_jaxpr_runs_the_hand_written_kernels_custom_vjp(impl):
    x, w, b = _data(n=1)
    loss = lambda autodiff: (lambda w: jnp.sum(_layer(impl, autodiff=autodiff)(x, w, b) ** 2))
    custom = _custom_vjp_names(jax.make_jaxpr(jax.grad(loss("custom_vjp")))(w).jaxpr)
    # The backward pass is the bound input- and weight-gradient kernels of this impl.
    assert any(n.startswith("input_grad at ") and "_autodiff.py" in n for n in custom), custom
    assert any(n.startswith("weight_grad at ") and "_autodiff.py" in n for n in custom), custom
    plain = _custom_vjp_names(jax.make_jaxpr(jax.grad(loss("jax")))(w).jaxpr)
    assert plain == []
