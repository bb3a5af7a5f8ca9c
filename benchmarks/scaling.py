"""Step time of examples/sharded_training.py against the number of (simulated) devices.

    python benchmarks/scaling.py [--steps 30] [--axes explicit auto]
                                 [--markdown benchmarks/results/zen5/scaling_cpu.md]

Runs the example once per (mesh axis types, layout, devices, processes) in its own
process and prints the median step time it reports: explicit axes (jaxconv's
``shard_map`` path) and automatic axes (its kernels' ``custom_partitioning``). On
one CPU, simulated devices share the same cores: the table shows what sharding
costs (halo exchanges, gradient all-reduces, per-device dispatch), not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNS = [("data", 1, 1), ("data", 2, 1), ("data", 4, 1), ("data", 8, 1),
        ("spatial", 2, 1), ("spatial", 4, 1), ("spatial", 8, 1), ("data", 8, 2),
        ("spatial", 8, 2)]


def _header(steps: int) -> str:
    """What the table was measured on: the CPU, the cores, jax and the run length."""
    import os
    import platform

    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"examples/sharded_training.py, {steps} steps of batch 32 (16x16 images), median "
            f"step; simulated CPU devices sharing {os.cpu_count()} cores of {cpu}; "
            f"jax {jax.__version__}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--axes", nargs="+", choices=("explicit", "auto"),
                   default=["explicit", "auto"], help="mesh axis types to run")
    p.add_argument("--markdown", default=None, help="also write the table here")
    args = p.parse_args(argv)
    rows = ["| axes | layout | devices | processes | input sharding | median step ms |",
            "|---|---|---:|---:|---|---:|"]
    for layout, devices, processes in RUNS:
        for axes in args.axes:
            with tempfile.TemporaryDirectory() as tmp:
                out = pathlib.Path(tmp) / "r.json"
                cmd = [sys.executable, str(ROOT / "examples" / "sharded_training.py"),
                       "--layout", layout, "--devices", str(devices), "--processes",
                       str(processes), "--steps", str(args.steps), "--axes", axes,
                       "--out", str(out)]
                subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
                r = json.loads(out.read_text())
            rows.append(f"| {axes} | {layout} | {r['devices']} | {r['processes']} | "
                        f"`{r['input_sharding']}` | {r['median_step_ms']:.1f} |")
            print(rows[-1], flush=True)
    table = "\n".join([_header(args.steps), "", *rows])
    print(table)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
