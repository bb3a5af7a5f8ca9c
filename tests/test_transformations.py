"""Every JAX transformation, by default, through the hand-written rules bound as primitives.

The matrix: every impl (and auto) x {jvp, jacfwd, hessian, jvp of grad, grad of grad of
grad, vmap of jvp, checkpoint} x {conv, conv_transpose, conv_general_dilated, an nn
layer}, each against the same function written with ``lax.conv_general_dilated`` (the
pure-lax reference, which JAX differentiates itself); finite differences in both modes
to second order; and proof that reverse mode runs the impl's own T and W kernels.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

import jaxconv
from jaxconv import _registry, _settings

IMPLS = ("auto", *jaxconv.available_impls())
TOL = dict(rtol=1e-9, atol=1e-9)


def _rng_arrays(seed, *shapes):
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.standard_normal(s)) for s in shapes)


# --- the functions under test and their pure-lax references --------------------------------
# Each takes (x, w) and returns a scalar-friendly array; sizes are small (hessians).

def _conv(impl):
    return lambda x, w: jaxconv.conv2d(x, w, stride=(2, 1), padding=1, groups=2,
                                       padding_mode="reflect", impl=impl)


def _conv_ref(x, w):
    xp = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    return lax.conv_general_dilated(xp, w, (2, 1), "VALID", feature_group_count=2)


def _conv_transpose(impl):
    return lambda x, w: jaxconv.conv_transpose2d(x, w, stride=2, padding=1,
                                                 output_padding=1, groups=2, impl=impl)


def _conv_transpose_ref(x, w):
    # PyTorch's conv_transpose as lax's lhs-dilated convolution: flip the kernel, swap its
    # in/out channels within each group, pad d(k-1) - p (plus output_padding high).
    g, (cin, cog, *k) = 2, w.shape
    wt = w.reshape(g, cin // g, cog, *k).swapaxes(1, 2).reshape(g * cog, cin // g, *k)
    wt = jnp.flip(wt, axis=(2, 3))
    pads = [(kk - 1 - 1, kk - 1 - 1 + 1) for kk in k]
    return lax.conv_general_dilated(x, wt, (1, 1), pads, lhs_dilation=(2, 2),
                                    feature_group_count=g)


def _general(impl):
    return lambda x, w: jaxconv.conv_general_dilated(
        x, w, (1, 2), ((1, 0), (2, 1)), lhs_dilation=(2, 1), rhs_dilation=(1, 2),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), impl=impl)


def _general_ref(x, w):
    return lax.conv_general_dilated(
        x, w, (1, 2), ((1, 0), (2, 1)), lhs_dilation=(2, 1), rhs_dilation=(1, 2),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _layer(impl):
    layer = jaxconv.nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2,
                              padding_mode="circular", impl=impl, dtype="float64")
    return lambda x, w: layer({"weight": w, "bias": jnp.arange(6.0)}, x)


def _layer_ref(x, w):
    xp = jnp.concatenate([x[..., -2:], x, x[..., :2]], axis=-1)  # circular by 2
    y = lax.conv_general_dilated(xp, w, (2,), "VALID", rhs_dilation=(2,),
                                 feature_group_count=2)
    return y + jnp.arange(6.0)[:, None]


FUNCS = {
    "conv": (_conv, _conv_ref, ((2, 4, 5, 4), (6, 2, 3, 2))),
    "conv_transpose": (_conv_transpose, _conv_transpose_ref, ((2, 4, 3, 3), (4, 3, 3, 2))),
    "conv_general_dilated": (_general, _general_ref, ((2, 3, 4, 2), (2, 3, 2, 3))),
    "nn_layer": (_layer, _layer_ref, ((2, 4, 7), (6, 2, 3))),
}


def _scalar(f):
    return lambda x, w: jnp.sum(jnp.sin(f(x, w)))


TRANSFORMS = {
    # Each maps (scalar function of (x, w), x, w, tangents) to a pytree of arrays.
    "jvp": lambda f, x, w, tx, tw: jax.jvp(f, (x, w), (tx, tw)),
    "jacfwd": lambda f, x, w, tx, tw: jax.jacfwd(f, argnums=(0, 1))(x, w),
    "hessian": lambda f, x, w, tx, tw: jax.hessian(f, argnums=1)(x, w),
    "jvp_of_grad": lambda f, x, w, tx, tw: jax.jvp(
        jax.grad(f, argnums=(0, 1)), (x, w), (tx, tw)),
    "grad3": lambda f, x, w, tx, tw: jax.grad(lambda w: jnp.sum(jax.grad(
        lambda w: jnp.sum(jax.grad(f, argnums=1)(x, w) ** 2))(w) ** 2))(w),
    "vmap_of_jvp": lambda f, x, w, tx, tw: jax.vmap(
        lambda t: jax.jvp(f, (x, w), (t, tw))[1])(jnp.stack([tx, 2 * tx, -tx])),
    "checkpoint": lambda f, x, w, tx, tw: jax.grad(
        lambda x, w: jax.checkpoint(f)(x, w) * f(x, w), argnums=(0, 1))(x, w),
}


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("impl", IMPLS)
def test_transformation_matrix_against_pure_lax(impl, func, transform):
    make, ref, shapes = FUNCS[func]
    x, w, tx, tw = _rng_arrays(len(transform), *shapes, *shapes)
    t = TRANSFORMS[transform]
    got = jax.jit(lambda x, w, tx, tw: t(_scalar(make(impl)), x, w, tx, tw))(x, w, tx, tw)
    want = t(_scalar(ref), x, w, tx, tw)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("impl", IMPLS)
def test_finite_differences_both_modes_second_order(impl, func):
    make, _, shapes = FUNCS[func]
    x, w = _rng_arrays(7, *shapes)
    check_grads(make(impl), (x, w), order=2, modes=["fwd", "rev"], atol=1e-6, rtol=1e-6)


def test_forward_over_reverse_hvp_equals_reverse_over_reverse():
    """The cheap HVP (jvp of grad) of a two-layer net equals grad of <grad, v>."""
    x, w1, w2, v1, v2 = _rng_arrays(3, (2, 3, 8, 8), (4, 3, 3, 3), (2, 4, 3, 3),
                                    (4, 3, 3, 3), (2, 4, 3, 3))

    def loss(w1, w2):
        h = jnp.tanh(jaxconv.conv2d(x, w1, padding=1, padding_mode="replicate"))
        return jnp.sum(jaxconv.conv2d(h, w2, stride=2) ** 2)

    grad = jax.grad(loss, argnums=(0, 1))
    hvp = jax.jvp(grad, (w1, w2), (v1, v2))[1]
    rev = jax.grad(lambda a, b: sum(jnp.vdot(g, v) for g, v in zip(
        grad(a, b), (v1, v2), strict=True)), argnums=(0, 1))(w1, w2)
    for a, b in zip(hvp, rev, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)


def test_linearize_and_jacrev():
    x, w = _rng_arrays(4, (1, 2, 6), (3, 2, 3))
    f = lambda w: jaxconv.conv1d(x, w, padding="same")
    ref = lambda w: lax.conv_general_dilated(x, w, (1,), [(1, 1)])
    y, lin = jax.linearize(f, w)
    np.testing.assert_allclose(np.asarray(lin(w)), np.asarray(ref(w)), **TOL)
    np.testing.assert_allclose(np.asarray(jax.jacrev(f)(w)), np.asarray(jax.jacfwd(ref)(w)),
                               **TOL)


# --- the jaxprs name the rules, and the rules are what runs ---------------------------------

def _primitive_names(jaxpr) -> list[str]:
    names = []
    for eqn in jaxpr.eqns:
        names.append(eqn.primitive.name)
        for value in eqn.params.values():
            for inner in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    names += _primitive_names(inner)
    return names


def test_jaxprs_name_the_kernels():
    x, w = _rng_arrays(0, (1, 2, 6, 6), (3, 2, 3, 3))
    f = lambda x, w: jnp.sum(jaxconv.conv2d(x, w, impl="gather") ** 2)
    names = _primitive_names(jax.make_jaxpr(jax.grad(f, argnums=(0, 1)))(x, w).jaxpr)
    assert {"jaxconv_forward", "jaxconv_input_grad", "jaxconv_weight_grad"} <= set(names)
    assert "conv_general_dilated" not in names  # JAX never differentiates a kernel
    names = _primitive_names(jax.make_jaxpr(lambda w: jax.jvp(
        lambda w: f(x, w), (w,), (w,)))(w).jaxpr)
    assert names.count("jaxconv_forward") >= 2 and "conv_general_dilated" not in names


@pytest.mark.parametrize("kind", ["input_grad", "weight_grad"])
@pytest.mark.parametrize("impl", jaxconv.available_impls())
def test_reverse_mode_runs_the_impls_own_gradient_kernels(monkeypatch, impl, kind):
    """Scale one registered gradient kernel by 3: the gradient it computes (and only it)
    scales by 3, so that kernel, not JAX's derivative of the forward, is what runs."""
    x, w = _rng_arrays(1, (2, 4, 6, 5), (4, 2, 3, 3))
    f = lambda x, w: jnp.sum(jnp.sin(jaxconv.conv2d(x, w, padding=1, groups=2, impl=impl)))
    _settings.clear_jitted_cores()
    dx, dw = jax.jit(jax.grad(f, argnums=(0, 1)))(x, w)
    real = _registry.get_impl(impl)
    kernel = getattr(real, kind)
    scaled = dataclasses.replace(real, **{kind: functools.wraps(kernel)(
        lambda *a: 3 * kernel(*a))})
    monkeypatch.setitem(_registry._REGISTRY, impl, scaled)
    _settings.clear_jitted_cores()
    try:
        dx3, dw3 = jax.jit(jax.grad(f, argnums=(0, 1)))(x, w)
    finally:
        monkeypatch.undo()
        _settings.clear_jitted_cores()
    want = {"input_grad": (3 * dx, dw), "weight_grad": (dx, 3 * dw)}[kind]
    for a, b in zip((dx3, dw3), want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)


