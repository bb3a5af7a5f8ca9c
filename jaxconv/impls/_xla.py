"""What the impls share: dtype and grouping helpers, and workarounds for XLA's CPU
compiler, each with its measurement."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax


def accumulation_dtype(dtype: Any) -> jnp.dtype:
    """float32 for half types (float16, bfloat16), else the dtype itself."""
    dtype = jnp.dtype(dtype)
    half = jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize < 4
    return jnp.dtype(jnp.float32) if half else dtype


def split_groups(a: jax.Array, axis: int, groups: int) -> jax.Array:
    """Split axis `axis` of size C into ``(groups, C // groups)``."""
    return a.reshape(*a.shape[:axis], groups, a.shape[axis] // groups, *a.shape[axis + 1:])


def fusion_fence(y: jax.Array) -> jax.Array:
    """`y` unchanged, but opaque to XLA's CPU YNNPACK fusion.

    On CPU (jax 0.10.2) XLA groups elementwise ops with a reduction that consumes
    them into one YNNPACK fusion, whose operands must be materialised: for the
    shift impl's fused loop (a sum of strided slices) every slice is then copied
    out before the reduction, and ``jnp.sum(conv(x))`` of a depthwise 3x3 layer
    (8x128x56x56) takes 40 ms instead of 2.4 ms. ``lax.optimization_barrier``
    does not stop it; a ``reduce_precision`` to the dtype's own exponent and
    mantissa widths does (it is the identity, NaN and Inf included, and XLA
    fuses it into the loop at no cost). Other backends get `y` as it is.
    """
    if jax.default_backend() != "cpu" or not jnp.issubdtype(y.dtype, jnp.floating):
        return y
    info = jnp.finfo(y.dtype)
    return lax.reduce_precision(y, exponent_bits=info.nexp, mantissa_bits=info.nmant)
