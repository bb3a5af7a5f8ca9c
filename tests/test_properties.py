"""Property-based tests: random valid configurations vs PyTorch, and structural laws."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import numpy_conv, torch_conv_module

import jaxconv

IMPLS = jaxconv.available_impls()


@st.composite
def conv_configs(draw):
    rank = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    group_in, group_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = tuple(draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)))
    dilation = tuple(draw(st.lists(st.integers(1, 2), min_size=rank, max_size=rank)))
    mode = draw(st.sampled_from(("zeros", "reflect", "replicate", "circular")))
    form = draw(st.sampled_from(("int", "tuple", "same", "valid")))
    stride = (1,) * rank if form == "same" else tuple(
        draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)))
    # Sizes at least the dilated kernel and larger than any pad (reflect's limit).
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(2, 4)) for k, d in zip(
        kernel, dilation, strict=True))
    if form == "int":
        padding = draw(st.integers(0, min(spatial) - 1))
    elif form == "tuple":
        padding = tuple(draw(st.integers(0, n - 1)) for n in spatial)
    else:
        padding = form
    batch = draw(st.sampled_from(((), (1,), (2,), (0,))))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return dict(rank=rank, groups=groups, group_in=group_in, group_out=group_out,
                kernel=kernel, dilation=dilation, stride=stride, padding=padding,
                padding_mode=mode, spatial=spatial, batch=batch, bias=bias, seed=seed)


def _arrays(cfg):
    rng = np.random.default_rng(cfg["seed"])
    g = cfg["groups"]
    x = rng.standard_normal((*cfg["batch"], g * cfg["group_in"], *cfg["spatial"]))
    w = rng.standard_normal((g * cfg["group_out"], cfg["group_in"], *cfg["kernel"]))
    b = rng.standard_normal(g * cfg["group_out"]) if cfg["bias"] else None
    kw = {k: cfg[k] for k in ("stride", "padding", "dilation", "groups", "padding_mode")}
    return x, w, b, kw


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=25, deadline=None)
@given(cfg=conv_configs())
@pytest.mark.exhaustive  # slow (quick-tier budget); its neighbours cover the same code
def test_random_configurations_match_torch(torch, impl, cfg):
    x, w, b, kw = _arrays(cfg)
    y = jaxconv.conv(x, w, b, **kw, impl=impl)
    np.testing.assert_allclose(np.asarray(y), torch_conv_module(torch, x, w, b, **kw),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=15, deadline=None)
@given(cfg=conv_configs())
@pytest.mark.exhaustive  # slow (quick-tier budget); its neighbours cover the same code
def test_random_configurations_match_numpy(impl, cfg):
    x, w, b, kw = _arrays(cfg)
    np.testing.assert_allclose(np.asarray(jaxconv.conv(x, w, b, **kw, impl=impl)),
                               numpy_conv(x, w, b, **kw), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_circular_padding_is_shift_equivariant(impl, rank):
    """With circular 'same' padding and stride 1, convolving commutes with rolling."""
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((2, 3, *(6,) * rank))
    w = rng.standard_normal((4, 3, *(3,) * rank))
    shift, axes = tuple(range(1, rank + 1)), tuple(range(2, rank + 2))
    conv = lambda v: jaxconv.conv(v, w, padding="same", padding_mode="circular", impl=impl)
    np.testing.assert_allclose(conv(jnp.roll(x, shift, axes)), jnp.roll(conv(x), shift, axes),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_each_group_only_sees_its_channels(impl):
    rng = np.random.default_rng(7)
    groups, group_in, group_out = 3, 2, 2
    x = rng.standard_normal((2, groups * group_in, 7, 7))
    w = rng.standard_normal((groups * group_out, group_in, 3, 3))
    base = jaxconv.conv2d(x, w, padding=1, groups=groups, impl=impl)
    for g in range(groups):
        bumped = x.copy()
        bumped[:, g * group_in:(g + 1) * group_in] += rng.standard_normal((2, group_in, 7, 7))
        diff = np.abs(np.asarray(jaxconv.conv2d(bumped, w, padding=1, groups=groups,
                                                impl=impl) - base)).max(axis=(0, 2, 3))
        changed = diff > 1e-9
        expected = np.zeros(groups * group_out, bool)
        expected[g * group_out:(g + 1) * group_out] = True
        np.testing.assert_array_equal(changed, expected)
