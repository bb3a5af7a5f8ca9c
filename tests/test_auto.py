"""impl="auto": its per-kernel rules, explain_auto, and mixed kernels against PyTorch."""

from __future__ import annotations

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv
from jaxconv import _auto
from jaxconv._spec import conv_spec
from jaxconv.impls.fold import SPLIT_MAX_GROUPS

IMPLS = jaxconv.available_impls()


@pytest.mark.parametrize(("shapes", "kwargs", "picks"), [
    # depthwise (and channel multiplier 2): shift for all three kernels
    (((8, 128, 56, 56), (128, 1, 3, 3)), dict(padding=1, groups=128), ("shift",) * 3),
    (((8, 64, 56, 56), (128, 1, 3, 3)), dict(stride=2, padding=1, groups=64), ("shift",) * 3),
    # 32 groups of 4 channels: shift; 4 (up to 16) groups of 32: one dense convolution per
    # group (fold), in every rank; more groups of many channels: shift's per-tap matmuls
    (((8, 128, 28, 28), (128, 4, 3, 3)), dict(padding=1, groups=32), ("shift",) * 3),
    (((8, 128, 28, 28), (128, 32, 3, 3)), dict(padding=1, groups=4), ("fold",) * 3),
    (((8, 256, 14, 14), (256, 16, 3, 3)), dict(padding=1, groups=16), ("fold",) * 3),
    (((8, 128, 1024), (128, 32, 5)), dict(padding=2, groups=4), ("fold",) * 3),
    (((2, 64, 8, 28, 28), (64, 16, 3, 3, 3)), dict(padding=1, groups=4), ("fold",) * 3),
    (((8, 512, 14, 14), (512, 16, 3, 3)), dict(padding=1, groups=32), ("shift",) * 3),
    # a depthwise kernel so long the unrolled sum is too: gather forward
    (((1, 4, 4096), (4, 1, 601)), dict(groups=4), ("gather", "gather", "shift")),
    # dense: 1x1 and small spatial are matmuls; 2-d and 1-d stay on XLA's convolution
    (((8, 256, 28, 28), (256, 256, 1, 1)), {}, ("shift", "gather", "gather")),
    (((8, 512, 4, 4), (512, 512, 3, 3)), dict(padding=1), ("gather",) * 3),
    (((8, 512, 2, 2), (512, 512, 3, 3)), dict(padding=1), ("gather",) * 3),
    (((4, 512, 5, 5), (512, 512, 3, 3)), dict(padding=1), ("gather",) * 3),  # 25 positions
    (((4, 256, 10, 10), (256, 256, 3, 3)), dict(padding=1), ("lax",) * 3),  # 100
    # ... but with at most 64 output channels lax's, where the map is no smaller than the
    # kernel, at stride 1 and in 2-d
    (((8, 128, 4, 4), (32, 128, 3, 3)), dict(padding=1), ("lax",) * 3),
    (((8, 256, 5, 5), (64, 256, 3, 3)), dict(padding=1), ("lax",) * 3),
    (((8, 512, 4, 4), (128, 512, 3, 3)), dict(padding=1), ("gather",) * 3),
    (((8, 128, 2, 2), (32, 128, 3, 3)), dict(padding=1), ("gather",) * 3),
    (((8, 128, 4, 4), (32, 128, 3, 3)), dict(padding=2, dilation=2), ("gather",) * 3),
    (((8, 128, 8, 8), (32, 128, 3, 3)), dict(stride=2, padding=1), ("gather",) * 3),
    (((8, 128, 25), (32, 128, 3)), dict(padding=1), ("gather",) * 3),
    # (the output map too: a valid 3x3 on 4x4 leaves 2x2, which the input gradient convolves)
    (((8, 128, 4, 4), (32, 128, 3, 3)), {}, ("gather",) * 3),
    (((8, 128, 3, 3), (32, 128, 3, 3)), dict(padding=1, padding_mode="reflect"),
     ("lax",) * 3),
    # ... grouped with more than 8 channels per group, and 1x1, on tiny maps too (depthwise
    # keeps shift-and-add)
    (((8, 400, 2, 2), (400, 16, 3, 3)), dict(padding=1, groups=25), ("gather",) * 3),
    (((8, 128, 4, 4), (128, 32, 3, 3)), dict(padding=1, groups=4), ("gather",) * 3),
    (((8, 192, 2, 2), (1152, 192, 1, 1)), {}, ("gather",) * 3),
    (((8, 128, 2, 2), (128, 1, 3, 3)), dict(padding=1, groups=128), ("shift",) * 3),
    # ... and with 2-8 channels per group up to 16 positions (at 25, shift-and-add)
    (((8, 440, 2, 2), (440, 8, 3, 3)), dict(padding=1, groups=55), ("gather",) * 3),
    (((8, 256, 4, 4), (256, 8, 3, 3)), dict(padding=1, groups=32), ("gather",) * 3),
    (((8, 64, 4, 4), (64, 2, 3, 3)), dict(padding=1, groups=32), ("gather",) * 3),
    (((2, 440, 5, 5), (440, 8, 3, 3)), dict(padding=1, groups=55), ("shift",) * 3),
    (((8, 64, 4, 4), (64, 1, 3, 3)), dict(padding=1, groups=64), ("shift",) * 3),
    (((8, 64, 56, 56), (64, 64, 3, 3)), dict(padding=1), ("lax",) * 3),
    (((16, 32, 8000), (64, 32, 9)), dict(padding=4), ("lax",) * 3),
    # strided 2-d with few input channels and a kernel the stride phases fit (at most a
    # third more taps): fold's space-to-depth (image stems, patchify, 2x2 downsampling);
    # its forward only without zero taps (kernel sides multiples of the stride), its input
    # gradient only up to 4 channels or a 1x1 inner kernel (else stride phases), its
    # weight gradient only up to 16 channels and never with a 1x1 inner kernel
    (((8, 3, 224, 224), (64, 3, 7, 7)), dict(stride=2, padding=3), ("lax", "fold", "fold")),
    (((8, 3, 227, 227), (64, 3, 11, 11)), dict(stride=4, padding=2), ("lax", "fold", "fold")),
    (((8, 16, 112, 112), (64, 16, 7, 7)), dict(stride=2, padding=3), ("lax", "fold", "fold")),
    (((8, 32, 112, 112), (64, 32, 4, 4)), dict(stride=2, padding=1), ("fold", "fold", "lax")),
    (((8, 32, 112, 112), (64, 32, 7, 7)), dict(stride=2, padding=3), ("lax", "fold", "lax")),
    (((8, 3, 224, 224), (96, 3, 4, 4)), dict(stride=4), ("fold", "fold", "lax")),
    (((8, 96, 56, 56), (192, 96, 2, 2)), dict(stride=2), ("fold", "fold", "shift")),
    # ... not with 64 channels, nor where the phases add over a third more taps (3x3 and
    # 5x5 at stride 2), nor dilated, nor in 1-d (undilated input gradients: stride phases)
    (((8, 64, 56, 56), (64, 64, 7, 7)), dict(stride=2, padding=3), ("lax", "fold", "lax")),
    (((8, 4, 64, 64), (32, 4, 3, 3)), dict(stride=2, padding=1), ("lax", "fold", "lax")),
    (((8, 32, 56, 56), (64, 32, 5, 5)), dict(stride=2, padding=2), ("lax", "fold", "lax")),
    (((8, 3, 224, 224), (64, 3, 4, 4)), dict(stride=(2, 1), dilation=2),
     ("lax", "lax", "lax")),
    (((8, 3, 4096), (64, 3, 4)), dict(stride=4), ("lax", "fold", "lax")),
    # strided 2-d with many input channels: shift's per-tap matmuls for the weight gradient;
    # strided input gradients with at least 100 output positions per sample: stride phases
    (((8, 128, 28, 28), (256, 128, 3, 3)), dict(stride=2, padding=1), ("lax", "fold", "shift")),
    (((8, 64, 56, 56), (128, 64, 3, 3)), dict(stride=2, padding=1), ("lax", "fold", "shift")),
    (((8, 256, 28, 28), (256, 256, 3, 3)), dict(stride=2, padding=1), ("lax", "fold", "shift")),
    # ... with 49 (7x7) or 81, lax's input gradient (99 in 1-d)
    (((8, 256, 14, 14), (512, 256, 3, 3)), dict(stride=2, padding=1), ("lax", "lax", "shift")),
    (((8, 64, 18, 18), (64, 64, 3, 3)), dict(stride=2, padding=1), ("lax", "lax", "shift")),
    (((8, 64, 198), (128, 64, 3)), dict(stride=2, padding=1), ("lax",) * 3),
    (((32, 128, 14, 14), (256, 128, 3, 3)), dict(stride=2, padding=1),
     ("lax", "lax", "shift")),
    # ... but not shift's with fewer channels, a larger kernel, nor in 1-d
    (((8, 32, 112, 112), (64, 32, 3, 3)), dict(stride=2, padding=1), ("lax", "fold", "lax")),
    (((8, 64, 56, 56), (64, 64, 5, 5)), dict(stride=2, padding=2), ("lax", "fold", "lax")),
    (((8, 64, 4096), (128, 64, 3)), dict(stride=2, padding=1), ("lax", "fold", "lax")),
    (((8, 64, 100), (128, 64, 3)), dict(stride=2, padding=1), ("lax",) * 3),
    (((8, 64, 56, 56), (64, 64, 3, 3)), dict(padding=1, padding_mode="reflect"), ("lax",) * 3),
    # 3-d dense: folded into one 2-d XLA convolution
    (((2, 16, 8, 32, 32), (32, 16, 3, 3, 3)), dict(padding=1), ("fold",) * 3),
    (((2, 16, 8, 32, 32), (32, 16, 3, 3, 3)), dict(padding=1, padding_mode="circular"),
     ("fold",) * 3),
])
def test_rules_on_cpu(shapes, kwargs, picks):
    choice = jaxconv.explain_auto(*shapes, **kwargs, backend="cpu", avx512=True)
    assert choice.impls == picks
    assert all(choice.reasons)
    assert str(choice).splitlines()[0].startswith("forward")


