"""What would make dense 3x3 convolutions faster under XLA on CPU?

    python benchmarks/dense_probe.py --markdown benchmarks/results/dense_cpu.md
    MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 \\
        python benchmarks/dense_probe.py --markdown benchmarks/results/dense_cpu_malloc.md

Three candidates against XLA's own convolution, each timed interleaved in one
process with raw ``lax.conv_general_dilated`` (NCHW, as jaxconv's API and
PyTorch lay arrays out) and ``jaxconv.conv(impl="auto")``:

* **Channels-last operands.** The same convolution on arrays already in
  ``NHWC``/``HWIO``: XLA's CPU convolution computes channels-last, so with NCHW
  operands it transposes the input and the output around it. The difference is
  what those transposes cost (a network kept channels-last throughout would
  not pay them; jaxconv's API is PyTorch's NCHW).
* **im2col + one matmul.** The patch tensor ``(N, 9·C, H·W)`` built from 9
  shifted slices of the padded input (no gather), then one ``[O, 9C] [9C, H·W]``
  product per sample, which writes NCHW directly; and each of the two stages
  alone. The patch tensor is 9x the input: its memory traffic against the
  matmul it enables.
* **Winograd F(2x2, 3x3).** Minimal filtering computes a 2x2 output tile of a
  3x3 correlation from a 4x4 input tile ``d`` with 16 multiplications instead
  of 36::

      Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A

  (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
  Over channels the ``⊙`` becomes 16 independent matmuls ``(tiles, C) @ (C, O)``,
  2.25x fewer multiply-adds than the direct convolution. Built in JAX (stride 1,
  zero padding, channels-last inside), timed as XLA fuses it, with its input
  transform fenced off (materialised before the matmuls), and per stage.

The header names the glibc ``MALLOC_*`` variables the process ran under: XLA's
CPU runtime allocates a program's buffers on every call, and glibc serves large
ones with fresh ``mmap`` pages that are faulted in again each time unless its
thresholds are raised (docs/performance-notes.md, "What XLA's CPU backend does with convolutions").
The page-fault column is the mean over three more calls after the timed ones.

The im2col program and the Winograd program as XLA fuses it are checked
against lax (the probe exits non-zero if either disagrees; the fenced Winograd
variant computes the same ops). No impl is built on them: see
docs/performance-notes.md, "What XLA's CPU backend does with convolutions".
"""

from __future__ import annotations

import argparse
import math
import os

try:
    import resource
except ImportError:  # not Unix
    resource = None

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxconv
from jaxconv.benchmark import _interleaved, matmul_gflops
from jaxconv.impls._xla import fusion_fence

# Lavin and Gray's F(2, 3) matrices (d: 4 inputs, g: 3 taps, y: 2 outputs).
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)

BUILT = {"Winograd": "winograd, as XLA fuses it", "im2col": "im2col + one matmul per sample"}

LAYERS = {  # (N, C, H=W, O): dense 3x3, stride 1, padding 1
    "resnet_3x3_64": (8, 64, 56, 64),
    "resnet_3x3_128": (8, 128, 28, 128),
    "resnet_3x3_256": (8, 256, 14, 256),
}


def _combine(rows: list[jax.Array], matrix: np.ndarray) -> list[jax.Array]:
    """``out[i] = Σ_j matrix[i, j] · rows[j]`` with the ±1 / ±0.5 weights as adds."""
    out = []
    for coeffs in matrix:
        acc = None
        for c, r in zip(coeffs, rows, strict=True):
            if c == 0:
                continue
            term = r if c == 1 else -r if c == -1 else c * r
            acc = term if acc is None else acc + term
        out.append(acc)
    return out


