"""Multi-process data- and spatial-parallel training (examples/sharded_training.py),
with explicit and with automatic mesh axes.

Two processes with 4 CPU devices each, joined by ``jax.distributed.initialize`` on
a local coordinator (gloo collectives), train the example CNN for a few steps; the
result must equal one process with 8 devices (same global batches, same init).
"""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sharded_training.py"


def _run(tmp_path, *args):
    out = tmp_path / f"result-{'-'.join(args)}.json"
    result = subprocess.run([sys.executable, str(EXAMPLE), "--quick", "--out", str(out), *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return json.loads(out.read_text())


@pytest.mark.exhaustive  # two processes, 20 s each layout
@pytest.mark.parametrize("axes", ["explicit", "auto"])
@pytest.mark.parametrize("layout", ["data", "spatial"])
def test_two_processes_equal_one(tmp_path, layout, axes):
    pytest.importorskip("optax")
    one = _run(tmp_path, "--layout", layout, "--axes", axes)
    two = _run(tmp_path, "--layout", layout, "--axes", axes, "--processes", "2")
    assert (one["devices"], one["processes"]) == (8, 1)
    assert (two["devices"], two["processes"]) == (8, 2)
    assert two["input_type"] == one["input_type"]
    assert two["input_sharding"] == one["input_sharding"]
    assert ("'space'" in one["input_sharding"]) == (layout == "spatial")
    # explicit axes: the sharding is part of the type
    assert ("@space" in one["input_type"]) == (layout == "spatial" and axes == "explicit")
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-5)
    assert two["param_checksum"] == pytest.approx(one["param_checksum"], rel=1e-6)
