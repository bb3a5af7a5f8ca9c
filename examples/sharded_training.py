"""Data- and spatial-parallel training of a small jaxconv CNN over every device.

    python examples/sharded_training.py                       # 8 simulated CPU devices
    python examples/sharded_training.py --layout spatial      # also split the image height
    python examples/sharded_training.py --processes 2         # 2 processes x 4 devices
    python examples/sharded_training.py --axes auto           # automatic mesh axes
    python examples/sharded_training.py --quick               # CI: a few steps

The batch is split over the ``data`` mesh axis and, with ``--layout spatial``, the
image height over ``space``. With explicit axes (``jax.make_mesh``'s default,
``--axes explicit``) jaxconv reads that layout from the arrays' types and convolves
per shard with ``shard_map``; with automatic axes (``--axes auto``, what a plain
``jax.sharding.Mesh`` gives) XLA partitions the program and jaxconv's kernels
partition themselves (``custom_partitioning``). Either way: a halo exchange for the
height, the padding modes at the image edges, the parameters replicated and their
gradients summed over all shards. Nothing in the model or the step function
mentions devices: on a GPU or TPU host (``--devices 0`` uses the
devices that are there) or a cluster (``jax.distributed.initialize()`` with the
cluster's own coordinator) the same program runs unchanged.

``--processes N`` starts N copies of this script on this machine, each with
``devices / N`` CPU devices, joined by ``jax.distributed.initialize`` on a local
coordinator (CPU collectives over gloo); every process feeds its own part of each
global batch. The final loss and a checksum of the parameters are printed, and
written as JSON with ``--out``, so a single-process run and a multi-process run
can be compared (tests/test_multiprocess.py does).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=8,
                   help="CPU devices to simulate in all (0: use the devices present)")
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--process-id", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--coordinator", default=None, help=argparse.SUPPRESS)
    p.add_argument("--layout", choices=("data", "spatial"), default="data")
    p.add_argument("--axes", choices=("explicit", "auto"), default="explicit",
                   help="the mesh's axis types (default: explicit)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--impl", default="auto")
    p.add_argument("--quick", action="store_true", help="a few steps (CI)")
    p.add_argument("--out", default=None, help="write final loss and checksum as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.steps = 4
    return args


def launch(args, argv) -> int:
    """Start `args.processes` copies of this script and wait for all of them."""
    with socket.socket() as s:  # a free local port for the coordinator
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    argv = sys.argv[1:] if argv is None else list(argv)
    procs = [subprocess.Popen([sys.executable, __file__, *argv, "--process-id", str(i),
                               "--coordinator", f"localhost:{port}"])
             for i in range(args.processes)]
    codes = [p.wait() for p in procs]
    return max(codes, key=abs)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.processes > 1 and args.process_id is None:
        return launch(args, argv)

    import jax

    if args.devices:
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_num_cpu_devices", args.devices // args.processes)
    if args.process_id is not None:
        jax.distributed.initialize(args.coordinator, num_processes=args.processes,
                                   process_id=args.process_id)

    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxconv import nn

    n_dev = jax.device_count()
    space = 2 if args.layout == "spatial" and n_dev % 2 == 0 else 1
    kind = AxisType.Explicit if args.axes == "explicit" else AxisType.Auto
    mesh = jax.make_mesh((n_dev // space, space), ("data", "space"), axis_types=(kind, kind))
    x_spec = P("data", None, "space") if space > 1 else P("data")
    main_process = jax.process_index() == 0

    # The model: PyTorch-style layers, PyTorch's init.
    layers = [
        nn.Conv2d(3, 16, 3, padding=1, padding_mode="reflect", impl=args.impl),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=4, impl=args.impl),
        nn.Conv2d(32, 32, 3, padding=1, groups=32, padding_mode="circular", impl=args.impl),
    ]
    classes, size = 4, 16
    keys = jax.random.split(jax.random.key(0), len(layers) + 1)
    params = {"convs": [layer.init(k) for layer, k in zip(layers, keys[:-1])],
              "head": jax.random.normal(keys[-1], (32, classes)) * 0.1}

    def forward(params, x):
        for layer, p in zip(layers, params["convs"]):
            x = jax.nn.relu(layer(p, x))
        return x.mean(axis=(2, 3)) @ params["head"]

    def loss_fn(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(forward(params, x), y).mean()

    opt = optax.adam(3e-3)

    @jax.jit
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    def batch(i):
        """Global batch `i`, the same in every process: class c is stripes of frequency c+1."""
        rng = np.random.default_rng(i)
        y = rng.integers(0, classes, args.batch_size)
        rows = np.arange(size)[None, :, None]
        phase = rng.uniform(0, 2 * np.pi, (args.batch_size, 1, 1))
        stripes = np.sin((y[:, None, None] + 1) * rows * np.pi / size + phase)
        x = np.repeat(stripes[:, None], 3, axis=1) * np.ones((1, 1, 1, size))
        x = x + 0.5 * rng.standard_normal(x.shape)
        return x.astype(np.float32), y.astype(np.int32)

    def put(a, spec):
        """This process's part of the global array `a`, placed on its devices."""
        sharding = NamedSharding(mesh, spec)
        return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

    with jax.set_mesh(mesh):
        params = jax.tree.map(lambda a: put(np.asarray(a), P()), params)
        state = opt.init(params)
        times = []
        for i in range(args.steps):
            x, y = batch(i)
            xs, ys = put(x, x_spec), put(y, P("data"))
            start = time.perf_counter()
            params, state, loss = step(params, state, xs, ys)
            loss = float(loss)
            times.append(time.perf_counter() - start)
            if main_process and (i % 10 == 0 or i == args.steps - 1):
                print(f"step {i:3d}  loss {loss:.4f}", flush=True)
        checksum = float(sum(jnp.sum(jnp.abs(a)) for a in jax.tree.leaves(params)))
        x_type = str(jax.typeof(xs))
        x_sharding = str(xs.sharding.spec)

    step_ms = 1e3 * float(np.median(times[1:] if len(times) > 1 else times))
    result = dict(devices=n_dev, processes=jax.process_count(), layout=args.layout,
                  steps=args.steps, final_loss=loss, param_checksum=checksum,
                  median_step_ms=step_ms, input_type=x_type, input_sharding=x_sharding,
                  axes=args.axes)
    if main_process:
        print(f"{n_dev} devices in {jax.process_count()} process(es), mesh "
              f"{dict(mesh.shape)} ({args.axes} axes), input {x_type} sharded "
              f"{x_sharding}: median step {step_ms:.1f} ms, "
              f"final loss {loss:.4f}, parameter checksum {checksum:.6f}")
        if args.out:
            with open(args.out, "w") as f:
                json.dump(result, f)
    if args.process_id is not None:
        jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
