"""The convolutions' mode-padding adjoint: hand-written (fused) against JAX's.

For each layer, ``value_and_grad`` (w.r.t. input, weight and bias) of
``<conv(pad(x), w, b), ct>`` with ``impl="auto"`` and the padding done outside
the convolution, three ways, compiled once and timed interleaved
(:func:`jaxconv.benchmark.interleaved_samples`):

* ``fused``: :func:`jaxconv._padding.mode_pad`, the pre-pad jaxconv's convolutions
  use, whose adjoint is one fused sum (docs/auto.md);
* ``jax``: :func:`jaxconv._padding.pad_trailing`, the same slices and
  concatenation differentiated by JAX (what the convolutions used before);
* ``zeros``: the same convolution with zero padding, for reference (no copy).

Before timing, the fused and JAX gradients of each layer are compared (the
probe exits non-zero if they differ). Prints a Markdown table: medians in ms,
XLA's temporary bytes, and ``jax / fused``. Run::

    python benchmarks/pad_probe.py [--quick] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys

import jax
import jax.numpy as jnp
import numpy as np

import jaxconv
from jaxconv import benchmark as B
from jaxconv._padding import mode_pad, pad_trailing
from jaxconv.cli.bench import _malloc_setting

LAYERS = ("reflect_3x3", "circular_3d")
QUICK_LAYERS = ("2d N=1 C=4 HW=8 O=4 k=3 p=1 mode=reflect",)
MODES = ("reflect", "replicate", "circular")


def variants(layer: B.Layer):
    """``({"fused": fn, "jax": fn, "zeros": fn}, args)`` for `layer` in its own
    padding mode: the jitted ``value_and_grad`` of each variant and its arguments."""
    x, w, b = B.layer_arrays(layer)
    pads = ((layer.padding, layer.padding),) * layer.rank
    out = jaxconv.conv(x, w, b, layer.stride, layer.padding, layer.dilation, layer.groups)
    ct = jnp.asarray(np.random.default_rng(1).standard_normal(out.shape), out.dtype)

    def vag(pad):
        def loss(x, w, b, ct):
            xp = x if pad is None else pad(x, pads, layer.mode)
            y = jaxconv.conv(xp, w, b, layer.stride, 0 if pad else layer.padding,
                             layer.dilation, layer.groups)
            return jnp.vdot(y, ct)
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))

    return {"fused": vag(mode_pad), "jax": vag(pad_trailing), "zeros": vag(None)}, (x, w, b, ct)


def probe(layer: B.Layer, repeats: int, min_time: float) -> dict[str, float]:
    fns, args = variants(layer)
    compiled = {k: f.lower(*args).compile() for k, f in fns.items()}
    ref = jax.tree.leaves(compiled["jax"](*args))
    got = jax.tree.leaves(compiled["fused"](*args))
    for a, r in zip(got, ref, strict=True):  # the same gradients (float32 sums regrouped)
        np.testing.assert_allclose(np.asarray(a), np.asarray(r), rtol=1e-4, atol=1e-3)
    runners = {k: (lambda c=c: jax.block_until_ready(c(*args))) for k, c in compiled.items()}
    samples = B.interleaved_samples(runners, repeats, min_time)
    row = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    row.update({f"{k} temp": c.memory_analysis().temp_size_in_bytes / 2**20
                for k, c in compiled.items()})
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one tiny layer, every mode, 1 run each (a check, not a timing)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=B.DEFAULT_MIN_TIME)
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    names = QUICK_LAYERS if args.quick else LAYERS
    repeats, min_time = (1, 0.0) if args.quick else (args.repeats, args.min_time)
    lines = [f"jax {jax.__version__} on {jax.default_backend()}, float32, impl='auto', "
             f"value_and_grad, median of at least {repeats} interleaved runs"
             + (f" (more until {min_time:g} s)" if min_time else "")
             + f"; {_malloc_setting()}.", "",
             "| layer | mode | fused ms | jax ms | zeros ms | jax/fused | fused temp MiB "
             "| jax temp MiB | zeros temp MiB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        base = B.LAYERS.get(name) or B.parse_layer(name)
        modes = (base.mode, *(m for m in MODES if m != base.mode))
        for mode in modes:
            layer = dataclasses.replace(base, mode=mode)
            r = probe(layer, repeats, min_time)
            lines.append(f"| {name} | {mode} | {r['fused']:.1f} | {r['jax']:.1f} | "
                         f"{r['zeros']:.1f} | {r['jax'] / r['fused']:.2f} | "
                         f"{r['fused temp']:.1f} | {r['jax temp']:.1f} | {r['zeros temp']:.1f} |")
            print(lines[-1], file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
