"""How far apart are two timings of one compiled program, as the benchmark takes them?

    python benchmarks/noise_probe.py --markdown benchmarks/results/noise_cpu.md

For each layer, ``conv(impl="auto")`` is compiled twice, forward and
forward+backward, into two executables of the same XLA program (checked with
:func:`jaxconv.benchmark.program_id`). The two copies are timed as
``jaxconv bench`` times variants (:func:`jaxconv.benchmark.interleaved_samples`:
turns in a random order, an untimed call before each timed one), for ``--runs``
runs each. Any ratio between the copies' medians other than 1 is measurement
noise. The table gives that ratio for medians over consecutive blocks of
``--repeats`` runs (``bench --repeats 7 --min-time 0``), over blocks of as many
runs as ``bench --repeats 7`` takes of a program this fast with its default
``--min-time``, and over all runs. (The benchmark interleaves more variants than
these two, so each of its runs is spread over a longer time.)

This is what the benchmark's target "auto within 5% of the best single impl"
has to be read against where auto's program *is* that impl's: the ratio of two
timings of one program, not a difference between programs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

import jax

from jaxconv import benchmark as B

DEFAULT_LAYERS = ["depthwise_s2_x2", "grouped_3x3_g32", "depthwise_1d_k31", "circular_3d",
                  "late_3x3_512", "wavenet_1d_d8"]


def _block_ratios(a: list[float], b: list[float], size: int) -> list[float]:
    return [statistics.median(a[i:i + size]) / statistics.median(b[i:i + size])
            for i in range(0, min(len(a), len(b)) - size + 1, size)]


def bench_runs(ms: float, repeats: int, min_time: float = B.DEFAULT_MIN_TIME) -> int:
    """About how many runs ``bench --repeats R`` takes of a program of `ms` ms:
    until they add up to `min_time` s, at least `repeats`, at most MAX_ROUNDS."""
    return min(B.MAX_ROUNDS, max(repeats, math.ceil(min_time / (ms * 1e-3))))


def probe(name: str, runs: int, repeats: int) -> list[list[str]]:
    layer = B.LAYERS[name]
    arrays = B.layer_arrays(layer)
    fn = B.jax_variants(layer, ["auto"])["auto"]
    copies = [B.Timing(), B.Timing()]
    # A wrapper per copy: jax.jit of one function object twice would hand back one
    # cached executable, and the copies would not be two executables.
    runners = [B._jax_runners(lambda *a: fn(*a), arrays, t) for t in copies]
    rows = []
    for mode, field, i in (("fwd", "fwd_program", 0), ("f+b", "fwdbwd_program", 1)):
        same = getattr(copies[0], field) == getattr(copies[1], field)
        if not same:
            raise SystemExit(f"noise_probe: the two compilations of {name}'s {mode} differ")
        s = B.interleaved_samples({"A": runners[0][i], "B": runners[1][i]}, runs)
        a, b = s["A"], s["B"]
        ms = 1e3 * statistics.median(a + b)
        default_runs = bench_runs(ms, repeats)
        sevens = _block_ratios(a, b, repeats)
        blocks = _block_ratios(a, b, default_runs)
        spread = lambda r: f"{min(r):.2f}-{max(r):.2f}" if r else "-"
        worst = lambda r: f"{max(max(r), 1 / min(r)):.2f}" if r else "-"
        rows.append([name, mode, f"{ms:.1f}", f"{runs}", spread(sevens), worst(sevens),
                     f"{default_runs}", spread(blocks), worst(blocks),
                     f"{statistics.median(a) / statistics.median(b):.3f}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="*", default=DEFAULT_LAYERS, choices=list(B.LAYERS))
    parser.add_argument("--runs", type=int, default=420, help="timed runs of each copy")
    parser.add_argument("--repeats", type=int, default=7,
                        help="the bench's --repeats to compare with (default 7, as the "
                             "committed suite runs)")
    parser.add_argument("--markdown", help="write the table as Markdown to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.runs < 2 * args.repeats:
        parser.error(f"--repeats must be at least 1 and --runs at least twice it, got "
                     f"--repeats {args.repeats} and --runs {args.runs}")
    from jaxconv.cli._util import table

    rows = [r for name in args.layers for r in probe(name, args.runs, args.repeats)]
    r = args.repeats
    text, md = table(["layer", "program", "ms", "runs", f"A/B, medians of {r}", f"worst of {r}",
                      "bench default runs", "A/B, medians of those", "worst of those",
                      "A/B, medians of all"], rows)
    head = (f"jax {jax.__version__} on {jax.default_backend()}, float32: two executables of "
            f"auto's program per layer, timed in turns ({args.runs} runs each); "
            "A/B = ratio of their medians over consecutive blocks of runs (worst: the "
            "larger of the ratio and its inverse).")
    print(head)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(head + "\n\n" + md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
