"""Real networks' convolutions: auto's forward against PyTorch's and raw lax's, summed per network.

    python benchmarks/networks.py                    # every network in networks.json
    python benchmarks/networks.py --networks resnet50 convnext_tiny --sizes 160
    python benchmarks/networks.py --fwdbwd           # forward+backward too
    python benchmarks/networks.py --markdown PATH --json PATH
    python benchmarks/networks.py --quick            # one network's first layers, one run (CI)
    python benchmarks/networks.py --extract          # re-derive networks.json (needs torchvision)

A layer suite (``python -m jaxconv bench``) says how each kind of layer does; this
says what a whole network's convolutions cost, with each kind weighted as the
network weights it. ``benchmarks/networks.json`` lists every ``nn.Conv2d`` call of
well-known torchvision architectures (randomly initialised, eval mode) at two input
sizes, with its input shape, weight shape, stride, padding, dilation, groups and
bias, and how many calls share that configuration: ``--extract`` writes it with
forward hooks on a forward pass. Each distinct configuration is timed once, every
variant's forward (``jax.jit`` of ``jaxconv.conv2d(impl="auto")`` and of
``lax.conv_general_dilated`` plus the bias; PyTorch's ``F.conv2d`` under
``torch.no_grad()``) in turns (:func:`jaxconv.benchmark.interleaved_samples`), and
a network's time is the sum over its calls of the median. With ``--fwdbwd``,
``jax.value_and_grad`` of the output against a fixed cotangent with respect to input,
weight and bias, and PyTorch's ``backward``, are timed the same way.

Only the convolutions are timed: not the batch norms, activations and pooling
between them, whose cost is the same whichever convolution library runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxconv
from jaxconv.benchmark import MAX_ROUNDS, geomean, interleaved_samples, torch_available
from jaxconv.cli._util import table

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "networks.json")

# torchvision architectures and the input sizes and batches they are listed at: small
# inputs (64x64; late stages reach 2x2 maps and dilated layers outgrow them) and 160x160.
NETWORKS = ("resnet18", "resnet50", "resnext50_32x4d", "vgg11", "mobilenet_v2",
            "efficientnet_b0", "densenet121", "regnet_y_400mf", "convnext_tiny",
            "deeplabv3_resnet50")
SIZES = {64: 8, 160: 2}  # input side -> batch
QUICK_LAYERS = 3


def _import_torchvision():
    """torchvision. Its PyPI wheel is built for CUDA, and its compiled operators
    (detection ops) fail to register against a CPU-only torch; the model definitions
    need none of them, so their fake-tensor registrations are skipped."""
    import types

    sys.modules.setdefault("torchvision._meta_registrations",
                           types.ModuleType("torchvision._meta_registrations"))
    import torchvision

    return torchvision


def _torchvision_model(name: str):
    """A randomly initialised torchvision model."""
    torchvision = _import_torchvision()
    if name.startswith("deeplabv3"):
        return getattr(torchvision.models.segmentation, name)(
            weights=None, weights_backbone=None, aux_loss=False)
    kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
    return getattr(torchvision.models, name)(weights=None, **kwargs)


def extract(names: Sequence[str] = NETWORKS, sizes: dict[int, int] = SIZES) -> dict:
    """Every ``nn.Conv2d`` call of each network's forward at each size (``networks.json``)."""
    import torch

    torchvision = _import_torchvision()
    out: dict[str, Any] = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                           "networks": {}}
    for name in names:
        model = _torchvision_model(name).eval()
        for size, batch in sizes.items():
            calls: dict[str, dict] = {}

            def hook(module, args, _out, calls=calls, batch=batch, name=name):
                padding = module.padding
                if isinstance(padding, str) or module.padding_mode != "zeros":
                    raise ValueError(
                        f"{name}: a Conv2d with padding={padding!r}, padding_mode="
                        f"{module.padding_mode!r}; networks.json lists explicit zero padding "
                        "only (raw lax and F.conv2d take no padding mode)")
                layer = dict(input=[batch, *args[0].shape[1:]], weight=list(module.weight.shape),
                             stride=list(module.stride), padding=list(padding),
                             dilation=list(module.dilation), groups=module.groups,
                             padding_mode=module.padding_mode, bias=module.bias is not None)
                key = json.dumps(layer, sort_keys=True)
                calls.setdefault(key, dict(layer, count=0))["count"] += 1

            handles = [m.register_forward_hook(hook) for m in model.modules()
                       if isinstance(m, torch.nn.Conv2d)]
            with torch.no_grad():
                model(torch.zeros(1, 3, size, size))
            for h in handles:
                h.remove()
            out["networks"][f"{name}@{size}"] = dict(model=name, size=size, batch=batch,
                                                    layers=list(calls.values()))
    return out


