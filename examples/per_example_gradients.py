"""Per-example gradients through jaxconv layers, clipped and averaged as in DP-SGD.

    python examples/per_example_gradients.py            # every impl timed, DP-SGD steps
    python examples/per_example_gradients.py --quick    # a few seconds (what the tests run)

The loss is written for one unbatched example ``(C, H, W)``, and
``jax.vmap(jax.grad(loss))`` gives one gradient per example, through jaxconv's
hand-written backward rules (primitives whose batching rules fold the examples
into the batch, or, for the weight gradient, into the groups). Each
example's gradient is scaled to a global L2 norm of at most ``--max-norm``, the
clipped gradients are averaged and, with ``--noise-multiplier`` > 0, Gaussian
noise of std ``noise_multiplier * max_norm / batch`` is added (DP-SGD, Abadi et
al. 2016; ``optax.contrib.differentially_private_aggregate`` packages the same
steps as an optax transform).

Checked, in float32: the vmapped gradients against a Python loop of
single-example ``jax.grad`` calls, their mean against the gradient of the batched
loss (the layers called once on the whole batch), and the clipped sum against
``optax.per_example_global_norm_clip``. The timings printed at the end (vmap of
grad against one batched grad) are information only, never asserted.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxconv
from jaxconv import nn

NUM_CLASSES = 3
TOL = 1e-5  # float32, relative to the largest gradient entry


def make_layers(impl: str) -> dict[str, nn.Conv2d]:
    return {
        "stem": nn.Conv2d(3, 16, 3, padding=1, padding_mode="replicate", impl=impl),
        "depthwise": nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16, impl=impl),
        "pointwise": nn.Conv2d(16, 32, 1, impl=impl),
    }


def init_params(layers: dict[str, nn.Conv2d], key: jax.Array) -> dict:
    keys = jax.random.split(key, len(layers) + 1)
    params = {name: layer.init(k) for (name, layer), k in zip(layers.items(), keys)}
    width = layers["pointwise"].out_channels
    bound = 1 / math.sqrt(width)
    params["head"] = {"weight": jax.random.uniform(keys[-1], (width, NUM_CLASSES),
                                                   jnp.float32, -bound, bound),
                      "bias": jnp.zeros(NUM_CLASSES, jnp.float32)}
    return params


def apply(layers: dict[str, nn.Conv2d], params: dict, x: jax.Array) -> jax.Array:
    """Logits for one example ``(3, H, W)`` or a batch ``(N, 3, H, W)``: the layers
    take both, as PyTorch's do."""
    for name, layer in layers.items():
        x = jax.nn.relu(layer(params[name], x))
    x = x.mean(axis=(-2, -1))
    return x @ params["head"]["weight"] + params["head"]["bias"]


