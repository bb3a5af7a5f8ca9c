"""The quick tier's sample (tests/conftest.py): every value of every parameter kept,
dataclass and tuple parameters field by field, and what pytest deselects."""

import dataclasses
import itertools
import subprocess
import sys
import types

import conftest
import numpy as np

import jaxconv

ROOT = conftest.__file__.rsplit("/tests/", 1)[0]


def _item(**params):
    return types.SimpleNamespace(callspec=types.SimpleNamespace(params=params))


@dataclasses.dataclass(frozen=True)
class Case:
    rank: int
    mode: str


def _covered(items):
    return set().union(*(conftest._units(i) for i in items))


def test_a_full_grid_keeps_each_value_once_in_the_fewest_items():
    grid = [_item(impl=i, dtype=d, mode=m) for i, d, m in itertools.product(
        ["lax", "gather", "shift", "fold", "auto"], ["float32", "float64"],
        ["zeros", "reflect", "circular"])]
    kept = conftest.covering_sample(grid)
    assert _covered(kept) == _covered(grid)
    assert len(kept) == 5  # the largest parameter's number of values


def test_dataclass_and_tuple_parameters_count_field_by_field():
    cases = [Case(r, m) for r in (1, 2, 3) for m in ("zeros", "reflect")]
    grid = [_item(case=c, geo=(r, s)) for c in cases for r, s in [(1, 2), (3, 2)]]
    kept = conftest.covering_sample(grid)
    assert _covered(kept) == _covered(grid)
    assert {c.callspec.params["case"].rank for c in kept} == {1, 2, 3}
    assert {c.callspec.params["case"].mode for c in kept} == {"zeros", "reflect"}
    assert len(kept) == 3


def test_values_that_are_not_scalars_are_kept_each():
    grid = [_item(kw={"a": i}) for i in range(4)]
    assert len(conftest.covering_sample(grid)) == 4


def test_shared_objects_count_as_one_value_each():
    """A dtype or a function in a parameter list is the same object in every
    parametrization that uses it: 2 dtypes x 3 impls need 3 items, not 6."""
    fns = [len, sum]
    grid = [_item(dtype=d, impl=i, fn=f) for d in (np.float32, np.float64)
            for i in ("lax", "gather", "shift") for f in fns]
    kept = conftest.covering_sample(grid)
    assert _covered(kept) == _covered(grid)
    assert len(kept) == 3
    assert {k.callspec.params["dtype"] for k in kept} == {np.float32, np.float64}


def test_the_tiers_split_a_grid_of_this_suite():
    """test_parity's torch grid: the quick tier runs every impl and rank of it, the
    exhaustive tier the rest, and together they are the whole grid."""
    def collect(*marker):
        run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                              "-p", "no:cacheprovider", *marker,
                              "tests/test_parity.py::test_float64_matches_torch"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
        return {line for line in run.stdout.splitlines() if "::" in line}

    quick, rest = collect(), collect("-m", "exhaustive")
    both = collect("-m", "exhaustive or not exhaustive")
    assert quick and rest and not quick & rest and quick | rest == both
    for impl in jaxconv.available_impls():  # several cases each
        assert sum(f"-{impl}]" in t for t in quick) >= 3, (impl, quick)
    for rank in ("1d", "2d", "3d"):
        assert any(f"[{rank}-" in t for t in quick), rank
    assert len(quick) < len(both) / 3
