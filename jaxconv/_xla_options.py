"""XLA compiler options that run CPU convolutions with Eigen instead of YNNPACK.

jax 0.10.2's CPU backend hands most 2-d convolutions to YNNPACK: every float32 or
float64 one with more than 16 input or output channels, no input (lhs) dilation
and no window reversal, whichever of F, T, W it is (XLA's
``IsConvolutionOpSupportedByYnn``). Its default for the debug option
``xla_cpu_experimental_ynn_fusion_type`` is ``DOT, REDUCE,
INDIVIDUAL_CONVOLUTION``; without the last entry XLA runs those convolutions
with its older Eigen kernels, as it already does for 1-d and 3-d ones.

On this project's 2-core AMD EPYC (Zen 3, AVX2, no AVX-512) the Eigen kernels
are much faster: ``value_and_grad`` of a 3x3, 64-channel ResNet convolution
(8x64x56x56) took 213 ms with YNNPACK and 84 ms with these options, the same
program compiled both ways in one process. ``python -m jaxconv bench
--xla-cpu-conv eigen`` times the whole layer suite this way (docs/performance.md).

jaxconv's own lax impl (and so ``auto`` and ``fold`` where they run it) already
keeps 2-d convolutions off YNNPACK where that costs little, by their shapes
(:mod:`jaxconv.impls.lax`); these options reach what that leaves on YNNPACK
(strided forwards and weight gradients, depthwise and short layers) and every
other convolution of the program, such as a plain ``lax.conv_general_dilated``.
Compiler options belong to one compiled program, so jaxconv cannot set them
for the convolutions it emits inside a user's ``jax.jit``: the caller passes
them to the top-level ``jax.jit`` (a nested one refuses them) where the program
is compiled::

    step = jax.jit(train_step, compiler_options=jaxconv.eigen_conv_options())

or sets them for the whole process, before JAX starts, with
:data:`EIGEN_CONV_XLA_FLAG` in ``XLA_FLAGS``. Both change how XLA runs *every*
convolution of the program, jaxconv's or not, and nothing else: dots and
reductions keep YNNPACK, and the results are the same convolutions (the
parity tests of this option compare them against the default).
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp

# jax 0.10.2's default value of the option, less INDIVIDUAL_CONVOLUTION. A list in
# compiler_options replaces the default (the "+"/"-" edit syntax is only read from
# XLA_FLAGS), so tests/test_xla_options.py checks that dots and reductions still
# get the YNNPACK fusions they get by default: it fails if a newer jaxlib changes
# the default list.
_YNN_FUSION_TYPES = "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"
_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": _YNN_FUSION_TYPES}

#: The same for the whole process: add it to ``XLA_FLAGS`` before JAX starts.
EIGEN_CONV_XLA_FLAG = ("--xla_cpu_experimental_ynn_fusion_type="
                       "-LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION")


@functools.cache
def _cpu_accepts(options: tuple[tuple[str, str], ...]) -> str | None:
    """``None`` if this jaxlib's CPU compiler accepts `options`, else its error."""
    try:
        x = jax.device_put(jnp.zeros((2,), jnp.float32), jax.devices("cpu")[0])
        jax.jit(jnp.negative, compiler_options=dict(options)).lower(x).compile()
    except Exception as err:  # noqa: BLE001 (the compiler's error type varies by jaxlib)
        return f"{type(err).__name__}: {err}".splitlines()[0]
    return None


def eigen_conv_options(backend: str | None = None) -> dict[str, str]:
    """Compiler options under which XLA's CPU backend runs convolutions with Eigen.

    Pass them to ``jax.jit(..., compiler_options=...)`` (or
    ``.lower(...).compile(...)``) of the program whose convolutions should run
    this way. See the module docstring (:mod:`jaxconv._xla_options`) for what
    they change and what was measured.

    Args:
      backend: the platform the program is compiled for (``"cpu"``, ``"gpu"``,
        ``"tpu"``, ...); default ``jax.default_backend()``.

    Returns:
      ``{"xla_cpu_experimental_ynn_fusion_type": ...}`` on CPU; ``{}`` on other
      backends, and on a jaxlib whose CPU compiler rejects the option (with a
      ``UserWarning`` saying why).

    Raises:
      TypeError: if `backend` is not a string or None.
    """
    if backend is None:
        backend = jax.default_backend()
    if not isinstance(backend, str):
        raise TypeError(f"eigen_conv_options: `backend` must be a platform name such as "
                        f"'cpu' or None, got {backend!r}.")
    if backend != "cpu":
        return {}
    error = _cpu_accepts(tuple(_OPTIONS.items()))
    if error is not None:
        warnings.warn(f"eigen_conv_options: this jaxlib ({jax.__version__}) rejects "
                      f"{_OPTIONS}, so convolutions keep XLA's default kernels ({error}).",
                      stacklevel=2)
        return {}
    return dict(_OPTIONS)
