"""Benchmark jaxconv's impls on a suite of typical layers and print a table.

    python benchmarks/bench.py                       # every layer, every impl
    python benchmarks/bench.py --layers depthwise_3x3 --repeats 10
    python benchmarks/bench.py --json results.json   # also write the rows

For each layer and impl: forward time, forward+backward time (the gradient of
``sum(y * ct)`` w.r.t. input, weight and bias), both under ``jax.jit`` after a
warm-up call, as the median of ``--repeats`` runs; the compile time of the
forward+backward function; and the peak memory XLA plans for it (arguments,
outputs and temporaries, from ``compiled.memory_analysis()``). With
``--autodiff`` the backward pass is also timed with JAX's autodiff of the same
forward (``autodiff="jax"``) to compare with jaxconv's hand-written rules.
PyTorch (if installed) is timed on the same layer for reference. Timings on a
shared machine are noisy: compare rows of one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jaxconv


class Layer(NamedTuple):
    rank: int
    n: int
    c_in: int
    spatial: tuple[int, ...]
    c_out: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    groups: int
    mode: str


# The layer suite of the gather issue (#3).
LAYERS = {
    "resnet_3x3_64": Layer(2, 8, 64, (56, 56), 64, 3, 1, 1, 1, 1, "zeros"),
    "resnet_3x3_s2": Layer(2, 8, 128, (28, 28), 256, 3, 2, 1, 1, 1, "zeros"),
    "pointwise_1x1": Layer(2, 8, 256, (28, 28), 256, 1, 1, 0, 1, 1, "zeros"),
    "depthwise_3x3": Layer(2, 8, 128, (56, 56), 128, 3, 1, 1, 1, 128, "zeros"),
    "grouped_3x3_g32": Layer(2, 8, 128, (28, 28), 128, 3, 1, 1, 1, 32, "zeros"),
    "dilated_3x3_d2": Layer(2, 8, 64, (56, 56), 64, 3, 1, 2, 2, 1, "zeros"),
    "stem_7x7_s2": Layer(2, 8, 3, (224, 224), 64, 7, 2, 3, 1, 1, "zeros"),
    "reflect_3x3": Layer(2, 8, 64, (56, 56), 64, 3, 1, 1, 1, 1, "reflect"),
    "audio_1d_k9": Layer(1, 16, 32, (8000,), 64, 9, 1, 4, 1, 1, "zeros"),
    "video_3d": Layer(3, 2, 16, (8, 32, 32), 32, 3, 1, 1, 1, 1, "zeros"),
}


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    jax.block_until_ready(fn())  # warm-up (compiles)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def layer_arrays(layer: Layer, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((layer.n, layer.c_in, *layer.spatial), dtype=np.float32)
    w = rng.standard_normal((layer.c_out, layer.c_in // layer.groups,
                             *(layer.kernel,) * layer.rank), dtype=np.float32)
    b = rng.standard_normal(layer.c_out, dtype=np.float32)
    return jnp.asarray(x), jnp.asarray(w) * 0.1, jnp.asarray(b)


def conv_kwargs(layer: Layer) -> dict:
    return dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                groups=layer.groups, padding_mode=layer.mode)


def bench_jax(layer: Layer, impl: str, repeats: int, autodiff: str = "custom") -> dict:
    x, w, b = layer_arrays(layer)
    kw = conv_kwargs(layer)
    fwd = jax.jit(lambda x, w, b: jaxconv.conv(x, w, b, **kw, impl=impl, autodiff=autodiff))
    ct = jnp.ones(jax.eval_shape(fwd, x, w, b).shape, jnp.float32)
    grad = jax.jit(jax.grad(lambda x, w, b: jnp.vdot(fwd(x, w, b), ct), argnums=(0, 1, 2)))
    start = time.perf_counter()
    compiled = grad.lower(x, w, b).compile()
    compile_s = time.perf_counter() - start
    mem = compiled.memory_analysis()
    peak = None
    if mem is not None:
        peak = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                + mem.temp_size_in_bytes) / 2**20
    return dict(fwd_ms=median_ms(lambda: fwd(x, w, b), repeats),
                fwdbwd_ms=median_ms(lambda: grad(x, w, b), repeats),
                compile_s=compile_s, peak_mib=peak)


def bench_torch(layer: Layer, repeats: int) -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    x, w, b = (torch.from_numpy(np.asarray(a)) for a in layer_arrays(layer))
    cls = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)[layer.rank - 1]
    m = cls(layer.c_in, layer.c_out, layer.kernel, **conv_kwargs(layer))
    with torch.no_grad():
        m.weight.copy_(w)
        m.bias.copy_(b)
    x.requires_grad_()

    def fwd():
        with torch.no_grad():
            return m(x)

    def fwdbwd():
        m.zero_grad()
        x.grad = None
        m(x).sum().backward()

    def median(fn):
        fn()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return 1e3 * statistics.median(ts)

    return dict(fwd_ms=median(fwd), fwdbwd_ms=median(fwdbwd))


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="*", default=list(LAYERS), choices=list(LAYERS))
    parser.add_argument("--impls", nargs="*", default=list(jaxconv.available_impls()))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--autodiff", action="store_true",
                        help="also time the backward pass with JAX autodiff of the forward")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)

    rows = []
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, float32, "
          f"median of {args.repeats}")
    header = (f"{'layer':<17}{'impl':<14}{'fwd ms':>9}{'fwd+bwd ms':>12}"
              f"{'compile s':>11}{'peak MiB':>10}{'vs lax fwd':>12}{'vs lax f+b':>12}")
    print(header)
    print("-" * len(header))
    for name in args.layers:
        layer = LAYERS[name]
        results = {}
        variants = [(i, "custom") for i in args.impls]
        if args.autodiff:
            variants += [(i, "jax") for i in args.impls]
        for impl, mode in variants:
            label = impl if mode == "custom" else f"{impl}/autodiff"
            results[label] = bench_jax(layer, impl, args.repeats, mode)
        if not args.no_torch:
            t = bench_torch(layer, args.repeats)
            if t is not None:
                results["torch"] = dict(t, compile_s=None, peak_mib=None)
        base = results.get("lax")
        for label, r in results.items():
            ratio_f = ratio_b = None
            if base is not None:
                ratio_f = r["fwd_ms"] / base["fwd_ms"]
                ratio_b = r["fwdbwd_ms"] / base["fwdbwd_ms"]
            print(f"{name:<17}{label:<14}{fmt(r['fwd_ms']):>9}{fmt(r['fwdbwd_ms']):>12}"
                  f"{fmt(r['compile_s'], '.2f'):>11}{fmt(r['peak_mib']):>10}"
                  f"{fmt(ratio_f, '.2f'):>12}{fmt(ratio_b, '.2f'):>12}")
            rows.append(dict(layer=name, variant=label, **r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
