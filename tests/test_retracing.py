"""Equal configurations, however spelled, trace and compile once.

Every public entry point normalises its arguments into one hashable, static
description (``ConvSpec``, a layer, the lax adapter's static arguments), so a
configuration written with tuples, lists, NumPy integers, ``(low, high)``
pairs or an equivalent padding string must reuse the first call's trace and
executable. Three independent counters check it:

- traces of the impls' kernels (``F``, ``T``, ``W``), counted by wrapping the
  registered kernels (restored by ``monkeypatch``): they are traced inside
  jaxconv's jitted cores, under an outer ``jit`` too;
- compilations, counted from ``jax.log_compiles``'s log records;
- entries of jaxconv's jitted cores' caches (``_cache_size()``).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxconv
from jaxconv import _registry, nn
from jaxconv._conv import conv_core
from jaxconv._conv_transpose import conv_transpose_core
from jaxconv._lax_compat import _core as lax_compat_core

IMPLS = ("lax", "gather", "shift", "fold", "auto")


@pytest.fixture
def traces(monkeypatch):
    """``Counter`` of kernel traces, ``(impl, "F" | "T" | "W")``, for every registered impl."""
    counts = collections.Counter()

    def counted(name, kind, kernel):
        @functools.wraps(kernel)
        def wrapper(*args):
            counts[name, kind] += 1
            return kernel(*args)
        return wrapper

    for name in jaxconv.available_impls():
        impl = _registry.get_impl(name)
        monkeypatch.setitem(_registry._REGISTRY, name, dataclasses.replace(
            impl, forward=counted(name, "F", impl.forward),
            input_grad=counted(name, "T", impl.input_grad),
            weight_grad=counted(name, "W", impl.weight_grad)))
    jax.clear_caches()  # traces made before the kernels were wrapped would hide retraces
    yield counts
    jax.clear_caches()  # none of the wrapped kernels' traces outlive the test


@pytest.fixture
def compiles(caplog):
    """``Counter`` of XLA compilations by jitted function name, from ``jax.log_compiles``."""
    counts = collections.Counter()

    class Count(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if message.startswith("Compiling jit("):
                counts[message[len("Compiling jit("):message.index(")")]] += 1

    handler = Count(level=logging.WARNING)
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    with jax.log_compiles(True):
        yield counts
    logger.removeHandler(handler)


def _grads(fn, x, w, b, **kw):
    """``d(Σ y²)/d(x, w, b)``: every kernel (F, T, W) of the impl, no outer jit."""
    return jax.grad(lambda x, w, b: jnp.sum(fn(x, w, b, **kw) ** 2), argnums=(0, 1, 2))(x, w, b)


def _check_once(traces, compiles, core, call, spellings, other):
    """The first spelling traces and compiles; every other (and each again) does neither;
    a different configuration, `other`, does both (so the counters are live)."""
    before = core._cache_size()
    first = call(spellings[0])
    traced, compiled = dict(traces), dict(compiles)
    assert traced and compiled.get(core.__name__), (traced, compiled)
    assert core._cache_size() == before + 1
    for spelling in spellings[1:] + spellings:
        np.testing.assert_array_equal(call(spelling), first)
        assert dict(traces) == traced, f"{spelling} traced again: {dict(traces)} vs {traced}"
        assert dict(compiles) == compiled, f"{spelling} compiled again: {dict(compiles)}"
    assert core._cache_size() == before + 1
    call(other)
    assert sum(traces.values()) > sum(traced.values())
    assert compiles[core.__name__] == compiled[core.__name__] + 1
    assert core._cache_size() == before + 2


# --- the functions ------------------------------------------------------------------------

CONV_SPELLINGS = [  # one strided configuration, written six ways
    dict(stride=2, padding=1, dilation=1, groups=2),
    dict(stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=2),
    dict(stride=[2, 2], padding=[1, 1], dilation=[1, 1], groups=2),
    dict(stride=np.int64(2), padding=np.int64(1), dilation=np.int64(1), groups=np.int64(2)),
    dict(stride=(np.int64(2), 2), padding=[np.int32(1), 1], dilation=[1, np.int64(1)],
         groups=2),
    dict(stride=2, padding=((1, 1), [1, np.int64(1)]), groups=2),
]
SAME_SPELLINGS = [  # stride 1, kernel (3, 2): 'same' pads (1, 1) and (0, 1)
    dict(padding="same"),
    dict(padding=((1, 1), (0, 1))),
    dict(padding=[[1, 1], [0, np.int64(1)]], stride=[1, 1], dilation=(1, np.int64(1))),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("spellings", [CONV_SPELLINGS, SAME_SPELLINGS], ids=["strided", "same"])
def test_conv_spellings_trace_once(traces, compiles, impl, spellings):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 4, 9, 8)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((6, 2, 3, 2) if spellings is SAME_SPELLINGS
                                        else (6, 2, 3, 3)), jnp.float32)
    b = jnp.zeros(6, jnp.float32)

    def call(kw):
        kw = dict(kw, groups=kw.get("groups", 2))
        return jaxconv.conv2d(x, w, b, **kw, padding_mode="reflect", impl=impl)

    _check_once(traces, compiles, conv_core, call, spellings, other=dict(padding=(1, 2)))


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_gradients_trace_once(traces, compiles, impl):
    """Under ``jax.grad`` (no outer jit) the forward and both gradient kernels are traced
    by the first spelling only."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 4, 9, 8)))
    w = jnp.asarray(rng.standard_normal((6, 2, 3, 3)))
    b = jnp.zeros(6)
    first = _grads(jaxconv.conv2d, x, w, b, **CONV_SPELLINGS[0], impl=impl)
    traced = dict(traces)
    assert {kind for _, kind in traced} == {"F", "T", "W"}
    for kw in CONV_SPELLINGS[1:]:
        again = _grads(jaxconv.conv2d, x, w, b, **kw, impl=impl)
        assert dict(traces) == traced, kw
        for g, h in zip(again, first, strict=True):
            np.testing.assert_array_equal(g, h)
    assert sum(compiles.values()) > 0


