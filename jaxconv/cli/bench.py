"""``jaxconv bench``: time every impl, auto, raw lax and PyTorch on a layer suite.

    python -m jaxconv bench                              # the whole suite
    python -m jaxconv bench --layers depthwise_3x3 --repeats 10
    python -m jaxconv bench --layer "2d N=8 C=64 HW=56 O=64 k=3 s=1 p=1 g=1"
    python -m jaxconv bench --list                       # the suite's layers, their shapes
    python -m jaxconv bench --kernels                    # per-kernel times, auto's picks
    python -m jaxconv bench --explain                    # what auto picks and why
    python -m jaxconv bench --xla-cpu-conv eigen         # XLA's Eigen CPU convolutions
    python -m jaxconv bench --csv out.csv --json out.json --plot out.png --markdown out.md
    python -m jaxconv bench --json - > out.json          # '-': standard output (the tables
                                                         # go to standard error then)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import os
import statistics
import sys

import jax

from jaxconv import _auto
from jaxconv import benchmark as B
from jaxconv._auto import KERNELS
from jaxconv._registry import available_impls
from jaxconv._xla_options import eigen_conv_options
from jaxconv.cli import _util
from jaxconv.cli._util import progress_bar, table


def add_parser(commands) -> None:
    p = commands.add_parser("bench", help="benchmark impls, auto, raw lax and PyTorch",
                            description=_util.description(__doc__),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", nargs="*", default=None, choices=list(B.LAYERS),
                   metavar="NAME", help="suite layers to run (--list shows them with their "
                                        "shapes; default: all, unless --layer is given)")
    p.add_argument("--layer", action="append", default=[], metavar="SPEC",
                   help='a layer of your own, e.g. "2d N=8 C=64 HW=56 O=64 k=3 s=1 p=1 g=1" '
                        "(repeatable; keys N C O k s p d g mode, L / HW / DHW / S=8x32x32)")
    p.add_argument("--impls", nargs="*", default=None, help="impls (default: all registered)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed runs of each variant, at least (default: 5)")
    p.add_argument("--min-time", type=float, default=B.DEFAULT_MIN_TIME, metavar="SECONDS",
                   help=f"time each variant further, up to {B.MAX_ROUNDS} runs, until its "
                        f"timed runs add up to this many seconds (default: "
                        f"{B.DEFAULT_MIN_TIME:g}; 0 for exactly --repeats runs): fast "
                        "programs' medians of a few runs are noisy")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--list", action="store_true",
                      help="only list the layers (the suite's, or those --layers and --layer "
                           "name) with their shapes (no timing)")
    mode.add_argument("--explain", action="store_true",
                      help="only print what auto picks for each layer, and why (no timing)")
    mode.add_argument("--kernels", action="store_true",
                      help="time each impl's forward / input_grad / weight_grad kernel alone "
                           "and show what auto picks next to the fastest (to re-derive auto's "
                           "rules)")
    mode.add_argument("--per-example", action="store_true",
                      help="time per-example gradients (vmap of grad over unbatched calls) of "
                           "a small CNN against its batched gradient, for every impl and auto")
    p.add_argument("--xla-cpu-conv", choices=("default", "eigen"), default="default",
                   help="how XLA's CPU backend runs convolutions: its default (YNNPACK for "
                        "most 2-d ones) or Eigen (jaxconv.eigen_conv_options(), passed to "
                        "every JAX program's compile, raw-lax's too)")
    p.add_argument("--csv", metavar="PATH",
                   help="write the rows to this CSV file ('-': standard output)")
    p.add_argument("--json", metavar="PATH",
                   help="write the rows to this JSON file ('-': standard output)")
    p.add_argument("--markdown", metavar="PATH",
                   help="write the tables as Markdown to this file ('-': standard output)")
    p.add_argument("--plot", metavar="PATH",
                   help="write a PNG of f+b time relative to PyTorch per layer "
                        "(needs matplotlib: pip install 'jaxconv[bench]')")
    p.set_defaults(run=run)


def _conv_setting(compiler_options) -> str:
    """The header's words for how XLA runs CPU convolutions in this run."""
    if compiler_options:
        return f"Eigen (compiler_options={compiler_options})"
    flags = os.environ.get("XLA_FLAGS", "")
    if "ynn_fusion_type" in flags:
        return f"as XLA_FLAGS={flags!r} says"
    return "XLA's default (YNNPACK for most 2-d ones)"


