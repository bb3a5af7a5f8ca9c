"""PyTorch interop: layers and weights to and from ``torch.nn``, bit-exactly.

jaxconv keeps PyTorch's layouts (channels-first activations, ``(out, in //
groups, *k)`` weights, ``(in, out // groups, *k)`` for transposed ones), so a
conversion is a copy of the bits and of the constructor arguments, never a
transpose. PyTorch is imported only inside these functions.
"""

from __future__ import annotations

import collections
import importlib
from collections.abc import Mapping
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv._spec import PARAM_DTYPES, _fail
from jaxconv._unfold import IMPLS as UNFOLD_IMPLS
from jaxconv.nn import _conv
from jaxconv.nn._conv import Conv, ConvTranspose, _LazyBase
from jaxconv.nn._unfold_layers import Fold, Unfold

_LAYERS = {(False, r): f"Conv{r}d" for r in (1, 2, 3)} | {
    (True, r): f"ConvTranspose{r}d" for r in (1, 2, 3)}


def _torch(fn: str):
    try:
        return importlib.import_module("torch")
    except ImportError as err:  # pragma: no cover - torch is installed in CI
        raise _fail(ImportError, fn, "needs PyTorch (pip install torch).") from err


def tensor_to_array(tensor: Any) -> Any:
    """A torch tensor as a JAX array with the same bits and dtype (bfloat16 included).

    Dtypes that JAX holds only with ``jax_enable_x64`` (float64, complex128,
    int64) stay NumPy arrays when x64 is off, rather than being silently narrowed.
    """
    torch = _torch("nn.tensor_to_array")
    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        array = t.view(torch.int16).numpy().view(jnp.bfloat16)
    else:
        array = t.numpy()
    if jax.dtypes.canonicalize_dtype(array.dtype) != array.dtype:
        return array.copy()
    return jnp.asarray(array)


def array_to_tensor(array: Any) -> Any:
    """A JAX or NumPy array as a torch tensor with the same bits and dtype."""
    torch = _torch("nn.array_to_tensor")
    a = np.array(array, copy=True)
    if a.dtype == jnp.bfloat16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def from_torch(module: Any, *, impl: Any = "auto", autodiff: str = "custom"
               ) -> tuple[Conv | ConvTranspose | Unfold | Fold, dict[str, jax.Array]]:
    """A jaxconv layer and its params from a ``torch.nn`` convolution, Unfold or Fold.

    Args:
      module: a ``torch.nn.Conv1d/2d/3d`` or ``ConvTranspose1d/2d/3d`` (or a
        subclass), with float16/bfloat16/float32/float64 parameters; a PyTorch
        Lazy layer once materialised (after its first forward it *is* the plain
        layer, its ``cls_to_become``); or a ``torch.nn.Unfold`` / ``Fold``.
      impl, autodiff: the layer's, as for :func:`jaxconv.conv` (an Unfold or
        Fold takes ``impl`` only if it is one of its own, else keeps ``"auto"``).

    Returns:
      ``(layer, params)`` with ``layer(params, x)`` equal to ``module(x)`` and
      ``params`` holding the module's weight (and bias) bit for bit (``{}`` for
      Unfold and Fold).

    Raises:
      TypeError: `module` is not one of those, is an unmaterialised Lazy layer
        (its in_channels are not known yet), or its dtype is not a floating
        dtype jaxconv supports.
    """
    fn = "nn.from_torch"
    torch = _torch(fn)
    if isinstance(module, (torch.nn.Unfold, torch.nn.Fold)):
        kw = dict(impl=impl) if isinstance(impl, str) and impl in UNFOLD_IMPLS else {}
        args = (module.kernel_size, module.dilation, module.padding, module.stride)
        if isinstance(module, torch.nn.Fold):
            return Fold(module.output_size, *args, **kw), {}
        return Unfold(*args, **kw), {}
    if not isinstance(module, torch.nn.modules.conv._ConvNd):
        raise _fail(TypeError, fn, "`module` must be a torch.nn Conv1d/2d/3d or "
                    f"ConvTranspose1d/2d/3d, got {type(module).__name__}.")
    if isinstance(module, torch.nn.modules.lazy.LazyModuleMixin):
        plain = module.cls_to_become.__name__
        raise _fail(TypeError, fn, "`module` must be a torch.nn Conv1d/2d/3d or "
                    f"ConvTranspose1d/2d/3d, got {type(module).__name__}. It is an "
                    "unmaterialised Lazy layer, whose in_channels are not known yet: run it "
                    f"once on an input (it then becomes a {plain}), or use "
                    f"jaxconv.nn.{type(module).__name__} and init(key, x).")
    dtype = str(module.weight.dtype).removeprefix("torch.")
    if dtype not in PARAM_DTYPES:
        raise _fail(TypeError, fn, f"`module` has {dtype} parameters; jaxconv supports "
                    f"{', '.join(PARAM_DTYPES)}.")
    rank = len(module.kernel_size)
    kwargs = dict(stride=module.stride, padding=module.padding, dilation=module.dilation,
                  groups=module.groups, bias=module.bias is not None,
                  padding_mode=module.padding_mode, dtype=dtype, impl=impl, autodiff=autodiff)
    if module.transposed:
        kwargs["output_padding"] = module.output_padding
    layer = getattr(_conv, _LAYERS[module.transposed, rank])(  # the class the user would write
        module.in_channels, module.out_channels, module.kernel_size, **kwargs)
    params = {"weight": tensor_to_array(module.weight)}
    if module.bias is not None:
        params["bias"] = tensor_to_array(module.bias)
    return layer, params


