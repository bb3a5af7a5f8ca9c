"""Helpers for users' own equivalence tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv._conv import conv
from jaxconv._registry import available_impls
from jaxconv._spec import _fail, conv_spec, is_sequence

# The keyword arguments of jaxconv.conv that assert_impls_agree passes on, with defaults.
CONV_KWARGS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros",
               "precision": None, "autodiff": "custom"}

# Default (rtol, atol) per dtype, relative to the scale 1 + max|reference|. Complex as its
# real dtype (the three-real-call product loses no more than a rounding or two; errors are
# moduli); integers exactly.
TOLERANCES = {
    "float64": (1e-10, 1e-10),
    "float32": (1e-4, 1e-4),
    "bfloat16": (3e-2, 3e-2),
    "float16": (5e-3, 5e-3),
    "complex128": (1e-10, 1e-10),
    "complex64": (1e-4, 1e-4),
    "int64": (0.0, 0.0),
}


def impl_outputs(input: Any, weight: Any, bias: Any = None, *, impl: str, cotangent_seed: int = 0,
                 **conv_kwargs: Any) -> dict[str, np.ndarray]:
    """Output and gradients of one impl: ``{"output", "d_input", "d_weight"[, "d_bias"]}``.

    Gradients are the VJP with a fixed pseudo-random cotangent (the same for
    every impl; complex: normal real and imaginary parts), so they check every
    entry of the Jacobian products. Integer and bool dtypes have no gradients:
    the output only. Results are NumPy arrays in float64, complex128, or the
    integer or bool dtype itself.
    """
    args: tuple[jax.Array, ...] = (jnp.asarray(input), jnp.asarray(weight))
    if bias is not None:
        args += (jnp.asarray(bias),)

    def f(*a):
        return conv(*a, **conv_kwargs, impl=impl)

    y = f(*args)  # a plain call: auto may run another forward here than under the VJP
    out = {"output": _host(y)}
    if not jnp.issubdtype(y.dtype, jnp.inexact):
        return out
    _, vjp = jax.vjp(f, *args)
    key = jax.random.key(cotangent_seed)
    if jnp.issubdtype(y.dtype, jnp.complexfloating):
        re, im = jax.random.normal(key, (2, *y.shape), jnp.float32)
        cot = jax.lax.complex(re, im).astype(y.dtype)
    else:
        cot = jax.random.normal(key, y.shape, jnp.float32).astype(y.dtype)
    names = ("d_input", "d_weight", "d_bias")
    out.update({n: _host(g) for n, g in zip(names, vjp(cot), strict=False)})
    return out


def _host(a) -> np.ndarray:
    """`a` on the host, exactly comparable: float64, complex128, or its own integer/bool
    dtype."""
    if jnp.issubdtype(a.dtype, jnp.complexfloating):
        return np.asarray(a, np.complex128)
    return np.asarray(a, np.float64) if jnp.issubdtype(a.dtype, jnp.floating) else np.asarray(a)


def assert_impls_agree(input: Any, weight: Any, bias: Any = None, *,
                       impls: Sequence[str] | None = None, rtol: float | None = None,
                       atol: float | None = None, **conv_kwargs: Any) -> dict[str, dict]:
    """Check that every impl computes the same convolution, forward and gradients.

    Runs :func:`jaxconv.conv` with each impl (the first is the reference) and
    compares the output and the gradients w.r.t. input, weight and bias.

    Args:
      input, weight, bias: as for :func:`jaxconv.conv`.
      impls: impl names, at least two; default: every registered impl.
      rtol, atol: tolerance ``|a - b| <= atol·scale + rtol·|b|`` with
        ``scale = 1 + max|b|`` (moduli for complex); defaults depend on the input
        dtype (float64, complex128: 1e-10; float32, complex64: 1e-4; float16: 5e-3;
        bfloat16: 3e-2). Integer and bool outputs (they have no gradients) are
        compared exactly, whatever the tolerance.
      **conv_kwargs: stride, padding, dilation, groups, padding_mode, precision,
        autodiff.

    Returns:
      ``{impl: {quantity: max abs difference from the reference}}``.

    Raises:
      AssertionError: listing every (impl, quantity) that disagrees and by how much.
      ValueError: fewer than two impls, an unknown impl, a negative or NaN
        tolerance, or a convolution :func:`jaxconv.conv` would refuse.
      TypeError: arguments of the wrong kind (as :func:`jaxconv.conv` says), impls
        that are not a sequence of names, a tolerance that is not a real number,
        or an unknown keyword argument.
    """
    fn = "testing.assert_impls_agree"
    if impls is not None and (not is_sequence(impls)
                              or not all(isinstance(i, str) for i in impls)):
        raise _fail(TypeError, fn, f"`impls` must be a sequence of impl names (at least two "
                    f"of {available_impls()}), got impls={impls!r}.")
    impls = tuple(available_impls() if impls is None else impls)
    unknown = [i for i in impls if i not in available_impls()]
    if unknown or len(impls) < 2:
        raise ValueError(
            f"jaxconv.{fn}: `impls` must name at least two of {available_impls()}, "
            f"got impls={impls!r}."
        )
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if tol is None:
            continue
        if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)):
            raise _fail(TypeError, fn, f"`{name}` must be None or a non-negative real number, "
                        f"got {name}={tol!r}.")
        if not tol >= 0:  # NaN too
            raise _fail(ValueError, fn, f"`{name}` must be None or a non-negative real number, "
                        f"got {name}={tol!r}.")
    unknown_kwargs = sorted(set(conv_kwargs) - set(CONV_KWARGS))
    if unknown_kwargs:
        hint = " (name the impls with `impls`)" if "impl" in unknown_kwargs else ""
        raise _fail(TypeError, fn, f"unexpected keyword argument(s) {unknown_kwargs}{hint}; "
                    f"the convolution's are {tuple(CONV_KWARGS)}.")
    # The convolution's arguments, validated once as jaxconv.conv would, under this name.
    options = {**CONV_KWARGS, **conv_kwargs}
    conv_spec(fn, input, weight, bias, options["stride"], options["padding"],
              options["dilation"], options["groups"], options["padding_mode"],
              options["precision"], autodiff=options["autodiff"])
    dtype = jnp.dtype(input.dtype).name
    default_rtol, default_atol = TOLERANCES.get(dtype, TOLERANCES["float32"])
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol

    results = {i: impl_outputs(input, weight, bias, impl=i, **conv_kwargs) for i in impls}
    reference = results[impls[0]]
    report: dict[str, dict] = {}
    failures = []
    for impl in impls[1:]:
        report[impl] = {}
        for name, want in reference.items():
            got = results[impl][name]
            if got.shape != want.shape:
                failures.append(f"  {impl:<10} {name:<9} shape {got.shape} != {want.shape}")
                continue
            if not np.issubdtype(want.dtype, np.inexact):  # integers and bool: exactly
                # (Python ints: a difference of int64s can wrap around)
                diff = np.abs(got.astype(object) - want.astype(object)).astype(np.float64)
                report[impl][name] = float(diff.max(initial=0.0))
                if np.any(got != want):
                    failures.append(f"  {impl:<10} {name:<9} max|diff| "
                                    f"{report[impl][name]:.3e} (exact)")
                continue
            # NaN and Inf agree only where both sides hold the same one; a NaN against a
            # number disagrees (a bare `diff > allowed` would let it pass).
            same = (got == want) | (np.isnan(got) & np.isnan(want))
            finite = np.isfinite(want)
            diff = np.where(same, 0.0, np.abs(got - want))
            report[impl][name] = float(np.nanmax(diff, initial=0.0))
            scale = 1.0 + np.abs(want[finite]).max(initial=0.0)
            allowed = atol * scale + rtol * np.where(finite, np.abs(want), 0.0)
            if not np.all(same | (diff <= allowed)):
                failures.append(f"  {impl:<10} {name:<9} max|diff| {report[impl][name]:.3e} "
                                f"(allowed {allowed.max(initial=0.0):.3e})")
    if failures:
        raise AssertionError(
            f"jaxconv.{fn}: impls disagree with reference impl {impls[0]!r} "
            f"(dtype {dtype}, rtol={rtol:g}, atol={atol:g}):\n" + "\n".join(failures)
        )
    return report