def _malloc_setting() -> str:
    """The header's words for this process's C allocator settings (:func:`B.malloc_settings`)."""
    settings = B.malloc_settings()
    if not settings:
        return "malloc: the C library's defaults"
    return "malloc: " + ", ".join(f"{k}={v}" for k, v in settings.items())


def _sampling(args) -> str:
    """The header's words for how many runs each median is taken over."""
    text = f"median of {args.repeats} interleaved runs after a warm-up"
    if args.min_time > 0:
        text = (f"median of at least {args.repeats} interleaved runs after a warm-up, and of "
                f"up to {B.MAX_ROUNDS} for a variant until its runs add up to "
                f"{args.min_time:g} s")
    return text


def _fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def _layers(args) -> dict[str, B.Layer]:
    layers = {}
    if args.layers is not None or not args.layer:
        layers.update({n: B.LAYERS[n] for n in (args.layers or B.LAYERS)})
    for text in args.layer:
        layers[text] = B.parse_layer(text)
    return layers


def _explain_header() -> str:
    """What auto's picks depend on (:func:`jaxconv._auto.explain_auto`): the backend and,
    on a CPU, AVX-512. Nothing is timed, so nothing about timing."""
    backend = jax.devices()[0]
    text = (f"what auto picks and why: jax {jax.__version__} on {backend.platform} "
            f"({backend.device_kind})")
    if backend.platform == "cpu":
        text += f", {'with' if _auto.cpu_has_avx512() else 'without'} AVX-512"
    return text + "."


def _shape_rows(layers: dict[str, B.Layer]) -> tuple[list[str], list[list[str]], list[dict]]:
    """The layers' shapes: table header, rows, and records for --json / --csv."""
    header = ["layer", "rank", "batch", "in ch", "out ch", "spatial", "kernel", "stride",
              "padding", "dilation", "groups", "padding mode", "dtype"]
    rows, records = [], []
    for name, layer in layers.items():
        spatial = "x".join(map(str, layer.spatial))
        kernel = "x".join([str(layer.kernel)] * layer.rank)
        rows.append([name, f"{layer.rank}d", str(layer.n), str(layer.c_in), str(layer.c_out),
                     spatial, kernel, str(layer.stride), str(layer.padding),
                     str(layer.dilation), str(layer.groups), layer.mode, layer.dtype])
        records.append(dict(layer=name, **dataclasses.asdict(layer),
                            input_shape=list(layer.input_shape),
                            weight_shape=list(layer.weight_shape), spec=layer.describe()))
    return header, rows, records


def _run_list(args, layers) -> int:
    header, rows, records = _shape_rows(layers)
    text, md = table(header, rows)
    title = ("layers (channels-first; kernel, stride, padding and dilation the same on every "
             "spatial axis; --layer takes the spec, e.g. "
             f"{next(iter(layers.values())).describe()!r})")
    print(title, file=args.out)
    print(text, file=args.out)
    _write_markdown(args.markdown, [title, md])
    _write_rows(args, records)
    return 0


def _run_explain(args, layers) -> int:
    header = _explain_header()
    rows, records = [], []
    for name, layer in layers.items():
        choice = B.auto_choice(layer)
        found = choice.rows()
        if choice.dead_taps:  # "dead taps: kernel (3, 3) cropped to (1, 1) ..."
            found.append(("dead taps", "", choice.dead_taps.removeprefix("dead taps: ")))
        rows += [[name, k, i, why] for k, i, why in found]
        records += [dict(layer=name, kernel=k, auto=i, why=why) for k, i, why in found]
    text, md = table(["layer", "kernel", "auto picks", "why"], rows)
    print(header, file=args.out)
    print(text, file=args.out)
    _write_markdown(args.markdown, [header, md])
    _write_rows(args, records)
    return 0


def run(args) -> int:
    outputs = dict(csv=args.csv, json=args.json, markdown=args.markdown)
    clash = _util.stdout_clash("bench", **outputs)
    if clash:
        print(clash, file=sys.stderr)
        return 2
    args.out = _util.human_stream(**outputs)
    try:
        layers = _layers(args)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    if args.list:
        return _run_list(args, layers)
    impls = list(args.impls or available_impls())
    unknown = [i for i in impls if i not in available_impls()]
    if unknown:
        print(f"jaxconv bench: unknown impls {unknown}; choose from {available_impls()}.",
              file=sys.stderr)
        return 2
    if args.repeats < 1:
        print(f"jaxconv bench: --repeats must be at least 1, got {args.repeats}.",
              file=sys.stderr)
        return 2
    if not (math.isfinite(args.min_time) and args.min_time >= 0):
        print(f"jaxconv bench: --min-time must be a finite number of seconds >= 0, got "
              f"{args.min_time}.", file=sys.stderr)
        return 2
    backend = jax.devices()[0]
    args.compiler_options = (eigen_conv_options() if args.xla_cpu_conv == "eigen" else None)
    out_md = [f"jax {jax.__version__} on {backend.platform} ({backend.device_kind}), float32 "
              "(complex64 where a layer says so), "
              f"{_sampling(args)}; XLA CPU convolutions: "
              f"{_conv_setting(args.compiler_options)}; {_malloc_setting()}."]
    if args.explain:
        return _run_explain(args, layers)
    print(out_md[0], file=args.out)
    if args.kernels:
        return _run_kernels(args, layers, impls, out_md)
    if args.per_example:
        return _run_per_example(args, impls, out_md)
    return _run_layers(args, layers, impls, out_md)