def to_torch(layer: Conv | ConvTranspose | _LazyBase | Unfold | Fold,
             params: Mapping[str, Any]) -> Any:
    """The ``torch.nn`` module equal to a jaxconv layer with these params.

    Args:
      layer: a :class:`Conv` or :class:`ConvTranspose` of spatial rank 1 to 3; a
        Lazy one (its in_channels read from ``params["weight"]``: the result is
        the plain, materialised torch layer, as PyTorch's Lazy layer becomes after
        its first forward); or a 2-d, zeros-padded :class:`Unfold` / :class:`Fold`.
      params: ``{"weight", "bias"}`` for that layer (``{}`` for Unfold / Fold).

    Returns:
      a ``torch.nn.ConvNd`` / ``ConvTransposeNd`` (CPU, the layer's dtype)
      holding the params bit for bit, or a ``torch.nn.Unfold`` / ``Fold``.

    Raises:
      TypeError: `layer` is not a jaxconv layer, or `params` do not fit it.
      ValueError: the layer has no PyTorch equivalent (rank above 3, an
        asymmetric ``(low, high)`` padding pair; an Unfold/Fold not 2-d or with a
        padding_mode other than zeros).
    """
    fn = "nn.to_torch"
    torch = _torch(fn)
    if isinstance(layer, (Unfold, Fold)):
        return _unfold_to_torch(torch, layer, params)
    if isinstance(layer, _LazyBase):
        layer = layer.materialize(layer._in_channels_of_params(params))
    if not isinstance(layer, (Conv, ConvTranspose)):
        raise _fail(TypeError, fn, "`layer` must be a jaxconv.nn Conv or ConvTranspose, got "
                    f"{type(layer).__name__}.")
    rank = layer.num_spatial_dims
    if rank > 3:
        raise _fail(ValueError, fn, f"PyTorch has no {rank}-d convolution layer, got {layer!r}.")
    if not isinstance(layer.padding, str) and any(isinstance(p, tuple) for p in layer.padding):
        raise _fail(ValueError, fn, "PyTorch's layers have no asymmetric (low, high) padding, "
                    f"got padding={layer.padding!r}.")
    weight, bias = layer._params(params)
    kwargs = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                  groups=layer.groups, bias=layer.bias, padding_mode=layer.padding_mode,
                  dtype=getattr(torch, layer.dtype))
    if isinstance(layer, ConvTranspose):
        kwargs["output_padding"] = layer.output_padding
    module = getattr(torch.nn, _LAYERS[layer.transposed, rank])(
        layer.in_channels, layer.out_channels, layer.kernel_size, **kwargs)
    with torch.no_grad():
        module.weight.copy_(array_to_tensor(weight))
        if bias is not None:
            module.bias.copy_(array_to_tensor(bias))
    return module


