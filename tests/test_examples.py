"""The examples run: each script's ``--quick`` mode in a subprocess, and the lines it
prints that carry its checks (each script also exits non-zero when a check fails)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

import jaxconv

ROOT = pathlib.Path(__file__).resolve().parents[1]
OK_LINE = re.compile(r"^(?P<name>.+): max abs diff (?P<gap>\S+) .*(?P<verdict>OK|FAILED)$", re.M)


def run_example(name: str, *args: str, expect_rc: int = 0, timeout: int = 300) -> str:
    """Run ``examples/<name> args`` from the repo root; returns its stdout."""
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=os.environ | {"PYTHONPATH": pythonpath})
    assert proc.returncode == expect_rc, (
        f"{name} {' '.join(args)} exited {proc.returncode}, expected {expect_rc}\n"
        f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}")
    return proc.stdout


def checks(out: str) -> dict[str, str]:
    """``{check name: "OK" | "FAILED"}`` from the ``name: max abs diff ... OK`` lines."""
    return {m["name"]: m["verdict"] for m in OK_LINE.finditer(out)}


def held_out_losses(out: str) -> tuple[float, float]:
    m = re.search(r"held-out loss (\d+\.\d+) -> (\d+\.\d+)$", out, re.M)
    assert m, out
    return float(m[1]), float(m[2])


@pytest.mark.exhaustive  # ~8 s; the quick tier runs two other examples
def test_compare_impls_runs():
    out = run_example("compare_impls.py")
    assert re.search(r"^worst relative gap \S+: OK$", out, re.M), out


def test_train_cnn_learns_and_every_impl_agrees():
    pytest.importorskip("optax")
    out = run_example("train_cnn.py", "--quick")
    assert len(re.findall(r"^epoch \d+/5: loss \d\.\d+, train accuracy \d\.\d+", out, re.M)) == 5
    for impl in jaxconv.available_impls():  # trained with auto; every impl against it
        assert re.search(rf"^  impl +'{impl}': max \|logits - auto\| \S+, same prediction on "
                         r"256/256 test images$", out, re.M), (impl, out)
    assert "MISMATCH" not in out
    accuracy = re.search(r"^final test accuracy: (\d\.\d+)$", out, re.M)
    assert accuracy, out
    assert float(accuracy[1]) >= 0.6


@pytest.mark.exhaustive  # ~15 s; the quick tier runs three other examples
def test_train_cnn_fails_when_it_does_not_learn():
    pytest.importorskip("optax")
    out = run_example("train_cnn.py", "--quick", "--epochs", "1", "--lr", "1e-6", expect_rc=1)
    assert float(re.search(r"^final test accuracy: (\d\.\d+)$", out, re.M)[1]) < 0.6


def test_port_pytorch_model(torch):
    pytest.importorskip("optax")
    out = run_example("port_pytorch_model.py", "--quick")
    assert checks(out) == {
        "float32 forward, impl='auto', vs torch": "OK",
        "float64 forward vs torch": "OK",
        "float64 loss gradients vs torch.autograd": "OK",
        "fine-tuned torch model vs JAX": "OK",
    }, out
    first, last = held_out_losses(out)
    assert last < 0.95 * first
    assert "torch model holds the fine-tuned tensors bit for bit: True" in out
    assert out.rstrip().endswith("port OK: torch -> JAX -> fine-tuned -> torch")


@pytest.mark.exhaustive  # ~15 s; the quick tier runs three other examples
def test_per_example_gradients():
    pytest.importorskip("optax")
    out = run_example("per_example_gradients.py", "--quick")
    assert checks(out) == {
        "vmap(grad) vs a loop of single-example grads": "OK",
        "mean of per-example grads vs grad of the batched loss": "OK",
        "clipped mean vs optax.per_example_global_norm_clip": "OK",
    }, out
    clipped = re.search(r"; (\d+)/16 clipped to 1\.0$", out, re.M)
    assert clipped, out
    assert re.search(r"^  auto +\d+\.\d+ +\d+\.\d+ +\d+\.\d+$", out, re.M), out  # timing row
    assert out.rstrip().endswith("per-example gradients OK")


@pytest.mark.exhaustive  # ~15 s; the quick tier runs three other examples
def test_equinox_model():
    pytest.importorskip("equinox")
    pytest.importorskip("optax")
    out = run_example("equinox_model.py", "--quick")
    assert checks(out) == {
        "float64 outputs vs eqx.nn.Conv2d": "OK",
        "float64 gradients vs eqx.nn.Conv2d": "OK",
        "trained model vs its eqx.nn.Conv2d twin": "OK",
    }, out
    first, last = held_out_losses(out)
    assert last < 0.95 * first
    assert out.rstrip().endswith("equinox model OK")
