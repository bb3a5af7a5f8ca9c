"""Dead-tap elimination (jaxconv/_deadtaps.py): the plan on hand-worked examples, and
convolutions whose taps read only zero padding against PyTorch and lax, every impl."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxconv
from jaxconv import _deadtaps
from jaxconv._conv import conv_core
from jaxconv._spec import ConvSpec

IMPLS = ("auto", *jaxconv.available_impls())
CONVS = {1: jaxconv.conv1d, 2: jaxconv.conv2d, 3: jaxconv.conv3d}
TRANSPOSES = {1: jaxconv.conv_transpose1d, 2: jaxconv.conv_transpose2d,
              3: jaxconv.conv_transpose3d}
TORCH_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
               "circular": "circular"}


def _tuple(v, rank):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * rank


def _pairs(padding, rank):
    return tuple(p if isinstance(p, tuple) else (p, p) for p in _tuple(padding, rank))


# --- the plan, worked by hand ----------------------------------------------------------------

@pytest.mark.parametrize("args, taps", [
    # n=6, pad 12/12, k=3, d=12, s=1: P=6; tap 0 reads -12..-7, tap 2 reads 12..17: dead
    ((6, 12, 12, 3, 12, 1), (1, 1)),
    # n=5, pad 7/0, k=3, d=3: P=6; tap 0 reads -7..-2 (dead), 1: -4..1, 2: -1..4
    ((5, 7, 0, 3, 3, 1), (1, 2)),
    # n=4, pad 0/10, k=4, d=3: P=5; taps 2 (6..10) and 3 (9..13) are past the input
    ((4, 0, 10, 4, 3, 1), (0, 1)),
    # n=10, pad 2/0, k=2, d=9, s=3: P=1; tap 0 reads -2 (dead), tap 1 reads 7
    ((10, 2, 0, 2, 9, 3), (1, 1)),
    # n=1, pad 1/0, k=1, s=2: P=1, the one tap reads -1: none lives
    ((1, 1, 0, 1, 1, 2), (1, 0)),
    # n=1, pad 1/1, k=1, s=2: P=2, reads -1 and 1 straddle the input: kept (the interval
    # test is sufficient, not necessary)
    ((1, 1, 1, 1, 1, 2), (0, 0)),
    # an ordinary 3x3 'same' layer: every tap lives
    ((8, 1, 1, 3, 1, 1), (0, 2)),
])
def test_live_taps_by_hand(args, taps):
    assert _deadtaps.live_taps(*args) == taps


def _spec(stride, padding, dilation, mode="zeros"):
    return ConvSpec(rank=len(stride), stride=stride, padding=padding, dilation=dilation,
                    groups=1, padding_mode=mode)


def test_plan_atrous():
    spec = _spec((1, 1), ((12, 12), (12, 12)), (12, 12))
    plan = _deadtaps.plan(spec, (6, 6), (3, 3))
    axis = _deadtaps.AxisPlan(taps=(1, 1), padding=(0, 0), crop=(0, 0))
    assert plan == _deadtaps.DeadTapPlan((axis, axis))
    assert plan.kernel() == (1, 1) and not plan.all_dead
    assert plan.spec(spec).padding == ((0, 0), (0, 0))
    assert plan.spec(spec).output_spatial((6, 6), (1, 1)) == spec.output_spatial((6, 6), (3, 3))


def test_plan_new_padding_and_input_crop():
    # axis 0: n=5, pad (7, 0), k=3, d=3 -> taps 1..2, padding (7 - 3, 0) = (4, 0)
    # axis 1: n=10, pad (2, 0), k=2, d=9, s=3 -> tap 1 only: lo' = 2 - 9 = -7, so the
    # input loses its first 7 elements and the padding is 0
    spec = ConvSpec(rank=2, stride=(1, 3), padding=((7, 0), (2, 0)), dilation=(3, 9), groups=1)
    plan = _deadtaps.plan(spec, (5, 10), (3, 2))
    assert plan.axes == (_deadtaps.AxisPlan((1, 2), (4, 0), (0, 0)),
                         _deadtaps.AxisPlan((1, 1), (0, 0), (7, 0)))
    assert plan.kernel() == (2, 1) and plan.in_spatial((5, 10)) == (5, 3)
    assert plan.spec(spec).output_spatial((5, 3), (2, 1)) == spec.output_spatial((5, 10), (3, 2))


def test_plan_shortens_each_side():
    # n=6, pad (6, 0), k=3, d=5: P=2; tap 0 reads -6, -5 (dead) -> lo' = 6 - 5 = 1
    plan = _deadtaps.plan(_spec((1,), ((6, 0),), (5,)), (6,), (3,))
    assert plan.axes == (_deadtaps.AxisPlan((1, 2), (1, 0), (0, 0)),)
    # n=6, pad (0, 6): tap 2 reads 10, 11 (dead) -> hi' = 6 - 5 = 1
    plan = _deadtaps.plan(_spec((1,), ((0, 6),), (5,)), (6,), (3,))
    assert plan.axes == (_deadtaps.AxisPlan((0, 1), (0, 1), (0, 0)),)


def test_plan_crops_the_input_at_the_end():
    # n=5, pad (0, 17), k=3, d=10, s=30: P=1; taps read 0, 10, 20: only tap 0 lives, and
    # hi' = 17 - 2·10 = -3: the last 3 input elements are never read; the cropped
    # convolution (n=2, no padding, k=1, s=30) still has P=1
    spec = _spec((30,), ((0, 17),), (10,))
    plan = _deadtaps.plan(spec, (5,), (3,))
    assert plan.axes == (_deadtaps.AxisPlan((0, 0), (0, 0), (0, 3)),)
    assert plan.spec(spec).output_spatial(plan.in_spatial((5,)), plan.kernel()) == (1,)


def test_plan_all_dead_and_none():
    assert _deadtaps.plan(_spec((2,), ((1, 0),), (1,)), (1,), (1,)).all_dead
    assert _deadtaps.plan(_spec((1, 1), ((1, 1), (1, 1)), (1, 1)), (8, 8), (3, 3)) is None


def test_mode_padding_is_data():
    # reflect padding 2 with dilation 2 on 5 samples: the padded border is data, and the
    # zero padding is none: no tap is dead.
    spec = _spec((1, 1), ((2, 2), (2, 2)), (2, 2), mode="reflect")
    assert spec.zero_padding == ((0, 0), (0, 0))
    assert _deadtaps.plan(spec, (9, 9), (3, 3)) is None


# --- conv against PyTorch (every impl, padding mode, rank) and lax -----------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    x: tuple
    w: tuple
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1
    mode: str = "zeros"

    def arrays(self, seed=0):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.x)
        w = rng.standard_normal(self.w)
        b = rng.standard_normal(self.w[0])
        return x, w, b

    @property
    def rank(self):
        return len(self.w) - 2

    @property
    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups, padding_mode=self.mode)


CASES = [
    Case("atrous", (2, 8, 6, 6), (4, 8, 3, 3), padding=12, dilation=12),
    Case("atrous-strided", (2, 4, 7, 5), (6, 4, 3, 3), stride=2, padding=(8, 5),
         dilation=(8, 4)),
    Case("pairs", (1, 3, 5, 10), (2, 3, 3, 2), stride=(1, 3), padding=((7, 0), (2, 0)),
         dilation=(3, 9)),
    Case("pad-past-input", (2, 2, 4, 6), (3, 2, 4, 3), padding=((0, 10), (6, 1)),
         dilation=(3, 5)),
    Case("groups", (1, 6, 5, 5), (6, 3, 3, 3), padding=5, dilation=5, groups=2),
    Case("depthwise", (2, 4, 5, 4), (4, 1, 3, 3), padding=(5, 4), dilation=(5, 4), groups=4),
    Case("1d", (2, 3, 4), (2, 3, 5), stride=3, padding=8, dilation=3),
    Case("1d-crop-end", (2, 3, 5), (2, 3, 3), stride=30, padding=((0, 17),), dilation=10),
    Case("3d", (1, 2, 3, 4, 3), (2, 2, 3, 3, 2), padding=(5, 4, 5), dilation=(4, 3, 5)),
    *(Case(f"mode-{m}", (1, 2, 5, 5), (2, 2, 3, 3), padding=2, dilation=2, mode=m)
      for m in ("reflect", "replicate", "circular")),
]


def _torch_conv(torch, case, x, w, b, cot):
    F = torch.nn.functional
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    pairs = _pairs(case.padding, case.rank)
    flat = [p for lo_hi in reversed(pairs) for p in lo_hi]
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[case.rank]
    y = conv(F.pad(xt, flat, mode=TORCH_MODES[case.mode]), wt, bt, stride=case.stride,
             dilation=case.dilation, groups=case.groups)
    y.backward(torch.tensor(cot))
    return y.detach().numpy(), [a.grad.numpy() for a in (xt, wt, bt)]


def _lax_conv(case, x, w, b):
    rank = case.rank
    y = lax.conv_general_dilated(
        x, w, _tuple(case.stride, rank), _pairs(case.padding, rank),
        rhs_dilation=_tuple(case.dilation, rank), feature_group_count=case.groups,
        precision=lax.Precision.HIGHEST)
    return y + b.reshape((-1,) + (1,) * rank)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_conv_matches_torch(torch, case, impl):
    x, w, b = case.arrays()
    fn = CONVS[case.rank]
    y, vjp = jax.vjp(lambda x, w, b: fn(x, w, b, **case.kwargs, impl=impl), x, w, b)
    cot = np.random.default_rng(1).standard_normal(y.shape)
    y_ref, grads_ref = _torch_conv(torch, case, x, w, b, cot)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    for got, want in zip(vjp(cot), grads_ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def _zero_cases():
    return [c for c in CASES if c.mode == "zeros"]


@pytest.mark.parametrize("case", _zero_cases(), ids=lambda c: c.name)
def test_dead_taps_are_found(case):
    """Every zero-padded case above does crop taps (else it would test nothing)."""
    x, w, _ = case.arrays()
    spec, _ = jaxconv._spec.conv_spec("conv", x, w, None, case.stride, case.padding,
                                      case.dilation, case.groups, "zeros", None)
    plan = _deadtaps.plan(spec, x.shape[2:], w.shape[2:])
    assert plan is not None and plan.kernel() != w.shape[2:]


@pytest.mark.parametrize("impl", ["lax", "gather", "shift", "fold"])
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[7]], ids=lambda c: c.name)
def test_conv_jvp_and_second_order_match_lax(case, impl):
    x, w, b = case.arrays()
    ours = lambda x, w, b: CONVS[case.rank](x, w, b, **case.kwargs, impl=impl)  # noqa: E731
    ref = lambda x, w, b: _lax_conv(case, x, w, b)  # noqa: E731
    dx, dw, db = case.arrays(seed=2)
    y, t = jax.jvp(ours, (x, w, b), (dx, dw, db))
    y_ref, t_ref = jax.jvp(ref, (x, w, b), (dx, dw, db))
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(t, t_ref, rtol=1e-10, atol=1e-10)

    def loss(f):
        return lambda x, w: jnp.sum(jnp.sin(f(x, w, b)))
    # grad of grad: the derivative of <∇_x loss, v> in w
    v = np.random.default_rng(3).standard_normal(x.shape)
    gg = jax.grad(lambda w: jnp.vdot(jax.grad(loss(ours))(x, w), v))(w)
    gg_ref = jax.grad(lambda w: jnp.vdot(jax.grad(loss(ref))(x, w), v))(w)
    np.testing.assert_allclose(gg, gg_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("autodiff", ["custom_vjp", "jax"])
def test_other_autodiff_modes(autodiff):
    case = CASES[2]
    x, w, b = case.arrays()
    ours = lambda x, w, b: CONVS[2](x, w, b, **case.kwargs, autodiff=autodiff)  # noqa: E731
    y, vjp = jax.vjp(ours, x, w, b)
    y_ref, vjp_ref = jax.vjp(lambda x, w, b: _lax_conv(case, x, w, b), x, w, b)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    cot = np.random.default_rng(1).standard_normal(y.shape)
    for got, want in zip(vjp(cot), vjp_ref(cot), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_vmap_and_hessian_match_lax():
    case = CASES[0]
    x, w, b = case.arrays()
    xs = np.stack([x, -x, 2 * x])
    ys = jax.vmap(lambda x: jaxconv.conv2d(x, w, b, **case.kwargs))(xs)
    np.testing.assert_allclose(ys, jax.vmap(lambda x: _lax_conv(case, x, w, b))(xs),
                               rtol=1e-10, atol=1e-10)
    small = Case("tiny", (1, 1, 3, 3), (1, 1, 3, 3), padding=4, dilation=4)
    x, w, b = small.arrays()
    h = jax.hessian(lambda w: jnp.sum(jaxconv.conv2d(x, w, b, **small.kwargs) ** 3))(w)
    h_ref = jax.hessian(lambda w: jnp.sum(_lax_conv(small, x, w, b) ** 3))(w)
    np.testing.assert_allclose(h, h_ref, rtol=1e-10, atol=1e-10)


# --- the all-dead case -------------------------------------------------------------------------

@pytest.mark.parametrize("impl", ["auto", "lax"])
def test_all_dead_is_bias_and_zero_gradients(impl):
    # axis 1: n=1, padding (1, 0), stride 2: the only output position reads padding
    case = Case("dead", (2, 3, 5, 1), (4, 3, 3, 1), stride=(1, 2), padding=((1, 1), (1, 0)))
    x, w, b = case.arrays()
    ours = lambda x, w, b: jaxconv.conv2d(x, w, b, **case.kwargs, impl=impl)  # noqa: E731
    y, vjp = jax.vjp(ours, x, w, b)
    assert y.shape == (2, 4, 5, 1)
    np.testing.assert_array_equal(y, np.broadcast_to(b.reshape(4, 1, 1), y.shape))
    np.testing.assert_allclose(y, _lax_conv(case, x, w, b), rtol=1e-12, atol=1e-12)
    cot = np.random.default_rng(1).standard_normal(y.shape)
    dx, dw, db = vjp(cot)
    assert dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_array_equal(dx, 0)
    np.testing.assert_array_equal(dw, 0)
    np.testing.assert_allclose(db, cot.sum((0, 2, 3)))
    _, t = jax.jvp(ours, (x, w, b), case.arrays(seed=2))
    np.testing.assert_allclose(t, np.broadcast_to(case.arrays(seed=2)[2].reshape(4, 1, 1),
                                                  y.shape))


def test_all_dead_conv_transpose():
    # the forward conv: n=1, padding (1, 0), stride 2, P=1 (all dead); transposed: input
    # size 1, stride 2, padding (1, 0), output_padding 1 -> output size 1
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 1)), rng.standard_normal((3, 2, 1)), np.ones(2)
    f = lambda x, w: jaxconv.conv_transpose1d(x, w, b, stride=2, padding=((1, 0),),  # noqa: E731
                                              output_padding=1)
    y, vjp = jax.vjp(f, x, w)
    np.testing.assert_array_equal(y, np.ones((2, 2, 1)))
    dx, dw = vjp(np.ones_like(y))
    assert dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_array_equal(dx, 0)
    np.testing.assert_array_equal(dw, 0)


# --- conv_transpose against PyTorch ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TCase:
    name: str
    x: tuple
    w: tuple
    stride: object = 1
    padding: object = 0
    output_padding: object = 0
    dilation: object = 1
    groups: int = 1

    @property
    def rank(self):
        return len(self.w) - 2

    @property
    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding,
                    output_padding=self.output_padding, dilation=self.dilation,
                    groups=self.groups)


TCASES = [
    TCase("atrous", (2, 4, 6, 6), (4, 3, 3, 3), padding=12, dilation=12),
    # forward: n=4, pad 6, k=3, d=5, s=2: only tap 1 lives
    TCase("strided-output-padding", (2, 2, 3), (2, 3, 3), stride=2, padding=6,
          output_padding=1, dilation=5),
    # output_padding >= stride (< dilation): the forward's P (5) exceeds the input's (3)
    TCase("output-padding-past-stride", (1, 2, 3, 3), (2, 2, 3, 3), padding=6,
          output_padding=2, dilation=5),
    # pairs: the forward input loses its first 7 elements -> T's output padded back
    TCase("pairs-crop", (2, 2, 1, 4), (2, 3, 2, 3), stride=(3, 1), padding=((2, 0), (4, 4)),
          output_padding=(2, 0), dilation=(9, 4)),
    TCase("groups-3d", (1, 4, 2, 3, 2), (4, 1, 3, 2, 3), padding=(4, 2, 4), dilation=(4, 3, 4),
          groups=2),
]


def _torch_transpose(torch, case, x, w, b, cot):
    F = torch.nn.functional
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[case.rank]
    # a (low, high) pair crops low and high from the unpadded output
    y = fn(xt, wt, bt, stride=case.stride, padding=0, output_padding=case.output_padding,
           groups=case.groups, dilation=case.dilation)
    pairs = _pairs(case.padding, case.rank)
    y = y[(slice(None), slice(None),
           *(slice(lo, n - hi) for n, (lo, hi) in zip(y.shape[2:], pairs, strict=True)))]
    y.backward(torch.tensor(cot))
    return y.detach().numpy(), [a.grad.numpy() for a in (xt, wt, bt)]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", TCASES, ids=lambda c: c.name)
def test_conv_transpose_matches_torch(torch, case, impl):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(case.x), rng.standard_normal(case.w)
    b = rng.standard_normal(case.w[1] * case.groups)
    fn = TRANSPOSES[case.rank]
    y, vjp = jax.vjp(lambda x, w, b: fn(x, w, b, **case.kwargs, impl=impl), x, w, b)
    cot = rng.standard_normal(y.shape)
    y_ref, grads_ref = _torch_transpose(torch, case, x, w, b, cot)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    for got, want in zip(vjp(cot), grads_ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", TCASES, ids=lambda c: c.name)
def test_conv_transpose_crops_taps(case):
    x, w = np.zeros(case.x), np.zeros(case.w)
    spec, out_spatial, _, _ = jaxconv._spec.conv_transpose_spec(
        "conv_transpose", x, w, None, case.stride, case.padding, case.output_padding,
        case.groups, case.dilation, None)
    plan = _deadtaps.plan(spec, out_spatial, w.shape[2:], positions=x.shape[2:])
    assert plan is not None and plan.kernel() != w.shape[2:]


def test_conv_transpose_jvp_and_second_order():
    case = TCASES[3]
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(case.x), rng.standard_normal(case.w)
    ours = lambda x, w: TRANSPOSES[2](x, w, **case.kwargs)  # noqa: E731
    y = ours(x, w)

    def lax_ref(x, w):
        """The transposed convolution as the VJP of lax's convolution."""
        def fwd(u):
            return lax.conv_general_dilated(u, w, case.stride,
                                            _pairs(case.padding, 2), rhs_dilation=case.dilation,
                                            precision=lax.Precision.HIGHEST)
        u0 = jnp.zeros((x.shape[0], w.shape[1], *y.shape[2:]))
        out, pull = jax.vjp(fwd, u0)
        # the transposed conv's input holds the leading positions of fwd's output
        g = jnp.zeros(out.shape).at[(slice(None), slice(None),
                                     *(slice(0, n) for n in x.shape[2:]))].set(x)
        return pull(g)[0]

    np.testing.assert_allclose(y, lax_ref(x, w), rtol=1e-10, atol=1e-10)
    tx, tw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    _, t = jax.jvp(ours, (x, w), (tx, tw))
    _, t_ref = jax.jvp(lax_ref, (x, w), (tx, tw))
    np.testing.assert_allclose(t, t_ref, rtol=1e-10, atol=1e-10)
    gg = jax.grad(lambda w: jnp.sum(jax.grad(lambda x: jnp.sum(ours(x, w) ** 2))(x) ** 2))(w)
    gg_ref = jax.grad(lambda w: jnp.sum(jax.grad(
        lambda x: jnp.sum(lax_ref(x, w) ** 2))(x) ** 2))(w)
    np.testing.assert_allclose(gg, gg_ref, rtol=1e-10, atol=1e-10)


