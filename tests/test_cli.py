"""``python -m jaxconv``: bench (layer parsing, --list, --explain, tiny timed runs and their
files), the help texts, ``-`` for standard output, and verify's counts."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import subprocess
import sys

import jax
import pytest

import jaxconv
from jaxconv import _auto, benchmark
from jaxconv import verify as V
from jaxconv.cli import bench, main
from jaxconv.cli import verify as verify_cli

TINY = "2d N=1 C=4 HW=6 O=4 k=3 p=1 g=4"


def test_parse_layer_reads_every_key():
    layer = benchmark.parse_layer("3d N=2 C=8 S=4x6x6 O=16 k=3 s=2 p=1 d=1 g=2 mode=circular")
    assert layer == benchmark.Layer(3, 2, 8, (4, 6, 6), 16, 3, 2, 1, 1, 2, "circular")
    assert benchmark.parse_layer("1d N=1 C=2 L=100 O=3 k=5").spatial == (100,)
    assert benchmark.parse_layer("2d N=1 C=2 HW=7 O=3 k=3").spatial == (7, 7)


@pytest.mark.parametrize(("text", "message"), [
    ("N=1 C=2 HW=7 O=3 k=3", "a layer starts with its rank (1d, 2d or 3d), got"),
    ("2d N=1 C=2 HW=7 O=3 k", "expected key=value, got 'k' in"),
    ("2d N=1 C=2 HW=7 O=3 k=3 q=1", "unknown key 'q' in"),
    ("2d N=1 C=2 HW=7 k=3", "lacks c_out."),
    ("2d N=1 C=2 S=7x7x7 O=3 k=3", "2-d layer needs 2 spatial sizes, got (7, 7, 7)"),
    ("2d N=1 C=3 HW=7 O=3 k=3 g=2", "jaxconv.bench: out channels (weight.shape[0]=3) must be "
                                    "divisible by `groups` (=2)."),
])
def test_parse_layer_errors(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        benchmark.parse_layer(text)


@pytest.mark.parametrize(("env", "words"), [
    ({}, "malloc: the C library's defaults."),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
     "malloc: GLIBC_TUNABLES=glibc.malloc.hugetlb=1."),
    ({"MALLOC_TRIM_THRESHOLD_": "1", "MALLOC_ARENA_MAX": "1"},
     "malloc: MALLOC_ARENA_MAX=1, MALLOC_TRIM_THRESHOLD_=1."),
])
def test_header_names_the_malloc_settings(monkeypatch, env, words):
    for name in benchmark.malloc_settings():
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert bench._malloc_setting() + "." == words


#: Words of the timed runs' header (how runs are timed, the allocator, XLA's CPU convolutions).
TIMING_WORDS = ("median", "interleaved", "warm-up", "malloc", "XLA CPU convolutions",
                "compiler_options")


@pytest.mark.parametrize("avx512", [False, True])
def test_explain_prints_what_auto_depends_on_and_no_timing_header(capsys, monkeypatch, avx512):
    monkeypatch.setattr(_auto, "cpu_has_avx512", lambda: avx512)
    assert main(["bench", "--explain", "--layer", TINY]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        f"what auto picks and why: jax {jax.__version__} on cpu (cpu), "
        f"{'with' if avx512 else 'without'} AVX-512.")
    assert not [w for w in TIMING_WORDS if w in out]
    assert re.search(r"layer\s+kernel\s+auto picks\s+why", out)


def _list_cells(layer: benchmark.Layer) -> list[str]:
    """A --list row's cells, from the layer's fields."""
    return [f"{layer.rank}d", str(layer.n), str(layer.c_in), str(layer.c_out),
            "x".join(str(s) for s in layer.spatial), "x".join([str(layer.kernel)] * layer.rank),
            str(layer.stride), str(layer.padding), str(layer.dilation), str(layer.groups),
            layer.mode, layer.dtype]


def test_list_shows_every_suite_layer_with_its_shape(capsys, monkeypatch):
    monkeypatch.setattr(benchmark, "bench_layer", None)  # nothing is timed
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"layer\s+rank\s+batch\s+in ch\s+out ch\s+spatial\s+kernel\s+stride\s+"
                     r"padding\s+dilation\s+groups\s+padding mode\s+dtype\n", out)
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:]}
    assert list(rows) == list(benchmark.LAYERS)
    for name, layer in benchmark.LAYERS.items():
        assert rows[name] == _list_cells(layer), name
    assert not [w for w in TIMING_WORDS if w in out]


def test_list_json_to_stdout_has_every_field_and_the_spec(capsys):
    assert main(["bench", "--list", "--layers", "video_3d", "--layer", TINY,
                 "--json", "-"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [r["layer"] for r in rows] == ["video_3d", TINY]
    layer = benchmark.LAYERS["video_3d"]
    assert rows[0] == dict(layer="video_3d", **{**dataclasses.asdict(layer),
                                                 "spatial": list(layer.spatial)},
                           input_shape=[2, 16, 8, 32, 32], weight_shape=[32, 16, 3, 3, 3],
                           spec=layer.describe())
    assert benchmark.parse_layer(rows[1]["spec"]) == benchmark.parse_layer(TINY)
    assert "video_3d" in captured.err  # the table, out of the JSON's way


def test_list_and_explain_are_exclusive_modes(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--list", "--explain"])
    assert exit_.value.code == 2
    assert "argument --explain: not allowed with argument --list" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--json", "--csv", "--markdown"])
def test_bench_output_dash_is_stdout_and_the_table_goes_to_stderr(capsys, monkeypatch, flag):
    monkeypatch.setattr(_auto, "cpu_has_avx512", lambda: False)
    assert main(["bench", "--explain", "--layer", TINY, flag, "-"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("what auto picks and why: ")
    assert "shift" in captured.err
    if flag == "--json":
        rows = json.loads(captured.out)
        assert [(r["kernel"], r["auto"]) for r in rows] == [
            ("forward", "shift"), ("input_grad", "shift"), ("weight_grad", "shift")]
        assert all(r["layer"] == TINY for r in rows)
    elif flag == "--csv":
        rows = list(csv.DictReader(captured.out.splitlines()))
        assert [r["kernel"] for r in rows] == ["forward", "input_grad", "weight_grad"]
    else:
        assert captured.out.startswith("what auto picks and why: ")
        assert "| layer | kernel | auto picks | why |" in captured.out


def test_timed_run_json_to_stdout_is_valid_json(capsys):
    assert main(["bench", "--layer", TINY, "--impls", "shift", "--no-torch", "--repeats", "1",
                 "--min-time", "0", "--json", "-"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert {r["variant"] for r in rows} == {"shift", "auto", "raw-lax"}
    assert "median of 1 interleaved runs" in captured.err.splitlines()[0]
    assert "auto against the best single impl and raw lax" in captured.err


def test_two_outputs_to_stdout_exit_2(capsys):
    assert main(["bench", "--list", "--json", "-", "--csv", "-"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("jaxconv bench: only one output can be '-' (standard output), "
                            "got --csv - --json -.\n")


def test_explain_prints_the_rule_per_kernel(capsys, monkeypatch):
    monkeypatch.setattr(_auto, "cpu_has_avx512", lambda: False)  # the 1x1 inference rule
    assert main(["bench", "--explain", "--layers", "depthwise_3x3", "pointwise_1x1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"depthwise_3x3\s+forward\s+shift\s+128 groups of 1 input channels", out)
    assert re.search(r"pointwise_1x1\s+forward\s+shift\s+1x1 kernel", out)
    assert re.search(r"pointwise_1x1\s+inference\s+gather\s+1x1 kernel.*the faster alone", out)
    assert not re.search(r"depthwise_3x3\s+inference", out)


def test_explain_prints_the_dead_taps(capsys):
    """The atrous layer's 3x3 is cropped to its live 1x1 centre, and the kernels are
    chosen for that (jaxconv/_deadtaps.py); a layer with none dead has no such row."""
    assert main(["bench", "--explain", "--layers", "atrous_3x3_d12", "resnet_3x3_64"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"atrous_3x3_d12\s+forward\s+\w+\s+1x1 kernel", out)
    assert re.search(r"atrous_3x3_d12\s+dead taps\s+kernel \(3, 3\) cropped to \(1, 1\) \(the "
                     r"other taps read only zero padding\); the kernels above are chosen for "
                     r"the cropped convolution", out)
    assert "resnet_3x3_64  dead taps" not in out


def test_timed_run_of_a_complex_layer(tmp_path, capsys):
    """A complex64 layer (the suite's last two) times its forward+backward on the real
    loss Re <y, ct>: jax.grad of the complex <y, ct> itself is refused."""
    out = tmp_path / "c.json"
    assert main(["bench", "--layer", "1d N=1 C=2 L=16 O=2 k=3 p=1 dtype=complex64",
                 "--impls", "lax", "--repeats", "1", "--min-time", "0", "--no-torch",
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert {r["variant"] for r in rows} >= {"lax", "auto", "raw-lax"}
    assert all(r["fwdbwd_ms"] > 0 for r in rows)


def test_timed_run_writes_table_and_files(tmp_path, capsys):
    files = {k: tmp_path / f"out.{k}" for k in ("json", "csv", "md")}
    assert main(["bench", "--layer", TINY, "--repeats", "1", "--min-time", "0", "--json",
                 str(files["json"]), "--csv", str(files["csv"]), "--markdown",
                 str(files["md"])]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(
        f"jax {jax.__version__} on cpu (cpu), float32 (complex64 where a layer says so), "
        "median of 1 interleaved runs after a warm-up; XLA CPU convolutions: ")
    assert out.splitlines()[0].endswith(f"; {bench._malloc_setting()}.")
    rows = json.loads(files["json"].read_text())
    variants = {r["variant"] for r in rows}
    assert {"lax", "gather", "shift", "auto", "raw-lax"} <= variants
    assert benchmark.MATMUL not in variants
    # the matmul timed in turns with this layer's forwards, on every row of the layer
    assert len({r["matmul_gflops"] for r in rows}) == 1 and rows[0]["matmul_gflops"] > 0
    assert all(r["fwd_ms"] > 0 and r["fwdbwd_ms"] > 0 for r in rows)
    assert len(list(csv.DictReader(files["csv"].open()))) == len(rows)
    assert "| layer | variant | fwd ms |" in files["md"].read_text()
    assert "auto against the best single impl and raw lax" in out
    # TINY is depthwise: auto takes shift's three kernels, so its programs are shift's.
    programs = {r["variant"]: (r["fwd_program"], r["fwdbwd_program"]) for r in rows
                if r["variant"] != "torch"}
    assert programs["auto"] == programs["shift"] != programs["lax"]
    best = {r["variant"]: (r["fwd_ms"], r["fwdbwd_ms"]) for r in rows
            if r["variant"] in jaxconv.available_impls()}
    second = files["md"].read_text().split("auto against the best single impl")[1]
    row = next(line for line in second.splitlines() if line.startswith(f"| {TINY} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    for i, cell in ((0, cells[1]), (1, cells[3])):  # best fwd, best f+b
        fastest = min(best, key=lambda v: best[v][i])
        assert cell == (f"{fastest} = same program" if fastest == "shift" else fastest)


def test_min_time_samples_fast_variants_more_and_says_so(monkeypatch, capsys):
    calls = []
    real = benchmark._interleaved

    def spy(runners, repeats, min_time=0.0):
        calls.append((repeats, min_time))
        return real(runners, repeats, min_time)

    monkeypatch.setattr(benchmark, "_interleaved", spy)
    assert main(["bench", "--layer", TINY, "--impls", "shift", "--repeats", "2",
                 "--min-time", "0.01", "--no-torch"]) == 0
    assert calls == [(2, 0.01), (2, 0.01)]  # the forwards (and the matmul), the f+b
    assert capsys.readouterr().out.splitlines()[0].startswith(
        f"jax {jax.__version__} on cpu (cpu), float32 (complex64 where a layer says so), "
        "median of at least 2 interleaved runs "
        f"after a warm-up, and of up to {benchmark.MAX_ROUNDS} for a variant until its runs "
        "add up to 0.01 s; XLA CPU convolutions: ")


@pytest.mark.parametrize(("flags", "message"), [
    (["--repeats", "0"], "jaxconv bench: --repeats must be at least 1, got 0."),
    (["--min-time", "-1"], "jaxconv bench: --min-time must be a finite number of seconds "
                           ">= 0, got -1.0."),
    (["--min-time", "nan"], "jaxconv bench: --min-time must be a finite number of seconds "
                            ">= 0, got nan."),
    (["--min-time", "inf"], "jaxconv bench: --min-time must be a finite number of seconds "
                            ">= 0, got inf."),
])
def test_bad_sampling_flags_exit_with_a_message(capsys, flags, message):
    assert main(["bench", "--layer", TINY, *flags]) == 2
    assert capsys.readouterr().err.strip() == message


class _Clock:
    """A fake perf_counter and runners whose timed calls take set times."""

    def __init__(self, seconds: dict[str, float]):
        self.now, self.seconds = 0.0, seconds
        self.calls = {k: 0 for k in seconds}

    def perf_counter(self) -> float:
        return self.now

    def runner(self, name: str):
        def run():
            self.calls[name] += 1
            self.now += self.seconds[name]
        return run


def test_interleaved_samples_until_min_time_within_max_rounds(monkeypatch):
    clock = _Clock({"slow": 1.0, "mid": 0.0625, "fast": 1e-4})
    monkeypatch.setattr(benchmark.time, "perf_counter", clock.perf_counter)
    runners = {k: clock.runner(k) for k in clock.seconds}
    samples = benchmark.interleaved_samples(runners, repeats=3, min_time=0.5)
    assert {k: len(v) for k, v in samples.items()} == {
        "slow": 3, "mid": 8, "fast": benchmark.MAX_ROUNDS}
    assert all(t == pytest.approx(clock.seconds[k]) for k, v in samples.items() for t in v)
    # One warm-up call, then an untimed and a timed call per run.
    assert clock.calls == {k: 1 + 2 * len(v) for k, v in samples.items()}
    ms = benchmark._interleaved(runners, repeats=3, min_time=0.5)
    assert ms == pytest.approx({"slow": 1000.0, "mid": 62.5, "fast": 0.1})


def test_interleaved_without_min_time_takes_exactly_repeats(monkeypatch):
    clock = _Clock({"a": 1e-4, "b": 2e-4})
    monkeypatch.setattr(benchmark.time, "perf_counter", clock.perf_counter)
    benchmark._interleaved({k: clock.runner(k) for k in clock.seconds}, repeats=4)
    assert clock.calls == {"a": 9, "b": 9}


def test_program_id_ignores_names_and_metadata_only():
    import jax.numpy as jnp
    import numpy as np

    x = jnp.ones((40, 40))
    table = np.arange(1600.0, dtype=np.float32).reshape(40, 40)

    def first(a):
        return jnp.sin(a) * table

    def second(b):  # another name, another source line: the same program
        return jnp.sin(b) * table

    ids = [benchmark.program_id(jax.jit(f).lower(x).compile())
           for f in (first, second, lambda a: jnp.cos(a) * table,
                     lambda a: jnp.sin(a) * table[::-1])]  # another large constant
    assert ids[0] == ids[1]
    assert len(set(ids[1:])) == 3


def test_program_id_same_for_auto_and_raw_lax_on_a_1d_layer():
    """auto runs lax's kernels on audio_1d_k9, and its forward is raw lax's
    program; their entry computations are named apart (main.1, main.2)."""
    layer = benchmark.parse_layer("1d N=2 C=4 L=64 O=8 k=9 p=4")
    arrays = benchmark.layer_arrays(layer)
    variants = benchmark.jax_variants(layer, ["auto", "shift"])
    ids = {k: benchmark.program_id(jax.jit(f).lower(*arrays).compile())
           for k, f in variants.items()}
    assert ids["auto"] == ids["raw-lax"] != ids["shift"]


def test_plot_writes_a_png(tmp_path):
    rows = [dict(layer=layer, variant=variant, fwdbwd_ms=ms)
            for layer, variant, ms in [("a", "lax", 2.0), ("a", "torch", 1.0),
                                       ("b", "lax", 1.0), ("b", "torch", 4.0)]]
    path = tmp_path / "p.png"
    bench.plot(rows, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kernels_mode_names_the_fastest_and_autos_pick(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_auto, "cpu_has_avx512", lambda: False)  # the 1x1 inference rule
    path = tmp_path / "k.json"
    assert main(["bench", "--kernels", "--layer", TINY, "--repeats", "1", "--min-time", "0",
                 "--json", str(path)]) == 0
    rows = json.loads(path.read_text())
    assert [r["kernel"] for r in rows] == ["forward", "input_grad", "weight_grad"]
    assert all(r["fastest"] in jaxconv.available_impls() and r["auto"] == "shift"
               for r in rows)
    # a 1x1 forward timed alone is not differentiated: auto's pick is its inference forward
    # (gather's without AVX-512; with it there is none, and the pick is the forward, shift's)
    pointwise = ["bench", "--kernels", "--layer", "2d N=1 C=4 HW=6 O=4 k=1", "--repeats", "1",
                 "--min-time", "0", "--json", str(path)]
    assert main(pointwise) == 0
    assert [r["auto"] for r in json.loads(path.read_text())] == ["gather", "gather", "gather"]
    monkeypatch.setattr(_auto, "cpu_has_avx512", lambda: True)
    assert main(pointwise) == 0
    assert [r["auto"] for r in json.loads(path.read_text())] == ["shift", "gather", "gather"]


def test_bad_layer_and_impl_exit_with_a_message(capsys):
    assert main(["bench", "--layer", "2d N=1", "--no-torch"]) == 2
    assert "lacks" in capsys.readouterr().err
    assert main(["bench", "--layer", TINY, "--impls", "nope"]) == 2
    assert "unknown impls ['nope']" in capsys.readouterr().err


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "jaxconv", "bench", "--explain", "--layers",
                             "video_3d"], capture_output=True, text=True, check=True)
    assert "video_3d" in result.stdout and "weight_grad" in result.stdout


def test_per_example_benchmark_runs_every_impl_it_is_given():
    times = benchmark.bench_per_example(["gather", "auto"], batch=2, size=8, repeats=1)
    assert set(times) == {"gather", "auto"}
    assert all(a > 0 and b > 0 for a, b in times.values())


def test_small_cnn_per_example_gradients_equal_a_loop():
    """What the per-example benchmark times is the right thing: vmap(grad) == grad per image."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    params = benchmark.small_cnn_params(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 3, 8, 8))
    loss = lambda p, x: jnp.sum(benchmark.small_cnn(p, x, "auto") ** 2)
    per = jax.vmap(lambda x: jax.grad(loss)(params, x))(x)
    for i in range(3):
        one = jax.grad(loss)(params, x[i])
        for k in params:
            np.testing.assert_allclose(per[k][i], one[k], rtol=1e-5, atol=1e-6)


# --- the help texts, the version --------------------------------------------------------

@pytest.mark.parametrize("argv", [[], ["bench"], ["verify"]])
def test_help_is_plain_text_with_the_examples(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":mod:" not in out
    command = " ".join(["jaxconv", *argv])
    assert re.search(rf"\n\n{re.escape(command)}: |\n\nThe jaxconv command line", out)
    # the examples keep their lines (RawDescriptionHelpFormatter)
    example = {(): "    jaxconv bench --list ", ("bench",): "    python -m jaxconv bench --list ",
               ("verify",): "    python -m jaxconv verify --json - > verify.json "}
    assert example[tuple(argv)] in out


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"jaxconv {jaxconv.__version__} (jax {jax.__version__})\n"


# --- verify: what the header and the progress bar count, -----------------------------------
# --- JSON on standard output --------------------------------------------------------------

def test_verify_header_and_progress_bar_count_the_same_checks(capsys, monkeypatch):
    bars = []

    def bar(items, desc, unit="it"):
        bars.append((len(items), desc, unit))
        return items

    monkeypatch.setattr(verify_cli, "progress_bar", bar)
    assert main(["verify", "--impls", "lax,shift", "--dtype", "float32,float64", "--n", "3",
                 "--no-torch"]) == 0
    kinds = [c.kind for c in V.sample_configs(3, seed=0)]
    assert bars == [(6, "verify: 3 configs x 2 dtypes = 6 checks", "check")]
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        f"jax {jax.__version__} on cpu: 3 configs ({kinds.count('conv')} conv, "
        f"{kinds.count('transpose')} conv_transpose; seed 0) x 2 dtypes (float32, float64) "
        "= 6 checks; in each, impls lax, shift against each other (reference lax): "
        "1 comparisons a check, 6 in all; output, d_input, d_weight, d_bias.")
    assert "OK: all 6 comparisons agree." in out


def test_verify_json_dash_writes_only_json_to_stdout():
    """The process's standard output, whole: the report is JSON; the table goes to stderr."""
    result = subprocess.run([sys.executable, "-m", "jaxconv", "verify", "--no-torch", "--n",
                             "2", "--json", "-"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True and len(report["configs"]) == 2
    assert "OK: all" in result.stderr and "comparison" in result.stderr
