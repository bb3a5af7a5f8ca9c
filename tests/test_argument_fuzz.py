"""Argument fuzzing: every argument of every public function and layer, random values and kinds.

Each example draws a valid call (small shapes, PyTorch's argument forms, Python and NumPy
ints, lists and tuples), then replaces up to two of its arguments with junk: negative,
zero and huge (2**40, 2**63, 2**70) ints, floats (1.0, nan, inf), bools and NumPy bools,
strings, None, lists, wrong-length and nested tuples, arrays where ints belong, arrays of
the wrong rank, dtype (int, complex, bool, object, mismatched floats), size or layout, and
masked arrays. Every call must either

* succeed with the output PyTorch gives for the same arguments (``torch.nn.functional``,
  ``torch.nn`` modules; ``jax.lax.conv_general_dilated`` for the lax-compatible
  function), or, where jaxconv deliberately goes beyond PyTorch (``(low, high)`` padding
  pairs, ranks above 3, any number of padded dimensions in :func:`jaxconv.pad`), the
  shape PyTorch's formula gives; or
* raise a ``ValueError`` or ``TypeError`` from jaxconv's own code (not from JAX, XLA or
  NumPy under it) whose message starts with ``"jaxconv."`` and names an argument.

A call that jaxconv refuses and PyTorch accepts must be one of jaxconv's deliberate
refusals, each listed with its reason in :data:`DELIBERATE` (bools and arrays where ints
belong, sizes beyond 2**56, on which XLA aborts the process rather than raise, ...).
Every call is first run under ``jax.eval_shape`` (validation runs in Python before
anything is traced), and computed only when its arrays are small, so a huge but valid
size is checked by its shape without allocating it. Calls that would crash XLA itself
are steered around (:data:`SAFE_3D_IMPLS`) and documented there.

Runs derandomized with a fixed number of examples per test (settings below); set
``JAXCONV_FUZZ_EXAMPLES=n`` for n examples per test (randomized) to fuzz longer.
"""

from __future__ import annotations

import math
import os
import traceback
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from jax import lax

import jaxconv
from jaxconv import nn

pytestmark = [  # PyTorch's and NumPy's, on arguments they take (NumPy: dtype="a")
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel"),
    pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op"),
    pytest.mark.filterwarnings("ignore:Data type alias 'a' was deprecated"),
]

_LONG = int(os.environ.get("JAXCONV_FUZZ_EXAMPLES", 0))


def fuzz(examples: int):
    """Derandomized, `examples` examples (JAXCONV_FUZZ_EXAMPLES: that many, randomized)."""
    return settings(derandomize=not _LONG, max_examples=_LONG or examples, deadline=None,
                    database=None, suppress_health_check=list(HealthCheck))


JAXCONV_DIR = os.path.dirname(jaxconv.__file__)
SMALL = 2**14  # elements up to which a call that passed validation is computed for real
NAN, INF = float("nan"), float("inf")

# --- junk -------------------------------------------------------------------------------

JUNK_SCALARS = [
    -1, 0, -(2**40), 2**40, 2**63, -(2**63) - 1, 2**70, 1.0, 2.5, -0.0, NAN, INF, True,
    False, np.bool_(True), np.bool_(False), np.float64(2.0), np.float32(1.5), 1 + 1j,
    np.int64(-3), np.uint8(0), "", "a", "same", "valid", "zeros", "SAME", None, b"x",
    object(), {1: 2}, {1}, slice(1), np.array(2), jnp.array(2), np.array([1, 1]),
    jnp.array([1, 2]), np.array(2.5), range(2),
]
JUNK_ITEMS = [-1, 0, 1, 2, 2**40, 2**63, 1.0, NAN, True, np.bool_(True), None, "a",
              np.int64(2), np.array(1), (1, 1), (0, -1), (1, 2, 3), ()]
JUNK = st.one_of(
    st.sampled_from(JUNK_SCALARS),
    st.lists(st.sampled_from(JUNK_ITEMS), max_size=4),
    st.lists(st.sampled_from(JUNK_ITEMS), max_size=4).map(tuple),
    st.tuples(st.tuples(st.sampled_from(JUNK_ITEMS))),  # nested
)


def int_kinds(v: int):
    """The same int as Python, NumPy int64 or int32 (all must be accepted, as in PyTorch)."""
    return st.sampled_from((v, np.int64(v), np.int32(v)) if abs(v) < 2**31 else (v, np.int64(v)))


@st.composite
def int_or_tuple(draw, values: tuple[int, ...]):
    """`values` (one per axis) as PyTorch takes them: an int if all equal, or a tuple/list."""
    items = [draw(int_kinds(v)) for v in values]
    if len(set(values)) == 1 and draw(st.booleans()):
        return items[0]
    return list(items) if draw(st.booleans()) else tuple(items)


def corruptions(names):
    """Which arguments to replace with junk: none (a valid call) in about one example in
    five, else one or two."""
    count = st.sampled_from((0, 1, 1, 1, 2))
    return count.flatmap(lambda n: st.sets(st.sampled_from(names), min_size=n, max_size=n))


