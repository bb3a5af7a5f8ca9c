"""``python -m jaxconv verify`` and :func:`jaxconv.verify.run_verify`: sampling, the
comparison rule, reports, a planted wrong impl caught, the CLI's files and errors."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv
from jaxconv import _registry
from jaxconv import verify as V
from jaxconv.cli import main

IMPLS = ("lax", "shift")  # two impls keep the compiled programs few


def _register(name, forward, base="lax"):
    impl = jaxconv.get_impl(base)
    jaxconv.register_impl(jaxconv.Impl(name, forward, impl.input_grad, impl.weight_grad))


@pytest.fixture
def flipped():
    """An impl with a classic bug: its forward convolves (flipped kernel) instead of
    cross-correlating; its gradient kernels are lax's, so only what uses the forward breaks:
    a conv's output and a transposed conv's input gradient."""
    lax_forward = jaxconv.get_impl("lax").forward
    _register("flipped", lambda x, w, spec: lax_forward(
        x, jnp.flip(w, axis=tuple(range(2, w.ndim))), spec))
    yield "flipped"
    _registry._REGISTRY.pop("flipped")  # there is no public unregister


@pytest.fixture
def broken():
    """An impl whose forward raises while tracing."""
    def forward(x, w, spec):
        raise NotImplementedError("broken on purpose")
    _register("broken", forward)
    yield "broken"
    _registry._REGISTRY.pop("broken")


# --- sampling ---------------------------------------------------------------------------


def _pairs(c):
    """(low, high) padding per axis, worked out from PyTorch's documentation."""
    out = []
    for i, k in enumerate(c.kernel):
        d = c.dilation[i] if isinstance(c.dilation, tuple) else c.dilation
        if c.padding == "same":
            out.append((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2))
        elif c.padding == "valid":
            out.append((0, 0))
        else:
            p = c.padding[i] if isinstance(c.padding, tuple) else c.padding
            out.append((p, p))
    return out


def test_sampled_configs_respect_pytorchs_limits_and_cover_the_space():
    configs = V.sample_configs(200, seed=3)
    for c in configs:
        axis = lambda v, i: v[i] if isinstance(v, tuple) else v
        if c.kind == "transpose":
            assert c.padding_mode == "zeros" and not isinstance(c.padding, str)
            assert all(axis(c.output_padding, i) < max(axis(c.stride, i), axis(c.dilation, i))
                       for i in range(c.rank))
            continue
        if c.padding == "same":
            assert c.stride == 1
        for i, (n, (lo, hi)) in enumerate(zip(c.spatial, _pairs(c), strict=True)):
            assert n + lo + hi >= axis(c.dilation, i) * (c.kernel[i] - 1) + 1
            assert c.padding_mode != "reflect" or max(lo, hi) < n
            assert c.padding_mode != "circular" or max(lo, hi) <= n
    first = V.sample_configs(24, seed=0)
    convs = [c for c in first if c.kind == "conv"]
    assert len(convs) == 16 and len(first) - len(convs) == 8
    forms = {c: "int" if isinstance(c.padding, int) else "tuple"
             if isinstance(c.padding, tuple) else c.padding for c in convs}
    assert {(c.padding_mode, forms[c]) for c in convs} == set(
        itertools.product(V.PADDING_MODES, V.PADDING_FORMS))
    assert {c.rank for c in configs} == {1, 2, 3}
    assert {c.batch for c in configs} == {None, 0, 1, 2}
    assert any(c.groups * c.group_in == c.groups > 1 and c.group_out > 1 for c in configs)
    assert any(c.kind == "transpose" and c.output_padding not in (0, (0,) * c.rank)
               for c in configs)
    assert {c.bias for c in configs} == {True, False}
    assert [c.describe() for c in V.sample_configs(5, seed=3)] == [
        c.describe() for c in configs[:5]]
    assert V.sample_configs(5, seed=4) != V.sample_configs(5, seed=3)
    assert {c.kind for c in V.sample_configs(6, 0, ("transpose",))} == {"transpose"}


def test_sampled_configs_run_in_pytorch_with_the_expected_output_shape(torch):
    for c in V.sample_configs(60, seed=1):
        out = V.torch_results(torch, c, "float64")
        assert out["output"].shape == c.output_shape, c.describe()
        assert set(out) == {"output", "d_input", "d_weight", *(["d_bias"] * c.bias)}


