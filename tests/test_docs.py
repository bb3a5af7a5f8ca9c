"""The documentation: API reference coverage, no commit hashes, a short README,
runnable guide examples, and (with the docs extra installed) a strict site build."""

import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

import jaxconv
import jaxconv.nn

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api"
SKIP = "<!-- docs-test: skip -->"
# A word of 7-40 hex digits with both a letter and a digit reads as a git commit hash.
HASH = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")
HASH_ALLOWED: set[str] = set()


def _markdown_files():
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _api_identifiers():
    text = "\n".join(p.read_text() for p in API.glob("*.md"))
    return set(re.findall(r"^::: ([\w.]+)", text, flags=re.M))


@pytest.mark.parametrize("module", [jaxconv, jaxconv.nn], ids=lambda m: m.__name__)
def test_api_reference_names_every_public_symbol(module):
    documented = _api_identifiers()
    submodules = {"nn", "testing"}  # documented on pages of their own
    missing = [name for name in module.__all__
               if f"{module.__name__}.{name}" not in documented
               and not (module is jaxconv and name in submodules)]
    assert not missing, f"not in docs/api/*.md: {missing}"
    assert {"jaxconv.nn", "jaxconv.testing"} <= documented | {
        i.rsplit(".", 1)[0] for i in documented if i.startswith("jaxconv.nn.")}


def test_api_reference_covers_testing():
    assert "jaxconv.testing" in _api_identifiers()
    text = (API / "testing.md").read_text()
    assert "assert_impls_agree" in text


def test_no_commit_hashes_in_prose():
    found = {str(p.relative_to(ROOT)): sorted(set(HASH.findall(p.read_text())) - HASH_ALLOWED)
             for p in _markdown_files()}
    found = {k: v for k, v in found.items() if v}
    assert not found, f"commit hashes in the docs: {found}"


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines"


def test_no_list_swallows_the_next_paragraph():
    # A Markdown list item followed directly by a non-indented paragraph line joins it.
    for path in _markdown_files():
        lines = path.read_text().splitlines()
        fence = False
        for i, (line, nxt) in enumerate(zip(lines, lines[1:])):
            if line.startswith("```"):
                fence = not fence
            if fence or not nxt or nxt.startswith((" ", "-", "*", "|", "#", "<", "`")):
                continue
            if re.match(r"\s*[-*] \S", line) or (line.startswith("  ") and _in_list(lines, i)):
                if not re.match(r"\s*\d+\. ", nxt):
                    pytest.fail(f"{path.name}:{i + 2}: paragraph joined to the list above")


def _in_list(lines, i):
    while i >= 0 and lines[i].strip():
        if re.match(r"\s*[-*] \S", lines[i]):
            return True
        if not lines[i].startswith(" "):
            return False
        i -= 1
    return False


def _python_blocks(path):
    text = path.read_text()
    blocks = re.finditer(r"(^[^\n]*\n)?```python\n(.*?)```", text, flags=re.M | re.S)
    return [m.group(2) for m in blocks
            if not (m.group(1) or "").startswith(SKIP)]


GUIDES = sorted(p for p in DOCS.rglob("*.md") if _python_blocks(p))


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: str(p.relative_to(DOCS)))
def test_guide_examples_run(path):
    """Every ```python block of a page runs, in order, in one namespace (a page is read
    top to bottom); a block preceded by ``<!-- docs-test: skip -->`` is not run."""
    namespace = {}
    for block in _python_blocks(path):
        try:
            exec(compile(block, str(path), "exec"), namespace)
        except ModuleNotFoundError as e:
            if e.name and e.name.split(".")[0] in {"torch", "flax", "optax", "equinox"}:
                pytest.skip(f"{e.name} is not installed")
            raise


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None
                    or importlib.util.find_spec("mkdocstrings") is None
                    or importlib.util.find_spec("mkdocs_gen_files") is None,
                    reason="the docs extra is not installed (pip install -e '.[docs]')")
def test_mkdocs_build_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "site" / "performance" / "zen3" / "index.html").exists()
    assert (tmp_path / "site" / "performance" / "zen3" / "bench_cpu.png").exists()
