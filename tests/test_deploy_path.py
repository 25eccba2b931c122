"""docs/deploy.md, "Install with systemd, step by step", followed on this machine.

Each ``sh`` block of that section runs as written (the section says what the test changes:
paths to a scratch root, ports through the documented variables and drop-ins, and
`systemctl`, `sudo -u postgres` and nginx played by tests/deploy_systemd.py and this file):
PostgreSQL roles and database from make-secrets.sh's SQL, on a cluster of its own that checks
passwords (scram); Redis with its ACL users and the key store; migrations as the owner; two
workers, both gunicorn tiers and the shipped nginx configuration in front of them; the
national units; an officer; the simulator as a process of its own and a signed tip through
nginx, acknowledged. Then an officer logs in through nginx's staff port (a form POST with a
browser's Referer: it got 400 when nginx sent ``Host $host``) and finds the tip, and the
intake tier's Redis and PostgreSQL credentials can neither enqueue a job nor change a key.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from redis import Redis
from redis.exceptions import NoPermissionError

from tests.conftest import free_port
from tests.postgres_server import PostgresServer
from tests.triage_helpers import csrf_from
from tipline.outbox import JOBS, job_queue

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "deploy.md"
SECTION = "## Install with systemd, step by step"
OA = "3886132808788132134"
USER = "8203617745519023411"
ZALO = {
    "ZALO_APP_ID": "1234567890123456789",
    "ZALO_OA_SECRET_KEY": "oa-secret-from-the-developer-console",
    "ZALO_APP_SECRET": "app-secret-from-the-developer-console",
}
PASSWORD = "mật khẩu trực ban 2026"


def doc_blocks() -> list[str]:
    """The ``sh`` blocks of the section, in order (``console`` blocks are not run)."""
    text = DOCS.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else None]
    return re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this test's own: passwords checked over TCP (scram), the
    superuser trusted on the local socket only (Debian's `sudo -u postgres psql`)."""
    server = PostgresServer.create()
    server.execute('DROP ROLE "tipline"')  # tests/postgres_server.py's; the docs make theirs
    (server.data / "pg_hba.conf").write_text(
        "local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    )
    server._run("pg_ctl", ["reload", "-D", str(server.data)])
    yield server
    server.destroy()


def _tls(where: Path) -> None:
    where.mkdir(parents=True)
    for name in ("public", "staff"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(where / f"{name}.key"), "-out", str(where / f"{name}.crt")],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip


class Machine:
    """The scratch root and the processes the blocks started."""

    def __init__(self, tmp: Path, cluster: PostgresServer) -> None:
        self.rootfs = tmp / "root"
        self.state = tmp / "state"
        self.state.mkdir()
        names = ("redis", "keystore", "staff", "intake", "public", "staff_tls", "sim", "metrics")
        self.ports = {name: free_port() for name in names}
        for folder in (
            "etc/tipline",
            "etc/systemd/system",
            "etc/nginx/conf.d",
            "var/lib",
            "var/tmp",
        ):
            (self.rootfs / folder).mkdir(parents=True)  # fmt: skip
        _tls(self.rootfs / "etc/nginx/tls")
        self.paths = [
            ["/opt/tipline/app/.venv", sys.prefix],
            ["/opt/tipline/app", str(ROOT)],
            ["/etc/tipline", str(self.rootfs / "etc/tipline")],
            ["/etc/systemd/system", str(self.rootfs / "etc/systemd/system")],
            ["/etc/nginx", str(self.rootfs / "etc/nginx")],
            ["/var/lib/", str(self.rootfs / "var/lib") + "/"],
            ["/var/tmp/zalo-sim", str(self.rootfs / "var/tmp/zalo-sim")],
        ]
        etc = self.rootfs / "etc"
        # Ports (and sizes), the documented ways: redis.env, keystore.env, drop-ins.
        (etc / "tipline/redis.env").write_text(f"TIPLINE_REDIS_ARGS=--port {self.ports['redis']}\n")
        (etc / "tipline/keystore.env").write_text(
            f"TIPLINE_KEYSTORE_ARGS=--port {self.ports['keystore']}\n"
        )
        for unit, port in (("tipline-web", self.ports["staff"]),
                           ("tipline-intake", self.ports["intake"])):  # fmt: skip
            drop_in = etc / f"systemd/system/{unit}.service.d"
            drop_in.mkdir(parents=True)
            (drop_in / "port.conf").write_text(  # and one gunicorn worker: a shared 2-core box
                f"[Service]\nEnvironment=TIPLINE_BIND=127.0.0.1:{port}\n"
                "Environment=TIPLINE_WEB_WORKERS=1\n"
            )
        drop_in = etc / "systemd/system/tipline-metrics.service.d"
        drop_in.mkdir(parents=True)
        (drop_in / "address.conf").write_text(  # the documented way to give it another address
            "[Service]\nExecStart=\nExecStart=/opt/tipline/app/.venv/bin/tipline metrics "
            f"--host 127.0.0.1 --port {self.ports['metrics']}\n"
        )
        self.nginx_main = self.state / "nginx.conf"
        self.nginx = f"/usr/sbin/nginx -c {self.nginx_main} -p {self.state}/"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TIPLINE_", "ZALO_"))},
            "PYTHONPATH": str(ROOT),
            "PYTHON": sys.executable,  # make-secrets.sh's Python
            "TIPLINE_PYTHON": sys.executable,  # tipline-admin's
            "TIPLINE_CREDENTIALS": str(etc / "tipline/credentials"),
            "TIPLINE_ENV_FILE": str(etc / "tipline/tipline.env"),
            "TIPLINE_DATA_DIR": str(self.rootfs / "var/lib/tipline"),
            "REDIS_PORT": str(self.ports["redis"]),
            "KEYSTORE_PORT": str(self.ports["keystore"]),
            "POSTGRES_PORT": str(cluster.port),
            "PGHOST_SOCKET": str(cluster.base),
            "DEPLOY_ROOTFS": str(self.rootfs),
            "DEPLOY_STATE": str(self.state),
            "DEPLOY_PATHS": json.dumps(self.paths),
            "DEPLOY_NGINX": self.nginx,
            "TIPLINE_NEW_PASSWORD": PASSWORD,  # `officers add` asks for it
        }
        self.sessions: list[int] = []
        self.outputs: list[str] = []

    def text(self, block: str) -> str:
        for source, target in self.paths:
            block = block.replace(source, target)
        block = re.sub(r"\b9100\b", str(self.ports["sim"]), block)  # the simulator's port
        block = block.replace("https://127.0.0.1 ", f"https://127.0.0.1:{self.ports['public']} ")
        for name, value in ZALO.items():
            block = block.replace(f"{name}=…", f"{name}={shlex.quote(value)}")
        return block

    def prelude(self, strict: bool) -> str:
        return "\n".join([
            "set -euo pipefail" if strict else "set -uo pipefail",
            f"systemctl() {{ {sys.executable} -m tests.deploy_systemd \"$@\"; }}",
            # Debian's `sudo -u postgres psql`: the superuser on the cluster's local socket.
            'sudo() { if [[ "$1 $2" == "-u postgres" ]]; then shift 2; '
            '"$@" -h "$PGHOST_SOCKET" -p "$POSTGRES_PORT" -U postgres; else "$@"; fi; }',
            f"nginx() {{ {sys.executable} -m tests.test_deploy_path nginx-conf && "
            f"/usr/sbin/nginx -c {self.nginx_main} -p {self.state}/ \"$@\"; }}",
            "export -f systemctl sudo nginx",
            "",
        ])  # fmt: skip

    def run(self, block: str, strict: bool = True) -> str:
        proc = subprocess.Popen(
            ["bash", "-c", self.prelude(strict) + self.text(block)],
            env={**self.env, "DEPLOY_PUBLIC_PORT": str(self.ports["public"]),
                 "DEPLOY_STAFF_TLS_PORT": str(self.ports["staff_tls"]),
                 "DEPLOY_INTAKE_PORT": str(self.ports["intake"]),
                 "DEPLOY_STAFF_PORT": str(self.ports["staff"])},
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        self.sessions.append(proc.pid)
        out, _ = proc.communicate(timeout=180)
        output = out.decode(errors="replace")
        self.outputs.append(output)
        if strict and proc.returncode != 0:
            raise AssertionError(f"block failed ({proc.returncode}):\n{block}\n---\n{output}")
        return output

    def logs(self) -> str:
        logs = [*sorted(self.state.glob("*.log")), *self.rootfs.glob("var/tmp/*.log")]
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in logs)

    def stop(self) -> None:
        for pid_file in self.state.glob("*.pid"):
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        for pid in self.sessions:  # what a block left running (`… &`)
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        for pid_file in self.state.glob("*.pid"):
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def nginx_conf() -> None:
    """What the test changes in the installed nginx configuration before nginx reads it:
    ports, certificate and log paths; and the main file that includes it (Debian's
    nginx.conf includes conf.d/*.conf in its http block)."""
    rootfs, state = Path(os.environ["DEPLOY_ROOTFS"]), Path(os.environ["DEPLOY_STATE"])
    conf = (rootfs / "etc/nginx/conf.d/tipline.conf").read_text()
    for old, new in (
        ("127.0.0.1:8001;", f"127.0.0.1:{os.environ['DEPLOY_INTAKE_PORT']};"),
        ("127.0.0.1:8000;", f"127.0.0.1:{os.environ['DEPLOY_STAFF_PORT']};"),
        ("listen 443 ssl", f"listen 127.0.0.1:{os.environ['DEPLOY_PUBLIC_PORT']} ssl"),
        ("listen 8443 ssl", f"listen 127.0.0.1:{os.environ['DEPLOY_STAFF_TLS_PORT']} ssl"),
        ("/etc/nginx/tls/", f"{rootfs}/etc/nginx/tls/"),
        ("/dev/stdout", f"{state}/nginx-access.log"),
    ):
        assert old in conf, old
        conf = conf.replace(old, new)
    (state / "tipline.conf").write_text(conf)
    temp = state / "nginx-temp"
    temp.mkdir(exist_ok=True)
    temp.chmod(0o777)
    (state / "nginx.conf").write_text(
        f"pid {state}/nginx.pid.nginx;\nerror_log {state}/nginx-error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
        f"  fastcgi_temp_path {temp}/f;\n  uwsgi_temp_path {temp}/u;\n  scgi_temp_path {temp}/s;\n"
        f"  include {state}/tipline.conf;\n}}\n"
    )


