"""Package discovery for the package-dir mapping in pyproject.toml.

All metadata lives in pyproject.toml. This shim only expands the three roots of
[tool.setuptools] package-dir (slt_deploy/, exporters/ -> slt_deploy.exporters,
targets/ -> slt_deploy.targets) into the full list of packages, subpackages included,
which pyproject.toml alone cannot do for renamed folders. Every folder below a root
is a package, data-only folders included (setuptools wants that for package data).
"""

import tomllib
from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent
ROOTS = tomllib.loads((HERE / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    subs = find_namespace_packages(str(HERE / folder), exclude=["*__pycache__*"])
    packages += [f"{name}.{sub}" for sub in subs]

setup(packages=sorted(set(packages)))
