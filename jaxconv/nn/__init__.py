"""PyTorch-style layers and PyTorch interop, built only on jaxconv's public functions.

``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` take ``torch.nn``'s constructor
arguments, initialise like PyTorch (``layer.init(key)``) and apply as
``layer(params, x)``. ``from_torch`` / ``to_torch`` move layers and weights
between the two bit-exactly (PyTorch is needed only for those). The ``Lazy*``
layers infer ``in_channels`` from the input (``init(key, x)``); ``Unfold`` and
``Fold`` are ``torch.nn.Unfold`` / ``Fold`` in any rank, with no parameters.
"""

from jaxconv.nn._conv import (
    Conv,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    LazyConv,
    LazyConv1d,
    LazyConv2d,
    LazyConv3d,
    LazyConvTranspose,
    LazyConvTranspose1d,
    LazyConvTranspose2d,
    LazyConvTranspose3d,
)
from jaxconv.nn._torch import (
    array_to_tensor,
    from_torch,
    from_torch_model,
    state_dict_from_torch,
    state_dict_to_torch,
    tensor_to_array,
    to_torch,
)
from jaxconv.nn._unfold_layers import Fold, Unfold

__all__ = [
    "Conv",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Fold",
    "LazyConv",
    "LazyConv1d",
    "LazyConv2d",
    "LazyConv3d",
    "LazyConvTranspose",
    "LazyConvTranspose1d",
    "LazyConvTranspose2d",
    "LazyConvTranspose3d",
    "Unfold",
    "array_to_tensor",
    "from_torch",
    "from_torch_model",
    "state_dict_from_torch",
    "state_dict_to_torch",
    "tensor_to_array",
    "to_torch",
]