@pytest.mark.parametrize(("shapes", "kwargs", "picks"), [
    # stride 1 with a padding mode, too short for lax to keep W off YNNPACK (3 more taps
    # on 14: over 1/8), and strided layers space-to-depth does not take with at most 4
    # channels: gather's W; strided with 32-63 channels and at most 9 taps: shift's W
    (((8, 64, 14, 14), (64, 64, 3, 3)), dict(padding=1, padding_mode="reflect"),
     ("lax", "lax", "gather")),
    (((8, 64, 14, 14), (64, 64, 3, 3)), dict(padding=1, padding_mode="replicate"),
     ("lax", "lax", "gather")),
    (((8, 64, 14, 14), (64, 64, 3, 3)), dict(padding="same", padding_mode="circular"),
     ("lax", "lax", "gather")),
    (((8, 4, 64, 64), (32, 4, 3, 3)), dict(stride=2, padding=1), ("lax", "fold", "gather")),
    (((8, 3, 224, 224), (96, 3, 4, 4)), dict(stride=4), ("fold", "fold", "gather")),
    (((8, 32, 112, 112), (64, 32, 3, 3)), dict(stride=2, padding=1), ("lax", "fold", "shift")),
    (((8, 32, 56, 56), (64, 32, 2, 2)), dict(stride=2), ("fold", "fold", "shift")),
    # ... not where lax keeps W off YNNPACK (long enough, or at most 16 channels), nor
    # with zero padding at stride 1 (W alone is faster, the program is not), nor a
    # padding mode that pads nothing, nor strided with 5-31 channels, nor with 32-63 and a
    # 5x5 kernel
    (((8, 64, 56, 56), (64, 64, 3, 3)), dict(padding=1, padding_mode="reflect"), ("lax",) * 3),
    (((8, 64, 56, 56), (64, 64, 3, 3)), dict(padding="same", padding_mode="circular"),
     ("lax",) * 3),
    (((8, 16, 14, 14), (16, 16, 3, 3)), dict(padding=1, padding_mode="reflect"), ("lax",) * 3),
    (((8, 64, 56, 56), (64, 64, 3, 3)), dict(padding=0, padding_mode="reflect"), ("lax",) * 3),
    (((8, 5, 64, 64), (32, 5, 5, 5)), dict(stride=2, padding=2), ("lax", "fold", "lax")),
    (((8, 5, 64, 64), (32, 5, 3, 3)), dict(stride=2, padding=1), ("lax", "fold", "lax")),
    (((8, 31, 64, 64), (32, 31, 3, 3)), dict(stride=2, padding=1), ("lax", "fold", "lax")),
    (((8, 32, 56, 56), (64, 32, 5, 5)), dict(stride=2, padding=2), ("lax", "fold", "lax")),
    (((8, 64, 56, 56), (64, 64, 3, 3)), dict(padding=1), ("lax",) * 3),
    (((8, 64, 56, 56), (64, 64, 3, 3)), dict(padding=2, dilation=2), ("lax",) * 3),
    (((8, 64, 56, 56), (64, 64, 3, 3)), dict(stride=2, padding=1, padding_mode="reflect"),
     ("lax", "fold", "shift")),
    # ... unchanged: space-to-depth stems, strided with >= 64 channels (shift), strided
    # 5x5 with many channels, 1-d, 3-d, grouped, 1x1 and small spatial
    (((8, 3, 224, 224), (64, 3, 7, 7)), dict(stride=2, padding=3), ("lax", "fold", "fold")),
    (((8, 128, 28, 28), (256, 128, 3, 3)), dict(stride=2, padding=1), ("lax", "fold", "shift")),
    (((8, 64, 56, 56), (64, 64, 5, 5)), dict(stride=2, padding=2), ("lax", "fold", "lax")),
    (((16, 32, 8000), (64, 32, 9)), dict(padding=4), ("lax",) * 3),
    (((2, 16, 8, 32, 32), (32, 16, 3, 3, 3)), dict(padding=1), ("fold",) * 3),
    (((8, 128, 28, 28), (128, 32, 3, 3)), dict(padding=1, groups=4), ("fold",) * 3),
    (((8, 256, 28, 28), (256, 256, 1, 1)), {}, ("shift", "gather", "gather")),
    (((8, 512, 4, 4), (512, 512, 3, 3)), dict(padding=1), ("gather",) * 3),
])
def test_rules_on_cpus_without_avx512(shapes, kwargs, picks):
    choice = jaxconv.explain_auto(*shapes, **kwargs, backend="cpu", avx512=False)
    assert choice.impls == picks
    with_avx512 = jaxconv.explain_auto(*shapes, **kwargs, backend="cpu", avx512=True)
    changed = with_avx512.impls != picks
    assert changed == ("without AVX-512" in choice.reasons[2])
    assert with_avx512.impls[:2] == picks[:2]