def _run_kernels(args, layers, impls, out_md) -> int:
    rows, records = [], []
    for name in progress_bar(list(layers), "kernels"):
        layer = layers[name]
        times = B.bench_kernels(layer, impls, args.repeats, args.compiler_options,
                                args.min_time)
        choice = B.auto_choice(layer)
        for i, kernel in enumerate(KERNELS):
            per = {impl: times[impl][kernel] for impl in impls}
            best = min(per, key=lambda impl: per[impl])
            # timed alone, so a forward is not differentiated: auto's inference pick
            picked = (choice.inference or choice.forward) if i == 0 else choice.impls[i]
            ratio = per[picked] / per[best] if picked in per else None
            rows.append([name, kernel, *(_fmt(per[impl], ".1f") for impl in impls), best,
                         picked, _fmt(ratio)])
            records.append(dict(layer=name, kernel=kernel, **per, fastest=best, auto=picked))
    text, md = table(["layer", "kernel", *(f"{i} ms" for i in impls), "fastest", "auto",
                       "auto/fastest"], rows)
    print(text, file=args.out)
    _write_markdown(args.markdown, out_md + [md])
    _write_rows(args, records)
    return 0


def _run_per_example(args, impls, out_md) -> int:
    times = B.bench_per_example([*impls, "auto"], repeats=args.repeats,
                                compiler_options=args.compiler_options,
                                min_time=args.min_time)
    rows = [[impl, _fmt(a, ".1f"), _fmt(b, ".1f"), _fmt(b / a)] for impl, (a, b) in times.items()]
    text, md = table(["impl", "batched grad ms", "vmap(grad) ms", "ratio"], rows)
    title = ("small CNN (3x3, strided 3x3, depthwise 3x3, 1x1; batch 64 of 3x32x32): "
             "per-example gradients vs the batched gradient")
    print(title, file=args.out)
    print(text, file=args.out)
    _write_markdown(args.markdown, out_md + [title, md])
    _write_rows(args, [dict(impl=i, batched_ms=a, per_example_ms=b) for i, (a, b) in
                       times.items()])
    return 0


def _measured(value: float | None) -> float:
    """A timing :func:`jaxconv.benchmark.bench_layer` filled in (it fills every one)."""
    assert value is not None
    return value


