"""Independent oracles: a NumPy convolution and PyTorch wrappers.

Nothing here imports jaxconv's internals: padding splits and modes are
re-derived from PyTorch's documentation so that these are real oracles.
"""

from __future__ import annotations

import string

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NP_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def padding_pairs(padding, kernel, dilation):
    """PyTorch's padding argument as (lo, hi) pairs."""
    rank = len(kernel)
    if padding == "valid":
        return [(0, 0)] * rank
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in totals]
    if isinstance(padding, int):
        padding = (padding,) * rank
    return [(p, p) for p in padding]


def _tuple(v, rank):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * rank


def numpy_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """Reference convolution: NumPy pad, strided window view, one einsum per call."""
    rank = w.ndim - 2
    batched = x.ndim == rank + 2
    if not batched:
        x = x[None]
    stride, dilation = _tuple(stride, rank), _tuple(dilation, rank)
    kernel = w.shape[2:]
    pads = padding_pairs(padding, kernel, dilation)
    xp = np.pad(x, [(0, 0), (0, 0), *pads], mode=NP_MODES[padding_mode])
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    win = sliding_window_view(xp, extent, axis=tuple(range(2, 2 + rank)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
    index += tuple(slice(None, None, d) for d in dilation)
    win = win[index]  # (N, C, *P, *K)
    n, c = x.shape[:2]
    o = w.shape[0]
    out_spatial = win.shape[2 : 2 + rank]
    win = win.reshape(n, groups, c // groups, *win.shape[2:])
    wg = w.reshape(groups, o // groups, c // groups, *kernel)
    p_idx = string.ascii_uppercase[:rank]
    k_idx = string.ascii_lowercase[-rank:]
    y = np.einsum(f"ngc{p_idx}{k_idx},goc{k_idx}->ngo{p_idx}", win, wg)
    y = y.reshape(n, o, *out_spatial)
    if b is not None:
        y = y + b.reshape((-1,) + (1,) * rank)
    return y if batched else y[0]


def torch_conv_module(torch, x, w, b, stride, padding, dilation, groups, padding_mode):
    """``nn.ConvNd`` with the given parameters, applied to `x` (numpy in, numpy out)."""
    rank = w.ndim - 2
    cls = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[rank]
    c_in = w.shape[1] * groups
    m = cls(c_in, w.shape[0], w.shape[2:], stride=stride, padding=padding,
            dilation=dilation, groups=groups, bias=b is not None, padding_mode=padding_mode)
    dtype = torch.from_numpy(np.asarray(x)).dtype
    m = m.to(dtype)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(np.asarray(w)))
        if b is not None:
            m.bias.copy_(torch.from_numpy(np.asarray(b)))
    return m(torch.from_numpy(np.asarray(x))).detach().numpy()
