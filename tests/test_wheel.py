"""The wheel runs on its own: built from the sources, installed into a fresh venv, served.

The venv gets its dependencies from this test venv's site-packages (a .pth file), so nothing
is downloaded, and the wheel itself with ``--no-deps``. Everything runs from a temporary
folder, so the checkout is not on ``sys.path``: templates, static files, catalogs, migrations
and ward boundaries must all come from the installed package.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What deploy/Dockerfile copies into its build stage: enough to build the wheel.
SOURCES = ["pyproject.toml", "setup.py", "README.md", "LICENSE", "keys", "tipline", "triage",
           "templates"]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    work: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=self.work, env=env, capture_output=True, text=True, timeout=120,
            check=False,
        )


def _build_wheel(out: Path) -> Path:
    """The wheel of a copy of the sources (the build leaves build/ and egg-info behind)."""
    source = out / "src"
    source.mkdir()
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=junk)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = out / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--wheel-dir", str(dist), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = dist.glob("tipline-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(base)
    target = base / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # The dependencies: this venv's site-packages, after the fresh venv's own. Its .pth files
    # (the editable install of the checkout) are not read from a path a .pth file adds.
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    work = base / "work"
    work.mkdir()
    yield Installed(wheel, target, work)


def test_the_wheel_holds_the_package_data(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for name in [
        "tipline/templates/base.html",
        "tipline/templates/auth/login.html",
        "tipline/web/static/tipline.css",
        "tipline/web/static/pow.js",
        "tipline/web/translations/vi/LC_MESSAGES/messages.mo",
        "tipline/web/translations/vi/LC_MESSAGES/messages.po",
        "tipline/migrations/env.py",
        "tipline/migrations/script.py.mako",
        "tipline/migrations/versions/0001_initial_schema.py",
        "tipline/routing/data/vn-wards-2025.geojson.gz",
        "tipline/routing/data/LICENSE-vietnamese-provinces-database.txt",
        "tipline/routing/data/README.md",
    ]:
        assert name in names, name
    assert not {n for n in names if n.startswith(("tests/", "templates/", "benchmarks/"))}


# Run in the fresh venv: the app of the installed package, one request, what it found.
SERVE_LOGIN = """
import json, sys
import tipline
from tipline.app import create_app
from tipline.config import Config

app = create_app(Config.from_env())
client = app.test_client()
page = client.get("/login")
css = client.get("/static/tipline.css")
print(json.dumps({
    "package": tipline.__file__,
    "templates": app.jinja_loader.searchpath,
    "status": page.status_code,
    "page": page.get_data(as_text=True),
    "css": css.status_code,
    "wards": str(Config.from_env().ward_boundaries),
    "wards_exist": Config.from_env().ward_boundaries.exists(),
}))
"""


def test_the_installed_wheel_migrates_and_serves_the_login_page_in_vietnamese(
    installed: Installed, tmp_path: Path, redis_server: str
) -> None:
    env = {
        "PATH": f"{installed.venv / 'bin'}:/usr/bin:/bin",
        "TIPLINE_DATA_DIR": str(tmp_path / "data"),
        "TIPLINE_REDIS_URL": redis_server,
    }
    upgrade = installed.run([str(installed.venv / "bin" / "tipline"), "db", "upgrade"], env)
    assert upgrade.returncode == 0, upgrade.stderr
    assert (tmp_path / "data" / "tipline.db").stat().st_size > 0

    served = installed.run([str(installed.python), "-c", SERVE_LOGIN], env)
    assert served.returncode == 0, served.stderr
    found = json.loads(served.stdout)
    installed_here = installed.venv.resolve()
    assert Path(found["package"]).resolve().is_relative_to(installed_here)  # not the checkout
    assert all(Path(p).resolve().is_relative_to(installed_here) for p in found["templates"])
    assert found["status"] == 200
    assert 'lang="vi"' in found["page"] and "Đăng nhập" in found["page"]
    assert found["css"] == 200
    assert Path(found["wards"]).resolve().is_relative_to(installed_here)
    assert found["wards_exist"]
