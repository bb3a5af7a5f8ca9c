"""Sharded convolutions on 8 simulated CPU devices (run by tests/test_sharding.py).

Not collected by the main session (the file name does not match ``test_*.py``):
it needs ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` before JAX starts,
so tests/test_sharding.py runs it in its own pytest process.

Every impl, forward and gradients (input, weight, bias), conv and conv_transpose,
in each layout, against the same call on one device; the shardings of the output
and of the input gradient; and that the compiled program never all-gathers.
"""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxconv

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (simulated) devices")

IMPLS = (*jaxconv.available_impls(), "auto")
MESH = jax.make_mesh((4, 2), ("a", "b")) if jax.device_count() >= 8 else None
AXES = ("explicit", "auto")
# mesh name -> (shape, axis names); each built with explicit and with automatic axes
MESHES = {"4x2": ((4, 2), ("a", "b")), "8": ((8,), ("d",))}

# layout name -> (mesh, input spec (N, C, H, W))
LAYOUTS = {
    "batch": ("4x2", P("a")),
    "height": ("4x2", P(None, None, "a")),
    "batch+width": ("4x2", P("b", None, None, "a")),
    "batch+height": ("4x2", P("a", None, "b")),
    "channel": ("4x2", P(None, "a")),
    "batch+channel": ("4x2", P("b", "a")),
    "batch/8": ("8", P("d")),
    "height/8": ("8", P(None, None, "d")),
}


def _mesh(name: str, axes: str):
    shape, names = MESHES[name]
    kind = AxisType.Explicit if axes == "explicit" else AxisType.Auto
    return jax.make_mesh(shape, names, axis_types=(kind,) * len(names))


def _loss_and_grads(f, *args):
    """``f(*args)`` and the gradients of ``sum(f(*args)**2)`` w.r.t. every argument."""
    def loss(*a):
        return jnp.sum(f(*a) ** 2)
    return f(*args), jax.grad(loss, argnums=tuple(range(len(args))))(*args)


def _check(f, x, w, b, spec, want_out_spec, batched=True, axes="explicit", mesh="4x2"):
    """f on the sharded x equals f on one device; the compiled program has no
    all-gather. Explicit mesh axes (the program runs per shard with shard_map): the
    shardings are kept (the weight gradient is split by output channel where the
    channels are sharded, replicated otherwise). Automatic axes (jaxconv's kernels
    partition themselves): the output stays sharded like the input."""
    y_ref, g_ref = jax.jit(lambda *a: _loss_and_grads(f, *a))(x, w, b)
    m = _mesh(mesh, axes)
    run = jax.jit(lambda *a: _loss_and_grads(f, *a))
    if axes == "explicit":
        with jax.set_mesh(m):
            xs = jax.device_put(x, NamedSharding(m, spec))
            y, grads = run(xs, w, b)
            hlo = run.lower(xs, w, b).compile().as_text()
    else:
        xs = jax.device_put(x, NamedSharding(m, spec))
        y, grads = run(xs, w, b)
        hlo = run.lower(xs, w, b).compile().as_text()
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-10, atol=1e-10)
    for name, g, r in zip(("d_input", "d_weight", "d_bias"), grads, g_ref, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-9, atol=1e-9,
                                   err_msg=name)
    assert not re.search(r"all-gather", hlo), "the sharded program gathers an operand"
    if axes == "auto":
        assert _full(y.sharding.spec, y.ndim) == want_out_spec
        return
    assert jax.typeof(y).sharding.spec == want_out_spec
    assert jax.typeof(grads[0]).sharding.spec == P(*spec, *(None,) * (x.ndim - len(spec)))
    channels = P(*spec, None, None)[1 if batched else 0]
    assert jax.typeof(grads[1]).sharding.spec == P(channels, *(None,) * (w.ndim - 1))


