"""How glibc's malloc settings change the page faults and times of whole programs.

    python benchmarks/malloc_probe.py --markdown benchmarks/results/malloc_cpu.md

XLA's CPU runtime allocates a program's buffers on every call. glibc serves a
large allocation with fresh ``mmap`` pages above its mmap threshold (dynamic, at
most 32 MiB), and a thread other than the main one allocates from its own arena,
whose heaps hold at most 64 MiB, so a larger block is mmapped there whatever the
threshold. The kernel faults the fresh pages in on first touch, on every call
(4 KiB each). This probe times ``value_and_grad`` of ``impl="auto"`` and
PyTorch's forward+backward on layers of the suite, and counts the process's
minor page faults per call, under four settings, each in a fresh process (the
variables are read when the process starts):

* glibc's defaults;
* ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` raised to 4 GiB (freed
  memory stays with the process, in the main arena);
* the same and ``MALLOC_ARENA_MAX=1`` (every thread allocates from the main
  arena, whose heap has no such cap);
* ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc 2.35 and later: mmapped and
  heap memory advised for transparent huge pages, 2 MiB per fault, where
  ``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise`` or ``always``).

Each child process starts from this one's environment less any ``MALLOC_*`` or
``GLIBC_TUNABLES`` variable, plus its setting's. The settings run in turn,
``--rounds`` times over (drift between processes then falls on every setting
alike); the table shows the median time over all rounds' calls and the mean
faults per call. A C library other than glibc (or glibc before 2.35, for
``hugetlb``) ignores these variables: the header names the C library.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

SETTINGS = {
    "glibc defaults": {},
    "thresholds 4 GiB": {"MALLOC_MMAP_THRESHOLD_": "4294967296",
                         "MALLOC_TRIM_THRESHOLD_": "4294967296"},
    "thresholds 4 GiB, one arena": {"MALLOC_MMAP_THRESHOLD_": "4294967296",
                                    "MALLOC_TRIM_THRESHOLD_": "4294967296",
                                    "MALLOC_ARENA_MAX": "1"},
    "hugetlb=1": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
}
LAYERS = ("stem_7x7_s2", "reflect_3x3", "audio_1d_k9", "wavenet_1d_d8", "resnet_3x3_64")


def _measure(run, repeats: int) -> tuple[list[float], float]:
    """ms per timed call, and minor page faults per call (mean over the timed calls)."""
    run()
    run()
    times = []
    faults = 0
    for _ in range(repeats):
        start_faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        run()
        times.append(1e3 * (time.perf_counter() - start))
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start_faults
    return times, faults / repeats


def child(layers: list[str], repeats: int) -> None:
    """One process, one setting: a JSON line per layer and variant on stdout."""
    from jaxconv import benchmark as bench

    for name in layers:
        layer = _layer(name)
        arrays = bench.layer_arrays(layer)
        fn = bench.jax_variants(layer, ["auto"])["auto"]
        _, fwdbwd = bench._jax_runners(fn, arrays, bench.Timing())
        runners = {"auto": fwdbwd}
        if bench.torch_available():
            runners["torch"] = bench._torch_runners(layer, arrays)[1]
        for variant, run in runners.items():
            times, faults = _measure(run, repeats)
            print(json.dumps(dict(layer=name, variant=variant, times=times, faults=faults)),
                  flush=True)
            time.sleep(0.5)  # PyTorch's OpenMP threads spin a while after a call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", action="append",
                        help="a layer of the suite, or one as `jaxconv bench --layer` reads it "
                             f"(repeatable; default {', '.join(LAYERS)})")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per round")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the settings")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1:
        parser.error(f"--repeats and --rounds must be at least 1, got {args.repeats} and "
                     f"{args.rounds}")
    layers = args.layer or list(LAYERS)
    try:
        for name in layers:
            _layer(name)
    except ValueError as err:
        parser.error(str(err))
    if args.child:
        child(layers, args.repeats)
        return 0
    results: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    from jaxconv.benchmark import malloc_settings

    inherited = malloc_settings()
    base = {k: v for k, v in os.environ.items() if k not in inherited}
    for _ in range(args.rounds):
        for setting, env in SETTINGS.items():
            cmd = [sys.executable, __file__, "--child", "--repeats", str(args.repeats)]
            cmd += [a for name in layers for a in ("--layer", name)]
            proc = subprocess.run(cmd, env={**base, **env}, capture_output=True,
                                  text=True, check=False)
            if proc.returncode:
                sys.stderr.write(proc.stderr)
                return proc.returncode
            for line in proc.stdout.splitlines():
                row = json.loads(line)
                cell = results.setdefault((row["layer"], setting, row["variant"]),
                                          {"times": [], "faults": []})
                cell["times"] += row["times"]
                cell["faults"].append(row["faults"])
            print(f"done: {setting}", file=sys.stderr, flush=True)
    table = _table(layers, results, args)
    print(table)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(table + "\n")
    return 0


def _layer(name: str):
    """A suite layer by name, or one parsed like ``jaxconv bench --layer``."""
    from jaxconv import benchmark as bench

    return bench.LAYERS[name] if name in bench.LAYERS else bench.parse_layer(name)


def _table(layers, results, args) -> str:
    import jax

    thp = "unknown"
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled", encoding="utf-8") as f:
            thp = f.read().strip()
    except OSError:
        pass
    lines = [
        f"jax {jax.__version__} on {jax.default_backend()}, float32, forward+backward, "
        f"glibc {platform.libc_ver()[1] or 'unknown'}, transparent huge pages: {thp}; "
        f"median of {args.rounds} x {args.repeats} calls, each setting in a fresh process, "
        "the settings in turn; faults: minor page faults of the process per call (mean).",
        "",
        "| layer | malloc setting | auto ms | auto faults | torch ms | torch faults "
        "| auto/torch |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in layers:
        for setting in SETTINGS:
            auto = results[name, setting, "auto"]
            torch = results.get((name, setting, "torch"))
            a = statistics.median(auto["times"])
            af = statistics.mean(auto["faults"])
            if torch is None:
                lines.append(f"| {name} | {setting} | {a:.1f} | {af:.0f} | - | - | - |")
                continue
            t = statistics.median(torch["times"])
            tf = statistics.mean(torch["faults"])
            lines.append(f"| {name} | {setting} | {a:.1f} | {af:.0f} | {t:.1f} | {tf:.0f} "
                         f"| {a / t:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
