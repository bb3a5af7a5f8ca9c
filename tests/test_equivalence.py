"""impl against impl: a random sample of configurations, forward and gradients, ~1e-12."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from test_properties import _arrays, conv_configs

import jaxconv
from jaxconv.testing import assert_impls_agree


@pytest.mark.exhaustive  # a fuzz; test_parity compares every impl in the quick tier
@settings(max_examples=15, deadline=None)
@given(cfg=conv_configs())
def test_lax_and_gather_agree_forward_and_gradients(cfg):
    x, w, b, kw = _arrays(cfg)
    report = assert_impls_agree(x, w, b, impls=("lax", "gather"), rtol=1e-12, atol=1e-12, **kw)
    assert set(report["gather"]) == {"output", "d_input", "d_weight"} | (
        {"d_bias"} if b is not None else set())


def test_helper_reports_which_impl_disagrees_and_by_how_much(monkeypatch):
    """A deliberately wrong impl is caught, named, and its error quantified."""
    lax = jaxconv.impls.lax

    def off_by_one(x, w, spec):
        return lax.forward(x, w, spec) + 1.0

    name = "test_off_by_one"
    monkeypatch.setitem(jaxconv._registry._REGISTRY, name,
                        jaxconv.Impl(name, off_by_one, lax.input_grad, lax.weight_grad))
    x = np.ones((1, 2, 5))
    w = np.ones((3, 2, 3))
    with pytest.raises(AssertionError, match=re.escape(
            "jaxconv.testing.assert_impls_agree: impls disagree with reference impl 'lax' "
            "(dtype float64, rtol=1e-10, atol=1e-10):\n  test_off_by_one output    "
            "max|diff| 1.000e+00")) as info:
        assert_impls_agree(x, w, impls=("lax", name, "gather"))
    assert "gather" not in str(info.value)


def test_helper_counts_a_nan_against_a_number_as_disagreement(monkeypatch):
    """A NaN where the reference has a number fails (NaN > allowed is False, so a bare
    comparison would pass it); NaN where the reference has NaN agrees."""
    lax = jaxconv.impls.lax

    def nan_at_zero(x, w, spec):
        y = lax.forward(x, w, spec)
        return y.at[0, 0, 0].set(jnp.nan)

    name = "test_nan_at_zero"
    monkeypatch.setitem(jaxconv._registry._REGISTRY, name,
                        jaxconv.Impl(name, nan_at_zero, lax.input_grad, lax.weight_grad))
    x, w = np.ones((1, 2, 5)), np.ones((3, 2, 3))
    with pytest.raises(AssertionError, match=re.escape(f"  {name} output")):
        assert_impls_agree(x, w, impls=("lax", name))
    x[0, 0, 0] = np.nan  # now the reference has NaNs too: the same entries agree
    report = assert_impls_agree(x, w, impls=("lax", "gather", "shift"))
    assert report["gather"]["output"] == 0.0


@pytest.mark.parametrize("impls", [("lax",), ("lax", "nope")])
def test_helper_rejects_bad_impls(impls):
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.testing.assert_impls_agree: `impls` must name at least two of")):
        assert_impls_agree(np.ones((1, 1, 3)), np.ones((1, 1, 1)), impls=impls)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_helper_default_tolerances_per_dtype(dtype):
    """Every registered impl (the default) agrees within the dtype's default tolerance."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 8, 8)).astype(dtype)
    w = rng.standard_normal((4, 1, 3, 3)).astype(dtype)
    assert_impls_agree(x, w, padding=1, groups=4, padding_mode="reflect")


def test_helper_keeps_complex_parts_and_compares_integers_exactly(monkeypatch):
    """Complex outputs and gradients keep their imaginary parts (a wrong imaginary part
    is caught); integer outputs are compared exactly and have no gradients."""
    from jaxconv.testing import impl_outputs

    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 2, 6)) + 1j * rng.standard_normal((2, 2, 6))).astype("complex64")
    w = (rng.standard_normal((3, 2, 3)) + 1j * rng.standard_normal((3, 2, 3))).astype("complex64")
    out = impl_outputs(x, w, impl="gather", padding=1)
    assert all(np.iscomplexobj(v) and np.abs(v.imag).max() > 0 for v in out.values())
    want = jax.lax.conv_general_dilated(x, w, (1,), [(1, 1)])
    np.testing.assert_allclose(out["output"], np.asarray(want), rtol=1e-5, atol=1e-5)
    lax = jaxconv.impls.lax

    xi = rng.integers(-2**40, 2**40, (2, 2, 6))
    wi = rng.integers(-2**40, 2**40, (3, 2, 3))
    with jax.enable_x64(True):
        report = assert_impls_agree(xi, wi, padding=1)
        assert set(report["gather"]) == {"output"}
        name = "test_plus_one"
        monkeypatch.setitem(jaxconv._registry._REGISTRY, name, jaxconv.Impl(
            name, lambda x, w, spec: lax.forward(x, w, spec) + 1, lax.input_grad,
            lax.weight_grad))
        with pytest.raises(AssertionError, match=re.escape(f"  {name} output")):
            assert_impls_agree(xi, wi, impls=("lax", name))
