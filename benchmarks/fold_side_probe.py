"""On which side should fold fold the leading axis of a 3-d forward?

    python benchmarks/fold_side_probe.py --repeats 41 \
        --markdown benchmarks/results/zen5/fold_side_cpu.md

fold computes an N-d convolution (rank >= 3) as one (r-1)-d XLA convolution, the
leading spatial axis folded away (:mod:`jaxconv.impls.fold`). On the *input*
side, ``K`` slices of the input are stacked next to its channels (a copy ``K``
times the input; contraction ``C·K``, ``O`` outputs); on the *output* side every
input plane is convolved with the ``K`` leading taps stacked as ``K·O`` output
channels and ``K`` shifted slices of the result are summed (``K`` times the
output written and read; contraction ``C``). Which is faster depends on the
channel counts: fold takes the output side when a group's outputs are at most
``OUTPUT_SIDE_MAX_RATIO`` times its inputs. This probe times fold's forward both
ways (the constant forced either way), interleaved in one process, on 3x3x3
layers of several channel ratios, and checks both against the lax impl (it exits
non-zero if either disagrees).
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import jaxconv
from jaxconv.benchmark import _interleaved
from jaxconv.impls import fold
from jaxconv.impls import lax as lax_impl

# name: (N, C, O, (D, H, W), k, zero padding); video_16_32 is the suite's video_3d and
# circular_16_16_prepadded its circular_3d as fold sees it (the mode's padding already
# copied in: 10 planes in, 8 out)
LAYERS = {
    "video_16_32": (2, 16, 32, (8, 32, 32), 3, 1),
    "circular_16_16": (2, 16, 16, (8, 32, 32), 3, 1),
    "circular_16_16_prepadded": (2, 16, 16, (10, 34, 34), 3, 0),
    "video_16_32_unpadded": (2, 16, 32, (10, 34, 34), 3, 0),
    "c32_32_k5_unpadded": (2, 32, 32, (8, 20, 20), 5, 0),
    "c64_16": (2, 64, 16, (8, 32, 32), 3, 1),
    "c64_64": (2, 64, 64, (8, 28, 28), 3, 1),
    "c32_64": (2, 32, 64, (8, 32, 32), 3, 1),
    "c16_64": (2, 16, 64, (8, 32, 32), 3, 1),
    "c8_64": (2, 8, 64, (16, 32, 32), 3, 1),
    "c3_32": (2, 3, 32, (16, 56, 56), 3, 1),
}
SIDES = {"input": 0, "output": 10**6}  # OUTPUT_SIDE_MAX_RATIO forcing each side


def probe(name, shape, repeats):
    n, c, o, spatial, k, pad = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, *spatial)).astype(np.float32)
    w = (rng.standard_normal((o, c, k, k, k)) / np.sqrt(c * k ** 3)).astype(np.float32)
    spec = jaxconv.ConvSpec(rank=3, stride=(1, 1, 1), padding=((pad, pad),) * 3,
                            dilation=(1, 1, 1), groups=1, padding_mode="zeros", impl="fold")
    programs = {}
    saved = fold.OUTPUT_SIDE_MAX_RATIO
    try:
        for side, ratio in SIDES.items():
            fold.OUTPUT_SIDE_MAX_RATIO = ratio  # read when the program is traced
            programs[side] = jax.jit(lambda a, b: fold.forward(a, b, spec)).lower(x, w).compile()
    finally:
        fold.OUTPUT_SIDE_MAX_RATIO = saved
    if programs["input"].as_text() == programs["output"].as_text():
        raise SystemExit(f"fold_side_probe: {name}: forcing a side did not change the program")
    want = np.asarray(jax.jit(lambda a, b: lax_impl.forward(a, b, spec))(x, w))
    err = max(float(np.max(np.abs(np.asarray(p(x, w)) - want)) / np.max(np.abs(want)))
              for p in programs.values())
    ms = _interleaved({side: (lambda p=p: jax.block_until_ready(p(x, w)))
                       for side, p in programs.items()}, repeats)
    return (name, c, o, f"{spatial[0]} -> {spec.output_spatial(spatial, (k,) * 3)[0]}",
            ms["input"], ms["output"], ms["output"] / ms["input"], side_taken(x, w, spec), err)


def side_taken(x, w, spec) -> str:
    """The side fold's forward takes for these operands (traced, not run)."""
    calls, real = [], fold._forward_output_folded
    fold._forward_output_folded = lambda *a: calls.append(True) or real(*a)
    try:
        jax.eval_shape(lambda a, b: fold.forward(a, b, spec), x, w)
    finally:
        fold._forward_output_folded = real
    return "output" if calls else "input"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true",
                        help="two small layers (a smoke test; CI runs it)")
    parser.add_argument("--markdown", help="write the table as Markdown to this file")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    layers = ({"quick_4_4": (1, 4, 4, (3, 6, 5), 3, 1), "quick_2_8": (1, 2, 8, (4, 5, 6), 3, 0)}
              if args.quick else LAYERS)
    rows = [probe(name, shape, args.repeats) for name, shape in layers.items()]
    lines = [f"jax {jax.__version__} on {jax.default_backend()}, float32, fold's 3-d forward "
             "(stride 1, 3x3x3 or 5x5x5, zero padding on every axis: k//2, or none where the "
             "leading planes shrink), median of "
             f"{args.repeats} interleaved runs after a warm-up; fold takes: the side "
             "fold.forward chooses for the layer.",
             "",
             "| layer | C | O | leading planes in -> out | input side ms | output side ms "
             "| output / input | fold takes |",
             "|---|---:|---:|---|---:|---:|---:|---|"]
    for name, c, o, planes, t_in, t_out, ratio, taken, _ in rows:
        lines.append(f"| {name} | {c} | {o} | {planes} | {t_in:.2f} | {t_out:.2f} | "
                     f"{ratio:.2f} | {taken} |")
    worst = max(r[-1] for r in rows)
    lines += ["", f"Both sides vs the lax impl, max |difference| / max |lax|: {worst:.1e}."]
    text = "\n".join(lines)
    print(text)
    if not worst < 1e-5:
        raise SystemExit(f"fold_side_probe: a side disagrees with lax ({worst:.1e})")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
