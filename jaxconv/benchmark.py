"""The benchmark behind ``python -m jaxconv bench``: layers, variants, timings, tables.

Everything here is a library function the CLI (:mod:`jaxconv.cli.bench`) and
the tests call. A *variant* is one way to run a layer:

* every registered impl (``impl=name``, jaxconv's hand-written backward rules),
* ``auto`` (``impl="auto"``: per-kernel choice, :mod:`jaxconv._auto`),
* ``raw-lax``: what a JAX user writes today, ``jnp.pad`` for the padding mode
  then one ``jax.lax.conv_general_dilated``, differentiated by JAX,
* ``torch``: ``torch.nn.ConvNd`` on the CPU, when PyTorch is installed.

Timings are medians of at least ``repeats`` runs after a warm-up, with the JAX
variants of a layer run *interleaved*, so a slow phase of a shared machine hits
them all alike: each round visits them in a fresh random order, and each visit
makes one untimed call before the timed one (a variant that follows a
memory-heavy one otherwise runs up to 40% slower: identical programs differed
that much). With ``min_time`` a variant is sampled further, up to
:data:`MAX_ROUNDS` runs, until its timed calls add up to that many seconds: on a
shared 2-core machine, medians of 7 runs of two copies of one compiled program
were up to 1.54x apart, medians of 420 0.96-1.04x (``benchmarks/noise_probe.py``,
docs/performance-notes.md, "Measurement").
PyTorch is timed right after them, in a block of its own: its OpenMP threads
spin for a while after each call and would slow whatever JAX runs next.
Forward+backward is ``value_and_grad`` of
``<conv(x, w, b), ct>`` w.r.t. x, w and b, with the cotangent ``ct`` a random
array passed in as an argument (the value keeps the forward in the program; a
constant cotangent would let XLA specialise the backward on it). PyTorch's is
``module(x).backward(ct)`` with the same ``ct``. Compile time is that of the
forward+backward program; peak memory is XLA's planned argument + output +
temporary bytes for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import random
import re
import statistics
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv import _auto, _registry
from jaxconv._conv import conv
from jaxconv._padding import pad_trailing
from jaxconv._spec import conv_spec

Key = TypeVar("Key", bound=Hashable)  # what names a runner in the interleaved timings


@dataclasses.dataclass(frozen=True)
class Layer:
    """One convolution layer of the benchmark (channels-first; float32 unless `dtype`
    says complex64)."""

    rank: int
    n: int
    c_in: int
    spatial: tuple[int, ...]
    c_out: int
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    mode: str = "zeros"
    dtype: str = "float32"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.n, self.c_in, *self.spatial)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.c_out, self.c_in // self.groups, *(self.kernel,) * self.rank)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups, padding_mode=self.mode)

    def describe(self) -> str:
        s = "x".join(map(str, self.spatial))
        text = (f"{self.rank}d N={self.n} C={self.c_in} S={s} O={self.c_out} k={self.kernel} "
                f"s={self.stride} p={self.padding} d={self.dilation} g={self.groups}")
        text += "" if self.mode == "zeros" else f" mode={self.mode}"
        return text + ("" if self.dtype == "float32" else f" dtype={self.dtype}")


# Typical layers of CNNs (image, audio, video), at CPU-sized batches.
LAYERS: dict[str, Layer] = {
    "resnet_3x3_64": Layer(2, 8, 64, (56, 56), 64, 3, 1, 1),
    "resnet_3x3_s2": Layer(2, 8, 128, (28, 28), 256, 3, 2, 1),
    "pointwise_1x1": Layer(2, 8, 256, (28, 28), 256, 1),
    "depthwise_3x3": Layer(2, 8, 128, (56, 56), 128, 3, 1, 1, 1, 128),
    "depthwise_s2_x2": Layer(2, 8, 64, (56, 56), 128, 3, 2, 1, 1, 64),
    "grouped_3x3_g32": Layer(2, 8, 128, (28, 28), 128, 3, 1, 1, 1, 32),
    "grouped_3x3_g4": Layer(2, 8, 128, (28, 28), 128, 3, 1, 1, 1, 4),
    "dilated_3x3_d2": Layer(2, 8, 64, (56, 56), 64, 3, 1, 2, 2),
    "stem_7x7_s2": Layer(2, 8, 3, (224, 224), 64, 7, 2, 3),
    "late_3x3_512": Layer(2, 8, 512, (4, 4), 512, 3, 1, 1),
    "reflect_3x3": Layer(2, 8, 64, (56, 56), 64, 3, 1, 1, mode="reflect"),
    "audio_1d_k9": Layer(1, 16, 32, (8000,), 64, 9, 1, 4),
    "wavenet_1d_d8": Layer(1, 8, 64, (4096,), 64, 3, 1, 8, 8),
    "depthwise_1d_k31": Layer(1, 8, 256, (1024,), 256, 31, 1, 15, 1, 256),
    "video_3d": Layer(3, 2, 16, (8, 32, 32), 32, 3, 1, 1),
    "circular_3d": Layer(3, 2, 16, (8, 32, 32), 16, 3, 1, 1, mode="circular"),
    # Small maps and few channels, where a forward alone (inference) loses most: an
    # atrous pyramid branch whose dilation exceeds its map (8 of 9 taps read only
    # padding), dense 3x3 at 10x10 and 5x5, grouped 3x3 and 1x1 at 2x2, a 3-channel stem.
    "atrous_3x3_d12": Layer(2, 4, 960, (6, 6), 256, 3, 1, 12, 12),
    "small_3x3_256": Layer(2, 4, 256, (10, 10), 256, 3, 1, 1),
    "small_3x3_512": Layer(2, 4, 512, (5, 5), 512, 3, 1, 1),
    "grouped_3x3_2x2": Layer(2, 8, 400, (2, 2), 400, 3, 1, 1, 1, 25),
    "pointwise_1x1_2x2": Layer(2, 8, 192, (2, 2), 1152, 1),
    "stem_3x3_s2": Layer(2, 8, 3, (224, 224), 32, 3, 2, 1),
    # Complex layers (MRI reconstruction, complex-valued audio and radar nets).
    "complex_3x3_32": Layer(2, 8, 32, (56, 56), 32, 3, 1, 1, dtype="complex64"),
    "complex_1d_k9": Layer(1, 8, 32, (4096,), 32, 9, 1, 4, dtype="complex64"),
}

_KEYS = {"n": "n", "c": "c_in", "o": "c_out", "k": "kernel", "s": "stride", "p": "padding",
         "d": "dilation", "g": "groups", "mode": "mode", "dtype": "dtype"}
BENCH_DTYPES = ("float32", "complex64")


def parse_layer(text: str) -> Layer:
    """A layer from ``"2d N=8 C=64 HW=56 O=64 k=3 s=1 p=1 g=1 d=1 mode=reflect"``.

    The first word is the rank (``1d``, ``2d``, ``3d``); the spatial size is
    ``L=``, ``HW=`` or ``DHW=`` (one size for every axis) or ``S=8x32x32``.
    ``N``, ``C``, ``O``, ``k`` and the spatial size are required; ``s``, ``p``,
    ``d``, ``g`` default to 1, 0, 1, 1 and ``mode`` to zeros.

    Raises:
      ValueError: naming the part of `text` it cannot read.
    """
    words = text.split()
    if not words or not re.fullmatch(r"[123]d", words[0]):
        raise ValueError(f"jaxconv bench: a layer starts with its rank (1d, 2d or 3d), "
                         f"got {text!r}.")
    rank = int(words[0][0])
    fields: dict[str, Any] = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        lower = key.lower()
        if not sep or not value:
            raise ValueError(f"jaxconv bench: expected key=value, got {word!r} in {text!r}.")
        if lower in ("l", "hw", "dhw", "s") and ("x" in value or lower != "s"):
            sizes = tuple(int(v) for v in value.split("x"))
            fields["spatial"] = sizes * rank if len(sizes) == 1 else sizes
        elif lower in _KEYS:
            fields[_KEYS[lower]] = value if lower in ("mode", "dtype") else int(value)
        else:
            raise ValueError(f"jaxconv bench: unknown key {key!r} in {text!r}; use N, C, O, "
                             "k, s, p, d, g, mode, dtype and L / HW / DHW / S.")
    missing = [k for k in ("n", "c_in", "c_out", "kernel", "spatial") if k not in fields]
    if missing:
        raise ValueError(f"jaxconv bench: layer {text!r} lacks {', '.join(missing)}.")
    if len(fields["spatial"]) != rank:
        raise ValueError(f"jaxconv bench: {rank}-d layer needs {rank} spatial sizes, got "
                         f"{fields['spatial']} in {text!r}.")
    if fields.get("dtype", "float32") not in BENCH_DTYPES:
        raise ValueError(f"jaxconv bench: dtype must be one of {', '.join(BENCH_DTYPES)}, "
                         f"got {fields['dtype']!r} in {text!r}.")
    layer = Layer(rank=rank, **fields)
    conv_spec("bench", _auto.shape_stand_in(layer.input_shape),
              _auto.shape_stand_in(layer.weight_shape), None, layer.stride, layer.padding,
              layer.dilation, layer.groups, layer.mode, None)
    return layer


def layer_arrays(layer: Layer, seed: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    fan_in = math.prod(layer.weight_shape[1:])
    complex_ = layer.dtype == "complex64"

    def draw(shape, scale=1.0):
        a = rng.standard_normal(shape, dtype=np.float32)
        if complex_:
            a = a + 1j * rng.standard_normal(shape, dtype=np.float32)
        return jnp.asarray((a * scale).astype(layer.dtype))

    return draw(layer.input_shape), draw(layer.weight_shape, 1 / np.sqrt(fan_in)), \
        draw((layer.c_out,))


def raw_lax_conv(layer: Layer) -> Callable:
    """The plain-JAX baseline: ``jnp.pad`` for the mode, one ``lax.conv_general_dilated``."""
    r = layer.rank
    pads = [(layer.padding, layer.padding)] * r
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}.get(layer.mode)

    def f(x, w, b):
        conv_pads = pads
        if np_mode is not None:
            x = jnp.pad(x, [(0, 0), (0, 0), *pads], mode=np_mode)
            conv_pads = [(0, 0)] * r
        y = jax.lax.conv_general_dilated(x, w, (layer.stride,) * r, conv_pads,
                                         rhs_dilation=(layer.dilation,) * r,
                                         feature_group_count=layer.groups)
        return y + b.reshape((-1,) + (1,) * r)

    return f


def jax_variants(layer: Layer, impls: Iterable[str]) -> dict[str, Callable]:
    kw = layer.kwargs
    out = {name: (lambda x, w, b, name=name: conv(x, w, b, **kw, impl=name)) for name in impls}
    out["raw-lax"] = raw_lax_conv(layer)
    return out


@dataclasses.dataclass
class Timing:
    """Medians in ms (compile in s, peak in MiB); ``None`` where not measured."""

    fwd_ms: float | None = None
    fwdbwd_ms: float | None = None
    compile_s: float | None = None
    peak_mib: float | None = None
    # program_id of the compiled forward and forward+backward programs.
    fwd_program: str | None = None
    fwdbwd_program: str | None = None


def program_id(compiled) -> str:
    """A digest of a compiled JAX program's optimised HLO, blind to what does not
    change the machine code: op metadata (source lines, names of the traced
    functions), instruction and parameter names, and the names of the module and
    its entry computation. Two variants
    with the same id run the same XLA program, so any difference in their timings
    is measurement noise."""
    try:
        from jaxlib import _hlo  # type: ignore[attr-defined]  # private, no stub

        opts = _hlo.HloPrintOptions.canonical()
        opts.print_large_constants = True
        opts.print_backend_config = True
        opts.print_metadata = False
        text = "\n".join(m.to_string(opts) for m in compiled.runtime_executable().hlo_modules())
    except (ImportError, AttributeError):  # another jaxlib: the plain text, less canonical
        text = re.sub(r",? metadata=\{[^}]*\}", "", compiled.as_text())
    # The module's and the entry computation's names carry the traced function's
    # name and a counter of the process's compilations.
    text = re.sub(r"^(HloModule|ENTRY) \S+", r"\1", text, flags=re.MULTILINE)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _jax_runners(fn: Callable, args: Sequence[jax.Array], timing: Timing,
                 compiler_options: dict | None = None):
    fwd = jax.jit(fn, compiler_options=compiler_options).lower(*args).compile()
    # The cotangent is an argument, as in a network (a closed-over constant such as
    # ones would let XLA specialise the backward on it).
    ct = jax.random.normal(jax.random.key(1), fwd.out_info.shape, args[0].dtype)
    # Re <y, ct>: a real loss for complex layers too (its gradient is the VJP of conj(ct)).
    grad = jax.jit(jax.value_and_grad(lambda *a: jnp.vdot(fn(*a[:-1]), a[-1]).real,
                                      argnums=tuple(range(len(args)))),
                   compiler_options=compiler_options)
    args = (*args, ct)
    start = time.perf_counter()
    compiled = grad.lower(*args).compile()
    timing.compile_s = time.perf_counter() - start
    mem = compiled.memory_analysis()
    if mem is not None:
        timing.peak_mib = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                           + mem.temp_size_in_bytes) / 2**20
    timing.fwd_program, timing.fwdbwd_program = program_id(fwd), program_id(compiled)
    return (lambda: jax.block_until_ready(fwd(*args[:-1])),
            lambda: jax.block_until_ready(compiled(*args)))


def _torch_runners(layer: Layer, arrays):
    import torch

    x, w, b = (torch.from_numpy(np.array(a)) for a in arrays)
    cls = getattr(torch.nn, f"Conv{layer.rank}d")
    m = cls(layer.c_in, layer.c_out, layer.kernel, **layer.kwargs, dtype=x.dtype)
    with torch.no_grad():
        m.weight.copy_(w)
        m.bias.copy_(b)
    xg = x.clone().requires_grad_()

    def fwd():
        with torch.no_grad():
            return m(x)

    ct = torch.from_numpy(np.array(jax.random.normal(jax.random.key(1), m(x).shape,
                                                     layer.dtype)))

    def fwdbwd():
        m.zero_grad()
        xg.grad = None
        m(xg).backward(ct)

    return fwd, fwdbwd


def malloc_settings(environ=None) -> dict[str, str]:
    """The C allocator settings in `environ` (default ``os.environ``): ``GLIBC_TUNABLES``
    and the ``MALLOC_*`` variables, which glibc reads at start-up and which change how
    often XLA's and PyTorch's large buffers are paged in again (docs/performance-notes.md,
    "What XLA's CPU backend does with convolutions")."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in sorted(environ)
            if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES"}


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


