#!/usr/bin/env bash
# Build jaxconv's sdist and wheel, failing on any warning in the build's output; install
# the wheel into a fresh virtual environment (its dependencies, jax included, from the
# package index) and check the installed package from a directory outside the source tree.
#
#   .ci/wheel_check.sh            # python3 from PATH builds and creates the venv
#   PYTHON=python3.12 .ci/wheel_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/jaxconv-wheel-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'wheel_check: %s\n' "$*" >&2; exit 1; }

say "build (sdist, then the wheel from it) into $WORK/dist"
"$PYTHON" -m venv "$WORK/build-venv"
"$WORK/build-venv/bin/python" -m pip install -q --upgrade pip build
# PYTHONDONTWRITEBYTECODE makes setuptools warn that it skips byte-compiling: not a
# packaging problem, so the build runs without it.
if ! env -u PYTHONDONTWRITEBYTECODE "$WORK/build-venv/bin/python" -m build \
        --outdir "$WORK/dist" "$SRC" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log"
    fail "the build failed"
fi
if grep -inE 'warn|deprecat' "$WORK/build.log"; then
    fail "the build printed the warnings above (full log: rerun python -m build)"
fi
tail -n 1 "$WORK/build.log"
WHEEL=$(ls "$WORK"/dist/jaxconv-*.whl)
SDIST=$(ls "$WORK"/dist/jaxconv-*.tar.gz)

say "contents"
"$PYTHON" - "$WHEEL" "$SDIST" "$SRC" <<'PY'
import sys, tarfile, zipfile
from pathlib import Path
wheel, sdist, src = sys.argv[1], sys.argv[2], Path(sys.argv[3])
names = zipfile.ZipFile(wheel).namelist()
meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
text = zipfile.ZipFile(wheel).read(meta).decode()
assert "License-Expression: Apache-2.0" in text, "no License-Expression in METADATA"
assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "no LICENSE in wheel"
assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/"))], names
if (src / "jaxconv" / "py.typed").exists():
    assert "jaxconv/py.typed" in names, "jaxconv/py.typed is not in the wheel"
top = {n.split("/")[1] for n in tarfile.open(sdist).getnames() if n.count("/") >= 1}
for name in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "jaxconv"):
    assert name in top, f"{name} is not in the sdist"
print(f"wheel: {len(names)} files; sdist: {', '.join(sorted(top))}")
PY

say "install $(basename "$WHEEL") into a fresh venv"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
"$WORK/venv/bin/python" -m pip install -q "$WHEEL"

say "check the installed package from $WORK/run"
mkdir "$WORK/run"
cd "$WORK/run"
PY="$WORK/venv/bin/python"
JAXCONV_SRC="$SRC" "$PY" -I - <<'PY'
import importlib.metadata
import os
import sys
import sysconfig
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxconv

src = Path(os.environ["JAXCONV_SRC"]).resolve()
where = Path(jaxconv.__file__).resolve()
site = Path(sysconfig.get_paths()["purelib"]).resolve()
assert where.is_relative_to(site), f"jaxconv imported from {where}, not from {site}"
assert not where.is_relative_to(src), f"jaxconv imported from the source tree: {where}"
version = importlib.metadata.version("jaxconv")
assert jaxconv.__version__ == version, (jaxconv.__version__, version)
typed = (where.parent / "py.typed").exists()
if (src / "jaxconv" / "py.typed").exists():
    assert typed, "the source has jaxconv/py.typed, the installed package does not"

x = jax.random.normal(jax.random.key(0), (2, 4, 9, 9))
w = jax.random.normal(jax.random.key(1), (6, 2, 3, 3))
want = jax.lax.conv_general_dilated(x, w, (2, 1), [(1, 1), (0, 0)], rhs_dilation=(1, 2),
                                    feature_group_count=2)
for impl in ("auto", "lax", "gather", "shift", "fold"):
    got = jaxconv.conv2d(x, w, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2,
                         impl=impl)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=impl)
layer = jaxconv.nn.Conv2d(4, 8, 3, padding=1, padding_mode="reflect")
params = layer.init(jax.random.key(2))
y = jax.jit(layer)(params, x)
assert y.shape == (2, 8, 9, 9), y.shape
g = jax.grad(lambda p: jnp.sum(layer(p, x) ** 2))(params)
assert all(np.isfinite(v).all() for v in jax.tree.leaves(g))
print(f"jaxconv {version} from {where.parent}, jax {jax.__version__}, py.typed: {typed}; "
      f"conv2d agrees with lax for every impl; nn.Conv2d runs (forward, grad)")
PY
"$PY" -m jaxconv --version
"$PY" -m jaxconv verify --no-torch --n 2 >"$WORK/verify.log" 2>&1 || {
    cat "$WORK/verify.log"; fail "python -m jaxconv verify --no-torch --n 2 failed"; }
tail -n 1 "$WORK/verify.log"
"$WORK/venv/bin/jaxconv" bench --list >/dev/null

say "wheel check passed"
