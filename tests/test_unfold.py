"""jaxconv.unfold / jaxconv.fold against PyTorch (2-d), a NumPy loop (any rank), the
adjoint identity, the transformations of a jnp reference, and their error texts."""

import dataclasses
import itertools
import math
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import _unfold
from jaxconv._unfold import fold, unfold

IMPLS = ("gather", "slices", "auto")
ROOT = pathlib.Path(__file__).resolve().parent.parent
TOL = {"float32": 1e-5, "float64": 1e-12, "complex128": 1e-12}


def _rand(rng, shape, dtype):
    a = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def _tuple(v, r):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * r


def unfold_loop(x, kernel, dilation, padding, stride):
    """NumPy reference, batched (N, C, *S), zero padding: a loop over kernel offsets
    and block positions, written from PyTorch's layout definition."""
    r = x.ndim - 2
    k, d, p, s = (_tuple(v, r) for v in (kernel, dilation, padding, stride))
    xp = np.pad(x, ((0, 0), (0, 0), *((q, q) for q in p)))
    blocks = [(xp.shape[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(r)]
    n, c = x.shape[:2]
    out = np.zeros((n, c * math.prod(k), math.prod(blocks)), x.dtype)
    for ci in range(c):
        for t, off in enumerate(itertools.product(*map(range, k))):
            for l, pos in enumerate(itertools.product(*map(range, blocks))):
                src = tuple(pos[i] * s[i] + off[i] * d[i] for i in range(r))
                out[:, ci * math.prod(k) + t, l] = xp[(slice(None), ci, *src)]
    return out


def _bench_mod():
    import importlib.util
    spec = importlib.util.spec_from_file_location("unfold_bench",
                                                  ROOT / "benchmarks" / "unfold_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --- PyTorch parity (2-d) -------------------------------------------------------------------

GRID = [  # kernel, dilation, padding, stride, spatial
    (3, 1, 0, 1, (5, 5)),
    ((2, 3), (1, 2), 1, (2, 1), (7, 6)),
    (2, 2, (0, 2), 3, (6, 8)),
    ((1, 4), 1, (1, 0), (1, 4), (4, 9)),
    ((3, 2), (2, 1), 2, 2, (5, 4)),
]


DTYPE_CASES = [(case, dtype) for case, dtype in zip(
    range(len(GRID)), ("float32", "float64", "complex128", "float64", "complex128"))]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case,dtype", DTYPE_CASES)
def test_torch_parity_values_and_vjps(torch, impl, case, dtype):
    F = torch.nn.functional
    kernel, dil, pad, stride, spatial = GRID[case]
    rng = np.random.default_rng(case)
    tol = TOL[dtype]
    batched = case % 2 == 0  # odd cases unbatched
    shape = ((2, 3) if batched else (3,)) + spatial
    x = _rand(rng, shape, dtype)
    geo = dict(dilation=dil, padding=pad, stride=stride)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.unfold(tx, kernel, **geo)
    y, vjp = jax.vjp(lambda a: unfold(a, kernel, **geo, impl=impl), jnp.asarray(x))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    ct = _rand(rng, y.shape, dtype)
    # torch's grad is the conjugate-free VJP for real; for complex it returns the
    # conjugate Wirtinger VJP of a linear map, i.e. vjp(conj(ct)) conjugated.
    (tg,) = torch.autograd.grad(ty, tx, torch.tensor(np.conj(ct)))
    np.testing.assert_allclose(vjp(jnp.asarray(ct))[0], np.conj(tg.numpy()),
                               rtol=tol, atol=tol)

    cols = _rand(rng, y.shape, dtype)
    tc = torch.tensor(cols, requires_grad=True)
    tf = F.fold(tc, spatial, kernel, **geo)
    f, fvjp = jax.vjp(lambda a: fold(a, spatial, kernel, **geo, impl=impl),
                      jnp.asarray(cols))
    np.testing.assert_allclose(f, tf.detach().numpy(), rtol=tol, atol=tol)
    fct = _rand(rng, f.shape, dtype)
    (tfg,) = torch.autograd.grad(tf, tc, torch.tensor(np.conj(fct)))
    np.testing.assert_allclose(fvjp(jnp.asarray(fct))[0], np.conj(tfg.numpy()),
                               rtol=tol, atol=tol)


def test_zero_batch_and_jit(torch):
    F = torch.nn.functional
    x = np.zeros((0, 2, 4, 4))
    assert unfold(x, 2).shape == tuple(F.unfold(torch.tensor(x), 2).shape)
    assert fold(np.zeros((0, 8, 9)), 4, 2).shape == tuple(
        F.fold(torch.zeros((0, 8, 9)), 4, 2).shape)
    cols = np.ones((2, 8, 9))
    f = jax.jit(lambda c: fold(c, 4, 2))(cols)
    np.testing.assert_allclose(f, F.fold(torch.tensor(cols), 4, 2).numpy())


# --- N-d against the NumPy loop and the adjoint identity --------------------------------------

ND = [  # spatial, kernel, dilation, padding, stride
    ((9,), 3, 2, 1, 2),
    ((5, 4, 6), (2, 1, 3), (1, 1, 2), (1, 0, 1), (2, 1, 1)),
    ((4, 3, 3, 4), 2, 1, (0, 1, 0, 1), (1, 2, 1, 2)),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", range(len(ND)))
def test_nd_against_loop_and_adjoint(impl, case):
    spatial, kernel, dil, pad, stride = ND[case]
    r = len(spatial)
    # the rank comes from the first tuple among the arguments; for case 0, only spatial
    # says 1-d, so pass kernel as a tuple
    kernel = _tuple(kernel, r)
    rng = np.random.default_rng(10 + case)
    x = rng.standard_normal((2, 2, *spatial))
    geo = dict(dilation=dil, padding=pad, stride=stride)
    y = unfold(x, kernel, **geo, impl=impl)
    ref = unfold_loop(x, kernel, dil, pad, stride)
    np.testing.assert_allclose(y, ref, rtol=0, atol=0)
    np.testing.assert_allclose(unfold(x[0], kernel, **geo, impl=impl), ref[0], atol=0)
    cols = rng.standard_normal(ref.shape)
    back = fold(cols, spatial, kernel, **geo, impl=impl)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.vdot(ref, cols), np.vdot(x, back), rtol=1e-12)
    # fold against the loop's explicit transpose: the matrix of unfold_loop
    eye = np.eye(x[:1, :1].size).reshape(-1, 1, *spatial)
    mat = unfold_loop(eye, kernel, dil, pad, stride).reshape(len(eye), -1)  # (S, K·L)
    c1 = cols[:1, :math.prod(kernel)]
    np.testing.assert_allclose(
        np.asarray(fold(c1, spatial, kernel, **geo, impl=impl)).reshape(-1),
        mat @ c1.reshape(-1), rtol=1e-12, atol=1e-12)


# --- reshape: groups of taps whose blocks do not overlap -------------------------------------

TILES = [  # kernel, dilation, padding, stride, spatial: stride_i >= dilation_i·(k_i - 1) + 1
    (4, 1, 0, 4, (8, 8)),                 # exact tiles (ViT)
    ((2, 3), (2, 1), 1, (3, 4), (16, 17)),  # gaps between blocks, a remainder cropped
    (2, 3, (1, 2), (5, 4), (9, 10)),      # dilated taps, padding
    ((1, 2), 1, 0, (2, 2), (7, 9)),       # odd sizes: the last rows/columns unread
    ((3, 1), (1, 1), (0, 2), (3, 1), (6, 3)),  # stride 1 on a kernel-1 axis
]
OVERLAPPING = [  # several groups of taps on some axis
    (3, 1, 1, 1, (7, 8)),                 # a 3x3/1 conv's im2col: one tap per group
    (8, 1, 0, 4, (16, 20)),               # overlap-add, 8x8/4: two groups of 4 per axis
    ((3, 2), (2, 1), (1, 0), (3, 1), (9, 8)),  # dilated: groups of 2 taps (3 >= 2·1 + 1)
    ((5, 4), 1, 2, (2, 3), (11, 10)),     # uneven last groups (5 = 2 + 2 + 1, 4 = 3 + 1)
]


@pytest.mark.parametrize("kernel, dilation, stride, groups", [
    ((4,), (1,), (4,), (((0, 4),),)),                       # tiles: one group
    ((8,), (1,), (4,), (((0, 4), (4, 8)),)),
    ((3,), (1,), (1,), (((0, 1), (1, 2), (2, 3)),)),
    ((5, 3), (2, 1), (3, 2), (((0, 2), (2, 4), (4, 5)), ((0, 2), (2, 3)))),
    ((400,), (1,), (160,), (((0, 160), (160, 320), (320, 400)),)),
])
def test_tap_groups_by_hand(kernel, dilation, stride, groups):
    """m = (s - 1) // d + 1 consecutive taps per group: d·(m - 1) + 1 <= s."""
    assert _unfold.tap_groups(kernel, dilation, stride) == groups


@pytest.mark.parametrize("case", range(len(TILES) + len(OVERLAPPING)))
def test_reshape_against_torch(torch, case):
    """impl='reshape' and auto against PyTorch, on blocks that tile and blocks that
    overlap: values and VJPs of unfold and fold, batched (even cases) and unbatched,
    float64 and complex."""
    F = torch.nn.functional
    kernel, dil, pad, stride, spatial = (TILES + OVERLAPPING)[case]
    dtype = "complex128" if case % 2 else "float64"
    rng = np.random.default_rng(20 + case)
    shape = ((2, 3) if case % 2 == 0 else (3,)) + spatial
    x = _rand(rng, shape, dtype)
    geo = dict(dilation=dil, padding=pad, stride=stride)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.unfold(tx, kernel, **geo)
    cols = _rand(rng, tuple(ty.shape), dtype)
    tc = torch.tensor(cols, requires_grad=True)
    tf = F.fold(tc, spatial, kernel, **geo)
    for impl in ("reshape", "auto"):
        y, vjp = jax.vjp(lambda a, impl=impl: unfold(a, kernel, **geo, impl=impl),
                         jnp.asarray(x))
        np.testing.assert_array_equal(y, ty.detach().numpy())
        (tg,) = torch.autograd.grad(ty, tx, torch.tensor(np.conj(cols)), retain_graph=True)
        np.testing.assert_allclose(vjp(jnp.asarray(cols))[0], np.conj(tg.numpy()),
                                   rtol=1e-12, atol=1e-12)
        f, fvjp = jax.vjp(lambda c, impl=impl: fold(c, spatial, kernel, **geo, impl=impl),
                          jnp.asarray(cols))
        np.testing.assert_allclose(f, tf.detach().numpy(), rtol=1e-12, atol=1e-12)
        (tfg,) = torch.autograd.grad(tf, tc, torch.tensor(np.conj(x)), retain_graph=True)
        np.testing.assert_array_equal(fvjp(jnp.asarray(x))[0], np.conj(tfg.numpy()))


@pytest.mark.parametrize("spatial,kernel,dil,pad,stride", [
    ((11,), (3,), 2, 1, 5),
    ((5, 7, 6), (2, 1, 3), (1, 1, 2), (1, 0, 1), (2, 3, 5)),
    ((4, 6, 3, 5), 2, 1, (0, 1, 0, 1), 2),
    ((6, 5, 7), (3, 2, 4), (1, 2, 1), (1, 0, 1), (1, 1, 3)),  # overlapping: groups
])
def test_reshape_nd_against_loop_adjoint_and_gather(spatial, kernel, dil, pad, stride):
    rng = np.random.default_rng(30)
    x = rng.standard_normal((2, 2, *spatial))
    geo = dict(dilation=dil, padding=pad, stride=stride)
    y = unfold(x, kernel, **geo, impl="reshape")
    np.testing.assert_array_equal(y, unfold_loop(x, kernel, dil, pad, stride))
    cols = rng.standard_normal(y.shape)
    back = fold(cols, spatial, kernel, **geo, impl="reshape")
    np.testing.assert_allclose(np.vdot(y, cols), np.vdot(x, back), rtol=1e-12)
    np.testing.assert_allclose(back, fold(cols, spatial, kernel, **geo, impl="gather"),
                               rtol=1e-12, atol=1e-12)
    # the transformations through the reshape kernels: jvp, vmap, grad of grad
    f = lambda a: jnp.sum(jnp.sin(unfold(a, kernel, **geo, impl="reshape")) ** 2)  # noqa: E731
    g = lambda a: jnp.sum(jnp.sin(unfold(a, kernel, **geo, impl="gather")) ** 2)  # noqa: E731
    xs = jnp.asarray(x)
    np.testing.assert_allclose(jax.jvp(jax.grad(f), (xs,), (xs,))[1],
                               jax.jvp(jax.grad(g), (xs,), (xs,))[1], rtol=1e-12)
    np.testing.assert_allclose(jax.vmap(jax.grad(f))(xs[:, None]),
                               jax.vmap(jax.grad(g))(xs[:, None]), rtol=1e-12)


@pytest.mark.parametrize("op, kernel, dilation, stride, want", [
    ("unfold", (16, 16), (1, 1), (16, 16), "reshape"),  # ViT patching: one group
    ("unfold", (3, 3), (1, 1), (1, 1), "reshape"),      # overlapping: 9 groups
    ("unfold", (7, 7), (1, 1), (1, 1), "reshape"),
    ("unfold", (400,), (1,), (160,), "reshape"),        # audio framing
    ("fold", (8, 8), (1, 1), (4, 4), "reshape"),        # overlap-add: 4 groups
    ("fold", (5, 5), (1, 1), (1, 1), "reshape"),        # 25 groups
    ("fold", (3, 3), (2, 2), (1, 1), "reshape"),
    ("fold", (7, 7), (1, 1), (1, 1), "gather"),         # 49 groups
    ("fold", (3, 3, 3, 3), (1,) * 4, (1,) * 4, "gather"),  # 81
])
def test_auto_rule(op, kernel, dilation, stride, want):
    """auto's rule (jaxconv/_unfold.py, from benchmarks/unfold_bench.py): reshape,
    except a fold of more than AUTO_FOLD_MAX_GROUPS groups of taps; explicit impls kept."""
    w = _unfold.Windows(kernel, dilation, stride, tuple(2 * k * s for k, s in
                                                          zip(kernel, stride)), "auto")
    assert _unfold.choose(op, w) == want
    assert _unfold.choose(op, dataclasses.replace(w, impl="slices")) == "slices"


def test_auto_runs_reshape_in_the_program():
    """auto's choice, read from the lowered program: reshape's unfold (tiling or not),
    its VJP and its fold hold no gather, gather's unfold does."""
    x = jnp.zeros((2, 3, 16, 16))

    def hlo(f, a):
        return jax.jit(f).lower(a).as_text()

    assert "gather" not in hlo(lambda a: unfold(a, 4, stride=4), x)
    assert "gather" not in hlo(lambda a: unfold(a, 3, padding=1), x)
    assert "gather" not in hlo(lambda a: unfold(a, 2, dilation=2, stride=3), x)
    assert "gather" in hlo(lambda a: unfold(a, 3, padding=1, impl="gather"), x)
    cols = unfold(x, 4, stride=4)
    assert "gather" not in hlo(lambda c: fold(c, 16, 4, stride=4), cols)
    assert "gather" not in hlo(jax.grad(lambda a: jnp.sum(unfold(a, 3, padding=1) ** 2)), x)


def test_impls_agree_on_vit_patching():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 15, 15)).astype(np.float32)
    a, b = (unfold(x, 5, stride=5, impl=i) for i in ("gather", "slices"))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(*(fold(a, 15, 5, stride=5, impl=i)
                                    for i in ("gather", "slices")))
    np.testing.assert_array_equal(fold(a, 15, 5, stride=5), x)  # blocks tile exactly


# --- padding modes against torch F.pad + F.unfold --------------------------------------------

@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("impl", ["gather", "slices"])
def test_padding_modes_against_torch(torch, mode, impl):
    F = torch.nn.functional
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 5, 6))
    pad = (2, 1)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.unfold(F.pad(tx, (pad[1], pad[1], pad[0], pad[0]), mode=mode), 3, stride=(1, 2))
    y, vjp = jax.vjp(lambda a: unfold(a, 3, padding=pad, stride=(1, 2), padding_mode=mode,
                                      impl=impl), jnp.asarray(x))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    ct = rng.standard_normal(y.shape)
    (tg,) = torch.autograd.grad(ty, tx, torch.tensor(ct))
    np.testing.assert_allclose(vjp(jnp.asarray(ct))[0], tg.numpy(), rtol=1e-12, atol=1e-12)
    # unbatched, 1-d, against torch's own 1-d pad
    x1 = rng.standard_normal((3, 7))
    t1 = F.unfold(F.pad(torch.tensor(x1)[:, None], (2, 2), mode=mode)[:, :, None], (1, 3))
    y1 = unfold(x1, (3,), padding=(2,), padding_mode=mode, impl=impl)
    np.testing.assert_allclose(y1, t1.numpy().reshape(3 * 3, -1), rtol=1e-12)