def test_data_are_drawn_per_dtype():
    c = V.sample_configs(1, seed=0)[0]
    x, w, b, ct = c.arrays("float64")  # as before complex and int64 joined: one normal draw
    rng = np.random.default_rng(c.seed)
    for a in (x, w, b, ct):
        np.testing.assert_array_equal(a, rng.standard_normal(a.shape))
    rng = np.random.default_rng(c.seed)
    for a in c.arrays("complex128"):
        assert a.dtype == jnp.complex128
        np.testing.assert_array_equal(a.real, rng.standard_normal(a.shape))
        np.testing.assert_array_equal(a.imag, rng.standard_normal(a.shape))
    *ints, ct = c.arrays("int64")
    assert ct is None  # integers have no gradients
    for a in ints:
        assert a.dtype == jnp.int64 and a.shape in c.shapes
        assert set(np.unique(a)) <= set(range(-V.INT_DRAW, V.INT_DRAW + 1))
        assert len(np.unique(a)) > 3


class _IntsAsFloat64(V.Config):
    """The int64 data of a config, as float64 (exact: small integers), with a cotangent."""

    def arrays(self, dtype):
        *arrays, _ = V.Config.arrays(self, "int64")
        as_float = lambda a: None if a is None else jnp.asarray(a, jnp.float64)
        return (*map(as_float, arrays), jnp.zeros(self.output_shape, jnp.float64))


@pytest.mark.exhaustive  # slow (quick-tier budget); its neighbours cover the same code
def test_int64_pytorch_side_is_what_nn_convnd_computes_on_the_same_integers(torch):
    """int64 takes PyTorch's functional form (nn.ConvNd takes floating parameters only); on
    small integers, float64's nn.ConvNd / F.conv_transposeNd is exact: the same numbers."""
    configs = V.sample_configs(60, seed=1)
    assert {c.padding_mode for c in configs} == set(V.PADDING_MODES)
    for c in configs:
        got = V.torch_results(torch, c, "int64")
        assert list(got) == ["output"] and got["output"].dtype == np.int64
        want = V.torch_results(torch, _IntsAsFloat64(**dataclasses.asdict(c)), "float64")
        np.testing.assert_array_equal(got["output"], want["output"], err_msg=c.describe())


def test_describe_is_the_call():
    c = V.sample_configs(1, seed=0)[0]
    assert c.describe() == (
        "conv3d(x[6,4,5,5], w[6,2,2,2,1], b[6], stride=(1, 2, 3), padding=2, dilation=1, "
        "groups=3, padding_mode='zeros')")


# --- the comparison rule ----------------------------------------------------------------


def test_compare_follows_the_assert_impls_agree_rule():
    want = np.array([1.0, -2.0])
    # allowed = atol * (1 + 2) + rtol * |b| = 3e-4 + 1e-4 * |b|: 4e-4 and 5e-4
    ok = V.compare(want + [3.9e-4, 4.9e-4], want, 1e-4, 1e-4)
    assert ok.passed and ok.max_abs == pytest.approx(4.9e-4)
    assert ok.max_rel == pytest.approx(4.9e-4 / 2) and ok.ratio == pytest.approx(0.98)
    bad = V.compare(want + [4.1e-4, 0.0], want, 1e-4, 1e-4)
    assert not bad.passed and bad.ratio == pytest.approx(4.1 / 4)
    assert not V.compare(np.array([np.nan, -2.0]), want, 1e-4, 1e-4).passed
    zero = V.compare(np.array([0.0, 1e-3]), np.zeros(2), 1e-4, 1e-4)
    assert zero.max_rel == math.inf and not zero.passed
    empty = V.compare(np.zeros((0, 3)), np.zeros((0, 3)), 1e-4, 1e-4)
    assert empty.passed and empty.max_abs == 0.0


def test_compare_is_exact_for_integers_and_takes_moduli_of_complex():
    big = np.iinfo(np.int64)
    same = V.compare(np.array([big.min, 3, big.max]), np.array([big.min, 3, big.max]), 0, 0)
    assert same.passed and same.max_abs == 0 and same.ratio == 0
    # int64 differences that wrap around (to 2**63, whose abs is negative, or to -1)
    for got, want in ((0, big.min), (big.max, big.min), (big.max, big.max - 1)):
        err = V.compare(np.array([got]), np.array([want]), 0, 0)
        assert not err.passed and err.max_abs == float(abs(got - want)) and err.ratio == math.inf
    want = np.array([3 + 4j, 0j])  # |b| = 5: allowed = 1e-4 * 6 + 1e-4 * |b|: 1.1e-3, 6e-4
    ok = V.compare(want + [0.6e-3 + 0.8e-3j, 0.3e-3 + 0.4e-3j], want, 1e-4, 1e-4)
    assert ok.passed and ok.max_abs == pytest.approx(1e-3)
    assert ok.ratio == pytest.approx(1 / 1.1) and ok.max_rel == pytest.approx(2e-4)
    assert not V.compare(want + [0, 0.5e-3 + 0.5e-3j], want, 1e-4, 1e-4).passed


