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


def _torch_module(torch, x, w, b, stride, padding, dilation, groups, padding_mode):
    """``nn.ConvNd`` with the given parameters and `w`, `b` (numpy) as its weights."""
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
    return m


def torch_conv_module(torch, x, w, b, stride, padding, dilation, groups, padding_mode):
    """``nn.ConvNd`` with the given parameters, applied to `x` (numpy in, numpy out)."""
    m = _torch_module(torch, x, w, b, stride, padding, dilation, groups, padding_mode)
    return m(torch.from_numpy(np.asarray(x))).detach().numpy()


def torch_conv_grads(torch, x, w, b, rng, stride=1, padding=0, dilation=1, groups=1,
                     padding_mode="zeros"):
    """``nn.ConvNd`` applied to `x`, then backward with a standard-normal cotangent
    drawn from `rng` in `x`'s dtype: ``(ct, (y, dx, dw, db))``, numpy arrays."""
    m = _torch_module(torch, x, w, b, stride, padding, dilation, groups, padding_mode)
    tx = torch.from_numpy(np.asarray(x)).requires_grad_()
    ty = m(tx)
    ct = rng.standard_normal(tuple(ty.shape)).astype(np.asarray(x).dtype)
    ty.backward(torch.from_numpy(ct))
    return ct, (ty.detach().numpy(), tx.grad.numpy(), m.weight.grad.numpy(),
                m.bias.grad.numpy())


def _pairs(in_spatial, out_spatial, kernel, stride, dilation, lo):
    """Every structural (output position, tap, input position) of a convolution, as
    flat indices: the pairs whose input index ``p·s + k·d - lo`` lies in range."""
    grids = np.meshgrid(*[np.arange(n) for n in (*out_spatial, *kernel)], indexing="ij")
    rank = len(kernel)
    p, k = grids[:rank], grids[rank:]
    i = [pa * s + ka * d - l for pa, ka, s, d, l in zip(p, k, stride, dilation, lo)]
    valid = np.logical_and.reduce([(ia >= 0) & (ia < n) for ia, n in zip(i, in_spatial)])
    flat = lambda idx, shape: np.ravel_multi_index([a[valid] for a in idx], shape)
    return flat(p, out_spatial), flat(k, kernel), flat(i, in_spatial)


def _add_at(lead, size, index, values):
    out = np.zeros((*lead, int(size)), values.dtype)
    np.add.at(out, (*(slice(None),) * len(lead), index), values)
    return out


def structural_conv_vjp(x, w, b, cot, stride, padding, dilation, groups,
                        padding_mode="zeros"):
    """``(y, dx, dw, db)`` of a batched convolution and its VJP with cotangent `cot`,
    summing only products of real elements (never the zero padding), one
    ``np.add.at`` per result: the NaN and ±Inf entries IEEE arithmetic gives the
    convolution's defining sums. Ints or tuples for stride/padding/dilation."""
    with np.errstate(invalid="ignore", over="ignore"):
        return _structural_conv_vjp(x, w, b, cot, stride, padding, dilation, groups,
                                    padding_mode)


def _structural_conv_vjp(x, w, b, cot, stride, padding, dilation, groups, padding_mode):
    rank = w.ndim - 2
    stride, dilation, padding = (_tuple(v, rank) for v in (stride, dilation, padding))
    n, c, *spatial = x.shape
    o, cg, *kernel = w.shape
    og = o // groups
    mode_pad = padding_mode != "zeros"
    if mode_pad:  # pad with copies (real elements), then convolve without padding
        src = np.pad(np.arange(np.prod(spatial)).reshape(spatial),
                     [(p, p) for p in padding], mode=NP_MODES[padding_mode])
        xs = x.reshape(n, c, -1)[:, :, src.reshape(-1)].reshape(n, c, *src.shape)
        lo = (0,) * rank
    else:
        xs, lo = x, padding
    in_sp = xs.shape[2:]
    out_sp = tuple((m + 2 * (p if not mode_pad else 0) - d * (k - 1) - 1) // s + 1
                   for m, p, d, k, s in zip(in_sp, padding, dilation, kernel, stride))
    assert cot.shape == (n, o, *out_sp)
    pi, ki, ii = _pairs(in_sp, out_sp, kernel, stride, dilation, lo)
    xg = xs.reshape(n, groups, cg, -1)
    wg = w.reshape(groups, og, cg, -1)
    gg = cot.reshape(n, groups, og, -1)
    # Products over (n, group, og, cg, pair), each summed over what its result does not
    # keep, then added into place pair by pair (np.add.at: repeated indices accumulate).
    # NaN and ±Inf come out the same in any order of summation.
    prods = xg[:, :, None, :, ii] * wg[None, :, :, :, ki]
    grad_prods = gg[:, :, :, None, pi]
    yt = _add_at((n, groups, og), np.prod(out_sp), pi, prods.sum(3))
    dxs = _add_at((n, groups, cg), np.prod(in_sp), ii, (grad_prods * wg[None, :, :, :, ki]).sum(2))
    dw = _add_at((groups, og, cg), np.prod(kernel), ki, (xg[:, :, None, :, ii] * grad_prods).sum(0))
    y = yt.reshape(n, o, *out_sp)
    if b is not None:
        y = y + b.reshape((-1,) + (1,) * rank)
    dxs = dxs.reshape(n, c, *in_sp)
    if mode_pad:  # the pre-pad's adjoint: each copy's gradient adds to its source
        dx = _add_at((n, c), np.prod(spatial), src.reshape(-1), dxs.reshape(n, c, -1))
        dx = dx.reshape(x.shape)
    else:
        dx = dxs
    db = cot.sum(axis=(0, *range(2, 2 + rank)))
    return y, dx, dw.reshape(w.shape), db