def input_transform(x: jax.Array, tiles: tuple[int, int]) -> jax.Array:
    """``(N, H, W, C)`` padded to ``2·tiles + 2`` -> ``V``: ``(16, N·th·tw, C)``."""
    n, _, _, c = x.shape
    th, tw = tiles
    blocks = x.reshape(n, th + 1, 2, tw + 1, 2, c)  # tile (i, j) = blocks (i..i+1, j..j+1)
    rows = _combine([blocks[:, a // 2:a // 2 + th, a % 2] for a in range(4)], B_T)
    v = []
    for r in rows:
        v += _combine([r[:, :, b // 2:b // 2 + tw, b % 2] for b in range(4)], B_T)
    return jnp.stack(v).reshape(16, n * th * tw, c)


def kernel_transform(w: jax.Array) -> jax.Array:
    """``(O, C, 3, 3)`` -> ``U = G w Gᵀ``: ``(16, C, O)``, as adds (an einsum with G
    made the whole program 2-3x slower)."""
    wt = jnp.transpose(w, (2, 3, 1, 0))  # (3, 3, C, O)
    u = []
    for r in _combine(list(wt), G):
        u += _combine(list(r), G)
    return jnp.stack(u)


def output_transform(m: jax.Array, n: int, tiles: tuple[int, int]) -> jax.Array:
    """``M``: ``(16, N·th·tw, O)`` -> ``(N, 2·th, 2·tw, O)``."""
    th, tw = tiles
    m = m.reshape(4, 4, n, th, tw, m.shape[-1])
    rows = _combine(list(m), A_T)  # 2 x (4, N, th, tw, O)
    y = [jnp.stack(_combine(list(r), A_T), axis=3) for r in rows]  # (N, th, tw, 2, O)
    y = jnp.stack(y, axis=2)  # (N, th, 2, tw, 2, O)
    return y.reshape(n, 2 * th, 2 * tw, y.shape[-1])


def winograd_conv(x: jax.Array, w: jax.Array, fence: bool = False) -> jax.Array:
    """3x3, stride 1, padding 1, NCHW in and out, by F(2x2, 3x3)."""
    n, _, h, wd = x.shape
    tiles = (-(-h // 2), -(-wd // 2))
    x = jnp.transpose(x, (0, 2, 3, 1))
    x = jnp.pad(x, ((0, 0), (1, 2 * tiles[0] + 1 - h), (1, 2 * tiles[1] + 1 - wd), (0, 0)))
    v = input_transform(x, tiles)
    if fence:
        v = fusion_fence(v)
    m = jnp.einsum("tpc,tco->tpo", v, kernel_transform(w))
    y = output_transform(m, n, tiles)[:, :h, :wd]
    return jnp.transpose(y, (0, 3, 1, 2))


def patches(x: jax.Array) -> jax.Array:
    """``(N, C, H, W)`` -> the 3x3 patch tensor ``(N, C·9, H·W)`` (padding 1), rows
    ``(c, i, j)`` as ``w.reshape(O, C·9)`` orders them, built from 9 slices."""
    n, c, h, wd = x.shape
    xp = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    taps = [xp[:, :, i:i + h, j:j + wd] for i in range(3) for j in range(3)]
    return jnp.stack(taps, axis=2).reshape(n, c * 9, h * wd)


def per_sample_matmul(cols: jax.Array, w: jax.Array) -> jax.Array:
    """``[O, 9C] [9C, H·W]`` per sample: ``(N, O, H·W)``, NCHW order."""
    wm = jnp.broadcast_to(w.reshape(w.shape[0], -1), (cols.shape[0], w.shape[0],
                                                       cols.shape[1]))
    return lax.dot_general(wm, cols, (((2,), (1,)), ((0,), (0,))))


def im2col_conv(x: jax.Array, w: jax.Array) -> jax.Array:
    """3x3, stride 1, padding 1, NCHW in and out, as patches + one matmul per sample."""
    n, _, h, wd = x.shape
    return per_sample_matmul(patches(x), w).reshape(n, w.shape[0], h, wd)


def minor_faults(run, calls: int = 3) -> float:
    """Minor page faults per call of `run` (after a warm-up), NaN where unknown."""
    if resource is None:
        return math.nan
    run()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        run()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def probe(name: str, shape: tuple[int, int, int, int], repeats: int) -> list[tuple]:
    n, c, hw, o = shape
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (n, c, hw, hw), jnp.float32)
    w = jax.random.normal(kw, (o, c, 3, 3), jnp.float32)
    tiles = (-(-hw // 2), -(-hw // 2))
    xh = jnp.pad(jnp.transpose(x, (0, 2, 3, 1)),
                 ((0, 0), (1, 2 * tiles[0] + 1 - hw), (1, 2 * tiles[1] + 1 - hw), (0, 0)))
    v = jax.jit(input_transform, static_argnums=1)(xh, tiles)
    u = kernel_transform(w)
    m = jnp.einsum("tpc,tco->tpo", v, u)
    xl, wl = jnp.transpose(x, (0, 2, 3, 1)), jnp.transpose(w, (2, 3, 1, 0))
    cols = jax.jit(patches)(x)
    programs = {
        "raw lax.conv_general_dilated": (jax.jit(lambda x, w: lax.conv_general_dilated(
            x, w, (1, 1), ((1, 1), (1, 1)))), (x, w)),
        "jaxconv auto": (jax.jit(lambda x, w: jaxconv.conv2d(x, w, padding=1)), (x, w)),
        "lax, channels-last operands (no transposes)": (jax.jit(
            lambda x, w: lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))),
            (xl, wl)),
        "im2col + one matmul per sample": (jax.jit(im2col_conv), (x, w)),
        "  stage: patch tensor (9 slices)": (jax.jit(patches), (x,)),
        "  stage: [O, 9C] [9C, HW] per sample": (jax.jit(per_sample_matmul), (cols, w)),
        "winograd, as XLA fuses it": (jax.jit(winograd_conv), (x, w)),
        "winograd, input transform fenced": (
            jax.jit(lambda x, w: winograd_conv(x, w, fence=True)), (x, w)),
        "  stage: input transform (NHWC in)": (
            jax.jit(input_transform, static_argnums=1), (xh, tiles)),
        "  stage: 16 batched matmuls": (jax.jit(lambda v, u: jnp.einsum("tpc,tco->tpo", v, u)),
                                        (v, u)),
        "  stage: output transform (NHWC out)": (
            jax.jit(output_transform, static_argnums=(1, 2)), (m, n, tiles)),
    }
    want = programs["raw lax.conv_general_dilated"][0](x, w)
    err = {method: float(jnp.max(jnp.abs(programs[program][0](x, w) - want))
                         / jnp.max(jnp.abs(want)))
           for method, program in BUILT.items()}
    runners = {k: (lambda f=f, a=a: jax.block_until_ready(f(*a)))
               for k, (f, a) in programs.items()}
    ms = _interleaved(runners, repeats)
    faults = {k: minor_faults(run) for k, run in runners.items()}
    direct = 2 * n * hw * hw * o * c * 9 / 1e9
    flops = {"  stage: 16 batched matmuls": direct / 2.25,
             "  stage: [O, 9C] [9C, HW] per sample": direct}
    base = ms["raw lax.conv_general_dilated"]
    return [(name, k, ms[k], ms[k] / base,
             flops.get(k, direct if not k.startswith("  ") else math.nan) / (ms[k] * 1e-3),
             faults[k], err) for k in programs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true",
                        help="one small layer (a smoke test; CI runs it)")
    parser.add_argument("--markdown", help="write the table as Markdown to this file")
    args = parser.parse_args()
    layers = {"quick_3x3_8": (1, 8, 9, 8)} if args.quick else LAYERS
    rows = [r for name, shape in layers.items() for r in probe(name, shape, args.repeats)]
    peak = matmul_gflops()
    pages = (f"{resource.getpagesize() // 1024} KiB pages" if resource is not None
             else "not measured on this OS")
    malloc = sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("MALLOC_"))
    malloc = ("glibc malloc: " + ", ".join(malloc) if malloc else
              "glibc malloc: default thresholds (no MALLOC_* variable set)")
    lines = [f"jax {jax.__version__} on {jax.default_backend()}, float32, median of "
             f"{args.repeats} interleaved runs after a warm-up; this machine's float32 "
             f"matmul: {peak:.0f} GFLOP/s. GFLOP/s: the direct convolution's flops (the "
             "Winograd matmul stage: its own, 1/2.25 of them) over the time. Page faults: "
             f"minor faults of the process per call ({pages}). " + malloc + ".",
             "",
             "| layer | program | ms | / raw lax | GFLOP/s | page faults / call |",
             "|---|---|---:|---:|---:|---:|"]
    for name, program, ms, ratio, gflops, faults, _ in rows:
        g = "-" if math.isnan(gflops) else f"{gflops:.0f}"
        f = "-" if math.isnan(faults) else f"{faults:.0f}"
        lines.append(f"| {name} | {program} | {ms:.2f} | {ratio:.2f} | {g} | {f} |")
    errs = {name: err for name, *_, err in rows}
    lines.append("")
    for method in BUILT:
        lines.append(f"{method} vs lax, max |difference| / max |lax|: " + ", ".join(
            f"{k} {v[method]:.1e}" for k, v in errs.items()) + ".")
        worst = max(v[method] for v in errs.values())
        if not worst < 1e-5:
            raise SystemExit(f"dense_probe: {method} disagrees with lax ({worst:.1e})")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
