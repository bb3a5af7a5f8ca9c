"""Train a small CNN built from jaxconv.nn layers with optax, on a synthetic data set.

    python examples/train_cnn.py            # about a minute on 2 CPU cores
    python examples/train_cnn.py --quick    # a few seconds (what the tests run)

Each image is a noisy sine grating; its class is the grating's orientation (0, 45,
90 or 135 degrees, jittered), while frequency, phase and contrast are random and
the pixel noise is stronger than the pattern, so the net has to learn oriented filters.
The model uses a reflect-padded stem, a strided convolution, a circular-padded
depthwise convolution and a grouped one, global average pooling and a linear
head (a plain matmul with its own params). It trains under ``jax.jit`` through
jaxconv's hand-written gradients, and at the end every impl (and ``"auto"``)
must give the same logits and predictions on the trained weights. The script
exits non-zero if the held-out accuracy is not well above chance.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxconv
from jaxconv import nn

try:
    from tqdm import tqdm
except ImportError:  # tqdm is optional: plain prints then
    tqdm = None

NUM_CLASSES = 4
MIN_ACCURACY = 0.6  # chance is 1 / NUM_CLASSES


def make_dataset(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy gratings ``(n, 1, size, size)`` float32 and their orientation labels."""
    labels = rng.integers(0, NUM_CLASSES, n)
    angle = labels * np.pi / NUM_CLASSES + rng.normal(0.0, 0.12, n)
    freq = 2 * np.pi * rng.uniform(0.12, 0.3, n)  # cycles per pixel, times 2 pi
    phase = rng.uniform(0.0, 2 * np.pi, n)
    contrast = rng.uniform(0.5, 1.5, n)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    along = (xx[None] * np.cos(angle)[:, None, None] + yy[None] * np.sin(angle)[:, None, None])
    images = contrast[:, None, None] * np.sin(freq[:, None, None] * along + phase[:, None, None])
    images += rng.normal(0.0, 1.5, images.shape)
    return images[:, None].astype(np.float32), labels.astype(np.int32)


def make_layers(impl: str) -> dict[str, nn.Conv2d]:
    """The convolutions, in order. ``impl`` is a layer field, so the model is built per impl."""
    return {
        "stem": nn.Conv2d(1, 16, 5, padding=2, padding_mode="reflect", impl=impl),
        "down": nn.Conv2d(16, 32, 3, stride=2, padding=1, impl=impl),
        "depthwise": nn.Conv2d(32, 32, 3, padding=1, groups=32, padding_mode="circular",
                               impl=impl),
        "grouped": nn.Conv2d(32, 64, 3, padding=1, groups=4, impl=impl),
    }


def init_params(layers: dict[str, nn.Conv2d], key: jax.Array) -> dict:
    """PyTorch's default init for the convolutions (``layer.init``) and for the head."""
    keys = jax.random.split(key, len(layers) + 2)
    params = {name: layer.init(k) for (name, layer), k in zip(layers.items(), keys)}
    width = list(layers.values())[-1].out_channels
    bound = 1 / math.sqrt(width)  # nn.Linear's init
    params["head"] = {
        "weight": jax.random.uniform(keys[-2], (width, NUM_CLASSES), jnp.float32, -bound, bound),
        "bias": jax.random.uniform(keys[-1], (NUM_CLASSES,), jnp.float32, -bound, bound),
    }
    return params


def apply(layers: dict[str, nn.Conv2d], params: dict, x: jax.Array) -> jax.Array:
    """Logits ``(N, NUM_CLASSES)`` for images ``(N, 1, H, W)``."""
    for name, layer in layers.items():
        x = jax.nn.relu(layer(params[name], x))
    x = x.mean(axis=(2, 3))  # global average pool
    return x @ params["head"]["weight"] + params["head"]["bias"]


def make_train_step(layers: dict[str, nn.Conv2d], optimizer: optax.GradientTransformation):
    def loss_fn(params, x, y):
        logits = apply(layers, params, x)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, logits

    @jax.jit
    def train_step(params, opt_state, x, y):
        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        accuracy = (logits.argmax(-1) == y).mean()
        return optax.apply_updates(params, updates), opt_state, loss, accuracy

    return train_step