# --- the library ------------------------------------------------------------------------


def test_impls_agree_with_each_other_and_the_report_says_so():
    report = V.run_verify(impls=IMPLS, dtypes=("float64",), n=3, torch=False)
    assert report.passed and report.failures == [] and report.reference == "lax"
    assert report.torch_version is None
    assert report.notes == ["PyTorch not used: impls compared with each other only "
                            "(reference: lax)."]
    assert [c.kind for c in report.configs] == ["conv", "conv", "transpose"]
    assert [(c.config, c.impl, c.reference) for c in report.comparisons] == [
        (0, "shift", "lax"), (1, "shift", "lax"), (2, "shift", "lax")]
    for c in report.comparisons:
        bias = report.configs[c.config].bias
        assert list(c.errors) == ["output", "d_input", "d_weight", *(["d_bias"] * bias)]
        assert all(e.max_abs < 1e-12 and e.passed for e in c.errors.values())
    [row] = report.summary()
    assert (row.pair, row.dtype, row.configs, row.failures) == ("shift vs lax", "float64", 3, 0)
    assert row.max_abs == max(e.max_abs for c in report.comparisons
                              for e in c.errors.values())


def test_impls_agree_with_pytorch_in_float32_and_float64(torch):
    report = V.run_verify(impls=IMPLS, dtypes=("float32", "float64"), n=2)
    assert report.passed and report.reference == "torch"
    assert report.torch_version == torch.__version__
    assert [(r.pair, r.dtype, r.configs) for r in report.summary()] == [
        ("lax vs torch", "float32", 2), ("shift vs torch", "float32", 2),
        ("lax vs torch", "float64", 2), ("shift vs torch", "float64", 2),
        ("shift vs lax", "float32", 2), ("shift vs lax", "float64", 2)]
    rows = {(r.pair, r.dtype): r for r in report.summary()}
    assert rows["lax vs torch", "float64"].max_rel < 1e-12
    assert 0 < rows["lax vs torch", "float32"].max_rel < 1e-5


def test_half_precision_is_checked_against_float32_pytorch(torch):
    report = V.run_verify(impls=("lax",), dtypes=("bfloat16",), n=2)
    assert report.passed and report.notes == [
        "float16/bfloat16: PyTorch computes in float32 on the same half-rounded data; impls "
        "are compared with each other in the half dtype."]
    # bfloat16 keeps 8 bits: its error against float32 is real but within tolerance
    assert 1e-4 < report.summary()[0].max_rel < 3e-2


def test_complex_and_int64_agree_with_pytorch(torch):
    report = V.run_verify(impls=IMPLS, dtypes=("complex64", "complex128", "int64"), n=3)
    assert report.passed and report.notes == [
        "complex: the gradients compared are PyTorch's, conj(vjp(conj(ct))) of JAX's VJP "
        "(the transpose; PyTorch's gradient is the adjoint); errors are moduli.",
        f"int64: data in [-{V.INT_DRAW}, {V.INT_DRAW}], the output only (no gradients), "
        "compared exactly."]
    rows = {(r.pair, r.dtype): r for r in report.summary()}
    assert rows["lax vs torch", "complex128"].max_rel < 1e-12
    assert 0 < rows["lax vs torch", "complex64"].max_rel < 1e-5
    assert all(rows[pair, "int64"].max_abs == 0
               for pair in ("lax vs torch", "shift vs torch", "shift vs lax"))
    for c in report.comparisons:
        bias = report.configs[c.config].bias
        grads = [] if c.dtype == "int64" else ["d_input", "d_weight", *(["d_bias"] * bias)]
        assert list(c.errors) == ["output", *grads]


