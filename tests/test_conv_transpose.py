"""conv_transpose against PyTorch, the adjoint law, every impl, gradients, errors."""

import dataclasses
import itertools
import random
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv

IMPLS = jaxconv.available_impls()
FUNCS = {1: jaxconv.conv_transpose1d, 2: jaxconv.conv_transpose2d, 3: jaxconv.conv_transpose3d}
CONVS = {1: jaxconv.conv1d, 2: jaxconv.conv2d, 3: jaxconv.conv3d}


@dataclasses.dataclass(frozen=True)
class TCase:
    rank: int
    batch: str
    groups: int
    group_in: int
    group_out: int
    spatial: tuple
    kernel: tuple
    stride: object
    padding: object
    output_padding: object
    dilation: object
    bias: bool

    @property
    def id(self):
        return (f"{self.rank}d-{self.batch}-g{self.groups}-k{self.kernel}-s{self.stride}"
                f"-p{self.padding}-op{self.output_padding}-d{self.dilation}"
                f"-{'b' if self.bias else 'nb'}").replace(" ", "")

    @property
    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding,
                    output_padding=self.output_padding, groups=self.groups,
                    dilation=self.dilation)

    def arrays(self, dtype=np.float64, seed=0):
        rng = np.random.default_rng(seed)
        c_in, c_out = self.groups * self.group_in, self.groups * self.group_out
        n = {"batched": (2,), "unbatched": (), "zero": (0,)}[self.batch]
        x = rng.standard_normal((*n, c_in, *self.spatial)).astype(dtype)
        w = rng.standard_normal((c_in, self.group_out, *self.kernel)).astype(dtype)
        b = rng.standard_normal(c_out).astype(dtype) if self.bias else None
        return x, w, b


def _draw(rng, rank):
    """Stride, dilation and an output_padding legal for them (< stride or < dilation)."""
    stride = rng.choice((1, 2, 3))
    dilation = rng.choice((1, 2))
    output_padding = rng.randrange(max(stride, dilation))
    kernel = tuple(rng.choice((1, 2, 3, 4)) for _ in range(rank))
    groups, group_in, group_out = rng.choice(((1, 2, 3), (2, 2, 1), (3, 1, 1), (2, 1, 2)))
    padding = rng.choice((0, 1, (1, 0, 2)[:rank] if rank > 1 else 2))
    spatial = tuple(rng.choice((3, 4, 5)) for _ in range(rank))
    return TCase(rank, rng.choice(("batched", "unbatched", "zero")), groups, group_in,
                 group_out, spatial, kernel, stride, padding, output_padding, dilation,
                 rng.random() < 0.7)


def _grid(per_rank=20, seed=5):
    rng = random.Random(seed)
    cases = [_draw(rng, r) for r, _ in itertools.product((1, 2, 3), range(per_rank))]
    # Non-positive output sizes are an error (tested below), not a parity case.
    return [c for c in cases if all(
        (n - 1) * c.stride - 2 * p + c.dilation * (k - 1) + c.output_padding + 1 > 0
        for n, k, p in zip(c.spatial, c.kernel, (c.padding,) * c.rank
                           if isinstance(c.padding, int) else c.padding, strict=True))]


GRID = _grid()


def _torch(torch, case, x, w, b):
    f = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
         3: torch.nn.functional.conv_transpose3d}[case.rank]
    t = lambda a: None if a is None else torch.from_numpy(a)
    return f(t(x), t(w), t(b), **case.kwargs).numpy()


def test_grid_covers_the_interesting_cases():
    assert len(GRID) >= 50
    assert any(c.output_padding >= c.stride for c in GRID)  # legal through dilation
    assert {c.batch for c in GRID} == {"batched", "unbatched", "zero"}
    assert {c.groups for c in GRID} >= {1, 2, 3}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", GRID, ids=lambda c: c.id)