#: The most timed runs :func:`interleaved_samples` takes of one variant to meet ``min_time``.
MAX_ROUNDS = 200
#: ``jaxconv bench``'s ``--min-time`` unless given (seconds).
DEFAULT_MIN_TIME = 1.0


def interleaved_samples(runners: Mapping[Key, Callable[[], Any]], repeats: int,
                        min_time: float = 0.0) -> dict[Key, list[float]]:
    """Timed runs (seconds) per runner, the runners taking turns in a fresh random
    order each round; each turn is one untimed call then one timed call, so that
    what ran before (another variant's memory traffic) does not land on the timed one.

    A runner takes part in a round while it has fewer than `repeats` timed runs,
    or fewer than :data:`MAX_ROUNDS` whose times add up to less than `min_time`
    seconds; so fast runners are timed more often, still in turns with each other.
    """
    for run in runners.values():
        run()
    times: dict[Key, list[float]] = {k: [] for k in runners}
    shuffle = random.Random(0).shuffle

    def wanted(v: list[float]) -> bool:
        return len(v) < repeats or (len(v) < MAX_ROUNDS and sum(v) < min_time)

    while order := [k for k, v in times.items() if wanted(v)]:
        shuffle(order)
        for k in order:
            runners[k]()
            start = time.perf_counter()
            runners[k]()
            times[k].append(time.perf_counter() - start)
    return times