@pytest.mark.parametrize("avx512", [True, False])
def test_auto_follows_the_machines_avx512(monkeypatch, avx512):
    """explain_auto's default and the call's resolution both ask cpu_has_avx512."""
    monkeypatch.setattr(_auto, "cpu_has_avx512", lambda: avx512)
    picks = ("lax", "lax", "lax" if avx512 else "gather")
    shapes = ((2, 64, 14, 14), (64, 64, 3, 3))
    assert jaxconv.explain_auto(*shapes, padding=1, padding_mode="reflect",
                                backend="cpu").impls == picks
    spec, _ = conv_spec("conv2d", *(np.broadcast_to(np.float32(0), s) for s in shapes), None,
                        1, 1, 1, 1, "reflect", None)
    if jax.default_backend() == "cpu":
        resolved = _auto.resolve_impl("conv2d", "auto", spec, *shapes, jnp.float32)
        assert resolved.kernel_impls == picks


def _cpuinfo(*flag_lines):
    return "".join(f"processor\t: {i}\nvendor_id\t: X\nflags\t\t: {flags}\n\n"
                   for i, flags in enumerate(flag_lines))


@pytest.mark.parametrize(("text", "expected"), [
    (_cpuinfo("fpu avx2 fma", "fpu avx2 fma"), False),
    (_cpuinfo("fpu avx2 avx512f avx512bw", "fpu avx2"), True),
    (_cpuinfo("fpu avx2", "fpu avx2 avx512f"), False),  # the first processor's line only
    ("processor\t: 0\nFeatures\t: fp asimd sve\n", True),  # ARM: no x86 flags line
    (None, True),  # no /proc/cpuinfo
], ids=["avx2", "avx512", "first-line-only", "arm", "unreadable"])
def test_cpu_has_avx512_reads_the_first_flags_line(tmp_path, monkeypatch, text, expected):
    cpuinfo = tmp_path / "cpuinfo"  # absent when text is None: open raises FileNotFoundError
    if text is not None:
        cpuinfo.write_text(text)
    monkeypatch.setattr(_auto, "_CPUINFO", str(cpuinfo))
    _auto.cpu_has_avx512.cache_clear()
    try:
        assert _auto.cpu_has_avx512() is expected
    finally:
        _auto.cpu_has_avx512.cache_clear()


