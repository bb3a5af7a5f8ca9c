"""The benchmark scripts under benchmarks/ run (quick modes, in the exhaustive tier) and check
their own results."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from jaxconv.benchmark import torch_available

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.exhaustive  # a probe program (5-25 s), not the library
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


@pytest.mark.exhaustive  # a probe program (5-25 s), not the library
def test_malloc_probe_quick():
    """The malloc probe runs every setting in a process of its own and tabulates auto's
    (and PyTorch's, when installed) times and page faults per setting."""
    layer = "2d N=1 C=4 HW=8 O=4 k=3 p=1"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "malloc_probe.py"),
                          "--layer", layer, "--repeats", "1", "--rounds", "1"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    for setting in ("glibc defaults", "thresholds 4 GiB", "thresholds 4 GiB, one arena",
                    "hugetlb=1"):
        row = next(line for line in run.stdout.splitlines()
                   if line.startswith(f"| {layer} | {setting} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        # times of this tiny layer may print as 0.0 ms: numbers, not their size
        assert min(float(c) for c in cells[2:4]) >= 0
        if torch_available():
            assert min(float(c) for c in cells[4:7]) >= 0
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "malloc_probe.py"),
                          "--layer", "nope"], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2
    assert "a layer starts with its rank (1d, 2d or 3d), got 'nope'" in bad.stderr
    zero = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "malloc_probe.py"),
                           "--rounds", "0"], capture_output=True, text=True, timeout=600)
    assert zero.returncode == 2
    assert "--repeats and --rounds must be at least 1, got 5 and 0" in zero.stderr