def test_complex_gradients_are_pytorchs_through_the_conjugate_relation(torch):
    """JAX's VJP is the transpose, PyTorch's gradient the adjoint: ``x.grad`` after
    ``y.backward(ct)`` is ``conj(vjp(conj(ct)))``, which verify reports for every impl;
    the plain ``vjp(ct)`` is another number (but for the bias, whose map is real)."""
    config = V.sample_configs(1, seed=0)[0]
    assert config.bias and config.kind == "conv"
    want = V.torch_results(torch, config, "complex128")
    got = V.jax_results(config, IMPLS, "complex128")
    with jax.enable_x64(True):
        x, w, b, ct = config.arrays("complex128")
        _, vjp = jax.vjp(functools.partial(jaxconv.conv, **config.kwargs), x, w, b)
        plain = dict(zip(("d_input", "d_weight", "d_bias"), vjp(ct), strict=True))
    for q, g in plain.items():
        differs = np.abs(np.asarray(g) - want[q]).max() > 0.1 * np.abs(want[q]).max()
        assert differs == (q != "d_bias")
        for impl in IMPLS:
            np.testing.assert_allclose(got[impl][q], want[q], rtol=1e-10, atol=1e-10)


def test_a_planted_wrong_impl_is_caught_where_its_forward_is_used(flipped):
    report = V.run_verify(impls=("lax", flipped), dtypes=("float64",), n=3, torch=False)
    assert not report.passed
    failing = {c.config: c.failing for c in report.failures}
    # conv: the output is wrong, its gradients come from lax's kernels; transposed conv:
    # its output is lax's input-gradient kernel, its input gradient the flipped forward.
    # A flip changes nothing for a 1x1 kernel or an empty batch.
    expected = {c.index: ["output" if c.kind == "conv" else "d_input"]
                for c in report.configs if c.batch != 0 and max(c.kernel) > 1}
    assert failing == expected and set(expected) == {0, 1, 2}
    assert report.summary()[0].failures == 3


def test_a_planted_wrong_impl_is_caught_in_complex_and_int64(flipped):
    report = V.run_verify(impls=("lax", flipped), dtypes=("complex128", "int64"), n=3,
                          torch=False)
    failing = {(c.config, c.dtype): c.failing for c in report.failures}
    # as in float64; int64 has no gradients, so only a conv's output shows the flip
    flips = [c for c in report.configs if c.batch != 0 and max(c.kernel) > 1]
    expected = {(c.index, "complex128"): ["output" if c.kind == "conv" else "d_input"]
                for c in flips}
    expected.update({(c.index, "int64"): ["output"] for c in flips if c.kind == "conv"})
    assert failing == expected and len(expected) == 5


def test_an_impl_that_raises_is_a_failure_and_the_others_still_compare(broken):
    report = V.run_verify(impls=("lax", "shift", broken), dtypes=("float64",), n=1,
                          torch=False)
    by_pair = {(c.impl, c.reference): c for c in report.comparisons}
    assert by_pair["shift", "lax"].passed
    for ref in ("lax", "shift"):
        c = by_pair["broken", ref]
        assert c.failing == ["error"] and c.error.startswith(
            "broken: NotImplementedError: broken on purpose")


def test_without_pytorch_installed_impls_are_compared_with_each_other(monkeypatch):
    monkeypatch.setattr(V, "_import_torch", lambda: None)
    report = V.run_verify(impls=IMPLS, dtypes=("float64",), n=1)
    assert report.passed and report.reference == "lax" and report.torch_version is None
    assert report.notes == ["PyTorch not installed: impls compared with each other only "
                            "(reference: lax)."]
    assert [c.reference for c in report.comparisons] == ["lax"]


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, jaxconv.cli, jaxconv.verify; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout == "False\n"


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(impls=("lax", "nope")), "`impls` must be distinct names from ('lax', 'gather', "
     "'shift', 'fold', 'auto'), got impls=('lax', 'nope')."),
    (dict(impls=("lax", "lax")), "`impls` must be distinct names from"),
    (dict(dtypes=("float32", "int8")), "`dtypes` must be names from ('float16', 'bfloat16', "
     "'float32', 'float64', 'complex64', 'complex128', 'int64'), got dtypes=('float32', "
     "'int8')."),
    (dict(n=0), "`n` must be a positive int, got n=0."),
    (dict(n=2.0), "`n` must be a positive int, got n=2.0."),
    (dict(kinds=("conv", "deconv")), "`kinds` must be names from ('conv', 'transpose'), "
     "got kinds=('conv', 'deconv')."),
    (dict(impls=("lax",), torch=False), "without PyTorch, `impls` must name at least two "
     "impls to compare, got impls=('lax',)."),
])
def test_run_verify_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape("jaxconv.verify.run_verify: " + message)):
        V.run_verify(**kwargs)


# --- the CLI ----------------------------------------------------------------------------

SMALL = ["verify", "--impls", "lax,shift", "--dtype", "float64", "--n", "3", "--no-torch"]