def example_loss(layers, params, x, y):
    """The loss of ONE example: ``x`` is ``(3, H, W)``, ``y`` a scalar label."""
    logits = apply(layers, params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def batch_loss(layers, params, x, y):
    """The mean loss of a batch, with the layers called once on ``(N, 3, H, W)``."""
    logits = apply(layers, params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def clip_and_average(per_example: dict, max_norm: float) -> tuple[dict, jax.Array]:
    """Scale each example's gradient to a global norm <= ``max_norm``, then average.

    Returns the averaged gradient and the per-example norms before clipping.
    """
    norms = jax.vmap(optax.tree.norm)(per_example)
    scale = jnp.minimum(1.0, max_norm / jnp.maximum(norms, 1e-12))
    mean = jax.tree.map(
        lambda g: jnp.einsum("n,n...->...", scale, g) / g.shape[0], per_example)
    return mean, norms


def synthetic_data(n: int, size: int, rng: np.random.Generator):
    """Noise images whose label is the colour channel with a raised mean."""
    y = rng.integers(0, NUM_CLASSES, n)
    x = rng.standard_normal((n, 3, size, size)) + 0.3 * np.eye(3)[y][:, :, None, None]
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)


def make_grad_fns(layers: dict[str, nn.Conv2d]):
    """Jitted ``(per-example grads: vmap of grad of one example's loss, grad of the
    batch's mean loss)``, both ``(params, x, y) -> grads``."""
    grad = jax.grad(example_loss, argnums=1)
    per_example = jax.jit(jax.vmap(functools.partial(grad, layers), in_axes=(None, 0, 0)))
    batched = jax.jit(functools.partial(jax.grad(batch_loss, argnums=1), layers))
    return per_example, batched


def median_ms(f, *args, repeats: int) -> float:
    jax.block_until_ready(f(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    impls = (*jaxconv.available_impls(), "auto")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 (quick: 16)")
    parser.add_argument("--max-norm", type=float, default=1.0, help="per-example clip norm")
    parser.add_argument("--noise-multiplier", type=float, default=0.0,
                        help="DP-SGD noise std / max-norm (default 0: no noise)")
    parser.add_argument("--steps", type=int, default=None, help="DP-SGD steps "
                        "(default 100, quick: 10)")
    parser.add_argument("--impl", default="auto", choices=impls)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small batch, one impl timed")
    args = parser.parse_args(argv)
    batch = args.batch_size or (16 if args.quick else 64)
    steps = args.steps or (10 if args.quick else 100)
    size = 16
    rng = np.random.default_rng(args.seed)
    layers = make_layers(args.impl)
    params = jax.jit(functools.partial(init_params, layers))(jax.random.key(args.seed))
    per_example_grads, batched_grad = make_grad_fns(layers)
    n_params = sum(p.size for p in jax.tree.leaves(params))
    print(f"{n_params} params, batches of {batch} examples (3, {size}, {size}), "
          f"impl={args.impl!r}")

    # DP-SGD: per-example gradients, clipped, averaged, noised, into optax.
    optimizer = optax.sgd(0.5)
    opt_state = optimizer.init(params)

    @jax.jit
    def dp_step(params, opt_state, key, x, y):
        mean, norms = clip_and_average(per_example_grads(params, x, y), args.max_norm)
        std = args.noise_multiplier * args.max_norm / x.shape[0]
        leaves, tree = jax.tree.flatten(mean)
        keys = jax.random.split(key, len(leaves))
        noisy = tree.unflatten([g + std * jax.random.normal(k, g.shape, g.dtype)
                                for g, k in zip(leaves, keys)])
        updates, opt_state = optimizer.update(noisy, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, jnp.median(norms)

    x_val, y_val = synthetic_data(512, size, rng)
    val_loss = jax.jit(functools.partial(batch_loss, layers))
    first = float(val_loss(params, x_val, y_val))
    key = jax.random.key(args.seed + 1)
    for step in range(1, steps + 1):
        key, step_key = jax.random.split(key)
        params, opt_state, median_norm = dp_step(params, opt_state, step_key,
                                                 *synthetic_data(batch, size, rng))
        if step % max(1, steps // 5) == 0:
            print(f"  step {step:>4}: median per-example grad norm {float(median_norm):.3f}")
    print(f"DP-SGD, {steps} steps (max norm {args.max_norm}, noise multiplier "
          f"{args.noise_multiplier}): held-out loss {first:.4f} -> "
          f"{float(val_loss(params, x_val, y_val)):.4f}")

    # Checks, on the trained params and a fresh batch.
    failures = []

    def check(name: str, got, want) -> None:
        got, want = jax.tree.map(np.asarray, (got, want))
        gap = max(np.abs(a - b).max() for a, b in
                  zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True))
        scale = max(np.abs(b).max() for b in jax.tree.leaves(want))
        ok = gap <= TOL * (1 + scale)
        print(f"{name}: max abs diff {gap:.2e} (max |grad| {scale:.2f}) "
              f"{'OK' if ok else 'FAILED'}")
        if not ok:
            failures.append(name)

    x, y = synthetic_data(batch, size, rng)
    grads = per_example_grads(params, x, y)
    single_grad = jax.jit(functools.partial(jax.grad(example_loss, argnums=1), layers))
    loop = [single_grad(params, x[i], y[i]) for i in range(batch)]
    check("vmap(grad) vs a loop of single-example grads", grads,
          jax.tree.map(lambda *g: np.stack(g), *loop))
    check("mean of per-example grads vs grad of the batched loss",
          jax.tree.map(lambda g: g.mean(0), grads), batched_grad(params, x, y))
    mean, norms = jax.jit(clip_and_average, static_argnums=1)(grads, args.max_norm)
    clipped_sum, n_clipped = jax.jit(optax.per_example_global_norm_clip, static_argnums=1)(
        jax.tree.leaves(grads), args.max_norm)
    check("clipped mean vs optax.per_example_global_norm_clip", jax.tree.leaves(mean),
          [g / batch for g in clipped_sum])
    print(f"per-example grad norms: min {float(norms.min()):.3f}, median "
          f"{float(jnp.median(norms)):.3f}, max {float(norms.max()):.3f}; "
          f"{int(n_clipped)}/{batch} clipped to {args.max_norm}")

    # Timing, information only: vmap(grad) against one batched gradient.
    repeats = 3 if args.quick else 10
    print(f"time per call, batch {batch}, median of {repeats} (ms):")
    print(f"  {'impl':<8}{'vmap(grad)':>12}{'batched grad':>14}{'ratio':>8}")
    for impl in (args.impl,) if args.quick else impls:
        vg, bg = ((per_example_grads, batched_grad) if impl == args.impl
                  else make_grad_fns(make_layers(impl)))
        t_vmap = median_ms(vg, params, x, y, repeats=repeats)
        t_batch = median_ms(bg, params, x, y, repeats=repeats)
        print(f"  {impl:<8}{t_vmap:>12.2f}{t_batch:>14.2f}{t_vmap / t_batch:>8.1f}")
    loop_ms = median_ms(lambda: [single_grad(params, x[i], y[i]) for i in range(batch)],
                        repeats=repeats)
    print(f"  (a Python loop of {batch} single-example grads, impl={args.impl!r}: "
          f"{loop_ms:.2f} ms)")

    if failures:
        print(f"FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    print("per-example gradients OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