def _unfold_to_torch(torch: Any, layer: Unfold | Fold, params: Any) -> Any:
    fn, name = "nn.to_torch", type(layer).__name__
    if not isinstance(params, Mapping) or params:
        got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        raise _fail(TypeError, fn, f"`params` of an {name} must be an empty dict, got {got}.")
    if layer.num_spatial_dims != 2:
        raise _fail(ValueError, fn, f"PyTorch's {name} is 2-d only, got {layer!r}.")
    if getattr(layer, "padding_mode", "zeros") != "zeros":
        raise _fail(ValueError, fn, f"PyTorch's {name} pads with zeros only, got {layer!r}.")
    args = (layer.kernel_size, layer.dilation, layer.padding, layer.stride)
    if isinstance(layer, Fold):
        return torch.nn.Fold(layer.output_size, *args)
    return torch.nn.Unfold(*args)


def state_dict_from_torch(model_or_state_dict: Any) -> dict[str, dict[str, Any]]:
    """Every tensor of a PyTorch model as arrays, grouped by module path.

    ``{"features.0.weight": t, "features.0.bias": u, "fc.weight": v}`` becomes
    ``{"features.0": {"weight": ..., "bias": ...}, "fc": {"weight": ...}}``, so
    ``params["features.0"]`` is directly the params of the jaxconv layer made
    from ``model.features[0]`` (convolution weights need no transpose). Other
    tensors (linear and norm layers, buffers) come through as arrays too.

    Args:
      model_or_state_dict: a ``torch.nn.Module`` or its ``state_dict()``.

    Returns:
      ``{module_path: {tensor_name: array}}``; top-level tensors go under ``""``.
      Bits and dtypes are kept (:func:`tensor_to_array`).
    """
    torch = _torch("nn.state_dict_from_torch")
    state = (model_or_state_dict.state_dict()
             if isinstance(model_or_state_dict, torch.nn.Module) else model_or_state_dict)
    if not isinstance(state, Mapping):
        raise _fail(TypeError, "nn.state_dict_from_torch", "`model_or_state_dict` must be a "
                    f"torch.nn.Module or a state dict, got {type(state).__name__}.")
    params: dict[str, dict[str, Any]] = {}
    for key, tensor in state.items():
        path, _, name = key.rpartition(".")
        params.setdefault(path, {})[name] = tensor_to_array(tensor)
    return params


def state_dict_to_torch(params: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The inverse of :func:`state_dict_from_torch`: a flat ``state_dict`` of
    torch tensors, for ``model.load_state_dict``; bits and dtypes are kept."""
    _torch("nn.state_dict_to_torch")
    state = collections.OrderedDict()
    for path, tensors in params.items():
        for name, array in tensors.items():
            state[f"{path}.{name}" if path else name] = array_to_tensor(array)
    return state


def from_torch_model(model: Any, *, impl: Any = "auto", autodiff: str = "custom"
                     ) -> tuple[dict[str, Conv | ConvTranspose], dict[str, dict[str, Any]]]:
    """Every convolution of a PyTorch model as a jaxconv layer, and all its tensors.

    ``impl`` and ``autodiff`` are given to every layer (see :func:`from_torch`).

    Returns:
      ``(layers, params)``: ``layers[path]`` for each ``Conv*d`` /
      ``ConvTranspose*d`` submodule (by ``named_modules`` path) and ``params``
      from :func:`state_dict_from_torch`, so ``layers[p](params[p], x)`` runs
      that submodule in JAX.
    """
    torch = _torch("nn.from_torch_model")
    if not isinstance(model, torch.nn.Module):
        raise _fail(TypeError, "nn.from_torch_model", "`model` must be a torch.nn.Module, "
                    f"got {type(model).__name__}.")
    layers: dict[str, Conv | ConvTranspose] = {
        path: cast(Conv | ConvTranspose, from_torch(m, impl=impl, autodiff=autodiff)[0])
        for path, m in model.named_modules() if isinstance(m, torch.nn.modules.conv._ConvNd)}
    return layers, state_dict_from_torch(model)
