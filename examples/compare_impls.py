"""Run a few typical layers through every jaxconv impl and through PyTorch, print the gaps.

    python examples/compare_impls.py

Each row is one layer in float32: the largest absolute difference of each impl
from PyTorch's nn.ConvNd (or from impl="lax" when PyTorch is not installed).
"""

from __future__ import annotations

import sys

import numpy as np

import jaxconv

# name: rank, N, C_in, spatial, C_out, kernel, stride, padding, dilation, groups, mode
LAYERS = {
    "conv2d 3x3": (2, 2, 16, (16, 16), 32, 3, 1, 1, 1, 1, "zeros"),
    "conv2d 3x3 stride 2": (2, 2, 16, (15, 15), 16, 3, 2, 1, 1, 1, "zeros"),
    "depthwise 3x3 reflect": (2, 2, 32, (16, 16), 32, 3, 1, 1, 1, 32, "reflect"),
    "grouped 3x3 circular": (2, 2, 32, (12, 12), 32, 3, 1, "same", 1, 4, "circular"),
    "dilated 1d replicate": (1, 4, 8, (64,), 16, 5, 1, 4, 2, 1, "replicate"),
    "conv3d 3x3x3": (3, 1, 4, (6, 8, 8), 8, 3, 1, 1, 1, 1, "zeros"),
}


def main() -> None:
    try:
        import torch
    except ImportError:  # the comparison still runs between impls
        torch = None
    rng = np.random.default_rng(0)
    impls = jaxconv.available_impls()
    oracle = "torch" if torch is not None else "lax"
    for name in impls:
        print(f"impl {name!r}: {jaxconv.get_impl(name).description}")
    print(f"max |jaxconv - {oracle}| per impl, float32")
    worst = 0.0
    print(f"{'layer':<26}{'out shape':<22}" + "".join(f"{i:>12}" for i in impls))
    for name, (rank, n, c_in, spatial, c_out, k, s, p, d, g, mode) in LAYERS.items():
        x = rng.standard_normal((n, c_in, *spatial)).astype(np.float32)
        w = rng.standard_normal((c_out, c_in // g, *(k,) * rank)).astype(np.float32)
        b = rng.standard_normal(c_out).astype(np.float32)
        kw = dict(stride=s, padding=p, dilation=d, groups=g, padding_mode=mode)
        outs = {i: np.asarray(jaxconv.conv(x, w, b, **kw, impl=i)) for i in impls}
        if torch is not None:
            cls = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)[rank - 1]
            m = cls(c_in, c_out, k, **kw)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(w))
                m.bias.copy_(torch.from_numpy(b))
                ref = m(torch.from_numpy(x)).numpy()
        else:
            ref = outs["lax"]
        gaps = [np.abs(outs[i] - ref).max() for i in impls]
        worst = max(worst, max(gaps) / (1.0 + np.abs(ref).max()))
        print(f"{name:<26}{str(ref.shape):<22}" + "".join(f"{v:>12.2e}" for v in gaps))
    print(f"worst relative gap {worst:.1e}: {'OK' if worst < 1e-4 else 'FAILED'}")
    if worst >= 1e-4:
        sys.exit(1)


if __name__ == "__main__":
    main()