@pytest.mark.parametrize("impl", ["gather", "slices"])
def test_padding_modes_3d_against_numpy(impl):
    """3-d padding modes: NumPy's np.pad (reflect, edge, wrap) then the VALID loop."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 2, 3, 4, 5))
    pad = (1, 2, 0)
    for mode, np_mode in (("reflect", "reflect"), ("replicate", "edge"),
                          ("circular", "wrap")):
        xp = np.pad(x, ((0, 0), (0, 0), *((p, p) for p in pad)), mode=np_mode)
        want = unfold_loop(xp, (2, 3, 2), (1, 1, 2), 0, (2, 1, 1))
        got = unfold(x, (2, 3, 2), (1, 1, 2), pad, (2, 1, 1), padding_mode=mode, impl=impl)
        np.testing.assert_array_equal(got, want, err_msg=mode)


# --- transformations against a jnp reference --------------------------------------------------

def _jnp_unfold(x, kernel, dilation, padding, stride):
    """An independent jnp reference (a strided slice per offset via jnp indexing and
    concatenation), batched, any rank."""
    r = x.ndim - 2
    xp = jnp.pad(x, ((0, 0), (0, 0), *((p, p) for p in padding)))
    blocks = [(xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
              for i in range(r)]
    taps = []
    for off in itertools.product(*map(range, kernel)):
        idx = tuple(slice(o * d, o * d + (b - 1) * s + 1, s)
                    for o, d, b, s in zip(off, dilation, blocks, stride))
        taps.append(xp[(slice(None), slice(None), *idx)].reshape(*x.shape[:2], -1))
    return jnp.stack(taps, axis=2).reshape(x.shape[0], -1, math.prod(blocks))


@pytest.mark.parametrize("impl", ["gather", "slices"])
def test_transformations(impl):
    """Each transformation of unfold and fold, under jit, against the same
    transformation of the jnp reference (fold's: the VJP of the jnp unfold)."""
    geo = dict(dilation=(1, 2), padding=(1, 0), stride=(2, 1))
    k = (2, 2)
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_normal((2, 2, 4, 5)))
    ref = lambda a: _jnp_unfold(a, k, (1, 2), (1, 0), (2, 1))  # noqa: E731
    mine = lambda a: unfold(a, k, **geo, impl=impl)  # noqa: E731

    def reffold(c):
        x0 = jnp.zeros((c.shape[0], c.shape[1] // math.prod(k), 4, 5), c.dtype)
        return jax.vjp(ref, x0)[1](c)[0]

    myfold = lambda c: fold(c, (4, 5), k, **geo, impl=impl)  # noqa: E731

    def loss(f):
        return lambda a: jnp.sum(jnp.sin(f(a)) * f(a) ** 2)

    def checks(f, a, t, batch, small):
        """The transformations of one linear map `f`."""
        return {
            "value": f(a),
            "jvp": jax.jvp(f, (a,), (t,))[1],
            "vmap": jax.vmap(f)(batch),
            "vmap_axis": jax.vmap(f, in_axes=2, out_axes=1)(jnp.moveaxis(batch, 0, 2)),
            "grad_of_grad": jax.grad(lambda b: jnp.sum(jax.grad(loss(f))(b) ** 2))(a),
            "hessian": jax.hessian(loss(f))(a[small]),
            "jacfwd": jax.jacfwd(f)(a[small]),
            "vmap_of_grad": jax.vmap(jax.grad(loss(f)))(batch),
        }

    unfold_small = (slice(0, 1), slice(0, 1))  # one sample, one channel
    fold_small = (slice(0, 1), slice(0, math.prod(k)))  # one sample, one channel's taps
    t = jnp.asarray(rng.standard_normal(x.shape))
    xs = jnp.asarray(rng.standard_normal((3, *x.shape)))
    got = jax.jit(lambda a, t, b: checks(mine, a, t, b, unfold_small))(x, t, xs)
    want = jax.jit(lambda a, t, b: checks(ref, a, t, b, unfold_small))(x, t, xs)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-10, atol=1e-12, err_msg=key)

    cols = jnp.asarray(rng.standard_normal(got["value"].shape))
    tc = jnp.asarray(rng.standard_normal(cols.shape))
    cs = jnp.asarray(rng.standard_normal((3, *cols.shape)))
    got = jax.jit(lambda a, t, b: checks(myfold, a, t, b, fold_small))(cols, tc, cs)
    want = jax.jit(lambda a, t, b: checks(reffold, a, t, b, fold_small))(cols, tc, cs)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-10, atol=1e-12, err_msg=key)
    jaxpr = str(jax.make_jaxpr(jax.grad(loss(mine)))(x))
    assert "jaxconv_unfold" in jaxpr and "jaxconv_fold" in jaxpr


