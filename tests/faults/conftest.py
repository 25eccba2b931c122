"""Fixtures for fault injection: PostgreSQL and Redis servers the test may stop, and the stack.

``database_url`` and ``env`` are overridden here, so the suite's ``config``, ``runtime`` and
``units`` fixtures run against a database on the session's PostgreSQL cluster (whatever the
run's TIPLINE_TEST_DATABASE: faults are about the production backend) and this package's own
Redis server, which a test may crash.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import APP_ID, APP_SECRET, OA_SECRET, free_port, give_simulator_tokens
from tests.faults.cluster import Cluster
from tests.faults.redis_server import RedisServer
from tests.postgres_server import PostgresServer
from tipline.migrate import upgrade
from tipline.runtime import Runtime


@pytest.fixture
def redis_server_proc(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def database_url(postgres: PostgresServer) -> Iterator[str]:
    if not postgres.running:  # a test that failed while the server was down
        postgres.start()
    name = "faults_" + uuid.uuid4().hex[:8]
    url = postgres.create_database(name)
    upgrade(url)
    yield url
    if not postgres.running:
        postgres.start()
    postgres.drop_database(name)


@pytest.fixture
def env(
    data_dir: Path, redis_server_proc: RedisServer, keystore_server: str, database_url: str
) -> dict[str, str]:
    return {
        "TIPLINE_DATA_DIR": str(data_dir),
        "TIPLINE_DATABASE_URL": database_url,
        "TIPLINE_REDIS_URL": redis_server_proc.url,
        "TIPLINE_KEYSTORE_URL": keystore_server,
        "ZALO_APP_ID": APP_ID,
        "ZALO_OA_SECRET_KEY": OA_SECRET,
        "ZALO_APP_SECRET": APP_SECRET,
        "TIPLINE_SIMULATOR": "1",
    }


@pytest.fixture
def make_cluster(
    env: dict[str, str], units: dict[str, str], runtime: Runtime, tmp_path: Path
) -> Iterator[Callable[[int], Cluster]]:
    """Clusters not yet started: gunicorn (2 workers) and ``n`` supervised `tipline worker`s."""
    made: list[Cluster] = []
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
    runtime.engine.dispose()  # the test's own pool must not hold connections across faults
    logs = tmp_path / "logs"
    logs.mkdir()

    def make(workers: int) -> Cluster:
        made.append(Cluster(full_env, logs, port, workers=workers))
        return made[-1]

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop()


@pytest.fixture
def cluster(make_cluster: Callable[[int], Cluster]) -> Cluster:
    """Three workers, started."""
    started = make_cluster(3)
    started.start()
    return started
