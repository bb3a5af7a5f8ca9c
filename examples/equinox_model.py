"""An Equinox CNN whose convolutions are jaxconv layers, checked against eqx.nn.Conv2d.

    python examples/equinox_model.py            # a few seconds more than --quick
    python examples/equinox_model.py --quick    # a few seconds (what the tests run)

A jaxconv layer is an immutable, hashable description and its params are plain
arrays, so wrapping one in an ``eqx.Module`` takes three fields: the layer as a
static field, and the weight and bias as array leaves that Equinox filters,
differentiates and updates like any other. The model follows Equinox's
convention (one unbatched example ``(C, H, W)``, ``jax.vmap`` over the batch),
which jaxconv layers accept as PyTorch's do.

Checked: the model's outputs and gradients against the same network built from
``eqx.nn.Conv2d`` holding the same weights (same layout, ``(out, in // groups,
kh, kw)``; Equinox differentiates ``lax.conv_general_dilated`` itself, jaxconv
runs its hand-written rules), to float32 rounding and to 1e-10 in float64; a few
training steps with ``eqx.filter_jit``, ``eqx.filter_value_and_grad`` and optax
must lower the held-out loss; and the trained model must still equal its
``eqx.nn.Conv2d`` twin.
"""

from __future__ import annotations

import argparse
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxconv
from jaxconv import nn

NUM_CLASSES = 3
F32_TOL, F64_TOL = 1e-5, 1e-10


class JaxconvConv2d(eqx.Module):
    """A jaxconv layer as an Equinox module: the layer is static, its params are leaves."""

    layer: nn.Conv2d = eqx.field(static=True)
    weight: jax.Array
    bias: jax.Array | None

    def __init__(self, layer: nn.Conv2d, *, key: jax.Array):
        params = layer.init(key)  # PyTorch's default init
        self.layer = layer
        self.weight = params["weight"]
        self.bias = params.get("bias")

    def __call__(self, x: jax.Array) -> jax.Array:
        params = {"weight": self.weight}
        if self.bias is not None:
            params["bias"] = self.bias
        return self.layer(params, x)


def to_equinox(conv: JaxconvConv2d) -> eqx.nn.Conv2d:
    """The ``eqx.nn.Conv2d`` computing the same convolution with the same weights."""
    layer = conv.layer
    assert not isinstance(layer.padding, str)  # ints here; eqx also takes pairs
    twin = eqx.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                         layer.stride, layer.padding, layer.dilation, layer.groups,
                         use_bias=layer.bias, padding_mode=layer.padding_mode.upper(),
                         dtype=conv.weight.dtype, key=jax.random.key(0))
    twin = eqx.tree_at(lambda m: m.weight, twin, conv.weight)  # same layout, no transpose
    if layer.bias:
        twin = eqx.tree_at(lambda m: m.bias, twin, conv.bias[:, None, None])  # eqx: (out, 1, 1)
    return twin


