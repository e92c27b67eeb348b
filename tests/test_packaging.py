"""pyproject.toml and environment.yml list the same dependencies."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"pytorch": "torch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in meta["dependencies"]}
    names |= {_name(r) for r in meta["optional-dependencies"]["test"]}
    return names


def _environment() -> set[str]:
    names, in_deps, in_pip = set(), False, False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        stripped = line.strip()
        if not line.startswith(" ") and stripped.endswith(":"):
            in_deps = stripped == "dependencies:"
            continue
        if not in_deps:
            continue
        if stripped.startswith("- pip:"):
            in_pip = True
            continue
        if stripped.startswith("- ") and not in_pip:
            names.add(CONDA_TO_PYPI.get(_name(stripped[2:]), _name(stripped[2:])))
    return names - {"python", "pip"}


def test_environment_yml_matches_pyproject():
    assert _environment() == _pyproject()


def test_environment_installs_the_package_itself():
    assert "- -e ." in (ROOT / "environment.yml").read_text()
