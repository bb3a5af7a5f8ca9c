"""The public API is typed: every public function and method of ``jaxconv``,
``jaxconv.nn`` and ``jaxconv.testing`` annotates each parameter and its return, and
the package ships ``py.typed`` (PEP 561). CI runs mypy on jaxconv/ (pyproject.toml)."""

import inspect
import pathlib

import pytest

import jaxconv
import jaxconv.nn
import jaxconv.testing

ROOT = pathlib.Path(jaxconv.__file__).parent


def _public_callables():
    modules = [(jaxconv, jaxconv.__all__), (jaxconv.nn, jaxconv.nn.__all__),
               (jaxconv.testing, [n for n, v in vars(jaxconv.testing).items()
                                  if not n.startswith("_") and callable(v)
                                  and getattr(v, "__module__", "") == "jaxconv.testing"])]
    for module, names in modules:
        for name in names:
            obj = getattr(module, name)
            if inspect.isclass(obj):  # its methods, inherited from jaxconv's bases too
                seen = set()
                for cls in obj.__mro__:
                    if not cls.__module__.startswith("jaxconv"):
                        continue
                    for attr, f in vars(cls).items():
                        if (inspect.isfunction(f) and attr not in seen
                                and (not attr.startswith("_") or attr in ("__init__",
                                                                          "__call__"))):
                            seen.add(attr)
                            yield f"{module.__name__}.{name}.{attr}", f
            elif callable(obj):
                yield f"{module.__name__}.{name}", obj


PUBLIC = dict(_public_callables())


def test_the_public_surface_is_found():
    assert len(PUBLIC) > 60
    assert {"jaxconv.conv2d", "jaxconv.nn.Conv.__call__", "jaxconv.unfold",
            "jaxconv.testing.impl_outputs"} <= set(PUBLIC)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_callable_is_annotated(name):
    sig = inspect.signature(PUBLIC[name])
    missing = [p.name for p in sig.parameters.values()
               if p.annotation is inspect.Parameter.empty and p.name not in ("self", "cls")]
    assert not missing, f"{name}: parameters without annotations: {missing}"
    if not name.endswith("__init__"):
        assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return type"


def test_ships_py_typed():
    assert (ROOT / "py.typed").is_file()
