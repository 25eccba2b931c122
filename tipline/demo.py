"""`tipline demo`: the whole system on embedded defaults, seeded with a demo province.

Seeds Công an tỉnh Cà Mau and five of its communes (real 2025 codes), one OA each, an officer
per commune, a commander, an auditor and an admin; writes `demo-logins.json`; then runs the
web app (with the Zalo simulator on the same port) and a worker until interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from keys import keyed_digest, new_token
from tipline.config import (
    DEMO_ZALO_APP_ID,
    DEMO_ZALO_APP_SECRET,
    DEMO_ZALO_OA_SECRET_KEY,
    Config,
)
from tipline.migrate import upgrade
from tipline.models import Officer, OfficialAccount, Role, Unit, UnitLevel
from tipline.officers import add_officer, holder_keys
from tipline.redis_conn import embedded_keystore_url, embedded_redis_url
from tipline.runtime import Runtime
from tipline.units import add_unit, set_oa

PROVINCE = ("v2025:96", "Công an tỉnh Cà Mau", "3886132808788086451")
COMMUNES = [
    ("v2025:32134", "Công an xã Lương Thế Trân", "3886132808788132134", "luongthetran"),
    ("v2025:32128", "Công an xã Cái Nước", "3886132808788132128", "cainuoc"),
    ("v2025:32137", "Công an xã Tân Hưng", "3886132808788132137", "tanhung"),
    ("v2025:32002", "Công an phường An Xuyên", "3886132808788132002", "anxuyen"),
    ("v2025:32025", "Công an phường Tân Thành", "3886132808788132025", "tanthanh"),
]
DEMO_USER_ID = "2468458835296197922"
LOGINS_SYNC_EVERY = 2.0  # seconds between looks at changed passwords (sync_logins)


def demo_environment(port: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment shared by the demo's processes: simulator on, Zalo pointed at it."""
    env = dict(os.environ if base is None else base)
    env.pop("TIPLINE_TIER", None)  # the demo is no production tier: embedded defaults
    env.setdefault("TIPLINE_DATA_DIR", str(Path("instance").resolve()))
    env.setdefault("ZALO_APP_ID", DEMO_ZALO_APP_ID)
    env.setdefault("ZALO_OA_SECRET_KEY", DEMO_ZALO_OA_SECRET_KEY)
    env.setdefault("ZALO_APP_SECRET", DEMO_ZALO_APP_SECRET)
    env.setdefault("ZALO_API_BASE", f"http://127.0.0.1:{port}/_sim")
    env.setdefault("ZALO_OAUTH_BASE", f"http://127.0.0.1:{port}/_sim")
    env["TIPLINE_SIMULATOR"] = "1"
    # GPS routing uses the ward boundaries shipped in the package (tipline.config's default).
    return env


def _password() -> str:
    return new_token(16).lower()