# --- dtypes: ints and bool exact ------------------------------------------------------------

@pytest.mark.parametrize("impl", ["gather", "slices"])
@pytest.mark.parametrize("dtype", ["int8", "int32", "uint16", "int64", "bool", "float16",
                                   "bfloat16", "complex64"])
def test_dtypes_exact(impl, dtype):
    rng = np.random.default_rng(6)
    x = rng.integers(0, 2 if dtype == "bool" else 5, (2, 2, 5, 4)).astype(
        jnp.dtype(dtype))
    y = unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=(1, 2), impl=impl)
    assert y.dtype == jnp.dtype(dtype)
    wide = np.complex128 if jnp.dtype(dtype).kind == "c" else np.float64
    ref = unfold_loop(np.asarray(x).astype(wide), (2, 3), (2, 1), 1, (1, 2))
    np.testing.assert_array_equal(np.asarray(y).astype(wide), ref)
    cols = rng.integers(0, 2 if dtype == "bool" else 3, y.shape).astype(jnp.dtype(dtype))
    f = fold(cols, (5, 4), (2, 3), dilation=(2, 1), padding=1, stride=(1, 2), impl=impl)
    assert f.dtype == jnp.dtype(dtype)
    # reference: fold via the float64 adjoint, which sums (bool: or, i.e. sum > 0)
    ref_f = np.asarray(fold(np.asarray(cols).astype(wide), (5, 4), (2, 3),
                            dilation=(2, 1), padding=1, stride=(1, 2), impl="slices"
                            if impl == "gather" else "gather"))
    if dtype == "bool":
        ref_f = ref_f > 0
    np.testing.assert_array_equal(np.asarray(f).astype(wide), ref_f)


