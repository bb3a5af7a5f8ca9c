"""The benchmark scripts under benchmarks/ run (quick modes) and check their own results."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_winograd_probe_quick():
    """The probe's Winograd F(2x2, 3x3) agrees with lax (it exits non-zero otherwise) and
    prints its table, on an odd size (a partial last tile)."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "winograd_probe.py"),
                          "--quick", "--repeats", "1"], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    assert "| quick_3x3_8 | winograd, as XLA fuses it |" in run.stdout
    assert "Winograd vs lax, max |difference| / max |lax|: quick_3x3_8 " in run.stdout