def _interleaved(runners: Mapping[Key, Callable[[], Any]], repeats: int,
                 min_time: float = 0.0) -> dict[Key, float]:
    """Median ms per runner of :func:`interleaved_samples`."""
    return {k: 1e3 * statistics.median(v)
            for k, v in interleaved_samples(runners, repeats, min_time).items()}


def bench_layer(layer: Layer, impls: Sequence[str], repeats: int = 5,
                with_torch: bool = True, compiler_options: dict | None = None,
                min_time: float = 0.0, matmul: bool = False) -> dict[str, Timing]:
    """Time every variant of `layer`: ``{variant: Timing}`` (impls, auto, raw-lax, torch).

    `compiler_options` go to every JAX program's compile (e.g.
    :func:`jaxconv.eigen_conv_options`), raw-lax's included. `repeats` and
    `min_time` as in :func:`interleaved_samples`. With `matmul`, the square
    float32 matmul of :func:`matmul_gflops` takes turns with the forwards, and
    its time is the ``fwd_ms`` of an entry :data:`MATMUL` (so a layer's GFLOP/s
    can be set against the machine's matmul throughput of the same minutes)."""
    arrays = layer_arrays(layer)
    timings: dict[str, Timing] = {}
    fwd_runners, fb_runners = {}, {}
    for name, fn in jax_variants(layer, [*impls, "auto"]).items():
        timings[name] = Timing()
        fwd_runners[name], fb_runners[name] = _jax_runners(fn, arrays, timings[name],
                                                           compiler_options)
    if matmul:
        timings[MATMUL] = Timing()
        fwd_runners[MATMUL] = _matmul_runner()
    for name, ms in _interleaved(fwd_runners, repeats, min_time).items():
        timings[name].fwd_ms = ms
    for name, ms in _interleaved(fb_runners, repeats, min_time).items():
        timings[name].fwdbwd_ms = ms
    if with_torch and torch_available():
        # Timed apart from the JAX variants: PyTorch's OpenMP threads spin for a
        # while after each call, which would take a core from the next JAX run.
        fwd, fb = _torch_runners(layer, arrays)
        torch_ms = _interleaved({"fwd": fwd, "fb": fb}, repeats, min_time)
        timings["torch"] = Timing(fwd_ms=torch_ms["fwd"], fwdbwd_ms=torch_ms["fb"])
        time.sleep(0.5)  # let them settle before the next layer
    return timings


