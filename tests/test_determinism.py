"""Bit-identical results, run after run and compilation after compilation (CPU).

For every impl, float32 and float64, conv and conv_transpose: the output and
the gradients (a VJP with a fixed cotangent: input, weight and bias) are the
same bits when the compiled program runs again, when it is compiled afresh
(``jax.clear_caches()``, a new ``jax.jit`` wrapper). The shapes are large enough for XLA's
CPU backend to split the work across threads (batch 8, up to 32 channels), which is
where a nondeterministic reduction order would show.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv

IMPLS = ("lax", "gather", "shift", "fold", "auto")

CASES = {
    # id: (function, x shape, w shape, kwargs)
    "conv2d": (jaxconv.conv2d, (8, 32, 20, 20), (32, 8, 3, 3),
               dict(stride=2, padding=1, groups=4, padding_mode="reflect")),
    "conv3d": (jaxconv.conv3d, (2, 4, 6, 8, 8), (8, 4, 3, 3, 3),
               dict(padding=1, dilation=(1, 2, 1))),
    "conv_transpose2d": (jaxconv.conv_transpose2d, (8, 16, 9, 9), (16, 8, 3, 3),
                         dict(stride=2, padding=1, output_padding=1, groups=2)),
}


def _operands(case, dtype):
    fn, x_shape, w_shape, kw = CASES[case]
    transpose = fn is jaxconv.conv_transpose2d
    b_shape = (w_shape[1] * kw.get("groups", 1),) if transpose else (w_shape[0],)
    rng = np.random.default_rng(0)
    x, w, b = (jnp.asarray(rng.standard_normal(s), dtype) for s in (x_shape, w_shape, b_shape))
    y_shape = jax.eval_shape(lambda x, w, b: fn(x, w, b, **kw), x, w, b).shape
    cot = jnp.asarray(rng.standard_normal(y_shape), dtype)
    return x, w, b, cot


def _program(case, impl):
    """The output and the VJP of (input, weight, bias), as one function of the operands."""
    fn, _, _, kw = CASES[case]

    def run(x, w, b, cot):
        y, vjp = jax.vjp(lambda x, w, b: fn(x, w, b, **kw, impl=impl), x, w, b)
        return (y, *vjp(cot))

    return run


def _bits(arrays):
    """Each array's raw bytes (so -0.0 vs 0.0 and NaN payloads count as differences)."""
    return [np.asarray(a).tobytes() for a in arrays]


def _assert_same_bits(got, want, what):
    names = ("output", "d_input", "d_weight", "d_bias")
    for name, g, t in zip(names, _bits(got), _bits(want), strict=True):
        assert g == t, f"{what}: {name} differs in its bits"


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("impl", IMPLS)
def test_bit_identical(impl, case, dtype):
    args = _operands(case, dtype)
    program = _program(case, impl)

    compiled = jax.jit(program)
    first = compiled(*args)
    assert all(a.dtype == dtype for a in first)
    for run in range(2):
        _assert_same_bits(compiled(*args), first, f"run {run + 2} of one compilation")

    jax.clear_caches()  # jaxconv's jitted cores too: everything is traced and compiled anew
    _assert_same_bits(jax.jit(program)(*args), first, "a fresh compilation")
    _assert_same_bits(jax.jit(_program(case, impl))(*args), first, "a new jit wrapper")