def seed(runtime: Runtime) -> list[dict[str, Any]] | None:
    """Create the demo units, OAs and accounts; None when the data dir is already seeded."""
    from tipline.zalo.simulator import issue_tokens
    from tipline.zalo.tokens import TokenPair, store_tokens

    config = runtime.config
    logins: list[dict[str, Any]] = []
    with runtime.sessions() as session, session.begin():
        if session.scalar(select(Unit.id).limit(1)) is not None:
            return None

        # The commander's row and keys, and their username and password to refresh them.
        grantor: list[Any] = []

        def account(username: str, name: str, role: str, unit: str | None) -> None:
            password = _password()
            if grantor:  # what the commander's key opens now (the communes made since too)
                grantor[0] = holder_keys(session, grantor[1][0], grantor[1][1])
            new = add_officer(
                session,
                username=username,
                display_name=name,
                role=role,
                unit_code=unit,
                password=password,
                cost=config.kdf_cost,
                totp_confirmed=True,
                # The demo's commander approves the communes' officers as they are seeded.
                grantor=grantor[0][0] if grantor else None,
                grantor_keys=grantor[0][1] if grantor else None,
            )
            if role == Role.COMMANDER and not grantor:
                grantor.extend([holder_keys(session, username, password), (username, password)])
            logins.append(
                {
                    "username": username,
                    "password": password,
                    "totp_secret": new.totp_secret,
                    "recovery_code": new.recovery_code,
                    "role": role,
                    "unit": unit,
                    "password_version": password_version(new.officer.password_hash),
                }
            )

        code, name, oa = PROVINCE
        add_unit(session, code=code, name=name, level=UnitLevel.PROVINCE)
        # The commander first: the province key is created for them, and each commune key
        # created after it is granted to the province key.
        account("chihuy.camau", "Chỉ huy Công an tỉnh Cà Mau", Role.COMMANDER, code)
        set_oa(session, code, oa)
        for commune_code, commune_name, commune_oa, slug in COMMUNES:
            add_unit(
                session,
                code=commune_code,
                name=commune_name,
                level=UnitLevel.COMMUNE,
                parent_code=code,
            )
            set_oa(session, commune_code, commune_oa)
            account(f"canbo.{slug}", f"Cán bộ trực ban {commune_name}", Role.OFFICER, commune_code)
        account("thanhtra", "Thanh tra", Role.AUDITOR, code)
        account("quantri", "Quản trị hệ thống", Role.ADMIN, None)
        session.flush()
        for account_row in session.scalars(select(OfficialAccount)):
            access, refresh, expires_in = issue_tokens(config.data_dir, account_row.oa_id)
            store_tokens(
                session,
                account_row,
                TokenPair(access, refresh, expires_in),
                config.secrets.relay_public,
            )
    return logins


def password_version(password_hash: str) -> str:
    """Which password an entry of demo-logins.json holds: a digest of the stored hash, so a
    change made in the app (recovery, a reset by an admin) is seen without an Argon2id run."""
    return keyed_digest(b"tipline-demo", "password-version", password_hash)[:16]


def write_logins(data_dir: Path, logins: list[dict[str, Any]]) -> Path:
    path = data_dir / "demo-logins.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(logins, handle, ensure_ascii=False, indent=2)
    tmp.replace(path)
    return path


def sync_logins(runtime: Runtime, data_dir: Path) -> list[str]:
    """Mark the entries of demo-logins.json whose password was changed in the app: their
    password (and spent recovery code) become null, ``password_changed`` true. The file must
    not offer a password that no longer works, nor keep one the officer chose. Returns the
    usernames marked now."""
    path = data_dir / "demo-logins.json"
    if not path.exists():
        return []
    entries = json.loads(path.read_text(encoding="utf-8"))
    with runtime.sessions() as session:
        current = dict(session.execute(select(Officer.username, Officer.password_hash)).all())
    marked = []
    for entry in entries:
        stored = current.get(entry.get("username"))
        if entry.get("password") is None or stored is None:
            continue
        if entry.get("password_version") != password_version(stored):
            entry.update(password=None, recovery_code=None, password_changed=True)
            marked.append(str(entry["username"]))
    if marked:
        write_logins(data_dir, entries)
    return marked


@contextmanager
def _children(
    commands: list[list[str]], env: dict[str, str]
) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [subprocess.Popen(command, env=env) for command in commands]  # noqa: S603  # nosec B603
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_healthy(url: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)  # runs the cleanup that stops the web and worker processes


