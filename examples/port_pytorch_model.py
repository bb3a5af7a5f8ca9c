"""Port a PyTorch CNN to JAX with jaxconv.nn, check it, fine-tune it in JAX, load it back.

    python examples/port_pytorch_model.py            # a few seconds more than --quick
    python examples/port_pytorch_model.py --quick    # a few seconds (what the tests run)

1. A small ``torch.nn`` CNN (reflect padding, BatchNorm in eval mode, a dilated
   depthwise convolution, a strided grouped one without bias, a ConvTranspose2d,
   a Linear head), randomly initialised with a fixed seed.
2. ``nn.from_torch_model`` turns every convolution into a jaxconv layer and every
   tensor of the ``state_dict`` into an array, grouped by module path; the JAX
   forward below mirrors ``SmallNet.forward`` line by line.
3. The JAX outputs must equal PyTorch's: to float32 rounding, and to 1e-10 in
   float64, where the gradients of a loss must match ``torch.autograd`` too.
4. The converted params are fine-tuned with optax (the BatchNorm statistics stay
   frozen, as in eval mode); the held-out loss must go down by at least 5%.
5. ``nn.state_dict_to_torch`` + ``load_state_dict`` put the fine-tuned weights
   back into the torch model, which must then give the JAX outputs.
"""

from __future__ import annotations

import argparse
import copy
import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

import jaxconv
from jaxconv import nn

NUM_CLASSES = 3
BN_EPS = 1e-5
F32_TOL, F64_TOL = 1e-5, 1e-10


class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1, padding_mode="reflect")
        self.bn = torch.nn.BatchNorm2d(16, eps=BN_EPS)
        self.depthwise = torch.nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16,
                                         padding_mode="reflect")
        self.down = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=4, bias=False)
        self.up = torch.nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1)
        self.head = torch.nn.Linear(16, NUM_CLASSES)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(self.depthwise(x))
        x = torch.relu(self.down(x))
        x = torch.relu(self.up(x))
        return self.head(x.mean(dim=(2, 3)))


def make_torch_model(seed: int) -> SmallNet:
    """Random weights, and random BatchNorm statistics so that eval mode is not a no-op."""
    torch.manual_seed(seed)
    model = SmallNet()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.2, 0.2)
    return model.eval()


def forward(layers: dict, params: dict, x: jax.Array) -> jax.Array:
    """``SmallNet.forward`` in JAX: ``layers[path](params[path], x)`` for each convolution."""

    def conv(path, x):
        return layers[path](params[path], x)

    bn = params["bn"]  # eval mode: the running statistics
    scale = bn["weight"] / jnp.sqrt(bn["running_var"] + BN_EPS)
    x = conv("stem", x)
    x = (x - bn["running_mean"][:, None, None]) * scale[:, None, None] + bn["bias"][:, None, None]
    x = jax.nn.relu(x)
    x = jax.nn.relu(conv("depthwise", x))
    x = jax.nn.relu(conv("down", x))
    x = jax.nn.relu(conv("up", x))
    return x.mean(axis=(2, 3)) @ params["head"]["weight"].T + params["head"]["bias"]


def split_trainable(params: dict) -> tuple[dict, dict]:
    """``(weights and biases, buffers)``: BatchNorm's statistics stay frozen (eval mode)."""
    trainable = {p: {k: v for k, v in d.items() if k in ("weight", "bias")}
                 for p, d in params.items()}
    buffers = {p: {k: v for k, v in d.items() if k not in ("weight", "bias")}
               for p, d in params.items()}
    return trainable, buffers


def merge(trainable: dict, buffers: dict) -> dict:
    return {p: trainable[p] | buffers[p] for p in trainable}