@pytest.mark.parametrize("backend", ["gpu", "tpu"])
def test_other_backends_keep_lax(backend):
    choice = jaxconv.explain_auto((8, 128, 56, 56), (128, 1, 3, 3), padding=1, groups=128,
                                  backend=backend)
    assert choice.impls == ("lax",) * 3
    assert choice.reasons[0] == (f"backend {backend!r}: lax (no measurement on this backend "
                                 "says otherwise)")


def test_conv_transpose_is_described_by_the_convolution_it_transposes():
    """conv_transpose(x: (N, 64, 28, 28), w: (64, 64 // 64, 3, 3), groups=64) transposes a
    depthwise convolution: its forward is that convolution's input gradient."""
    choice = jaxconv.explain_auto((8, 64, 28, 28), (64, 1, 3, 3), stride=2, padding=1,
                                  groups=64, transpose=True, output_padding=1, backend="cpu")
    assert choice.impls == ("shift",) * 3


@pytest.mark.parametrize(("shapes", "kwargs", "side"), [
    (((2, 16, 8, 32, 32), (32, 16, 3, 3, 3)), dict(padding=1), "output"),
    (((2, 8, 8, 32, 32), (64, 8, 3, 3, 3)), dict(padding=1), "input"),
    (((2, 16, 8, 32, 32), (16, 16, 3, 3, 3)), dict(padding=1, stride=(2, 1, 1)), "input"),
])
def test_explain_auto_names_the_side_of_the_3d_forward_fold(shapes, kwargs, side):
    """fold's 3-d forward folds on the output side with stride 1 there and at most
    OUTPUT_SIDE_MAX_RATIO times as many outputs as inputs per group; the reason says so."""
    choice = jaxconv.explain_auto(*shapes, **kwargs, backend="cpu", avx512=True)
    assert choice.impls[0] == "fold"
    assert f"folded into batch and channels on the {side} side" in choice.reasons[0]


