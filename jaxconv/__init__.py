"""jaxconv: JAX convolutions with exactly PyTorch's semantics, computed more than one way."""

from jaxconv import impls  # noqa: F401  (registers the impls)

# isort: split
from jaxconv import testing
from jaxconv._auto import AutoChoice, explain_auto
from jaxconv._conv import conv, conv1d, conv2d, conv3d
from jaxconv._conv_transpose import (
    conv_transpose,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
)
from jaxconv._lax_compat import conv_general_dilated
from jaxconv._nonfinite import get_exact_nonfinite, set_exact_nonfinite
from jaxconv._padding import pad
from jaxconv._partitioning import get_automatic_partitioning, set_automatic_partitioning
from jaxconv._registry import Impl, available_impls, get_impl, register_impl
from jaxconv._spec import ConvSpec
from jaxconv._unfold import fold, unfold
from jaxconv._xla_options import EIGEN_CONV_XLA_FLAG, eigen_conv_options
from jaxconv.impls.gather import get_memory_budget, set_memory_budget

# isort: split
from jaxconv import nn

__version__ = "0.1.0"

__all__ = [
    "EIGEN_CONV_XLA_FLAG",
    "AutoChoice",
    "ConvSpec",
    "Impl",
    "available_impls",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_general_dilated",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "eigen_conv_options",
    "explain_auto",
    "fold",
    "get_automatic_partitioning",
    "get_exact_nonfinite",
    "get_impl",
    "get_memory_budget",
    "nn",
    "pad",
    "register_impl",
    "set_automatic_partitioning",
    "set_exact_nonfinite",
    "set_memory_budget",
    "testing",
    "unfold",
]