def loss_fn(layers, trainable, buffers, x, y):
    logits = forward(layers, merge(trainable, buffers), x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def synthetic_batch(n: int, size: int, rng: np.random.Generator):
    """Noise images whose label is the colour channel with a raised mean."""
    y = rng.integers(0, NUM_CLASSES, n)
    x = rng.standard_normal((n, 3, size, size)) + 0.25 * np.eye(3)[y][:, :, None, None]
    return x.astype(np.float32), y.astype(np.int32)


def max_gap(a, b) -> float:
    """``max |a - b|`` over all leaves of two pytrees of the same structure."""
    return max(float(np.abs(np.asarray(u) - np.asarray(v)).max())
               for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def max_abs(a) -> float:
    return max(float(np.abs(np.asarray(u)).max()) for u in jax.tree.leaves(a))


def main(argv: list[str] | None = None) -> int:
    impls = (*jaxconv.available_impls(), "auto")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps "
                        "(default 200, quick: 40)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--impl", default="auto", choices=impls)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="fewer steps, one impl")
    args = parser.parse_args(argv)
    steps = args.steps or (40 if args.quick else 200)
    jax.config.update("jax_enable_x64", True)  # for the float64 check; float32 stays float32
    rng = np.random.default_rng(args.seed)
    size = 16
    failures = []

    def check(name: str, out, ref, tol: float) -> None:
        """``max |out - ref| <= tol * (1 + max |ref|)``, i.e. ``tol`` absolute for outputs
        of order 1, relative for larger ones (fine-tuned logits grow)."""
        gap, scale = max_gap(out, ref), max_abs(ref)
        ok = gap <= tol * (1 + scale)
        print(f"{name}: max abs diff {gap:.2e} (max |torch| {scale:.2f}, tol {tol:.0e}) "
              f"{'OK' if ok else 'FAILED'}")
        if not ok:
            failures.append(name)

    # 1-2. The torch model and its conversion.
    model = make_torch_model(args.seed)
    layers, params = nn.from_torch_model(model, impl=args.impl)
    print(f"converted {len(layers)} convolutions (impl={args.impl!r}):")
    for path, layer in layers.items():
        print(f"  {path:<10}{layer!r}")
    print("params:", "; ".join(f"{p}: {', '.join(d)}" for p, d in params.items()))

    # 3. Same outputs as PyTorch: float32, every impl (full mode), float64 with gradients.
    x, y = synthetic_batch(args.batch_size, size, rng)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    for impl in impls if not args.quick else (args.impl,):
        impl_layers = {p: layer.replace(impl=impl) for p, layer in layers.items()}
        out = jax.jit(functools.partial(forward, impl_layers))(params, x)
        check(f"float32 forward, impl={impl!r}, vs torch", out, ref, F32_TOL)

    model64 = copy.deepcopy(model).double()
    layers64, params64 = nn.from_torch_model(model64, impl=args.impl)
    x64 = x.astype(np.float64)
    out64 = model64(torch.from_numpy(x64))
    torch.nn.functional.cross_entropy(out64, torch.from_numpy(y).long()).backward()
    check("float64 forward vs torch", jax.jit(functools.partial(forward, layers64))(params64, x64),
          out64.detach().numpy(), F64_TOL)
    grad_fn = jax.jit(functools.partial(jax.grad(loss_fn, argnums=1), layers64))
    grads64 = grad_fn(*split_trainable(params64), x64, y)
    torch_grads = {p: {k: getattr(model64.get_submodule(p), k).grad.numpy() for k in d}
                   for p, d in grads64.items()}
    check("float64 loss gradients vs torch.autograd", grads64, torch_grads, F64_TOL)

    # 4. Fine-tune the float32 params in JAX; BatchNorm statistics frozen.
    trainable, buffers = split_trainable(params)
    forward32 = jax.jit(functools.partial(forward, layers))
    optimizer = optax.adam(3e-3)
    opt_state = optimizer.init(trainable)

    @jax.jit
    def train_step(trainable, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn, argnums=1)(layers, trainable, buffers, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), opt_state, loss

    x_val, y_val = synthetic_batch(256, size, rng)
    evaluate = jax.jit(functools.partial(loss_fn, layers))
    first = float(evaluate(trainable, buffers, x_val, y_val))
    print(f"fine-tuning {steps} steps of {args.batch_size}: held-out loss {first:.4f}")
    for step in range(1, steps + 1):
        xb, yb = synthetic_batch(args.batch_size, size, rng)
        trainable, opt_state, loss = train_step(trainable, opt_state, xb, yb)
        if step % max(1, steps // 5) == 0 or step == steps:
            print(f"  step {step:>4}: batch loss {float(loss):.4f}")
    last = float(evaluate(trainable, buffers, x_val, y_val))
    print(f"held-out loss {first:.4f} -> {last:.4f}")
    if not last < 0.95 * first:
        print("FAILED: fine-tuning did not lower the held-out loss by 5%", file=sys.stderr)
        failures.append("fine-tuning")

    # 5. Back into the torch model.
    tuned = merge(trainable, buffers)
    model.load_state_dict(nn.state_dict_to_torch(tuned))
    same_bits = jax.tree.all(jax.tree.map(np.array_equal, tuned,
                                          nn.state_dict_from_torch(model)))
    print(f"torch model holds the fine-tuned tensors bit for bit: {same_bits}")
    if not same_bits:
        failures.append("load_state_dict")
    with torch.no_grad():
        torch_out = model(torch.from_numpy(x_val)).numpy()
    check("fine-tuned torch model vs JAX", forward32(tuned, x_val), torch_out, F32_TOL)

    if failures:
        print(f"FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    print("port OK: torch -> JAX -> fine-tuned -> torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