def test_explain_auto_validates_like_the_call():
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.explain_auto: padding='same' is not supported for strided convolutions")):
        jaxconv.explain_auto((1, 2, 8, 8), (2, 2, 3, 3), stride=2, padding="same")


def test_auto_resolves_to_the_explained_kernels():
    x = jnp.ones((2, 8, 9, 9))
    w = jnp.ones((8, 1, 3, 3))
    spec, _ = conv_spec("conv2d", x, w, None, 1, 1, 1, 8, "zeros", None)
    resolved = _auto.resolve_impl("conv2d", "auto", spec, x.shape, w.shape, x.dtype)
    expected = jaxconv.explain_auto(x.shape, w.shape, padding=1, groups=8)
    assert resolved.kernel_impls == expected.impls


# fold is lax in dense 2-d: its mixes are tested in 3-d below, its group split after.
TRIPLES = [t for t in itertools.product(("lax", "gather", "shift"), repeat=3)
           if len(set(t)) > 1]


@pytest.mark.parametrize("triple", TRIPLES, ids="-".join)
def test_mixed_kernels_match_torch(torch, triple):
    """Every mix of impls across F, T, W (what auto may build) computes PyTorch's
    convolution and gradients, and grad-of-grad, in float64."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((6, 2, 3, 2))
    b = rng.standard_normal(6)
    kw = dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    cot = rng.standard_normal((2, 6, 4, 6))
    f = lambda x, w, b: jnp.vdot(jaxconv.conv2d(x, w, b, **kw, impl=triple), cot)
    y = jaxconv.conv2d(x, w, b, **kw, impl=triple)
    grads = jax.jit(jax.grad(f, argnums=(0, 1, 2)))(x, w, b)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, **kw)
    (ty * torch.tensor(cot)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    for got, want in zip(grads, (tx.grad, tw.grad, tb.grad), strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-10)
    # second order through the mixed family equals lax's
    gg = lambda impl: jax.grad(lambda w: jnp.sum(jax.grad(
        lambda x: jnp.sum(jnp.tanh(jaxconv.conv2d(x, w, b, **kw, impl=impl))))(x) ** 2))(w)
    np.testing.assert_allclose(gg(triple), gg("lax"), rtol=1e-10, atol=1e-10)


def _vjp_matches_torch(torch, fn, torch_fn, x, w, kw, impl, rng):
    """``fn(x, w, **kw, impl=impl)`` and its VJP (random cotangent) equal PyTorch's."""
    y, vjp = jax.vjp(lambda x, w: fn(x, w, **kw, impl=impl), x, w)
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    ty = torch_fn(tx, tw, **kw)
    cot = rng.standard_normal(y.shape)
    (ty * torch.tensor(cot)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    for got, want in zip(vjp(cot), (tx.grad, tw.grad), strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("triple", [("fold", "lax", "shift"), ("gather", "fold", "fold"),
                                    ("shift", "shift", "fold")], ids="-".join)
@pytest.mark.parametrize("stride", [1, 2])
def test_mixed_kernels_with_fold_in_3d_match_torch(torch, triple, stride):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 5, 6, 5))
    w = rng.standard_normal((6, 2, 3, 2, 2))
    kw = dict(stride=stride, padding=(1, 0, 1), dilation=(1, 2, 1), groups=2)
    _vjp_matches_torch(torch, jaxconv.conv3d, torch.nn.functional.conv3d, x, w, kw, triple,
                       rng)


