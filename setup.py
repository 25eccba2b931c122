"""The package layout; everything else about the project is in pyproject.toml.

The HTML templates live in the top-level ``templates/`` folder of the checkout, and ship in
the wheel as the package ``tipline.templates``: ``tipline/app.py`` finds them there with
``importlib.resources``, in an editable install (setuptools maps the name to ``templates/``)
as in an installed wheel. A discovered package list (``[tool.setuptools.packages.find]``)
cannot add a package from another folder, hence this file. Data folders are listed as
packages too (namespace packages to Python); their files are in ``[tool.setuptools.package-data]``.
"""

import sys

# pip checks the project's requires-python only after resolving its dependencies, and on an
# older Python it fails first on one of them (vietnam-provinces), never naming Python.
if sys.version_info < (3, 12):  # noqa: UP036 - what this file is for
    sys.exit(
        f"error: Tipline needs Python 3.12 or newer (requires-python >= 3.12); this is Python "
        f"{'.'.join(map(str, sys.version_info[:3]))}. Debian 12's python3 is 3.11: get a newer "
        "one with `uv python install 3.12` (or pyenv), then `make venv "
        "PYTHON=$(uv python find 3.12)` (docs/deploy.md, \"Python\")."
    )

from setuptools import find_namespace_packages, setup

CODE = find_namespace_packages(include=["tipline*", "keys*", "triage*"], exclude=["*.__pycache__"])
TEMPLATES = find_namespace_packages("templates", exclude=["__pycache__", "*.__pycache__"])

setup(
    packages=[*CODE, "tipline.templates", *(f"tipline.templates.{name}" for name in TEMPLATES)],
    package_dir={"tipline.templates": "templates"},
)
