"""unfold and fold: jaxconv's impls against PyTorch and ``lax.conv_general_dilated_patches``.

For each case, unfold and fold, forward (``fwd``) and forward+backward (``f+b``:
``value_and_grad`` of ``<op(a), ct>`` w.r.t. the operand), these variants:

* ``gather``, ``slices``, ``auto``: :func:`jaxconv._unfold.unfold` / ``fold`` with
  that ``impl``;
* ``lax_patches``: ``lax.conv_general_dilated_patches`` (its features are already
  channel-major, PyTorch's order; the spatial block axes are flattened into ``L``);
  for fold, ``jax.vjp`` of it (JAX's transpose of a convolution with an identity
  kernel);
* ``torch``: ``torch.nn.functional.unfold`` / ``fold`` (eager, CPU, its default
  threads; backward by autograd).

Every variant's values and gradients are checked against PyTorch's before timing
(the script exits non-zero if any differs). JAX variants are compiled once and
timed interleaved with PyTorch (:func:`jaxconv.benchmark.interleaved_samples`).
Prints a Markdown table of medians in ms. Run::

    python benchmarks/unfold_bench.py [--quick] [--repeats R] [--markdown FILE]

``--quick`` runs tiny shapes, two calls each: a correctness check, not a timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv import benchmark as B
from jaxconv._unfold import fold, unfold

IMPLS = ("gather", "slices", "reshape", "auto")
VARIANTS = (*IMPLS, "lax_patches", "torch")


@dataclasses.dataclass(frozen=True)
class Case:
    """One shape: `kernel`, `stride` and `padding` are the same on every spatial axis."""

    name: str
    batch: int
    channels: int
    spatial: tuple[int, ...]
    kernel: int
    stride: int
    padding: int

    @property
    def rank(self) -> int:
        return len(self.spatial)

    @property
    def blocks(self) -> int:
        return math.prod((n + 2 * self.padding - self.kernel) // self.stride + 1
                         for n in self.spatial)

    def impls(self) -> tuple[str, ...]:
        return IMPLS

    def label(self) -> str:
        return (f"N={self.batch} C={self.channels} {'x'.join(map(str, self.spatial))} "
                f"k={self.kernel} s={self.stride} p={self.padding}")


CASES = (
    Case("vit_patch", 8, 3, (224, 224), 16, 16, 0),     # ViT patching 16x16/16
    Case("swin_merge", 8, 96, (56, 56), 2, 2, 0),       # Swin patch merging 2x2/2
    Case("conv3x3", 8, 64, (56, 56), 3, 1, 1),          # im2col of a 3x3/1 pad 1 conv
    Case("conv3x3_s2", 8, 64, (56, 56), 3, 2, 1),       # a 3x3/2 downsampling conv
    Case("conv5x5", 8, 32, (28, 28), 5, 1, 2),          # a 5x5/1 pad 2 conv
    Case("local_attn", 8, 64, (14, 14), 7, 1, 3),       # 7x7 neighbourhoods (local attention)
    Case("overlap_add", 8, 3, (64, 64), 8, 4, 0),       # overlap-add of 8x8/4 patches
    Case("audio_frames", 8, 1, (16000,), 400, 160, 0),  # 1-d framing, 25 ms / 10 ms at 16 kHz
)
QUICK_CASES = (
    Case("vit_patch", 1, 3, (8, 8), 4, 4, 0),
    Case("conv3x3", 1, 4, (6, 6), 3, 1, 1),
    Case("overlap_add", 1, 3, (8, 8), 4, 2, 0),
    Case("audio_frames", 1, 1, (40,), 8, 4, 0),
)


def _patches(case: Case):
    r = case.rank

    def f(x):
        p = lax.conv_general_dilated_patches(
            x, (case.kernel,) * r, (case.stride,) * r, [(case.padding, case.padding)] * r)
        return p.reshape(p.shape[0], p.shape[1], -1)
    return f


def jax_ops(case: Case, op: str) -> dict:
    """``{variant: function of the operand}`` for `op` ("unfold" or "fold")."""
    r = case.rank
    geo = dict(padding=(case.padding,) * r, stride=(case.stride,) * r)
    kernel = (case.kernel,) * r
    x_shape = (case.batch, case.channels, *case.spatial)
    if op == "unfold":
        fns = {i: (lambda x, i=i: unfold(x, kernel, **geo, impl=i)) for i in case.impls()}
        fns["lax_patches"] = _patches(case)
        return fns
    fns = {i: (lambda c, i=i: fold(c, case.spatial, kernel, **geo, impl=i))
           for i in case.impls()}
    x0 = jnp.zeros(x_shape, jnp.float32)
    fns["lax_patches"] = lambda c: jax.vjp(_patches(case), x0)[1](c)[0]
    return fns


def torch_op(case: Case, op: str):
    """PyTorch's unfold/fold (2-d only: a 1-d case runs as (1, k) blocks on a 1 x n image)."""
    import torch.nn.functional as F
    lift = case.rank == 1
    k, s, p = ((1, case.kernel), (1, case.stride), (0, case.padding)) if lift else (
        case.kernel, case.stride, case.padding)
    if op == "unfold":
        if lift:
            return lambda a: F.unfold(a[:, :, None], k, padding=p, stride=s)
        return lambda a: F.unfold(a, k, padding=p, stride=s)
    size = (1, *case.spatial) if lift else case.spatial
    if lift:
        return lambda a: F.fold(a, size, k, padding=p, stride=s)[:, :, 0]
    return lambda a: F.fold(a, size, k, padding=p, stride=s)