TRANSPOSE_SPELLINGS = [
    dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1),
    dict(stride=(2, 2), padding=(1, 1), output_padding=(1, 1), groups=2, dilation=(1, 1)),
    dict(stride=[2, 2], padding=[1, 1], output_padding=[1, 1], groups=2, dilation=[1, 1]),
    dict(stride=np.int64(2), padding=np.int64(1), output_padding=np.int32(1),
         groups=np.int64(2), dilation=np.int64(1)),
    dict(stride=[np.int64(2), 2], padding=((1, 1), [np.int64(1), 1]), output_padding=[1, 1],
         groups=2),
]


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_transpose_spellings_trace_once(traces, compiles, impl):
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, 4, 5, 6)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((4, 3, 3, 3)), jnp.float32)

    def call(kw):
        return jaxconv.conv_transpose2d(x, w, **kw, impl=impl)  # (2, 6, 10, 12)

    _check_once(traces, compiles, conv_transpose_core, call, TRANSPOSE_SPELLINGS,
                other=dict(stride=2, padding=(1, 0), output_padding=(1, 0), groups=2))


LAX_SPELLINGS = [  # input 9x8, kernel 3x3, stride 2: 'SAME' pads (1, 1) and (0, 1)
    dict(window_strides=(2, 2), padding="SAME"),
    dict(window_strides=[2, 2], padding="same", rhs_dilation=[1, 1], lhs_dilation=(1, 1)),
    dict(window_strides=np.array([2, 2]), padding=[(1, 1), (0, 1)],
         dimension_numbers=("NCHW", "OIHW", "NCHW")),
    dict(window_strides=(np.int64(2), 2), padding=[[1, 1], [np.int64(0), 1]],
         dimension_numbers=lax.ConvDimensionNumbers((0, 1, 2, 3), (0, 1, 2, 3),
                                                    (0, 1, 2, 3)),
         feature_group_count=np.int64(2)),
]


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_general_dilated_spellings_trace_once(traces, compiles, impl):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((2, 4, 9, 8)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((6, 2, 3, 3)), jnp.float32)

    def call(kw):
        kw = dict(kw, feature_group_count=kw.get("feature_group_count", 2))
        return jaxconv.conv_general_dilated(x, w, **kw, impl=impl)  # (2, 6, 5, 4)

    _check_once(traces, compiles, lax_compat_core, call, LAX_SPELLINGS,
                other=dict(window_strides=(2, 2), padding="SAME_LOWER"))


# --- the layers ---------------------------------------------------------------------------

