"""Can XLA's CPU backend hand a convolution to oneDNN or XNNPACK?

    python benchmarks/xla_library_probe.py --markdown benchmarks/results/zen5/xla_library_cpu.md

PyTorch's CPU convolutions are oneDNN's, and jaxlib links oneDNN and XNNPACK
too: its XLA has debug options that route operations to them
(``xla_cpu_use_onednn`` with ``xla_cpu_experimental_onednn_fusion_type``,
``xla_cpu_experimental_onednn_custom_call``, ``xla_cpu_use_xnnpack`` with
``xla_cpu_experimental_xnn_fusion_type``, ``xla_cpu_experimental_xnn_graph_fusion_mode``).
This probe compiles a 3x3, 64-channel ResNet convolution (NCHW, as jaxconv calls
XLA) and a 1024x1024 matmul under each setting, says what XLA made of each (the
entry computation's instruction that computes it: a plain ``convolution`` or
``dot``, which XLA runs with Eigen, or a library fusion or custom call) and
times each program, the settings interleaved in one process. Every program is
checked against the default's result (it exits non-zero if one disagrees).
A setting this jaxlib refuses is reported as refused.
"""

from __future__ import annotations

import argparse
import re

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxconv
from jaxconv.benchmark import _interleaved

_NO_CONV = {"xla_cpu_experimental_ynn_fusion_type":
            "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
SETTINGS = {
    "XLA's default": {},
    "jaxconv.eigen_conv_options()": None,  # filled in main(): the library's own
    "onednn custom call": {"xla_cpu_experimental_onednn_custom_call": True},
    "onednn custom call, YNNPACK and XNNPACK off": {
        "xla_cpu_experimental_onednn_custom_call": True, "xla_cpu_use_onednn": False,
        "xla_cpu_use_xnnpack": False, "xla_cpu_experimental_ynn_fusion_type": ""},
    "onednn fusion, convolution": {
        **_NO_CONV, "xla_cpu_use_onednn": True,
        "xla_cpu_experimental_onednn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"},
    "onednn fusion, dot": {"xla_cpu_use_onednn": True,
                           "xla_cpu_experimental_onednn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"},
    "xnnpack fusion, convolution": {
        **_NO_CONV, "xla_cpu_use_xnnpack": True,
        "xla_cpu_experimental_xnn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"},
    "xnnpack graph fusion, greedy": {
        **_NO_CONV, "xla_cpu_use_xnnpack": True,
        "xla_cpu_experimental_xnn_graph_fusion_mode": "XNN_GRAPH_FUSION_MODE_GREEDY"},
}


def computed_by(hlo: str, op: str) -> str:
    """What computes `op` (``convolution`` or ``dot``) in the compiled `hlo`: a library
    fusion or custom call of the entry computation, else the plain instruction."""
    entry = hlo[hlo.index("\nENTRY"):]
    kinds = set(re.findall(r"%(\w+?_fusion)(?:\.\d+)? = [^\n]*kind=kCustom", entry))
    kinds |= {f"custom-call {t}" for t in re.findall(r'custom_call_target="([^"]+)"', entry)}
    if kinds:
        return ", ".join(sorted(kinds))
    if re.search(rf"= [^\n]* {op}\(", entry):
        return f"plain {op} (Eigen)"
    return f"no {op} in the entry computation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true",
                        help="small operands (a smoke test; CI runs it)")
    parser.add_argument("--markdown", help="write the table as Markdown to this file")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    settings = dict(SETTINGS, **{"jaxconv.eigen_conv_options()": jaxconv.eigen_conv_options()})
    rng = np.random.default_rng(0)
    n, hw, m = (1, 8, 64) if args.quick else (8, 56, 1024)
    x = jnp.asarray(rng.standard_normal((n, 64, hw, hw)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((64, 64, 3, 3)) / 24, jnp.float32)
    a = jnp.asarray(rng.standard_normal((m, m)), jnp.float32)
    ops = {
        "convolution": (lambda x, w: lax.conv_general_dilated(
            x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW")),
            (x, w), 2 * n * hw * hw * 64 * 64 * 9),
        "dot": (lambda a, b: a @ b, (a, a), 2 * m ** 3),
    }
    rows, runners, worst = [], {}, 0.0
    for op, (fn, operands, flops) in ops.items():
        want = None
        for name, options in settings.items():
            try:
                compiled = jax.jit(fn, compiler_options=options).lower(*operands).compile()
            except Exception as err:  # noqa: BLE001 -- reported, whatever jaxlib raises
                rows.append((op, name, "refused: " + str(err).splitlines()[0][:120], None))
                continue
            got = np.asarray(compiled(*operands))
            want = got if want is None else want
            worst = max(worst, float(np.max(np.abs(got - want)) / np.max(np.abs(want))))
            rows.append((op, name, computed_by(compiled.as_text(), op), flops))
            runners[(op, name)] = (lambda c=compiled, o=operands: jax.block_until_ready(c(*o)))
    ms = _interleaved(runners, args.repeats)
    lines = [f"jax {jax.__version__} on {jax.default_backend()}, float32; convolution: "
             f"{n}x64x{hw}x{hw}, 3x3, 64 outputs, padding 1 (NCHW); dot: {m}x{m} @ {m}x{m}; "
             f"median of {args.repeats} interleaved runs after a warm-up.",
             "",
             "| op | compiler options | XLA computes it with | ms | GFLOP/s |",
             "|---|---|---|---:|---:|"]
    for op, name, how, flops in rows:
        if flops is None:
            lines.append(f"| {op} | {name} | {how} | - | - |")
        else:
            t = ms[(op, name)]
            lines.append(f"| {op} | {name} | {how} | {t:.2f} | {flops / t / 1e6:.0f} |")
    lines += ["", f"Every program against the default's, max |difference| / max |default|: "
              f"{worst:.1e}."]
    text = "\n".join(lines)
    print(text)
    if not worst < 1e-4:
        raise SystemExit(f"xla_library_probe: a program disagrees with the default ({worst:.1e})")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