@pytest.mark.parametrize(("channels", "avx512", "picks"), [
    (24, True, ("lax", "fold", "lax")),
    (24, False, ("lax", "fold", "lax")),
    (32, False, ("lax", "fold", "shift")),
    (4, False, ("lax", "fold", "gather")),
    (64, True, ("lax", "fold", "shift")),
])
def test_auto_on_strided_layers_matches_torch(torch, monkeypatch, channels, avx512, picks):
    """The strided rules (stride phases for T; shift's W from 64 channels, and on AVX2
    from 32, gather's up to 4) build these mixes, which compute PyTorch's gradients."""
    monkeypatch.setattr(_auto, "cpu_has_avx512", lambda: avx512)
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((2, channels, 20, 19))
    w = rng.standard_normal((4, channels, 3, 3))
    kw = dict(stride=2, padding=1)
    assert jaxconv.explain_auto(x.shape, w.shape, **kw, dtype="float64",
                                backend="cpu").impls == picks
    _vjp_matches_torch(torch, jaxconv.conv2d, torch.nn.functional.conv2d, x, w, kw, "auto",
                       rng)


def test_auto_conv_transpose_runs_stride_phases_like_torch(torch):
    """conv_transpose's forward is the input gradient of the convolution it transposes:
    with 24 channels and 100 positions, auto runs it as fold's stride phases."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 8, 10, 10))
    w = rng.standard_normal((8, 24, 3, 3))
    kw = dict(stride=2, padding=1, output_padding=1)
    choice = jaxconv.explain_auto(x.shape, w.shape, **kw, transpose=True, dtype="float64",
                                  backend="cpu")
    assert choice.input_grad == "fold"
    _vjp_matches_torch(torch, jaxconv.conv_transpose2d, torch.nn.functional.conv_transpose2d,
                       x, w, kw, "auto", rng)


def _xla_convs(fn, *args) -> int:
    """How many XLA convolutions the lowered program of ``fn(*args)`` holds (the kernels
    are primitives' lowerings, so the jaxpr names only the primitives)."""
    return jax.jit(fn).lower(*args).as_text().count("stablehlo.convolution")


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("groups", [2, SPLIT_MAX_GROUPS, SPLIT_MAX_GROUPS + 1])
@pytest.mark.parametrize("stride", [1, 2])
def test_fold_splits_groups_like_torch(torch, rank, groups, stride):
    """impl="fold" computes up to SPLIT_MAX_GROUPS groups as one dense XLA convolution each
    (F, T and W), and more as lax's one grouped convolution; both are PyTorch's."""
    rng = np.random.default_rng(rank * 100 + groups)
    x = rng.standard_normal((2, 2 * groups, *(5,) * rank))
    w = rng.standard_normal((3 * groups, 2, *(3,) * rank))
    # stride 2 with dilation 1: fold's input gradient in stride phases, split per group
    kw = dict(stride=stride, padding=1, dilation=3 - stride, groups=groups)
    torch_fn = getattr(torch.nn.functional, f"conv{rank}d")
    _vjp_matches_torch(torch, jaxconv.conv, torch_fn, x, w, kw, "fold", rng)
    forward = lambda x, w: jaxconv.conv(x, w, **kw, impl="fold")
    y = forward(x, w)
    per_kernel = groups if groups <= SPLIT_MAX_GROUPS else 1
    if rank < 3:  # 3-d folds further
        phases = stride**rank  # T: one stride-1 convolution per phase
        assert _xla_convs(forward, x, w) == per_kernel
        # W and T's phases (the VJP's unused forward is dropped from the program)
        assert _xla_convs(lambda x, w: jax.vjp(forward, x, w)[1](y), x, w) == (
            (1 + phases) * per_kernel)


@pytest.mark.parametrize("triple", [("lax", "shift", "gather"), ("gather", "lax", "shift"),
                                    ("fold", "fold", "shift")], ids="-".join)
def test_mixed_kernels_in_conv_transpose(torch, triple):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 5))
    w = rng.standard_normal((4, 3, 3))
    kw = dict(stride=2, padding=1, output_padding=1, groups=2)
    _vjp_matches_torch(torch, jaxconv.conv_transpose1d, torch.nn.functional.conv_transpose1d,
                       x, w, kw, triple, rng)