def test_matches_torch_forward_and_gradients_float64(torch, case, impl):
    x, w, b = case.arrays()
    fn = FUNCS[case.rank]
    y = fn(x, w, b, **case.kwargs, impl=impl)
    expected = _torch(torch, case, x, w, b)
    assert y.shape == expected.shape and y.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-10, atol=1e-10)

    cot = np.random.default_rng(1).standard_normal(expected.shape)
    args = (x, w) if b is None else (x, w, b)
    grads = jax.jit(jax.grad(lambda *a: jnp.vdot(fn(*a, **case.kwargs, impl=impl), cot),
                             argnums=tuple(range(len(args)))))(*args)
    targs = [torch.from_numpy(a).requires_grad_() for a in args]
    tf = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
          3: torch.nn.functional.conv_transpose3d}[case.rank]
    tf(*targs, **case.kwargs).backward(torch.from_numpy(cot))
    for got, want in zip(grads, targs, strict=True):
        np.testing.assert_allclose(np.asarray(got), want.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", GRID[::4], ids=lambda c: c.id)
def test_float32_matches_torch(torch, case):
    x, w, b = case.arrays(np.float32)
    y = jaxconv.conv_transpose(x, w, b, **case.kwargs)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), _torch(torch, case, x, w, b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", GRID[::5], ids=lambda c: c.id)
def test_impls_agree_including_gradients(case):
    x, w, b = case.arrays()
    fn = FUNCS[case.rank]
    outs = {}
    for impl in IMPLS:
        f = lambda x, w, impl=impl: fn(x, w, b, **case.kwargs, impl=impl)
        y, vjp = jax.vjp(f, jnp.asarray(x), jnp.asarray(w))
        outs[impl] = (y, *vjp(jnp.cos(jnp.arange(y.size, dtype=y.dtype)).reshape(y.shape)))
    ref = outs[IMPLS[0]]
    for impl in IMPLS[1:]:
        for a, c in zip(outs[impl], ref, strict=True):
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", GRID[::3], ids=lambda c: c.id)
def test_is_the_adjoint_of_conv(case, impl):
    """<conv(u, w), x> == <u, conv_transpose(x, w)> for the matching configuration."""
    x, w, _ = case.arrays()
    y = FUNCS[case.rank](x, w, **case.kwargs, impl=impl)
    u = np.random.default_rng(2).standard_normal(y.shape)
    conv_kw = dict(stride=case.stride, padding=case.padding, dilation=case.dilation,
                   groups=case.groups, impl=impl)
    cu = CONVS[case.rank](u, w, **conv_kw)
    # conv of the transposed output size can give more positions (output_padding >=
    # stride): conv_transpose is the adjoint of conv followed by that crop.
    cu = cu[(..., *(slice(0, n) for n in x.shape[-case.rank:]))]
    np.testing.assert_allclose(jnp.vdot(cu, x), jnp.vdot(u, y), rtol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_grad_of_grad_matches_jax_autodiff_and_torch(torch, impl):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 5, 4))
    w = rng.standard_normal((4, 3, 3, 2))
    kw = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1)

    def gg(autodiff):
        inner = lambda x, w: jnp.sum(jnp.tanh(jaxconv.conv_transpose2d(
            x, w, **kw, impl=impl, autodiff=autodiff)))
        outer = lambda x, w: sum(jnp.sum(g**2) for g in jax.grad(inner, (0, 1))(x, w))
        return jax.grad(outer, (0, 1))(x, w)

    tx, tw = (torch.from_numpy(a).requires_grad_() for a in (x, w))
    gx, gw = torch.autograd.grad(
        torch.tanh(torch.nn.functional.conv_transpose2d(tx, tw, **kw)).sum(), (tx, tw),
        create_graph=True)
    expected = torch.autograd.grad((gx**2).sum() + (gw**2).sum(), (tx, tw))
    for got, ad, want in zip(gg("custom"), gg("jax"), expected, strict=True):
        np.testing.assert_allclose(got, ad, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-10)


def test_decoder_upsampling_layer_shape():
    x = jnp.ones((8, 64, 28, 28), jnp.float32)
    w = jnp.ones((64, 32, 4, 4), jnp.float32)
    y = jax.eval_shape(lambda: jaxconv.conv_transpose2d(x, w, stride=2, padding=1))
    assert y.shape == (8, 32, 56, 56)


X = np.zeros((2, 4, 5), np.float32)
W = np.zeros((4, 3, 3), np.float32)