def run_case(case: Case, op: str, repeats: int, min_time: float) -> dict[tuple[str, str], float]:
    import torch
    rng = np.random.default_rng(0)
    operand = (rng.standard_normal((case.batch, case.channels, *case.spatial))
               if op == "unfold" else
               rng.standard_normal((case.batch, case.channels * case.kernel**case.rank,
                                   case.blocks)))
    operand = operand.astype(np.float32)
    top = torch_op(case, op)
    t_in = torch.tensor(operand, requires_grad=True)
    t_out = top(t_in)
    ct = rng.standard_normal(tuple(t_out.shape)).astype(np.float32)
    t_ct = torch.tensor(ct)
    (t_grad,) = torch.autograd.grad(t_out, t_in, t_ct)
    want = (t_out.detach().numpy(), t_grad.numpy())

    a, c = jnp.asarray(operand), jnp.asarray(ct)
    runners = {}
    for variant, f in jax_ops(case, op).items():
        fwd = jax.jit(f).lower(a).compile()
        fb = jax.jit(jax.value_and_grad(lambda a, c, f=f: jnp.vdot(f(a), c))).lower(a, c).compile()
        got = (fwd(a), fb(a, c)[1])
        for g, w, what in zip(got, want, ("value", "gradient"), strict=True):
            if not np.allclose(np.asarray(g), w, rtol=1e-5, atol=1e-5):
                raise SystemExit(f"{case.name} {op} {variant}: {what} differs from PyTorch's "
                                 f"(max |difference| {np.abs(np.asarray(g) - w).max():g})")
        runners[(variant, "fwd")] = lambda fwd=fwd: jax.block_until_ready(fwd(a))
        runners[(variant, "f+b")] = lambda fb=fb: jax.block_until_ready(fb(a, c))

    def torch_fwd():
        with torch.no_grad():
            top(t_in)

    def torch_fb():
        torch.autograd.grad(top(t_in), t_in, t_ct)

    runners[("torch", "fwd")] = torch_fwd
    runners[("torch", "f+b")] = torch_fb
    samples = B.interleaved_samples(runners, repeats, min_time)
    return {k: statistics.median(v) * 1e3 for k, v in samples.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes, 2 calls each (a check, not a timing)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=B.DEFAULT_MIN_TIME)
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    cases = QUICK_CASES if args.quick else CASES
    repeats, min_time = (1, 0.0) if args.quick else (args.repeats, args.min_time)
    import torch
    lines = [f"jax {jax.__version__} on {jax.default_backend()}, torch {torch.__version__} "
             f"({torch.get_num_threads()} threads), float32, median ms of at least {repeats} "
             "interleaved runs" + (f" (more until {min_time:g} s)" if min_time else "")
             + (" (--quick: a check, not a timing)" if args.quick else "") + ".", "",
             "| case | op | variant | shape | fwd ms | f+b ms | fwd / torch |",
             "|---|---|---|---|---:|---:|---:|"]
    for case in cases:
        for op in ("unfold", "fold"):
            r = run_case(case, op, repeats, min_time)
            for variant in (v for v in VARIANTS if (v, "fwd") in r):
                fwd, fb = r[(variant, "fwd")], r[(variant, "f+b")]
                lines.append(f"| {case.name} | {op} | {variant} | {case.label()} | "
                             f"{fwd:.3f} | {fb:.3f} | {fwd / r[('torch', 'fwd')]:.2f} |")
                print(lines[-1], file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
