"""The package layout; everything else about the project is in pyproject.toml.

The HTML templates live in the top-level ``templates/`` folder of the checkout, and ship in
the wheel as the package ``tipline.templates``: ``tipline/app.py`` finds them there with
``importlib.resources``, in an editable install (setuptools maps the name to ``templates/``)
as in an installed wheel. A discovered package list (``[tool.setuptools.packages.find]``)
cannot add a package from another folder, hence this file. Data folders are listed as
packages too (namespace packages to Python); their files are in ``[tool.setuptools.package-data]``.
"""

from setuptools import find_namespace_packages, setup

CODE = find_namespace_packages(include=["tipline*", "keys*", "triage*"], exclude=["*.__pycache__"])
TEMPLATES = find_namespace_packages("templates", exclude=["__pycache__", "*.__pycache__"])

setup(
    packages=[*CODE, "tipline.templates", *(f"tipline.templates.{name}" for name in TEMPLATES)],
    package_dir={"tipline.templates": "templates"},
)