def _conv_layers(impl):
    """One layer, constructed five separate ways."""
    return [
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, padding_mode="circular", impl=impl),
        nn.Conv2d(4, 6, (3, 3), stride=(2, 2), padding=(1, 1), groups=2,
                  padding_mode="circular", impl=impl),
        nn.Conv2d(4, 6, [3, 3], stride=[2, 2], padding=[1, 1], groups=np.int64(2),
                  padding_mode="circular", impl=impl),
        nn.Conv2d(np.int64(4), np.int32(6), np.int64(3), stride=np.int64(2),
                  padding=((1, 1), [1, np.int64(1)]), groups=2, padding_mode="circular",
                  impl=impl),
        nn.Conv2d(4, 6, 3, groups=2, impl=impl).replace(stride=2, padding=1,
                                                          padding_mode="circular"),
    ]


@pytest.mark.parametrize("impl", IMPLS)
def test_equal_layers_are_one_static_argument(traces, compiles, impl):
    """Separately constructed equal layers are equal and hash alike, so as a static
    argument of an outer jit they trace and compile one train step."""
    layers = _conv_layers(impl)
    assert all(layer == layers[0] and hash(layer) == hash(layers[0]) for layer in layers)
    params = layers[0].init(jax.random.key(0))
    x = jnp.asarray(np.random.default_rng(4).standard_normal((2, 4, 8, 8)), jnp.float32)

    @functools.partial(jax.jit, static_argnums=0)
    @chex.assert_max_traces(n=1)
    def step(layer, params, x):
        loss = lambda p: jnp.sum(layer(p, x) ** 2)
        return jax.value_and_grad(loss)(params)

    first = step(layers[0], params, x)
    traced, compiled = dict(traces), dict(compiles)
    for layer in layers[1:] + layers:
        out = step(layer, params, x)
        chex.assert_trees_all_equal(out, first)
    assert dict(traces) == traced and dict(compiles) == compiled
    assert compiled.get("step") == 1
    chex.clear_trace_counter()


@pytest.mark.parametrize("impl", IMPLS)
def test_closed_over_layers_trace_the_kernels_once(traces, impl):
    """Each new closure is a new outer jit (traced once itself), and the convolution
    inside, keyed on an equal spec, reuses its traced core (one jaxpr: the primitives);
    the kernels are traced when a program is lowered, once per new outer program (the
    primitives' lowering), F and W each (the gradient is w.r.t. the parameters only)."""
    layers = _conv_layers(impl)
    params = layers[0].init(jax.random.key(1))
    x = jnp.asarray(np.random.default_rng(5).standard_normal((2, 4, 8, 8)), jnp.float32)
    counted = collections.Counter()
    for i, layer in enumerate(layers):
        def loss(p, layer=layer, i=i):
            counted[i] += 1
            return jnp.sum(layer(p, x) ** 2)
        grads = jax.jit(jax.grad(loss))
        for _ in range(2):
            grads(params)
        assert counted[i] == 1  # each closure: one trace of its own
        if i == 0:
            traced = dict(traces)
            # The gradient is taken w.r.t. the parameters only: the transposes run W and
            # never T (x is a constant), which custom_vjp's backward computed anyway.
            assert {kind for _, kind in traced} == {"F", "W"}
        # One more trace of each kernel per new outer program, none per call.
        assert dict(traces) == {k: n * (i + 1) for k, n in traced.items()}, (
            f"layer {i} traced the kernels more than once for its program")


@pytest.mark.parametrize("impl", IMPLS)
def test_equal_transposed_layers_trace_once(traces, compiles, impl):
    """ConvTranspose2d spelled three ways, called with ``output_size`` (which picks
    ``output_padding`` per call) and without: one trace and compilation per output size."""
    layers = [
        nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, impl=impl),
        nn.ConvTranspose2d(4, 6, [3, 3], stride=[2, 2], padding=[1, 1], groups=2, impl=impl),
        nn.ConvTranspose2d(np.int64(4), 6, (3, np.int64(3)), stride=(np.int64(2), 2),
                           padding=np.int64(1), groups=np.int64(2), impl=impl),
    ]
    assert len(set(layers)) == 1
    params = layers[0].init(jax.random.key(2))
    x = jnp.asarray(np.random.default_rng(6).standard_normal((2, 4, 5, 6)), jnp.float32)

    def apply(layer, size):
        y = layer(params, x, output_size=size)
        assert y.shape[2:] == (tuple(int(n) for n in size) if size else (9, 11))

    for size in (None, (10, 12)):  # output_padding 0, then 1: two configurations
        before = conv_transpose_core._cache_size()
        apply(layers[0], size)
        traced, compiled = dict(traces), dict(compiles)
        for layer in layers[1:] + layers:
            apply(layer, size if size is None else [np.int64(size[0]), size[1]])
            assert dict(traces) == traced and dict(compiles) == compiled
        assert conv_transpose_core._cache_size() == before + 1
