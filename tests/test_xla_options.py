"""jaxconv.eigen_conv_options: XLA's Eigen CPU convolutions instead of YNNPACK.

Checked on the compiled programs (which library XLA hands each op to), against
the default compile and a NumPy reference (the same numbers), and for the
errors and warnings the function gives.
"""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import numpy_conv

import jaxconv
from jaxconv import _xla_options
from jaxconv.cli import main

# YNNPACK takes 2-d convolutions with more than 16 channels: 24 here.
X_SHAPE, W_SHAPE = (2, 24, 9, 9), (24, 24, 3, 3)


def _loss(impl):
    def loss(x, w):
        return jnp.vdot(jaxconv.conv2d(x, w, padding=1, impl=impl), jnp.cos(x[:, :, :9, :9]))
    return jax.value_and_grad(loss, argnums=(0, 1))


def _ynn_fusions(fn, *args, options=None) -> list[str]:
    """What each YNNPACK fusion of `fn`'s compiled CPU program computes: "convolution"
    if its fused computation holds one, else the op name XLA recorded for it."""
    text = jax.jit(fn, compiler_options=options).lower(*args).compile().as_text()
    bodies = {block.split()[0].lstrip("%"): block for block in text.split("\n\n")
              if block.strip()}
    kinds = []
    for line in text.splitlines():
        if "ynn_fusion" in line and " fusion(" in line:
            body = bodies.get(re.search(r"calls=%([\w.]+)", line).group(1), "")
            op = re.search(r'op_name="([^"]*)"', line)
            kinds.append("convolution" if " convolution(" in body else
                         op.group(1) if op else "?")
    return sorted(kinds)


def _arrays(dtype):
    rng = np.random.default_rng(0)
    return (rng.standard_normal(X_SHAPE).astype(dtype),
            (0.2 * rng.standard_normal(W_SHAPE)).astype(dtype))


def test_options_on_cpu():
    assert jaxconv.eigen_conv_options() == {
        "xla_cpu_experimental_ynn_fusion_type":
            "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
    assert jaxconv.eigen_conv_options("cpu") == jaxconv.eigen_conv_options()


@pytest.mark.parametrize("impl", ["lax", "auto"])
def test_convolutions_leave_ynnpack(impl):
    x, w = _arrays(np.float32)
    default = _ynn_fusions(_loss(impl), x, w)
    assert "convolution" in default, default
    assert _ynn_fusions(_loss(impl), x, w, options=jaxconv.eigen_conv_options()) == []


def test_dots_and_reductions_keep_their_default_fusions():
    # The option replaces XLA's default list: it must equal that list less the
    # convolutions. This fails if a newer jaxlib changes the default.
    a, b = np.ones((64, 64), np.float32), np.ones((64, 64), np.float32)

    def f(a, b):
        return a @ b, jnp.tanh(a @ b).sum(0), (a * b).sum(1), jnp.exp(a) + b

    default = _ynn_fusions(f, a, b)
    assert any("dot_general" in n for n in default) and any("reduce" in n for n in default)
    assert _ynn_fusions(f, a, b, options=jaxconv.eigen_conv_options()) == default


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("impl", ["lax", "auto"])
def test_same_results_as_default_and_numpy(impl, dtype):
    x, w = _arrays(dtype)
    (value, grads) = jax.jit(_loss(impl), compiler_options=jaxconv.eigen_conv_options())(x, w)
    (value0, grads0) = jax.jit(_loss(impl))(x, w)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    y = numpy_conv(x.astype(np.float64), w.astype(np.float64), padding=1)
    np.testing.assert_allclose(value, np.vdot(y, np.cos(x[:, :, :9, :9])), **tol)
    for g, g0 in zip(grads, grads0, strict=True):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, g0, **tol)


def test_other_backends_get_no_options():
    assert jaxconv.eigen_conv_options("gpu") == {}
    assert jaxconv.eigen_conv_options("tpu") == {}


def test_backend_must_be_a_name():
    with pytest.raises(TypeError, match=r"eigen_conv_options: `backend` must be a platform "
                                        r"name such as 'cpu' or None, got 3\."):
        jaxconv.eigen_conv_options(3)


def test_a_jaxlib_that_rejects_the_option_gets_a_warning(monkeypatch):
    monkeypatch.setattr(_xla_options, "_OPTIONS",
                        {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_FUSION_TYPE"})
    with pytest.warns(UserWarning, match=r"eigen_conv_options: this jaxlib \(.*\) rejects "
                                         r"\{'xla_cpu_experimental_ynn_fusion_type': "
                                         r"'NOT_A_FUSION_TYPE'\}, so convolutions keep XLA's "
                                         r"default kernels \(.*NOT_A_FUSION_TYPE"):
        assert jaxconv.eigen_conv_options() == {}


def test_the_xla_flag_does_the_same_for_the_whole_process():
    script = (
        "import jax, jax.numpy as jnp, numpy as np, jaxconv\n"
        "x, w = np.ones((2, 24, 9, 9), np.float32), np.ones((24, 24, 3, 3), np.float32)\n"
        "f = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), 'SAME'))\n"
        "print('ynn' if 'ynn_fusion' in f.lower(x, w).compile().as_text() else 'eigen')\n")
    env = dict(os.environ, XLA_FLAGS=jaxconv.EIGEN_CONV_XLA_FLAG, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "eigen"


def test_bench_option_compiles_with_the_options(tmp_path, capsys):
    md = tmp_path / "out.md"
    assert main(["bench", "--layer", "2d N=1 C=24 HW=6 O=24 k=3 p=1", "--repeats", "1",
                 "--min-time", "0", "--impls", "lax", "--no-torch", "--xla-cpu-conv", "eigen",
                 "--markdown", str(md)]) == 0
    assert ("XLA CPU convolutions: Eigen (compiler_options={'xla_cpu_experimental_ynn_"
            "fusion_type': 'LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE'})"
            in md.read_text())
    assert "XLA CPU convolutions: Eigen" in capsys.readouterr().out