def _dumps(data: dict) -> str:
    """``networks.json``'s text: one line per layer."""
    nets = ",\n".join(
        f" {json.dumps(name)}: {{" + ", ".join(
            f"{json.dumps(k)}: {json.dumps(v)}" for k, v in spec.items() if k != "layers")
        + ', "layers": [\n' + ",\n".join(f"  {json.dumps(lay)}" for lay in spec["layers"])
        + "]}" for name, spec in data["networks"].items())
    head = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in data.items()
                     if k != "networks")
    return "{" + head + ', "networks": {\n' + nets + "}}"


def _results_json(head: str, nets: dict, per_layer: dict[str, dict[str, float]]) -> str:
    """``--json``'s text: the header, which networks ran (their layers are in
    ``networks.json``), and the median seconds per distinct convolution, one per line."""
    ran = {name: {k: v for k, v in spec.items() if k != "layers"} for name, spec in nets.items()}
    times = ",\n".join(f"  {json.dumps(key)}: {json.dumps(t)}" for key, t in per_layer.items())
    return (f'{{"header": {json.dumps(head)},\n "networks": {json.dumps(ran)},\n'
            f' "times": {{\n{times}}}}}')


def _key(layer: dict) -> str:
    return json.dumps({k: v for k, v in layer.items() if k != "count"}, sort_keys=True)


