"""The package as distributed: one version number everywhere, the licence, the changelog,
the metadata the wheel is built from (``.ci/wheel_check.sh`` builds and installs it)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import jaxconv

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def test_version_is_written_once_and_installed():
    """pyproject reads the version from jaxconv.__version__; the installed metadata agrees."""
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "jaxconv.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", jaxconv.__version__)
    assert importlib.metadata.version("jaxconv") == jaxconv.__version__
    # the number appears once in the package source: the line setuptools reads
    lines = [line for path in (ROOT / "jaxconv").rglob("*.py")
             for line in path.read_text().splitlines() if "__version__ =" in line]
    assert lines == [f'__version__ = "{jaxconv.__version__}"']


def test_license_is_apache_2_0_as_declared():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, "
                                    "January 2004")
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "[yyyy]" not in text and "Copyright 2026 the jaxconv authors" in text
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]


def test_build_needs_a_setuptools_that_reads_spdx_licenses():
    """setuptools >= 77 reads `license = "Apache-2.0"` and `license-files` (PEP 639)."""
    assert PYPROJECT["build-system"]["requires"] == ["setuptools>=77"]


def test_dev_extra_installs_every_other_extra_but_examples():
    extras = PROJECT["optional-dependencies"]
    assert {"test", "bench", "docs", "typecheck"} <= set(extras)
    assert extras["dev"][0] == "jaxconv[test,bench,docs,typecheck]"
    assert any(r.startswith("ruff") for r in extras["dev"])


def test_changelog_newest_release_is_this_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.M)
    assert headings[0] == ("Unreleased", "")
    version, date = headings[1]
    assert version == jaxconv.__version__ and date
    assert all(v != "Unreleased" for v, _ in headings[1:])