# --- errors, by their text --------------------------------------------------------------------

X = np.zeros((2, 3, 5, 5))
ERRORS = [
    (lambda: unfold(X, (0, 3)), ValueError,
     "jaxconv.unfold: `kernel_size` must be positive, got kernel_size=(0, 3)."),
    (lambda: unfold(X, 3, dilation=0), ValueError,
     "jaxconv.unfold: `dilation` must be positive, got dilation=0."),
    (lambda: unfold(X, 3, padding=-1), ValueError,
     "jaxconv.unfold: `padding` must be non-negative, got padding=-1."),
    (lambda: unfold(X, 3, stride=(1, 0)), ValueError,
     "jaxconv.unfold: `stride` must be positive, got stride=(1, 0)."),
    (lambda: unfold(X, 3.0), TypeError,
     "jaxconv.unfold: `kernel_size` must be an int or a tuple of 2 ints, got 3.0."),
    (lambda: unfold(X, (3, 3), stride=(1, 1, 1)), ValueError,
     "jaxconv.unfold: `stride` must be an int or a tuple of 2 ints for a 2-d convolution, "
     "got stride=(1, 1, 1) of length 3."),
    (lambda: unfold(X, ()), ValueError,
     "jaxconv.unfold: `kernel_size` must have at least one entry (the spatial rank), got "
     "kernel_size=()."),
    (lambda: unfold(X, 7), ValueError,
     "jaxconv.unfold: input spatial size (5, 5), kernel_size=(7, 7), dilation=(1, 1), "
     "padding=(0, 0) give (-1, -1) sliding blocks per axis; each must be at least one"),
    (lambda: unfold(np.zeros((5, 5)), 3), ValueError,
     "jaxconv.unfold: `input` must be 4-d (N, C, *spatial) or 3-d unbatched (C, *spatial) "
     "for a 2-d unfold, got input of shape (5, 5)."),
    (lambda: unfold(np.zeros((2, 0, 5, 5)), 3), ValueError,
     "jaxconv.unfold: `input` must have non-zero channel and spatial dimensions (a zero "
     "batch is fine), got input of shape (2, 0, 5, 5)."),
    (lambda: unfold(X, 3, padding_mode="wrap"), ValueError,
     "jaxconv.unfold: `padding_mode` must be one of ('zeros', 'reflect', 'replicate', "
     "'circular'), got padding_mode='wrap'."),
    (lambda: unfold(X, 3, padding=5, padding_mode="reflect"), ValueError,
     "jaxconv.unfold: reflect padding (5, 5) at dimension 2 must be less than that input "
     "size (5), as in PyTorch."),
    (lambda: unfold(X, 3, impl="lax"), ValueError,
     "jaxconv.unfold: `impl` must be one of ('auto', 'gather', 'slices', 'reshape'), got "
     "impl='lax'."),
    (lambda: unfold([1, 2], 3), TypeError,
     "jaxconv.unfold: `input` must be an array (jax.Array or numpy.ndarray), got list."),
    (lambda: fold(np.zeros((2, 27, 9)), (5, 5), (2, 2)), ValueError,
     "jaxconv.fold: `input`'s feature dimension must be divisible by prod(kernel_size)=4, "
     "got input of shape (2, 27, 9) and kernel_size=(2, 2)."),
    (lambda: fold(np.zeros((2, 27, 9)), (4, 4), 3), ValueError,
     "jaxconv.fold: `input`'s last dimension must be the number of sliding blocks 2 * 2 = 4 "
     "for output_size=(4, 4), kernel_size=(3, 3), dilation=(1, 1), padding=(0, 0), "
     "stride=(1, 1), got input of shape (2, 27, 9)."),
    (lambda: fold(np.zeros((2, 0, 9)), (5, 5), 3), ValueError,
     "jaxconv.fold: `input` must be 3-d (N, C·prod(kernel_size), L) or 2-d unbatched "
     "(C·prod(kernel_size), L) with non-zero dimensions 1 and 2 (a zero batch is fine), "
     "got input of shape (2, 0, 9)."),
    (lambda: fold(np.zeros((2, 27, 9)), (5, 5), 3, stride=0), ValueError,
     "jaxconv.fold: `stride` must be positive, got stride=0."),
    (lambda: fold(np.zeros((2, 27, 9)), (2, 2), 3), ValueError,
     "jaxconv.fold: output_size=(2, 2), kernel_size=(3, 3), dilation=(1, 1), padding=(0, 0) "
     "give (0, 0) sliding blocks per axis"),
    (lambda: fold(np.zeros((2, 27, 9)), (5, 5, 5), 3), ValueError,  # rank 3: output_size
     "jaxconv.fold: `input`'s last dimension must be the number of sliding blocks "
     "3 * 3 * 3 = 27 for output_size=(5, 5, 5)"),
    (lambda: fold(np.zeros((2, 27, 9)), (5, 5), (3, 3, 3)), ValueError,
     "jaxconv.fold: `kernel_size` must be an int or a tuple of 2 ints for a 2-d convolution, "
     "got kernel_size=(3, 3, 3) of length 3."),
    (lambda: fold(np.zeros((2, 27, 9), object), (5, 5), 3), TypeError,
     "jaxconv.fold: `input` must be an array of a bool or numeric dtype"),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_error_texts(case):
    call, cls, text = ERRORS[case]
    with pytest.raises(cls, match="^" + re.escape(text)):
        call()


# --- the benchmark's quick mode ---------------------------------------------------------------

@pytest.mark.exhaustive  # a benchmark program (15 s), not the library
def test_benchmark_quick():
    """The benchmark compares every variant against PyTorch before timing (it exits
    non-zero otherwise) and prints a row per case, op and variant."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "unfold_bench.py"),
                          "--quick"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for case in ("vit_patch", "conv3x3", "overlap_add", "audio_frames"):
        for variant in ("gather", "slices", "auto", "torch", "lax_patches"):
            assert re.search(rf"\| {case} \| (unfold|fold) \| {variant} \|", run.stdout), (
                case, variant, run.stdout)
    assert "| vit_patch | fold | reshape |" in run.stdout
    assert "| conv3x3 | fold | reshape |" in run.stdout  # overlapping: groups of taps
