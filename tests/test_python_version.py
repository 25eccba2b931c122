"""Tipline needs Python >= 3.12, and says so where an operator meets the version first.

On Debian 12 (python3 is 3.11) `pip install -e .` failed on a dependency
(vietnam-provinces) without naming Python, and `make venv` stopped with a hint about pyenv
only. setup.py now stops first, naming Python and the way to a newer one; make's message says
what Debian 12 has and how to get a newer Python.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLD = re.compile(r"python3\.(\d+)$")


def _old_pythons() -> list[Path]:
    """Pythons older than 3.12 on this machine (Debian 12's /usr/bin/python3.11)."""
    found = []
    for path in sorted(Path("/usr/bin").glob("python3.*")):
        match = OLD.search(path.name)
        if match and int(match.group(1)) < 12 and path.is_file():
            found.append(path)
    return found


def test_setup_py_names_python_and_the_way_to_a_newer_one(tmp_path: Path) -> None:
    # As any Python < 3.12 runs it (pip runs setup.py to learn the dependencies, before
    # resolving them): here the version is made old, and a real old Python when there is one.
    fake = (
        "import sys; sys.version_info = (3, 11, 2, 'final', 0); "
        f"exec(compile(open({str(ROOT / 'setup.py')!r}).read(), 'setup.py', 'exec'))"
    )
    runs = [[sys.executable, "-c", fake]] + [[str(p), "setup.py", "--name"] for p in _old_pythons()]
    for command in runs:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode != 0, command
        assert "needs Python 3.12 or newer" in done.stderr, done.stderr
        assert "uv python install 3.12" in done.stderr
    assert (
        "3.11"
        in subprocess.run(
            [sys.executable, "-c", fake], cwd=ROOT, capture_output=True, text=True, check=False
        ).stderr
    )


def test_make_venv_says_what_python_is_needed_and_how_to_get_it(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml", "setup.py", "requirements"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy(source, tmp_path / name)
    done = subprocess.run(
        ["make", "--no-print-directory", "venv", "PYTHON="],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "needs Python >= 3.12" in done.stdout and "Debian 12" in done.stdout
    assert "uv python install 3.12" in done.stdout
    assert not (tmp_path / ".venv").exists()