def test_cli_prints_the_table_writes_json_and_exits_0(tmp_path, capsys):
    path = tmp_path / "v.json"
    assert main([*SMALL, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "PyTorch not used: impls compared with each other only (reference: lax)." in out
    assert re.search(r"comparison\s+dtype\s+configs\s+max abs err\s+max rel err\s+failures",
                     out)
    assert re.search(r"shift vs lax\s+float64\s+3\s+\S+\s+\S+\s+0\n", out)
    assert "OK: all 3 comparisons agree." in out
    data = json.loads(path.read_text())
    assert set(data) == {"jax_version", "torch_version", "reference", "impls", "dtypes",
                         "seed", "tolerances", "rule", "notes", "configs", "comparisons",
                         "summary", "failures", "passed"}
    assert data["passed"] is True and data["failures"] == [] and data["reference"] == "lax"
    assert data["tolerances"] == {"float64": {"rtol": 1e-10, "atol": 1e-10}}
    assert [c["call"] for c in data["configs"]] == [
        c.describe() for c in V.sample_configs(3, seed=0)]
    assert set(data["comparisons"][0]) == {"config", "dtype", "impl", "reference", "passed",
                                           "error", "errors"}
    assert set(data["comparisons"][0]["errors"]["output"]) == {"max_abs", "max_rel",
                                                               "ratio", "passed"}
    assert data["summary"][0]["configs"] == 3 and data["summary"][0]["failures"] == 0


def test_cli_exits_1_and_lists_the_failing_configs(flipped, tmp_path, capsys):
    path = tmp_path / "v.json"
    argv = ["verify", "--impls", f"lax,{flipped}", "--dtype", "float64", "--n", "3",
            "--no-torch", "--json", str(path)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    configs = V.sample_configs(3, seed=0)
    assert re.search(r"flipped vs lax\s+float64\s+3\s+\S+\s+\S+\s+3\n", out)
    assert "FAILED: 3 of 3 comparisons disagree:" in out
    assert re.search(r"config #0 float64 flipped vs lax: output max abs \S+ \(\S+x allowed\)\n"
                     + re.escape(f"    {configs[0].describe()}\n"), out)
    assert re.search(r"config #2 float64 flipped vs lax: d_input max abs", out)
    data = json.loads(path.read_text())
    assert data["passed"] is False and [f["config"] for f in data["failures"]] == [0, 1, 2]


def test_cli_verifies_complex64_against_pytorch(torch, capsys):
    assert main(["verify", "--impls", "lax,shift", "--dtype", "complex64", "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert "complex64 rtol=0.0001 atol=0.0001." in out
    assert "complex: the gradients compared are PyTorch's, conj(vjp(conj(ct)))" in out
    for pair in ("lax vs torch", "shift vs torch", "shift vs lax"):
        assert re.search(rf"{pair}\s+complex64\s+2\s+\S+\s+\S+\s+0\n", out)
    assert "OK: all 6 comparisons agree." in out


def test_cli_kind_selects_the_configs(capsys):
    assert main([*SMALL[:-3], "--n", "1", "--no-torch", "--kind", "transpose"]) == 0
    assert "1 configs (0 conv, 1 conv_transpose; seed 0)" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--impls", "lax,nope"], "argument --impls: unknown impl 'nope' in 'lax,nope'; choose "
     "distinct names from lax, gather, shift, fold, auto."),
    (["--impls", "lax,lax"], "argument --impls: a repeated impl in 'lax,lax'; choose "
     "distinct names from"),
    (["--dtype", "float32", "--dtype", "float32,int8"], "argument --dtype: unknown dtype "
     "'int8' in 'float32,int8'; choose from float16, bfloat16, float32, float64, complex64, "
     "complex128, int64."),
    (["--n", "0"], "argument --n: must be a positive integer, got '0'."),
    (["--n", "many"], "argument --n: must be a positive integer, got 'many'."),
    (["--kind", "deconv"], "argument --kind: invalid choice: 'deconv'"),
])
def test_cli_bad_arguments_exit_2_with_the_flag_and_value(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["verify", *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_no_torch_with_one_impl_exits_2(capsys):
    assert main(["verify", "--impls", "lax", "--no-torch"]) == 2
    assert capsys.readouterr().err == (
        "jaxconv verify: --no-torch needs at least two impls to compare, got --impls=lax.\n")


def test_help_lists_bench_and_verify(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert re.search(r"bench\s+benchmark impls", out)
    assert re.search(r"verify\s+check every impl against the others and PyTorch", out)
