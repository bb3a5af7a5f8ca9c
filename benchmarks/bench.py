"""Benchmark jaxconv's impls on a suite of typical layers and print a table.

    python benchmarks/bench.py                       # every layer, every impl
    python benchmarks/bench.py --layers depthwise_3x3 --repeats 10
    python benchmarks/bench.py --json results.json   # also write the rows

For each layer and impl: forward time, forward+backward time (the value and
gradient of ``sum(y * ct)`` w.r.t. input, weight and bias), both under ``jax.jit`` after a
warm-up call, as the median of ``--repeats`` runs; the compile time of the
forward+backward function; and the peak memory XLA plans for it (arguments,
outputs and temporaries, from ``compiled.memory_analysis()``). With
``--autodiff`` the backward pass is also timed with JAX's autodiff of the same
forward (``autodiff="jax"``) to compare with jaxconv's hand-written rules.
PyTorch (if installed) is timed on the same layer for reference.

A second table times ``conv_transpose`` (two upsampling layers) per impl
against ``jax.lax.conv_transpose`` (JAX autodiff for its backward) and
PyTorch's ``conv_transposeNd``; every variant is first checked to compute the
same output. Timings on a shared machine are noisy: compare rows of one run,
not across runs.
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


def time_jax(fwd: Callable, *args: jax.Array, repeats: int) -> dict:
    """Forward, and forward+backward (value and grad of ``<fwd(*args), ct>``) timings.

    The value keeps the forward in the program: the gradient of a loss linear in
    the output alone would not need it, and XLA would drop it.
    """
    fwd = jax.jit(fwd)
    ct = jnp.ones(jax.eval_shape(fwd, *args).shape, args[0].dtype)
    grad = jax.jit(jax.value_and_grad(lambda *a: jnp.vdot(fwd(*a), ct),
                                      argnums=tuple(range(len(args)))))
    start = time.perf_counter()
    compiled = grad.lower(*args).compile()
    compile_s = time.perf_counter() - start
    mem = compiled.memory_analysis()
    peak = None
    if mem is not None:
        peak = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                + mem.temp_size_in_bytes) / 2**20
    return dict(fwd_ms=median_ms(lambda: fwd(*args), repeats),
                fwdbwd_ms=median_ms(lambda: grad(*args), repeats),
                compile_s=compile_s, peak_mib=peak)


def bench_jax(layer: Layer, impl: str, repeats: int, autodiff: str = "custom") -> dict:
    kw = conv_kwargs(layer)
    return time_jax(lambda x, w, b: jaxconv.conv(x, w, b, **kw, impl=impl, autodiff=autodiff),
                    *layer_arrays(layer), repeats=repeats)


def time_torch(module, x, repeats: int) -> dict:
    """Forward (no grad) and forward+backward timings of a torch module."""
    import torch

    x = x.detach().clone().requires_grad_()

    def fwd():
        with torch.no_grad():
            return module(x)

    def fwdbwd():
        module.zero_grad()
        x.grad = None
        module(x).sum().backward()

    def median(fn):
        fn()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return 1e3 * statistics.median(ts)

    return dict(fwd_ms=median(fwd), fwdbwd_ms=median(fwdbwd), compile_s=None, peak_mib=None)


def torch_module(cls_name: str, layer, weight, bias, **kwargs):
    import torch

    cls = getattr(torch.nn, f"{cls_name}{layer.rank}d")
    m = cls(layer.c_in, layer.c_out, layer.kernel, **kwargs)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(np.array(weight)))
        m.bias.copy_(torch.from_numpy(np.array(bias)))
    return m


def bench_torch(layer: Layer, repeats: int) -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    x, w, b = layer_arrays(layer)
    m = torch_module("Conv", layer, w, b, **conv_kwargs(layer))
    return time_torch(m, torch.from_numpy(np.array(x)), repeats)


class TLayer(NamedTuple):
    rank: int
    n: int
    c_in: int
    spatial: tuple[int, ...]
    c_out: int
    kernel: int
    stride: int
    padding: int
    output_padding: int


# Upsampling decoder layers for conv_transpose (#5).
TRANSPOSE_LAYERS = {
    "decoder_up2x": TLayer(2, 8, 64, (28, 28), 32, 4, 2, 1, 0),
    "decoder_up2x_op": TLayer(2, 8, 64, (28, 28), 32, 3, 2, 1, 1),
    "video_up2x_3d": TLayer(3, 2, 32, (8, 16, 16), 16, 4, 2, 1, 0),
}


def transpose_arrays(layer: TLayer, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((layer.n, layer.c_in, *layer.spatial), dtype=np.float32)
    w = rng.standard_normal((layer.c_in, layer.c_out, *(layer.kernel,) * layer.rank),
                            dtype=np.float32)
    b = rng.standard_normal(layer.c_out, dtype=np.float32)
    return jnp.asarray(x), jnp.asarray(w) * 0.1, jnp.asarray(b)


def transpose_variants(layer: TLayer, impls) -> dict[str, Callable]:
    kw = dict(stride=layer.stride, padding=layer.padding, output_padding=layer.output_padding)
    variants = {i: (lambda x, w, b, i=i: jaxconv.conv_transpose(x, w, b, **kw, impl=i))
                for i in impls}
    spatial = "DHW"[-layer.rank:]
    edge = layer.kernel - 1 - layer.padding
    pads = [(edge, edge + layer.output_padding)] * layer.rank

    def lax_conv_transpose(x, w, b):
        y = jax.lax.conv_transpose(x, w, (layer.stride,) * layer.rank, pads,
                                   dimension_numbers=("NC" + spatial, "OI" + spatial,
                                                      "NC" + spatial),
                                   transpose_kernel=True)
        return y + b.reshape((-1,) + (1,) * layer.rank)

    variants["lax.conv_transpose"] = lax_conv_transpose
    return variants


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def print_rows(name: str, results: dict, base_key: str, rows: list) -> None:
    base = results.get(base_key)
    for label, r in results.items():
        ratio_f = ratio_b = None
        if base is not None:
            ratio_f = r["fwd_ms"] / base["fwd_ms"]
            ratio_b = r["fwdbwd_ms"] / base["fwdbwd_ms"]
        print(f"{name:<17}{label:<19}{fmt(r['fwd_ms']):>9}{fmt(r['fwdbwd_ms']):>12}"
              f"{fmt(r['compile_s'], '.2f'):>11}{fmt(r['peak_mib']):>10}"
              f"{fmt(ratio_f, '.2f'):>10}{fmt(ratio_b, '.2f'):>10}")
        rows.append(dict(layer=name, variant=label, **r))


def header(base_key: str) -> None:
    line = (f"{'layer':<17}{'variant':<19}{'fwd ms':>9}{'fwd+bwd ms':>12}"
            f"{'compile s':>11}{'peak MiB':>10}{'fwd/' + base_key:>10}{'f+b/' + base_key:>10}")
    print(line)
    print("-" * len(line))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="*", default=list(LAYERS), choices=list(LAYERS))
    parser.add_argument("--transpose-layers", nargs="*", default=list(TRANSPOSE_LAYERS),
                        choices=list(TRANSPOSE_LAYERS))
    parser.add_argument("--impls", nargs="*", default=list(jaxconv.available_impls()))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--autodiff", action="store_true",
                        help="also time the backward pass with JAX autodiff of the forward")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--plot", help="write a bar chart of fwd+bwd times to this PNG "
                        "(needs matplotlib: pip install -e '.[bench]')")
    args = parser.parse_args(argv)

    rows: list = []
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, float32, "
          f"median of {args.repeats} runs after a warm-up; peak = XLA's planned "
          "argument + output + temp bytes of the fwd+bwd program")
    if args.layers:
        print("\nconv (ratios against impl='lax' with its hand-written rules)")
        header("lax")
    for name in args.layers:
        layer = LAYERS[name]
        results = {}
        variants = [(i, "custom") for i in args.impls]
        if args.autodiff:
            variants += [(i, "jax") for i in args.impls]
        for impl, mode in variants:
            label = impl if mode == "custom" else f"{impl}/autodiff"
            results[label] = bench_jax(layer, impl, args.repeats, mode)
        if not args.no_torch and (t := bench_torch(layer, args.repeats)) is not None:
            results["torch"] = t
        print_rows(name, results, "lax", rows)

    if args.transpose_layers:
        print("\nconv_transpose (ratios against lax.conv_transpose + JAX autodiff)")
        header("lct")
    for name in args.transpose_layers:
        layer = TRANSPOSE_LAYERS[name]
        arrays = transpose_arrays(layer)
        variants = transpose_variants(layer, args.impls)
        outs = {k: np.asarray(jax.jit(f)(*arrays)) for k, f in variants.items()}
        ref = outs["lax.conv_transpose"]
        for k, y in outs.items():  # the rows time the same computation
            np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max(),
                                       err_msg=k)
        results = {k: time_jax(f, *arrays, repeats=args.repeats) for k, f in variants.items()}
        if not args.no_torch:
            try:
                import torch
            except ImportError:
                torch = None
            if torch is not None:
                x, w, b = arrays
                m = torch_module("ConvTranspose", layer, w, b, stride=layer.stride,
                                 padding=layer.padding, output_padding=layer.output_padding)
                with torch.no_grad():
                    np.testing.assert_allclose(m(torch.from_numpy(np.array(x))).numpy(), ref,
                                               rtol=1e-3, atol=1e-3 * np.abs(ref).max())
                results["torch"] = time_torch(m, torch.from_numpy(np.array(x)), args.repeats)
        results = {("lct" if k == "lax.conv_transpose" else k): v for k, v in results.items()}
        print_rows(name, results, "lct", rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if args.plot:
        plot(rows, args.plot)


def plot(rows: list, path: str) -> None:
    """Grouped bars: forward+backward ms per layer and variant, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(r["layer"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    times = {(r["layer"], r["variant"]): r["fwdbwd_ms"] for r in rows}
    width = 0.8 / len(variants)
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(layers)), 4.5))
    for i, variant in enumerate(variants):
        xs = [j + i * width for j, layer in enumerate(layers) if (layer, variant) in times]
        ys = [times[layer, variant] for layer in layers if (layer, variant) in times]
        ax.bar(xs, ys, width, label=variant)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(layers))], layers, rotation=30,
                  ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("forward + backward, ms (log)")
    ax.set_title(f"jaxconv on {jax.devices()[0].platform}, float32")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