def test_inference_forward_in_the_primitive_and_training_forward_under_grad():
    """auto's 1x1 inference forward: a plain call's primitive carries it; the JVP rebinds
    without it, so the differentiated program runs the training forward."""
    x, w = _rng_arrays(2, (2, 8, 5, 5), (8, 8, 1, 1))
    f = lambda w: jaxconv.conv2d(x, w)
    plain = jax.make_jaxpr(f)(w)
    specs = [e.params["spec"] for e in _eqns(plain.jaxpr) if e.primitive.name ==
             "jaxconv_forward"]
    grads = [e.params["spec"] for e in _eqns(jax.make_jaxpr(jax.grad(
        lambda w: jnp.sum(f(w))))(w).jaxpr) if e.primitive.name == "jaxconv_forward"]
    assert grads and all(s.inference is None for s in grads)
    assert len(specs) == 1  # inference set or not depends on the CPU's rule; values agree
    np.testing.assert_allclose(np.asarray(f(w)), np.asarray(
        lax.conv_general_dilated(x, w, (1, 1), "VALID")), **TOL)


def _eqns(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for inner in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    yield from _eqns(inner)


# --- vmap: the batching rules fold into batch, channels or groups ----------------------------

@pytest.mark.parametrize("mapped", ["x", "w", "both"])
@pytest.mark.parametrize("kind", ["forward", "input_grad", "weight_grad"])
@pytest.mark.parametrize("impl", jaxconv.available_impls())
def test_batching_rules_of_each_kernel(impl, kind, mapped):
    from jaxconv import _primitives
    spec = jaxconv.ConvSpec(rank=2, stride=(2, 1), padding=((1, 0), (1, 1)),
                            dilation=(1, 2), groups=2, impl=impl)
    B, N, C, O, S, K = 3, 2, 4, 6, (7, 6), (3, 2)
    P = spec.output_spatial(S, K)
    shapes = {"forward": ((N, C, *S), (O, C // 2, *K)),
              "input_grad": ((N, O, *P), (O, C // 2, *K)),
              "weight_grad": ((N, C, *S), (N, O, *P))}[kind]
    bind = {"forward": lambda a, b: _primitives.forward(a, b, spec),
            "input_grad": lambda a, b: _primitives.input_grad(a, b, spec, S),
            "weight_grad": lambda a, b: _primitives.weight_grad(a, b, spec, K)}[kind]
    a, b = _rng_arrays(5, *((B, *s) for s in shapes))
    in_axes = {"x": (0, None), "w": (None, 0), "both": (0, 0)}[mapped]
    a_, b_ = (a if in_axes[0] == 0 else a[0]), (b if in_axes[1] == 0 else b[0])
    got = jax.jit(jax.vmap(bind, in_axes=in_axes))(a_, b_)
    for i in range(B):
        want = bind(a_[i] if in_axes[0] == 0 else a_, b_[i] if in_axes[1] == 0 else b_)
        np.testing.assert_allclose(np.asarray(got[i]), np.asarray(want), **TOL)


def test_vmap_with_zero_size_mapped_axis():
    x, w = _rng_arrays(0, (0, 1, 2, 5), (3, 2, 3))
    y = jax.vmap(lambda x: jaxconv.conv1d(x, w))(x)
    assert y.shape == (0, 1, 3, 3)
