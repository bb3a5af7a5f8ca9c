"""How to compute a complex convolution fastest: three real convolutions, four, or one
native complex one.

For each complex64 layer, the forward alone and ``value_and_grad`` (input, weight,
bias) of ``<conv(x, w, b), ct>`` (real part of the pairing, so that the loss is
real), four ways, compiled once and timed interleaved
(:func:`jaxconv.benchmark.interleaved_samples`):

* ``gauss3``: ``jaxconv.conv2d`` with ``impl="auto"`` (what jaxconv does: every
  kernel as three real calls, ``t1 = K(ar, br)``, ``t2 = K(ai, bi)``,
  ``t3 = K(ar + ai, br + bi)``, as PyTorch's ``complex_convolution``);
* ``four``: four real ``jaxconv`` convolutions, ``K(ar, br) - K(ai, bi)`` and
  ``K(ar, bi) + K(ai, br)``, JAX differentiating the sums;
* ``native``: one ``lax.conv_general_dilated`` on the complex operands (XLA's
  complex convolution), with ``jnp.pad`` for a padding mode;
* ``torch``: PyTorch's ``nn.ConvNd`` in complex64 (its own three-call product).

Before timing, the three JAX variants' outputs and gradients are compared (the
probe exits non-zero if they differ by more than complex64's tolerance). Prints a
Markdown table of medians in ms and each variant's ratio to ``gauss3``. Run::

    python benchmarks/complex_probe.py [--quick] [--repeats N] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import jax
import jax.numpy as jnp
from jax import lax

import jaxconv
from jaxconv import benchmark as B
from jaxconv.cli.bench import _malloc_setting

LAYERS = ("complex_3x3_32", "complex_1d_k9")
QUICK_LAYERS = ("2d N=1 C=4 HW=8 O=4 k=3 p=1 dtype=complex64",)


def variants(layer: B.Layer) -> dict:
    kw = layer.kwargs
    auto = lambda x, w, b: jaxconv.conv(x, w, b, **kw)
    native_real = B.raw_lax_conv(layer)  # lax on whatever dtype it is given

    def four(x, w, b):
        k = lambda a, c: jaxconv.conv(a, c, **kw)
        ar, ai, br, bi = x.real, x.imag, w.real, w.imag
        y = lax.complex(k(ar, br) - k(ai, bi), k(ar, bi) + k(ai, br))
        return y + b.reshape((-1,) + (1,) * layer.rank)

    return {"gauss3": auto, "four": four, "native": native_real}


def _loss(f):
    return lambda x, w, b, ct: jnp.real(jnp.vdot(ct, f(x, w, b)))


def run(layers: dict[str, B.Layer], repeats: int, min_time: float) -> list[dict]:
    rows = []
    for name, layer in layers.items():
        x, w, b = B.layer_arrays(layer)
        fns = variants(layer)
        ct = jax.random.normal(jax.random.key(1), jax.eval_shape(fns["gauss3"], x, w, b).shape,
                               jnp.complex64)
        fwd = {k: jax.jit(f) for k, f in fns.items()}
        fb = {k: jax.jit(jax.value_and_grad(_loss(f), argnums=(0, 1, 2)))
              for k, f in fns.items()}
        ref = jax.tree.leaves((fwd["gauss3"](x, w, b), fb["gauss3"](x, w, b, ct)))
        for k in ("four", "native"):
            got = jax.tree.leaves((fwd[k](x, w, b), fb[k](x, w, b, ct)))
            for a, c in zip(got, ref, strict=True):
                scale = 1 + float(jnp.max(jnp.abs(c)))
                if float(jnp.max(jnp.abs(a - c))) > 1e-4 * scale:
                    sys.exit(f"complex_probe: {k} differs from gauss3 on {name}")
        runners = {}
        for k in fns:
            args = (x, w, b)
            runners[f"{k} fwd"] = lambda f=fwd[k], a=args: jax.block_until_ready(f(*a))
            runners[f"{k} f+b"] = lambda f=fb[k], a=(*args, ct): jax.block_until_ready(f(*a))
        if B.torch_available():
            tf, tfb = B._torch_runners(layer, (x, w, b))
            runners["torch fwd"], runners["torch f+b"] = tf, tfb
        times = B.interleaved_samples(runners, repeats, min_time)
        row = {"layer": name, "describe": layer.describe()}
        row.update({k: statistics.median(v) * 1e3 for k, v in times.items()})
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    names = ("gauss3", "four", "native", "torch")
    head = ("| layer | " + " | ".join(f"{n} fwd | {n} f+b" for n in names)
            + " | four/gauss3 f+b | native/gauss3 f+b | gauss3/torch f+b |")
    lines = [head, "|" + "---|" * (2 + 2 * len(names) + 2)]
    for r in rows:
        cells = [f"{r[f'{n} {p}']:.2f}" if f"{n} {p}" in r else "-"
                 for n in names for p in ("fwd", "f+b")]
        ratio = lambda a, c, r=r: f"{r[a] / r[c]:.2f}" if a in r and c in r else "-"
        lines.append(f"| {r['layer']} | " + " | ".join(cells) + " | "
                     + " | ".join((ratio("four f+b", "gauss3 f+b"),
                                   ratio("native f+b", "gauss3 f+b"),
                                   ratio("gauss3 f+b", "torch f+b"))) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one tiny layer, 2 runs (for tests)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--markdown", help="write the table to this file")
    args = p.parse_args(argv)
    if args.quick:
        layers = {t: B.parse_layer(t) for t in QUICK_LAYERS}
        args.repeats, args.min_time = 2, 0.0
    else:
        layers = {n: B.LAYERS[n] for n in LAYERS}
    backend = jax.devices()[0]
    header = (f"jax {jax.__version__} on {backend.platform} ({backend.device_kind}), complex64, "
              f"medians of at least {args.repeats} interleaved runs (ms); {_malloc_setting()}.")
    text = header + "\n\n" + table(run(layers, args.repeats, args.min_time))
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