# --- conv_general_dilated against lax ----------------------------------------------------------

@pytest.mark.parametrize("impl", ["auto", "gather"])
def test_conv_general_dilated_matches_lax(impl):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 6, 6, 8)), rng.standard_normal((3, 3, 8, 4))
    kw = dict(window_strides=(1, 2), padding=((12, 12), (-1, 13)), lhs_dilation=(1, 1),
              rhs_dilation=(12, 6), dimension_numbers=("NHWC", "HWIO", "NHWC"),
              precision=lax.Precision.HIGHEST)
    y, vjp = jax.vjp(lambda x, w: jaxconv.conv_general_dilated(x, w, **kw, impl=impl), x, w)
    y_ref, vjp_ref = jax.vjp(lambda x, w: lax.conv_general_dilated(x, w, **kw), x, w)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    cot = rng.standard_normal(y.shape)
    for got, want in zip(vjp(cot), vjp_ref(cot), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# --- the program ---------------------------------------------------------------------------------

def test_atrous_program_convolves_a_1x1_kernel():
    x, w = jnp.ones((2, 8, 6, 6)), jnp.ones((4, 8, 3, 3))
    text = jax.jit(lambda x, w: jaxconv.conv2d(x, w, padding=12, dilation=12, impl="lax")
                   ).lower(x, w).as_text()
    convs = [line for line in text.splitlines() if "stablehlo.convolution" in line]
    assert len(convs) == 1 and "tensor<4x8x1x1xf" in convs[0]
    assert "pad = [[0, 0], [0, 0]]" in convs[0]


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(padding=2, dilation=2, stride=2),
                                    dict(padding=1, padding_mode="reflect")])