def port_taken(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on (e.g. another demo has it), or None if it can.

    Bound as gunicorn binds (SO_REUSEADDR), so a port left in TIME_WAIT counts as free.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        return error
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                return error
    return None


def run_demo(host: str, port: int) -> int:
    # Before anything starts or is printed: on a taken port the web app would fail, and the
    # banner would point at whatever answers there (often another demo).
    taken = port_taken(host, port)
    if taken is not None:
        print(
            f"tipline demo: port {port} on {host} is already in use or cannot be bound "
            f"({taken.strerror or taken}). Stop what listens there, or choose another port: "
            "make run PORT=N (or tipline demo --port N).",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    env = demo_environment(port)
    data_dir = Path(env["TIPLINE_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    if not env.get("TIPLINE_REDIS_URL"):
        env["TIPLINE_REDIS_URL"] = embedded_redis_url(data_dir)
    if not env.get("TIPLINE_KEYSTORE_URL"):
        # The volatile key store lives as long as the demo: worker restarts keep its keys.
        env["TIPLINE_KEYSTORE_URL"] = embedded_keystore_url(data_dir)
    config = Config.from_env(env)
    upgrade(config.database_url)
    runtime = Runtime(config)
    logins = seed(runtime)
    logins_path = data_dir / "demo-logins.json"
    if logins is not None:
        write_logins(data_dir, logins)
    sync_logins(runtime, data_dir)  # passwords changed in an earlier run
    stored = json.loads(logins_path.read_text()) if logins_path.exists() else []
    tipline = [sys.executable, "-m", "tipline.cli"]
    commands = [
        [*tipline, "serve", "--host", host, "--port", str(port)],
        [*tipline, "worker"],
    ]
    # What started the demo (make, a shell): when it dies without a word to the demo (a
    # SIGKILL to make, a terminal closed), the demo is handed to another parent and stops,
    # with its web and worker processes and the embedded Redis servers, freeing the port.
    starter = os.getppid()
    with _children(commands, env) as procs:
        base = f"http://{host}:{port}"
        if not _wait_healthy(f"{base}/healthz"):
            print("The web app did not come up; see the messages above.", file=sys.stderr)
            return 1
        _print_welcome(base, logins_path, stored)
        try:
            next_sync = time.monotonic()
            while all(proc.poll() is None for proc in procs):
                if os.getppid() != starter:
                    print("tipline demo: what started it has gone; stopping", file=sys.stderr)
                    return 0
                if time.monotonic() >= next_sync:
                    next_sync = time.monotonic() + LOGINS_SYNC_EVERY
                    try:
                        changed = sync_logins(runtime, data_dir)
                    except Exception as exc:  # the database busy: the next look
                        print(f"demo-logins.json not checked ({type(exc).__name__})")
                        changed = []
                    for username in changed:
                        print(f"{username}: password changed; removed from {logins_path}")
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
    return 1


def _print_welcome(base: str, logins_path: Path, logins: list[dict[str, Any]]) -> None:
    officer = next((x for x in logins if x["role"] == Role.OFFICER and x.get("password")), None)
    lines = [
        "",
        "Tipline demo is running.",
        f"  Staff UI (log in):    {base}/login",
        f"  Health:               {base}/healthz",
        f"  Zalo simulator log:   {base}/_sim/messages  (what the OA sent to informants)",
        f"  Logins (password, TOTP secret, recovery code): {logins_path}",
    ]
    if officer:
        lines.append(
            f"  e.g. officer {officer['username']} / {officer['password']} "
            f"(TOTP secret {officer['totp_secret']}), unit {officer['unit']}"
        )
        secret = officer["totp_secret"]
        lines.append(
            "  The 6-digit code: any authenticator app with that secret, or "
            f".venv/bin/python -c \"import pyotp; print(pyotp.TOTP('{secret}').now())\""
        )
    lines += [
        "",
        "Send a tip as an informant would, from another terminal:",
        f"  .venv/bin/tipline zalo send --to {base} --oa {COMMUNES[0][2]} "
        f"--user {DEMO_USER_ID} --text 'Có người buôn bán ma túy ở hẻm 12'",
        "Within a second the tip is sealed, dispatched to "
        f"{COMMUNES[0][1]} and acknowledged with a receipt code: see {base}/_sim/messages",
        "The informant can then send 'tình trạng' (status), '1'–'5' after closure, 'STOP'.",
        f"Without Zalo: the web form {base}/bao-tin (text, photos, PDF), "
        f"follow-up at {base}/tra-cuu",
        "Roles in the logins file: officer, commander (dashboard), auditor (/audit), "
        "admin (/admin).",
        "",
        "OAs: " + ", ".join(f"{oa} ({name})" for _, name, oa, _ in COMMUNES),
        "Stop with Ctrl-C.",
    ]
    print("\n".join(lines), flush=True)
