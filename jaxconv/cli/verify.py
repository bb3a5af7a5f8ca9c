"""``jaxconv verify``: every impl against every other and PyTorch, forward and gradients.

    python -m jaxconv verify                             # 16 configs x float32, float64
    python -m jaxconv verify --n 200 --kind both --seed 1
    python -m jaxconv verify --impls lax,shift --dtype float16 --dtype bfloat16
    python -m jaxconv verify --dtype complex64,complex128 --dtype int64
    python -m jaxconv verify --no-torch --json verify.json
    python -m jaxconv verify --json - > verify.json      # '-': standard output (the table
                                                         # goes to standard error then)

Each of the sampled configurations is checked in each dtype: 16 configs x 2 dtypes =
32 checks; each check compares every pair (every impl with PyTorch and with each other).

Exit status: 0 when everything agrees, 1 when anything disagrees (the failing
configurations are listed), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

import jax

from jaxconv import verify as V
from jaxconv._registry import available_impls
from jaxconv.cli import _util
from jaxconv.cli._util import progress_bar, table
from jaxconv.testing import TOLERANCES

KIND_CHOICES = {"conv": ("conv",), "transpose": ("transpose",), "both": V.KINDS}


def add_parser(commands) -> None:
    p = commands.add_parser("verify", help="check every impl against the others and PyTorch",
                            description=_util.description(__doc__),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impls", type=_impls, default=None, metavar="A,B,...",
                   help="comma-separated impls (default: every registered impl and auto)")
    p.add_argument("--dtype", type=_dtypes, action="append", default=None, metavar="DTYPE",
                   help=f"repeatable or comma-separated, from {', '.join(V.VERIFY_DTYPES)} "
                        "(default: float32,float64; complex: PyTorch's gradients, "
                        "conj(vjp(conj(ct))); int64: outputs only, exactly)")
    p.add_argument("--n", type=_positive, default=16,
                   help="number of sampled configurations (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="sampling and data seed (default: 0)")
    p.add_argument("--kind", choices=list(KIND_CHOICES), default="both",
                   help="conv, transposed conv, or both (default)")
    p.add_argument("--no-torch", action="store_true",
                   help="compare the impls with each other only")
    p.add_argument("--json", metavar="PATH",
                   help="write configs, per-comparison errors, summary and pass/fail here "
                        "('-': standard output)")
    p.set_defaults(run=run)


def _impls(text: str) -> tuple[str, ...]:
    choices = (*available_impls(), "auto")
    names = tuple(t.strip() for t in text.split(","))
    bad = [n for n in names if n not in choices]
    if bad or len(set(names)) != len(names):
        what = f"unknown impl {bad[0]!r}" if bad else "a repeated impl"
        raise argparse.ArgumentTypeError(
            f"{what} in {text!r}; choose distinct names from {', '.join(choices)}.")
    return names


def _dtypes(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(","))
    bad = [n for n in names if n not in V.VERIFY_DTYPES]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown dtype {bad[0]!r} in {text!r}; choose from "
            f"{', '.join(V.VERIFY_DTYPES)}.")
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}.")
    return value


def _sci(v: float) -> str:
    return format(v, ".2e")


def _counts(configs: int, dtypes: int) -> str:
    """What the header and the progress bar count: (config, dtype) checks."""
    return f"{configs} configs x {dtypes} dtypes = {configs * dtypes} checks"


def _progress(items: list, desc: str, dtypes: int):
    """A progress bar over `items`, the (config, dtype) checks, that says so."""
    return progress_bar(items, f"{desc}: {_counts(len(items) // dtypes, dtypes)}",
                        unit="check")


def run(args) -> int:
    dtypes = tuple(dict.fromkeys(d for group in args.dtype or [("float32", "float64")]
                                 for d in group))
    out = _util.human_stream(json=args.json)
    if args.impls is not None and len(args.impls) < 2 and args.no_torch:
        print(f"jaxconv verify: --no-torch needs at least two impls to compare, got "
              f"--impls={','.join(args.impls)}.", file=sys.stderr)
        return 2
    try:
        report = V.run_verify(impls=args.impls, dtypes=dtypes, n=args.n, seed=args.seed,
                              kinds=KIND_CHOICES[args.kind], torch=not args.no_torch,
                              progress=lambda items, desc: _progress(items, desc,
                                                                     len(dtypes)))
    except ValueError as err:  # e.g. one impl and PyTorch not installed
        print(f"jaxconv verify: {err}", file=sys.stderr)
        return 2
    kinds = [c.kind for c in report.configs]
    backend = jax.devices()[0]
    against = (f"PyTorch {report.torch_version} and each other" if report.torch_version
               else f"each other (reference {report.reference})")
    checks = len(report.configs) * len(report.dtypes)
    per_check = len(report.comparisons) // max(checks, 1)
    print(f"jax {jax.__version__} on {backend.platform}: {len(report.configs)} configs "
          f"({kinds.count('conv')} conv, {kinds.count('transpose')} conv_transpose; seed "
          f"{report.seed}) x {len(report.dtypes)} dtypes ({', '.join(report.dtypes)}) = "
          f"{checks} checks; in each, impls {', '.join(report.impls)} against {against}: "
          f"{per_check} comparisons a check, {len(report.comparisons)} in all; "
          "output, d_input, d_weight, d_bias.", file=out)
    print("pass: |a - b| <= atol * (1 + max|b|) + rtol * |b| (b the second of the pair); "
          + "; ".join(f"{d} rtol={TOLERANCES[d][0]:g} atol={TOLERANCES[d][1]:g}"
                      for d in report.dtypes)
          + ". rel err = max|a - b| / max|b|.", file=out)
    for note in report.notes:
        print(note, file=out)
    rows = [[r.pair, r.dtype, str(r.configs), _sci(r.max_abs), _sci(r.max_rel),
             str(r.failures)] for r in report.summary()]
    text, _ = table(["comparison", "dtype", "configs", "max abs err", "max rel err",
                      "failures"], rows)
    print(text, file=out)
    _util.write_text(args.json, json.dumps(report.to_dict(), indent=1) + "\n")
    if report.passed:
        print(f"OK: all {len(report.comparisons)} comparisons agree.", file=out)
        return 0
    print(f"FAILED: {len(report.failures)} of {len(report.comparisons)} comparisons disagree:",
          file=out)
    for c in report.failures:
        config = report.configs[c.config]
        if c.error is not None:
            detail = c.error
        else:
            detail = ", ".join(f"{q} max abs {_sci(e.max_abs)} ({e.ratio:.3g}x allowed)"
                               for q, e in c.errors.items() if not e.passed)
        print(f"  config #{c.config} {c.dtype} {c.impl} vs {c.reference}: {detail}\n"
              f"    {config.describe()}", file=out)
    return 1