def array_junk(valid: np.ndarray):
    """Arrays (and non-arrays) that are wrong for the argument `valid` is right for."""
    v = np.asarray(valid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        return st.sampled_from(_array_junk(v))


def _array_junk(v: np.ndarray) -> list:
    return [
        v.astype(np.int32), v.astype(np.complex64), v.astype(bool), v.astype(np.float16),
        v.astype(np.float32) if v.dtype == np.float64 else v.astype(np.float64),
        np.array(2.0), np.zeros(3), v[None], v[..., 0] if v.ndim > 1 else v[:0],
        np.zeros(v.shape[:-1] + (0,)), np.zeros((0,) + v.shape[1:]),
        np.moveaxis(v, 0, -1), v[:1] if v.shape[0] > 1 else np.concatenate([v, v]),
        v.tolist(), 1.5, None, "a", True, np.ma.masked_array(v), v.astype(object),
        jnp.asarray(v), jnp.asarray(v, jnp.bfloat16), np.asarray(v, "datetime64[s]"),
    ]


# --- what a call must do ------------------------------------------------------------------

def _kinds(v):
    """Every value in `v`, recursively through lists, tuples, dicts and sets."""
    yield v
    if isinstance(v, (list, tuple, set, frozenset, dict)) and not isinstance(v, str):
        for item in v:
            yield from _kinds(item)


# jaxconv refuses these where PyTorch accepts them, on purpose: (reason, test on the message
# and the call's arguments other than the operands).
DELIBERATE = [
    ("sizes beyond 2**56 (XLA aborts the process on larger shapes)",
     lambda m, args: "2**56" in m),
    ("bools where ints belong (PyTorch's layers take True as 1) and non-bool `bias` flags "
     "(its layers take any truthy value)",
     lambda m, args: any(isinstance(v, (bool, np.bool_)) for a in args for v in _kinds(a))
     or "`bias` must be a bool" in m),
    ("arrays where ints belong (PyTorch takes some 0-d ones)",
     lambda m, args: any(holds_array(a) for a in args)),
    ("dicts, sets and bytes where a tuple belongs (PyTorch's layers iterate any iterable)",
     lambda m, args: any(isinstance(v, (dict, set, frozenset, bytes))
                         for a in args for v in _kinds(a))),
    ("negative padding (PyTorch's layers crop with it in a padding_mode other than zeros)",
     lambda m, args: "`padding` must be non-negative" in m),
    ("a fill value past the int64 range (PyTorch compares it as a float64: 2**63 passes)",
     lambda m, args: "can't be converted to the input's dtype int64" in m),
    ("operands of two dtypes (PyTorch's conv_transpose casts a bias silently; its conv "
     "refuses, as jaxconv does)", lambda m, args: "must equal `input` dtype" in m),
    ("a dilation below 1 (some of PyTorch's CPU conv_transpose kernels skip that check; "
     "the others refuse it)", lambda m, args: "`dilation` must be positive" in m),
    ("a 1-element tuple for a 2-d or 3-d convolution (PyTorch's functional API repeats it "
     "per axis; jaxconv asks for an int or one item per axis, as PyTorch's docs do)",
     lambda m, args: "got " in m and " of length 1." in m),
]


def deliberate(msg: str, args) -> bool:
    return any(test(msg, args) for _, test in DELIBERATE)


def _raised_in_jaxconv(err: BaseException) -> bool:
    """The innermost frame of `err` is jaxconv's own code (not an impl, JAX or NumPy)."""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return False
    path, name = frames[-1].filename, frames[-1].name
    in_impl = os.sep + "impls" + os.sep in path and name != "set_memory_budget"
    return path.startswith(JAXCONV_DIR) and not in_impl


def check_error(err: BaseException, words, fn_names=None) -> None:
    """`err` is a jaxconv error: ValueError/TypeError raised by jaxconv, ``"jaxconv."`` first
    (``"jaxconv.<fn>: "`` for one of `fn_names` if given), naming one of `words` (the
    function's arguments)."""
    msg = str(err)
    assert isinstance(err, (ValueError, TypeError)) and type(err).__module__ == "builtins", (
        f"{type(err).__name__}: {msg}")
    assert msg.startswith("jaxconv."), msg
    if fn_names is not None:
        assert any(msg.startswith(f"jaxconv.{f}: ") for f in fn_names), msg
    assert _raised_in_jaxconv(err), "".join(traceback.format_tb(err.__traceback__)[-3:]) + msg
    assert any(w in msg for w in words), f"names none of {words}: {msg}"


def attempt(call):
    """``(result, None)`` or ``(None, exception)``: any exception, checked by the caller."""
    try:
        return call(), None
    except Exception as err:  # noqa: BLE001 - judged by check_error
        return None, err


def is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def axis_ints(v, rank: int):
    """PyTorch's int-or-sequence argument as `rank` ints, or None if it is not one."""
    if is_int(v):
        return (int(v),) * rank
    if isinstance(v, (list, tuple, range)) and len(v) == rank and all(is_int(i) for i in v):
        return tuple(int(i) for i in v)
    return None


def padding_pairs(padding, rank: int, kernel, dilation):
    """PyTorch's padding (and jaxconv's (low, high) items) as pairs, or None."""
    if isinstance(padding, str) and padding == "valid":
        return ((0, 0),) * rank
    if isinstance(padding, str) and padding == "same":
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                     for k, d in zip(kernel, dilation))
    if is_int(padding):
        return ((int(padding),) * 2,) * rank
    if not isinstance(padding, (list, tuple, range)) or len(padding) != rank:
        return None
    pairs = []
    for p in padding:
        if is_int(p):
            pairs.append((int(p),) * 2)
        elif isinstance(p, (list, tuple)) and len(p) == 2 and all(is_int(i) for i in p):
            pairs.append((int(p[0]), int(p[1])))
        else:
            return None
    return tuple(pairs)


def volume(shape) -> int:
    """Elements of `shape` counting empty axes as 1: what the impls' per-axis work scales
    with, even for an empty batch."""
    return math.prod(max(int(n), 1) for n in shape)


def small_ints(v, limit: int = 64) -> bool:
    """Every int in `v` (recursively) is at most `limit` in size: safe to hand to PyTorch,
    which allocates at once (a layer's weight) and could take the machine's memory."""
    if is_int(v):
        return abs(int(v)) <= limit
    if isinstance(v, (list, tuple)):
        return all(small_ints(i, limit) for i in v)
    return True


def has_pair(padding) -> bool:
    return isinstance(padding, (list, tuple)) and any(isinstance(p, (list, tuple))
                                                      for p in padding)


def holds_array(v) -> bool:
    if isinstance(v, (np.ndarray, jax.Array)):
        return True
    return isinstance(v, (list, tuple)) and any(holds_array(i) for i in v)


def torch_array(torch, a):
    """A float32/float64 NumPy or JAX array as a torch tensor; None for anything else."""
    if isinstance(a, (np.ndarray, jax.Array)) and not isinstance(a, np.ma.MaskedArray) and (
            a.dtype in (np.float32, np.float64)):
        return torch.from_numpy(np.array(a))
    return None


def torch_call(torch, call):
    """PyTorch's result as a NumPy array, or its exception (any: only its verdict matters)."""
    try:
        with torch.no_grad():
            out = call()
        return out.numpy(), None
    except Exception as err:  # noqa: BLE001
        return None, err


