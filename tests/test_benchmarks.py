"""The benchmark scripts under benchmarks/ run (quick modes) and check their own results."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_dense_probe_quick():
    """The probe's Winograd F(2x2, 3x3) and im2col + matmul agree with lax (it exits
    non-zero otherwise) and it prints its table, on an odd size (a partial last tile)."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dense_probe.py"),
                          "--quick", "--repeats", "1"], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    assert "| quick_3x3_8 | winograd, as XLA fuses it |" in run.stdout
    assert "| quick_3x3_8 | im2col + one matmul per sample |" in run.stdout
    assert "| quick_3x3_8 | lax, channels-last operands (no transposes) |" in run.stdout
    assert "Winograd vs lax, max |difference| / max |lax|: quick_3x3_8 " in run.stdout
    assert "im2col vs lax, max |difference| / max |lax|: quick_3x3_8 " in run.stdout
