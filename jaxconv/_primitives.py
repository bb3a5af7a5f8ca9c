"""The hand-written rules bound as JAX primitives: ``F``, ``T`` and ``W``, each the
transpose of the other two.

Write ``F(x, w)`` for an impl's forward kernel, ``T(g, w)`` for its input
gradient and ``W(x, g)`` for its weight gradient. All three are bilinear and
adjoint to one another (docs/backprop.md, §2 and §6)::

    <F(x, w), g> = <x, T(g, w)> = <w, W(x, g)>

so each is a primitive whose transposes are the other two, as lax binds its own
convolution (``ad.defbilinear`` on ``conv_general_dilated_p``)::

    F(x, w), cotangent g:  dx = T(g, w)        dw = W(x, g)
    T(g, w), cotangent u:  dg = F(u, w)|_g     dw = W(u, g)
    W(x, g), cotangent v:  dx = T(g, v)        dg = F(x, v)|_g

(``|_g``: cropped to ``g``'s positions, when ``F`` produces more, see
:mod:`jaxconv._registry`). The triangle is closed under transposition, so
reverse mode of any order runs the impl's own kernels and never JAX's
derivative of a kernel's code. Forward mode needs no rule of its own: a
bilinear map's tangent is ``P(da, b) + P(a, db)``, two more binds of the same
primitive, which JAX linearises and transposes with the rules above. So ``jvp``,
``linearize``, ``jacfwd``, ``hessian`` and forward-over-reverse all run, and the
jaxprs name the kernels (``jaxconv_forward``, ``jaxconv_input_grad``,
``jaxconv_weight_grad``) with the spec that says which impl computes each.

Batching (``vmap``) rebinds the same primitive on folded operands, so
differentiating a vmapped convolution (or vmapping a derivative) stays in the
family. With ``B`` the mapped size (derivation: each case contracts what it
contracted before, and the mapped copies never meet):

=========  ===================  ============================================
kernel     mapped operands      folded into
=========  ===================  ============================================
any        the data one only    the batch ``N`` (``(B N, C, ...)``)
F, T       the weight only      each group's output (F) or input (T) channels
W          one data operand     each group's channels of that operand
any        both                 the groups: ``B G`` groups, ``(N, B C, ...)``
=========  ===================  ============================================

except ``W`` with both operands mapped (per-example weight gradients) of the
impls in :data:`VMAPPED_WEIGHT_GRAD_IMPLS`, whose kernel is vmapped (see the
batching rule).

Inside ``jax.shard_map`` every operand must vary over the same manual axes (as
for lax's binary ops): :func:`_bind` casts the one that varies over fewer
(``lax.pcast(..., to="varying")``) before binding, and abstract evaluation keeps
the operand's type (``aval.update``), so the result varies over them too.

``spec.inference`` (set by ``impl="auto"``) names the forward kernel of a call
that is not differentiated; the JVP and the transposes rebind with it cleared
(:func:`training`), so differentiated code runs ``F`` of ``spec.impl``.

Each primitive is lowered from its kernel (``mlir.lower_fun``): the impls stay
plain JAX functions that know nothing of autodiff. The lowering goes through
``custom_partitioning`` (:mod:`jaxconv._partitioning`), so that under automatic
mesh axes jaxconv, not XLA's generic rules, splits each kernel per shard; on one
device it is the kernel itself.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jaxconv import _partitioning, _settings
from jaxconv._padding import fold_border, fused_adjoint, pad_trailing
from jaxconv._registry import inference_kernel, input_grad_kernel, weight_grad_kernel
from jaxconv._spec import ConvSpec
from jaxconv.impls._xla import accumulation_dtype

# The impls whose weight gradient is one XLA convolution, vmapped as it is when both of
# its operands are mapped (see the batching rule).
VMAPPED_WEIGHT_GRAD_IMPLS = ("lax", "fold")

forward_p = Primitive("jaxconv_forward")
input_grad_p = Primitive("jaxconv_input_grad")
weight_grad_p = Primitive("jaxconv_weight_grad")


def training(spec: ConvSpec) -> ConvSpec:
    """`spec` without its inference forward: what differentiated code runs."""
    return spec if spec.inference is None else dataclasses.replace(spec, inference=None)


def _vma(a) -> frozenset:
    mat = getattr(jax.typeof(a), "mat", None)
    return frozenset(getattr(mat, "varying", ()) or ())


def _bind(prim: Primitive, a, b, **params) -> jax.Array:
    """``prim.bind(a, b)`` with both operands varying over the same manual axes."""
    va, vb = _vma(a), _vma(b)
    if va != vb:
        if vb - va:
            a = lax.pcast(a, tuple(sorted(vb - va)), to="varying")
        if va - vb:
            b = lax.pcast(b, tuple(sorted(va - vb)), to="varying")
    return prim.bind(a, b, **params)


def forward(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """``F(x, w)``: the convolution of `x` (no bias), its padding mode included."""
    return _bind(forward_p, x, w, spec=spec)


def input_grad(g: jax.Array, w: jax.Array, spec: ConvSpec,
               in_spatial: Sequence[int]) -> jax.Array:
    """``T(g, w)``: the adjoint of ``F`` in ``x`` (the transposed convolution)."""
    return _bind(input_grad_p, g, w, spec=spec, in_spatial=tuple(in_spatial))


def weight_grad(x: jax.Array, g: jax.Array, spec: ConvSpec,
                kernel: Sequence[int]) -> jax.Array:
    """``W(x, g)``: the adjoint of ``F`` in ``w``."""
    return _bind(weight_grad_p, x, g, spec=spec, kernel=tuple(kernel))


def crop_like(y: jax.Array, shape: Sequence[int]) -> jax.Array:
    """The leading `shape` part of `y`: ``F`` may produce more output positions than
    a cotangent holds (conv_transpose with output_padding >= stride)."""
    if tuple(y.shape) == tuple(shape):
        return y
    return y[tuple(slice(0, n) for n in shape)]


# --- shapes ------------------------------------------------------------------------------

def padded_spatial(spatial: Sequence[int], spec: ConvSpec) -> tuple[int, ...]:
    """The spatial size of an operand after the pre-pad of ``spec.padding_mode``."""
    return tuple(n + lo + hi for n, (lo, hi) in zip(spatial, spec.mode_padding, strict=True))


def _forward_shape(x, w, *, spec):
    return (x.shape[0], w.shape[0],
            *spec.output_spatial(padded_spatial(x.shape[2:], spec), w.shape[2:]))


def _input_grad_shape(g, w, *, spec, in_spatial):
    return (g.shape[0], w.shape[1] * spec.groups, *in_spatial)


def _weight_grad_shape(x, g, *, spec, kernel):
    return (g.shape[1], x.shape[1] // spec.groups, *kernel)


def _abstract(shape_rule: Callable) -> Callable:
    def abstract_eval(a, b, **params):
        return a.update(shape=shape_rule(a, b, **params), weak_type=False)
    return abstract_eval


# --- kernels: lowering and eager evaluation ----------------------------------------------
#
# A padding mode other than zeros is part of each kernel (``P``: the pre-pad, linear):
#
#     F(x, w) = K_F(P x, w)      T(g, w) = P^T K_T(g, w)      W(x, g) = K_W(P x, g)
#
# with ``K_*`` the impl's kernels on the padded operand. The triangle still holds:
# <F(x, w), g> = <K_F(P x, w), g> = <P x, K_T(g, w)> = <x, P^T K_T(g, w)> and
# = <w, K_W(P x, g)>. So the rules above are unchanged, and a kernel sees the
# unpadded operand, whose spatial axes a sharded lowering splits evenly
# (:mod:`jaxconv._partitioning`).

def pre_pad(x: jax.Array, spec: ConvSpec) -> jax.Array:
    """``P x``: the pre-pad of ``spec.padding_mode`` (nothing for zeros)."""
    return pad_trailing(x, spec.mode_padding, spec.padding_mode)


def pre_pad_transpose(y: jax.Array, spec: ConvSpec) -> jax.Array:
    """``P^T y``: each border entry added onto its source (docs/backprop.md §5), in
    float32 for half types so that an entry with m copies is rounded once."""
    pads = spec.mode_padding
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return y
    acc = accumulation_dtype(y.dtype)
    if fused_adjoint(pads, spec.padding_mode):
        return fold_border(y.astype(acc), pads, spec.padding_mode).astype(y.dtype)
    shape = (*y.shape[:2], *(n - lo - hi for n, (lo, hi) in zip(y.shape[2:], pads,
                                                                 strict=True)))
    pad = functools.partial(pad_trailing, pads=pads, mode=spec.padding_mode)
    (dx,) = jax.linear_transpose(pad, jax.ShapeDtypeStruct(shape, acc))(y.astype(acc))
    return dx.astype(y.dtype)


def _run_forward(x, w, *, spec):
    return inference_kernel(spec)(pre_pad(x, spec), w, spec)


def _run_input_grad(g, w, *, spec, in_spatial):
    y = input_grad_kernel(spec)(g, w, spec, padded_spatial(in_spatial, spec))
    return pre_pad_transpose(y, spec)


def _run_weight_grad(x, g, *, spec, kernel):
    return weight_grad_kernel(spec)(pre_pad(x, spec), g, spec, kernel)


_PRIMITIVES: dict[str, Primitive] = {}


def run_kernel(kind: str, a: jax.Array, b: jax.Array, **params) -> jax.Array:
    """One kernel (``"forward"``, ``"input_grad"`` or ``"weight_grad"``, its padding
    mode included) as its primitive, whatever rules bind it: what
    ``autodiff="custom_vjp"``'s rules call, so that they batch and partition like
    the primitives."""
    return _bind(_PRIMITIVES[kind], a, b, **params)


@functools.cache
def _jitted(prim: Primitive, params: tuple) -> Callable:
    return jax.jit(functools.partial(prim.bind, **dict(params)))


_settings.register_cache(_jitted.cache_clear)


def _eager(prim: Primitive) -> Callable:
    # A primitive bound outside any trace compiles the one-primitive program once per
    # parameter set, as JAX's own primitives do (dispatch.apply_primitive).
    return lambda a, b, **params: _jitted(prim, tuple(sorted(params.items())))(a, b)


# --- forward mode: a bilinear map's tangent ----------------------------------------------

def _bilinear_jvp(bind: Callable) -> Callable:
    def jvp(primals, tangents, **params):
        (a, b), (da, db) = primals, tangents
        params["spec"] = training(params["spec"])
        y = bind(a, b, **params)
        terms = [bind(da, b, **params)] if type(da) is not ad.Zero else []
        if type(db) is not ad.Zero:
            terms.append(bind(a, db, **params))
        if not terms:
            return y, ad.Zero.from_primal_value(y)  # type: ignore[attr-defined]  # no stub
        return y, functools.reduce(jnp.add, terms)
    return jvp


def _forward_bind(x, w, *, spec):
    return forward(x, w, spec)


def _input_grad_bind(g, w, *, spec, in_spatial):
    return input_grad(g, w, spec, in_spatial)


def _weight_grad_bind(x, g, *, spec, kernel):
    return weight_grad(x, g, spec, kernel)


# --- reverse mode: the transposes --------------------------------------------------------

def _forward_transpose(ct, x, w, *, spec):
    spec = training(spec)
    if ad.is_undefined_primal(x):
        dx = None if type(ct) is ad.Zero else input_grad(ct, w, spec, x.aval.shape[2:])
        return dx, None
    dw = None if type(ct) is ad.Zero else weight_grad(x, ct, spec, w.aval.shape[2:])
    return None, dw


def _input_grad_transpose(ct, g, w, *, spec, in_spatial):
    del in_spatial
    spec = training(spec)
    if ad.is_undefined_primal(g):
        dg = None if type(ct) is ad.Zero else crop_like(forward(ct, w, spec), g.aval.shape)
        return dg, None
    dw = None if type(ct) is ad.Zero else weight_grad(ct, g, spec, w.aval.shape[2:])
    return None, dw


def _weight_grad_transpose(ct, x, g, *, spec, kernel):
    del kernel
    spec = training(spec)
    if ad.is_undefined_primal(x):
        dx = None if type(ct) is ad.Zero else input_grad(g, ct, spec, x.aval.shape[2:])
        return dx, None
    dg = None if type(ct) is ad.Zero else crop_like(forward(x, ct, spec), g.aval.shape)
    return None, dg


# --- batching ----------------------------------------------------------------------------

def _merge(a: jax.Array, bdim: int, axis: int) -> jax.Array:
    """Move the mapped axis `bdim` before `axis` (of the unmapped array) and merge the
    two: ``(..., B, A, ...) -> (..., B·A, ...)``, B major."""
    a = jnp.moveaxis(a, bdim, axis)
    return a.reshape(*a.shape[:axis], -1, *a.shape[axis + 2:])


def _merge_grouped(a: jax.Array, bdim: int, axis: int, groups: int) -> jax.Array:
    """Merge the mapped axis into each group of `axis`: ``(G·A)`` becomes ``(G·B·A)``,
    the groups major, the mapped copies next, then each group's own entries."""
    a = jnp.moveaxis(a, bdim, 0)
    size = a.shape[0]
    shape = a.shape[1:]
    a = a.reshape(size, *shape[:axis], groups, shape[axis] // groups, *shape[axis + 1:])
    a = jnp.moveaxis(a, 0, axis + 1)  # (..., G, B, A/G, ...)
    return a.reshape(*shape[:axis], -1, *shape[axis + 1:])


def _split(y: jax.Array, axis: int, size: int) -> jax.Array:
    """Undo :func:`_merge`: ``(..., B·A, ...) -> (B, ..., A, ...)``."""
    y = y.reshape(*y.shape[:axis], size, -1, *y.shape[axis + 1:])
    return jnp.moveaxis(y, axis, 0)


def _split_grouped(y: jax.Array, axis: int, size: int, groups: int) -> jax.Array:
    """Undo :func:`_merge_grouped`: ``(..., G·B·A, ...) -> (B, ..., G·A, ...)``."""
    y = y.reshape(*y.shape[:axis], groups, size, -1, *y.shape[axis + 1:])
    y = jnp.moveaxis(y, axis + 1, 0)
    return y.reshape(size, *y.shape[1:axis + 1], -1, *y.shape[axis + 3:])


# Per kernel: the channel axis of each operand that the groups split and of the
# result, and which operands are data (batch axis 0) rather than a weight.
#   F(x, w):  x (N, C, S) data, w (O, Cg, K) weight  -> (N, O, P)
#   T(g, w):  g (N, O, P) data, w (O, Cg, K) weight  -> (N, C, S)
#   W(x, g):  x (N, C, S) data, g (N, O, P) data    -> (O, Cg, K)


def _batch_rule(prim: Primitive, kind: str) -> Callable:
    def rule(args, dims, **params):
        (a, b), (da, db) = args, dims
        spec = params["spec"]
        size = (a if da is not None else b).shape[
            da if da is not None else db]
        mapped_a, mapped_b = da is not None, db is not None
        if size == 0:  # nothing to compute; the folds would divide by zero
            avals = [jax.ShapeDtypeStruct(
                v.shape if d is None else v.shape[:d] + v.shape[d + 1:],
                v.dtype) for v, d in ((a, da), (b, db))]
            out = jax.eval_shape(functools.partial(prim.bind, **params), *avals)
            return jnp.zeros((0, *out.shape), out.dtype), 0
        if mapped_a and mapped_b and kind == "weight_grad" and (
                spec.kernel_impls[2] in VMAPPED_WEIGHT_GRAD_IMPLS):
            # Per-example weight gradients of an impl whose W is one XLA convolution: B·G
            # groups would make it batch-grouped, which XLA's CPU backend runs ~100x
            # slower (vmap(grad) of a 3x3 16->32 layer, 64 examples: 1078 ms against
            # 10 ms). XLA's own batching of that convolution (feature groups) is the
            # fast program: vmap the kernel. A derivative taken through this vmapped W
            # (grad of vmap of a gradient) is then JAX's derivative of W's code.
            y = jax.vmap(lambda x, g: _run_weight_grad(x, g, spec=spec,
                                                       kernel=params["kernel"]))(
                jnp.moveaxis(a, da, 0), jnp.moveaxis(b, db, 0))
            return y, 0
        if mapped_a and mapped_b:
            # The mapped copies become groups: (N, B·C), weights (B·O, ...), B·G groups.
            params = dict(params, spec=dataclasses.replace(spec, groups=spec.groups * size))
            if kind == "weight_grad":
                y = prim.bind(_merge(a, da, 1), _merge(b, db, 1), **params)
                return _split(y, 0, size), 0
            y = prim.bind(_merge(a, da, 1), _merge(b, db, 0), **params)
            return _split(y, 1, size), 0
        g_ = spec.groups
        if kind == "weight_grad":  # one data operand mapped: into its channels, per group
            if mapped_a:
                y = prim.bind(_merge_grouped(a, da, 1, g_), b, **params)  # (O, G·B·Cg ...)
                # W's output (O, B·Cg, K) per group: the groups are in O, so B·Cg splits.
                y = y.reshape(y.shape[0], size, -1, *y.shape[2:])
                return jnp.moveaxis(y, 1, 0), 0
            y = prim.bind(a, _merge_grouped(b, db, 1, g_), **params)  # (G·B·Og, Cg, K)
            return _split_grouped(y, 0, size, g_), 0
        if mapped_a:  # the data operand of F or T: into the batch
            y = prim.bind(_merge(a, da, 0), b, **params)
            return _split(y, 0, size), 0
        # The weight of F or T only.
        if kind == "forward":  # into each group's output channels
            y = prim.bind(a, _merge_grouped(b, db, 0, g_), **params)  # (N, G·B·Og, P)
            return _split_grouped(y, 1, size, g_), 0
        # T: into each group's input channels: w (O, B·Cg, K), output (N, G·B·Cg, S).
        y = prim.bind(a, _merge(b, db, 1), **params)
        return _split_grouped(y, 1, size, g_), 0
    return rule


# --- registration ------------------------------------------------------------------------

for _prim, _kind, _shape, _run, _bindfn, _transpose in (
        (forward_p, "forward", _forward_shape, _run_forward, _forward_bind,
         _forward_transpose),
        (input_grad_p, "input_grad", _input_grad_shape, _run_input_grad, _input_grad_bind,
         _input_grad_transpose),
        (weight_grad_p, "weight_grad", _weight_grad_shape, _run_weight_grad,
         _weight_grad_bind, _weight_grad_transpose)):
    _prim.def_impl(_eager(_prim))
    _prim.def_abstract_eval(_abstract(_shape))
    mlir.register_lowering(_prim, _partitioning.lowering(_kind, _run))
    ad.primitive_jvps[_prim] = _bilinear_jvp(_bindfn)
    ad.primitive_transposes[_prim] = _transpose
    batching.primitive_batchers[_prim] = _batch_rule(_prim, _kind)
    _PRIMITIVES[_kind] = _prim
_partitioning.register((forward_p, input_grad_p, weight_grad_p))
