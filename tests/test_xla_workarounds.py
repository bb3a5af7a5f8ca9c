"""The lax impl's workarounds for XLA's CPU backend compute the same convolution.

``jaxconv.impls.lax._output_within_input`` moves part of a convolution's padding
into an explicit pad so that no output axis is longer than the input's (XLA hands
such 2-d convolutions to YNNPACK only then). Here: the moved padding gives exactly
the original convolution's values (to rounding), in every dimension-number layout the impls use,
with negative pads, strides and dilations; and the programs it was written for
(the input gradient of a pre-padded convolution, a transposed convolution) keep
every convolution in YNNPACK.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

import jaxconv
from jaxconv.impls import lax as lax_impl


@st.composite
def conv_problems(draw):
    swapped = draw(st.booleans())  # the weight-gradient layout: batch and feature swapped
    numbers = (lax_impl._batch_feature_swapped(2) if swapped else lax_impl._channels_first(2))
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    spatial = [draw(st.integers(1, 9)) for _ in range(2)]
    kernel = [draw(st.integers(1, 4)) for _ in range(2)]
    strides = [draw(st.integers(1, 3)) for _ in range(2)]
    dilation = [draw(st.integers(1, 2)) for _ in range(2)]
    padding = []
    for size, k, d in zip(spatial, kernel, dilation, strict=True):
        lo, hi = draw(st.integers(-1, 5)), draw(st.integers(-1, 5))
        if size + lo + hi < d * (k - 1) + 1:  # no output: widen the high side
            hi = d * (k - 1) + 1 - size - lo
        padding.append((lo, hi))
    lhs_shape = (c, n, *spatial) if swapped else (n, c, *spatial)
    rhs_shape = (c, o, *kernel) if swapped else (o, c, *kernel)
    return lhs_shape, rhs_shape, tuple(strides), tuple(padding), tuple(dilation), numbers


@settings(max_examples=60, deadline=None, derandomize=True)
@given(problem=conv_problems())
def test_moved_padding_computes_the_same_convolution(problem):
    lhs_shape, rhs_shape, strides, padding, dilation, numbers = problem
    rng = np.random.default_rng(0)
    lhs, rhs = rng.standard_normal(lhs_shape), rng.standard_normal(rhs_shape)
    kw = dict(rhs_dilation=dilation, dimension_numbers=numbers)
    want = lax.conv_general_dilated(lhs, rhs, strides, padding, **kw)
    moved, kept = lax_impl._output_within_input(jnp.asarray(lhs), rhs, strides, padding, **kw)
    got = lax.conv_general_dilated(moved, rhs, strides, kept, **kw)
    assert got.shape == want.shape
    # the same sums; XLA may order them differently on its two paths (float64: 1 ulp)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)
    for i in range(2):  # the output fits in the (explicitly padded) input, axis by axis
        assert got.shape[numbers.out_spec[2 + i]] <= moved.shape[numbers.lhs_spec[2 + i]]
    # only what was needed moved: an output that already fit leaves the call unchanged
    fits = all(want.shape[numbers.out_spec[2 + i]] <= lhs_shape[numbers.lhs_spec[2 + i]]
               for i in range(2))
    assert (kept == padding) == fits


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA CPU's YNNPACK offload")
@pytest.mark.parametrize("call", ["reflect", "valid", "conv_transpose"])
def test_programs_keep_every_convolution_in_ynnpack(call):
    """The slow path this works around shows in the optimised HLO as a bare
    ``convolution`` (XLA's own loop nest) instead of a YNNPACK fusion."""
    if not any("ynn" in line for line in _optimized_hlo("zeros").splitlines()):
        pytest.skip("this XLA build does not offload convolutions to YNNPACK")
    bare = [line for line in _optimized_hlo(call).splitlines()
            if " convolution(" in line and "ROOT" not in line]
    assert not bare, bare


def _optimized_hlo(call: str) -> str:
    x = jnp.zeros((2, 32, 12, 12), jnp.float32)
    w = jnp.zeros((32, 32, 3, 3), jnp.float32)
    if call == "conv_transpose":
        f = lambda x, w: jnp.sum(jaxconv.conv_transpose2d(x, w, impl="lax") ** 2)
    else:
        kw = (dict(padding=0) if call == "valid" else
              dict(padding=1, padding_mode=call))
        f = lambda x, w: jnp.sum(jaxconv.conv2d(x, w, **kw, impl="lax") ** 2)
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1))).lower(x, w).compile().as_text()