def bench_kernels(layer: Layer, impls: Sequence[str], repeats: int = 5,
                  compiler_options: dict | None = None,
                  min_time: float = 0.0) -> dict[str, dict]:
    """Time each impl's three kernels alone on `layer` (jit, float32).

    Returns ``{impl: {"forward": ms, "input_grad": ms, "weight_grad": ms}}``;
    this is what the auto rules are read from. The forward is timed on the
    mode-padded input, as the core runs it. `compiler_options`, `repeats` and
    `min_time` as in :func:`bench_layer`.
    """
    x, w, _ = layer_arrays(layer)
    spec, _ = conv_spec("bench", x, w, None, layer.stride, layer.padding, layer.dilation,
                        layer.groups, layer.mode, None)
    xp = pad_trailing(x, spec.mode_padding, spec.padding_mode)
    out_spatial = spec.output_spatial(xp.shape[2:], w.shape[2:])
    g = jnp.ones((layer.n, layer.c_out, *out_spatial), x.dtype)
    runners = {}
    for name in impls:
        impl = _registry.get_impl(name)
        s = dataclasses.replace(spec, impl=name)
        opts = compiler_options
        f = jax.jit(lambda a, b, impl=impl, s=s: impl.forward(a, b, s), compiler_options=opts)
        t = jax.jit(lambda a, b, impl=impl, s=s: impl.input_grad(a, b, s, xp.shape[2:]),
                    compiler_options=opts)
        wk = jax.jit(lambda a, b, impl=impl, s=s: impl.weight_grad(a, b, s, w.shape[2:]),
                     compiler_options=opts)
        runners[(name, "forward")] = lambda f=f: jax.block_until_ready(f(xp, w))
        runners[(name, "input_grad")] = lambda t=t: jax.block_until_ready(t(g, w))
        runners[(name, "weight_grad")] = lambda wk=wk: jax.block_until_ready(wk(xp, g))
    medians = _interleaved(runners, repeats, min_time)
    out: dict[str, dict] = {name: {} for name in impls}
    for (name, kernel), ms in medians.items():
        out[name][kernel] = ms
    return out