ERRORS = [
    ("output-padding-limit", dict(stride=2, output_padding=2), ValueError,
     "jaxconv.conv_transpose1d: `output_padding` must be smaller than either stride or "
     "dilation on each axis, got output_padding=(2,), stride=(2,), dilation=(1,)."),
    ("output-padding-negative", dict(output_padding=-1), ValueError,
     "jaxconv.conv_transpose1d: `output_padding` must be non-negative, got output_padding=-1."),
    ("padding-negative", dict(padding=-1), ValueError,
     "jaxconv.conv_transpose1d: `padding` must be non-negative, got padding=-1."),
    ("padding-string", dict(padding="same"), TypeError,
     "jaxconv.conv_transpose1d: `padding` must be an int, or a tuple of 1 ints or (low, high) "
     "pairs, got 'same'."),
    ("groups-divide", dict(groups=3), ValueError,
     "jaxconv.conv_transpose1d: in channels (weight.shape[0]=4) must be divisible by "
     "`groups` (=3)."),
    ("groups-zero", dict(groups=0), ValueError,
     "jaxconv.conv_transpose1d: `groups` must be positive, got groups=0."),
    ("stride-zero", dict(stride=0), ValueError,
     "jaxconv.conv_transpose1d: `stride` must be positive, got stride=0."),
    ("dilation-length", dict(dilation=(1, 1)), ValueError,
     "jaxconv.conv_transpose1d: `dilation` must be an int or a tuple of 1 ints for a 1-d "
     "convolution, got dilation=(1, 1) of length 2."),
    ("output-size", dict(padding=4), ValueError,
     "jaxconv.conv_transpose1d: the output size (in - 1) * stride - pad_low - pad_high + "
     "dilation * (kernel - 1) + output_padding + 1 must be positive, got (-1,) for input size "
     "(5,), padding ((4, 4),)."),
    ("bias-shape", dict(bias=np.zeros(4, np.float32)), ValueError,
     "jaxconv.conv_transpose1d: `bias` must have shape (3,) to match weight.shape[1] * groups, "
     "got bias.shape=(4,)."),
    ("impl", dict(impl="nope"), ValueError, "jaxconv.conv_transpose1d: `impl` must be one of"),
    ("autodiff", dict(autodiff="fwd"), ValueError,
     "jaxconv.conv_transpose1d: `autodiff` must be one of ('custom', 'custom_vjp', 'jax'), got "
     "autodiff='fwd'."),
]


@pytest.mark.parametrize("kw, exc, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors(kw, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        jaxconv.conv_transpose1d(X, W, **kw)


@pytest.mark.parametrize("x, w, exc, message", [
    (np.zeros((2, 6, 5), np.float32), W, ValueError,
     "jaxconv.conv_transpose1d: weight.shape=(4, 3, 3) expects `input` with 4 channels, got 6 "
     "(input.shape=(2, 6, 5))."),
    (X, np.zeros((4, 3), np.float32), ValueError,
     "jaxconv.conv_transpose1d: `weight` must be 3-d (C_in, C_out // groups, *kernel), got "
     "weight.shape=(4, 3)."),
    (np.zeros(5, np.float32), W, ValueError,
     "jaxconv.conv_transpose1d: expected 2-d (unbatched) or 3-d (batched) `input`, got "
     "input.shape=(5,)."),
    (X, W.astype(np.float64), TypeError,
     "jaxconv.conv_transpose1d: `weight` dtype float64 must equal `input` dtype float32."),
    (np.zeros((2, 4, 0), np.float32), W, ValueError,
     "jaxconv.conv_transpose1d: only the batch and channel dimensions of `input` may be empty "
     "(as in PyTorch), got input.shape=(2, 4, 0)."),
])
def test_operand_errors(x, w, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        jaxconv.conv_transpose1d(x, w)


def test_generic_weight_rank_error():
    with pytest.raises(ValueError, match=re.escape(
            "jaxconv.conv_transpose: `weight` must have shape (C_in, C_out // groups, *kernel) "
            "with at least one spatial dimension, got weight.shape=(4, 3).")):
        jaxconv.conv_transpose(X, np.zeros((4, 3), np.float32))


def test_forward_mode_error_names_conv_transpose():
    x, w = jnp.ones((1, 4, 5)), jnp.ones((4, 3, 3))
    with pytest.raises(TypeError, match=re.escape(
            "jaxconv.conv_transpose1d: forward-mode differentiation")):
        jax.jvp(lambda w: jaxconv.conv_transpose1d(x, w, autodiff="custom_vjp"), (w,), (w,))
    for autodiff in ("custom", "jax"):
        y, t = jax.jvp(lambda w, a=autodiff: jaxconv.conv_transpose1d(x, w, autodiff=a),
                       (w,), (w,))
        np.testing.assert_allclose(t, y)  # linear in w
