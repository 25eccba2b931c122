"""The dependency lock (requirements/, written by `make lock`) agrees with pyproject.toml.

Every target but `make lock` installs from the lock with ``--require-hashes``, so a
dependency added to pyproject.toml, or a floor raised there, without `make lock` would
otherwise go unnoticed until a fresh machine installs something else.
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pins(name: str) -> dict[str, set[Version]]:
    """Package name → the versions the lock file pins (one per marker), checking hashes."""
    found: dict[str, set[Version]] = defaultdict(set)
    text = (LOCKS / name).read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *hashes = line.split(" --hash=")
        requirement = Requirement(spec)
        assert hashes and all(h.startswith("sha256:") for h in hashes), line
        (pinned,) = requirement.specifier
        assert pinned.operator == "==", line
        found[canonicalize_name(requirement.name)].add(Version(pinned.version))
    assert found, f"{name} pins nothing"
    return found


def assert_pinned_within(requirements: list[str], lock: dict[str, set[Version]]) -> None:
    for line in requirements:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement.name} is not in the lock: run make lock"
        for version in lock[name]:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"the lock pins {requirement.name} {version}, pyproject.toml asks "
                f"{requirement.specifier}: run make lock"
            )


def test_runtime_lock_pins_every_runtime_dependency_within_its_bounds() -> None:
    runtime = pins("runtime.txt")
    assert_pinned_within(PYPROJECT["project"]["dependencies"], runtime)
    # Production has no demo or test tools.
    for extra in ("demo", "dev"):
        for line in PYPROJECT["project"]["optional-dependencies"][extra]:
            assert canonicalize_name(Requirement(line).name) not in runtime, line


def test_dev_lock_pins_everything_and_the_same_versions_as_production() -> None:
    dev = pins("dev.txt")
    project = PYPROJECT["project"]
    assert_pinned_within(project["dependencies"], dev)
    for extra in ("demo", "dev"):
        assert_pinned_within(project["optional-dependencies"][extra], dev)
    assert_pinned_within(PYPROJECT["build-system"]["requires"], dev)
    for name, versions in pins("runtime.txt").items():
        assert dev[name] == versions, f"{name}: the tests run {dev[name]}, production {versions}"
    assert pins("build.txt") == {name: dev[name] for name in pins("build.txt")}


def test_the_build_lock_is_the_build_backend() -> None:
    wanted = [
        line
        for line in (LOCKS / "build.in").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert wanted == PYPROJECT["build-system"]["requires"]
    assert_pinned_within(wanted, pins("build.txt"))


@pytest.mark.parametrize("name", ["runtime.txt", "dev.txt", "build.txt", "audit.txt"])
def test_each_lock_is_written_by_make_lock(name: str) -> None:
    assert "make lock" in (LOCKS / name).read_text(encoding="utf-8").splitlines()[1]
    pins(name)