def _arrays(layer: dict, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(layer["input"], np.float32)
    w = rng.standard_normal(layer["weight"], np.float32) / math.sqrt(
        math.prod(layer["weight"][1:]))
    b = rng.standard_normal(layer["weight"][0], np.float32) if layer["bias"] else None
    return x, w, b


def _jax_fns(layer: dict):
    """``{variant: f(x, w, b)}``: auto and raw lax (the bias broadcast and added)."""
    kw = dict(stride=tuple(layer["stride"]), padding=tuple(layer["padding"]),
              dilation=tuple(layer["dilation"]), groups=layer["groups"],
              padding_mode=layer["padding_mode"])

    def auto(x, w, b):
        return jaxconv.conv2d(x, w, b, **kw, impl="auto")

    def raw_lax(x, w, b):
        y = lax.conv_general_dilated(x, w, kw["stride"], [(p, p) for p in kw["padding"]],
                                     rhs_dilation=kw["dilation"],
                                     feature_group_count=kw["groups"],
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y if b is None else y + b[:, None, None]

    return {"auto": auto, "raw-lax": raw_lax}


def _value_and_grad(f, ct):
    def loss(x, w, b):
        return jnp.vdot(f(x, w, b), ct)
    return jax.value_and_grad(loss, argnums=(0, 1, 2))


def _torch_runners(layer: dict, arrays, ct, fwdbwd: bool):
    import torch
    import torch.nn.functional as F

    x, w, b = (None if a is None else torch.from_numpy(np.array(a)) for a in arrays)
    kw = dict(stride=tuple(layer["stride"]), padding=tuple(layer["padding"]),
              dilation=tuple(layer["dilation"]), groups=layer["groups"])

    def fwd():
        with torch.no_grad():
            return F.conv2d(x, w, b, **kw)

    runners = {("torch", "fwd"): fwd}
    if fwdbwd:
        xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
        bg = None if b is None else b.clone().requires_grad_()
        tct = torch.from_numpy(np.array(ct))

        def fb():
            for t in (xg, wg, bg):
                if t is not None:
                    t.grad = None
            F.conv2d(xg, wg, bg, **kw).backward(tct)

        runners[("torch", "f+b")] = fb
    return runners


def time_layer(layer: dict, repeats: int, min_time: float, fwdbwd: bool,
               with_torch: bool) -> dict[str, float]:
    """Median seconds per ``variant fwd`` / ``variant f+b`` of one layer configuration."""
    arrays = _arrays(layer)
    x, w, b = (None if a is None else jnp.asarray(a) for a in arrays)
    fns = _jax_fns(layer)
    ref = np.asarray(jax.jit(fns["raw-lax"])(x, w, b))
    ct = jnp.asarray(np.random.default_rng(1).standard_normal(ref.shape, np.float32))
    runners: dict[tuple[str, str], Any] = {}
    for name, f in fns.items():
        jf = jax.jit(f)
        got = np.asarray(jf(x, w, b))
        scale = np.abs(ref).max() or 1.0
        if not np.abs(got - ref).max() <= 1e-4 * scale:
            raise RuntimeError(f"{name}'s forward differs from lax's on {_describe(layer)}: "
                               f"max |difference| {np.abs(got - ref).max():.3g} > 1e-4 x "
                               f"max |lax| {scale:.3g}")
        runners[(name, "fwd")] = (lambda jf=jf: jax.block_until_ready(jf(x, w, b)))
        if fwdbwd:
            jg = jax.jit(_value_and_grad(f, ct))
            runners[(name, "f+b")] = (lambda jg=jg: jax.block_until_ready(jg(x, w, b)))
    if with_torch:
        runners.update(_torch_runners(layer, arrays, ct, fwdbwd))
    times = interleaved_samples(runners, repeats, min_time)
    return {f"{v} {k}": float(np.median(t)) for (v, k), t in times.items()}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table (:func:`jaxconv.cli._util.table`: numeric columns right-aligned)."""
    return table(header, [[str(cell) for cell in row] for row in rows])[1]


def report(data: dict, per_layer: dict[str, dict[str, float]], fwdbwd: bool,
           with_torch: bool) -> str:
    """The per-network sums, their geomeans per input size, and the layers where auto
    loses the most time to PyTorch (markdown)."""
    kinds = ["fwd", "f+b"] if fwdbwd else ["fwd"]
    base = "torch" if with_torch else "raw-lax"
    header = ["network", "input", "convs", "distinct"]
    for k in kinds:
        header += [f"{v} {k} ms" for v in ("auto", "raw-lax", "torch")
                   if with_torch or v != "torch"]
        header += [f"auto/{base} {k}"] + ([f"raw-lax/{base} {k}"] if with_torch else [])
        header += [f"auto/raw-lax {k}"] if with_torch else []
    rows, ratios = [], {}
    for spec in data["networks"].values():
        layers = spec["layers"]
        row: list[Any] = [spec["model"], f"{spec['batch']}x3x{spec['size']}x{spec['size']}",
                          sum(lay["count"] for lay in layers), len(layers)]
        for k in kinds:
            tot = {v: sum(lay["count"] * per_layer[_key(lay)][f"{v} {k}"] for lay in layers)
                   for v in ("auto", "raw-lax", "torch") if with_torch or v != "torch"}
            row += [f"{t * 1e3:.1f}" for t in tot.values()]
            r = tot["auto"] / tot[base]
            ratios.setdefault((spec["size"], k), []).append(r)
            row.append(f"{r:.2f}")
            if with_torch:
                row += [f"{tot['raw-lax'] / tot['torch']:.2f}",
                        f"{tot['auto'] / tot['raw-lax']:.2f}"]
        rows.append(row)
    out = [_table(header, rows), "",
           _table(["input side", "pass", f"geomean auto/{base}", f"worst auto/{base}"],
                  [[size, k, f"{geomean(v):.2f}", f"{max(v):.2f}"]
                   for (size, k), v in sorted(ratios.items())])]
    if with_torch:
        loss = []
        for spec in data["networks"].values():
            for lay in spec["layers"]:
                t = per_layer[_key(lay)]
                loss.append((lay["count"] * (t["auto fwd"] - t["torch fwd"]), spec["model"],
                             spec["size"], lay, t))
        loss.sort(key=lambda item: -item[0])
        top = [[m, s, _describe(lay), lay["count"], f"{t['auto fwd'] * 1e3:.2f}",
                f"{t['raw-lax fwd'] * 1e3:.2f}", f"{t['torch fwd'] * 1e3:.2f}",
                f"{extra * 1e3:.1f}"] for extra, m, s, lay, t in loss[:12]]
        out += ["", "Where auto's forward loses the most time to PyTorch's (per network, "
                "count x (auto - torch)):", "",
                _table(["network", "input", "layer", "calls", "auto fwd ms", "raw-lax fwd ms",
                        "torch fwd ms", "lost ms"], top)]
    return "\n".join(out)


def _describe(layer: dict) -> str:
    n, c, h, w = layer["input"]
    o, _, kh, kw = layer["weight"]
    text = f"{c}->{o} {kh}x{kw} on {h}x{w}"
    if any(s > 1 for s in layer["stride"]):
        text += f" s{'x'.join(map(str, layer['stride']))}"
    if any(d > 1 for d in layer["dilation"]):
        text += f" d{'x'.join(map(str, layer['dilation']))}"
    if layer["groups"] > 1:
        text += f" g{layer['groups']}"
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--networks", nargs="+", default=None, help="models to run (default: all)")
    p.add_argument("--sizes", nargs="+", type=int, default=None,
                   help=f"input sides to run (of {sorted(SIZES)}; default: all)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed runs of each variant per distinct convolution, at least")
    p.add_argument("--min-time", type=float, default=0.25,
                   help=f"time each variant further, up to {MAX_ROUNDS} runs, until its runs "
                   "add up to this many seconds")
    p.add_argument("--fwdbwd", action="store_true", help="time forward+backward too")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    p.add_argument("--markdown", default=None, help="write the tables to this file")
    p.add_argument("--json", default=None,
                   help="write the median times per distinct convolution to this file")
    p.add_argument("--quick", action="store_true",
                   help=f"resnet18 at 64x64, its first {QUICK_LAYERS} layers, one run (CI)")
    p.add_argument("--extract", action="store_true",
                   help=f"write {os.path.relpath(DATA)} from torchvision's models")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    if (args.extract or args.quick) and (args.networks or args.sizes):
        p.error(f"{'--extract' if args.extract else '--quick'} chooses its own networks and "
                "sizes: drop --networks and --sizes")
    if args.extract:
        data = extract()
        with open(DATA, "w") as f:
            f.write(_dumps(data) + "\n")
        print(f"wrote {DATA}: {len(data['networks'])} network inputs")
        return 0
    with open(DATA) as f:
        data = json.load(f)
    nets = data["networks"]
    if args.quick:
        args.networks, args.sizes, args.repeats, args.min_time = ["resnet18"], [64], 1, 0.0
    known = {spec["model"] for spec in nets.values()}
    for name in args.networks or ():
        if name not in known:
            p.error(f"--networks: unknown network {name!r}; known: {', '.join(sorted(known))}")
    for size in args.sizes or ():
        if size not in SIZES:
            p.error(f"--sizes: no network is listed at {size}; listed: {sorted(SIZES)}")
    nets = {k: v for k, v in nets.items()
            if (args.networks is None or v["model"] in args.networks)
            and (args.sizes is None or v["size"] in args.sizes)}
    if args.quick:
        nets = {k: dict(v, layers=v["layers"][:QUICK_LAYERS]) for k, v in nets.items()}
    with_torch = not args.no_torch and torch_available()
    distinct: dict[str, dict] = {}
    for spec in nets.values():
        for lay in spec["layers"]:
            distinct.setdefault(_key(lay), lay)
    per_layer = {}
    for i, (key, lay) in enumerate(distinct.items()):
        per_layer[key] = time_layer(lay, args.repeats, args.min_time, args.fwdbwd, with_torch)
        print(f"\r{i + 1}/{len(distinct)} distinct convolutions timed", end="", file=sys.stderr,
              flush=True)
    print(file=sys.stderr)
    head = (f"jaxconv {jaxconv.__version__}, jax {jax.__version__} on {jax.default_backend()} "
            f"({platform.processor() or platform.machine()}), float32; convolutions of "
            f"torchvision {data['torchvision']} models (benchmarks/networks.json); median of at "
            f"least {args.repeats} interleaved runs per distinct convolution, up to "
            f"{MAX_ROUNDS} until {args.min_time} s")
    text = head + "\n\n" + report(dict(data, networks=nets), per_layer, args.fwdbwd, with_torch)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            f.write(_results_json(head, nets, per_layer) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