def _run_layers(args, layers, impls, out_md) -> int:
    rows: list[list[str]] = []
    records: list[dict] = []
    summary: dict[str, list] = {}
    matmuls: list[float] = []
    for name in progress_bar(list(layers), "layers"):
        layer = layers[name]
        timings = B.bench_layer(layer, impls, args.repeats, with_torch=not args.no_torch,
                                compiler_options=args.compiler_options,
                                min_time=args.min_time, matmul=True)
        mm_gflops = B.matmul_gflop() / (_measured(timings.pop(B.MATMUL).fwd_ms) * 1e-3)
        matmuls.append(mm_gflops)
        fwd = {v: _measured(t.fwd_ms) for v, t in timings.items()}
        fb = {v: _measured(t.fwdbwd_ms) for v, t in timings.items()}
        torch = "torch" in timings
        best = min((v for v in timings if v in impls), key=lambda v: fb[v])
        best_fwd = min((v for v in timings if v in impls), key=lambda v: fwd[v])
        for variant, t in timings.items():
            rf = fwd[variant] / fwd["torch"] if torch else None
            rb = fb[variant] / fb["torch"] if torch else None
            rows.append([name, variant, _fmt(t.fwd_ms, ".1f"), _fmt(t.fwdbwd_ms, ".1f"),
                         _fmt(rf), _fmt(rb), _fmt(t.compile_s), _fmt(t.peak_mib, ".1f")])
            records.append(dict(layer=name, variant=variant, **dataclasses.asdict(t),
                                matmul_gflops=mm_gflops))
            if rb is not None:
                summary.setdefault(variant, []).append(rb)
        auto_gflops = B.layer_gflop(layer) / (fwd["auto"] * 1e-3)
        summary.setdefault("_auto_vs_best", []).append(
            (name, _best_name(best_fwd, timings, "fwd_program"),
             fwd["auto"] / fwd[best_fwd],
             _best_name(best, timings, "fwdbwd_program"),
             fb["auto"] / fb[best],
             fwd["auto"] / fwd["raw-lax"], fb["auto"] / fb["raw-lax"],
             fb["raw-lax"] / fb["auto"], auto_gflops, mm_gflops,
             100 * auto_gflops / mm_gflops))
    text, md = table(["layer", "variant", "fwd ms", "f+b ms", "fwd/torch", "f+b/torch",
                       "compile s", "peak MiB"], rows)
    print(text, file=args.out)
    out_md.append(md)
    per_layer = summary.pop("_auto_vs_best")
    rows2 = [[n, bf, _fmt(a), bb, _fmt(b), _fmt(c), _fmt(d), _fmt(e, ".1f"), _fmt(f, ".0f"),
              _fmt(g, ".0f"), _fmt(h, ".0f")]
             for n, bf, a, bb, b, c, d, e, f, g, h in per_layer]
    text2, md2 = table(["layer", "best fwd", "auto/best fwd", "best f+b", "auto/best f+b",
                         "auto/raw-lax fwd", "auto/raw-lax f+b", "speed-up vs raw-lax",
                         "auto fwd GFLOP/s", "matmul GFLOP/s", "auto fwd % of matmul"], rows2)
    title2 = (f"auto against the best single impl and raw lax; best: the fastest impl, "
              f"'= same program' where auto compiled to the same XLA program "
              f"(jaxconv.benchmark.program_id), so their ratio is the noise between two "
              f"timings of one program; matmul: this machine's float32 "
              f"{B.MATMUL_SIZE}x{B.MATMUL_SIZE} matmul, timed in turns with the layer's "
              f"forwards (median over layers: {statistics.median(matmuls):.0f} GFLOP/s)")
    print(f"\n{title2}", file=args.out)
    print(text2, file=args.out)
    out_md += [title2, md2]
    if summary:
        rows3 = [[v, _fmt(B.geomean(r)), _fmt(max(r))] for v, r in summary.items()
                 if len(r) == len(layers)]
        text3, md3 = table(["variant", "geomean f+b/torch", "worst f+b/torch"], rows3)
        print("\nover all layers", file=args.out)
        print(text3, file=args.out)
        out_md += ["over all layers", md3]
    _write_markdown(args.markdown, out_md)
    _write_rows(args, records)
    if args.plot:
        plot(records, args.plot)
    return 0


def _best_name(best: str, timings: dict[str, B.Timing], field: str) -> str:
    """`best`, marked where auto's `field` program is the same as its."""
    same = getattr(timings["auto"], field) == getattr(timings[best], field)
    return f"{best} = same program" if same else best


def _write_markdown(path, parts) -> None:
    _util.write_text(path, "\n\n".join(parts) + "\n")


def _write_rows(args, records: list[dict]) -> None:
    """The rows as JSON and CSV, into files or (``-``) to standard output."""
    _util.write_text(args.json, json.dumps(records, indent=1) + "\n")
    if records:
        keys = list(dict.fromkeys(k for r in records for k in r))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, keys)
        writer.writeheader()
        writer.writerows(records)
        _util.write_text(args.csv, text.getvalue())


def plot(records: list[dict], path: str) -> None:
    """Bars: forward+backward time relative to PyTorch (or raw lax), per layer, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = {(r["layer"], r["variant"]): r["fwdbwd_ms"] for r in records}
    layers = list(dict.fromkeys(r["layer"] for r in records))
    variants = [v for v in dict.fromkeys(r["variant"] for r in records) if v != "torch"]
    base = "torch" if any(v == "torch" for _, v in times) else "raw-lax"
    width = 0.8 / len(variants)
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(layers)), 4.5))
    for i, v in enumerate(variants):
        xs = [j + i * width for j, n in enumerate(layers) if (n, v) in times]
        ys = [times[n, v] / times[n, base] for n in layers if (n, v) in times]
        ax.bar(xs, ys, width, label=v)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(layers))], layers, rotation=35,
                  ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel(f"forward + backward time / {base} (log)")
    ax.set_title(f"jaxconv on {jax.devices()[0].platform} (lower is better)")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