def auto_choice(layer: Layer) -> _auto.AutoChoice:
    return _auto.explain_auto(layer.input_shape, layer.weight_shape, **layer.kwargs)


#: :func:`bench_layer`'s entry for the matmul timed beside a layer's forwards.
MATMUL = "matmul"
#: The side of the square float32 matmul that measures this machine's throughput.
MATMUL_SIZE = 2048


def _matmul_runner(size: int = MATMUL_SIZE) -> Callable[[], Any]:
    a = jnp.ones((size, size), jnp.float32)
    f = jax.jit(jnp.matmul)
    return lambda: jax.block_until_ready(f(a, a))


def matmul_gflop(size: int = MATMUL_SIZE) -> float:
    """GFLOP of one square float32 matmul of side `size`."""
    return 2 * size**3 / 1e9


def matmul_gflops(size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """This machine's float32 matmul throughput (jit ``a @ b``, square), GFLOP/s."""
    ms = _interleaved({"mm": _matmul_runner(size)}, repeats)["mm"]
    return matmul_gflop(size) / (ms * 1e-3)


def layer_gflop(layer: Layer) -> float:
    """Forward multiply-adds x 2 of `layer`, in GFLOP."""
    padded = [n + 2 * layer.padding for n in layer.spatial]
    out = math.prod((p - layer.dilation * (layer.kernel - 1) - 1) // layer.stride + 1
                    for p in padded)
    return 2 * layer.n * out * math.prod(layer.weight_shape) / 1e9


def geomean(values: Iterable[float]) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


# --- per-example gradients ------------------------------------------------------------------

def small_cnn_params(key: jax.Array) -> dict[str, jax.Array]:
    """A small image CNN: 3x3 conv, strided 3x3 conv, depthwise 3x3, 1x1, linear."""
    k = jax.random.split(key, 5)
    return dict(w1=jax.random.normal(k[0], (16, 3, 3, 3)) * 0.2,
                w2=jax.random.normal(k[1], (32, 16, 3, 3)) * 0.1,
                w3=jax.random.normal(k[2], (32, 1, 3, 3)) * 0.3,
                w4=jax.random.normal(k[3], (64, 32, 1, 1)) * 0.2,
                fc=jax.random.normal(k[4], (64, 10)) * 0.1)


def small_cnn(params: dict, x: jax.Array, impl: Any) -> jax.Array:
    """Logits of :func:`small_cnn_params`'s network; `x` is ``(N, 3, H, W)`` or ``(3, H, W)``."""
    y = jax.nn.relu(conv(x, params["w1"], padding=1, impl=impl))
    y = jax.nn.relu(conv(y, params["w2"], stride=2, padding=1, impl=impl))
    y = jax.nn.relu(conv(y, params["w3"], padding=1, groups=32, impl=impl))
    y = jax.nn.relu(conv(y, params["w4"], impl=impl))
    return y.mean(axis=(-2, -1)) @ params["fc"]


def bench_per_example(impls: Sequence[str], batch: int = 64, size: int = 32,
                      repeats: int = 5, compiler_options: dict | None = None,
                      min_time: float = 0.0) -> dict[str, tuple[float, float]]:
    """``{impl: (batched grad ms, per-example grad ms)}`` for :func:`small_cnn`.

    Batched: ``grad`` of the summed cross-entropy over a batch of `batch` images.
    Per-example: ``vmap(grad)`` of the loss of one unbatched image, over the same
    batch (what DP-SGD and influence functions need). `compiler_options`,
    `repeats` and `min_time` as in :func:`bench_layer`.
    """
    params = small_cnn_params(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (batch, 3, size, size))
    t = jax.nn.one_hot(jnp.arange(batch) % 10, 10)

    def loss(p, x, t, impl):
        return -jnp.sum(jax.nn.log_softmax(small_cnn(p, x, impl)) * t)

    runners = {}
    for impl in impls:
        batched = jax.jit(lambda p, x, t, impl=impl: jax.grad(loss)(p, x, t, impl),
                          compiler_options=compiler_options)
        per = jax.jit(lambda p, x, t, impl=impl: jax.vmap(
            lambda x, t: jax.grad(loss)(p, x, t, impl))(x, t),
            compiler_options=compiler_options)
        runners[(impl, 0)] = lambda f=batched: jax.block_until_ready(f(params, x, t))
        runners[(impl, 1)] = lambda f=per: jax.block_until_ready(f(params, x, t))
    ms = _interleaved(runners, repeats, min_time)
    return {impl: (ms[impl, 0], ms[impl, 1]) for impl in impls}
