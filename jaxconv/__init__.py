"""jaxconv: JAX convolutions with exactly PyTorch's semantics, computed more than one way."""

from jaxconv import _lax  # noqa: F401  (registers impl="lax")
from jaxconv._conv import conv, conv1d, conv2d, conv3d
from jaxconv._padding import pad
from jaxconv._registry import Impl, available_impls, register_impl
from jaxconv._spec import ConvSpec

__version__ = "0.1.0"

__all__ = [
    "ConvSpec",
    "Impl",
    "available_impls",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "pad",
    "register_impl",
]