def test_no_dead_tap_program_is_unchanged(monkeypatch, kwargs):
    x, w = jnp.ones((2, 4, 8, 8)), jnp.ones((4, 4, 3, 3))

    def lowered():
        conv_core.clear_cache()  # type: ignore[attr-defined]
        return jax.jit(lambda x, w: jaxconv.conv2d(x, w, **kwargs, impl="lax")
                       ).lower(x, w).as_text()

    with_plan = lowered()
    monkeypatch.setattr(_deadtaps, "plan", lambda *a, **k: None)
    assert lowered() == with_plan
    conv_core.clear_cache()  # type: ignore[attr-defined]


# --- explain_auto --------------------------------------------------------------------------------

def test_explain_auto_says_taps_are_cropped():
    choice = jaxconv.explain_auto((2, 960, 6, 6), (256, 960, 3, 3), padding=12, dilation=12,
                                  backend="cpu", avx512=True)
    assert re.search(r"^dead taps: kernel \(3, 3\) cropped to \(1, 1\) \(the other taps read "
                     r"only zero padding\); the kernels above are chosen for the cropped "
                     r"convolution$", str(choice), re.M)
    # chosen for the 1x1 convolution that runs
    assert all(reason.startswith("1x1 kernel") for reason in choice.reasons)
    plain = jaxconv.explain_auto((2, 960, 6, 6), (256, 960, 3, 3), padding=1,
                                 backend="cpu", avx512=True)
    assert plain.dead_taps == "" and "dead taps" not in str(plain)


def test_explain_auto_transpose_and_all_dead():
    choice = jaxconv.explain_auto((2, 4, 6, 6), (4, 3, 3, 3), padding=12, dilation=12,
                                  transpose=True, backend="cpu", avx512=True)
    assert "dead taps: kernel (3, 3) cropped to (1, 1)" in str(choice)
    dead = jaxconv.explain_auto((2, 3, 5, 1), (4, 3, 3, 1), stride=(1, 2),
                                padding=((1, 1), (1, 0)), backend="cpu", avx512=True)
    assert dead.dead_taps == ("dead taps: every tap of spatial axis 1 reads only zero "
                              "padding: the output is zeros (plus the bias); no kernel runs")