class CNN(eqx.Module):
    convs: tuple[eqx.Module, ...]  # JaxconvConv2d (or eqx.nn.Conv2d in the twin)
    head: eqx.nn.Linear

    def __init__(self, impl: str, *, key: jax.Array):
        layers = (
            nn.Conv2d(3, 16, 3, padding=1, padding_mode="reflect", impl=impl),
            nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16, impl=impl),  # depthwise
            nn.Conv2d(16, 32, 3, padding=2, dilation=2, groups=4, padding_mode="circular",
                      impl=impl),
            nn.Conv2d(32, 32, 1, bias=False, impl=impl),
        )
        *keys, head_key = jax.random.split(key, len(layers) + 1)
        self.convs = tuple(JaxconvConv2d(layer, key=k) for layer, k in zip(layers, keys))
        self.head = eqx.nn.Linear(32, NUM_CLASSES, dtype=jnp.float32, key=head_key)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits of one example ``(3, H, W)``."""
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        return self.head(x.mean(axis=(1, 2)))


def equinox_twin(model: CNN) -> CNN:
    """The same model with every jaxconv convolution replaced by ``eqx.nn.Conv2d``."""
    return eqx.tree_at(lambda m: m.convs, model, tuple(to_equinox(c) for c in model.convs))


def to_dtype(model, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, model)


def loss_fn(model: CNN, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = jax.vmap(model)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def synthetic_data(n: int, size: int, rng: np.random.Generator):
    """Noise images whose label is the colour channel with a raised mean."""
    y = rng.integers(0, NUM_CLASSES, n)
    x = rng.standard_normal((n, 3, size, size)) + 0.3 * np.eye(3)[y][:, :, None, None]
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)


def max_gap(a, b) -> tuple[float, float]:
    """``(max |a - b|, max |b|)`` over the array leaves of two models or pytrees."""
    a, b = eqx.filter(a, eqx.is_array), eqx.filter(b, eqx.is_array)
    pairs = list(zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
    return (max(float(np.abs(np.asarray(u) - np.asarray(v)).max()) for u, v in pairs),
            max(float(np.abs(np.asarray(v)).max()) for _, v in pairs))


def main(argv: list[str] | None = None) -> int:
    impls = (*jaxconv.available_impls(), "auto")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="default 200 (quick: 30)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--impl", default="auto", choices=impls)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="fewer training steps, float64 comparison only")
    args = parser.parse_args(argv)
    steps = args.steps or (30 if args.quick else 200)
    jax.config.update("jax_enable_x64", True)  # for the float64 check; the model is float32
    rng = np.random.default_rng(args.seed)
    size = 16
    failures = []

    def check(name: str, got, want, tol: float) -> None:
        gap, scale = max_gap(got, want)
        ok = gap <= tol * (1 + scale)
        print(f"{name}: max abs diff {gap:.2e} (max |eqx| {scale:.2f}, tol {tol:.0e}) "
              f"{'OK' if ok else 'FAILED'}")
        if not ok:
            failures.append(name)

    # Building under filter_jit compiles the inits once instead of op by op.
    model = eqx.filter_jit(CNN)(args.impl, key=jax.random.key(args.seed))
    twin_of = eqx.filter_jit(equinox_twin)
    print("CNN(eqx.Module): jaxconv convolutions as static fields, params as leaves:")
    for conv in model.convs:
        print(f"  {conv.layer!r}")
    print(f"  head: eqx.nn.Linear({model.head.in_features}, {model.head.out_features})")
    x, y = synthetic_data(args.batch_size, size, rng)
    grad_fn = eqx.filter_jit(eqx.filter_grad(loss_fn))
    forward = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))
    checks = (("float32", F32_TOL), ("float64", F64_TOL))
    for dtype, tol in checks[1:] if args.quick else checks:  # quick: the tight one only
        m, xd = to_dtype(model, dtype), x.astype(dtype)
        twin = twin_of(m)
        check(f"{dtype} outputs vs eqx.nn.Conv2d", forward(m, xd), forward(twin, xd), tol)
        grads, twin_grads = grad_fn(m, xd, y), grad_fn(twin, xd, y)
        # eqx's bias gradient is (out, 1, 1), jaxconv's (out,): compare the same numbers.
        twin_grads = eqx.tree_at(lambda g: [c.bias for c in g.convs if c.bias is not None],
                                 twin_grads, replace_fn=lambda b: b.reshape(-1))
        check(f"{dtype} gradients vs eqx.nn.Conv2d", grads, twin_grads, tol)

    optimizer = optax.adam(3e-3)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def train_step(model, opt_state, x, y):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    x_val, y_val = synthetic_data(256, size, rng)
    evaluate = eqx.filter_jit(loss_fn)
    first = float(evaluate(model, x_val, y_val))
    for step in range(1, steps + 1):
        model, opt_state, loss = train_step(model, opt_state, *synthetic_data(
            args.batch_size, size, rng))
        if step % max(1, steps // 5) == 0:
            print(f"  step {step:>4}: batch loss {float(loss):.4f}")
    last = float(evaluate(model, x_val, y_val))
    print(f"trained {steps} steps (eqx.filter_jit, filter_value_and_grad, optax.adam): "
          f"held-out loss {first:.4f} -> {last:.4f}")
    if not last < 0.95 * first:
        print("FAILED: training did not lower the held-out loss by 5%", file=sys.stderr)
        failures.append("training")
    check("trained model vs its eqx.nn.Conv2d twin", forward(model, x_val),
          forward(twin_of(model), x_val), F32_TOL)

    if failures:
        print(f"FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    print("equinox model OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
