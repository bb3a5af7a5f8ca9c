"""PyTorch-style layers and PyTorch interop, built only on jaxconv's public functions.

``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` take ``torch.nn``'s constructor
arguments, initialise like PyTorch (``layer.init(key)``) and apply as
``layer(params, x)``. ``from_torch`` / ``to_torch`` move layers and weights
between the two bit-exactly (PyTorch is needed only for those).
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

__all__ = [
    "Conv",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "array_to_tensor",
    "from_torch",
    "from_torch_model",
    "state_dict_from_torch",
    "state_dict_to_torch",
    "tensor_to_array",
    "to_torch",
]