def compare(got, want, dtype) -> None:
    got = np.asarray(got)
    assert got.shape == want.shape, (got.shape, want.shape)
    tol = 1e-10 if np.dtype(dtype) == np.float64 else 1e-4
    scale = 1 + np.abs(want).max(initial=0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def judge(fn_name, words, ours, ours_err, theirs_err=None, torch_ran=False,
          extension=False, args=()):
    """The verdict on one call: ours (an output or abstract output) or our error, against
    PyTorch's verdict when it ran (`args`: the call's non-operand arguments)."""
    if ours_err is not None:
        check_error(ours_err, words, [fn_name])
        if torch_ran and theirs_err is None:
            assert deliberate(str(ours_err), args), (
                f"PyTorch accepts what {fn_name} refuses: {ours_err}")
        return
    if torch_ran and theirs_err is not None:
        assert extension, f"{fn_name} accepts what PyTorch refuses: {theirs_err!r}"


# --- conv and conv_transpose -----------------------------------------------------------------

CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups",
             "padding_mode", "impl", "precision", "autodiff")
TRANSPOSE_ARGS = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups",
                  "dilation", "impl", "precision", "autodiff")
IMPLS = ("auto", *jaxconv.available_impls())
# XLA's CPU compiler aborts the process (a failed CHECK in its algebraic simplifier, nothing
# to catch) on some 3-d lhs-dilated convolutions, which impl="lax" runs for transposed
# convolutions and input gradients, e.g. (jax 0.10.2):
#   lax.conv_general_dilated(jnp.ones((1, 1, 1, 3, 1)), jnp.ones((1, 1, 2, 2, 3)), (1, 1, 1),
#                            ((1, 1), (0, 0), (1, 1)), lhs_dilation=(1, 2, 1))
# Until impl="lax" steers around it, those calls draw another impl here.
SAFE_3D_IMPLS = tuple(i for i in IMPLS if i != "lax")


def impls_for(rank: int, lhs_dilated: bool):
    return SAFE_3D_IMPLS if rank >= 3 and lhs_dilated else IMPLS


OPTION_JUNK = {
    "padding_mode": st.one_of(JUNK, st.sampled_from(["ZEROS", "constant", "reflect ", "wrap"])),
    "impl": st.one_of(JUNK, st.sampled_from(["cudnn", "AUTO", ("lax", "lax"),
                                             ["lax", "lax", "lax"], ("lax", "nope", "lax"),
                                             ("lax", "gather", "shift")])),
    "precision": st.one_of(JUNK, st.sampled_from(["ultra", ("high",), (None, "high"),
                                                  ("high", "high"), lax.Precision.HIGHEST,
                                                  "highest", (np.array([1, 2]), "high")])),
    "autodiff": st.one_of(JUNK, st.sampled_from(["JAX", "torch", ("jax",)])),
}


def valid_option(name: str, v) -> bool:
    """The jaxconv-only options (PyTorch has none to compare with): what is valid."""
    if name == "impl":
        names = ("auto", *jaxconv.available_impls())
        return (isinstance(v, str) and v in names) or (
            isinstance(v, tuple) and len(v) == 3 and all(
                isinstance(i, str) and i in jaxconv.available_impls() for i in v))
    if name == "autodiff":
        return isinstance(v, str) and v in ("custom", "custom_vjp", "jax")
    if name == "precision":
        def one(p):
            if isinstance(p, lax.Precision):
                return True
            try:
                return isinstance(p, str) and lax.Precision(p) is not None
            except ValueError:
                return False
        return v is None or one(v) or (isinstance(v, tuple) and len(v) == 2
                                       and all(one(p) for p in v))
    raise AssertionError(name)


