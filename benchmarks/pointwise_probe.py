"""1x1 forwards: one matmul per image in the NCHW layout, or one over all images.

    python benchmarks/pointwise_probe.py [--repeats 41] [--markdown PATH]
    python benchmarks/pointwise_probe.py --quick   # two small shapes, one run (CI)

shift's forward of a 1x1 kernel is either one ``dot_general`` over all images
(``[N·P, C] [C, O]``, which transposes the input and the output around the
matmul) or, with at least ``PER_IMAGE_MATMUL_MIN_POSITIONS`` output positions,
one per image and group with the images as a batch dimension (``[O, C] [C, P]``
per image: no transposes). This times both (the threshold forced each way), raw
``lax.conv_general_dilated`` and PyTorch's forward under ``no_grad``, interleaved
(:func:`jaxconv.benchmark.interleaved_samples`), and checks both against lax.
It also times the stacked matmul as shift wrote it before, with the (single) group
as a batch dimension of the ``dot_general``, for which XLA copies the weight
transposed on every call (the "group batch" column).
"""

from __future__ import annotations

import argparse
import platform

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxconv
from jaxconv._settings import clear_jitted_cores
from jaxconv.benchmark import interleaved_samples, program_id
from jaxconv.impls import shift

# (N, C, H=W, O, stride)
SHAPES = [(8, 256, 28, 256, 1), (8, 64, 56, 256, 1), (8, 256, 56, 64, 1),
          (8, 32, 112, 64, 1), (8, 96, 20, 96, 1), (8, 1024, 14, 256, 1),
          (8, 128, 14, 512, 1), (8, 384, 7, 384, 1), (8, 512, 14, 2048, 1),
          (8, 256, 56, 512, 2), (2, 512, 10, 1024, 1), (8, 1024, 8, 2048, 1)]
QUICK_SHAPES = [(2, 32, 20, 24, 1), (2, 32, 7, 24, 2)]


def _compiled(threshold: int, x, w, stride: int):
    """shift's 1x1 forward compiled with the per-image rule at `threshold` positions
    (read when the kernel is lowered: the program is compiled inside)."""
    saved = shift.PER_IMAGE_MATMUL_MIN_POSITIONS
    shift.PER_IMAGE_MATMUL_MIN_POSITIONS = threshold
    clear_jitted_cores()
    try:
        f = jax.jit(lambda x, w: jaxconv.conv2d(x, w, stride=stride, impl="shift"))
        return f.lower(x, w).compile()
    finally:
        shift.PER_IMAGE_MATMUL_MIN_POSITIONS = saved
        clear_jitted_cores()


def _group_batch_matmul(x, w, stride: int):
    """The stacked 1x1 matmul with the one group as a batch dimension: ``[N, 1, C, P]
    [1, O, C] -> [1, N, P, O]`` (shift's formulation before it left the group out)."""
    n, c, *_ = x.shape
    xs = x[:, :, ::stride, ::stride]
    out = xs.shape[2:]
    y = lax.dot_general(xs.reshape(n, 1, c, -1), w.reshape(1, w.shape[0], c),
                        (([2], [2]), ([1], [0])))
    return jnp.moveaxis(y[0], 2, 1).reshape(n, w.shape[0], *out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=41)
    p.add_argument("--markdown", default=None)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--quick", action="store_true", help="two small shapes, one run (CI)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    shapes = QUICK_SHAPES if args.quick else SHAPES
    if args.quick:
        args.repeats = 1
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
    rows = ["| N, C, HxW, O, stride | positions | per-image ms | all-images ms | group batch ms "
            "| raw lax ms | PyTorch ms | per-image / all-images | group batch / all-images "
            "| rule picks |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    rng = np.random.default_rng(0)
    for n, c, hw, o, s in shapes:
        x = jnp.asarray(rng.standard_normal((n, c, hw, hw)), jnp.float32)
        w = jnp.asarray(rng.standard_normal((o, c, 1, 1)), jnp.float32)
        per, stacked = _compiled(0, x, w, s), _compiled(1 << 60, x, w, s)
        assert program_id(per) != program_id(stacked)
        raw = jax.jit(lambda x, w, s=s: lax.conv_general_dilated(x, w, (s, s), "VALID"))
        batched = jax.jit(lambda x, w, s=s: _group_batch_matmul(x, w, s))
        want = np.asarray(raw(x, w))
        for f in (per, stacked, batched):
            np.testing.assert_allclose(np.asarray(f(x, w)), want, rtol=1e-3, atol=1e-3)
        runners = {name: (lambda f=f, x=x, w=w: jax.block_until_ready(f(x, w)))
                   for name, f in (("per", per), ("stacked", stacked), ("raw", raw),
                                   ("batched", batched))}
        if torch is not None:
            xt, wt = torch.tensor(np.asarray(x)), torch.tensor(np.asarray(w))

            def torch_forward(xt=xt, wt=wt, s=s):
                with torch.no_grad():
                    return torch.nn.functional.conv2d(xt, wt, stride=s)

            runners["torch"] = torch_forward
        times = interleaved_samples(runners, args.repeats)
        med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
        positions = ((hw - 1) // s + 1) ** 2
        picks = "per-image" if shift.per_image_matmul((1, 1), (positions,), c) else "all-images"
        torch_ms = f"{med['torch']:.2f}" if "torch" in med else "-"
        rows.append(f"| {n}, {c}, {hw}x{hw}, {o}, {s} | {positions} | {med['per']:.2f} | "
                    f"{med['stacked']:.2f} | {med['batched']:.2f} | {med['raw']:.2f} | "
                    f"{torch_ms} | {med['per'] / med['stacked']:.2f} | "
                    f"{med['batched'] / med['stacked']:.2f} | {picks} |")
        print(rows[-1], flush=True)
    header = (f"jax {jax.__version__} on {platform.machine()} ({jax.default_backend()}), "
              f"float32, median of {args.repeats} interleaved runs (ms); threshold "
              f"{shift.PER_IMAGE_MATMUL_MIN_POSITIONS} positions.")
    table = "\n".join([header, "", *rows])
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