def test_the_documented_production_path_works_on_this_machine(
    cluster: PostgresServer, tmp_path: Path
) -> None:
    blocks = doc_blocks()
    assert len(blocks) == 6, "docs/deploy.md's walkthrough changed: update this test"
    machine = Machine(tmp_path, cluster)
    secrets, services, proxy, accounts, smoke, checks = blocks
    try:
        assert "ZALO_APP_ID=…" in secrets
        machine.run(secrets)
        machine.run(services)
        machine.run(proxy)
        added = machine.run(accounts)
        totp = re.search(r"TOTP secret \(enrol in an authenticator app\): (\w+)", added)
        assert totp, added
        machine.run(smoke)

        # The acknowledgement reached the simulator, a process of its own.
        sim = f"http://127.0.0.1:{machine.ports['sim']}/_sim"
        deadline = time.monotonic() + 90
        while True:
            calls = httpx.get(f"{sim}/messages", timeout=5).json()
            acks = [c for c in calls if c["user_id"] == USER and c["status"] == "ok"]
            if acks:
                break
            assert time.monotonic() < deadline, machine.logs()
            time.sleep(0.5)
        receipt = re.search(r"TL-\w{4}-\w{4}", acks[0]["text"])
        assert receipt, acks[0]

        # An officer logs in through nginx's staff port, as a browser does (Referer sent).
        staff = f"https://127.0.0.1:{machine.ports['staff_tls']}"
        with httpx.Client(base_url=staff, verify=False, timeout=30) as browser:  # noqa: S501
            page = browser.get("/login")
            assert page.status_code == 200, page.text
            answer = browser.post(
                "/login",
                data={"csrf_token": csrf_from(page.text), "username": "canbo.ltt",
                      "password": PASSWORD, "code": ""},
                headers={"Referer": f"{staff}/login"},
            )  # fmt: skip
            assert answer.status_code == 302, (answer.status_code, answer.text[:500])
            setup = browser.get(answer.headers["location"])
            assert setup.status_code == 200, setup.text[:500]
            enrolled = browser.post(
                answer.headers["location"],
                data={"csrf_token": csrf_from(setup.text), "code": pyotp.TOTP(totp[1]).now()},
                headers={"Referer": f"{staff}{answer.headers['location']}"},
            )
            assert enrolled.status_code == 302, (enrolled.status_code, enrolled.text[:500])
            inbox = browser.get("/triage/")
            assert inbox.status_code == 200 and "/triage/tips/" in inbox.text, inbox.text[:500]

        # The metrics unit, on its own read-only role and Redis user, sees the tip go by.
        scraped = httpx.get(f"http://127.0.0.1:{machine.ports['metrics']}/metrics", timeout=30)
        assert "tipline_scrape_errors 0.0" in scraped.text, scraped.text[-3000:]
        assert "tipline_intake_events_total 1.0" in scraped.text, scraped.text[-3000:]

        # The intake tier's credentials: no job, no key change (the documented check) ...
        checked = machine.run(checks, strict=False)
        assert "NOPERM" in checked and "permission denied for table unit_keys" in checked, checked
        # ... nor through RQ itself.
        credentials = machine.rootfs / "etc/tipline/credentials"
        intake_redis = Redis.from_url((credentials / "redis_url_intake").read_text().strip())
        with pytest.raises(NoPermissionError):
            job_queue("dispatch", intake_redis).enqueue(JOBS["dispatch"].func, "forged")
    except BaseException:
        print(machine.logs())
        print("\n".join(machine.outputs)[-6000:])
        raise
    finally:
        machine.stop()


if __name__ == "__main__" and sys.argv[1:] == ["nginx-conf"]:
    nginx_conf()