def _arrays(rank=2, c=8, o=8, groups=4, k=3, n=16, batch=8, transpose=False, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, *(n,) * rank))
    w_shape = (c, o // groups, *(k,) * rank) if transpose else (o, c // groups, *(k,) * rank)
    return x, rng.standard_normal(w_shape), rng.standard_normal(o)


def _full(spec, ndim):
    return P(*spec, *(None,) * (ndim - len(spec)))


@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv_per_shard_equals_one_device(layout, impl, axes):
    x, w, b = _arrays()
    mesh, spec = LAYOUTS[layout]

    def f(x, w, b):
        return jaxconv.conv2d(x, w, b, stride=2, padding=1, groups=4, impl=impl)

    _check(f, x, w, b, spec, _full(spec, 4), axes=axes, mesh=mesh)


@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layout", ["batch", "height", "channel"])
def test_forward_mode_per_shard_equals_one_device(layout, impl, axes):
    """jvp and the forward-over-reverse HVP (the rules are primitives, so forward mode
    runs per shard too) equal one device's."""
    x, w, b = _arrays()
    mesh, spec = LAYOUTS[layout]
    m = _mesh(mesh, axes)
    t = jnp.cos(w)

    def f(x, w):
        y = jaxconv.conv2d(x, w, b, stride=2, padding=1, groups=4, padding_mode="reflect",
                           impl=impl)
        return jnp.sum(jnp.tanh(y))

    def both(x, w):
        return (jax.jvp(lambda w: f(x, w), (w,), (t,))[1],
                jax.jvp(jax.grad(lambda w: f(x, w)), (w,), (t,))[1])

    want = jax.jit(both)(x, w)
    if axes == "explicit":
        with jax.set_mesh(m):
            got = jax.jit(both)(jax.device_put(x, NamedSharding(m, spec)), w)
    else:
        got = jax.jit(both)(jax.device_put(x, NamedSharding(m, spec)), w)
    for a, r in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(r), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv_transpose_per_shard_equals_one_device(layout, impl, axes):
    x, w, b = _arrays(transpose=True, k=4)
    mesh, spec = LAYOUTS[layout]

    def f(x, w, b):
        return jaxconv.conv_transpose2d(x, w, b, stride=2, padding=1, groups=4, impl=impl)

    _check(f, x, w, b, spec, _full(spec, 4), axes=axes, mesh=mesh)


@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_act_at_the_global_edges(mode, impl, axes):
    """Height sharded over 4 devices: reflect/replicate from the edge shards' own rows,
    circular wrapping from the last shard to the first; dilation 2 makes the halos 2."""
    x, w, b = _arrays(groups=2)
    spec = P(None, None, "a")

    def f(x, w, b):
        return jaxconv.conv2d(x, w, b, padding=2, dilation=2, groups=2, padding_mode=mode,
                              impl=impl)

    _check(f, x, w, b, spec, _full(spec, 4), axes=axes)


@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("impl", IMPLS)
def test_3d_depth_sharded(impl, axes):
    x, w, b = _arrays(rank=3, c=4, o=4, groups=1, n=8, batch=2)
    spec = P(None, None, "a")

    def f(x, w, b):
        return jaxconv.conv3d(x, w, b, padding="same", padding_mode="circular", impl=impl)

    _check(f, x, w, b, spec, _full(spec, 5), axes=axes)


@pytest.mark.parametrize("axes", AXES)
def test_unbatched_input_sharded_in_height(axes):
    x, w, b = _arrays(batch=1)
    x = x[0]

    def f(x, w, b):
        return jaxconv.conv2d(x, w, b, padding=1, groups=4, padding_mode="reflect")

    _check(f, x, w, b, P(None, "a"), P(None, "a", None), batched=False, axes=axes)


@pytest.mark.parametrize("axes", AXES)
def test_layers_under_sharding(axes):
    layer = jaxconv.nn.Conv2d(8, 8, 3, padding=1, groups=4, dtype="float64")
    params = layer.init(jax.random.key(0))
    x, _, _ = _arrays()
    _check(lambda x, w, b: layer({"weight": w, "bias": b}, x), x, params["weight"],
           params["bias"], P("a"), P("a", None, None, None), axes=axes)


@pytest.mark.parametrize("call, message", [
    (lambda x, w: jaxconv.conv2d(x, w, padding=0, groups=4),
     "jaxconv.conv2d: dimension 2 of `input` is sharded over mesh axis 'a' (4 shards); "
     "jaxconv convolves it per shard with a halo exchange, which needs an output of "
     "16 // stride = 16 rows on that axis, got 14. Pad so that it does (e.g. padding='same' "
     "at stride 1), or reshard that dimension (jax.sharding.reshard) before the call."),
    (lambda x, w: jaxconv.conv2d(x, w, padding=5, dilation=5, groups=4),
     "which needs halos of at most 4 rows (one shard of 4), got (5, 5)."),
])
def test_layouts_that_cant_be_sharded_raise(call, message):
    x, w, _ = _arrays()
    with jax.set_mesh(MESH):
        xs = jax.device_put(x, NamedSharding(MESH, P(None, None, "a")))
        with pytest.raises(ValueError, match=re.escape(message)):
            jax.jit(call)(xs, w)


def test_channels_sharded_across_groups_raise():
    x, w, _ = _arrays(groups=2)
    with jax.set_mesh(MESH):
        xs = jax.device_put(x, NamedSharding(MESH, P(None, "a")))
        with pytest.raises(ValueError, match=re.escape(
                "jaxconv.conv2d: the channels of `input` are sharded over mesh axis 'a' (4 "
                "shards), which jaxconv supports for groups split across the shards: groups "
                "must be a multiple of 4, got groups=2. Reshard the channels "
                "(jax.sharding.reshard) before the call.")):
            jaxconv.conv2d(xs, w, padding=1, groups=2)


# ---------------------------------------------------------------- automatic axes


FALLBACK = "That dimension is gathered first (replicated) under automatic mesh axes; "


@pytest.mark.parametrize("call, message", [
    (lambda x, w: jaxconv.conv2d(x, w, padding=0, groups=4),
     "jaxconv: the forward kernel (F) of a 2-d convolution can't be computed per shard "
     "with dimension 2 sharded over mesh axis 'a' (4 shards): the halo exchange needs an "
     "output of 16 // stride = 16 rows on that axis, got 14. " + FALLBACK),
    (lambda x, w: jaxconv.conv2d(x, w, padding=5, dilation=5, groups=4),
     "the halo exchange needs halos of at most 4 rows (one shard of 4), got (5, 5). "),
    (lambda x, w: jaxconv.conv2d(x[:, :, :14], w, padding=1, groups=4),
     "the halo exchange needs 4 shards to divide its 14 rows. "),
])
def test_automatic_axes_layouts_that_cant_be_sharded_warn_and_gather(call, message):
    """Under automatic axes a layout the halo exchange can't do is gathered (with a
    warning), not refused: the compiler chose it; the values are still right."""
    mesh = _mesh("4x2", "auto")
    x, w, _ = _arrays()
    want = jax.jit(call)(x, w)
    xs = jax.device_put(x, NamedSharding(mesh, P(None, None, "a")))
    with pytest.warns(UserWarning, match=re.escape(message)):
        got = jax.jit(call)(xs, w)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10, atol=1e-10)