def predict(forward, params, x: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([np.asarray(forward(params, x[i:i + batch_size]))
                           for i in range(0, len(x), batch_size)])


def main(argv: list[str] | None = None) -> int:
    impls = (*jaxconv.available_impls(), "auto")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default 8 (quick: 5)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 (quick: 32)")
    parser.add_argument("--impl", default="auto", choices=impls, help="impl to train with")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small data, few epochs")
    args = parser.parse_args(argv)
    epochs = args.epochs or (5 if args.quick else 8)
    batch_size = args.batch_size or (32 if args.quick else 64)
    n_train, n_test, size = (768, 256, 16) if args.quick else (12288, 2048, 16)

    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_dataset(n_train, size, rng)
    x_test, y_test = make_dataset(n_test, size, rng)
    layers = make_layers(args.impl)
    params = jax.jit(functools.partial(init_params, layers))(jax.random.key(args.seed))
    n_params = sum(p.size for p in jax.tree.leaves(params))
    print(f"{n_train} train / {n_test} test images of {size}x{size}, {NUM_CLASSES} classes; "
          f"{n_params} params; impl={args.impl!r}")
    for name, layer in layers.items():
        print(f"  {name:<10}{layer!r}")

    optimizer = optax.adam(args.lr)
    opt_state = optimizer.init(params)
    train_step = make_train_step(layers, optimizer)
    steps = n_train // batch_size  # the last partial batch is dropped: one compiled shape
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n_train)
        batches = range(steps)
        bar = tqdm(batches, desc=f"epoch {epoch}/{epochs}", leave=False) if tqdm else None
        losses, accuracies = [], []
        for i in bar if bar is not None else batches:
            idx = order[i * batch_size:(i + 1) * batch_size]
            params, opt_state, loss, acc = train_step(params, opt_state, x_train[idx],
                                                      y_train[idx])
            losses.append(loss)
            accuracies.append(acc)
            if bar is not None and i % 10 == 0:
                bar.set_postfix(loss=f"{float(loss):.3f}")
        if bar is not None:
            bar.close()
        print(f"epoch {epoch}/{epochs}: loss {float(np.mean(losses)):.4f}, "
              f"train accuracy {float(np.mean(accuracies)):.3f} "
              f"({time.perf_counter() - start:.1f}s)")

    # The same trained weights through every impl: logits within float32 rounding,
    # identical predictions (a flip is excused only at a near-tie of the top two logits).
    logits = {impl: predict(jax.jit(functools.partial(apply, make_layers(impl))), params,
                            x_test, 256) for impl in impls}
    ref = logits[args.impl]
    atol = 1e-4 * (1.0 + np.abs(ref).max())
    top2 = np.sort(ref, axis=-1)[:, -2:]
    near_tie = top2[:, 1] - top2[:, 0] <= 2 * atol
    ok = True
    print(f"the trained model through every impl, against impl={args.impl!r} (trained with):")
    for impl in (i for i in impls if i != args.impl):
        gap = np.abs(logits[impl] - ref).max()
        flips = logits[impl].argmax(-1) != ref.argmax(-1)
        bad = gap > atol or np.any(flips & ~near_tie)
        ok &= not bad
        print(f"  impl {impl!r:>9}: max |logits - {args.impl}| {gap:.2e}, "
              f"same prediction on {n_test - flips.sum()}/{n_test} test images"
              f"{'  MISMATCH' if bad else ''}")

    accuracy = float((ref.argmax(-1) == y_test).mean())
    print(f"final test accuracy: {accuracy:.3f}")
    if not ok:
        print("FAILED: the impls disagree on the trained model", file=sys.stderr)
        return 1
    if accuracy < MIN_ACCURACY:
        print(f"FAILED: test accuracy {accuracy:.3f} < {MIN_ACCURACY} (chance is "
              f"{1 / NUM_CLASSES:.2f})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