@pytest.mark.exhaustive  # a probe program (5-25 s), not the library
def test_pad_probe_quick():
    """The padding-adjoint probe checks the fused adjoint's gradients against JAX's
    for every mode (it exits non-zero otherwise) and tabulates them; bad counts are
    refused."""
    probe = str(ROOT / "benchmarks" / "pad_probe.py")
    run = subprocess.run([sys.executable, probe, "--quick"], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    for mode in ("reflect", "replicate", "circular"):
        assert f"| 2d N=1 C=4 HW=8 O=4 k=3 p=1 mode=reflect | {mode} |" in run.stdout
    bad = subprocess.run([sys.executable, probe, "--repeats", "0"], capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2
    assert "--repeats must be at least 1, got 0" in bad.stderr


@pytest.mark.exhaustive  # a probe program (5-25 s), not the library
def test_noise_probe_quick():
    """The noise probe compiles auto's program twice (it exits non-zero if the two
    differ) and tabulates the ratio of the copies' medians, forward and f+b."""
    probe = str(ROOT / "benchmarks" / "noise_probe.py")
    run = subprocess.run([sys.executable, probe, "--layers", "depthwise_s2_x2", "--runs", "14"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    for program in ("fwd", "f+b"):
        row = next(line for line in run.stdout.splitlines()
                   if line.split()[:2] == ["depthwise_s2_x2", program])
        cells = row.split()
        assert cells[3] == "14"
        # two blocks of 7 runs: a range of two ratios, and its worst is >= 1
        low, high = (float(v) for v in cells[4].split("-"))
        assert 0 < low <= high and float(cells[5]) >= 1
        assert float(cells[-1]) > 0
    few = subprocess.run([sys.executable, probe, "--runs", "13"], capture_output=True,
                         text=True, timeout=600)
    assert few.returncode == 2
    assert ("--repeats must be at least 1 and --runs at least twice it, got --repeats 7 "
            "and --runs 13") in few.stderr


def test_noise_probe_bench_runs_follow_the_bench_sampling(monkeypatch):
    """The probe's "bench default runs" are what interleaved_samples takes of a
    program that always runs `ms` ms (a fake clock), with --repeats 7."""
    import importlib.util

    from jaxconv import benchmark

    spec = importlib.util.spec_from_file_location("noise_probe",
                                                  ROOT / "benchmarks" / "noise_probe.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    now = [0.0]
    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: now[0])
    for ms in (0.5, 6.25, 30.0, 58.6, 400.0):
        def run(ms=ms):
            now[0] += ms * 1e-3

        taken = len(benchmark.interleaved_samples({"a": run}, 7,
                                                  benchmark.DEFAULT_MIN_TIME)["a"])
        assert probe.bench_runs(ms, 7) == taken, ms


@pytest.mark.exhaustive  # a probe program (5-25 s), not the library
def test_fold_side_probe_quick():
    """The fold-side probe checks both sides of fold's 3-d forward against lax (it exits
    non-zero otherwise) and says which side fold takes; bad counts are refused."""
    probe = str(ROOT / "benchmarks" / "fold_side_probe.py")
    run = subprocess.run([sys.executable, probe, "--quick", "--repeats", "1"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "| quick_4_4 | 4 | 4 |" in run.stdout and run.stdout.count("| output |") == 1
    assert "| quick_2_8 | 2 | 8 |" in run.stdout and run.stdout.count("| input |") == 1
    assert "Both sides vs the lax impl, max |difference| / max |lax|: " in run.stdout
    bad = subprocess.run([sys.executable, probe, "--repeats", "0"], capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2
    assert "--repeats must be at least 1, got 0" in bad.stderr


@pytest.mark.exhaustive  # a probe program (5-25 s), not the library
def test_pointwise_probe_quick():
    """The 1x1 probe compiles shift's forward both ways (different programs, both equal
    to lax, or it exits non-zero) and says which the rule picks."""
    probe = str(ROOT / "benchmarks" / "pointwise_probe.py")
    run = subprocess.run([sys.executable, probe, "--quick", "--no-torch"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "| 2, 32, 20x20, 24, 1 | 400 |" in run.stdout and "| per-image |" in run.stdout
    assert "| 2, 32, 7x7, 24, 2 | 16 |" in run.stdout and "| all-images |" in run.stdout
    assert "| group batch ms |" in run.stdout and "| group batch / all-images |" in run.stdout
    bad = subprocess.run([sys.executable, probe, "--repeats", "0"], capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2
    assert "--repeats must be at least 1, got 0" in bad.stderr


@pytest.mark.exhaustive  # a probe program (5-25 s), not the library
def test_xla_library_probe_quick():
    """The XLA-library probe compiles the convolution and the dot under every setting,
    checks them against the default (it exits non-zero otherwise) and names what
    computes each: the default runs both on YNNPACK, the Eigen options the convolution
    on Eigen."""
    probe = str(ROOT / "benchmarks" / "xla_library_probe.py")
    run = subprocess.run([sys.executable, probe, "--quick", "--repeats", "1"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "| convolution | XLA's default | ynn_fusion |" in run.stdout
    assert ("| convolution | jaxconv.eigen_conv_options() | plain convolution (Eigen) |"
            in run.stdout)
    assert "| dot | XLA's default | ynn_fusion |" in run.stdout
    assert run.stdout.count("| convolution | ") == run.stdout.count("| dot | ") == 8
    assert "Every program against the default's, max |difference| / max |default|: " \
        in run.stdout
    bad = subprocess.run([sys.executable, probe, "--repeats", "0"], capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2
    assert "--repeats must be at least 1, got 0" in bad.stderr


@pytest.mark.exhaustive  # a probe program (5-25 s), not the library
def test_complex_probe_quick():
    """The complex probe checks three real calls, four and XLA's native complex
    convolution against each other (it exits non-zero otherwise) and tabulates them."""
    probe = str(ROOT / "benchmarks" / "complex_probe.py")
    run = subprocess.run([sys.executable, probe, "--quick"], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    assert "| 2d N=1 C=4 HW=8 O=4 k=3 p=1 dtype=complex64 |" in run.stdout
    assert "four/gauss3 f+b | native/gauss3 f+b | gauss3/torch f+b |" in run.stdout


def _networks_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("networks_bench",
                                                  ROOT / "benchmarks" / "networks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_networks_report_sums_each_networks_calls():
    """A network's time is the sum over its listed calls of count x the distinct
    convolution's median; the geomean row and the lost-time table follow from it."""
    nets = _networks_module()
    a = dict(input=[2, 8, 6, 6], weight=[8, 8, 3, 3], stride=[1, 1], padding=[1, 1],
             dilation=[1, 1], groups=1, padding_mode="zeros", bias=False, count=3)
    b = dict(a, weight=[8, 1, 3, 3], groups=8, count=2)
    times = {nets._key(a): {"auto fwd": 0.004, "raw-lax fwd": 0.005, "torch fwd": 0.002},
             nets._key(b): {"auto fwd": 0.001, "raw-lax fwd": 0.003, "torch fwd": 0.002}}
    data = {"networks": {"n@6": dict(model="n", size=6, batch=2, layers=[a, b])}}
    text = nets.report(data, times, fwdbwd=False, with_torch=True)
    # auto 3*4 + 2*1 = 14 ms, raw lax 3*5 + 2*3 = 21, torch 3*2 + 2*2 = 10
    assert "| n | 2x3x6x6 | 5 | 2 | 14.0 | 21.0 | 10.0 | 1.40 | 2.10 | 0.67 |" in text
    assert "| 6 | fwd | 1.40 | 1.40 |" in text
    assert "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" in text
    assert "| n | 6 | 8->8 3x3 on 6x6 | 3 | 4.00 | 5.00 | 2.00 | 6.0 |" in text
    assert "| n | 6 | 8->8 3x3 on 6x6 g8 | 2 | 1.00 | 3.00 | 2.00 | -2.0 |" in text


def test_networks_json_lists_every_call():
    """networks.json: every network at both sizes, its calls' counts adding up to the
    architecture's number of Conv2d calls (ResNet-50: 53), distinct configurations."""
    nets = _networks_module()
    import json

    data = json.loads((ROOT / "benchmarks" / "networks.json").read_text())
    listed = data["networks"]
    assert sorted(listed) == sorted(f"{n}@{s}" for n in nets.NETWORKS for s in nets.SIZES)
    for name, spec in listed.items():
        keys = [nets._key(lay) for lay in spec["layers"]]
        assert len(set(keys)) == len(keys), name
        assert all(lay["input"][0] == nets.SIZES[spec["size"]] for lay in spec["layers"])
    assert sum(lay["count"] for lay in listed["resnet50@160"]["layers"]) == 53
    assert sum(lay["count"] for lay in listed["vgg11@64"]["layers"]) == 8


def _torchvision_or_skip(nets):
    try:
        return nets._import_torchvision()
    except (ImportError, RuntimeError):  # not installed, or its compiled operators broken
        pytest.skip("torchvision is not installed (only --extract needs it)")


@pytest.mark.exhaustive  # builds ten torchvision models (about 10 s)
def test_networks_extract_reproduces_the_json():
    """--extract's hooks list exactly what networks.json holds."""
    nets = _networks_module()
    _torchvision_or_skip(nets)
    import json

    data = json.loads((ROOT / "benchmarks" / "networks.json").read_text())
    assert nets.extract()["networks"] == data["networks"]


@pytest.mark.exhaustive  # a probe program (5-25 s), not the library
def test_networks_quick():
    """The networks benchmark's quick mode checks auto against lax on resnet18's first
    three convolutions (it exits non-zero otherwise) and sums them, forward and
    forward+backward; its arguments are checked by name."""
    script = str(ROOT / "benchmarks" / "networks.py")
    run = subprocess.run([sys.executable, script, "--quick", "--fwdbwd", "--no-torch"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "| resnet18 | 8x3x64x64 | 6 | 3 |" in run.stdout
    assert "auto/raw-lax fwd" in run.stdout and "auto/raw-lax f+b" in run.stdout
    for argv, message in [(["--repeats", "0"], "--repeats must be at least 1, got 0"),
                          (["--networks", "lenet"], "--networks: unknown network 'lenet'; "
                           "known: convnext_tiny, deeplabv3_resnet50, densenet121"),
                          (["--sizes", "99"],
                           "--sizes: no network is listed at 99; listed: [64, 160]"),
                          (["--extract", "--sizes", "64"], "--extract chooses its own "
                           "networks and sizes: drop --networks and --sizes"),
                          (["--quick", "--networks", "vgg11"], "--quick chooses its own "
                           "networks and sizes: drop --networks and --sizes")]:
        bad = subprocess.run([sys.executable, script, *argv], capture_output=True, text=True,
                             timeout=600)
        assert bad.returncode == 2
        assert message in bad.stderr