def test_automatic_axes_channels_across_groups_warn_and_gather():
    mesh = _mesh("4x2", "auto")
    x, w, _ = _arrays(groups=2)
    call = jax.jit(lambda x, w: jaxconv.conv2d(x, w, padding=1, groups=2))
    want = call(x, w)
    xs = jax.device_put(x, NamedSharding(mesh, P(None, "a")))
    with pytest.warns(UserWarning, match=re.escape(
            "jaxconv: the forward kernel (F) of a 2-d convolution can't be computed per "
            "shard with its channels sharded over mesh axis 'a': groups must be a multiple "
            "of the 4 shards, got groups=2. " + FALLBACK)):
        got = call(xs, w)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10, atol=1e-10)


def test_automatic_axes_weight_gradient_of_a_smaller_cotangent_warns_and_gathers():
    """conv_transpose with output_padding: the weight gradient's cotangent (7 rows)
    holds fewer rows than the forward convolution's output on 8: the shards can't
    split both evenly, so that axis is gathered (and the gradient is right)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 8, 8))
    w1, w = rng.standard_normal((4, 4, 2, 2)), rng.standard_normal((4, 4, 3, 3))

    def f(x, w1, w):
        h = jnp.exp(jaxconv.conv2d(x, w1, impl="lax")) + 1.0  # 8 -> 7 rows
        y = jaxconv.conv_transpose2d(h, w, padding=2, dilation=2, output_padding=1,
                                     impl="lax")  # 7 -> 8 rows
        return jnp.sum(jnp.cos(y))

    run = jax.jit(jax.grad(f, argnums=(0, 1, 2)))
    want = run(x, w1, w)
    xs = jax.device_put(x, NamedSharding(_mesh("4x2", "auto"), P(None, None, "a")))
    with pytest.warns(UserWarning, match=re.escape(
            "the halo exchange needs an output of 8 // stride = 8 rows, got 7. ")):
        got = run(xs, w1, w)
    for a, r in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(r), rtol=1e-10, atol=1e-10)


def test_automatic_axes_inside_a_partly_manual_shard_map_warn():
    """Inside a shard_map manual over some mesh axes only, a kernel sees shardings that
    name no mesh axes: it computes the replicated program (XLA gathers) and says so."""
    mesh = _mesh("4x2", "auto")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((8, 4, 16, 16)), rng.standard_normal((8, 4, 3, 3))

    def loss(x, w):
        y = jaxconv.conv2d(x, w, padding=1, padding_mode="reflect", impl="shift")
        return jnp.sum(jnp.tanh(y) ** 2)

    def body(x, w):
        x = jax.lax.with_sharding_constraint(x, P(None, None, "a"))
        dx, dw = jax.grad(loss, argnums=(0, 1))(x, w)
        return dx, jax.lax.psum(dw, "b")

    run = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(P("b"), P()),
                                out_specs=(P("b"), P()), axis_names={"b"}, check_vma=False))
    want = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)
    with pytest.warns(UserWarning, match=re.escape(
            "it names no mesh axes (a shard_map manual over some mesh axes only). ")):
        got = run(jax.device_put(x, NamedSharding(mesh, P("b"))), w)
    for a, r in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(r), rtol=1e-10, atol=1e-10)


def test_automatic_partitioning_off_lowers_plain_kernels_and_exports():
    """jax.export can't serialise custom_partitioning sharded over devices; with
    set_automatic_partitioning(False) the kernels are plain operations again."""
    mesh = _mesh("8", "auto")

    def conv(x, w):
        return jaxconv.conv2d(x, w, padding=1, padding_mode="reflect", impl="lax")

    f = jax.jit(conv)
    xs = jax.ShapeDtypeStruct((8, 4, 16, 16), jnp.float64,
                              sharding=NamedSharding(mesh, P(None, None, "d")))
    ws = jax.ShapeDtypeStruct((4, 4, 3, 3), jnp.float64)
    assert "CustomSPMDPartitioning" in f.lower(xs, ws).as_text()
    with pytest.raises(Exception, match="host_callbacks"):
        jax.export.export(f)(xs, ws)
    jaxconv.set_automatic_partitioning(False)
    try:
        assert not jaxconv.get_automatic_partitioning()
        f = jax.jit(lambda x, w: conv(x, w))  # a function traced before keeps its program
        assert "CustomSPMDPartitioning" not in f.lower(xs, ws).as_text()
        exported = jax.export.export(f)(xs, ws)
    finally:
        jaxconv.set_automatic_partitioning(True)
    x = np.random.default_rng(0).standard_normal(xs.shape)
    w = np.random.default_rng(1).standard_normal(ws.shape)
    got = exported.call(jax.device_put(x, xs.sharding), w)
    np.testing.assert_allclose(np.asarray(got), np.asarray(f(x, w)), rtol=1e-12)


@pytest.mark.parametrize("autodiff", ["custom", "custom_vjp"])
@pytest.mark.parametrize("impl", ["shift", "auto"])
def test_automatic_axes_hand_written_rules_either_binding(impl, autodiff):
    """The hand-written rules bound with custom_vjp call the same kernels, so they are
    partitioned the same way (before, shift's strided pad aborted the process)."""
    x, w, b = _arrays()

    def f(x, w, b):
        return jaxconv.conv2d(x, w, b, stride=2, padding=1, groups=4, padding_mode="reflect",
                              impl=impl, autodiff=autodiff)

    _check(f, x, w, b, P(None, None, "a"), P(None, None, "a", None), axes="auto")


@pytest.mark.parametrize("impl", IMPLS)
def test_automatic_axes_mixed_network_never_aborts(impl):
    """The issue's network (a reflect-padded 3->8, a depthwise and a 4-group stride-2
    3x3, then a transposed convolution back up) under value_and_grad with plain
    ``jax.sharding.Mesh`` axes, batch or height sharded: one device's values, the halos
    as collective permutes, no all-gather."""
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(s) for s in ((8, 3, 3, 3), (8, 1, 3, 3), (8, 2, 3, 3),
                                               (8, 4, 4, 4))]
    x = rng.standard_normal((16, 3, 32, 32))

    def net(params, x):
        w1, w2, w3, w4 = params
        y = jnp.tanh(jaxconv.conv2d(x, w1, padding=1, padding_mode="reflect", impl=impl))
        y = jnp.tanh(jaxconv.conv2d(y, w2, padding=1, groups=8, impl=impl))
        y = jnp.tanh(jaxconv.conv2d(y, w3, padding=1, stride=2, groups=4, impl=impl))
        y = jaxconv.conv_transpose2d(y, w4, stride=2, padding=1, groups=2, impl=impl)
        return jnp.sum(y ** 2)

    run = jax.jit(jax.value_and_grad(net))
    want = run(params, x)
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("d",))
    for spec in (P("d"), P(None, None, "d")):
        xs = jax.device_put(x, NamedSharding(mesh, spec))
        got = run(params, xs)
        for a, r in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(r), rtol=1e-9, atol=1e-9)
        hlo = run.lower(params, xs).compile().as_text()
        assert "all-gather" not in hlo
        assert ("collective-permute" in hlo) == (spec != P("d"))


@pytest.mark.xfail(strict=True, reason=(
    "XLA's SPMD partitioner (jax 0.10.2, CPU): with automatic axes on a 2-d mesh and the "
    "input sharded along a spatial axis of one mesh axis, the weight gradient of "
    "lax.conv_general_dilated under jax.grad comes out multiplied by the size of the other "
    "mesh axis; jaxconv's explicit-axes path (above) is correct"))
def test_xla_automatic_axes_weight_gradient_on_a_2d_mesh():
    mesh = jax.make_mesh((4, 2), ("a", "b"), axis_types=(AxisType.Auto,) * 2)
    x, w, _ = _arrays(groups=1)

    def loss(x, w):
        return jnp.sum(jax.lax.conv_general_dilated(x, w, (1, 1), [(1, 1)] * 2) ** 2)

    want = jax.jit(jax.grad(loss, argnums=1))(x, w)
    got = jax.jit(jax.grad(loss, argnums=1))(
        jax.device_put(x, NamedSharding(mesh, P(None, None, "a"))), w)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9)


def test_devices():
    assert jax.device_count() == 8, os.environ.get("XLA_FLAGS")
