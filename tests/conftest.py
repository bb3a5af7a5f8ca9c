"""Shared test setup: float64 on, PyTorch as the oracle (required under CI), and the
two test tiers.

Tiers. ``pytest`` runs the quick tier (pyproject.toml's ``-m "not exhaustive"``);
``pytest -m exhaustive`` runs the rest; ``pytest -m "exhaustive or not exhaustive"``
runs both (CI does, as two runs). What is exhaustive:

* a test marked ``@pytest.mark.exhaustive`` (long fuzz, whole-suite sweeps);
* of a parametrized test, every parametrization that :func:`covering_sample` does not
  keep. The sample keeps, greedily and in collection order, the fewest
  parametrizations that between them show every value of every parameter once (every
  impl, dtype, padding mode, ...; a dataclass parameter such as a parity-grid case
  counts field by field: every rank, stride, padding form, groups, mode, bias), so
  the quick tier still touches every value of every axis a grid varies, not every
  combination. ``@pytest.mark.every_parametrization`` keeps them all (error texts).
"""

import dataclasses
import importlib.util
import os

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)

# Hypothesis profiles: "ci" (default) is reproducible and sized for CI (tests/test_fuzz.py in
# about a minute on 2 cores); "long" fuzzes (JAXCONV_HYPOTHESIS_PROFILE=long or pytest
# --hypothesis-profile=long; JAXCONV_HYPOTHESIS_EXAMPLES=n: n examples per test instead).
# Tests that set max_examples themselves keep their count.
settings.register_profile("ci", derandomize=True, max_examples=6, deadline=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", settings.get_profile("ci"), derandomize=False,
                          max_examples=int(os.environ.get("JAXCONV_HYPOTHESIS_EXAMPLES", 500)))
settings.load_profile(os.environ.get("JAXCONV_HYPOTHESIS_PROFILE", "ci"))

TORCH_REQUIRED = os.environ.get("CI", "").lower() in ("1", "true") or bool(
    os.environ.get("JAXCONV_REQUIRE_TORCH")
)


def pytest_configure(config):
    if TORCH_REQUIRED and importlib.util.find_spec("torch") is None:
        raise pytest.UsageError(
            "PyTorch, the test oracle, is not installed, and CI / JAXCONV_REQUIRE_TORCH "
            "forbids skipping its tests: pip install torch==2.13.0 (CPU build)."
        )


@pytest.fixture(scope="session")
def torch():
    """The PyTorch module; skips outside CI when it is not installed."""
    return pytest.importorskip("torch")


# --- the tiers ---------------------------------------------------------------------------------

def _units(item) -> set:
    """What one parametrization shows: (parameter, value) pairs; a dataclass value by its
    fields and a tuple by its entries; other values that are not plain scalars (a dtype,
    a function) by identity: every parametrization of a parameter list shares its value
    objects, so equal entries are the same object (the same in every xdist worker)."""
    spec = item.callspec
    units = set()
    for name, value in spec.params.items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            units.update((name, f.name, repr(getattr(value, f.name)))
                         for f in dataclasses.fields(value))
        elif isinstance(value, tuple):
            units.update((name, k, _scalar_or_identity(v)) for k, v in enumerate(value))
        elif _is_scalar(value):
            units.add((name, repr(value)))
        else:
            units.add((name, _scalar_or_identity(value)))
    return units


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, tuple)) and (
        not isinstance(value, tuple) or all(_is_scalar(v) for v in value))


def _scalar_or_identity(value):
    return repr(value) if _is_scalar(value) else ("id", id(value))


def covering_sample(items: list) -> list:
    """The parametrizations the quick tier keeps (module docstring): greedy set cover of
    every unit of every item; among equally good items, the one whose values have been
    kept least often (so that, say, each impl meets several cases), then collection
    order."""
    left = [(_units(item), i) for i, item in enumerate(items)]
    uncovered = set().union(*(u for u, _ in left))
    kept: dict = {}
    keep = []
    while uncovered:
        units, i = max(left, key=lambda e: (len(e[0] & uncovered),
                                            -sum(kept.get(u, 0) for u in e[0]), -e[1]))
        keep.append(items[i])
        uncovered -= units
        for u in units:
            kept[u] = kept.get(u, 0) + 1
    return keep


def pytest_collection_modifyitems(config, items):
    groups: dict = {}
    for item in items:
        if (hasattr(item, "callspec") and not item.get_closest_marker("every_parametrization")
                and not item.get_closest_marker("exhaustive")):  # marked: already decided
            groups.setdefault((item.path, item.originalname, item.cls), []).append(item)
    exhaustive = pytest.mark.exhaustive
    for group in groups.values():
        if len(group) > 1:
            kept = {id(item) for item in covering_sample(group)}
            for item in group:
                if id(item) not in kept:
                    item.add_marker(exhaustive)