@pytest.mark.parametrize("impl", [("lax", "gather"), ("lax", "gather", "nope"), ["lax"] * 3, 3])
def test_bad_impl_tuples_are_rejected(impl):
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.conv1d: `impl` must be one of ('auto', 'lax', 'gather', 'shift', "
            "'fold'), or a (forward, input_grad, weight_grad) tuple of those impls, got "
            f"impl={impl!r}.")):
        jaxconv.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 2)), impl=impl)


# --- the inference forward: a call that is not differentiated may run another impl's F ---

def _program(fn, *args):
    """The XLA program id (:func:`jaxconv.benchmark.program_id`) of ``jit(fn)``."""
    from jaxconv.benchmark import program_id
    return program_id(jax.jit(fn).lower(*args).compile())


def _inference_arrays():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((3, 10, 7, 5)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((6, 10, 1, 1)), jnp.float32)
    return x, w


@pytest.mark.parametrize("avx512", [False, True])
def test_auto_1x1_forward_alone_and_under_grad(monkeypatch, avx512):
    """1x1 on a CPU without AVX-512: a plain auto call compiles to gather's forward
    program (the faster alone there), its value_and_grad (and grad of grad) to the
    program of the triple (shift, gather, gather) (shift's forward is the faster in
    the forward+backward program). With AVX-512 the plain call is shift's forward
    (the faster alone too). Values and gradients agree with lax's."""
    monkeypatch.setattr(_auto, "cpu_has_avx512", lambda: avx512)
    x, w = _inference_arrays()
    plain = lambda impl: lambda a, b: jaxconv.conv2d(a, b, impl=impl)
    alone, other = ("shift", "gather") if avx512 else ("gather", "shift")
    assert _program(plain("auto"), x, w) == _program(plain(alone), x, w)
    assert _program(plain("auto"), x, w) != _program(plain(other), x, w)
    loss = lambda impl: lambda a, b: jnp.sum(jaxconv.conv2d(a, b, impl=impl) ** 2)
    triple = ("shift", "gather", "gather")
    vag = lambda impl: jax.value_and_grad(loss(impl), argnums=(0, 1))
    assert _program(vag("auto"), x, w) == _program(vag(triple), x, w)
    assert _program(vag("auto"), x, w) != _program(vag("gather"), x, w)
    gg = lambda impl: jax.grad(lambda a, b: jnp.sum(jax.grad(loss(impl))(a, b) ** 2))
    assert _program(gg("auto"), x, w) == _program(gg(triple), x, w)
    np.testing.assert_allclose(plain("auto")(x, w), plain("lax")(x, w), rtol=1e-5, atol=1e-5)
    (value, grads), (ref_value, ref_grads) = vag("auto")(x, w), vag("lax")(x, w)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("how", ["autodiff_jax", "transpose"])