@st.composite
def conv_calls(draw, transpose: bool, corrupt: bool = True):
    """``(fn_name, kwargs, corrupted)``: a valid call with up to two args replaced."""
    fixed = draw(st.booleans())
    rank = draw(st.sampled_from((1, 2, 3) if fixed else (1, 1, 2, 3, 4)))
    base = "conv_transpose" if transpose else "conv"
    fn_name = f"{base}{rank}d" if fixed else base
    groups = draw(st.sampled_from((1, 1, 2)))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    stride = [draw(st.integers(1, 2)) for _ in range(rank)]
    dilation = [draw(st.integers(1, 2)) for _ in range(rank)]
    dtype = draw(st.sampled_from((np.float64, np.float64, np.float32)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    batch = draw(st.sampled_from(((2,), (1,), (), (0,))))
    kw = {}
    if transpose:
        out_pad = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)]
        sizes = [draw(st.integers(1, 3)) for _ in range(rank)]
        # Pads that leave an output: 2p <= (n - 1)s + d(k - 1) + output_padding.
        pads = [draw(st.integers(0, min(1, ((n - 1) * s + d * (k - 1) + op) // 2)))
                for n, s, d, k, op in zip(sizes, stride, dilation, kernel, out_pad)]
        padding = (draw(int_or_tuple(tuple(pads))) if not draw(st.booleans())
                   else tuple((p, 0) if i == 0 else p for i, p in enumerate(pads)))
        weight = rng.standard_normal((cin, cout // groups, *kernel)).astype(dtype)
        kw.update(output_padding=draw(int_or_tuple(tuple(out_pad))))
    else:
        mode = draw(st.sampled_from(("zeros", "zeros", "reflect", "replicate", "circular")))
        form = draw(st.sampled_from(("ints", "ints", "same", "valid", "pairs")))
        if form == "same":
            stride = [1] * rank
        pads = [draw(st.integers(0, 2)) for _ in range(rank)]
        sizes = [max(d * (k - 1) + 1, p + 1) + draw(st.integers(0, 2))
                 for k, d, p in zip(kernel, dilation, pads)]
        if form == "same":
            padding, sizes = "same", [n + d * (k - 1) for n, k, d in zip(sizes, kernel, dilation)]
        elif form == "valid":
            padding = "valid"
        elif form == "pairs":
            padding = tuple((p, draw(st.integers(0, p))) for p in pads)
        else:
            padding = draw(int_or_tuple(tuple(pads)))
        weight = rng.standard_normal((cout, cin // groups, *kernel)).astype(dtype)
        kw.update(padding_mode=mode)
    x = rng.standard_normal((*batch, cin, *sizes)).astype(dtype)
    has_bias = draw(st.booleans())
    bias = rng.standard_normal(cout).astype(dtype) if has_bias else None
    kw.update(input=x, weight=weight, bias=bias, stride=draw(int_or_tuple(tuple(stride))),
              padding=padding, dilation=draw(int_or_tuple(tuple(dilation))),
              groups=draw(int_kinds(groups)),
              impl=draw(st.sampled_from(impls_for(rank, transpose))),
              precision=draw(st.sampled_from((None, None, "highest"))),
              autodiff=draw(st.sampled_from(("custom", "jax"))))
    names = TRANSPOSE_ARGS if transpose else CONV_ARGS
    corrupted = draw(corruptions(names)) if corrupt else set()
    for name in sorted(corrupted):
        if name in ("input", "weight", "bias"):
            kw[name] = draw(array_junk(kw[name] if kw[name] is not None else kw["input"][:1]))
        elif name in OPTION_JUNK:
            kw[name] = draw(OPTION_JUNK[name])
        else:
            kw[name] = draw(JUNK)
    return fn_name, kw, corrupted


def _expected_shape(kw, transpose: bool):
    """PyTorch's output-size formula on the call's arguments, or None if they aren't valid
    PyTorch (plus (low, high) pairs) forms."""
    w, x = kw["weight"], kw["input"]
    if not all(isinstance(a, (np.ndarray, jax.Array)) for a in (w, x)) or w.ndim < 3:
        return None
    rank = w.ndim - 2
    stride, dilation = axis_ints(kw["stride"], rank), axis_ints(kw["dilation"], rank)
    if stride is None or dilation is None or not is_int(kw["groups"]) or min(
            stride + dilation) <= 0:
        return None
    pairs = padding_pairs(kw["padding"], rank, w.shape[2:], dilation)
    if pairs is None or x.ndim not in (rank + 1, rank + 2):
        return None
    lead = x.shape[:1] if x.ndim == rank + 2 else ()
    spatial = x.shape[-rank:]
    if transpose:
        out_pad = axis_ints(kw["output_padding"], rank)
        if out_pad is None:
            return None
        out = [(n - 1) * s - lo - hi + d * (k - 1) + op + 1 for n, s, (lo, hi), d, k, op in
               zip(spatial, stride, pairs, dilation, w.shape[2:], out_pad)]
        return (*lead, w.shape[1] * int(kw["groups"]), *out)
    out = [(n + lo + hi - d * (k - 1) - 1) // s + 1 for n, (lo, hi), d, k, s in
           zip(spatial, pairs, dilation, w.shape[2:], stride)]
    return (*lead, w.shape[0], *out)


def _torch_conv(torch, kw, rank: int, transpose: bool):
    """PyTorch on the same arguments: ``F.conv{r}d`` / ``F.conv_transpose{r}d``, or for a
    padding_mode other than zeros the ``nn.Conv{r}d`` module (which owns padding_mode)."""
    x, w = torch_array(torch, kw["input"]), torch_array(torch, kw["weight"])
    b = None if kw["bias"] is None else torch_array(torch, kw["bias"])
    args = {k: kw[k] for k in ("stride", "padding", "dilation", "groups")}
    if transpose:
        args["output_padding"] = kw["output_padding"]
        f = getattr(torch.nn.functional, f"conv_transpose{rank}d")
        return torch_call(torch, lambda: f(x, w, b, **args))
    if isinstance(kw["padding_mode"], str) and kw["padding_mode"] == "zeros":
        f = getattr(torch.nn.functional, f"conv{rank}d")
        return torch_call(torch, lambda: f(x, w, b, **args))

    def module():
        channels = x.shape[-rank - 1]
        m = getattr(torch.nn, f"Conv{rank}d")(channels, w.shape[0], tuple(w.shape[2:]),
                                              bias=b is not None, padding_mode=kw["padding_mode"],
                                              dtype=w.dtype, **args)
        m.weight = torch.nn.Parameter(w)
        if b is not None:
            m.bias = torch.nn.Parameter(b)
        return m(x)
    return torch_call(torch, module)


def _run_conv(torch, fn_name, kw, corrupted, transpose: bool):
    fn = getattr(jaxconv, fn_name)
    names = TRANSPOSE_ARGS if transpose else CONV_ARGS
    words = (*names, "kernel", "channels")
    note(f"{fn_name}({kw!r}) corrupted={sorted(corrupted)}")
    # Validation (Python, before tracing) and the output shape, with nothing allocated.
    abstract = dict(kw, impl="lax") if valid_option("impl", kw["impl"]) else kw
    shape_of, err = attempt(lambda: jax.eval_shape(lambda: fn(**abstract)))
    for name in ("impl", "precision", "autodiff"):
        if not valid_option(name, kw[name]):
            assert err is not None, f"{fn_name} accepts {name}={kw[name]!r}"
            check_error(err, words, [fn_name])
            return
    expected = _expected_shape(kw, transpose)
    if err is None:
        assert expected is not None, f"{fn_name} accepts arguments PyTorch has no form for"
        assert tuple(shape_of.shape) == expected, (shape_of.shape, expected)
        if max(volume(expected), volume(np.shape(kw["input"]))) > SMALL:
            return  # valid and huge (or empty with huge sizes): checked by its shape
    fixed = fn_name[-2:] in ("1d", "2d", "3d")
    x, w = torch_array(torch, kw["input"]), torch_array(torch, kw["weight"])
    rank = int(fn_name[-2]) if fixed else (w.ndim - 2 if w is not None else 0)
    scalars = [kw[k] for k in ("stride", "padding", "dilation", "groups", "output_padding")
               if k in kw]
    torch_ok = (x is not None and w is not None and 1 <= rank <= 3
                and not any(map(holds_array, scalars))
                and (kw["bias"] is None or torch_array(torch, kw["bias"]) is not None)
                and (expected is None or volume(expected) <= SMALL))
    theirs, theirs_err = _torch_conv(torch, kw, rank, transpose) if torch_ok else (None, None)
    event("torch compared" if torch_ok else "no torch")
    if err is not None:
        event(f"refused: {type(err).__name__}")
        # PyTorch skips its shape and dtype checks for an empty input: no verdict then.
        empty = isinstance(kw["input"], (np.ndarray, jax.Array)) and kw["input"].size == 0
        judge(fn_name, words, None, err, theirs_err, torch_ran=torch_ok and not empty,
              args=scalars)
        return
    event("computed")
    y = fn(**kw)
    assert np.all(np.isfinite(np.asarray(y))), "non-finite output from finite operands"
    if torch_ok:
        # Beyond PyTorch: (low, high) pairs; and sizes PyTorch's CPU kernels overflow (they
        # hold some in 32 bits: conv_transpose2d says a stride of 2**40 is not positive).
        # And ranges, which PyTorch's layers take (as any iterable) but its functions don't.
        judge(fn_name, words, y, None, theirs_err, torch_ran=True,
              extension=has_pair(kw["padding"]) or not all(
                  small_ints(a, 2**31 - 1) for a in scalars)
              or any(isinstance(a, range) for a in scalars))
        if theirs_err is None:
            compare(y, theirs, kw["input"].dtype)


@fuzz(300)
@given(call=conv_calls(transpose=False))
def test_conv_arguments(torch, call):
    _run_conv(torch, *call, transpose=False)


@fuzz(250)
@given(call=conv_calls(transpose=True))
@pytest.mark.exhaustive  # slow (quick-tier budget); its neighbours cover the same code
def test_conv_transpose_arguments(torch, call):
    _run_conv(torch, *call, transpose=True)


# --- jaxconv.pad -------------------------------------------------------------------------------

PAD_ARGS = ("input", "pad", "mode", "value")


@st.composite
def pad_calls(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    dtype = draw(st.sampled_from((np.float64, np.float32, np.int32, np.int64, np.bool_,
                                  np.complex128)))
    x = (np.random.default_rng(draw(st.integers(0, 99))).standard_normal(shape) * 3).astype(dtype)
    mode = draw(st.sampled_from(("constant", "constant", "reflect", "replicate", "circular")))
    m = draw(st.integers(0, min(ndim, 3)))
    pad = []
    for n in reversed(shape[ndim - m:]):  # last dimension first
        limit = {"reflect": n - 1, "circular": n}.get(mode, 3)
        low = -(n - 1) if mode in ("constant", "replicate") else 0
        pad += [draw(int_kinds(draw(st.integers(low, limit)))) for _ in range(2)]
    pad = list(pad) if draw(st.booleans()) else tuple(pad)
    value = draw(st.sampled_from((None, 1.5, -2, np.float32(0.5)))) if mode == "constant" else None
    kw = dict(input=x, pad=pad, mode=mode, value=value)
    corrupted = draw(corruptions(PAD_ARGS))
    for name in sorted(corrupted):
        if name == "input":
            kw[name] = draw(array_junk(x))
        elif name == "mode":
            kw[name] = draw(st.one_of(JUNK, st.sampled_from(["zeros", "wrap", "Reflect"])))
        elif name == "value":
            kw[name] = draw(st.one_of(JUNK, st.sampled_from([2**40, 1e10, -1, 2**1030, 300])))
        else:
            kw[name] = draw(st.one_of(JUNK, st.sampled_from([(1,), (1, 1, 1), (1,) * 10,
                                                             (2**60, 0), (-50, 0)])))
    return kw, corrupted


@pytest.mark.exhaustive  # 300 examples; the quick tier fuzzes conv's arguments
@fuzz(300)
@given(call=pad_calls())
def test_pad_arguments(torch, call):
    kw, corrupted = call
    note(f"pad({kw!r}) corrupted={sorted(corrupted)}")
    shape_of, err = attempt(lambda: jax.eval_shape(lambda: jaxconv.pad(**kw)))
    x, pad = kw["input"], kw["pad"]
    pads = [int(p) for p in pad] if isinstance(pad, (list, tuple, range)) and all(
        is_int(p) for p in pad) else None
    expected = None
    if err is None:
        assert pads is not None and isinstance(x, (np.ndarray, jax.Array)), "accepted junk"
        lead = x.shape[:x.ndim - len(pads) // 2]
        trailing = [n + pads[2 * i] + pads[2 * i + 1] for i, n in
                    enumerate(reversed(x.shape[len(lead):]))][::-1]
        expected = (*lead, *trailing)
        assert tuple(shape_of.shape) == expected and shape_of.dtype == x.dtype
        if math.prod(expected) > SMALL:
            return
    t = (torch.from_numpy(np.array(x)) if isinstance(x, (np.ndarray, jax.Array))
         and not isinstance(x, np.ma.MaskedArray) and np.dtype(x.dtype).kind in "biufc" else None)
    torch_ok = (t is not None and pads is not None and all(abs(p) < 2**20 for p in pads)
                and not holds_array(kw["value"]))
    theirs, theirs_err = torch_call(torch, lambda: torch.nn.functional.pad(
        t, pad, mode=kw["mode"], value=kw["value"])) if torch_ok else (None, None)
    if err is not None:
        judge("pad", PAD_ARGS, None, err, theirs_err, torch_ran=torch_ok,
              args=(pad, kw["mode"], kw["value"]))
        return
    y = np.asarray(jaxconv.pad(**kw))
    # Beyond PyTorch: non-constant modes on any number of trailing dimensions; ranges.
    judge("pad", PAD_ARGS, y, None, theirs_err, torch_ran=torch_ok,
          extension=kw["mode"] != "constant" or isinstance(pad, range))
    if torch_ok and theirs_err is None:
        np.testing.assert_array_equal(y, theirs)


# --- jaxconv.conv_general_dilated (lax is the specification) -----------------------------------

CGD_ARGS = ("lhs", "rhs", "window_strides", "padding", "lhs_dilation", "rhs_dilation",
            "dimension_numbers", "feature_group_count", "batch_group_count", "precision",
            "preferred_element_type", "out_sharding", "impl", "autodiff")


# Where jaxconv.conv_general_dilated refuses what lax takes, by design (its docstring):
# dtypes jaxconv does not compute, out_sharding, precision presets beyond lax.Precision,
# sequences of the wrong length (lax zips them: lhs_dilation=[] runs as all ones); and
# what lax's shape rule lets through but its lowering refuses (strides below 1).
LAX_DIFFERENCES = ("supported dtypes are", "must equal `lhs` dtype",
                   "`preferred_element_type`", "`out_sharding`", "`precision`",
                   "(one per spatial dimension), got", "must be positive")


@st.composite
def cgd_calls(draw):
    rank = draw(st.integers(1, 2))
    fgc = draw(st.sampled_from((1, 1, 2)))
    bgc = 1 if fgc > 1 else draw(st.sampled_from((1, 1, 2)))
    n, c, o = bgc * draw(st.integers(1, 2)), fgc * draw(st.integers(1, 2)), fgc * bgc * 2
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    spatial = [draw(st.integers(1, 5)) for _ in range(rank)]
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    lhs = rng.standard_normal((n, c, *spatial))
    rhs = rng.standard_normal((o, c // fgc, *kernel))
    kw = dict(lhs=lhs, rhs=rhs,
              window_strides=tuple(draw(st.integers(1, 2)) for _ in range(rank)),
              padding=draw(st.one_of(st.sampled_from(("SAME", "VALID", "same", "SAME_LOWER")),
                                     st.tuples(*[st.tuples(st.integers(-1, 2),
                                                           st.integers(-1, 2))] * rank))),
              lhs_dilation=draw(st.sampled_from((None, (1,) * rank))),
              rhs_dilation=draw(st.sampled_from((None, (2,) * rank, [1] * rank))),
              dimension_numbers=None, feature_group_count=fgc, batch_group_count=bgc,
              precision=None, preferred_element_type=None, out_sharding=None, impl="lax",
              autodiff="custom")
    corrupted = draw(corruptions(CGD_ARGS))
    for name in sorted(corrupted):
        if name in ("lhs", "rhs"):
            kw[name] = draw(array_junk(kw[name]))
        elif name == "dimension_numbers":
            kw[name] = draw(st.one_of(JUNK, st.sampled_from([
                ("NCH", "OIH", "NCH"), ("NHC", "HIO", "NHC"), ("NCHW", "OIHW", "NCHW"),
                ("NCH", "OIH"), lax.ConvDimensionNumbers((0, 1, 2), (0, 1, 2), (0, 1, 2)),
                lax.ConvDimensionNumbers((0, 1, 2), (1, 1, 2), (0, 1, 2))])))
        elif name == "preferred_element_type":
            kw[name] = draw(st.one_of(JUNK, st.sampled_from([np.float64, jnp.float32, "float64",
                                                             np.int32, (None, None)])))
        elif name in OPTION_JUNK:
            kw[name] = draw(OPTION_JUNK[name])
        else:
            kw[name] = draw(st.one_of(JUNK, st.sampled_from([((-9, 0),) * rank, (2**57,) * rank,
                                                             ((1, 2**57),) * rank])))
    return kw, corrupted


@pytest.mark.exhaustive  # 200 examples; test_lax_compat checks its arguments' errors
@fuzz(200)
@given(call=cgd_calls())
def test_conv_general_dilated_arguments(call):
    kw, corrupted = call
    note(f"conv_general_dilated({kw!r}) corrupted={sorted(corrupted)}")
    fn = jaxconv.conv_general_dilated
    abstract = dict(kw, impl="lax") if valid_option("impl", kw["impl"]) else kw
    shape_of, err = attempt(lambda: jax.eval_shape(lambda: fn(**abstract)))
    lax_kw = {k: v for k, v in kw.items() if k not in ("impl", "autodiff")}
    if err is not None:
        check_error(err, CGD_ARGS, ["conv_general_dilated"])
        # What lax accepts (its shape rule, run abstractly: nothing is compiled), jaxconv
        # refuses only on purpose: see the function's docstring ("Differences from lax").
        _, lax_err = attempt(lambda: jax.eval_shape(lambda: lax.conv_general_dilated(**lax_kw)))
        if lax_err is None:
            msg = str(err)
            assert ({"impl", "autodiff"} & corrupted or any(w in msg for w in LAX_DIFFERENCES)
                    or deliberate(msg, [kw[k] for k in CGD_ARGS[2:]])), msg
        return
    for name in ("impl", "autodiff"):
        assert valid_option(name, kw[name]), f"accepts {name}={kw[name]!r}"
    # lax decides the rest: it must accept the same call, with the same result.
    want = jax.eval_shape(lambda: lax.conv_general_dilated(**lax_kw))
    assert (shape_of.shape, shape_of.dtype) == (want.shape, want.dtype)
    if volume(want.shape) <= SMALL:
        ours = np.asarray(fn(**kw))
        # XLA fails to lower some degenerate shapes lax's shape rule accepts (a zero-size
        # kernel with 'SAME'); jaxconv gives lax's zeros for those: no value to compare.
        theirs, lax_err = attempt(lambda: np.asarray(lax.conv_general_dilated(**lax_kw)))
        if lax_err is None:
            np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
        else:
            assert 0 in np.shape(kw["lhs"]) + np.shape(kw["rhs"]), lax_err
            np.testing.assert_array_equal(ours, 0)


# --- explain_auto, set_memory_budget ----------------------------------------------------------

EXPLAIN_ARGS = ("input_shape", "weight_shape", "stride", "padding", "dilation", "groups",
                "padding_mode", "dtype", "backend", "transpose", "output_padding", "avx512")


@st.composite
def explain_calls(draw):
    transpose = draw(st.booleans())
    call = draw(conv_calls(transpose=transpose, corrupt=False))[1]
    kw = {k: call[k] for k in ("stride", "padding", "dilation", "groups")}
    kw.update(input_shape=call["input"].shape, weight_shape=call["weight"].shape,
              dtype=draw(st.sampled_from(("float32", np.float64, jnp.bfloat16, None))),
              backend=draw(st.sampled_from((None, "cpu", "gpu"))), transpose=transpose,
              avx512=draw(st.sampled_from((None, True, False, np.bool_(False)))))
    if transpose:
        kw["output_padding"] = call["output_padding"]
    else:
        kw["padding_mode"] = call["padding_mode"]
    if draw(st.booleans()):  # a list, as well as the tuple .shape gives
        kw["input_shape"] = [draw(int_kinds(n)) for n in kw["input_shape"]]
    corrupted = draw(corruptions(EXPLAIN_ARGS))
    for name in sorted(corrupted):
        kw[name] = draw(st.one_of(JUNK, st.sampled_from([(2, 3), (2, 4, 2**57), (-1, 4, 4),
                                                         (1,) * 70, "int32", "float64"])))
    return kw, corrupted


@fuzz(300)
@given(call=explain_calls())
def test_explain_auto_arguments(call):
    kw, corrupted = call
    note(f"explain_auto({kw!r}) corrupted={sorted(corrupted)}")
    choice, err = attempt(lambda: jaxconv.explain_auto(**kw))
    if err is not None:
        check_error(err, (*EXPLAIN_ARGS, "input", "weight", "kernel", "channels"),
                    ["explain_auto"])
    else:
        assert set(choice.impls) <= set(jaxconv.available_impls()), choice
    # It validates exactly as the call would: the call on arrays of those shapes agrees.
    shapes = [kw["input_shape"], kw["weight_shape"]]
    if (any(name in corrupted for name in ("input_shape", "weight_shape", "dtype", "backend",
                                           "transpose", "avx512"))
            or ("padding_mode" in corrupted and kw["transpose"])
            or ("output_padding" in corrupted and not kw["transpose"])
            or not all(isinstance(s, (tuple, list)) for s in shapes)):
        return
    dtype = np.float32 if kw["dtype"] is None else jnp.dtype(kw["dtype"])
    x, w = (np.zeros(tuple(int(n) for n in s), dtype) for s in shapes)
    args = {k: kw[k] for k in ("stride", "padding", "dilation", "groups")}
    if kw["transpose"]:
        def call():
            return jaxconv.conv_transpose(x, w, output_padding=kw["output_padding"],
                                          impl="lax", **args)
    else:
        def call():
            return jaxconv.conv(x, w, padding_mode=kw["padding_mode"], impl="lax", **args)
    _, conv_err = attempt(lambda: jax.eval_shape(call))
    assert (err is None) == (conv_err is None), (err, conv_err)
    if err is not None:  # the same message, but for the function's name
        assert str(err).split(": ", 1)[1] == str(conv_err).split(": ", 1)[1]


@fuzz(100)
@given(nbytes=st.one_of(JUNK, st.integers(1, 2**62), st.integers(1, 2**20).map(np.int64)))
def test_set_memory_budget_arguments(nbytes):
    before = jaxconv.get_memory_budget()
    try:
        _, err = attempt(lambda: jaxconv.set_memory_budget(nbytes))
        if err is not None:
            check_error(err, ("nbytes",), ["set_memory_budget"])
            assert jaxconv.get_memory_budget() == before
        else:
            assert is_int(nbytes) and 0 < nbytes < 2**63, nbytes
            assert jaxconv.get_memory_budget() == nbytes
    finally:
        jaxconv.set_memory_budget(before)


# --- jaxconv.testing.assert_impls_agree ---------------------------------------------------------

AGREE_ARGS = ("input", "weight", "bias", "impls", "rtol", "atol", "stride", "padding",
              "groups", "padding_mode", "impl")


@st.composite
def agree_calls(draw):
    fn_name, call, _ = draw(conv_calls(transpose=False, corrupt=False))
    kw = {k: call[k] for k in ("input", "weight", "bias", "stride", "padding", "groups",
                               "padding_mode")}
    pairs = (("lax", "gather"), ["shift", "lax"]) if call["weight"].ndim < 5 else (
        ("gather", "shift"), ["shift", "fold"])  # input gradients: see SAFE_3D_IMPLS
    kw.update(impls=draw(st.sampled_from(pairs)),
              rtol=draw(st.sampled_from((None, 1e-6))), atol=None)
    corrupted = draw(corruptions(AGREE_ARGS))
    for name in sorted(corrupted):
        if name in ("input", "weight", "bias"):
            kw[name] = draw(array_junk(kw[name] if kw[name] is not None else kw["input"][:1]))
        elif name == "impls":
            kw[name] = draw(st.one_of(JUNK, st.sampled_from(
                [("lax",), ("lax", "nope"), "lax", ("lax", 1), {"lax", "gather"}])))
        else:  # impl is no argument of assert_impls_agree: it must say to use impls
            kw[name] = draw(JUNK)
    return kw, corrupted


@fuzz(15)
@given(call=agree_calls())
def test_assert_impls_agree_arguments(call):
    kw, corrupted = call
    note(f"assert_impls_agree({kw!r}) corrupted={sorted(corrupted)}")
    # It computes every impl's output and gradients: only small convolutions (a valid call
    # with a huge padding or stride is checked by test_conv_arguments, by its shape).
    conv_kw = {k: kw[k] for k in ("input", "weight", "bias", "stride", "padding", "groups",
                                  "padding_mode")}
    out, _ = attempt(lambda: jax.eval_shape(lambda: jaxconv.conv(**conv_kw, impl="lax")))
    if out is not None and volume(out.shape) > SMALL:
        return
    report, err = attempt(lambda: jaxconv.testing.assert_impls_agree(**kw))
    if isinstance(err, AssertionError):  # only a tolerance tighter than the defaults
        assert kw["rtol"] is not None or kw["atol"] is not None, err
        assert str(err).startswith("jaxconv.testing.assert_impls_agree: impls disagree"), err
        return
    if err is not None:
        check_error(err, (*AGREE_ARGS, "kernel", "channels", "keyword"),
                    ["testing.assert_impls_agree"])
        return
    assert not {"impl"} & corrupted and set(report) == set(kw["impls"][1:]), report


# --- layers: constructors, calls, output_size ----------------------------------------------

LAYER_ARGS = ("num_spatial_dims", "in_channels", "out_channels", "kernel_size", "stride",
              "padding", "output_padding", "dilation", "groups", "bias", "padding_mode", "impl",
              "autodiff", "dtype")


@st.composite
def layer_calls(draw):
    transpose = draw(st.booleans())
    fixed = draw(st.booleans())
    rank = draw(st.sampled_from((1, 2, 3) if fixed else (1, 2, 3, 4)))
    groups = draw(st.sampled_from((1, 2)))
    kw = dict(in_channels=draw(int_kinds(groups * draw(st.integers(1, 2)))),
              out_channels=draw(int_kinds(groups * draw(st.integers(1, 2)))),
              kernel_size=draw(int_or_tuple(tuple(draw(st.integers(1, 3))
                                                  for _ in range(rank)))),
              stride=draw(int_or_tuple(tuple(draw(st.integers(1, 2)) for _ in range(rank)))),
              dilation=draw(int_or_tuple(tuple(draw(st.integers(1, 2)) for _ in range(rank)))),
              groups=draw(int_kinds(groups)), bias=draw(st.sampled_from((True, False))),
              impl=draw(st.sampled_from(impls_for(rank, transpose))),
              autodiff=draw(st.sampled_from(("custom", "jax"))),
              dtype=draw(st.sampled_from(("float64", np.float64, None))))
    if transpose:
        kw["padding"] = draw(int_or_tuple(tuple(draw(st.integers(0, 1)) for _ in range(rank))))
        kw["output_padding"] = 0
    else:
        kw["padding"] = draw(st.sampled_from(("same", "valid", 0, 1))) if all(
            s == 1 for s in np.broadcast_to(kw["stride"], rank)) else draw(st.sampled_from(
                (0, 1, "valid")))
        kw["padding_mode"] = draw(st.sampled_from(("zeros", "reflect", "replicate",
                                                   "circular")))
    if not fixed:
        kw["num_spatial_dims"] = rank
    names = [n for n in LAYER_ARGS if n in kw]
    corrupted = draw(corruptions(names))
    for name in sorted(corrupted):
        kw[name] = draw(st.one_of(JUNK, st.sampled_from(
            ["float16", "int32", jnp.float32, np.float64(1.0), 63, 2**57, (2**29,) * rank])))
    cls_name = ("ConvTranspose" if transpose else "Conv") + (f"{rank}d" if fixed else "")
    return cls_name, rank, kw, corrupted, draw(st.integers(0, 99))


def _torch_layer(torch, cls_name, rank, kw):
    """The torch.nn module with the same constructor arguments (float64), or its error."""
    args = {k: v for k, v in kw.items() if k not in ("num_spatial_dims", "impl", "autodiff",
                                                       "dtype")}
    name = cls_name if cls_name[-1] == "d" else f"{cls_name}{rank}d"
    try:
        return getattr(torch.nn, name)(**args, dtype=torch.float64), None
    except Exception as err:  # noqa: BLE001 - only its verdict matters
        return None, err


@fuzz(120)
@given(call=layer_calls())
@pytest.mark.exhaustive  # slow (quick-tier budget); its neighbours cover the same code
def test_layer_constructor_and_call_arguments(torch, call):
    cls_name, rank, kw, corrupted, seed = call
    note(f"nn.{cls_name}(**{kw!r}) corrupted={sorted(corrupted)}")
    layer, err = attempt(lambda: getattr(nn, cls_name)(**kw))
    event("built" if err is None else "refused")
    jaxconv_only = {"num_spatial_dims", "impl", "autodiff", "dtype"}
    torch_ok = rank <= 3 and not corrupted & jaxconv_only and all(
        small_ints(v) and not holds_array(v) for k, v in kw.items() if k not in jaxconv_only)
    module, theirs_err = _torch_layer(torch, cls_name, rank, kw) if torch_ok else (None, None)
    if err is not None:
        check_error(err, (*LAYER_ARGS, "kernel", "weight"), [f"nn.{cls_name}"])
        if torch_ok and theirs_err is None and not deliberate(str(err), kw.values()):
            # PyTorch builds it and checks it only when run (sizes < 1, negative pads, floats,
            # tuples of the wrong length): its forward must refuse it.
            reach = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size)
                     if is_int(d) and is_int(k)]
            size = 3 + max(reach, default=6)
            if module.in_channels * size**rank <= SMALL:
                _, theirs_err = torch_call(torch, lambda: module(torch.zeros(
                    (1, module.in_channels, *(size,) * rank), dtype=torch.float64)))
                assert theirs_err is not None, (
                    f"PyTorch builds and runs what jaxconv refuses: {err}")
        return
    for name in ("impl", "autodiff"):
        assert valid_option(name, kw[name]), f"accepts {name}={kw[name]!r}"
    if torch_ok:
        assert theirs_err is None or has_pair(kw["padding"]), (
            f"nn.{cls_name} accepts what PyTorch refuses: {theirs_err!r}")
    # Apply it to a valid input (small layers only: init allocates the weight).
    ks, ds = np.broadcast_to(layer.kernel_size, rank), np.broadcast_to(layer.dilation, rank)
    size = int(max(ds * (ks - 1))) + 3
    if math.prod(layer.weight_shape) > SMALL or layer.in_channels * size**rank > SMALL:
        return
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((2, layer.in_channels, *(size,) * rank)), layer.dtype)
    params = layer.init(jax.random.key(seed))
    words = ("params", "x", "input", "weight", "bias", "output_size", "output size", "kernel",
             "stride", "padding", "dilation")
    y, err = attempt(lambda: jax.eval_shape(lambda: layer(params, x)))
    event("applied" if err is None else "refused when applied")
    called = [f"nn.{cls_name}", "conv_transpose" if layer.transposed else "conv"]
    if err is not None:  # a refusal PyTorch's forward makes too (e.g. an empty output)
        check_error(err, words, called)
        if module is not None:
            _, theirs_err = torch_call(torch, lambda: module(torch.from_numpy(np.array(x))))
            assert theirs_err is not None, f"PyTorch runs what nn.{cls_name} refuses: {err}"
        return
    if math.prod(y.shape) > SMALL:
        return
    y = layer(params, x)
    if module is not None and layer.dtype == "float64":
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.array(params["weight"])))
            if layer.bias:
                module.bias.copy_(torch.from_numpy(np.array(params["bias"])))
        theirs, theirs_err = torch_call(torch, lambda: module(torch.from_numpy(np.array(x))))
        assert theirs_err is None or has_pair(kw["padding"]), theirs_err
        if theirs_err is None:
            compare(y, theirs, np.float64)
    # Then with a junk x, params or output_size.
    junk_x, junk_params, call_kw = x, params, {}
    which = rng.integers(3 if layer.transposed else 2)
    if which == 0:
        cases = _array_junk(np.asarray(x))
        junk_x = cases[rng.integers(len(cases))]
    elif which == 1:
        cases = [dict(params, weight=params["weight"].astype(np.int32)), dict(params, extra=1),
                 [params], {"weight": [[1.0]]}, dict(params, weight=params["weight"][..., :1]),
                 {}, dict(params, weight=np.ma.masked_array(params["weight"]))]
        junk_params = cases[rng.integers(len(cases))]
    else:
        cases = [None, (size,) * rank, size, (2, 1, *(size,) * rank), (size,) * (rank + 1),
                 (1.0,) * rank, (True,) * rank, (-1,) * rank, (2**70,) * rank, "5",
                 np.array([size] * rank), [np.int64(size)] * rank]
        call_kw = {"output_size": cases[rng.integers(len(cases))]}
    note(f"call with x={junk_x!r}, params={junk_params!r}, {call_kw}")
    out, err = attempt(lambda: layer(junk_params, junk_x, **call_kw))
    if err is not None:
        check_error(err, words, called)
    elif module is not None and layer.dtype == "float64" and junk_params is params:
        theirs, theirs_err = torch_call(torch, lambda: module(
            torch.from_numpy(np.array(junk_x)), **call_kw))
        if is_int(call_kw.get("output_size")):  # beyond PyTorch (a list only): an int in 1-d
            return
        assert theirs_err is None, f"nn.{cls_name} call accepts what PyTorch refuses"
        compare(out, theirs, np.float64)


# --- found here, outside the files this test's fixes could touch -------------------------------

def test_gather_indices_past_int32():
    """Window indices past int32 (they were int32 and wrapped: col2im's pad config, and so
    the output shape, came out wrong)."""
    x, w = np.zeros((0, 1, 2)), np.ones((1, 1, 1))  # an empty batch: nothing is allocated
    out = jax.eval_shape(lambda: jaxconv.conv_transpose1d(x, w, stride=2**31, impl="gather"))
    assert out.shape == (0, 1, 2**31 + 1)
    # im2col's sliced path on such axes: tests/test_extreme_shapes.py, at small sizes.
