"""JAX's own convolution tests with ``jaxconv.conv_general_dilated`` in lax's place.

The tests are JAX's (jax-v0.10.2, vendored in ``tests/jax_conv_tests/``): every method of
``tests/lax_test.py`` and ``tests/lax_autodiff_test.py`` that calls ``lax.conv``,
``lax.conv_with_general_padding`` or ``lax.conv_general_dilated`` (0-D convolutions,
zero-size axes, batch and feature groups under any dimension numbers, every dtype,
``preferred_element_type``, ``precision``, gradients of order 2 in both modes), and those
of lax's wrappers that only route through ``conv_general_dilated``
(``conv_transpose``, ``conv_general_dilated_patches``). Each runs once per impl
(``"auto"`` and every registered one) and per x64 mode (on, and off with
``jax.enable_x64(False)`` around the test; off leaves out the cases JAX generates only
with x64: those with a 64-bit dtype).

Routing. The vendored modules' globals ``lax`` and ``jax`` are swapped, for the test's
duration, for namespaces that forward everything to JAX except:
``lax.conv_general_dilated`` is ``functools.partial(jaxconv.conv_general_dilated,
impl=IMPL)``; ``lax.conv``, ``conv_with_general_padding``, ``conv_transpose`` and
``conv_general_dilated_patches`` are JAX's own functions (same code) whose global
``conv_general_dilated`` is that one; ``jax.lax`` is the namespace above. Nothing in JAX
is patched: ``lax_reference`` (the NumPy oracle), ``conv_general_dilated_local`` (the
oracle of ``testConvGeneralDilatedLocal``), JAX's own transpose rules, and jaxconv's lax
impl still run lax's convolution.

An oracle in every comparison. Some of JAX's checks compare the op with itself
(``_CompileAndCheck``: eager against jit; ``testConvPreferredElement``: preferred type
against cast-up operands). So every call the tests make with concrete operands is also
checked, in place, against ``jax.lax.conv_general_dilated`` itself: the same shape and
dtype; integers and bool exactly; floats within the rounding bound of two sums of the
same ``n`` products (:func:`_assert_close_to_lax`). Gradients are JAX's checks:
``check_grads`` against finite differences of the (lax-checked) forward.

Which cases: the vendored ``@jtu.sample_product`` decorators' own selection (what JAX
runs: ``JAX_NUM_GENERATED_CASES`` per method, 10 by default). The ``long`` profile
(``JAXCONV_HYPOTHESIS_PROFILE=long`` or ``--hypothesis-profile=long``) runs all of them
for every impl and x64 mode; the ``ci`` profile a fixed sample, every method for every
impl, about a minute on 2 cores::

    JAXCONV_HYPOTHESIS_PROFILE=long python -m pytest -q tests/test_jax_conv_suite.py -n 2
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import os
import re
import types
import unittest
import zlib

import jax
import jax._src.lax.convolution as lax_convolution
import jax._src.lax.other as lax_other
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import settings
from jax import lax
from jax_conv_tests import lax_autodiff_test_conv, lax_test_conv

import jaxconv

MODULES = (lax_test_conv, lax_autodiff_test_conv)
CLASSES = (lax_test_conv.LaxTest, lax_autodiff_test_conv.LaxAutodiffTest)
IMPLS = ("auto", *jaxconv.available_impls())
LONG = settings.get_current_profile_name() == "long"

LAX_CONV_GENERAL_DILATED = lax.conv_general_dilated
LAX_SIGNATURE = inspect.signature(LAX_CONV_GENERAL_DILATED)

# JAX's tests that check the text of lax's error messages. jaxconv raises the same
# exception type for the same input, with its own text (which names the function,
# argument and value: tests/test_lax_compat.py checks each); assertRaisesRegex then
# fails with an AssertionError, and only that is expected.
ERROR_TEXT = {
    "LaxTest.test_conv_general_dilated_different_input_ranks_error":
        "lax's text 'conv_general_dilated lhs and rhs must have the same number of "
        "dimensions'; jaxconv: '`lhs` and `rhs` must have the same number of dimensions'",
    "LaxTest.test_window_strides_dimension_shape_rule":
        "lax's text 'conv_general_dilated window and window_strides must have the same "
        "number of dimensions'; jaxconv: '`window_strides` must have 2 ints (one per "
        "spatial dimension)'",
    "LaxTest.testConvInvalidPadding":
        "lax's text 'padding argument to conv_general_dilated should be ...'; jaxconv: "
        "'each item of `padding` must be a (low, high) pair'",
}


# --- the oracle -----------------------------------------------------------------------------


def _concrete(*arrays) -> bool:
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def _sum_eps(dtype) -> float:
    """Unit roundoff of the sums computing `dtype` (half types: float32, in jaxconv and in
    XLA on CPU; float32 on accelerators: TF32 unless precision says otherwise)."""
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):
        return 0.0
    if dtype in (jnp.float16, jnp.bfloat16):
        return float(jnp.finfo(jnp.float32).eps)
    return float(jnp.finfo(dtype).eps)


def _assert_close_to_lax(got, call: inspect.BoundArguments) -> None:
    """``got`` (jaxconv's result for `call`) against ``lax.conv_general_dilated(**call)``.

    Integers and bool exactly (both wrap the same way: modular sums). Floats: two sums
    of the same ``n`` products (``n = I * prod(kernel)``), each accumulated with unit
    roundoff ``u`` and rounded once to the output's ``eps``, differ by at most
    ``2 (n u + eps) Σ|x| |w|`` (Higham's bound for each, added); complex, computed from
    three real sums (Gauss), by at most four times that. ``Σ|x| |w|`` is lax's
    convolution of the operands' magnitudes.
    """
    args = call.arguments
    want = LAX_CONV_GENERAL_DILATED(**args)
    assert (got.shape, got.dtype) == (want.shape, want.dtype), (
        f"jaxconv gives {got.shape} {got.dtype}, lax {want.shape} {want.dtype} for {args}")
    if not jnp.issubdtype(want.dtype, jnp.inexact):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want),
                                      err_msg=f"integer/bool result differs from lax: {args}")
        return
    lhs, rhs = jnp.asarray(args["lhs"]), jnp.asarray(args["rhs"])
    real = jax.dtypes.canonicalize_dtype(np.float64)  # float32 without x64

    def magnitude(a):
        return (jnp.abs(a) if jnp.iscomplexobj(a) else jnp.abs(a.astype(real))).astype(real)

    scale = np.asarray(LAX_CONV_GENERAL_DILATED(**dict(
        args, lhs=magnitude(lhs), rhs=magnitude(rhs), precision=lax.Precision.HIGHEST,
        preferred_element_type=None)), np.float64)
    dnums = lax.conv_dimension_numbers(lhs.shape, rhs.shape, args.get("dimension_numbers"))
    out_features = rhs.shape[dnums.rhs_spec[0]]
    n = rhs.size // out_features if out_features else 0
    u = max(_sum_eps(lhs.dtype), _sum_eps(want.dtype))
    if jax.default_backend() != "cpu" and args.get("precision") is None:
        u = max(u, 2.0**-11)  # TF32 products on accelerators at default precision
    eps = float(jnp.finfo(want.dtype).eps)
    factor = 8.0 if jnp.issubdtype(want.dtype, jnp.complexfloating) else 2.0
    bound = factor * ((n * u + eps) * scale + float(jnp.finfo(want.dtype).tiny))
    g = np.asarray(got).astype(np.complex128)
    w = np.asarray(want).astype(np.complex128)
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    err = np.where(same, 0.0, np.abs(g - w))
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert not err.size or np.all(err <= bound), (
        f"jaxconv differs from lax.conv_general_dilated beyond the rounding bound: at "
        f"{worst}, |{g[worst]} - {w[worst]}| = {err[worst]:.3g} > {bound[worst]:.3g} "
        f"(n={n}, u={u:.3g}) for {dict(args, lhs=lhs.shape, rhs=rhs.shape)}")


# --- routing --------------------------------------------------------------------------------


class _Namespace(types.ModuleType):
    """A module that is `real` except for the attributes given."""

    def __init__(self, real: types.ModuleType, **overrides):
        super().__init__(real.__name__, real.__doc__)
        self.__dict__.update(overrides)
        self._real = real

    def __getattr__(self, name):  # only for what is not overridden
        return getattr(self._real, name)


def _rebind(fn, **names):
    """JAX's function `fn`, the same code, with some of its globals replaced."""
    new = types.FunctionType(fn.__code__, {**fn.__globals__, **names}, fn.__name__,
                             fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    return functools.update_wrapper(new, fn, updated=())


@functools.cache
def routed_namespaces(impl: str) -> tuple[types.ModuleType, types.ModuleType]:
    """``(lax, jax)`` namespaces in which lax's convolutions run jaxconv with `impl`."""

    def conv_general_dilated(*args, **kwargs):
        out = jaxconv.conv_general_dilated(*args, **kwargs, impl=impl)
        call = LAX_SIGNATURE.bind(*args, **kwargs)
        if _concrete(out, call.arguments["lhs"], call.arguments["rhs"]):
            _assert_close_to_lax(out, call)
        return out

    convolution = _Namespace(lax_convolution, conv_general_dilated=conv_general_dilated)
    routed_lax = _Namespace(
        lax, conv_general_dilated=conv_general_dilated,
        **{name: _rebind(getattr(lax_convolution, name),
                         conv_general_dilated=conv_general_dilated)
           for name in ("conv", "conv_with_general_padding", "conv_transpose")},
        conv_general_dilated_patches=_rebind(lax_other.conv_general_dilated_patches,
                                             convolution=convolution))
    return routed_lax, _Namespace(jax, lax=routed_lax)


# --- the cases ------------------------------------------------------------------------------

X64_ONLY = re.compile(r"\bnumpy\.(float64|int64|uint64|complex128)\b")


def _cases():
    """``(class, method name, base method, parameters repr)`` for every generated case."""
    out = []
    for cls in CLASSES:
        for name in unittest.TestLoader().getTestCaseNames(cls):
            params = getattr(getattr(cls, name), "__x_params_repr__", "")
            base = re.sub(r"\d+$", "", name) if params else name
            out.append((cls, name, base, params))
    return out


def _selected():
    """Every (impl, x64, case) under ``long``. Under ``ci``, each method twice: with x64
    and without, each time for one impl (method k: impls k and k + 2, cyclically, so that
    every impl runs about a fifth of the methods in each mode) and one of its cases
    (picked by a fixed hash)."""
    by_method: dict[tuple[str, str], list] = {}
    for case in _cases():
        by_method.setdefault((case[0].__name__, case[2]), []).append(case)
    rows = []
    for k, (key, cases) in enumerate(by_method.items()):
        for x64 in (True, False):
            usable = [c for c in cases if x64 or not X64_ONLY.search(c[3])]
            impls = IMPLS if LONG else (IMPLS[(k + (0 if x64 else 2)) % len(IMPLS)],)
            for impl in impls:
                if not LONG:
                    pick = zlib.adler32(f"{impl}/{x64}/{key}".encode()) % len(usable)
                    usable = usable[pick:pick + 1]
                rows += [(impl, x64, case) for case in usable]
    return rows


SELECTED = _selected()


def _id(row) -> str:
    impl, x64, (cls, name, _, _) = row
    return f"{impl}-{'x64' if x64 else 'x32'}-{cls.__name__}.{name}"


def _marks(row):
    key = f"{row[2][0].__name__}.{row[2][1]}"
    if key in ERROR_TEXT:
        return [pytest.mark.xfail(strict=True, raises=AssertionError, reason=ERROR_TEXT[key])]
    return []


@pytest.mark.parametrize("impl,x64,case", [pytest.param(*row, id=_id(row), marks=_marks(row))
                                           for row in SELECTED])
def test_jax_conv_suite(impl, x64, case, monkeypatch):
    cls, name, _, params = case
    routed_lax, routed_jax = routed_namespaces(impl)
    for module in MODULES:
        monkeypatch.setattr(module, "lax", routed_lax)
        monkeypatch.setattr(module, "jax", routed_jax)
    test = cls(name)
    result = unittest.TestResult()
    with jax.enable_x64(x64):
        test.run(result)
    assert result.testsRun == 1
    for _, reason in result.skipped:
        pytest.skip(reason)
    for _, trace in result.errors + result.failures:
        raise AssertionError(f"{cls.__name__}.{name}{params}\n{trace}")


X, W = jnp.ones((2, 3, 5, 4)), jnp.ones((4, 3, 2, 2))
ROUTED_CALLS = {  # each of lax's convolutions, called through the routed namespaces
    "conv": lambda lx, jx: lx.conv(X, W, (1, 1), "SAME"),
    "conv_with_general_padding": lambda lx, jx: lx.conv_with_general_padding(
        X, W, (1, 1), "SAME", None, None),
    "conv_general_dilated": lambda lx, jx: lx.conv_general_dilated(X, W, (1, 1), "SAME"),
    "jax.lax.conv_general_dilated": lambda lx, jx: jx.lax.conv_general_dilated(
        X, W, (1, 1), "SAME"),
    "conv_transpose": lambda lx, jx: lx.conv_transpose(
        X, W, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")),
    "conv_general_dilated_patches": lambda lx, jx: lx.conv_general_dilated_patches(
        X, (2, 2), (1, 1), "SAME"),
}


@pytest.mark.parametrize("impl", IMPLS)
def test_routing_reaches_jaxconv_and_leaves_the_oracles_alone(impl):
    """In the routed namespaces, lax's convolutions run jaxconv's primitives (not lax's
    conv_general_dilated primitive); JAX itself and lax_reference keep lax's."""
    for name, call in ROUTED_CALLS.items():
        text = str(jax.make_jaxpr(functools.partial(call, *routed_namespaces(impl)))())
        assert "jaxconv_forward" in text and "conv_general_dilated[" not in text, (name, text)
    text = str(jax.make_jaxpr(lambda: lax.conv(X, W, (1, 1), "SAME"))())
    assert "conv_general_dilated[" in text and "jaxconv" not in text
    assert lax_test_conv.lax is lax and lax_autodiff_test_conv.jax is jax
    assert lax_test_conv.lax_reference.__name__ == "jax._src.lax_reference"


def test_oracle_catches_a_wrong_result():
    """The in-place check against lax fails on a result off by one rounding too many."""
    x = np.random.default_rng(0).standard_normal((2, 3, 6))
    w = np.random.default_rng(1).standard_normal((4, 3, 3))
    call = LAX_SIGNATURE.bind(x, w, (1,), "VALID")
    right = LAX_CONV_GENERAL_DILATED(x, w, (1,), "VALID")
    _assert_close_to_lax(right, call)
    with pytest.raises(AssertionError, match="beyond the rounding bound"):
        _assert_close_to_lax(right * (1 + 1e-12), call)
    with pytest.raises(AssertionError, match="integer/bool result differs"):
        xi, wi = x.astype(np.int32), w.astype(np.int32)
        _assert_close_to_lax(LAX_CONV_GENERAL_DILATED(xi, wi, (1,), "VALID") + 1,
                             LAX_SIGNATURE.bind(xi, wi, (1,), "VALID"))


def test_the_sample_covers_every_method_impl_and_mode():
    methods = {(c[0].__name__, c[2]) for c in _cases()}
    assert len(methods) == 25  # 21 from lax_test.py, 4 from lax_autodiff_test.py
    for x64 in (True, False):
        assert {(case[0].__name__, case[2]) for _, m, case in SELECTED if m == x64} == methods
        assert {impl for impl, m, _ in SELECTED if m == x64} == set(IMPLS)


def test_the_vendored_modules_run_only_here(pytestconfig):
    """pytest does not collect them on their own (with lax's own convolution)."""
    for module in MODULES:
        name = os.path.basename(module.__file__)
        assert not any(fnmatch.fnmatch(name, p) for p in pytestconfig.getini("python_files"))