def test_no_inference_forward_with_autodiff_jax_or_conv_transpose(how):
    """autodiff="jax" and conv_transpose run the forward kernel auto names for them:
    their plain programs are those of the impl triple."""
    x, w = _inference_arrays()
    triple = ("shift", "gather", "gather")
    if how == "autodiff_jax":
        f = lambda impl: lambda a, b: jaxconv.conv2d(a, b, impl=impl, autodiff="jax")
        assert _program(f("auto"), x, w) == _program(f(triple), x, w)
    else:  # its forward is the input gradient (gather's); F runs in its gradient
        g = jnp.ones((3, 6, 7, 5), jnp.float32)
        f = lambda impl: jax.grad(
            lambda a, b: jnp.sum(jaxconv.conv_transpose2d(a, b, impl=impl) ** 2))
        assert _program(f("auto"), g, w) == _program(f(triple), g, w)
    assert jaxconv.explain_auto((3, 6, 7, 5), (6, 10, 1, 1), transpose=True).inference is None


@pytest.mark.parametrize(("shapes", "kwargs", "inference"), [
    (((8, 3, 224, 224), (32, 3, 3, 3)), dict(stride=2, padding=1), "shift"),  # stem_3x3_s2
    (((8, 4, 64, 64), (16, 4, 2, 2)), dict(stride=2), None),  # space-to-depth: fold's F
    (((8, 3, 224, 224), (64, 3, 7, 7)), dict(stride=2, padding=3), None),  # 49 taps
    (((8, 8, 64, 64), (32, 8, 3, 3)), dict(stride=2, padding=1), None),  # 8 channels
    (((8, 3, 64, 64), (32, 3, 3, 3)), dict(padding=1), None),  # stride 1
])
def test_inference_forward_of_strided_stems(shapes, kwargs, inference):
    """A strided 2-d stem (<= 4 input channels, <= 9 taps) runs shift's forward where
    the call is not differentiated (stem_3x3_s2: 2.7 ms against lax's 7.8 on the Zen
    5); its differentiated kernels are unchanged."""
    choice = jaxconv.explain_auto(*shapes, **kwargs, backend="cpu", avx512=True)
    assert choice.inference == inference
    if inference:
        assert re.search(r"^inference\s+shift\s+strided 2-d stem, 3 input channels \(<= 4\), "
                         r"9 taps \(<= 9\): one matmul per tap", str(choice), re.M)
        assert choice.forward == "lax"


def test_explain_auto_names_the_inference_forward():
    choice = jaxconv.explain_auto((8, 256, 28, 28), (256, 256, 1, 1), avx512=False)
    assert (choice.forward, choice.inference) == ("shift", "gather")
    assert re.search(r"^inference\s+gather\s+1x1 kernel.*the faster alone on a CPU without "
                     r"AVX-512\)$", str(choice), re.M)
    with_avx512 = jaxconv.explain_auto((8, 256, 28, 28), (256, 256, 1, 1), avx512=True)
    assert with_avx512.impls == choice.impls and with_avx512.inference is None
    assert "inference" not in str(with_avx512)
    dense = jaxconv.explain_auto((8, 64, 56, 56), (64, 64, 3, 3), padding=1)
    assert dense.inference is None and "inference" not in str(dense)


def test_grouped_tiny_map_rule_says_why():
    """The grouped tiny-map row names the groups, channels, positions and threshold."""
    choice = jaxconv.explain_auto((8, 440, 2, 2), (440, 8, 3, 3), padding=1, groups=55,
                                  backend="cpu", avx512=True)
    assert choice.reasons == ("55 groups of 8 input channels on 4 output positions per "
                              "sample (<= 16): im2col + one matmul per group",) * 3


def test_small_map_few_output_channels_rule_says_why():
    """The small-map row's lax exception names positions, channels and thresholds."""
    choice = jaxconv.explain_auto((8, 128, 4, 4), (32, 128, 3, 3), padding=1, backend="cpu",
                                  avx512=True)
    assert choice.reasons == ("16 output positions per sample (<= 25), but 32 output "
                              "channels (<= 64) on input and output maps no smaller than the "
                              "kernel: XLA's CPU convolution",) * 3


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_small_map_few_output_channels_rule_only_with_avx512(mode):
    """Measured on an AVX-512 machine only: without AVX-512 such layers keep gather's
    (and the mode-padded one never reaches lax's weight gradient, which is slow there)."""
    shapes, kwargs = ((8, 128, 4, 4), (32, 128, 3, 3)), dict(padding=1, padding_mode=mode)
    assert jaxconv.explain_auto(*shapes, **kwargs, avx512=True).impls == ("lax",) * 3
    assert jaxconv.explain_auto(*shapes, **kwargs, avx512=False).impls == ("gather",) * 3
